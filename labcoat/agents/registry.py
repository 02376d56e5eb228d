"""The role registry: built-ins, `labcoat.roles` entry-point plugins and Markdown role files.

Roles resolve by short name (`engineer`, `ablator`) or by dotted path (`package.module:Class`).
Plugins load lazily, and a plugin that cannot load never breaks the registry: it is listed with
its error, and `get()` hands back a `BrokenRole` that fails only the subtasks given to it.
(`labcoat.agents.guard` runs any role so that its failures cost only its subtask.)

Import-light on purpose: `labcoat roles` must not pull in docker, langgraph or the model SDKs.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from labcoat.agents.fileroles import FileRole
from labcoat.agents.role import Role, RoleContext, RoleResult, Subtask
from labcoat.errors import ConfigError, LabcoatError, SpecError, UnknownRoleError, one_line
from labcoat.experiment import scan_role_files
from labcoat.experiment.messages import problem_list

if TYPE_CHECKING:
    from labcoat.experiment import Experiment, SearchParam

ENTRY_POINT_GROUP = "labcoat.roles"
BUILTIN_MODULE = "labcoat.agents.builtin"
T = TypeVar("T")

_DECORATED: dict[str, tuple[Callable[[], Any], str]] = {}
"""Roles registered with `@role(...)`; every registry made afterwards starts with them."""


class RoleLoadError(Exception):
    """A role's code could not be imported or does not implement the Role protocol."""


@dataclass
class BrokenRole:
    """Stands in for a role that failed to load: it fails every subtask it is given."""

    name: str
    error: str
    description: str = "(failed to load)"

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        return RoleResult(ok=False, grade=False, changes=False,
                          error=f"role {self.name} could not be loaded: {self.error}")


@dataclass
class RoleEntry:
    """One registered role: where it comes from and how to make it."""

    name: str
    source: str
    """`built-in`, `plugin <distribution>`, `file <path>` or `path <module:attr>`."""
    target: Callable[[], Any]
    """Returns the role's class, factory or instance; imports happen only when it is called."""
    shadows: str | None = None
    """The source of an earlier role with the same name that this one replaces."""
    _resolved: Any = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)

    def make(self) -> Role:
        """A role object ready to run, or a `BrokenRole` carrying the load error."""
        try:
            return _instantiate(self._resolve(), self.name)
        except RoleLoadError as err:
            self._error = str(err)
            return BrokenRole(self.name, self._error)

    def _resolve(self) -> Any:
        if self._error is not None:
            raise RoleLoadError(self._error)
        if self._resolved is None:
            self._resolved = _guarded_import(self.target, self.source)
        return self._resolved


def _guarded_import(target: Callable[[], Any], source: str) -> Any:
    try:
        return target()
    except RoleLoadError:
        raise
    except Exception as err:
        raise RoleLoadError(f"{source} failed to import: {one_line(err)}") from err


def _instantiate(obj: object, name: str) -> Role:
    """Accept a Role class, a factory returning a role, or a role instance."""
    try:
        role = obj() if isinstance(obj, type) or (not _is_role(obj) and callable(obj)) else obj
    except Exception as err:
        raise RoleLoadError(f"creating role {name} failed: {one_line(err)}") from err
    if not _is_role(role):
        raise RoleLoadError(
            f"{_qualname(obj)} is not a role: it needs `name` and `description` strings and "
            "`async def run(self, subtask, ctx) -> RoleResult`")
    return cast(Role, role)


def _is_role(obj: object) -> bool:
    return (not isinstance(obj, type) and isinstance(getattr(obj, "name", None), str)
            and isinstance(getattr(obj, "description", None), str)
            and inspect.iscoroutinefunction(getattr(obj, "run", None)))


def _qualname(obj: object) -> str:
    kind = obj if isinstance(obj, type) or callable(obj) else type(obj)
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', repr(kind))}"


def role(name: str, *, source: str = "built-in") -> Callable[[T], T]:
    """Class/factory decorator: `@role("engineer")` registers it for every new registry."""

    def register(obj: T) -> T:
        _DECORATED[name] = (lambda: obj, source)
        return obj

    return register


class RoleRegistry:
    """Named roles from every source. Later sources replace earlier ones with the same name:
    built-ins, then plugins, then the experiment's role files."""

    def __init__(self) -> None:
        self._entries: dict[str, RoleEntry] = {}

    def register(self, name: str, factory: Callable[[], Any], *, source: str = "built-in",
                 lazy: bool = False) -> None:
        """Add a role. `factory` is a Role class or factory (or, with `lazy`, a callable that
        returns one; used for entry points so nothing imports before it is needed)."""
        target = factory if lazy else (lambda: factory)
        old = self._entries.get(name)
        shadows = old.source if old is not None else None
        self._entries[name] = RoleEntry(name=name, source=source, target=target, shadows=shadows)

    def add_builtins(self) -> RoleRegistry:
        """The built-in roles (`labcoat.agents.builtin.BUILTIN_ROLES`) and `@role` ones."""
        if importlib.util.find_spec(BUILTIN_MODULE) is not None:
            builtins = getattr(importlib.import_module(BUILTIN_MODULE), "BUILTIN_ROLES", {})
            for name, factory in builtins.items():
                self.register(name, factory)
        for name, (target, source) in _DECORATED.items():
            self.register(name, target, source=source, lazy=True)
        return self

    def add_plugins(self) -> RoleRegistry:
        """Every entry point in the `labcoat.roles` group, unloaded until first use."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            self.register(ep.name, _entry_point_loader(ep), source=_plugin_source(ep), lazy=True)
        return self

    def add_role_files(self, folder: Path, *, strict: bool = True) -> RoleRegistry:
        """The `*.md` role files in `folder`. Invalid files raise one `SpecError` listing every
        problem (`strict`), or are listed as broken roles (for `labcoat roles`)."""
        roles, bad = scan_role_files(folder)
        problems = [line for lines in bad.values() for line in lines]
        if strict and problems:
            raise SpecError(problem_list(str(folder), "role files", problems))
        for found in roles:
            self.register(found.name, _file_role(FileRole(found)), source=f"file {found.path}",
                          lazy=True)
        for path, lines in bad.items():
            message = "invalid role file: " + " | ".join(lines)
            self.register(path.stem, _raiser(message), source=f"file {path}", lazy=True)
        return self

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> RoleEntry:
        """The registered entry for a short name (`UnknownRoleError` when there is none)."""
        if name not in self._entries:
            raise UnknownRoleError(self._unknown(name))
        return self._entries[name]

    def get(self, name: str) -> Role:
        """The role for a short name or a dotted path `package.module:Class`.

        An unknown name raises `UnknownRoleError`; a registered role whose code cannot load
        comes back as a `BrokenRole` (so only its own subtasks fail).
        """
        if name in self._entries:
            return self._entries[name].make()
        if ":" in name or "." in name:
            return self._from_path(name)
        raise UnknownRoleError(self._unknown(name))

    def check(self, names: Iterable[str]) -> None:
        """Raise one `UnknownRoleError` naming every role in `names` that cannot be resolved."""
        bad = []
        for name in names:
            try:
                self.get(name)
            except UnknownRoleError as err:
                bad.append(str(err))
        if bad:
            raise UnknownRoleError("\n".join(bad))

    def describe(self, names: Iterable[str] | None = None, *,
                 include_broken: bool = True) -> dict[str, str]:
        """name -> description (the manager's menu). A broken role reads `(failed to load: ...)`
        so a manager that still assigns it gets a failed subtask with the error in the log."""
        wanted = self.names() if names is None else list(names)
        roles = {name: self.get(name) for name in wanted}
        return {n: (f"(failed to load: {r.error})" if isinstance(r, BrokenRole) else r.description)
                for n, r in roles.items() if include_broken or not isinstance(r, BrokenRole)}

    def listing(self) -> list[tuple[RoleEntry, Role]]:
        """Every entry with its loaded role (a `BrokenRole` when loading failed)."""
        return [(self._entries[n], self._entries[n].make()) for n in self.names()]

    def _from_path(self, path: str) -> Role:
        module, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr)
            return _instantiate(obj, path)
        except (ImportError, AttributeError, RoleLoadError) as err:
            why = str(err) if isinstance(err, RoleLoadError) else one_line(err)
            raise UnknownRoleError(
                f"role {path!r} could not be loaded: {why}; fix: check the module "
                f"and name (`package.module:Class`) and that its package is installed") from err

    def _unknown(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return (f"unknown role {name!r}; known roles: {', '.join(self.names()) or 'none'}. "
                f"fix: {hint}use one of these, a dotted path `package.module:Class`, a role file "
                f"in the experiment's roles/ folder, or install a plugin that provides it "
                f"(entry-point group {ENTRY_POINT_GROUP!r})")


def _file_role(role: FileRole) -> Callable[[], Any]:
    return lambda: role


def _raiser(message: str) -> Callable[[], Any]:
    def load() -> Any:
        raise RoleLoadError(message)

    return load


def _entry_point_loader(ep: EntryPoint) -> Callable[[], Any]:
    def load() -> Any:
        try:
            return ep.load()
        except Exception as err:
            raise RoleLoadError(f"entry point `{ep.name} = {ep.value}` of {_plugin_source(ep)} "
                                f"failed to import: {one_line(err)}") from err

    return load


def _plugin_source(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"plugin {dist.name if dist is not None else ep.value}"


def default_registry(experiment_dir: Path | None = None, *, strict: bool = True) -> RoleRegistry:
    """Built-ins, installed plugins and (given an experiment folder) its role files."""
    registry = RoleRegistry().add_builtins().add_plugins()
    if experiment_dir is not None:
        registry.add_role_files(Path(experiment_dir) / "roles", strict=strict)
    return registry


def role_models(registry: RoleRegistry, roles: Iterable[str]) -> dict[str, str]:
    """Model specs that role files name in their front matter (`model:`), by role."""
    out: dict[str, str] = {}
    for name in roles:
        try:
            made = registry.get(name)
        except UnknownRoleError:
            continue
        spec = made.model if isinstance(made, FileRole) else None
        if spec is not None and ":" in spec:
            out[name] = spec
    return out


BUILTIN_NAMES = frozenset({"reproducer", "engineer", "critic", "manager"})
SEARCH_BRAINS = frozenset({"search", "random"})
"""Brains without a model: the search brain and its random-search floor."""


def declared_space(role: Role) -> dict[str, SearchParam]:
    """A role's own `search_space` class attribute, validated like experiment.yaml's
    (`ConfigError` naming the role when it is not a valid space)."""
    from pydantic import TypeAdapter, ValidationError

    from labcoat.experiment.spec import SearchSpace

    raw = getattr(role, "search_space", None)
    if not raw:
        return {}
    try:
        return dict(TypeAdapter(SearchSpace).validate_python(raw))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"role {role.name}: its `search_space` attribute is invalid at "
                          f"{where or 'the top'}: {first['msg']}; fix: give "
                          "`{param: {type: float|int|categorical|log_float, ...}}`") from None


def role_spaces(registry: RoleRegistry, roles: Iterable[str],
                role_params: Mapping[str, Mapping[str, SearchParam]],
                ) -> dict[str, dict[str, SearchParam]]:
    """Each custom role's parameter space: experiment.yaml's `role_params`, else the role's
    own `search_space` attribute (roles with neither are left out)."""
    out: dict[str, dict[str, SearchParam]] = {}
    for name in roles:
        if name in BUILTIN_NAMES:
            continue
        space = dict(role_params.get(name) or {})
        if not space:
            try:
                space = declared_space(registry.get(name))
            except LabcoatError:
                continue  # an unknown or broken role: preflight says so before a run
        if space:
            out[name] = space
    return out


def check_roles(registry: RoleRegistry, names: Iterable[str], *, brain: str) -> None:
    """Every role `roles:` names can work under `brain`: it loads, its declared parameter
    space is valid, and a role file (which needs a model) is not left to the search brain.
    One `ConfigError` (exit 2) lists every problem, before any container exists."""
    problems = []
    for name in names:
        try:
            problems += _role_problems(registry.get(name), name, brain)
        except UnknownRoleError as err:
            problems.append(str(err))
    if problems:
        raise ConfigError("\n".join(problems))


def _role_problems(made: Role, name: str, brain: str) -> list[str]:
    if isinstance(made, BrokenRole):
        return [f"role {name} (in roles:) cannot be loaded: {made.error}; fix: repair or "
                f"reinstall its package, or remove {name} from roles:"]
    if isinstance(made, FileRole) and brain in SEARCH_BRAINS:
        return [f"role {name} ({made.path}) is a role file: it works through a model, and the "
                f"{brain} brain has none; fix: run with --model anthropic:MODEL or --model "
                f"openai:MODEL, or remove {name} from roles:"]
    try:
        declared_space(made)
    except ConfigError as err:
        return [str(err)]
    return []


def preflight_roles(exp: Experiment, brain: str, role_models: Iterable[str]) -> None:
    """`check_roles` on every role experiment.yaml's `roles:` names, and `check_role_models`
    on the `--role-model` flags: the run's role checks, before anything exists."""
    registry = default_registry(exp.dir)
    if exp.spec.roles:
        check_roles(registry, exp.spec.roles, brain=brain)
    check_role_models(role_models, brain=brain, roles=exp.spec.roles or registry.names())


def check_role_models(items: Iterable[str], *, brain: str, roles: Iterable[str]) -> None:
    """`--role-model ROLE=SPEC` flags that cannot take effect: under a brain without models,
    or naming a role the run does not have. One `ConfigError` (exit 2)."""
    known = {*roles, "manager"}
    for item in items:
        role = item.partition("=")[0].strip()
        if brain in SEARCH_BRAINS:
            raise ConfigError(f"--role-model {item}: the {brain} brain uses no model, so it "
                              "cannot take effect; fix: drop it, or run with --model "
                              "anthropic:MODEL or --model openai:MODEL")
        if role not in known:
            raise ConfigError(f"--role-model {item}: this run has no role {role!r} (roles: "
                              f"{', '.join(sorted(known))}); fix: name one of them")


def role_rows(experiment_dir: Path | None) -> list[tuple[str, str, str]]:
    """(name, source, description or `ERROR: ...`) for every role, for `labcoat roles`."""
    if experiment_dir is not None and not Path(experiment_dir).is_dir():
        raise ConfigError(f"{experiment_dir}: no such experiment folder; fix: pass the folder "
                          "that holds experiment.yaml (and roles/)")
    rows = []
    for entry, made in default_registry(experiment_dir, strict=False).listing():
        source = entry.source + (f" (replaces {entry.shadows})" if entry.shadows else "")
        text = ("ERROR: " + made.error) if isinstance(made, BrokenRole) else made.description
        rows.append((entry.name, source, " ".join(text.split())))
    return rows
