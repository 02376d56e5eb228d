"""Foundation: the built image runs as non-root with no network; doctor and build fail clearly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labcoat.sandboxes.image import tree_hash

LABCOAT = str(Path(sys.executable).with_name("labcoat"))
DOWN = {"DOCKER_HOST": "unix:///nonexistent/labcoat-test.sock"}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([LABCOAT, *args], capture_output=True, text=True, env=full_env,
                          timeout=60)


def test_image_runs_non_root_without_network(docker_client, sandbox_image: str) -> None:
    out = docker_client.containers.run(  # type: ignore[attr-defined]
        sandbox_image,
        ["sh", "-c", "id -u; ls /sys/class/net; python3 -c 'import sklearn, numpy'"],
        network_mode="none", remove=True, labels={"labcoat.run_id": "test-foundation"},
    ).decode()
    uid, *interfaces = out.split()
    assert uid == "10001"
    assert interfaces == ["lo"]


def test_doctor_names_every_missing_piece_when_engine_down() -> None:
    start = time.monotonic()
    proc = run_cli("doctor", env=DOWN)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    assert "[FAIL] docker engine" in proc.stdout and "/nonexistent/labcoat-test.sock" in proc.stdout
    assert "[FAIL] sandbox image" in proc.stdout
    assert proc.stdout.count("fix:") >= 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert elapsed < 10


def test_doctor_passes_with_engine_and_image(sandbox_image: str) -> None:
    proc = run_cli("doctor")
    assert proc.returncode == 0, proc.stdout
    assert sandbox_image in proc.stdout


def test_sandbox_build_with_engine_down_fails_with_one_message() -> None:
    proc = run_cli("sandbox", "build", env=DOWN)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Docker engine not reachable" in lines[0], proc.stderr
    assert "dockerd" in lines[0]


def test_sandbox_build_reuses_current_image(sandbox_image: str) -> None:
    proc = run_cli("sandbox", "build")
    assert proc.returncode == 0
    assert f"{sandbox_image} is up to date" in proc.stdout


def test_tree_hash_follows_content(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = tree_hash(tmp_path)
    assert tree_hash(tmp_path) == first
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    assert tree_hash(tmp_path) != first


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["sandbox", "--help"]])
def test_help_needs_no_heavy_imports(args: list[str]) -> None:
    code = (
        "import sys\nfrom labcoat.cli import app\n"
        f"try:\n    app({args!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('docker', 'langgraph', 'anthropic', 'openai', 'optuna', 'git')"
        " if m in sys.modules]\nprint('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "HEAVY []" in out
