"""`labcoat run` and `labcoat resume`: set a run up (or pick it up from its log) and drive it.

Exit codes: 0 finished (or already finished), 1 stopped by an error (the log says why and the run
is resumable; a rejected API key is one), 2 bad input, 3 paused on a budget (`budget_exhausted`,
resume with a higher `--budget-usd` / `--budget-tokens`) or on the provider's exhausted quota
(resume once credit is added) or on `labcoat stop`, 4 waiting for a person (nobody decided on a
plan within `--approve-timeout`; `labcoat approve`/`reject`, then resume), 130 interrupted
(Ctrl-C / SIGTERM).

A person's requests that reached the run while no process ran it (left in its inbox) are taken
into the log before `run_resumed`, and whatever reaches the inbox while a run lets go of its lock
is taken in after (`labcoat.orchestrator.steering`).

Everything that can be checked before a run directory exists is (`preflight`: the spec, the
engine, the image, the roles, and whether the host can hold one sandbox of the spec's size);
a failure there is exit 2 (1 for infrastructure) with nothing written. The run directory is
then built under a hidden temporary name beside its final one (`.<run-id>.partial`: the
workspace repo and a log holding `run_started`) and renamed into place, so that a failure while
it is made (a full disk, an unreadable file) leaves nothing behind that `run` or `resume`
could trip over.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import labcoat
from labcoat.durable import fsync_path
from labcoat.errors import (
    BudgetExhausted,
    ConfigError,
    DiskFull,
    LabcoatError,
    RunLogWriteError,
    SandboxUnavailable,
    first_line,
    one_line,
)
from labcoat.experiment import Experiment, experiment_from_log, experiment_hash, grader_hash
from labcoat.log import Journal, RunState
from labcoat.orchestrator.steering import settle, take_in_journal
from labcoat.text import inert
from labcoat.views.status import require_run

LOW_SPACE_BYTES = 1 << 20
"""Below this much free space a failed write is taken for a full disk."""


class RunOptions(BaseModel):
    """What `labcoat run` was asked for; stored in `run_started.config`."""

    model_config = ConfigDict(extra="forbid")

    goal: str | None = None
    """Research goal; default: the spec's."""
    model: str | None = None
    """`search`, `anthropic:MODEL` or `openai:MODEL`; default: search without API keys."""
    role_models: list[str] = Field(default_factory=list)
    """`ROLE=SPEC` overrides of the model per role."""
    base_url: str | None = None
    """OpenAI-compatible server for `openai:` models (vLLM, Ollama, llama.cpp)."""
    max_iterations: int = Field(3, ge=1)
    parallel: int = Field(2, ge=1)
    budget_usd: float | None = Field(None, ge=0)
    budget_tokens: int | None = Field(None, ge=0)
    time_limit_s: float | None = Field(None, gt=0)
    """Wall-clock limit of one invocation (a resume gets a fresh one)."""
    patience: int = Field(3, ge=0)
    """Stop after this many iterations without improvement (0: never)."""
    seed: int = 0
    runs_dir: Path = Path("runs")
    pipeline_depth: int = Field(2, ge=1)
    """Iterations in flight: iteration n is planned once n - depth has closed (1: the
    iteration barrier of labcoat 0.1; 2: a slot never waits for a slow sibling)."""
    role_timeout_s: float | None = Field(None, gt=0)
    """Real-time limit of one role's work; default 4 x the experiment's `timeout_s`."""
    cpus: float | None = Field(None, gt=0)
    """CPUs labcoat may use for sandboxes (default: what the engine reports)."""
    memory_mb: int | None = Field(None, ge=16)
    """Memory labcoat may use for sandboxes, MB (default: what the engine reports)."""
    gpu_ids: list[str] | None = None
    """GPU device ids labcoat may hand out (default: the NVIDIA devices of this host)."""
    cluster: str | None = None
    """The Ray cluster whose nodes hold the sandboxes (`ray://HOST:PORT`, `HOST:PORT`, `auto`);
    None or `local`: this machine's Docker engine."""
    approve_plans: bool = False
    """Every plan waits for a person's approval before any of its subtasks starts."""
    approve_spend_over_usd: float | None = Field(None, ge=0)
    """A subtask whose worst-case model spend exceeds this waits for a person's approval."""
    approve_timeout_s: float | None = Field(None, gt=0)
    """Pause (exit code 4) after waiting this long for nothing but a person's decision."""


def new_run_id(name: str) -> str:
    """Sorts by start time; readable; unique."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:32]
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


def resolve_brain(opts: RunOptions) -> str:
    """`--model`, else the default model of a provider whose key is set, else `search`."""
    from labcoat.agents.llm.providers import default_brain

    return opts.model or default_brain()


def preflight(exp: Experiment, config: Mapping[str, Any] | None = None, *,
              brain: str = "search") -> None:
    """The roles usable under `brain`, engine up, image present, one sandbox of the spec's size
    fits the host: fail before anything is created."""
    from labcoat.agents.registry import preflight_roles
    from labcoat.orchestrator.sandboxing import image_of
    from labcoat.sandboxes.admission import Admission, Capacity, Need
    from labcoat.sandboxes.engine import connect
    from labcoat.sandboxes.image import image_exists

    preflight_roles(exp, brain, (config or {}).get("role_models") or [])
    if on_cluster(config or {}):
        return  # the nodes are checked as the run joins the cluster (engine, image, room)
    image = image_of(exp)
    client = connect()
    try:
        present = image_exists(client, image)
        cfg = config or {}
        capacity = Capacity.detect(client, cpus=cfg.get("cpus"), memory_mb=cfg.get("memory_mb"),
                                   gpu_ids=cfg.get("gpu_ids"))
    finally:
        client.close()
    if not present:
        fix = ("run `labcoat sandbox build`" if exp.spec.image is None
               else f"build or load {image} (`docker build -t {image} ...`)")
        raise SandboxUnavailable(f"sandbox image {image} is missing; fix: {fix}")
    res = exp.spec.resources
    Admission(capacity).check(Need(cpus=res.cpus, memory_mb=res.memory_mb, gpus=res.gpus))


def on_cluster(config: Mapping[str, Any]) -> bool:
    """Whether the run's sandboxes live on a Ray cluster; exit 2 when `cluster` is not an
    address or Ray is not installed."""
    from labcoat.sandboxes.ray.address import normalize, require_ray

    given = config.get("cluster")
    if not given or normalize(str(given)) is None:
        return False
    require_ray()
    return True


def start_run(experiment_dir: Path, opts: RunOptions) -> int:
    from labcoat.experiment import load_experiment
    from labcoat.orchestrator.sandboxing import check_workspace_fits

    exp = load_experiment(experiment_dir)
    goal = exp.goal(opts.goal)
    brain = resolve_brain(opts)
    check_brain(brain, opts, exp)
    preflight(exp, opts.model_dump(), brain=brain)
    check_workspace_fits(exp)
    started = _run_started(exp, opts, goal, brain)
    try:
        run_dir = create_run_dir(exp, opts.runs_dir, new_run_id(exp.spec.name), started)
    except KeyboardInterrupt:
        print("labcoat: interrupted while the run directory was made; nothing was kept",
              file=sys.stderr)
        return 130
    print(run_dir, flush=True)
    try:
        with Journal.open(run_dir, create=False) as journal:
            return drive(run_dir, journal, exp)
    finally:
        settle(run_dir)


def _run_started(exp: Experiment, opts: RunOptions, goal: str, brain: str) -> dict[str, Any]:
    """The `run_started` fields but the base commit: everything that reads the experiment
    folder (its hashes) runs before the run directory exists."""
    try:
        hashes = {"experiment_hash": experiment_hash(exp), "grader_hash": grader_hash(exp)}
    except OSError as err:
        raise ConfigError(f"{err.filename or exp.dir}: cannot be read ({err.strerror or err}); "
                          "fix: make the experiment's workspace/ and grader/ readable") from None
    return dict(iteration=0, config=opts.model_dump(mode="json") | {"goal": goal},
                experiment=exp.spec.model_dump(mode="json"), experiment_dir=str(exp.dir),
                labcoat_version=labcoat.__version__, seed=opts.seed, brain=brain, **hashes)


def create_run_dir(exp: Experiment, runs_dir: Path, run_id: str,
                   started: dict[str, Any]) -> Path:
    """`runs_dir/run_id` holding the workspace repo and a log with `run_started`, or nothing:
    it is built under a temporary name and renamed into place only when complete."""
    from labcoat.workspace import Workspace

    final = (runs_dir / run_id).resolve()
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{final.parent}: cannot hold run directories ({err.strerror or err})"
                          "; fix: pass a writable folder with --runs-dir") from None
    partial = final.with_name(f".{run_id}.partial")
    try:
        partial.mkdir()
        _, base = Workspace.create(exp.workspace_dir, partial / "workspace")
        with Journal.open(partial, run_id, create=True) as journal:
            journal.append("run_started", base_commit=base, **started)
        partial.rename(final)
    except BaseException as err:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(err, Exception):
            raise _not_created(err, final) from None
        raise
    fsync_path(final.parent, directory=True, best_effort=True)
    return final


def _not_created(err: Exception, final: Path) -> LabcoatError:
    if disk_full(err, final.parent):
        return DiskFull(f"no space left on the device of {final.parent} while the run directory "
                        f"was made ({first_line(err)}); nothing was kept. fix: free some space, "
                        "then run again")
    if isinstance(err, LabcoatError):
        return err
    return LabcoatError(f"could not make the run directory {final} ({one_line(err)}); nothing "
                        "was kept. fix: check that the experiment's workspace/ can be read and "
                        f"{final.parent} written, then run again")


def resume_run(run_dir: Path, **overrides: Any) -> int:
    run_dir = run_dir.resolve()
    require_run(run_dir)
    try:
        return _resume(run_dir, overrides)
    finally:
        settle(run_dir)


def _resume(run_dir: Path, overrides: Mapping[str, Any]) -> int:
    with Journal.open(run_dir, create=False) as journal:
        take_in_journal(journal)  # requests that came while no process ran the run
        state = journal.state
        if state.status == "finished":
            print(f"{run_dir}: run already finished ({inert(str(state.stop_reason))}); "
                  "nothing to do")
            return 0
        exp = experiment_of(state)
        changed = {k: v for k, v in overrides.items() if v is not None}
        # The host may have changed since: refuse before the log says resumed.
        preflight(exp, {**state.config, **changed}, brain=state.brain)
        journal.append("run_resumed", overrides=changed, pid=os.getpid())
        print(run_dir, flush=True)
        return drive(run_dir, journal, exp)


def experiment_of(state: RunState) -> Experiment:
    """The experiment as validated at run start; its folder must still hold the grader."""
    folder = Path(state.experiment_dir)
    if not folder.is_dir():
        raise ConfigError(f"the run's experiment folder {folder} is gone; fix: restore it "
                          "(its grader/ and roles/ are needed to continue)")
    return experiment_from_log(state.experiment, folder)


def check_brain(brain: str, opts: RunOptions, exp: Experiment) -> None:
    """Model specs well formed and their API keys present, before the run dir exists."""
    from labcoat.agents.registry import SEARCH_BRAINS

    if brain in SEARCH_BRAINS:
        return
    from labcoat.agents.llm.providers import check_keys
    from labcoat.agents.llm.wiring import role_specs

    specs = role_specs(opts.model_dump(), brain, exp)
    check_keys([brain, *specs.values()], opts.base_url)


def drive(run_dir: Path, journal: Journal, exp: Experiment) -> int:
    """Run the loop until it finishes, pauses or fails; returns the exit code."""
    from labcoat.orchestrator.driver import run_session

    try:
        code = asyncio.run(run_session(run_dir, journal, exp))
        return paused_code(code, journal.state, run_dir)
    except RunLogWriteError:
        raise
    except BudgetExhausted as err:
        _stop(journal, "budget_exhausted", kind=err.kind, limit=err.limit, spent=err.spent)
        _stop(journal, "run_paused", reason=str(err))
        raise
    except LabcoatError as err:
        _stop(journal, "run_paused", reason=str(err))
        raise
    except KeyboardInterrupt:
        _stop(journal, "run_paused", reason="interrupted (KeyboardInterrupt)")
        return 130
    except Exception as err:
        if not disk_full(err, run_dir):
            _stop(journal, "run_failed", error=f"{type(err).__name__}: {err}")
            raise
        _stop(journal, "run_paused", reason="disk full")
        raise DiskFull(f"no space left on the device of {run_dir} ({first_line(err)}); fix: "
                       f"free some space, then `labcoat resume {run_dir}`") from None


def paused_code(code: int, state: RunState, run_dir: Path) -> int:
    """A run that paused without an error: 4 when it waits for a person, else 3 (a stop
    request); said in one line, with the way on."""
    if code != 0 or state.status != "paused":
        return code
    how = "" if state.waiting_for_person else f"; `labcoat resume {run_dir}` continues"
    print(f"labcoat: paused: {inert(str(state.stop_reason))}{how}", file=sys.stderr)
    return 4 if state.waiting_for_person else 3


def disk_full(err: BaseException, run_dir: Path) -> bool:
    """ENOSPC anywhere in the chain, a command that said so, or (git often just says it
    "couldn't write" a file) an I/O failure while the run's disk has no room left."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        return shutil.disk_usage(run_dir).free < LOW_SPACE_BYTES
    except OSError:
        return False


def _stop(journal: Journal, type_: str, **fields: Any) -> None:
    if journal.state.status in ("running",):
        try:
            journal.append(type_, **fields)
        except LabcoatError as err:  # the log itself failed: say so, keep the first error
            print(f"labcoat: could not record {type_}: {err}", file=sys.stderr)


__all__ = ["RunOptions", "resume_run", "start_run"]
