"""Pages to HTML: Jinja2 templates (package data) with autoescape on everything.

Nothing in the templates is marked safe: every value, agent text or not, is escaped, and the
pictures are SVG elements whose attributes are escaped the same way.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2
from pydantic import BaseModel

from labcoat.text import num

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'")
"""What a page may load: its own script and style, nothing inline, nothing from elsewhere (also
in each page's <meta>, so that an exported page opened from disk keeps it)."""


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["num"] = lambda value, digits=6: num(value, digits, none="-")
    return env


def render(template: str, page: BaseModel | None, **context: object) -> str:
    """`template` filled with `page` (as `page`) and `context` (`links`, `seen`, ...)."""
    return environment().get_template(template).render(page=page, csp=CSP, **context)
