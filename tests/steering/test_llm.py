"""A person steering an LLM-brain run: the real OpenAI SDK against the scripted server of
tests/models/servers.py, real Docker, real processes. Notes reach the manager's next request
and its plan answers them; a rejection's reason reaches the next plan request; a subtask whose
worst-case spend exceeds `--approve spend-over` waits while cheaper ones run."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from labcoat.log import load_state, read_events
from tests.llm.brain import Team, Turn, read_turn
from tests.loop.conftest import LABCOAT, make_experiment
from tests.models.servers import FakeOpenAI, Recorded
from tests.steering.live import Live, cli

pytestmark = pytest.mark.docker


@dataclass
class SteeredTeam(Team):
    """Answers every note the manager is shown; can hold the first engineer request until the
    test has sent its notes."""

    stall: bool = False
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, rec: Recorded) -> Any:
        t = read_turn(self.shape, rec.json)
        if self.stall and t.role == "engineer" and not self.stalled.is_set():
            self.stalled.set()
            self.release.wait(120)
        return super().__call__(rec)

    def manager(self, t: Turn) -> tuple[str, Any]:
        name, args = super().manager(t)
        shown = re.search(r"A person left note\(s\) ([\d, ]+):", t.task)
        if shown:
            args["notes"] = [{"note": int(n), "answer": f"took note {n.strip()} into account"}
                             for n in shown.group(1).split(",")]
        return name, args

    def manager_systems(self) -> list[str]:
        return [t.body["messages"][0]["content"] for t in self.of("manager")]


def run_args(exp: Path, tmp: Path, url: str, *more: str) -> list[str]:
    return ["run", str(exp), "--runs-dir", str(tmp / "runs"), "--model", "openai:any",
            "--base-url", url, "--parallel", "1", *more]


def test_notes_to_a_live_run_reach_the_next_plan(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy")
    team = SteeredTeam(stall=True)
    with FakeOpenAI([team] * 200) as srv:
        live = Live(tmp_path / "logs", *run_args(exp, tmp_path, srv.base_url,
                                                 "--max-iterations", "2", "--pipeline-depth", "1"))
        run_dir = live.run_dir()
        assert team.stalled.wait(120), live.err.read_text()
        notes = [subprocess.Popen([LABCOAT, "note", str(run_dir), text], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL)
                 for text in ("stop trying learning-rate schedules", "look at the data loader")]
        outs = [p.communicate(timeout=60) for p in notes]
        team.release.set()
        assert all(p.returncode == 0 for p in notes) and all("recorded" in o for o, _ in outs), \
            outs
        deadline = time.monotonic() + 300
        while not any(e.type == "plan_proposed" and e.iteration == 2
                      for e in read_events(run_dir)):
            assert time.monotonic() < deadline and live.proc.poll() is None, \
                live.err.read_text()
            time.sleep(0.2)
        # the plan that answers the notes is made: the rest of the run proves nothing more
        assert cli("stop", str(run_dir), "--now").returncode == 0
        assert live.wait() == 3, live.err.read_text()
    events = read_events(run_dir)
    added = [e for e in events if e.type == "note_added"]
    assert sorted(e.text for e in added) == ["look at the data loader",
                                             "stop trying learning-rate schedules"]
    first_after = next(i for i, t in enumerate(team.of("manager")) if "note 1:" in
                       t.body["messages"][0]["content"])
    system = team.manager_systems()[first_after]
    assert f"note 1: {added[0].text}" in system and f"note 2: {added[1].text}" in system
    assert "Plan iteration 2" in team.of("manager")[first_after].task
    plans = [e for e in events if e.type == "plan_proposed" and e.iteration == 2]
    assert plans[0].notes == {"1": "took note 1 into account", "2": "took note 2 into account"}
    state = load_state(run_dir)
    assert state.open_notes() == [] and [n.answered_in for n in state.notes] == [2, 2]


def test_a_rejection_reason_reaches_the_next_plan_request(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy")
    team = SteeredTeam()
    reason = "do not touch x; look at the data loader"
    with FakeOpenAI([team] * 200) as srv:
        args = run_args(exp, tmp_path, srv.base_url, "--max-iterations", "1",
                        "--approve", "plans", "--approve-timeout", "2")
        first = cli(*args)
        assert first.returncode == 4, first.stderr
        run_dir = Path(first.stdout.splitlines()[0])
        assert reason not in team.manager_systems()[-1]
        assert cli("reject", str(run_dir), "--reason", reason).returncode == 0
        again = cli("resume", str(run_dir))
        assert again.returncode == 4, again.stderr
    system = team.manager_systems()[-1]
    assert "Plans a person rejected" in system and reason in system
    plans = [e for e in read_events(run_dir) if e.type == "plan_proposed"]
    assert [p.iteration for p in plans] == [1, 1], "the rejected iteration is planned again"
    assert [s["id"] for s in plans[1].subtasks] == ["it001-03", "it001-04"], "fresh ids"
    state = load_state(run_dir)
    assert state.iteration == 1 and state.pending_approval.plan == plans[1].id
    assert "subtask_started" not in [e.type for e in read_events(run_dir)]


def test_spend_over_holds_only_the_dear_subtasks(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy")
    team = SteeredTeam()
    with FakeOpenAI([team] * 200) as srv:
        proc = cli("run", str(exp), "--runs-dir", str(tmp_path / "runs"), "--parallel", "1",
                   "--model", "openai:gpt-4.1-nano", "--base-url", srv.base_url,
                   "--role-model", "engineer=openai:gpt-4.1-mini", "--max-iterations", "1",
                   "--approve", "spend-over", "0.20", "--approve-timeout", "2")
    assert proc.returncode == 4, proc.stderr
    run_dir = Path(proc.stdout.splitlines()[0])
    events = read_events(run_dir)
    plan = next(e for e in events if e.type == "plan_proposed")
    # the engineer on gpt-4.1-mini: 500k input tokens at $0.40/M + 40 x 4096 output at $1.60/M
    assert plan.worst_usd == {"it001-01": 0.115536, "it001-02": 0.462144}
    assert plan.awaiting == ["it001-02"] and plan.gate == "spend"
    assert [e.subtask_id for e in events if e.type == "subtask_started"] == ["it001-01"]
    assert "worst case $0.46" in proc.stderr
