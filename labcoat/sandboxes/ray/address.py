"""Joining a Ray cluster: the forms of `--cluster ADDRESS`, and one message when it fails.

* `ray://HOST:PORT`: Ray Client (the cluster's client server, port 10001 by default); this
  machine need not be a node.
* `HOST:PORT`: the head's GCS address; this machine must be a node of the cluster (`ray start
  --address HOST:PORT` first).
* `auto`: `$RAY_ADDRESS`, else the cluster a local `ray start` made.
* `local`: no cluster: this machine's Docker engine (lets `resume` leave a cluster behind).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from types import ModuleType

from labcoat.errors import ConfigError, SandboxUnavailable, first_line

FORMS = ("ray://HOST:PORT (Ray Client), HOST:PORT (the head's address, from a machine that is a "
         "node), auto ($RAY_ADDRESS or a local `ray start`) or local (this machine's Docker)")
LOCAL = "local"
NAMESPACE = "labcoat"
PROBE_TIMEOUT_S = 5.0
_HOST_PORT = re.compile(r"^(?:ray://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def normalize(address: str | None) -> str | None:
    """The address to join, or None for this machine's Docker; `ConfigError` (exit 2) for
    anything that is not one of `FORMS`."""
    if address is None:
        return None
    text = address.strip()
    if text.lower() in (LOCAL, "none", ""):
        return None
    if text == "auto" or _HOST_PORT.match(text):
        return text
    raise ConfigError(f"--cluster {address!r} is not a Ray cluster address; fix: pass {FORMS}")


def require_ray() -> ModuleType:
    """The `ray` module, or one message with the fix."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--cluster needs Ray, which is not installed here; fix: "
                          "`pip install 'labcoat[ray]'` (on this machine and on every node)"
                          ) from None
    return ray


def connect(address: str) -> bool:
    """Join the cluster at `address` (once per process); True when this call joined it.

    An address that does not answer fails within seconds (Ray itself would retry for minutes).
    """
    ray = require_ray()
    _no_auto_start()
    if ray.is_initialized():
        return False
    target = _resolve(address)
    _probe(target, address)
    try:
        ray.init(address=target, namespace=NAMESPACE, logging_level=logging.WARNING,
                 log_to_driver=False)
    except (Exception, SystemExit) as err:  # Ray exits the process when the GCS never answers
        raise _unreachable(address, err) from None
    return True


def _no_auto_start() -> None:
    """Ray starts a whole local cluster when a call finds no connection; labcoat never wants
    that (a call after `disconnect` must fail, not start Ray on this machine)."""
    with contextlib.suppress(Exception):
        from ray._private import auto_init_hook

        auto_init_hook.enable_auto_connect = False


def _resolve(address: str) -> str:
    if address != "auto":
        return address
    return os.environ.get("RAY_ADDRESS") or "auto"


def _probe(target: str, given: str) -> None:
    """A plain TCP connect to HOST:PORT first: refused or silent means no cluster there."""
    match = _HOST_PORT.match(target)
    if match is None:
        return  # `auto` with no RAY_ADDRESS: Ray finds the local cluster itself
    host, port = match.group(1).strip("[]"), int(match.group(2))
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        raise _unreachable(given, err) from None


def _unreachable(address: str, err: BaseException) -> SandboxUnavailable:
    return SandboxUnavailable(
        f"cannot join the Ray cluster at {address} ({first_line(err)}); fix: start it (`ray "
        "start --head` on the head, `ray start --address HEAD:PORT --resources "
        "'{\"labcoat_sandbox\": 4}'` on each node), check that `ray status --address ...` "
        f"answers from this machine, and pass {FORMS}")


def disconnect() -> None:
    """Leave the cluster (the sandboxes' actors go with this process's connection)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
