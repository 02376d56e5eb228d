"""`labcoat view`: a live web viewer over run logs, and its static export.

    from labcoat.views.web import create_app, serve, export_site

It only reads: the log through the log's own verifier (`index`), the workspace's git history for
diffs, and files confined to the run directory. Pages are data first (`models`, served as JSON)
and HTML second (Jinja2 templates, autoescaped, package data). Import-light: FastAPI, uvicorn
and Jinja2 load when a viewer is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labcoat.lazy import lazy_exports

if TYPE_CHECKING:
    from labcoat.views.web.app import create_app
    from labcoat.views.web.export import export_site
    from labcoat.views.web.serve import serve

_LAZY = {
    "create_app": "labcoat.views.web.app",
    "export_site": "labcoat.views.web.export",
    "serve": "labcoat.views.web.serve",
}

__all__ = ["create_app", "export_site", "serve"]

__getattr__ = lazy_exports(__name__, _LAZY)
