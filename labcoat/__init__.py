"""labcoat: an autonomous research lab in a box.

A manager agent splits a research goal into subtasks, role sub-agents carry them out in
Docker sandboxes, and an append-only experiment log records everything so that a run can
resume from it. Public entry points live in the subpackages (`labcoat.sandboxes`,
`labcoat.orchestrator`, `labcoat.agents`); this module stays import-light so that the CLI
starts fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
