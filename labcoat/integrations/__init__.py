"""labcoat inside other tools: thin translation modules, each behind an optional extra.

    inspect_sandbox   an Inspect AI sandbox provider (`sandbox="labcoat"`), `labcoat[inspect]`

At the orchestrator's level of the layers: an integration may use the sandboxes (and what lies
below them); nothing of labcoat imports an integration.
"""
