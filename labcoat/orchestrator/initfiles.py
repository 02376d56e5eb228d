"""The files `labcoat init` writes: a commented experiment.yaml and a grader skeleton."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

MINIMIZE = re.compile(r"loss|err|rmse|mse|mae|perplexity|time|latency|seconds|cost|bpc",
                      re.IGNORECASE)
"""Metric names that are better small."""


def guess_direction(metric: str) -> str:
    """`minimize` for names like loss, error, rmse, time; else `maximize`."""
    return "minimize" if MINIMIZE.search(metric) else "maximize"


def _q(text: str) -> str:
    """A YAML scalar that reads back as `text` (JSON strings are YAML)."""
    return json.dumps(text)


def spec_text(*, name: str, run: str, evaluate: str, metric: str, direction: str,
              grader: Sequence[str]) -> str:
    """experiment.yaml with a comment on each field (README.md, "Configuration")."""
    moved = ", ".join(grader) or "nothing yet"
    return f"""\
# Written by `labcoat init`. Every field: README.md, "Configuration: an experiment".
name: {_q(name)}
# The research goal the manager works towards (`labcoat run --goal` overrides it).
goal: {_q(f"Improve {metric} ({direction}).")}
# Runs in /workspace (a copy of workspace/) in a sandbox that has no grader in it.
run: {_q(run)}
# Runs on the outputs of `run`, with grader/ read-only at /grader (moved there: {moved}).
# Its last stdout line must be a JSON object holding the metric.
evaluate: {_q(evaluate)}
metric:
  name: {_q(metric)}
  direction: {direction}  # maximize | minimize
# Limits of every sandbox; `network: bridge` only if the project must download.
resources:
  cpus: 1
  memory: 2g
  timeout_s: 600
  network: none
# Parameters the search brain (no LLM) may try, delivered as /workspace/params.json and as
# LABCOAT_PARAM_<NAME> variables; without any, only an LLM brain can change the code. E.g.:
#   lr: {{type: log_float, low: 0.0001, high: 0.1}}
#   model: {{type: categorical, choices: [small, large]}}
search_space: {{}}
# How the critic checks a gain: re-runs the leader with this many new seeds.
critic:
  seeds: 2
"""


SKELETON = '''\
"""Score the outputs of `run` and print one JSON object as the last line.

Written by `labcoat init` as a skeleton. labcoat runs it in a fresh sandbox: the outputs of
`run` in /workspace (the working directory), this folder read-only at /grader. The agents
never see this folder, so keep what the score is checked against here (held-out labels, the
real test set), not in the workspace.

TODO: compute {metric!r} from the outputs against what only the grader has. Until then it
reads outputs/metrics.json, which the code being graded writes itself: a placeholder that
trusts it, not a grader.
"""

import json
import sys
from pathlib import Path

GRADER = Path(__file__).resolve().parent

try:
    reported = json.loads(Path("outputs/metrics.json").read_text())
    value = float(reported[{metric!r}])
except (OSError, ValueError, KeyError, TypeError) as err:
    print(f"no {metric!r} in outputs/metrics.json ({{err}}); finish grader/evaluate.py",
          file=sys.stderr)
    sys.exit(1)
print(json.dumps({{{metric!r}: value}}))
'''
