"""`labcoat note / approve / reject / stop` as real processes against run directories written
through the real Journal (no Docker): what they record, what they refuse (exit 2, the log left
byte for byte), and the inbox that carries a request to the process holding the log."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from labcoat.log import Journal, load_state, read_events
from labcoat.orchestrator import inbox
from labcoat.orchestrator.inbox import Request
from labcoat.orchestrator.steering import settle, take_in_journal
from tests.loop.conftest import LABCOAT, labcoat
from tests.steering.helpers import digest, make_run


@pytest.mark.slow
@pytest.mark.parametrize(("args", "says"), [
    (["approve", "{run}"], "no plan is waiting for approval"),
    (["reject", "{run}", "--reason", "no"], "no plan is waiting for approval"),
    (["stop", "{run}"], "nothing to stop"),
    (["note", "{run}", "   "], "the note is empty"),
])
def test_refused_requests_write_nothing(tmp_path: Path, args: list[str], says: str) -> None:
    run = tmp_path / "run"
    make_run(run, waiting=False)
    before = digest(run / "log.jsonl")
    proc = labcoat(*[a.format(run=run) for a in args])
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("labcoat: error:")]
    assert len(errors) == 1 and says in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert digest(run / "log.jsonl") == before and not (run / "inbox").exists()


@pytest.mark.slow
def test_a_note_to_a_run_directory_that_does_not_exist(tmp_path: Path) -> None:
    proc = labcoat("note", str(tmp_path / "nope"), "hello")
    assert proc.returncode == 2 and "is not a run directory" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "nope").exists()


@pytest.mark.slow
def test_approve_only_an_unknown_subtask_writes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    ids = make_run(run)
    before = digest(run / "log.jsonl")
    proc = labcoat("approve", str(run), "--only", f"{ids[0]},it009-09")
    assert proc.returncode == 2, proc.stderr
    assert "--only names it009-09, which is not waiting" in proc.stderr
    assert ", ".join(ids) in proc.stderr, "says which subtasks wait"
    assert digest(run / "log.jsonl") == before
    empty = labcoat("reject", str(run), "--reason", "")
    assert empty.returncode == 2 and "needs a reason" in empty.stderr
    assert digest(run / "log.jsonl") == before


@pytest.mark.slow
def test_decisions_taken_while_no_process_runs_are_recorded(tmp_path: Path) -> None:
    run = tmp_path / "run"
    ids = make_run(run)
    proc = labcoat("approve", str(run), "--only", ids[1])
    assert proc.returncode == 0 and "approval_decided" in proc.stdout, proc.stderr
    state = load_state(run)
    assert state.pending_approval is None
    assert [state.subtasks[i].status for i in ids] == ["declined", "planned", "declined"]
    again = labcoat("approve", str(run))
    assert again.returncode == 2 and "no plan is waiting" in again.stderr


@pytest.mark.slow
def test_notes_sent_at_once_are_all_kept_in_order(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    procs = [subprocess.Popen([LABCOAT, "note", str(run), f"note from sender {k}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    # the one that held the log, and those that took in what waited when it let go
    assert all("recorded" in out for out, _ in outs), outs
    later = labcoat("note", str(run), "the last word")
    assert later.returncode == 0, later.stderr
    notes = [e for e in read_events(run) if e.type == "note_added"]
    texts = [e.text for e in notes]
    assert sorted(texts[:3]) == [f"note from sender {k}" for k in range(3)]
    assert texts[3] == "the last word" and len(texts) == 4
    assert [n.number for n in load_state(run).notes] == [1, 2, 3, 4]
    assert not any((run / "inbox").glob("*.json"))


@pytest.mark.slow
def test_a_request_reaches_the_process_that_holds_the_log(tmp_path: Path) -> None:
    """The test holds the lock like a live run: `labcoat note` posts to the inbox, the holder
    takes it in, and the command says it was recorded."""
    run = tmp_path / "run"
    make_run(run)
    with Journal.open(run, create=False) as journal:
        proc = subprocess.Popen([LABCOAT, "note", str(run), "look at the data loader"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not inbox.has_requests(run) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert take_in_journal(journal) == 1
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "by the process that holds the run" in out, err
    assert [e.text for e in read_events(run) if e.type == "note_added"] == [
        "look at the data loader"]


def test_a_request_is_taken_in_once_whatever_dies_in_between(tmp_path: Path) -> None:
    """The writer appended a request's event and died before it deleted the file: the next
    writer finds the id in the log and only deletes the file."""
    run = tmp_path / "run"
    make_run(run)
    request = Request(kind="note", text="once")
    with Journal.open(run, create=False) as journal:
        inbox.post(run, request)
        journal.append("note_added", text="once", request=request.id)  # then "died"
    assert inbox.has_requests(run)
    settle(run)
    assert not inbox.has_requests(run)
    assert [e.text for e in read_events(run) if e.type == "note_added"] == ["once"]


@pytest.mark.slow
def test_a_file_that_is_no_request_is_set_aside(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    (run / "inbox").mkdir()
    (run / "inbox" / "00000000000000000001-junk.json").write_text('{"kind": "launch"}')
    proc = labcoat("note", str(run), "still works")
    assert proc.returncode == 0, proc.stderr
    assert "is not a request" in proc.stderr and "Traceback" not in proc.stderr
    assert (run / "inbox" / "refused" / "00000000000000000001-junk.json").exists()
    assert [e.text for e in read_events(run) if e.type == "note_added"] == ["still works"]
