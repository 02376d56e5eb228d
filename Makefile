# The README's two commands: `make demo` and `make test`. Both run `setup` first, which is idempotent.
PY := .venv/bin/python
LABCOAT := .venv/bin/labcoat

.PHONY: setup demo test lint bench clean-sandboxes

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@$(PY) -m ruff check labcoat tests benchmarks
	@$(PY) -m pytest -q

lint:
	@$(PY) -m ruff check labcoat tests benchmarks

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

clean-sandboxes:
	@$(LABCOAT) sandbox cleanup
