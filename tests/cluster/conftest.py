"""The local Ray cluster of tests/cluster/shared.py: left after each module, stopped (by the PIDs
it started) at the end of the session."""

from tests.cluster.fixtures import _host_network, _ray_cluster_stopped  # noqa: F401
