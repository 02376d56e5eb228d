"""The Sandbox protocol: what every backend (Docker today, others later) must provide.

A non-zero exit, a timeout, an OOM kill, truncated output or a command that could not start is
a *result* (`ExecResult`): the model sees it. Only infrastructure failure raises
`SandboxUnavailable`: the person sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

LABEL_RUN = "labcoat.run_id"
LABEL_SUBTASK = "labcoat.subtask_id"
LABEL_PID = "labcoat.pid"
LABEL_HOST = "labcoat.host"

DEFAULT_OUTPUT_CAP = 256 * 1024
"""Bytes kept at the head and at the tail of each stream of a command."""
DEFAULT_MAX_FILE_BYTES = 1 << 30
"""Largest single file `read_file`/`get_dir` take out of a sandbox (1 GiB)."""
DEFAULT_MAX_COPY_BYTES = 4 << 30
"""Largest total `get_dir` takes out of one sandbox over its life (4 GiB)."""
DEFAULT_DISK_MB = 10 * 1024
"""What one sandbox may write to /workspace and /outputs together (10 GiB)."""


class Mount(BaseModel):
    """A host folder visible in the sandbox. labcoat's own mounts (e.g. /grader) are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Path
    """Host path."""
    target: str
    """Absolute path inside the sandbox."""
    read_only: bool = True
    """Writable mounts weaken isolation and need `unsafe_writable_mounts`."""


class SandboxSpec(BaseModel):
    """Everything needed to create one sandbox."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str
    """Image tag; labcoat's default is `labcoat.sandboxes.image.default_image()`."""
    run_id: str
    """Labels the container `labcoat.run_id` so a sweep can find it."""
    subtask_id: str = ""
    """Labels the container `labcoat.subtask_id`."""
    cpus: float = 1.0
    """CPU quota in cores."""
    memory_mb: int = 1024
    """Memory limit; swap is set equal to it (no swap beyond memory)."""
    pids_limit: int = 256
    """Maximum processes and threads in the container."""
    gpus: int = 0
    """GPUs requested as a device request; a preflight error when the host has none."""
    gpu_ids: tuple[str, ...] = ()
    """The GPU device ids this sandbox holds (given by admission, exclusive while it lives);
    empty with `gpus` > 0 lets the engine choose (which hands every container the same GPU)."""
    network: Literal["none", "bridge"] = "none"
    """`bridge` only when the experiment asks for it."""
    env: dict[str, str] = Field(default_factory=dict)
    """The container's whole environment beyond the image's: the host's is never passed."""
    workdir: str = "/workspace"
    """Working directory for `exec` when no `cwd` is given."""
    mounts: tuple[Mount, ...] = ()
    """Extra host folders, read-only unless `unsafe_writable_mounts`."""
    tmpfs_mb: int = 512
    """Size of the tmpfs at /tmp."""
    unsafe_writable_mounts: bool = False
    """Allow `Mount(read_only=False)`. Logged, never the default."""
    unsafe_privileged: bool = False
    """Run privileged. Logged, never the default."""
    writable_dirs: tuple[str, ...] = ("/workspace", "/outputs")
    """Writable folders, each a per-sandbox host folder bind-mounted in; the rest of the root is
    read-only (plus the tmpfs at /tmp)."""
    output_cap_bytes: int = DEFAULT_OUTPUT_CAP
    """Bytes kept at the head and at the tail of each stream of each command."""
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    """Largest single file `read_file`/`get_dir` take out of the sandbox."""
    max_copy_bytes: int = DEFAULT_MAX_COPY_BYTES
    """Largest total `get_dir` takes out of the sandbox over its life."""
    disk_mb: int | None = Field(DEFAULT_DISK_MB, ge=16)
    """What the sandbox may write to its `writable_dirs` together; past it the command is stopped
    and every later command and copy is refused ("disk limit exceeded"). None: no limit."""


class ExecResult(BaseModel):
    """The outcome of one command. Failures of the command itself are data, not exceptions."""

    model_config = ConfigDict(frozen=True)

    returncode: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    oom_killed: bool = False
    """The command itself was killed for want of memory (not merely one of its children)."""
    oom_kills: int = Field(default=0, ge=0)
    """Processes the OOM killer took while the command ran, the command itself not counted
    (typically its children; the command may still have exited 0)."""
    start_error: str | None = None
    """Why the command could not start at all, as an errno name (`ENOENT`: no such program or
    working directory; `EACCES`: not executable); None when it started. `returncode` is then
    127 or 126, as a shell would say."""
    truncated: bool = False
    """True when either stream was cut to its head and tail (a marker shows where)."""
    disk_full: bool = False
    """The sandbox reached its disk limit (`SandboxSpec.disk_mb`): the command was stopped."""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.returncode == 0 and not self.timed_out and not self.oom_killed
                and not self.disk_full)

    @property
    def started(self) -> bool:
        """False when the command could not start (see `start_error`)."""
        return self.start_error is None

    @property
    def outcome(self) -> str:
        """How the command ended, in words: `timed out`, `was OOM-killed`, `could not start`
        or `exited N`."""
        if self.disk_full:
            return "was stopped: disk limit exceeded"
        if self.timed_out:
            return "timed out"
        if self.oom_killed:
            return "was OOM-killed (out of memory)"
        if self.start_error is not None:
            return f"could not start ({self.start_error})"
        return f"exited {self.returncode}"

    @property
    def oom_warning(self) -> str:
        """A warning when the OOM killer took processes of the command's (else empty)."""
        if not self.oom_kills:
            return ""
        return f"{self.oom_kills} child process(es) OOM-killed (out of memory)"

    def describe(self, cmd: str, *, limit: int = 600) -> str:
        """One line for a person or a model: what ran, how it ended, the end of its output."""
        text = self.stderr.strip() or self.stdout.strip()
        warning = f" [warning: {self.oom_warning}]" if self.oom_kills else ""
        return f"`{cmd}` {self.outcome}{warning}: {text[-limit:] if text else '(no output)'}"

    def log_fields(self, cmd: str) -> dict[str, object]:
        """The fields of a `sandbox_exec` log event (the event caps the output it keeps)."""
        fields: dict[str, object] = {
            "cmd": cmd, "returncode": self.returncode, "duration_s": self.duration_s,
            "timed_out": self.timed_out, "oom_killed": self.oom_killed,
            "stdout_tail": self.stdout, "stderr_tail": self.stderr}
        if self.oom_kills:  # an optional v1 field: logs without it still load
            fields["oom_kills"] = self.oom_kills
        return fields


@runtime_checkable
class Sandbox(Protocol):
    """One isolated machine for one subtask step. Use as `async with`."""

    id: str
    spec: SandboxSpec

    async def exec(
        self,
        cmd: str | Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        stdin: bytes | str | None = None,
    ) -> ExecResult:
        """Run `cmd` (a string goes through `bash -c`); at the deadline the whole process tree
        dies."""
        ...

    async def read_file(self, path: str, *, max_bytes: int = 10 * 1024 * 1024) -> bytes:
        """The file's bytes, read with the sandbox user's rights; `OSError`s as in Python
        (FileNotFoundError, PermissionError, IsADirectoryError), `UnsafeOutputError` over
        `max_bytes`."""
        ...

    async def write_file(self, path: str, data: bytes | str) -> None:
        """Create or replace the file (and its missing folders) as the sandbox user; `OSError`s
        as in Python."""
        ...

    async def kill_all(self) -> int:
        """SIGKILL every process the commands started (daemons that called setsid or cleared
        their environment included); labcoat's own stay. Returns how many were killed."""
        ...

    async def put_dir(self, src: Path, dest: str = "/workspace") -> None:
        """Copy a host folder's contents into the sandbox at `dest`."""
        ...

    async def get_dir(self, src: str, dest: Path, *, max_bytes: int | None = None) -> None:
        """Copy a sandbox folder out to `dest`, refusing unsafe entries (`UnsafeOutputError`)."""
        ...

    async def aclose(self) -> None:
        """Remove the sandbox (forced, never a graceful stop). Idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...


@runtime_checkable
class SandboxProvider(Protocol):
    """Creates sandboxes and sweeps what a run left behind."""

    async def create(self, spec: SandboxSpec) -> Sandbox: ...

    async def cleanup(self, run_id: str | None = None) -> int:
        """Remove the run's containers (all orphaned runs' when None); returns how many."""
        ...

    async def aclose(self) -> None: ...
