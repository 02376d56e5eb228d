"""Shared fixtures. Real Docker, real git, real HTTP servers on 127.0.0.1: no mocks of our own code.

No real model request can happen by accident: provider keys are removed and the SDKs' base URLs
point at a closed local port, so a stray call fails loudly with a connection error.

Docker. A test that needs the engine carries the `docker` marker: set here for every test using
the `docker_client` / `sandbox_image` fixtures (directly or through another fixture), written
out where a test runs `labcoat run` in a subprocess. `pytest -m "not docker"` (`make test-fast`)
then never contacts an engine, not even for the container leak check. When docker tests are
selected and the engine is down, each of them fails at once with one message (never a skip).

Parallel runs (`make test` uses pytest-xdist, test files spread over workers): the container leak
check runs once, in the controlling process after every worker has ended, so one worker never
mistakes another's live or just-killed run for a leak.
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
DOCKER_FIXTURES = frozenset({"docker_client", "sandbox_image"})
_EXISTING: set[str] = set()
"""labcoat containers that existed before this session (another session's are not ours)."""
_ENGINE_DOWN: list[str] = []
"""Why the engine is unreachable (empty when it answered, or when no docker test was selected)."""


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
    with _install_lock():
        _install_test_plugin()
    try:
        importlib.import_module("labcoat_test_plugin")
    except ImportError:  # an editable install's path hook only loads at interpreter start
        sys.path.insert(0, str(PLUGIN_DIR))
    return "labcoat-test-plugin"


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """Parallel workers install the plugin one at a time (pip into one venv is not atomic)."""
    import fcntl

    with open(Path(sys.prefix) / ".labcoat-test-plugin.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _install_test_plugin() -> None:
    importlib.invalidate_caches()
    try:
        importlib.metadata.distribution("labcoat-test-plugin")
    except importlib.metadata.PackageNotFoundError:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(PLUGIN_DIR)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"installing the test plugin failed:\n{proc.stderr}"
        importlib.invalidate_caches()


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


LONGEST_FIRST = (
    "tests/scheduler/test_pipeline.py", "tests/loop/test_run.py", "tests/llm/test_llm_run.py",
    "tests/loop/test_resume.py", "tests/research/test_claims_run.py",
    "tests/sandboxes/test_conformance.py", "tests/loop/test_disk_full.py",
    "tests/cluster/test_cluster_run.py", "tests/steering/test_approval.py",
    "tests/loop/test_bad_runs.py", "tests/steering/test_llm.py", "tests/loop/test_hostile_runs.py",
    "tests/steering/test_stop.py", "tests/scheduler/test_capacity.py",
    "tests/loop/test_disk_limits.py", "tests/sandboxes/test_hostile.py",
)
"""Test files that take a minute or more, longest first (measured with --durations). pytest-xdist
hands files to workers in collection order: starting the long ones first keeps the last minutes
of `make test` from waiting on one worker."""


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if DOCKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable


def _needs_docker(session: pytest.Session) -> bool:
    return any(item.get_closest_marker("docker") for item in session.items)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _is_controller(config: pytest.Config) -> bool:
    """The process that drives xdist workers (it collects and runs no tests itself)."""
    return not _is_worker(config) and config.pluginmanager.hasplugin("dsession")


def _docker_deselected(config: pytest.Config) -> bool:
    return "not docker" in (config.getoption("markexpr", "") or "")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist, the controller notes the containers that predate the session."""
    if _is_controller(session.config) and not _docker_deselected(session.config):
        _note_existing()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Only a session that selected docker tests contacts the engine (once, here)."""
    if not _needs_docker(session):
        return
    _note_existing()


def _note_existing() -> None:
    try:
        from labcoat.sandboxes.engine import connect

        client = connect(timeout_s=10)
    except Exception as err:
        _ENGINE_DOWN.append(str(err))
        return
    try:
        _EXISTING.update(c.id for c in _labcoat_containers(client))  # type: ignore[attr-defined]
    finally:
        client.close()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A docker test with the engine down fails (loudly, at once), it is never skipped."""
    if _ENGINE_DOWN and item.get_closest_marker("docker"):
        pytest.fail(f"needs Docker: {_ENGINE_DOWN[0]}\n(`make test-fast` runs the tests that "
                    "need no engine)", pytrace=False)


@pytest.hookimpl(trylast=True)  # under xdist: after the workers have ended
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the suite when it left a container with a labcoat label behind."""
    if os.environ.get("LABCOAT_SKIP_LEAK_CHECK") or _ENGINE_DOWN or _is_worker(session.config):
        return
    if _is_controller(session.config):
        if _docker_deselected(session.config):
            return
    elif not _needs_docker(session):
        return
    with _engine() as client:
        left = [c for c in _labcoat_containers(client) if _ours(c)]
        if left:
            names = ", ".join(f"{c.name}({c.labels.get('labcoat.run_id')})" for c in left)
            print(f"\nlabcoat: containers left behind by the suite: {names}")
            for c in left:
                c.remove(force=True)
            session.exitstatus = 1
