"""The LLM brain end to end: `labcoat run --model ...` with the real SDKs against fake servers on
127.0.0.1, real Docker sandboxes, real git. The scripted team (`tests/llm/brain.py`) answers each
request from what it contains, like a model would."""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
import pytest

from labcoat.log import load_state, read_events
from tests.llm.brain import ENGINEER_NEW, Team, Turn
from tests.loop.conftest import labcoat, make_experiment, run_dir_of
from tests.models.servers import FakeAnthropic, FakeOpenAI

CANARY = "sk-canary-LLM-0123456789abcdef"


def run_args(exp: Path, tmp: Path, *more: str) -> list[str]:
    return ["run", str(exp), "--runs-dir", str(tmp / "runs"), "--parallel", "1", *more]


def assert_no_canary_in(run_dir: Path) -> None:
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    objects = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"],
                             cwd=run_dir / "workspace", capture_output=True, check=True).stdout
    assert objects and CANARY.encode() not in objects


class CheckedTeam(Team):
    """Plans badly first (malformed JSON, then an unknown role); inspects the sandboxes' env."""

    containers_seen: int = 0

    def manager(self, t: Turn) -> tuple[str, Any]:
        if t.turn == 0 and "iteration 1" in t.task:
            return "propose_plan", '{"subtasks": [{"role": "engineer",'
        if t.turn == 0:
            return "propose_plan", {"subtasks": [{"role": "enginer", "instructions": "x"}]}
        return super().manager(t)

    def reproducer(self, t: Turn) -> tuple[str, Any]:
        if t.turn == 1:  # the reproducer's sandbox is alive now
            self.inspect_containers()
        return super().reproducer(t)

    def inspect_containers(self) -> None:
        import docker

        client = docker.from_env()
        for c in client.api.containers(filters={"label": "labcoat.run_id"}):
            try:  # other runs' containers may come and go meanwhile
                env = client.api.inspect_container(c["Id"])["Config"].get("Env") or []
            except docker.errors.NotFound:
                continue
            assert not any(CANARY in v or "API_KEY" in v for v in env), env
            self.containers_seen += 1
        client.close()


@pytest.mark.docker
def test_openai_shape_multi_iteration_run(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", roles=["reproducer", "engineer", "critic"])
    team = CheckedTeam()
    with FakeOpenAI([team] * 100) as srv:
        proc = labcoat(*run_args(exp, tmp_path, "--model", "openai:any", "--base-url",
                                 srv.base_url, "--max-iterations", "2"),
                       env={"OPENAI_API_KEY": CANARY})
        requests = list(srv.requests)
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(proc)
    state = load_state(run_dir)
    assert state.status == "finished" and state.iteration == 2
    assert {"manager", "reproducer", "engineer", "critic"} <= set(team.roles())

    # the manager's bad plans went back to it as tool errors, then it planned properly
    managers = team.of("manager")
    assert [t.turn for t in managers] == [0, 1, 0, 1]
    assert "not a JSON object" in managers[1].last_tool
    assert "known roles: reproducer, engineer" in managers[3].last_tool
    roles = [(s.id, s.role) for s in state.subtasks.values() if s.role != "critic"]
    assert roles == [("it001-01", "reproducer"), ("it001-02", "engineer"),
                     ("it002-01", "engineer")]

    # the engineer's edit was committed and graded; the critic reproduced it with new seeds
    repo = git.Repo(run_dir / "workspace")
    eng = state.subtasks["it001-02"]
    assert ENGINEER_NEW in repo.commit(eng.commit).tree["train.py"].data_stream.read().decode()
    assert state.best is not None and state.best.metric > state.baseline + 0.2
    critique = next(s.critique for s in state.subtasks.values() if s.role == "critic")
    assert critique["target"] == "it001-02" and critique["verdict"] == "reproducible"
    assert sorted(critique["metrics_by_seed"]) == ["0", "1", "2"]

    # every request is one llm_call in the log, with its role and subtask
    calls = [e for e in read_events(run_dir) if e.type == "llm_call"]
    assert len(calls) == len(requests) == len(team.seen)
    assert all(c.subtask_id for c in calls if c.role != "manager")
    assert [c.iteration for c in calls if c.role == "manager"] == [1, 1, 2, 2]
    assert all(c.cost_usd is None for c in calls)
    report = (run_dir / "report.md").read_text()
    assert "model cost: unknown" in report and "$0.0000" not in report

    # the key: sent to the provider only; never in a sandbox, the log, git, or the output
    assert all({k.lower(): v for k, v in r.headers.items()}["authorization"]
               == f"Bearer {CANARY}" for r in requests)
    env_dump = team.of("reproducer")[1].last_tool
    assert "LABCOAT_SEED=0" in env_dump and "API_KEY" not in env_dump
    assert all(CANARY.encode() not in r.body for r in requests)
    assert team.containers_seen >= 1
    assert_no_canary_in(run_dir)
    assert CANARY not in proc.stdout + proc.stderr


@pytest.mark.docker
def test_anthropic_shape_run(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy")
    team = Team(shape="anthropic", usage=(1000, 200))
    with FakeAnthropic([team] * 50) as srv:
        proc = labcoat(*run_args(exp, tmp_path, "--model", "anthropic:claude-haiku-4-5",
                                 "--max-iterations", "1"),
                       env={"ANTHROPIC_API_KEY": CANARY, "ANTHROPIC_BASE_URL": srv.base_url})
        first = srv.requests[0]
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(proc)
    state = load_state(run_dir)
    assert state.status == "finished"
    assert {"manager", "reproducer", "engineer", "critic"} <= set(team.roles())
    headers = {k.lower(): v for k, v in first.headers.items()}
    assert first.path == "/v1/messages"
    assert CANARY in headers.get("x-api-key", headers.get("authorization", ""))
    assert first.json["system"][0]["cache_control"] == {"type": "ephemeral"}
    total = state.cost.total
    assert total.unknown_cost_calls == 0 and total.calls == len(team.seen)
    # haiku 4.5: $1 / $5 per million input / output tokens
    assert total.usd == pytest.approx(total.calls * (1000 * 1.0 + 200 * 5.0) / 1e6)
    assert f"${total.usd:.4f}" in (run_dir / "report.md").read_text()
    assert_no_canary_in(run_dir)


@dataclass
class StallingTeam(Team):
    """Holds the engineer's second request until the test has killed the run."""

    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    keys: list[str] = field(default_factory=list)

    def __call__(self, rec: Any) -> Any:
        from tests.llm.brain import body_key, read_turn

        self.keys.append(body_key(rec))
        t = read_turn(self.shape, rec.json)
        if t.role == "engineer" and t.turn == 1 and not self.stalled.is_set():
            self.stalled.set()
            self.release.wait(120)
        return super().__call__(rec)


@pytest.mark.docker
def test_kill_9_then_resume_buys_no_logged_answer_again(tmp_path: Path) -> None:
    from tests.loop.test_resume import start

    exp = make_experiment(tmp_path / "toy")
    team = StallingTeam()
    with FakeOpenAI([team] * 100) as srv:
        first = start(tmp_path / "logs", *run_args(exp, tmp_path, "--model", "openai:any",
                                                   "--base-url", srv.base_url,
                                                   "--max-iterations", "1"))
        try:
            run_dir = first.run_dir()
            assert team.stalled.wait(120), first.err.read_text()
        finally:
            first.proc.kill()
            first.proc.wait()
        bought = set(team.answered)
        sent_before = len(team.keys)
        team.release.set()
        again = labcoat("resume", str(run_dir))
        resent = set(team.keys[sent_before:])
    assert again.returncode == 0, again.stderr
    assert len(bought) == 5  # manager, reproducer x3 (finished before the kill), engineer x1
    assert resent and not resent & bought, "a logged answer was bought again"
    events = read_events(run_dir)
    hashes = [e.request_hash for e in events if e.type == "llm_call"]
    assert len(hashes) == len(set(hashes)), "a request was logged twice"
    state = load_state(run_dir)
    assert state.status == "finished" and state.subtasks["it001-02"].attempts == 2
    assert [t.turn for t in team.of("engineer")].count(0) == 1, "turn 0 was replayed"


@pytest.mark.docker
def test_dollar_budget_pauses_with_exit_3_and_resume_finishes(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy")
    team = Team(usage=(200_000, 1_000))  # gpt-4.1-mini: $0.0816 per reply
    with FakeOpenAI([team] * 100) as srv:
        args = run_args(exp, tmp_path, "--model", "openai:gpt-4.1-mini", "--base-url",
                        srv.base_url, "--max-iterations", "1", "--budget-usd", "0.2")
        proc = labcoat(*args)
        assert proc.returncode == 3, proc.stderr
        run_dir = run_dir_of(proc)
        paused = load_state(run_dir)
        assert paused.status == "paused" and paused.budget is not None
        assert paused.budget.kind == "usd" and paused.budget.limit == 0.2
        assert 0.16 < paused.budget.spent <= 0.2 + 0.0816
        kinds = [e.type for e in read_events(run_dir)]
        assert kinds[-2:] == ["budget_exhausted", "run_paused"]
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("labcoat: error:")]
        assert len(errors) == 1 and "--budget-usd" in errors[0]
        assert "Traceback" not in proc.stderr
        bought = len(team.answered)
        resumed = labcoat("resume", str(run_dir), "--budget-usd", "100")
    assert resumed.returncode == 0, resumed.stderr
    state = load_state(run_dir)
    assert state.status == "finished" and state.cost.total.usd > 0.2
    assert state.cost.total.calls == len(team.answered) >= bought + 3


@pytest.mark.parametrize(("status", "body", "code", "says"), [
    (401, {"error": {"message": f"Incorrect API key provided: {CANARY}.",
                     "type": "invalid_request_error", "code": "invalid_api_key"}},
     1, "rejected the API key (HTTP 401)"),
    (429, {"error": {"message": "You exceeded your current quota, please check your plan and "
                     "billing details.", "type": "insufficient_quota",
                     "code": "insufficient_quota"}},
     3, "quota or credit exhausted"),
])
@pytest.mark.docker
def test_auth_and_quota_errors_pause_the_run(tmp_path: Path, status: int, body: dict,
                                             code: int, says: str) -> None:
    from tests.models.servers import Respond

    exp = make_experiment(tmp_path / "toy")
    with FakeOpenAI([Respond(status, body)] * 5) as srv:
        proc = labcoat(*run_args(exp, tmp_path, "--model", "openai:gpt-4.1", "--base-url",
                                 srv.base_url), env={"OPENAI_API_KEY": CANARY})
        sent = len(srv.requests)
    assert proc.returncode == code, proc.stderr
    assert sent == 1, "never retried"
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("labcoat: error:")]
    assert len(errors) == 1 and says in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and CANARY not in proc.stderr
    run_dir = run_dir_of(proc)
    state = load_state(run_dir)
    assert state.status == "paused" and says in (state.stop_reason or "")
    failures = [e for e in read_events(run_dir) if e.type == "llm_error"]
    assert len(failures) == 1 and failures[0].role == "manager"
    assert_no_canary_in(run_dir)


@pytest.mark.slow
def test_missing_key_is_refused_before_the_run_exists(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy")
    proc = labcoat(*run_args(exp, tmp_path, "--model", "anthropic:claude-haiku-4-5"))
    assert proc.returncode == 2
    assert "ANTHROPIC_API_KEY is not set" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
    bad = labcoat(*run_args(exp, tmp_path, "--model", "openai:x", "--role-model", "critic"))
    assert bad.returncode == 2 and "ROLE=SPEC" in bad.stderr


def _dump(obj: Any) -> str:
    return json.dumps(obj, default=str)


BUNDLED = Path(__file__).resolve().parents[2] / "experiments" / "digits"
DIGITS_OLD = 'DEFAULTS = {"model": "logistic", "C": 1.0,'
DIGITS_NEW = 'DEFAULTS = {"model": "svm", "C": 10.0,'


@pytest.mark.docker
def test_bundled_experiment_with_a_local_openai_compatible_server(tmp_path: Path) -> None:
    team = Team(edit=(DIGITS_OLD, DIGITS_NEW, "logistic regression -> an RBF SVM (C=10)"))
    with FakeOpenAI([team] * 100) as srv:
        proc = labcoat("run", str(BUNDLED), "--model", "openai:any", "--base-url", srv.base_url,
                       "--max-iterations", "2", "--parallel", "1",
                       "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    state = load_state(run_dir_of(proc))
    assert state.status == "finished" and state.iteration == 2
    assert state.baseline is not None and abs(state.baseline - 0.9694) < 0.001
    assert state.best is not None and state.best.metric > 0.98
    with git.Repo(run_dir_of(proc) / "workspace") as repo:
        code = repo.commit(state.best.commit).tree["train.py"].data_stream.read().decode()
    assert DIGITS_NEW in code
