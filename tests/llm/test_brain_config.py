"""Which model each role gets, the budget and replay index rebuilt from a log, key checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from labcoat.agents.llm.models import parse_model_spec, price_for
from labcoat.agents.llm.providers import PROVIDERS, check_keys
from labcoat.agents.llm.wiring import budget_of, replay_of, role_specs, to_event
from labcoat.errors import ConfigError
from labcoat.experiment import load_experiment
from labcoat.log import Journal
from tests.loop.conftest import make_experiment


def test_role_model_precedence(tmp_path: Path) -> None:
    exp = load_experiment(make_experiment(tmp_path / "toy", models={
        "critic": "openai:gpt-4.1", "engineer": "openai:gpt-4.1-mini"}))
    config = {"role_models": ["critic=anthropic:claude-opus-4-5"]}
    specs = role_specs(config, "openai:gpt-4.1-mini", exp,
                       {"skeptic": "openai:o3", "critic": "openai:gpt-5"})
    # --role-model > experiment.yaml models: > role file model: > --model
    assert specs == {"critic": "anthropic:claude-opus-4-5", "skeptic": "openai:o3"}


def test_default_models_are_priced() -> None:
    for spec in (p.default_model for p in PROVIDERS.values()):
        assert price_for(*parse_model_spec(spec)) is not None, spec


def test_missing_key_names_the_variable_not_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(ConfigError, match=r"OPENAI_API_KEY is not set, and openai:gpt-4\.1"):
        check_keys(["openai:gpt-4.1"], None)
    check_keys(["openai:local"], "http://127.0.0.1:8000/v1")  # a local server needs no key
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-123456")
    check_keys(["anthropic:claude-haiku-4-5"], None)
    with pytest.raises(ConfigError, match="expected `anthropic:MODEL` or `openai:MODEL`"):
        check_keys(["gpt-4.1"], None)


def test_budget_and_replay_come_from_the_log(tmp_path: Path) -> None:
    reply = {"message": {"role": "assistant", "content": "hi"}, "stop_reason": "end"}
    with Journal.open(tmp_path, "r1", create=True) as journal:
        journal.append("run_started", iteration=0, config={"budget_usd": 2.0,
                                                           "budget_tokens": 900},
                       experiment={}, experiment_dir="x", experiment_hash="h", grader_hash="g",
                       labcoat_version="0", seed=0, brain="openai:gpt-4.1", base_commit="c")
        for i, cost in enumerate([0.25, None, 0.5]):
            fields = {"request_hash": f"sha256:{i % 2}", "model": "gpt-4.1", "role": "engineer",
                      "reply": reply, "usage": {"input_tokens": 100, "output_tokens": 10},
                      "cost_usd": cost, "duration_s": 0.1, "spent_usd": 9, "spent_tokens": 9}
            journal.append("llm_call", iteration=1, **to_event("llm_call", fields))
        journal.append("run_resumed", overrides={"budget_usd": 5.0}, pid=1)
        budget = budget_of(journal.state)
        replay = replay_of(journal.events)
    assert (budget.max_usd, budget.max_tokens) == (5.0, 900)
    assert budget.spent_usd == pytest.approx(0.75) and budget.spent_tokens == 330
    assert {k: len(v) for k, v in replay.items()} == {"sha256:0": 2, "sha256:1": 1}
    assert replay["sha256:0"][0] == reply
