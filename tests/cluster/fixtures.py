"""The shared local Ray cluster's fixtures (tests/cluster/shared.py), for every conftest whose
tests may use it: the main thread leaves the cluster's network namespace after each module, and
the cluster is stopped (by the PIDs it started) at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def _host_network() -> Iterator[None]:
    yield
    from tests.cluster import shared

    shared.leave()


@pytest.fixture(scope="session", autouse=True)
def _ray_cluster_stopped() -> Iterator[None]:
    yield
    from tests.cluster import shared

    shared.stop()
