"""Shared fixtures. Real Docker, real git, real HTTP servers on 127.0.0.1: no mocks of our own code.

No real model request can happen by accident: provider keys are removed and the SDKs' base URLs
point at a closed local port, so a stray call fails loudly with a connection error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

_CLOSED_PORT_URL = "http://127.0.0.1:9/"


@pytest.fixture(autouse=True)
def _no_real_model_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", _CLOSED_PORT_URL)
    monkeypatch.setenv("OPENAI_BASE_URL", _CLOSED_PORT_URL + "v1")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    """A live engine client. Fails (not skips) when the engine is down: `make test` brings it up."""
    from labcoat.sandboxes.engine import connect

    client = connect()
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: object) -> str:
    from labcoat.sandboxes.image import default_image, image_exists

    tag = default_image()
    assert image_exists(docker_client, tag), f"{tag} missing: run `labcoat sandbox build`"
    return tag


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the suite when a container with a labcoat label is left behind."""
    if os.environ.get("LABCOAT_SKIP_LEAK_CHECK"):
        return
    try:
        from labcoat.sandboxes.engine import connect

        client = connect(timeout_s=3)
    except Exception:
        return
    left = client.containers.list(all=True, filters={"label": "labcoat.run_id"})
    if left:
        names = ", ".join(f"{c.name}({c.labels.get('labcoat.run_id')})" for c in left)
        print(f"\nlabcoat: containers left behind by the suite: {names}")
        for c in left:
            c.remove(force=True)
        session.exitstatus = 1
