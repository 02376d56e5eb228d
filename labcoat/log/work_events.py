"""Events about subtasks: started, the commands their sandboxes ran, finished or failed,
graded, critiqued."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from labcoat import text
from labcoat.log.event_base import CMD_CAP, TAIL_CAP, EventBase


class SubtaskStarted(EventBase):
    type: Literal["subtask_started"] = "subtask_started"
    subtask_id: str
    role: str
    attempt: int = Field(ge=1)
    """1 on the first try, +1 on each re-run after an interruption."""
    base_commit: str


class SandboxExec(EventBase):
    type: Literal["sandbox_exec"] = "sandbox_exec"
    subtask_id: str | None = None
    cmd: str
    returncode: int
    duration_s: float
    timed_out: bool = False
    oom_killed: bool = False
    """The command itself died of it."""
    oom_kills: int = Field(default=0, ge=0)
    """Other processes (its children) OOM-killed while it ran (optional v1 field)."""
    stdout_tail: str = ""
    stderr_tail: str = ""

    @field_validator("cmd")
    @classmethod
    def _cap_cmd(cls, value: str) -> str:
        return text.head(value, CMD_CAP)

    @field_validator("stdout_tail", "stderr_tail")
    @classmethod
    def _cap_tail(cls, value: str) -> str:
        return text.tail(value, TAIL_CAP)


class SubtaskFinished(EventBase):
    type: Literal["subtask_finished"] = "subtask_finished"
    subtask_id: str
    role: str
    attempt: int = Field(default=1, ge=1)
    commit: str | None = None
    """Set for results that are not graded; graded results get their commit in `graded`."""
    tree: str | None = None
    """The git tree of the role's result; grading commits it with the metric in the message."""
    summary: str = ""
    changed: bool = False
    artifacts: list[str] = Field(default_factory=list)
    critique: dict[str, Any] | None = None
    """A `Critique` dump, for reviewing roles."""
    candidate: bool = True
    """False: a measurement (an ablation, an analysis): graded and shown, never the best, never
    reviewed by the critic."""


class SubtaskFailed(EventBase):
    type: Literal["subtask_failed"] = "subtask_failed"
    subtask_id: str
    role: str
    attempt: int = Field(default=1, ge=1)
    error: str


class Graded(EventBase):
    type: Literal["graded"] = "graded"
    subtask_id: str
    commit: str
    seed: int
    metrics: dict[str, float] = Field(default_factory=dict)
    metric: float | None = None
    """The primary metric (None when missing or grading failed)."""
    ok: bool = True
    error: str | None = None
    duration_s: float = 0.0


class CritiqueEvent(EventBase):
    type: Literal["critique"] = "critique"
    subtask_id: str
    """The critic's own subtask."""
    target: str
    verdict: Literal["reproducible", "not_reproducible", "suspicious", "ok"]
    reason: str = ""
    metrics_by_seed: dict[str, float] = Field(default_factory=dict)
    mean: float | None = None
    std: float | None = None


class CapacityNoted(EventBase):
    """What the scheduler may use and how many sandboxes of the spec's size fit at once
    (written once per session, when a run starts or resumes)."""

    type: Literal["capacity"] = "capacity"
    cpus: float
    memory_mb: int
    gpu_ids: list[str] = Field(default_factory=list)
    source: str = ""
    """Where the numbers come from: the engine, or the person's `--cpus/--memory/--gpu-ids`."""
    sandbox: dict[str, Any] = Field(default_factory=dict)
    """What one sandbox asks for: cpus, memory_mb, gpus."""
    fits: int
    """Sandboxes of that size that fit at once."""
    parallel: int
    """The run's `--parallel` (an upper bound on subtasks at once)."""
    note: str = ""
    """A sentence for people when `fits` is below `parallel`."""


class SandboxLeased(EventBase):
    """One sandbox admitted: which slot it took and which GPU devices it holds."""

    type: Literal["sandbox_leased"] = "sandbox_leased"
    subtask_id: str | None = None
    sandbox: str = ""
    """The sandbox's purpose as its spec names it (`<subtask>`, `<subtask>-run`, ...)."""
    slot: int
    cpus: float
    memory_mb: int
    gpu_ids: list[str] = Field(default_factory=list)
    node: str | None = None
    """The cluster node that holds it (None on one machine)."""


class NodeLost(EventBase):
    """A cluster node stopped answering while a sandbox of the run was on it (written once per
    node): that sandbox's attempt is lost, the subtask re-runs on a node that is up."""

    type: Literal["node_lost"] = "node_lost"
    node: str
    """The node as labcoat names it (`<hostname>-<node id prefix>`)."""
    node_id: str = ""
    """Ray's id of the node."""
    subtask_id: str | None = None
    """The subtask whose sandbox was on it when it was found lost."""
    sandbox: str = ""
    """That sandbox's purpose as its spec names it (`<subtask>-run`, ...)."""
    reason: str = ""


class ClaimChecked(EventBase):
    """The reproducer's verdict on one of experiment.yaml's `claims` (an optional v1 addition):
    the unmodified baseline (or its reproduction fix) graded over the critic's seeds plus the
    run seed. The rule is `labcoat.experiment.claims`."""

    type: Literal["claim_checked"] = "claim_checked"
    subtask_id: str
    """The reproducer subtask that checked it."""
    target: str
    """The subtask whose result was graded (the reproducer that ran the baseline)."""
    commit: str
    """The commit graded: the initial workspace, or the reproduction fix."""
    claim: int = Field(ge=0)
    """Position of the claim in `claims:` (0-based)."""
    metric: str
    value: float
    """The claimed value."""
    tolerance: float
    """The tolerance in the metric's units."""
    source: str = ""
    verdict: Literal["reproduced", "not_reproduced", "inconclusive"]
    mean: float | None = None
    std: float | None = None
    values: dict[str, float] = Field(default_factory=dict)
    """The measured value by seed."""
    reason: str = ""
