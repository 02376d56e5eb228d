"""`labcoat run` checks every role `roles:` names before anything exists: a role that cannot
load, or a role file left to a brain without a model, is exit 2 with one message naming the
role and the fix, and so is a `--role-model` that cannot take effect. The Docker engine is
pointed at nothing: the refusal comes before labcoat even asks it for a container."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.loop.conftest import labcoat, make_experiment

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}

ROLE_FILE = """---
name: writer
description: Writes the paper.
---
Write it.
"""


def refused(tmp_path: Path, exp: Path, *flags: str) -> str:
    proc = labcoat("run", str(exp), "--runs-dir", str(tmp_path / "runs"), *flags, env=NO_ENGINE)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.count("labcoat: error:") == 1, proc.stderr
    assert not (tmp_path / "runs").exists(), "nothing may be written"
    return proc.stderr


def test_a_plugin_role_that_cannot_load_stops_the_run(tmp_path: Path, test_plugin: str) -> None:
    exp = make_experiment(tmp_path / "toy", roles=["reproducer", "engineer", "broken"])
    err = refused(tmp_path, exp)
    assert "role broken (in roles:) cannot be loaded" in err
    assert "labcoat_test_plugin.broken" in err and "fix: repair or reinstall" in err


def test_a_role_file_under_the_search_brain_stops_the_run(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", roles=["reproducer", "engineer", "writer"])
    (exp / "roles").mkdir()
    (exp / "roles" / "writer.md").write_text(ROLE_FILE)
    err = refused(tmp_path, exp, "--model", "search")
    assert "role writer (" in err and "writer.md) is a role file" in err
    assert "the search brain has none; fix: run with --model anthropic:MODEL" in err


@pytest.mark.parametrize("brain", ["search", "random"])
def test_a_role_model_the_brain_cannot_use_is_reported(tmp_path: Path, brain: str) -> None:
    exp = make_experiment(tmp_path / "toy")
    err = refused(tmp_path, exp, "--model", brain, "--role-model", "critic=openai:gpt-4.1")
    assert (f"--role-model critic=openai:gpt-4.1: the {brain} brain uses no model, so it "
            "cannot take effect") in err


def test_a_role_model_for_a_role_the_run_lacks_is_reported(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", roles=["reproducer", "engineer", "critic"])
    err = refused(tmp_path, exp, "--model", "openai:gpt-4.1", "--base-url",
                  "http://127.0.0.1:9/v1", "--role-model", "critc=openai:gpt-4.1")
    assert "this run has no role 'critc'" in err and "fix: name one of them" in err


def test_an_unknown_role_is_named_with_its_fix(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", roles=["reproducer", "enginer"])
    err = refused(tmp_path, exp)
    assert "unknown role 'enginer'" in err and "did you mean 'engineer'?" in err
