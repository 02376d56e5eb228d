"""Role prompts: Jinja2 templates in `labcoat/prompts/`, overridable per experiment.

`render_prompt("engineer", experiment_dir=exp, experiment=spec, subtask=st)` renders
`<exp>/prompts/engineer.j2` when the experiment ships one, else labcoat's own. An override can
reuse the built-in with `{% extends "labcoat/engineer.j2" %}`. Undefined variables are errors
(StrictUndefined): a template never renders a silent blank.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from labcoat.errors import ConfigError

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "prompts"


@lru_cache(maxsize=16)
def _environment(experiment_dir: str | None) -> jinja2.Environment:
    builtin = jinja2.FileSystemLoader(str(BUILTIN_DIR))
    loaders: list[jinja2.BaseLoader] = []
    if experiment_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(Path(experiment_dir) / "prompts")))
    loaders += [builtin, jinja2.PrefixLoader({"labcoat": builtin})]
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render_prompt(name: str, *, experiment_dir: Path | str | None = None, **context: Any) -> str:
    """Render template `name` (`engineer` or `engineer.j2`) with `context`."""
    filename = name if name.endswith(".j2") else f"{name}.j2"
    env = _environment(str(experiment_dir) if experiment_dir is not None else None)
    try:
        return env.get_template(filename).render(**context).strip() + "\n"
    except jinja2.TemplateNotFound:
        where = f"{experiment_dir}/prompts/ or " if experiment_dir else ""
        raise ConfigError(
            f"prompt template {filename!r} not found in {where}{BUILTIN_DIR}"
        ) from None
    except jinja2.UndefinedError as err:
        raise ConfigError(f"prompt template {filename!r}: {err.message}; pass it to "
                          "render_prompt or remove it from the template") from None
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"prompt template {err.filename or filename}:{err.lineno}: "
                          f"{err.message}") from None
