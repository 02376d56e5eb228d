"""Field types of experiment.yaml: sizes, parameter and role names, model specs, output paths.

Each `Annotated` type validates one kind of value and says how to fix a bad one. The
environment a trial sees (`trial_env`) lives here too: its names are the parameter names'.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints

PARAM_ENV_PREFIX = "LABCOAT_PARAM_"
SEED_ENV = "LABCOAT_SEED"
_ENV_SUFFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")
_MODEL_SPEC = re.compile(r"^(search|[a-z][a-z0-9_-]*:\S.*)$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNIT_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}
MAX_MEMORY_MB = 1 << 30
"""1 PiB: no host has more; a bigger figure is a typo (the host's own size is checked at start)."""


def parse_memory(value: object) -> int:
    """`"512m"`, `"2g"`, `"1.5GiB"` or a bare number of MB -> whole MB."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a size; fix: write a size like 512m or 2g")
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a size; fix: write a size like 512m or 2g")
    mb = float(match.group(1)) * _UNIT_MB[match.group(2).lower()]
    if mb < 16:
        raise ValueError(f"{value!r} is under 16 MB; fix: give the sandbox at least 64m")
    if mb > MAX_MEMORY_MB:
        raise ValueError(f"{value!r} is over 1 PB; fix: write a size like 512m or 2g")
    return int(mb)


def _check_param_name(name: str) -> str:
    if not _ENV_SUFFIX.fullmatch(name):
        raise ValueError(
            f"parameter name {name!r} cannot be part of an environment variable "
            f"({PARAM_ENV_PREFIX}<NAME>); fix: use letters, digits and _ only, e.g. "
            f"{re.sub(r'[^A-Za-z0-9_]', '_', name) or 'param'!r}"
        )
    return name


def _check_role_name(name: str) -> str:
    if not _ROLE_NAME.match(name):
        raise ValueError(f"{name!r} is not a role name; fix: use a short name like `engineer`"
                         " or a dotted path like `package.module:Class`")
    return name


def _check_model_spec(spec: str) -> str:
    if not _MODEL_SPEC.match(spec):
        raise ValueError(f"{spec!r} is not a model spec; fix: write `search`, "
                         "`anthropic:MODEL` or `openai:MODEL`")
    return spec


def _check_output_path(path: str) -> str:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"{path!r} leaves the workspace; fix: give a path relative to "
                         "/workspace, e.g. `model.pkl` or `out/`")
    return path


Command = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
MemoryMB = Annotated[int, BeforeValidator(parse_memory)]
ParamName = Annotated[str, AfterValidator(_check_param_name)]
RoleName = Annotated[str, AfterValidator(_check_role_name)]
ModelSpec = Annotated[str, AfterValidator(_check_model_spec)]
OutputPath = Annotated[str, StringConstraints(min_length=1), AfterValidator(_check_output_path)]
Choice = str | int | float | bool | None


def env_name_clashes(names: object) -> list[str]:
    """Parameter names that become the same LABCOAT_PARAM_<NAME> variable."""
    upper: dict[str, str] = {}
    clashes = []
    for name in names if isinstance(names, dict) else ():
        other = upper.setdefault(str(name).upper(), str(name))
        if other != name:
            clashes.append(f"parameters {other!r} and {name!r} both become "
                           f"{PARAM_ENV_PREFIX}{str(name).upper()}; fix: rename one")
    return clashes


MAX_ENV_VALUE = 16 * 1024
"""Longer parameter values reach the trial through params.json only."""
MAX_ENV_TOTAL = 128 * 1024
"""The parameters' share of a command's environment (Linux refuses to exec past ~2 MB)."""


def trial_env(params: Mapping[str, Any], seed: int) -> dict[str, str]:
    """`LABCOAT_SEED` and one `LABCOAT_PARAM_<NAME>` per parameter (strings verbatim, else JSON).

    params.json may come from an agent: a parameter that cannot be an environment variable
    (a name such as `a=b`, a NUL byte, a value over `MAX_ENV_VALUE`, the total over
    `MAX_ENV_TOTAL`) is left out of the environment, and stays in params.json, where the
    trial reads it. It never reaches the exec call, which would refuse the whole command.
    """
    env, total = {SEED_ENV: str(seed)}, 0
    for name, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if not _env_safe(name, text):
            continue
        total += len(name) + len(text)
        if len(text) <= MAX_ENV_VALUE and total <= MAX_ENV_TOTAL:
            env[PARAM_ENV_PREFIX + name.upper()] = text
    return env


def _env_safe(name: object, value: str) -> bool:
    """A name exec takes as a variable name and a value it takes as a value."""
    if not (isinstance(name, str) and _ENV_SUFFIX.fullmatch(name)) or "\0" in value:
        return False
    try:
        value.encode("utf-8")  # a lone surrogate (JSON's "\ud800") is no text an OS can take
    except UnicodeEncodeError:
        return False
    return True
