"""Shared fixtures. Real Docker, real git, real HTTP servers on 127.0.0.1: no mocks of our own code.

No real model request can happen by accident: provider keys are removed and the SDKs' base URLs
point at a closed local port, so a stray call fails loudly with a connection error.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_CLOSED_PORT_URL = "http://127.0.0.1:9/"
PLUGIN_DIR = Path(__file__).resolve().parent / "plugin_pkg"
_EXISTING: set[str] = set()
"""labcoat containers that existed before this session (another session's are not ours)."""


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


@pytest.fixture(scope="session")
def test_plugin() -> str:
    """Install tests/plugin_pkg (distribution `labcoat-test-plugin`, entry-point group
    `labcoat.roles`) into this venv, editable, unless it already is."""
    try:
        importlib.metadata.distribution("labcoat-test-plugin")
    except importlib.metadata.PackageNotFoundError:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(PLUGIN_DIR)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"installing the test plugin failed:\n{proc.stderr}"
        importlib.invalidate_caches()
    try:
        importlib.import_module("labcoat_test_plugin")
    except ImportError:  # an editable install's path hook only loads at interpreter start
        sys.path.insert(0, str(PLUGIN_DIR))
    return "labcoat-test-plugin"


@contextlib.contextmanager
def _engine() -> Iterator[object | None]:
    """A short-lived client (closed after use), or None when the engine is down."""
    try:
        from labcoat.sandboxes.engine import connect

        client = connect(timeout_s=3)
    except Exception:
        yield None
        return
    try:
        yield client
    finally:
        client.close()


def _labcoat_containers(client: object | None) -> list[object]:
    if client is None:
        return []
    return client.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": "labcoat.run_id"}, ignore_removed=True)


def _ours(container: object) -> bool:
    """Made during this session by this process or by a labcoat process that has ended."""
    if container.id in _EXISTING:  # type: ignore[attr-defined]
        return False
    pid = int(container.labels.get("labcoat.pid", "0") or 0)  # type: ignore[attr-defined]
    if pid in (0, os.getpid()):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def pytest_sessionstart(session: pytest.Session) -> None:
    with _engine() as client:
        _EXISTING.update(c.id for c in _labcoat_containers(client))  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the suite when it left a container with a labcoat label behind."""
    if os.environ.get("LABCOAT_SKIP_LEAK_CHECK"):
        return
    with _engine() as client:
        left = [c for c in _labcoat_containers(client) if _ours(c)]
        if left:
            names = ", ".join(f"{c.name}({c.labels.get('labcoat.run_id')})" for c in left)
            print(f"\nlabcoat: containers left behind by the suite: {names}")
            for c in left:
                c.remove(force=True)
            session.exitstatus = 1
