"""Agent output reaches a person's terminal inert: escape sequences, carriage returns, rich
markup and invalid bytes from a sandbox are shown, never obeyed (`labcoat log`, `status`,
`report`, live progress, `roles`).

The run is written through the real Journal; the commands run as a person types them.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from labcoat.agents.role import Subtask
from labcoat.log import Journal, read_events
from labcoat.views.progress import Progress

LABCOAT = str(Path(sys.executable).with_name("labcoat"))
PAYLOAD = ("\x1b]0;pwned\x07\x1b[2J\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\"
           "\x1b[32mall tests passed\x1b[0m\rFAKE\x9b2J\u202eexe.txt "
           + b"\xff".decode("utf-8", "surrogateescape"))
ROLE = "[red]engineer[/red]"


def hostile_run(run_dir: Path) -> None:
    """A run whose every agent-written field carries the payload."""
    sub = Subtask(id="it001-01", iteration=1, role=ROLE, instructions=PAYLOAD, base_commit="c0")
    with Journal.open(run_dir, "r1", create=True) as j:
        j.append("run_started", config={"goal": PAYLOAD}, experiment={
            "name": "x", "metric": {"name": "acc", "direction": "maximize"}},
            experiment_dir="e", experiment_hash="e", grader_hash="g", labcoat_version="0",
            seed=0, brain="search", base_commit="c0")
        plan = j.append("plan_proposed", iteration=1, subtasks=[sub], rationale=PAYLOAD)
        j.append("subtask_started", parent=plan.id, subtask_id=sub.id, role=ROLE, attempt=1,
                 base_commit="c0")
        j.append("sandbox_exec", subtask_id=sub.id, cmd=PAYLOAD, returncode=1, duration_s=0.1,
                 stdout_tail=PAYLOAD, stderr_tail=PAYLOAD)
        j.append("subtask_finished", subtask_id=sub.id, role=ROLE, summary=PAYLOAD,
                 tree="t" * 40, changed=True)
        j.append("graded", subtask_id=sub.id, commit="1" * 40, seed=0, ok=False, error=PAYLOAD)
        j.append("subtask_failed", subtask_id="it001-02", role=ROLE, error=PAYLOAD)
        j.append("run_paused", reason=PAYLOAD)


def assert_inert(text: str) -> None:
    controls = [c for c in text if (ord(c) < 0x20 and c not in "\n\t")
                or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 or c == "\u202e"]
    assert not controls, f"raw control characters reached the terminal: {controls!r}"


def labcoat(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([LABCOAT, *args], capture_output=True, timeout=60)


@pytest.mark.slow
def test_log_status_and_report_show_escapes_instead_of_obeying_them(tmp_path: Path) -> None:
    run = tmp_path / "run"
    hostile_run(run)
    shown = {}
    for verb in ("log", "status", "report"):
        proc = labcoat(verb, str(run))
        assert proc.returncode == 0, proc.stderr
        shown[verb] = proc.stdout.decode("utf-8")  # strict: no invalid bytes reach a terminal
        if verb != "report":  # it prints the path of report.md, read below
            assert_inert(shown[verb])
    assert "\\x1b[32mall tests passed\\x1b[0m" in shown["log"]
    assert "\\x1b]0;pwned\\x07" in shown["status"] and "\\x0dFAKE" in shown["status"]
    report = (run / "report.md").read_text(encoding="utf-8")
    assert_inert(report)
    assert "\\x1b[2J" in report and "\\udcff" in report


def test_live_progress_shows_events_inert_and_names_never_as_markup(tmp_path: Path) -> None:
    run = tmp_path / "run"
    hostile_run(run)
    events = read_events(run)
    plain = io.StringIO()
    with Progress(metric="acc", stream=plain, live=False) as progress:
        for event in events:
            progress.on_event(event)
    assert_inert(plain.getvalue())
    assert "\\x1b[32mall tests passed" in plain.getvalue()
    panel = io.StringIO()
    with Progress(metric="acc", stream=panel, live=True) as progress:
        progress.on_event(events[2])  # subtask_started: the role name is shown as running
    assert_inert(panel.getvalue())
    assert ROLE in panel.getvalue()  # shown as written, not read as rich markup


def test_roles_listing_shows_descriptions_inert(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    (exp / "roles").mkdir(parents=True)
    (exp / "roles" / "loud.md").write_text(
        '---\nname: loud\ndescription: "\\e[31mred\\e[0m \\e]0;title\\a"\n---\nbody\n')
    proc = labcoat("roles", str(exp))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode("utf-8")
    assert_inert(out)
    assert "\\x1b[31mred" in out
