"""Sandboxes: where role agents run model-written code.

Import-light: the Docker backend (and the docker SDK) load on first use of `DockerProvider`,
`DockerSandbox` or `WarmPool`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labcoat.sandboxes.base import ExecResult, Mount, Sandbox, SandboxProvider, SandboxSpec

if TYPE_CHECKING:
    from labcoat.sandboxes._sandbox import DockerSandbox
    from labcoat.sandboxes.docker import DockerProvider
    from labcoat.sandboxes.pool import WarmPool

__all__ = [
    "DockerProvider",
    "DockerSandbox",
    "ExecResult",
    "Mount",
    "Sandbox",
    "SandboxProvider",
    "SandboxSpec",
    "WarmPool",
]

_LAZY = {
    "DockerProvider": "labcoat.sandboxes.docker",
    "DockerSandbox": "labcoat.sandboxes._sandbox",
    "WarmPool": "labcoat.sandboxes.pool",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'labcoat.sandboxes' has no attribute {name!r}")
