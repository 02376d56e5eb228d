"""Honest grading: the score comes only from the grader step, which the agents never touch.

For a candidate tree: `run` executes in a fresh sandbox that has no grader in it; its outputs
are copied out; `evaluate` then runs in another fresh sandbox holding those outputs, with the
grader folder mounted read-only at /grader. The metric is the last stdout line of `evaluate`,
a JSON object. The grader folder's hash is checked against the run's before every grading.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcoat.errors import GraderTampered, UnsafeOutputError
from labcoat.experiment import Experiment, grader_hash, trial_env
from labcoat.log import EventBase
from labcoat.orchestrator.sandboxing import sandbox_spec
from labcoat.sandboxes.base import ExecResult, Mount, Sandbox, SandboxProvider

Emit = Callable[..., EventBase]
"""`emit(type, iteration=..., **fields)` appends to the log (`Lab.emit`)."""
Export = Callable[[str, Path], None]


@dataclass(frozen=True)
class GradeOutcome:
    """What one grading produced: metrics, or the reason there are none."""

    metrics: dict[str, float] = field(default_factory=dict)
    metric: float | None = None
    error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class GradeFailed(Exception):
    """Internal: the candidate's run or evaluate step failed (a result, not a crash)."""


@dataclass
class Grader:
    """Grades trees of the run's workspace in fresh sandboxes."""

    experiment: Experiment
    provider: SandboxProvider
    run_id: str
    expected_hash: str
    export: Export
    """`export(rev, folder)` materialises a commit or tree of the workspace."""
    emit: Emit
    """`emit(type, iteration=..., **fields)` appends to the log."""
    artifacts: Path
    scratch: Path | None = None
    """Host folder for the copies grading makes (the run's tmp/, emptied at each start);
    None: the system temp folder."""

    async def grade(self, rev: str, *, subtask_id: str, seed: int, iteration: int) -> GradeOutcome:
        self.check_grader()
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="labcoat-grade-", dir=self.scratch) as tmp:
            try:
                metrics = await self._grade_in(Path(tmp), rev, subtask_id, seed, iteration)
            except GradeFailed as err:
                return GradeOutcome(error=str(err), duration_s=time.monotonic() - start)
        name = self.experiment.spec.metric.name
        if name not in metrics:
            return GradeOutcome(metrics=metrics, duration_s=time.monotonic() - start,
                                error=f"evaluate printed no {name!r} (got {sorted(metrics)})")
        return GradeOutcome(metrics=metrics, metric=metrics[name],
                            duration_s=time.monotonic() - start)

    def check_grader(self) -> None:
        now = grader_hash(self.experiment)
        if now != self.expected_hash:
            raise GraderTampered(
                f"grader files in {self.experiment.grader_dir} changed since the run started "
                f"(hash {now[:12]} != {self.expected_hash[:12]}); grading is refused. "
                "fix: restore the grader folder, then `labcoat resume`; or start a new run"
            )

    async def _grade_in(self, tmp: Path, rev: str, sid: str, seed: int, iteration: int,
                        ) -> dict[str, float]:
        work, outputs = tmp / "work", tmp / "outputs"
        await asyncio.to_thread(self.export, rev, work)
        env = trial_env(read_params(work), seed)
        await self._run_step(work, outputs, sid, env, iteration)
        return await self._evaluate_step(outputs, sid, seed, iteration)

    async def _sandbox(self, sid: str, env: Mapping[str, str], mounts: tuple[Mount, ...] = ()
                       ) -> Sandbox:
        spec = sandbox_spec(self.experiment, self.run_id, sid, env=env, mounts=mounts)
        return await self.provider.create(spec)

    async def _run_step(self, work: Path, outputs: Path, sid: str, env: dict[str, str],
                        iteration: int) -> None:
        spec = self.experiment.spec
        async with await self._sandbox(f"{sid}-run", env) as box:
            await box.put_dir(work, "/workspace")
            for cmd in filter(None, [spec.setup, spec.run]):
                res = await self._exec(box, cmd, sid, iteration, "run")
                if not res.ok:
                    raise GradeFailed(res.describe(cmd))
            try:
                await box.get_dir("/workspace", outputs)
            except UnsafeOutputError as err:  # the candidate's doing: it gets no score
                raise GradeFailed(f"the outputs of `run` cannot be taken: {err}") from None
        self._keep_outputs(outputs)

    def _keep_outputs(self, outputs: Path) -> None:
        """With `outputs:` in the spec, evaluate sees only those paths of the workspace."""
        keep = self.experiment.spec.outputs
        if keep is None:
            return
        staged = outputs.with_name("kept")
        for rel in keep:
            src = outputs / rel
            if src.is_dir():
                shutil.copytree(src, staged / rel, symlinks=True)
            elif src.is_file():
                (staged / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, staged / rel)
        shutil.rmtree(outputs)
        staged.mkdir(exist_ok=True)
        staged.rename(outputs)

    async def _evaluate_step(self, outputs: Path, sid: str, seed: int, iteration: int,
                             ) -> dict[str, float]:
        mounts = (Mount(source=self.experiment.grader_dir, target="/grader"),) \
            if self.experiment.grader_dir.is_dir() else ()
        env = {"LABCOAT_SEED": str(seed)}
        async with await self._sandbox(f"{sid}-eval", env, mounts) as box:
            await box.put_dir(outputs, "/workspace")
            res = await self._exec(box, self.experiment.spec.evaluate, sid, iteration, "evaluate")
        if not res.ok:
            raise GradeFailed("evaluate " + res.describe(self.experiment.spec.evaluate))
        return parse_metrics(res.stdout)

    async def _exec(self, box: Sandbox, cmd: str, sid: str, iteration: int, step: str,
                    ) -> ExecResult:
        res = await box.exec(cmd, timeout_s=self.experiment.spec.resources.timeout_s)
        # Nothing the command started may outlive it: a daemon left by `setup` would otherwise
        # run on through `run`, and one left by `run` would change the outputs being copied.
        await box.kill_all()
        self.emit("sandbox_exec", iteration=iteration, subtask_id=sid,
                  **res.log_fields(f"[{step}] {cmd}"))
        log = self.artifacts / sid / f"{step}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"$ {cmd}\n[rc={res.returncode} {res.duration_s:.2f}s]\n{res.stdout}\n"
                     f"--- stderr ---\n{res.stderr}\n")
        return res


def read_params(work: Path) -> dict[str, Any]:
    """The trial parameters a tree carries in params.json (the source of LABCOAT_PARAM_*)."""
    path = work / "params.json"
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except (ValueError, RecursionError):  # an agent wrote it: not JSON, or nested 10**5 deep
        return {}
    return value if isinstance(value, dict) else {}


def parse_metrics(stdout: str) -> dict[str, float]:
    """The last non-empty stdout line must be a JSON object; its numeric values are metrics."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        raise GradeFailed("evaluate printed nothing; its last stdout line must be a JSON object")
    try:
        obj = json.loads(lines[-1])
    except ValueError:
        raise GradeFailed(f"evaluate's last stdout line is not JSON: {lines[-1][:200]!r}") from None
    if not isinstance(obj, dict):
        raise GradeFailed(f"evaluate's last stdout line is not a JSON object: {lines[-1][:200]!r}")
    return {k: float(v) for k, v in obj.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}
