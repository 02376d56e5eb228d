"""Roles and brains. What a custom role needs is importable from here::

    from labcoat.agents import Role, RoleContext, RoleResult, Subtask, Critique

Inside: the role API (`role`), the model protocol (`model`), the manager API (`manager`), the
registry of built-in, plugin and role-file roles (`registry`), the built-in roles (`builtin`),
the critic's judgement (`judge`), and the two brains: `search/` (no LLM) and `llm/`.
Import-light: the model SDKs, Optuna and docker load only where they are used.
"""

from labcoat.agents.role import Critique, Role, RoleContext, RoleResult, Subtask

__all__ = ["Critique", "Role", "RoleContext", "RoleResult", "Subtask"]
