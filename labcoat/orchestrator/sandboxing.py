"""From an experiment to sandboxes: the image it runs in and the spec of each sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labcoat.experiment import Experiment
from labcoat.sandboxes.base import SandboxSpec
from labcoat.sandboxes.image import default_image


def image_of(exp: Experiment) -> str:
    """The experiment's `image:`, else labcoat's own sandbox image."""
    return exp.spec.image or default_image()


def sandbox_spec(exp: Experiment, run_id: str, subtask_id: str = "", *,
                 env: Mapping[str, str] | None = None, **overrides: Any) -> SandboxSpec:
    """A `SandboxSpec` with the experiment's image and resources; `overrides` win."""
    res = exp.spec.resources
    fields: dict[str, Any] = dict(
        image=image_of(exp), run_id=run_id, subtask_id=subtask_id, cpus=res.cpus,
        memory_mb=res.memory_mb, pids_limit=res.pids, gpus=res.gpus, network=res.network,
        env=dict(env or {}),
    )
    return SandboxSpec(**(fields | overrides))
