"""Sandboxes on the nodes of a Ray cluster (`labcoat run ... --cluster ADDRESS`).

Import-light: Ray itself loads only when a provider starts (`pip install 'labcoat[ray]'`).

* `provider.py`  RayProvider: joins the cluster, places one actor per sandbox, recycles actors
* `sandbox.py`   RaySandbox: labcoat's side of a sandbox on a node; cluster failures as
                 `SandboxUnavailable`
* `host.py`      SandboxHost: the actor on the node, wrapping the node's Docker sandbox
* `direct.py`    each sandbox's direct line for commands (TCP to its actor, token first):
                 exec without a Ray call
* `nodes.py`     which nodes may hold sandboxes, what fits, lost nodes; tasks pinned to a node
* `wire.py`      what crosses the network: pydantic models, archives checked by sha256
* `address.py`   the forms of `--cluster ADDRESS`; joining with one message when it fails
* `ops.py`       `labcoat doctor --cluster` and `labcoat sandbox cleanup --cluster`
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labcoat.sandboxes.ray.provider import RayProvider
    from labcoat.sandboxes.ray.sandbox import RaySandbox

__all__ = ["RayProvider", "RaySandbox"]

_LAZY = {
    "RayProvider": "labcoat.sandboxes.ray.provider",
    "RaySandbox": "labcoat.sandboxes.ray.sandbox",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'labcoat.sandboxes.ray' has no attribute {name!r}")
