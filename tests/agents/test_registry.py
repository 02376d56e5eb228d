"""The role registry: built-ins, a really installed entry-point plugin, Markdown role files,
`labcoat roles` as a subprocess, and `run_role_guarded` against misbehaving roles.

The test plugin (tests/plugin_pkg, distribution `labcoat-test-plugin`) is pip-installed into the
venv when missing, so entry-point discovery runs through importlib.metadata exactly as it would
for a third-party package.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from labcoat import cli
from labcoat.agents import registry as registry_module
from labcoat.agents.fileroles import FileRole
from labcoat.agents.guard import run_role_guarded
from labcoat.agents.registry import (
    BrokenRole,
    RoleRegistry,
    default_registry,
    role,
)
from labcoat.agents.role import RoleContext, RoleResult, Subtask
from labcoat.errors import ConfigError, SpecError, UnknownRoleError
from labcoat.experiment import read_role_file
from labcoat.sandboxes.base import ExecResult, SandboxSpec

PLUGIN_DIST = "labcoat-test-plugin"  # installed by the `test_plugin` fixture (tests/conftest.py)
LABCOAT = Path(sys.executable).with_name("labcoat")


def labcoat_roles(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LABCOAT), "roles", *args], capture_output=True, text=True,
                          timeout=60)


def write_role(folder: Path, filename: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(textwrap.dedent(text))
    return path


SKEPTIC = """\
---
name: skeptic
description: Looks for leakage between the training and the test data.
model: openai:gpt-x
tools: [bash, read_file]
---
You are a skeptic. Read train.py and look for leakage.
"""


# --------------------------------------------------------------------------- a local sandbox


class HostDirSandbox:
    """A Sandbox-protocol implementation over a host folder, for roles that only touch
    /workspace: paths under /workspace are rewritten to the folder. Tests only, no isolation."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.id = f"hostdir-{root.name}"
        self.spec = SandboxSpec(image="none", run_id="test")

    def _map(self, text: str) -> str:
        return text.replace("/workspace", str(self.root))

    async def exec(self, cmd: str | Sequence[str], *, cwd: str | None = None,
                   env: Mapping[str, str] | None = None, timeout_s: float | None = None,
                   stdin: bytes | str | None = None) -> ExecResult:
        argv = ["bash", "-c", self._map(cmd)] if isinstance(cmd, str) else [
            self._map(c) for c in cmd]
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=self._map(cwd or "/workspace"), env=dict(env or {}),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        return ExecResult(returncode=proc.returncode or 0, stdout=out.decode(),
                          stderr=err.decode())

    async def read_file(self, path: str, *, max_bytes: int = 10 * 1024 * 1024) -> bytes:
        return Path(self._map(path)).read_bytes()[:max_bytes]

    async def write_file(self, path: str, data: bytes | str) -> None:
        Path(self._map(path)).write_bytes(data.encode() if isinstance(data, str) else data)


def make_ctx(sandbox: Any = None, model: Any = None) -> tuple[RoleContext, list[Any]]:
    events: list[Any] = []

    async def grade(commit: str, seed: int) -> dict[str, float] | None:
        return None

    ctx = RoleContext(run_id="run-test", spec=None, sandbox=sandbox,
                      emit=lambda kind, fields: events.append((kind, dict(fields))),
                      grade=grade, model=model)
    return ctx, events


def subtask(role_name: str, **params: Any) -> Subtask:
    return Subtask(id="it001-01", iteration=1, role=role_name, instructions="do the thing",
                   base_commit="0" * 40, params=params)


# --------------------------------------------------------------------------- `labcoat roles`


def test_cli_lists_builtins_and_the_installed_plugin(test_plugin: str) -> None:
    proc = labcoat_roles()
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("\t")[0]: line.split("\t") for line in proc.stdout.splitlines()}
    assert rows["ablator"][1] == f"plugin {test_plugin}"
    assert rows["ablator"][2].startswith("Removes one component at a time")
    for name in ("reproducer", "engineer", "critic"):
        assert rows[name][1] == "built-in"
    # The broken entry point is listed with its error; it does not break the listing.
    assert rows["broken"][1] == f"plugin {test_plugin}"
    assert rows["broken"][2].startswith("ERROR: entry point `broken = "
                                        "labcoat_test_plugin.broken:BrokenRole`")
    assert "broken on purpose" in rows["broken"][2]


def test_cli_lists_role_files_with_their_path(tmp_path: Path, test_plugin: str) -> None:
    skeptic = write_role(tmp_path / "exp" / "roles", "skeptic.md", SKEPTIC)
    bad = write_role(tmp_path / "exp" / "roles", "bad.md", "---\nname: bad\n---\nbody\n")
    twin = write_role(tmp_path / "exp" / "roles", "twin.md", SKEPTIC)
    proc = labcoat_roles(str(tmp_path / "exp"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"skeptic\tfile {skeptic}\tLooks for leakage between the training and the test " \
           "data." in lines
    bad_line = next(line for line in lines if line.startswith("bad\t"))
    assert f"file {bad}\tERROR: " in bad_line and "description: Field required" in bad_line
    assert f"twin\tfile {twin}\tERROR: invalid role file: {twin}: role name 'skeptic' is also " \
           f"used by {skeptic}; fix: rename one" in lines
    assert any(line.startswith("ablator\t") for line in lines)


def test_cli_names_a_missing_experiment_folder(tmp_path: Path) -> None:
    proc = labcoat_roles(str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "no such experiment folder; fix:" in proc.stderr


def test_listing_imports_no_heavy_library(test_plugin: str) -> None:
    code = ("import sys; from labcoat.agents.registry import role_rows; role_rows(None); "
            "heavy = [m for m in ('docker', 'langgraph', 'anthropic', 'openai', 'optuna') "
            "if m in sys.modules]; print('HEAVY', heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


# --------------------------------------------------------------------------- resolving


def test_resolve_plugin_by_short_name_and_dotted_path(test_plugin: str) -> None:
    from labcoat_test_plugin.roles import Ablator

    reg = default_registry()
    assert isinstance(reg.get("ablator"), Ablator)
    assert isinstance(reg.get("labcoat_test_plugin.roles:Ablator"), Ablator)
    assert isinstance(reg.get("labcoat_test_plugin.roles.Ablator"), Ablator)
    assert reg.entry("ablator").source == f"plugin {test_plugin}"


def test_unknown_role_lists_the_known_ones(test_plugin: str) -> None:
    reg = default_registry()
    with pytest.raises(UnknownRoleError) as info:
        reg.get("ablatr")
    msg = str(info.value)
    assert "unknown role 'ablatr'; known roles: ablator, broken, critic" in msg
    assert "did you mean 'ablator'?" in msg
    assert info.value.exit_code == 2
    with pytest.raises(UnknownRoleError, match="could not be loaded: ModuleNotFoundError"):
        reg.get("no_such_package.mod:Role")
    with pytest.raises(UnknownRoleError) as info:
        reg.get("collections:OrderedDict")
    assert "could not be loaded: collections.OrderedDict is not a role" in str(info.value)


def test_check_reports_every_unknown_role_at_once(test_plugin: str) -> None:
    reg = default_registry()
    reg.check(["engineer", "ablator", "broken"])  # broken plugins fail only their subtasks
    with pytest.raises(UnknownRoleError) as info:
        reg.check(["engineer", "tuner", "janitor"])
    assert "'tuner'" in str(info.value) and "'janitor'" in str(info.value)


def test_register_decorator_and_shadowing(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setattr(registry_module, "_DECORATED", {})

    @role("echo")
    class Echo:
        name = "echo"
        description = "Says what it was asked."

        async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
            return RoleResult(summary=subtask.instructions, grade=False)

    reg = RoleRegistry().add_builtins()
    assert isinstance(reg.get("echo"), Echo)
    write_role(tmp_path / "roles", "mine.md", SKEPTIC.replace("name: skeptic", "name: engineer"))
    reg.add_role_files(tmp_path / "roles")
    entry = reg.entry("engineer")
    assert entry.source == f"file {tmp_path / 'roles' / 'mine.md'}"
    assert entry.shadows == "built-in"
    assert isinstance(reg.get("engineer"), FileRole)


def test_register_accepts_factories_and_instances() -> None:
    class Plain:
        name = "plain"
        description = "A role."

        async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
            return RoleResult()

    reg = RoleRegistry()
    reg.register("by-class", Plain)
    reg.register("by-factory", lambda: Plain())
    reg.register("not-a-role", lambda: object())
    assert isinstance(reg.get("by-class"), Plain) and isinstance(reg.get("by-factory"), Plain)
    broken = reg.get("not-a-role")
    assert isinstance(broken, BrokenRole) and "is not a role" in broken.error
    assert reg.describe() == {"by-class": "A role.", "by-factory": "A role.",
                              "not-a-role": f"(failed to load: {broken.error})"}
    assert "not-a-role" not in reg.describe(include_broken=False)


# --------------------------------------------------------------------------- role files


def test_role_file_becomes_a_role(tmp_path: Path) -> None:
    path = write_role(tmp_path, "skeptic.md", SKEPTIC)
    found = read_role_file(path)
    assert (found.name, found.model, found.tools) == ("skeptic", "openai:gpt-x",
                                                      ("bash", "read_file"))
    assert found.instructions == "You are a skeptic. Read train.py and look for leakage."
    assert found.path == path


def test_role_file_problems_all_at_once(tmp_path: Path) -> None:
    path = write_role(tmp_path, "x.md", """\
    ---
    name: bad name
    modle: openai:x
    tools: [bash, "rm -rf"]
    ---

    """)
    with pytest.raises(SpecError) as info:
        read_role_file(path)
    msg = str(info.value)
    assert f"{path}:2: name: 'bad name' is not a role name" in msg
    assert f"{path}:2: description: Field required; fix: add `description:`" in msg
    assert f"{path}:3: modle: unknown field; fix: remove it" in msg
    assert f"{path}:4: tools[1]: 'rm -rf' is not a tool name" in msg
    assert "the body is empty; fix:" in msg


@pytest.mark.parametrize(("text", "expected"), [
    ("no front matter here\n", ":1: no front matter; fix: start the file with"),
    ("---\nname: [unclosed\n---\nbody\n", "YAML syntax error"),
    ("---\n- a list\n---\nbody\n", ":2: expected a mapping of fields"),
])
def test_role_file_shape_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SpecError, match="invalid role file") as info:
        read_role_file(write_role(tmp_path, "r.md", text))
    assert expected in str(info.value)


def test_strict_role_files_stop_a_run(tmp_path: Path) -> None:
    write_role(tmp_path / "roles", "a.md", SKEPTIC)
    write_role(tmp_path / "roles", "b.md", SKEPTIC)
    write_role(tmp_path / "roles", "c.md", "---\nname: c\n---\nbody\n")
    with pytest.raises(SpecError) as info:
        RoleRegistry().add_role_files(tmp_path / "roles")
    msg = str(info.value)
    assert "role name 'skeptic' is also used by" in msg
    assert "c.md:2: description: Field required" in msg
    assert isinstance(info.value, ConfigError)


def test_file_role_without_model_fails_its_subtask(tmp_path: Path) -> None:
    found = FileRole(read_role_file(write_role(tmp_path, "skeptic.md", SKEPTIC)))
    ctx, _ = make_ctx()
    result = asyncio.run(run_role_guarded(found, subtask("skeptic"), ctx, 10))
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("role skeptic needs a model (--model anthropic:MODEL")
    assert str(found.path) in result.error


def test_file_role_runs_the_tool_loop_with_its_instructions_and_tools(tmp_path: Path) -> None:
    import dataclasses

    from labcoat.agents.llm.models import ScriptedModel, tool_reply
    from labcoat.experiment import load_experiment
    from tests.loop.conftest import make_experiment

    found = FileRole(read_role_file(write_role(tmp_path, "skeptic.md", SKEPTIC)))
    model = ScriptedModel([tool_reply("submit", {"summary": "No leakage: split before scaling."})])
    ctx, events = make_ctx(model=model)
    ctx = dataclasses.replace(ctx, spec=load_experiment(make_experiment(tmp_path / "toy")))
    result = asyncio.run(found.run(subtask("skeptic"), ctx))
    assert result.ok and result.summary == "No leakage: split before scaling."
    sent = model.calls[0]
    assert found.instructions in sent.messages[0].content
    assert "do the thing" in sent.messages[1].content
    assert [t.name for t in sent.tools] == ["bash", "read_file", "submit"]
    assert [(kind, fields["tool"], fields["subtask_id"]) for kind, fields in events] == [
        ("tool_call", "submit", "it001-01")]
    model.assert_complete()


# --------------------------------------------------------------------------- guarded runs


class Raiser:
    name = "raiser"
    description = "raises"

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        raise RuntimeError("boom")


class Hanger:
    name = "hanger"
    description = "never returns"

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        await asyncio.sleep(3600)
        return RoleResult()


class WrongType:
    name = "wrong"
    description = "returns a dict"

    async def run(self, subtask: Subtask, ctx: RoleContext) -> Any:
        return {"ok": True}


class SyncRun:
    name = "sync"
    description = "forgot async"

    def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        return RoleResult()


class Exiter:
    name = "exiter"
    description = "calls sys.exit"

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        sys.exit(3)


class OwnTimeout:
    name = "own-timeout"
    description = "a request of its own timed out"

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        raise TimeoutError("upstream took too long")


@pytest.mark.parametrize(("bad", "expected"), [
    (Raiser(), "role raiser raised RuntimeError: boom (at "),
    (Hanger(), "role hanger timed out: no result after 0.3 s"),
    (WrongType(), "role wrong returned the wrong type: expected RoleResult, got dict"),
    (SyncRun(), "role sync run() is not async: it returned RoleResult"),
    (Exiter(), "role exiter raised SystemExit: 3"),
    (OwnTimeout(), "role own-timeout raised TimeoutError: upstream took too long"),
])
def test_guard_turns_misbehaviour_into_a_failed_result(bad: Any, expected: str) -> None:
    ctx, _ = make_ctx()
    result = asyncio.run(run_role_guarded(bad, subtask(bad.name), ctx, 0.3))
    assert not result.ok and not result.grade
    assert result.error is not None and result.error.startswith(expected), result.error
    if isinstance(bad, Raiser):
        assert "test_registry.py:" in result.error


def test_guard_fails_only_the_broken_plugins_subtasks(test_plugin: str, tmp_path: Path) -> None:
    reg = default_registry()
    broken = reg.get("broken")
    ctx, _ = make_ctx(HostDirSandbox(tmp_path))

    async def both() -> list[RoleResult]:
        return list(await asyncio.gather(
            run_role_guarded(broken, subtask("broken"), ctx, 5),
            run_role_guarded(reg.get("ablator"), subtask("ablator"), ctx, 5),
            run_role_guarded(Raiser(), subtask("raiser"), ctx, 5)))

    failed, fine, raised = asyncio.run(both())
    assert not failed.ok and failed.error is not None
    assert failed.error.startswith("role broken could not be loaded: entry point `broken = ")
    assert "ImportError: labcoat_test_plugin.broken is broken on purpose" in failed.error
    assert fine.ok and "nothing to ablate" in fine.summary and not fine.changes
    assert not raised.ok


def test_guard_passes_a_good_result_through(test_plugin: str, tmp_path: Path) -> None:
    (tmp_path / "params.json").write_text(json.dumps({"C": 1.0, "gamma": 0.1, "model": "svm"}))
    ctx, events = make_ctx(HostDirSandbox(tmp_path))
    ablator = default_registry().get("ablator")
    result = asyncio.run(run_role_guarded(ablator, subtask("ablator", drop="gamma"), ctx, 30))
    assert result.ok, result.error
    assert result.summary == "ablated gamma=0.1; kept C, model"
    assert json.loads((tmp_path / "params.json").read_text()) == {"C": 1.0, "model": "svm"}
    assert events and events[-1][0] == "sandbox_exec"
    # Default: the first parameter by name; an unknown one fails with the known ones listed.
    result = asyncio.run(run_role_guarded(ablator, subtask("ablator"), ctx, 30))
    assert result.summary == "ablated C=1.0; kept model"
    result = asyncio.run(run_role_guarded(ablator, subtask("ablator", drop="lr"), ctx, 30))
    assert not result.ok and result.error == "ablator: no parameter 'lr' in params.json " \
                                             "(it has: model)"


def test_print_roles_draws_a_table_on_a_tty(test_plugin: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    write_role(tmp_path / "roles", "skeptic.md", SKEPTIC)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    cli.roles(tmp_path)
    out = capsys.readouterr().out
    assert "labcoat roles" in out and "┃ role" in out
    table = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert "plugin labcoat-test-plugin" in table["ablator"]
    assert "file " in table["skeptic"] and "built-in" in table["engineer"]
