"""The viewer in a real browser (headless Chromium through Playwright) over a real LLM-brain
run: the run page's chart, tree and table, a subtask's diff and transcript, nothing an agent
wrote ever executing, and the static export opened from disk showing the same run."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.loop.conftest import labcoat
from tests.views.conftest import ESC, IMG, LINK, PRINTED, SCRIPT

pytestmark = pytest.mark.docker


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_run_page_chart_tree_and_table(llm_run: Path, viewer: Any, page: Any) -> None:
    v = viewer(llm_run)
    page.goto(v.url)  # a single run: the index goes straight to its page
    data = _get_json(f"{v.url}api/runs/{llm_run.name}")
    graded = [p for p in data["chart"]["points"]]
    assert len(graded) >= 4  # reproducer, engineer, and the critic's two re-runs of the leader
    assert page.locator("svg.chart a.point").count() == len(graded)
    assert page.locator("svg.tree a.node").count() == 2  # reproducer and engineer
    rows = page.locator("table.subtasks tbody tr")
    assert [rows.nth(i).get_attribute("data-subtask") for i in range(rows.count())] == [
        "it001-01", "it001-02", "it001-r01"]
    assert "reproducible" in (page.locator("svg.tree").text_content() or "")
    engineer = page.locator('svg.chart a.point.own[data-subtask="it001-02"]')
    engineer.hover()
    tip = page.locator("#tip")
    assert tip.is_visible() and "it001-02 (engineer) seed 0" in tip.inner_text()
    engineer.click()
    page.wait_for_url(re.compile(r"/subtasks/it001-02$"))
    assert page.locator("h1").inner_text().startswith("it001-02")


def test_subtask_page_diff_grades_critic_and_transcript(llm_run: Path, viewer: Any,
                                                        page: Any) -> None:
    v = viewer(llm_run)
    page.goto(f"{v.url}runs/{llm_run.name}/subtasks/it001-02")
    assert 'params.get("x", 0.7)' in page.locator(".diff .add").first.inner_text()
    assert 'params.get("x", 0.1)' in page.locator(".diff .del").first.inner_text()
    assert page.locator("#grades tbody tr").count() == 3  # seeds 0, 1, 2
    assert "reproducible" in page.locator("#verdicts").inner_text()
    entries = page.locator("ol.transcript > li")
    assert entries.count() == 8  # 4 model calls, 4 tool calls
    model = page.locator("li.entry.model").first.inner_text()
    assert "10 in / 5 out tokens" in model and "bought" in model and "price unknown" in model
    read = page.locator("li.entry.tool", has_text="read_file")
    assert 'params.get("x", 0.1)' in read.locator(".result pre").inner_text()
    assert "trained with x = 0.7" in page.locator("#logs").inner_text()
    assert page.locator("table.commands tbody tr").count() >= 2  # run and evaluate


def test_nothing_an_agent_wrote_executes(llm_run: Path, viewer: Any,
                                         page_without_csp: Any) -> None:
    """Escaping alone keeps every payload inert (the CSP, a second wall, is bypassed here)."""
    page, v = page_without_csp, viewer(llm_run)
    base = f"{v.url}runs/{llm_run.name}"
    urls = [v.url, f"{base}/", f"{base}/subtasks/it001-02", f"{base}/subtasks/it001-01",
            f"{base}/manager/1", f"{base}/files/artifacts/it001-02/run.log"]
    for url in urls:
        page.goto(url)
        page.wait_for_timeout(300)
        assert page.evaluate("window.__pwned") is None, url
        assert page.locator('[href^="javascript:"]').count() == 0, url
        assert page.locator("main img, body > img").count() == 0, url
    assert page.dialogs == []
    page.goto(f"{base}/subtasks/it001-02")
    shown = page.locator("main").inner_text()
    for text in (SCRIPT, IMG, PRINTED, "set x to 0.7 " + LINK):
        assert text in shown  # shown as text, exactly as written
    assert "\\x1b[31mRED\\x1b[0m" in shown and ESC not in shown  # escapes made visible
    page.goto(f"{base}/")
    assert LINK in page.locator("#plans").inner_text()


def test_static_export_opened_from_disk_shows_the_same_run(llm_run: Path, viewer: Any,
                                                           page: Any, tmp_path: Path) -> None:
    before = snapshot(llm_run)
    out = tmp_path / "site"
    proc = labcoat("view", str(llm_run), "--export", str(out))
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == out / "index.html"
    v = viewer(llm_run)
    live = _get_json(f"{v.url}api/runs/{llm_run.name}")
    exported = json.loads((out / "index.json").read_text())
    for key in ("goal", "best", "baseline", "subtasks", "events", "status"):
        assert exported[key] == live[key], key
    page.goto((out / "index.html").as_uri())
    assert page.locator("svg.chart a.point").count() == len(live["chart"]["points"])
    assert page.locator("svg.tree a.node").count() == 2
    page.locator('table.subtasks a', has_text="it001-02").click()
    page.wait_for_load_state()
    assert page.url.startswith("file://") and page.url.endswith("subtasks/it001-02.html")
    assert page.locator("li.entry.tool .result").count() >= 3
    page.locator("#logs summary a").first.click()
    page.wait_for_load_state()
    assert page.url.endswith(".txt") and page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    assert snapshot(llm_run) == before  # the viewer and the export only read the run


def snapshot(run_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file under the run (git's included): size and modification time."""
    return {str(p.relative_to(run_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in run_dir.rglob("*") if p.is_file()}
