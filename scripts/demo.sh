#!/usr/bin/env bash
# `make demo`: after setup, a real research run on the bundled digits experiment with the search
# brain (no LLM, no API key): 3 iterations, 2 subtasks at a time. Ends with baseline vs best and
# the path of report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/labcoat doctor
echo
.venv/bin/labcoat run experiments/digits --max-iterations 3 --parallel 2 --seed 0 --runs-dir runs
