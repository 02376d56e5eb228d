"""Roles and brains. What a custom role needs is importable from here::

    from labcoat.agents import Role, RoleContext, RoleResult, Subtask, Critique

Import-light: the model SDKs, Optuna and docker load only where they are used.
"""

from labcoat.agents.base import Critique, Role, RoleContext, RoleResult, Subtask

__all__ = ["Critique", "Role", "RoleContext", "RoleResult", "Subtask"]
