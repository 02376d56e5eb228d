"""experiment.yaml loading: every problem at once, each naming file, line, field and fix."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from labcoat.errors import ConfigError, SpecError
from labcoat.experiment import (
    Experiment,
    ExperimentSpec,
    beats,
    best_value,
    experiment_hash,
    gain,
    grader_hash,
    load_experiment,
    parse_memory,
    trial_env,
)
from labcoat.experiment.spec import (
    CategoricalParam,
    FloatParam,
    IntParam,
    LogFloatParam,
    baseline_params,
)
from labcoat.orchestrator.sandboxing import image_of, sandbox_spec
from labcoat.sandboxes.image import default_image

MINIMAL = """\
name: tiny
goal: make the number bigger
run: python train.py
evaluate: python /grader/score.py
metric: {name: score, direction: maximize}
"""


def make_experiment(root: Path, text: str, *, workspace: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "experiment.yaml").write_text(textwrap.dedent(text))
    if workspace:
        (root / "workspace").mkdir(exist_ok=True)
        (root / "workspace" / "train.py").write_text("print('hi')\n")
    return root


def spec_error(root: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_experiment(root)
    return str(info.value)


def test_minimal_spec_gets_defaults(tmp_path: Path) -> None:
    exp = load_experiment(make_experiment(tmp_path / "e", MINIMAL))
    res = exp.spec.resources
    assert (res.cpus, res.memory_mb, res.gpus, res.timeout_s, res.network, res.pids) == (
        1.0, 1024, 0, 600.0, "none", 256)
    assert exp.spec.search_space == {} and exp.spec.roles is None and exp.spec.outputs is None
    assert exp.spec.critic.seeds == 2
    assert image_of(exp) == default_image()
    assert exp.dir == (tmp_path / "e").resolve()
    assert exp.workspace_dir == exp.dir / "workspace" and exp.grader_dir == exp.dir / "grader"
    assert exp.roles_dir == exp.dir / "roles" and exp.prompts_dir == exp.dir / "prompts"


def test_accepts_the_yaml_file_itself(tmp_path: Path) -> None:
    root = make_experiment(tmp_path / "e", MINIMAL)
    assert load_experiment(root / "experiment.yaml").dir == root.resolve()


def test_full_spec_round_trip(tmp_path: Path) -> None:
    root = make_experiment(tmp_path / "e", MINIMAL + """\
image: python:3.11-slim
setup: pip install -e .
description: a test
resources: {cpus: 0.5, memory: 2g, gpus: 1, timeout_s: 30, network: bridge, pids: 64}
search_space:
  lr: {type: log_float, low: 1.0e-5, high: 0.1}
  depth: {type: int, low: 2, high: 10, step: 2}
  drop: {type: float, low: 0.0, high: 0.5}
  model: {type: categorical, choices: [svm, 3, true]}
roles: [engineer, critic, labcoat_test_plugin.roles:Ablator]
critic: {seeds: 3, leaders: 2, noise_sigmas: 1.5}
outputs: [model.pkl, out/]
models: {critic: "openai:gpt-x", engineer: search}
""")
    spec = load_experiment(root).spec
    assert spec.resources.memory_mb == 2048 and spec.resources.network == "bridge"
    assert isinstance(spec.search_space["lr"], LogFloatParam)
    assert isinstance(spec.search_space["depth"], IntParam) and spec.search_space["depth"].step == 2
    model = spec.search_space["model"]
    assert isinstance(model, CategoricalParam) and model.choices == ["svm", 3, True]
    assert spec.roles == ["engineer", "critic", "labcoat_test_plugin.roles:Ablator"]
    assert spec.models["critic"] == "openai:gpt-x"
    again = ExperimentSpec.model_validate(spec.model_dump(mode="json"))
    assert again == spec


@pytest.mark.parametrize(("text", "mb"), [
    ("512m", 512), ("2g", 2048), ("1.5GiB", 1536), ("2048k", 2), ("300MB", 300), (768, 768),
])
def test_parse_memory(text: str | int, mb: int) -> None:
    if mb < 16:
        with pytest.raises(ValueError, match="under 16 MB"):
            parse_memory(text)
    else:
        assert parse_memory(text) == mb


def test_all_problems_at_once_with_lines_and_fixes(tmp_path: Path) -> None:
    root = make_experiment(tmp_path / "e", """\
    name: bad
    goal: g
    run: python train.py
    metric:
      name: acc
      direction: maximise
    resources:
      memory: lots
      cpu: 2
      network: host
    search_space:
      lr: {type: log_float, low: 0, high: 1}
      n: {type: int, low: 5, high: 1}
      pick: {type: categorical, choices: []}
      d: {type: flaot, low: 1, high: 2}
      f: {type: float, low: 1, high: 2, stepp: 0.1}
    rolez: [engineer]
    """)
    msg = spec_error(root)
    where = str((root / "experiment.yaml").resolve())
    assert "11 problems" in msg
    expected = [
        f"{where}: evaluate: Field required; fix: add `evaluate: <command>` whose last stdout "
        "line is a JSON object of metrics",
        f"{where}:6: metric.direction: Input should be 'maximize' or 'minimize' (got 'maximise')",
        f"{where}:8: resources.memory: 'lots' is not a size; fix: write a size like 512m or 2g",
        f"{where}:9: resources.cpu: unknown field; fix: did you mean `cpus`?",
        f"{where}:10: resources.network:",
        f"{where}:12: search_space.lr: low (0.0) must be above 0 on a log scale; fix:",
        f"{where}:13: search_space.n: low (5) must be below high (1); fix: swap them",
        f"{where}:14: search_space.pick.choices: List should have at least 1 item",
        f"{where}:15: search_space.d: Input tag 'flaot'",
        "fix: did you mean `type: float`?",
        f"{where}:16: search_space.f.stepp: unknown field; fix: did you mean `step`?",
        f"{where}:17: rolez: unknown field; fix: did you mean `roles`?",
    ]
    for part in expected:
        assert part in msg, part
    assert len(msg.splitlines()) == 12  # the header and one line per problem


def test_param_names_must_be_env_suffixes(tmp_path: Path) -> None:
    root = make_experiment(tmp_path / "e", MINIMAL + """\
search_space:
  learning-rate: {type: float, low: 0, high: 1}
  lr: {type: float, low: 0, high: 1}
  LR: {type: float, low: 0, high: 1}
""")
    msg = spec_error(root)
    assert "search_space.learning-rate: parameter name 'learning-rate' cannot be part of an " \
           "environment variable" in msg
    assert "e.g. 'learning_rate'" in msg
    assert "parameters 'lr' and 'LR' both become LABCOAT_PARAM_LR" in msg


def test_search_space_defaults_say_where_the_baseline_lies(tmp_path: Path) -> None:
    """`default` per parameter: the baseline's values (a number may lie outside the range);
    only a space where every parameter has one yields the baseline's point; a categorical
    default must be one of the choices, a log-scale one above 0."""
    root = make_experiment(tmp_path / "ok", MINIMAL + """\
search_space:
  model: {type: categorical, choices: [a, b], default: b}
  C: {type: log_float, low: 0.001, high: 10, default: 1.0}
  depth: {type: int, low: 2, high: 24, default: 32}
""")
    space = load_experiment(root).spec.search_space
    assert baseline_params(space) == {"model": "b", "C": 1.0, "depth": 32}
    assert baseline_params({k: v for k, v in space.items() if k != "C"}) is not None
    assert baseline_params({**space, "x": FloatParam(type="float", low=0, high=1)}) is None
    bad = make_experiment(tmp_path / "bad", MINIMAL + """\
search_space:
  model: {type: categorical, choices: [a, b], default: c}
  C: {type: log_float, low: 0.001, high: 10, default: 0}
""")
    msg = spec_error(bad)
    assert "search_space.model: default 'c' is not one of the choices ['a', 'b']" in msg
    assert "search_space.C.log_float.default" in msg or "search_space.C.default" in msg


def test_missing_workspace_is_reported_with_other_problems(tmp_path: Path) -> None:
    root = make_experiment(tmp_path / "e", MINIMAL.replace("run: python train.py\n", ""),
                           workspace=False)
    msg = spec_error(root)
    assert "2 problems" in msg
    assert "run: Field required; fix: add `run: <command>`" in msg
    assert f"{root / 'workspace'}: missing workspace/ folder; fix: create it" in msg


def test_missing_folder_or_file(tmp_path: Path) -> None:
    assert "no such experiment folder" in spec_error(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    msg = spec_error(tmp_path / "empty")
    assert "no experiment.yaml in this folder; fix: create" in msg


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    root = make_experiment(tmp_path / "e", MINIMAL + "resources:\n  cpus: 1\n   memory: 1g\n")
    msg = spec_error(root)
    assert "experiment.yaml:8:" in msg and "YAML syntax error" in msg and "fix:" in msg


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    msg = spec_error(make_experiment(tmp_path / "e", text))
    assert "experiment.yaml:1: expected a mapping of fields" in msg


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    msg = spec_error(make_experiment(tmp_path / "e", MINIMAL + "run: python other.py\n"))
    assert "experiment.yaml:6: run: duplicate key (first on line 3); fix: keep only one" in msg


def test_bad_outputs_models_and_roles(tmp_path: Path) -> None:
    root = make_experiment(tmp_path / "e", MINIMAL + """\
outputs: [/etc/passwd, ../up, ok.txt]
models: {critic: gpt4}
roles: ["bad role"]
critic: {seeds: 0}
""")
    msg = spec_error(root)
    assert ":6: outputs[0]: '/etc/passwd' leaves the workspace" in msg
    assert ":6: outputs[1]: '../up' leaves the workspace" in msg
    assert "outputs[2]" not in msg
    assert ":7: models.critic: 'gpt4' is not a model spec; fix:" in msg
    assert ":8: roles[0]: 'bad role' is not a role name" in msg
    assert ":9: critic.seeds: Input should be greater than or equal to 1 (got 0)" in msg


def test_spec_error_is_a_config_error_with_exit_code_2(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_experiment(tmp_path / "nope")
    assert info.value.exit_code == 2


def test_goal_override_and_missing_goal(tmp_path: Path) -> None:
    exp = load_experiment(make_experiment(tmp_path / "e", MINIMAL.replace("goal:", "#goal:")))
    assert exp.goal("do it") == "do it"
    with pytest.raises(SpecError, match="no goal; fix: add `goal:"):
        exp.goal()


def test_sandbox_spec_carries_resources(tmp_path: Path) -> None:
    root = make_experiment(tmp_path / "e", MINIMAL + """\
image: my/image:1
resources: {cpus: 2, memory: 512m, pids: 100, network: bridge, gpus: 0}
""")
    exp = load_experiment(root)
    spec = sandbox_spec(exp, "run-1", "it001-01", env={"A": "b"}, tmpfs_mb=64)
    assert (spec.image, spec.run_id, spec.subtask_id) == ("my/image:1", "run-1", "it001-01")
    assert (spec.cpus, spec.memory_mb, spec.pids_limit, spec.network) == (2.0, 512, 100, "bridge")
    assert spec.env == {"A": "b"} and spec.tmpfs_mb == 64


def test_trial_env() -> None:
    env = trial_env({"lr": 0.01, "model": "svm", "depth": 3, "flag": True}, seed=7)
    assert env == {"LABCOAT_SEED": "7", "LABCOAT_PARAM_LR": "0.01", "LABCOAT_PARAM_MODEL": "svm",
                   "LABCOAT_PARAM_DEPTH": "3", "LABCOAT_PARAM_FLAG": "true"}


def test_metric_direction() -> None:
    assert beats(0.1, 0.2, "minimize") and not beats(0.3, 0.2, "minimize")
    assert beats(0.3, 0.2, "maximize") and not beats(0.2, 0.2, "maximize")
    assert beats(5.0, None, "minimize") and beats(-5.0, None, "maximize")
    assert best_value([0.3, 0.1, 0.2, 0.1], "minimize") == 0.1
    assert best_value([0.3, 0.1, 0.5], "maximize") == 0.5 and best_value([], "maximize") is None
    assert gain(0.1, 0.3, "minimize") == pytest.approx(0.2)
    assert gain(0.1, 0.3, "maximize") == pytest.approx(-0.2)


def _experiment(tmp_path: Path) -> Experiment:
    return load_experiment(make_experiment(tmp_path / "e", MINIMAL))


def test_grader_hash(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    nothing = hashlib.sha256(b"").hexdigest()
    assert grader_hash(exp) == nothing  # no grader folder
    exp.grader_dir.mkdir()
    assert grader_hash(exp) == nothing  # empty grader folder
    (exp.grader_dir / "labels.txt").write_text("1 0 1\n")
    first = grader_hash(exp)
    assert first != nothing
    (exp.grader_dir / "labels.txt").write_text("1 1 1\n")
    assert grader_hash(exp) != first
    (exp.grader_dir / "labels.txt").write_text("1 0 1\n")
    assert grader_hash(exp) == first
    (exp.grader_dir / "labels.txt").rename(exp.grader_dir / "other.txt")
    assert grader_hash(exp) != first  # the path is part of the hash


def test_experiment_hash_follows_spec_and_workspace(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    first = experiment_hash(exp)
    (exp.workspace_dir / "__pycache__").mkdir()
    (exp.workspace_dir / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert experiment_hash(exp) == first  # caches do not change the experiment
    (exp.workspace_dir / "train.py").write_text("print('changed')\n")
    assert experiment_hash(exp) != first
    (exp.workspace_dir / "train.py").write_text("print('hi')\n")
    assert experiment_hash(exp) == first
    (exp.spec_path).write_text(MINIMAL.replace("tiny", "small"))
    assert experiment_hash(load_experiment(exp.dir)) != first


def test_bundled_example_loads() -> None:
    root = Path(__file__).resolve().parents[1] / "experiments" / "digits"
    exp = load_experiment(root)
    assert exp.spec.metric.name == "accuracy"


def test_invalid_role_files_are_spec_problems(tmp_path: Path) -> None:
    root = make_experiment(tmp_path / "e", MINIMAL.replace("goal: make the number bigger\n", "")
                           + "metric: {name: score}\n")
    roles = root / "roles"
    roles.mkdir()
    (roles / "ok.md").write_text("---\nname: skeptic\ndescription: doubts\n---\nDoubt.\n")
    (roles / "twin.md").write_text("---\nname: skeptic\ndescription: again\n---\nDoubt.\n")
    (roles / "bad.md").write_text("---\nname: bad\n---\nbody\n")
    msg = spec_error(root)
    assert "4 problems" in msg
    assert "experiment.yaml:5: metric: duplicate key (first on line 4)" in msg
    assert "experiment.yaml:5: metric.direction: Field required" in msg  # the last one counts
    assert f"{roles / 'bad.md'}:2: description: Field required" in msg
    assert f"{roles / 'twin.md'}: role name 'skeptic' is also used by {roles / 'ok.md'}" in msg
