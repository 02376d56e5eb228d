"""The viewer's pages as data (the JSON endpoint each page is built from) and as HTML, on runs
written by the real Journal, on the old-log corpus, and on folders with nothing to show."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from labcoat.views.web.app import create_app
from labcoat.views.web.index import RunIndex
from tests.views.synth import journal_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"


@pytest.fixture
def client() -> Iterator[Any]:
    """`client(target)`: the viewer over `target`, once it has read every log to its end (a
    page shows a big log while it is being read: these tests check the whole of it)."""
    clients: list[TestClient] = []

    def make(target: Path) -> TestClient:
        clients.append(TestClient(create_app(target), base_url="http://127.0.0.1"))
        for _ in range(1000):
            if "reading" not in {r["status"] for r in clients[-1].get("/api/runs").json()["runs"]}:
                break
        return clients[-1]

    yield make
    for c in clients:
        c.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    journal_run(root / "20260101-000000-a", 3, calls=60)
    journal_run(root / "20260102-000000-b", 1, width=1, calls=1, finish=False)
    return root


def test_runs_index_newest_first(runs: Path, client: Any) -> None:
    c = client(runs)
    data = c.get("/api/runs").json()
    assert [r["name"] for r in data["runs"]] == ["20260102-000000-b", "20260101-000000-a"]
    a = data["runs"][1]
    assert (a["experiment"], a["status"], a["metric"], a["direction"]) == (
        "synth", "finished", "acc", "maximize")
    assert a["best"] == pytest.approx(0.8676) and a["started"].startswith("20")
    assert "$1.0860 over 543 call(s)" in a["cost"]
    html = c.get("/").text
    main = html[html.index("<main"):]
    assert main.index("20260102-000000-b") < main.index("20260101-000000-a")
    assert 'data-events="/events"' in html


def test_run_page_data(runs: Path, client: Any) -> None:
    data = client(runs).get("/api/runs/20260101-000000-a").json()
    assert data["status"] == "finished" and data["events"] > 300
    assert data["goal"] == "Raise acc." and data["brain"] == "openai:synth"
    points = data["chart"]["points"]
    assert len(points) == 9 + 3 * 2  # nine engineers, the critic's two re-runs per iteration
    assert {p["kind"] for p in points} == {"own", "seed", "refuted"}
    refuted = [p for p in points if p["kind"] == "refuted"]
    assert {p["subtask"] for p in refuted} == {"it003-01"}  # every third leader is refuted
    assert all(p["href"] == f"/runs/20260101-000000-a/subtasks/{p['subtask']}" for p in points)
    assert data["chart"]["best_path"].startswith("M")
    assert len(data["tree"]["nodes"]) == 1 + 9  # the start and every engineer
    assert len(data["subtasks"]) == 12 and data["subtask_pages"]["total"] == 12
    plans = data["plans"]
    assert [p["iteration"] for p in plans[:2]] == [3, 3]  # newest first: the review, the plan
    first = plans[-1]
    assert first["digest"]["events"] == 3 and first["digest"]["graded"] == 0
    assert first["manager_calls"] == 2
    third = next(p for p in plans if p["iteration"] == 3 and p["rationale"].startswith("iter"))
    assert third["digest"]["graded"] == 6 and third["digest"]["best"].endswith("(it001-01)")
    assert third["digest"]["results"][0].startswith("it002-03 engineer: 0.7056")
    assert third["digest"]["results"][2].startswith("it002-01 engineer: 0.7704 [reproducible]")


def test_subtask_page_data_and_paging(runs: Path, client: Any) -> None:
    c = client(runs)
    data = c.get("/api/runs/20260101-000000-a/subtasks/it003-01").json()
    assert (data["role"], data["status"], data["metric"]) == ("engineer", "finished", "acc")
    assert [g["seed"] for g in data["grades"]] == [0, 1, 2]
    assert data["verdicts"][0]["verdict"] == "not_reproducible"
    assert data["verdicts"][0]["critic"] == "it003-r01"
    assert '"lr": 0.1' in data["params"]
    t = data["transcript"]
    assert (t["total"], t["start"], t["end"], t["prev"], t["next"]) == (120, 0, 50, None, 50)
    model, tool = t["entries"][:2]
    assert model["kind"] == "model" and "900 in / 120 out tokens" in model["meta"]
    assert "$0.00200" in model["meta"] and "bought" in model["meta"]
    assert model["calls"][0]["name"] == "bash" and model["text"] == "thinking 0"
    assert tool["kind"] == "tool" and tool["result"] == "exit code: 0\nloss 0"
    last = c.get("/api/runs/20260101-000000-a/subtasks/it003-01?t=100").json()["transcript"]
    assert (last["start"], last["end"], last["next"]) == (100, 120, None)
    assert [cmd["cmd"] for cmd in data["commands"]["commands"]] == [
        "[run] python3 run.py", "[evaluate] python3 evaluate.py"]
    html = c.get("/runs/20260101-000000-a/subtasks/it003-01?t=50").text
    assert 'href="/runs/20260101-000000-a/subtasks/it003-01?t=100"' in html
    critic = c.get("/api/runs/20260101-000000-a/subtasks/it003-r01").json()
    assert critic["critique"]["target"] == "it003-01" and critic["diff_note"]


def test_manager_page_and_unknown_pages(runs: Path, client: Any) -> None:
    c = client(runs)
    manager = c.get("/api/runs/20260101-000000-a/manager/2").json()
    assert [e["kind"] for e in manager["transcript"]["entries"]] == ["model", "tool"]
    for path in ["/runs/nope/", "/runs/20260101-000000-a/subtasks/nope", "/no/such/page",
                 "/runs/20260101-000000-a/manager/x"]:
        response = c.get(path)
        assert response.status_code == 404 and "No such" in response.text, path
        assert "Traceback" not in response.text
    assert c.get("/api/runs/nope").json()["error"] == "No such run"


@pytest.mark.parametrize("version", ["v0/basic", "v1/complete"])
def test_old_logs_render(version: str, tmp_path: Path, client: Any) -> None:
    run_dir = tmp_path / "runs" / "old"
    shutil.copytree(FIXTURES / version, run_dir)
    c = client(tmp_path / "runs")
    data = c.get("/api/runs/old").json()
    assert data["problem"] is None and data["events"] > 5
    for row in data["subtasks"]:
        page = c.get(f"/runs/old/subtasks/{row['id']}")
        assert page.status_code == 200 and "Transcript" in page.text, row["id"]


def test_folders_with_nothing_to_show_say_so(tmp_path: Path, client: Any) -> None:
    missing = client(tmp_path / "nowhere").get("/")
    assert missing.status_code == 200 and "There is no folder" in missing.text
    (tmp_path / "empty").mkdir()
    empty = client(tmp_path / "empty").get("/")
    assert "holds no runs yet" in empty.text and "labcoat run" in empty.text


@pytest.mark.slow
def test_a_damaged_log_shows_what_can_be_read(tmp_path: Path, client: Any) -> None:
    run_dir = journal_run(tmp_path / "runs" / "bad", 2)
    lines = (run_dir / "log.jsonl").read_bytes().splitlines(keepends=True)
    lines[20] = lines[20].replace(b'"engineer"', b'"engineeR"')
    (run_dir / "log.jsonl").write_bytes(b"".join(lines))
    shutil.copytree(FIXTURES / "future" / "v2", tmp_path / "runs" / "newer")
    c = client(tmp_path / "runs")
    data = c.get("/api/runs/bad").json()
    assert data["events"] == 20 and "line 21: checksum mismatch" in data["problem"]
    page = c.get("/runs/bad/").text
    assert "cannot be read to its end" in page and "head -n 20" in page
    newer = c.get("/runs/newer/")
    assert newer.status_code == 200 and "Upgrade labcoat" in newer.text
    rows = {r["name"]: r for r in c.get("/api/runs").json()["runs"]}
    assert rows["newer"]["status"] == "unreadable" and rows["bad"]["problem"]
    assert "Traceback" not in page + newer.text


def test_a_big_log_is_read_over_several_refreshes(tmp_path: Path) -> None:
    run_dir = journal_run(tmp_path / "run", 4, calls=20)
    index = RunIndex(run_dir)
    index.refresh(budget_s=0.0)
    assert index.events == 256 and index.behind > 0  # a budget of 0: 256 lines a refresh
    while index.behind:
        index.refresh(budget_s=0.0)
    full = RunIndex(run_dir)
    full.refresh(budget_s=None)
    assert index.events == full.events and index.state.to_dict() == full.state.to_dict()
    assert len(index.plans) == len(full.plans) == 8
