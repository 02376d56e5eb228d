"""A person in the loop, shown: notes (answered and open), a decided and a waiting approval and a
stop request appear in `labcoat status` (text and --json), `labcoat log`, the report and the
viewer (its data and its page), on a run written through the real Journal (no Docker)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

from fastapi.testclient import TestClient

from labcoat.log import Journal, load_state, read_events
from labcoat.views.render import timeline_line
from labcoat.views.report import render
from labcoat.views.status import print_status
from labcoat.views.web.app import create_app
from tests.steering.helpers import plan, start


def steered_run(run_dir: Path) -> None:
    with Journal.open(run_dir, "run-shown", create=True) as journal:
        start(journal, approve_plans=True)
        journal.append("note_added", text="look at the data loader", request="a" * 32)
        first = plan(journal, 1, "engineer", "engineer", awaiting=True,
                     notes={"1": "the loader first"})
        journal.append("approval_decided", plan=journal.state.pending_approval.plan,
                       decision="approved", approved=first[:1], request="b" * 32)
        journal.append("note_added", text="and the <b>seed</b>", request="c" * 32)
        plan(journal, 2, "engineer", awaiting=True)
        journal.append("stop_requested", now=True, request="d" * 32)


def status_of(run_dir: Path, as_json: bool) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        print_status(run_dir, as_json=as_json)
    return out.getvalue()


def test_status_log_report_and_viewer_show_the_person(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "run-shown"
    steered_run(run_dir)
    text = status_of(run_dir, as_json=False)
    assert "approval  WAITING: iteration 2: it002-01 wait for approval" in text
    assert "decided   iteration 1: approved it001-01 (by command); declined it001-02" in text
    assert "stop      requested (stop --now" in text
    assert "note 1: look at the data loader -> plan of iteration 1: the loader first" in text
    assert "note 2: and the <b>seed</b> (not acted on yet)" in text
    data = json.loads(status_of(run_dir, as_json=True))
    assert data["awaiting_approval"] == ["it002-01"] and data["open_notes"] == 1

    log = "\n".join(timeline_line(e) for e in read_events(run_dir))
    assert "awaiting approval (plans): it001-01, it001-02" in log
    assert "approved (command): it001-01" in log and "look at the data loader" in log
    assert "stop now: cancel the running subtasks" in log

    report = render(load_state(run_dir), diff="", plot=None)
    section = report[report.index("## A person in the loop"):]
    assert "note 1: look at the data loader -> plan of iteration 1" in section
    assert "iteration 1: approved it001-01 (by command); declined it001-02" in section
    assert "iteration 2: it002-01 wait for approval" in section and "stop --now at" in section

    with TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1") as client:
        for _ in range(1000):  # until the viewer has read the log
            page = client.get("/api/runs/run-shown").json()
            if page.get("steering"):
                break
        shown = page["steering"]
        assert [n["answer"] for n in shown["notes"]] == ["the loader first", None]
        assert [(a["status"], a["declined"]) for a in shown["approvals"]] == [
            ("approved", ["it001-02"]), ("waiting", [])]
        assert shown["waiting"] and shown["stops"][0].startswith("stop --now")
        html = client.get("/runs/run-shown").text
    assert 'id="steering"' in html and 'id="approval-waiting"' in html
    assert "and the &lt;b&gt;seed&lt;/b&gt;" in html and "<b>seed</b>" not in html
