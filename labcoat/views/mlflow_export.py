"""`labcoat export RUN_DIR --mlflow [--tracking-uri URI]`: a run in MLflow, to compare it with
the runs researchers already keep there.

The run becomes a parent run; each graded subtask a child run with its parameters, its metric
at every seed (the step is the seed), and tags (role, commit, base, verdict, status); its diff
and its logs are artifacts. Exporting again updates the same runs (found by their labcoat tags)
and adds only the metric values that are not there yet, so nothing is duplicated.

By default it writes MLflow's local file store `./mlruns` (browse it with
`mlflow ui --backend-store-uri ./mlruns`); any MLflow tracking URI works. MLflow is an
optional extra (`pip install 'labcoat[mlflow]'`, which is mlflow-skinny). The run directory
is only read, through the same verified reader as the viewer.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from labcoat.errors import ConfigError, LabcoatError
from labcoat.log import RunState, SubtaskState
from labcoat.views.web.files import listing
from labcoat.views.web.index import Point, RunIndex

if TYPE_CHECKING:
    from mlflow.entities import Metric, Run
    from mlflow.tracking import MlflowClient

PREFIX = "labcoat."
"""Tag prefix of everything labcoat sets."""
BATCH = 100
"""Params and tags per `log_batch` call (MLflow's limit)."""
_KEY = re.compile(r"[^A-Za-z0-9_\-. /:]")


class MissingExtra(ConfigError):
    """An optional dependency is not installed; the message names the pip install."""


def export_mlflow(run_dir: Path, *, tracking_uri: str | None = None) -> str:
    """Log the run at `run_dir` to MLflow; returns a line saying where it went."""
    client, uri = _client(tracking_uri)
    index = RunIndex(Path(run_dir).absolute())
    index.refresh(budget_s=None)
    if index.problem is not None or index.events == 0:
        raise LabcoatError(f"{run_dir}: {index.problem or 'no events in the log'}")
    state = index.state
    experiment = _experiment(client, state)
    parent = _parent(client, experiment, state)
    children = _children(client, experiment, state.run_id)
    graded = [s for s in state.subtasks.values() if s.grades]
    for s in graded:
        child = children.get(s.id) or _new_child(client, experiment, parent, state, s)
        _fill_child(client, child, index, s)
    _fill_parent(client, parent, state)
    return (f"MLflow: run {parent} ({len(graded)} graded subtask runs) in experiment "
            f"{_experiment_name(state)!r} at {uri}")


def _client(tracking_uri: str | None) -> tuple[MlflowClient, str]:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingExtra("exporting to MLflow needs MLflow, an optional extra: "
                           "pip install 'labcoat[mlflow]'") from None
    uri = tracking_uri or Path("mlruns").absolute().as_uri()
    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 keeps its file store (the `mlruns/` folder) working only on request.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=uri), uri


def _experiment_name(state: RunState) -> str:
    return f"labcoat: {state.experiment.get('name', 'run')}"


def _experiment(client: MlflowClient, state: RunState) -> str:
    name = _experiment_name(state)
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def _find(client: MlflowClient, experiment: str, **tags: str) -> list[Run]:
    for value in tags.values():
        if not re.fullmatch(r"[A-Za-z0-9_.:@-]+", value):
            raise LabcoatError(f"cannot look up {value!r} in MLflow: unexpected characters")
    where = " and ".join(f"tags.`{PREFIX}{k}` = '{v}'" for k, v in tags.items())
    return list(client.search_runs([experiment], filter_string=where, max_results=5000))


def _parent(client: MlflowClient, experiment: str, state: RunState) -> str:
    runs = _find(client, experiment, run_id=state.run_id, kind="run")
    if runs:
        return str(runs[0].info.run_id)
    run = client.create_run(experiment, run_name=state.run_id,
                            start_time=int((state.started_ts or 0) * 1000),
                            tags={f"{PREFIX}run_id": state.run_id, f"{PREFIX}kind": "run"})
    return str(run.info.run_id)


def _children(client: MlflowClient, experiment: str, run_id: str) -> dict[str, str]:
    runs = _find(client, experiment, run_id=run_id, kind="subtask")
    return {r.data.tags[f"{PREFIX}subtask_id"]: r.info.run_id for r in runs}


def _new_child(client: MlflowClient, experiment: str, parent: str, state: RunState,
               s: SubtaskState) -> str:
    tags = {f"{PREFIX}run_id": state.run_id, f"{PREFIX}kind": "subtask",
            f"{PREFIX}subtask_id": s.id, "mlflow.parentRunId": parent}
    run = client.create_run(experiment, run_name=s.id, tags=tags)
    return str(run.info.run_id)


def _fill_parent(client: MlflowClient, run: str, state: RunState) -> None:
    from mlflow.entities import Metric

    params = {"brain": state.brain, "seed": state.seed, "metric": state.metric_name,
              "direction": state.direction, "experiment_hash": state.experiment_hash,
              "base_commit": state.base_commit}
    tags = {f"{PREFIX}status": state.status, f"{PREFIX}goal": state.config.get("goal", ""),
            f"{PREFIX}stop_reason": state.stop_reason or "",
            **{f"{PREFIX}config.{k}": v for k, v in state.config.items()}}
    ts, step = int((state.last_ts or 0) * 1000), max(state.last_seq, 0)
    values = {"best": None if state.best is None else state.best.metric,
              "baseline": state.baseline, "cost_usd": state.cost.total.usd,
              "tokens": float(state.cost.total.tokens), "subtasks": float(len(state.subtasks))}
    metrics = [Metric(_key(k), float(v), ts, step) for k, v in values.items() if v is not None]
    _log(client, run, params, tags, metrics)
    _finish(client, run, state.status, state.last_ts)


def _fill_child(client: MlflowClient, run: str, index: RunIndex, s: SubtaskState) -> None:
    state = index.state
    params = {"role": s.role, "iteration": s.iteration, "seed": s.seed,
              **{f"param.{k}": v for k, v in (s.subtask.get("params") or {}).items()
                 if not isinstance(v, dict | list) or len(json.dumps(v)) < 500}}
    tags = {f"{PREFIX}role": s.role, f"{PREFIX}commit": s.commit or "",
            f"{PREFIX}base": str(s.subtask.get("base_commit", "")),
            f"{PREFIX}verdict": s.verdict or "", f"{PREFIX}status": s.status,
            f"{PREFIX}summary": s.summary}
    _log(client, run, params, tags, _grade_metrics(state, s, index.points))
    _artifacts(client, run, index, s)
    times = index.times.get(s.id)
    _finish(client, run, s.status, times.ended if times else None)


def _grade_metrics(state: RunState, s: SubtaskState, points: Sequence[Point]) -> list[Metric]:
    """Every metric of every grade, at step = seed, time-stamped when it was graded."""
    from mlflow.entities import Metric

    when = {p.seed: int(p.ts * 1000) for p in points if p.subtask == s.id}
    out = []
    for seed, grade in sorted(s.grades.items()):
        values = dict(grade.metrics) if grade.ok else {}
        if grade.ok and grade.metric is not None and state.metric_name:
            values.setdefault(state.metric_name, grade.metric)
        out += [Metric(_key(k), float(v), when.get(seed, 0), seed) for k, v in values.items()
                if isinstance(v, int | float)]
    return out


def _key(name: object) -> str:
    """A name MLflow accepts as a key (letters, digits and `_-. /:`; at most 250)."""
    return _KEY.sub("_", str(name))[:250] or "_"


def _log(client: MlflowClient, run: str, params: Mapping[str, object],
         tags: Mapping[str, object], metrics: list[Metric]) -> None:
    from mlflow.entities import Param, RunTag

    have = client.get_run(run).data.params
    new_params = [Param(_key(k), str(v)[:6000]) for k, v in params.items()
                  if _key(k) not in have]
    new_tags = [RunTag(_key(k), str(v)[:8000]) for k, v in tags.items()]
    for i in range(0, len(new_params), BATCH):
        client.log_batch(run, params=new_params[i:i + BATCH])
    for i in range(0, len(new_tags), BATCH):
        client.log_batch(run, tags=new_tags[i:i + BATCH])
    fresh = _missing(client, run, metrics)
    for i in range(0, len(fresh), 1000):
        client.log_batch(run, metrics=fresh[i:i + 1000])


def _missing(client: MlflowClient, run: str, metrics: list[Metric]) -> list[Metric]:
    """The metric values not logged yet (same key, step, time and value): re-export adds none."""
    seen: set[tuple[str, int, int, float]] = set()
    for key in {m.key for m in metrics}:
        seen |= {(m.key, m.step, m.timestamp, m.value)
                 for m in client.get_metric_history(run, key)}
    return [m for m in metrics if (m.key, m.step, m.timestamp, m.value) not in seen]


def _artifacts(client: MlflowClient, run: str, index: RunIndex, s: SubtaskState) -> None:
    """The subtask's diff (diff.patch) and its logs (logs/): replaced on each export."""
    from labcoat.views.web.subtask import raw_diff

    text = raw_diff(index, s)
    if text:
        with tempfile.TemporaryDirectory(prefix="labcoat-mlflow-") as tmp:
            patch = Path(tmp) / "diff.patch"
            patch.write_text(text, encoding="utf-8", errors="replace")
            client.log_artifact(run, str(patch))
    for _, real in listing(index.run_dir, f"artifacts/{s.id}"):
        client.log_artifact(run, str(real), "logs")


def _finish(client: MlflowClient, run: str, status: str, ended: float | None) -> None:
    mlflow_status = {"finished": "FINISHED", "failed": "FAILED"}.get(status)
    if mlflow_status is not None:
        client.set_terminated(run, mlflow_status,
                              end_time=int(ended * 1000) if ended else None)
