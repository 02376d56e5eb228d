"""The console script serves plain `status`/`log` without loading the CLI framework, and hands
everything else to typer unchanged."""

from __future__ import annotations

import subprocess
import sys

import pytest

from labcoat.entry import fast_path


@pytest.mark.parametrize("argv", [
    [], ["status"], ["status", "--help"], ["status", "run", "--verbose"], ["run", "x"],
    ["log", "run", "-f", "--json"], ["status", "run", "--json", "--json"],
])
def test_anything_unusual_goes_to_typer(argv: list[str]) -> None:
    assert fast_path(argv) is None


def test_fast_status_reports_a_missing_run_clearly(tmp_path: object, capsys: object) -> None:
    assert fast_path(["status", "/nonexistent/run"]) == 2  # bad input, as for `resume`
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "is not a run directory" in err and "Traceback" not in err


def test_status_and_log_load_no_cli_framework_nor_heavy_libraries() -> None:
    code = ("import sys\nfrom labcoat.entry import fast_path\nfast_path(['status', '/nope'])\n"
            "fast_path(['log', '/nope'])\n"
            "print(sorted(m for m in ('typer', 'rich', 'docker', 'langgraph', 'optuna', 'git',"
            " 'anthropic', 'openai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().endswith("[]"), out
