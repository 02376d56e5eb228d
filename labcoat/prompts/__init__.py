"""Role prompt templates (Jinja2, package data). Override one per experiment by putting a file of
the same name in `<experiment>/prompts/`; see `labcoat.agents.prompts`."""
