"""The experiment: experiment.yaml's models, the folder around it, and role files.

A leaf: it imports nothing of labcoat but `errors`, `text` and `treehash`. Users import from
here::

    from labcoat.experiment import Experiment, ExperimentSpec, load_experiment
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labcoat.lazy import lazy_exports

if TYPE_CHECKING:
    from labcoat.experiment.fields import (
        PARAM_ENV_PREFIX,
        SEED_ENV,
        parse_memory,
        trial_env,
    )
    from labcoat.experiment.load import (
        SPEC_FILE,
        Experiment,
        experiment_from_log,
        experiment_hash,
        grader_hash,
        load_experiment,
    )
    from labcoat.experiment.metric import (
        beats,
        best_value,
        gain,
        sign,
    )
    from labcoat.experiment.rolefile import (
        RoleFile,
        read_role_file,
        scan_role_files,
    )
    from labcoat.experiment.spec import (
        ClaimSpec,
        CriticSpec,
        ExperimentSpec,
        MetricSpec,
        ResourcesSpec,
        SearchParam,
        baseline_params,
    )

_LAZY = {
    "PARAM_ENV_PREFIX": "labcoat.experiment.fields",
    "SEED_ENV": "labcoat.experiment.fields",
    "parse_memory": "labcoat.experiment.fields",
    "trial_env": "labcoat.experiment.fields",
    "SPEC_FILE": "labcoat.experiment.load",
    "Experiment": "labcoat.experiment.load",
    "experiment_from_log": "labcoat.experiment.load",
    "experiment_hash": "labcoat.experiment.load",
    "grader_hash": "labcoat.experiment.load",
    "load_experiment": "labcoat.experiment.load",
    "beats": "labcoat.experiment.metric",
    "best_value": "labcoat.experiment.metric",
    "gain": "labcoat.experiment.metric",
    "sign": "labcoat.experiment.metric",
    "RoleFile": "labcoat.experiment.rolefile",
    "read_role_file": "labcoat.experiment.rolefile",
    "scan_role_files": "labcoat.experiment.rolefile",
    "ClaimSpec": "labcoat.experiment.spec",
    "CriticSpec": "labcoat.experiment.spec",
    "ExperimentSpec": "labcoat.experiment.spec",
    "MetricSpec": "labcoat.experiment.spec",
    "ResourcesSpec": "labcoat.experiment.spec",
    "SearchParam": "labcoat.experiment.spec",
    "baseline_params": "labcoat.experiment.spec",
}

__all__ = [
    "PARAM_ENV_PREFIX",
    "SEED_ENV",
    "SPEC_FILE",
    "ClaimSpec",
    "CriticSpec",
    "Experiment",
    "ExperimentSpec",
    "MetricSpec",
    "ResourcesSpec",
    "RoleFile",
    "SearchParam",
    "baseline_params",
    "beats",
    "best_value",
    "experiment_from_log",
    "experiment_hash",
    "gain",
    "grader_hash",
    "load_experiment",
    "parse_memory",
    "read_role_file",
    "scan_role_files",
    "sign",
    "trial_env",
]


__getattr__ = lazy_exports(__name__, _LAZY)
