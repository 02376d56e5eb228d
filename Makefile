# The README's two commands: `make demo` and `make test`. Both run `setup` first, which is idempotent.
# `make test-fast` runs everything that needs no Docker engine (it neither starts nor waits for one).
PY := .venv/bin/python
LABCOAT := .venv/bin/labcoat

.PHONY: setup setup-python demo test test-fast check lint bench clean-sandboxes screenshots

setup:
	@bash scripts/setup.sh

setup-python:
	@bash scripts/setup.sh --python-only

demo: setup
	@bash scripts/demo.sh

# Static checks: style, the layer contracts (import-linter) and the types (mypy).
check:
	@$(PY) -m ruff check labcoat tests benchmarks
	@.venv/bin/lint-imports --no-cache
	@$(PY) -m mypy

# Three workers (most tests wait on containers and subprocesses, not on the 2 cores), a test
# file per worker at a time (module fixtures: a browser, a sandbox, a Ray cluster), in collection
# order: the longest files first (tests/conftest.py LONGEST_FIRST; xdist would sort files by
# their number of tests, which put the few long ones last).
XDIST := -n 3 --dist loadfile --no-loadscope-reorder

test: setup check
	@$(PY) -m pytest -q $(XDIST)

test-fast: setup-python check
	@DOCKER_HOST=unix:///nonexistent/docker.sock $(PY) -m pytest -q $(XDIST) -m "not docker and not slow" -p no:cacheprovider

lint: check

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

# The README's pictures of `labcoat view` (docs/view-*.png), from a real run on the bundled
# digits experiment (the LLM brain against the tests' local scripted server).
screenshots: setup
	@$(PY) -m tests.views.screenshots docs

clean-sandboxes:
	@$(LABCOAT) sandbox cleanup
