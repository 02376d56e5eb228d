"""Prompt templates: every built-in renders, StrictUndefined bites, experiments override."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from labcoat.agents.prompts import render_prompt
from labcoat.agents.role import Subtask
from labcoat.errors import ConfigError

EXP = SimpleNamespace(name="digits", goal="beat 0.95 accuracy", run="python3 train.py",
                      metric=SimpleNamespace(name="accuracy", direction="maximize"))
SUB = Subtask(id="it001-01", iteration=1, role="engineer", instructions="Try a smaller lr.",
              base_commit="0123456789abcdef", target="it000-01")
CONTEXT = {
    "manager": {"roles": [{"name": "engineer", "description": "changes code"}],
                "digest": "baseline accuracy 0.91", "max_subtasks": 3},
    "engineer": {"subtask": SUB},
    "reproducer": {"subtask": SUB},
    "critic": {"subtask": SUB, "diff": "-lr = 0.1\n+lr = 0.01", "grade": {"accuracy": 0.97}},
}


@pytest.mark.parametrize("name", sorted(CONTEXT))
def test_every_builtin_template_renders(name: str) -> None:
    text = render_prompt(name, experiment=EXP, **CONTEXT[name])
    assert "digits" in text and "beat 0.95 accuracy" in text and "accuracy` (maximize)" in text
    assert "{{" not in text and "{%" not in text


def test_role_specific_content() -> None:
    assert "Try a smaller lr." in render_prompt("engineer", experiment=EXP, subtask=SUB)
    assert "0123456789ab" in render_prompt("engineer", experiment=EXP, subtask=SUB)
    critic = render_prompt("critic", experiment=EXP, **CONTEXT["critic"])
    assert "+lr = 0.01" in critic and "it000-01" in critic
    manager = render_prompt("manager", experiment=EXP, **CONTEXT["manager"])
    assert "- engineer: changes code" in manager and "at most 3 subtasks" in manager
    extra = render_prompt("engineer", experiment=EXP, subtask=SUB, instructions="Use numpy only.")
    assert "Use numpy only." in extra


def test_missing_variable_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="'subtask' is undefined"):
        render_prompt("engineer", experiment=EXP)
    with pytest.raises(ConfigError, match=r"'nope\.j2' not found"):
        render_prompt("nope", experiment=EXP)


def test_experiment_overrides_a_template(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "engineer.j2").write_text(
        '{% extends "labcoat/engineer.j2" %}' "\n"
    )
    (tmp_path / "prompts" / "critic.j2").write_text("Be harsh about {{ subtask.target }}.")
    same = render_prompt("engineer", experiment_dir=tmp_path, experiment=EXP, subtask=SUB)
    assert same == render_prompt("engineer", experiment=EXP, subtask=SUB)
    harsh = render_prompt("critic", experiment_dir=tmp_path, experiment=EXP, subtask=SUB)
    assert harsh == "Be harsh about it000-01.\n"
    assert "manager" in render_prompt("manager", experiment_dir=tmp_path, experiment=EXP,
                                      **CONTEXT["manager"])
