"""`labcoat view` and `labcoat export` at the command line: nothing to show is a page that says
so, bad input is one message and exit 2 with nothing written, a missing extra names its pip
install."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.loop.conftest import labcoat
from tests.views.synth import journal_run


def _page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


@pytest.mark.slow
def test_no_runs_folder_is_a_page_not_a_traceback(tmp_path: Path, viewer: Any) -> None:
    v = viewer(Path("runs"), cwd=tmp_path)  # the default folder, which does not exist
    text = _page(v.url)
    assert "There is no folder" in text and "labcoat run EXPERIMENT_DIR" in text
    (tmp_path / "runs").mkdir()
    assert "holds no runs yet" in _page(v.url)
    journal_run(tmp_path / "runs" / "first", 1)
    assert "/runs/first/" in _page(v.url)  # a run started meanwhile appears
    v.stop()
    assert "Traceback" not in v.stderr and v.proc.returncode == 130


@pytest.mark.slow
def test_a_single_run_directory_opens_on_its_page(tmp_path: Path, viewer: Any) -> None:
    run_dir = journal_run(tmp_path / "only-run", 1)
    v = viewer(run_dir)
    with urllib.request.urlopen(v.url, timeout=30) as response:
        assert response.url.endswith("/runs/only-run/")
        assert "synth" in response.read().decode()


@pytest.mark.slow
def test_open_starts_the_browser_on_the_url(tmp_path: Path, viewer: Any) -> None:
    journal_run(tmp_path / "runs" / "run-a", 1)
    opened = tmp_path / "opened.txt"
    # Python's webbrowser runs $BROWSER with the URL for %s: here, a command that writes it down.
    browser = f"{sys.executable} -c \"import sys; open('{opened}', 'w').write(sys.argv[1])\" %s"
    v = viewer(tmp_path / "runs", "--open", env={"BROWSER": browser})
    for _ in range(100):
        if opened.exists() and opened.read_text():
            break
        time.sleep(0.1)
    assert opened.read_text() == v.url


@pytest.mark.slow
def test_a_port_in_use_is_one_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = labcoat("view", str(tmp_path), "--port", str(taken.getsockname()[1]))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("labcoat: error:") == 1 and "--port" in proc.stderr


@pytest.mark.slow
def test_export_refuses_bad_places(tmp_path: Path) -> None:
    run_dir = journal_run(tmp_path / "run", 1)
    before = sorted(p.name for p in run_dir.rglob("*"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("mine")
    cases = [(tmp_path, tmp_path / "out", "not a run directory"),
             (run_dir, run_dir / "site", "inside the run directory"),
             (run_dir, tmp_path / "busy", "not empty")]
    for target, dest, says in cases:
        proc = labcoat("view", str(target), "--export", str(dest))
        assert proc.returncode == 2 and says in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in run_dir.rglob("*")) == before
    assert not (tmp_path / "out").exists() and (tmp_path / "busy" / "thesis.tex").exists()
    first = labcoat("view", str(run_dir), "--export", str(tmp_path / "site"))
    again = labcoat("view", str(run_dir), "--export", str(tmp_path / "site"))
    assert first.returncode == again.returncode == 0, again.stderr  # an export replaces one


def test_mlflow_export_without_mlflow_names_the_pip_install(tmp_path: Path) -> None:
    run_dir = journal_run(tmp_path / "run", 1)
    hide = ("import sys; sys.modules['mlflow'] = None; sys.argv = ['labcoat', 'export', "
            f"{str(run_dir)!r}, '--mlflow']; from labcoat.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("labcoat: error: exporting to MLflow needs MLflow, an "
                                   "optional extra: pip install 'labcoat[mlflow]'")
    assert not (tmp_path / "mlruns").exists()
    bare = labcoat("export", str(run_dir))
    assert bare.returncode == 2 and "--mlflow" in bare.stderr
