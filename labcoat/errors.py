"""Errors a *person* must act on. What a *model* should see never raises: it is an observation.

Every message names what went wrong, where, and how to fix it. The tree::

    LabcoatError                      base of everything labcoat raises on purpose
    ├── ConfigError                   bad input from the person
    │   ├── SpecError                 experiment.yaml (or a role file) fails validation
    │   └── UnknownRoleError          a role name nobody registered
    ├── SandboxError                  the sandbox layer
    │   ├── SandboxUnavailable        engine down, image missing, daemon restarted (infrastructure)
    │   └── UnsafeOutputError         a sandbox produced a path/link/device we refuse to take
    ├── RunLogError                   the experiment log
    │   ├── RunLogCorrupt             a damaged record before the last line
    │   ├── RunLogVersionError        written by a newer labcoat
    │   ├── RunLogWriteError          append/fsync failed: the run stops, never retries
    │   └── RunLocked                 another process holds the run directory
    ├── DiskFull                      no space left for the run directory: stop, resume later
    │   └── DiskLow                   free disk under the floor before new work: pause (exit 3)
    ├── GraderTampered                grader files changed since the run started
    └── ModelError                    the model provider
        ├── ModelAuthError            401/403: stop the run
        ├── ModelQuotaError           quota exhausted: pause the run (resumable)
        ├── ContextOverflowError      the prompt no longer fits
        └── ModelUnavailable          retries spent on 429/5xx/timeouts
    BudgetExhausted                   (LabcoatError) no new call/subtask fits the budget
"""

from __future__ import annotations


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type when empty), for one-line reports."""
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]


def one_line(err: BaseException) -> str:
    """`TypeName: first line of the message`, for reports that must say what was raised."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


class LabcoatError(Exception):
    """Base class. `str(err)` is the one message shown to the person."""

    exit_code: int = 1


class ConfigError(LabcoatError):
    """Bad input from the person: a spec, a flag, a role file."""

    exit_code = 2


class SpecError(ConfigError):
    """experiment.yaml or a role file failed validation; the message lists every problem."""


class UnknownRoleError(ConfigError):
    """A role name that no built-in, plugin or role file provides."""


class SandboxError(LabcoatError):
    """Base for the sandbox layer."""


class SandboxUnavailable(SandboxError):
    """Infrastructure failure: the engine is down, the image is missing, a container died."""


class UnsafeOutputError(SandboxError):
    """A sandbox produced something we refuse to take (absolute path, `..`, link escape, device,
    size over a cap)."""


class RunLogError(LabcoatError):
    """Base for the experiment log."""


class RunLogCorrupt(RunLogError):
    """A record before the last line is damaged; nothing is skipped silently."""


class RunLogVersionError(RunLogError):
    """The log was written by a newer labcoat schema than this one reads."""


class RunLogWriteError(RunLogError):
    """Append or fsync failed. The run stops; a failed fsync is never retried."""


class RunLocked(RunLogError):
    """Another labcoat process holds the run directory."""


class DiskFull(LabcoatError):
    """The run directory's disk is full. The run stops; `labcoat resume` continues it once
    there is space again."""


class DiskLow(DiskFull):
    """Free disk fell below labcoat's floor (`LABCOAT_MIN_FREE_DISK`, default 2g) before new
    work started: the run pauses (exit 3) and `labcoat resume` continues it once there is room."""

    exit_code = 3


class GraderTampered(LabcoatError):
    """The grader folder's hash changed since the run started: grading is refused."""


class BudgetExhausted(LabcoatError):
    """No new model call or subtask fits the remaining budget; the run can resume with more.

    `kind` ("usd" or "tokens"), `limit` and `spent` go into the `budget_exhausted` event.
    """

    exit_code = 3

    def __init__(self, message: str, *, kind: str = "usd", limit: float = 0.0,
                 spent: float = 0.0) -> None:
        super().__init__(message)
        self.kind, self.limit, self.spent = kind, limit, spent


class ModelError(LabcoatError):
    """Base for model-provider failures the person must see."""


class ModelAuthError(ModelError):
    """401/403 from the provider: the key is wrong or lacks access. The run stops."""


class ModelQuotaError(ModelError):
    """The provider's quota is exhausted: the run pauses (exit 3, like a budget) and can be
    resumed once credit is added."""

    exit_code = 3


class ContextOverflowError(ModelError):
    """The request no longer fits the model's context window."""


class ModelUnavailable(ModelError):
    """Retries are spent on rate limits, server errors or timeouts."""
