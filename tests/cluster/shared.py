"""One local two-node Ray cluster shared by the tests of a session, started on first use.

`enter()` starts it if needed and puts the main thread in its network namespace (so that the
Ray connection the test makes, and every process it starts, stays on its loopback); `leave()`
puts the main thread back once no Ray connection is open; `stop()` ends it (by the PIDs it
started) at the end of the session.
"""

from __future__ import annotations

import contextlib

from tests.cluster.local import LocalCluster, Node

_CLUSTER: list[LocalCluster] = []


def enter() -> LocalCluster:
    """The shared cluster (a head and a node `n2-...`, two sandboxes each), namespace entered
    (a second node killed by a test is replaced)."""
    if not _CLUSTER:
        cluster = LocalCluster()
        _CLUSTER.append(cluster)
        cluster.start()
    cluster = _CLUSTER[0]
    cluster.netns.enter()
    if not any(n.name.startswith("n2") and not n.killed for n in cluster.nodes):
        cluster.add_node(f"n2-{len(cluster.nodes)}")  # a test may have killed the last one
    return cluster


def second(cluster: LocalCluster) -> Node:
    """The live second node (`n2-...`)."""
    return next(n for n in cluster.nodes if n.name.startswith("n2") and not n.killed)


def leave() -> None:
    """Back to the host's network namespace, once this process holds no Ray connection."""
    if not _CLUSTER:
        return
    with contextlib.suppress(ImportError):
        import ray

        if ray.is_initialized():
            return
    _CLUSTER[0].netns.leave()


def stop() -> None:
    if _CLUSTER:
        _CLUSTER.pop().stop()
