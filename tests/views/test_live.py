"""A page open on a running run follows the log: events appended by the real Journal show up
within a second, through server-sent events, without a reload; a partial last line waits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labcoat.log import Journal
from tests.views.conftest import wait_until
from tests.views.synth import NoSync, append, records, subtask

LIVE_S = 1.0
"""The promise: an appended event is on the page within a second."""


def _live_run(run_dir: Path) -> Journal:
    journal = Journal.open(run_dir, "synth-run", create=True, ops=NoSync())
    append(journal, records(2, finish=False))
    return journal


@pytest.mark.slow
def test_running_run_updates_without_a_reload(tmp_path: Path, viewer: Any, page: Any) -> None:
    run_dir = tmp_path / "runs" / "live-run"
    journal = _live_run(run_dir)
    try:
        v = viewer(tmp_path / "runs")
        page.goto(f"{v.url}runs/live-run/")
        wait_until(page, "document.querySelector('#live-dot') !== null")
        page.evaluate("window.__same_page = 42")
        before = int(page.locator("#event-count").inner_text())
        rows = page.locator("table.subtasks tbody tr").count()
        page.wait_for_timeout(500)  # the event stream is open
        append(journal, [{"type": "plan_proposed", "iteration": 3, "rationale": "one more",
                          "subtasks": [{"id": "it003-01", "iteration": 3, "role": "engineer",
                                        "instructions": "go", "base_commit": "0" * 40}]}])
        added = list(subtask(3, "it003-01", "0" * 40, "a" * 40, 0.99, calls=1))
        append(journal, added)
        took = wait_until(page, "document.querySelector('#event-count').textContent == "
                                f"'{before + 1 + len(added)}'")
        assert took <= LIVE_S, f"the page took {took:.2f} s to show the new events"
        assert page.locator("table.subtasks tbody tr").count() == rows + 1
        assert page.evaluate("window.__same_page") == 42  # swapped in place, never reloaded
        assert page.locator('svg.chart a.point[data-subtask="it003-01"]').count() == 1
    finally:
        journal.close()


@pytest.mark.slow
def test_a_partial_last_line_waits_for_the_writer(tmp_path: Path, viewer: Any,
                                                  page: Any) -> None:
    run_dir = tmp_path / "runs" / "torn-run"
    _live_run(run_dir).close()
    log = run_dir / "log.jsonl"
    whole = log.read_bytes()
    cut = whole.rfind(b"\n", 0, len(whole) - 1) + 1  # the start of the last line
    log.write_bytes(whole[:cut] + whole[cut:cut + 40])  # a writer mid-way through a line
    v = viewer(tmp_path / "runs")
    page.goto(f"{v.url}runs/torn-run/")
    note = page.locator("p.note").first.inner_text()
    assert "partial last record" in note and "labcoat resume" in note
    assert page.locator("section.problem").count() == 0  # a torn tail is no damage
    count = int(page.locator("#event-count").inner_text())
    with open(log, "ab") as f:  # the writer finishes the line
        f.write(whole[cut + 40:])
    wait_until(page, f"document.querySelector('#event-count').textContent == '{count + 1}'")
    assert page.locator("p.note").count() == 0
