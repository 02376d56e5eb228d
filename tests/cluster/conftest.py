"""The local Ray cluster of tests/cluster/shared.py: left after each module, stopped (by the PIDs
it started) at the end of the session."""

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
