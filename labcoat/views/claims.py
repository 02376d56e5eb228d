"""The reproduction for people: the claims and their verdicts, the reproduction fix, and why the
baseline does not run. One wording for `labcoat status`, `labcoat log`, the report and the
viewer (`labcoat.log.reproduction` reads them from the fold).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from labcoat.log import RunState
from labcoat.log.reproduction import baseline_failure, claim_rows, reproducer, reproduction_fix
from labcoat.text import first_line, num


class ClaimLike(Protocol):
    """A `ClaimCheck` of the fold or a `claim_checked` event: the fields both have."""

    @property
    def claim(self) -> int: ...
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def tolerance(self) -> float: ...
    @property
    def source(self) -> str: ...
    @property
    def verdict(self) -> str: ...
    @property
    def mean(self) -> float | None: ...
    @property
    def std(self) -> float | None: ...
    @property
    def values(self) -> Mapping[str, float]: ...


def claimed(c: ClaimLike) -> str:
    """`accuracy 0.995 ± 0.005 (Table 2)`."""
    where = f" ({c.source})" if c.source else ""
    return f"{c.metric} {num(c.value, 6)} ± {num(c.tolerance, 3)}{where}"


def measured(c: ClaimLike) -> str:
    """`0.9812 ± 0.0021 over seeds 0, 1, 2`, or `-` before the check."""
    if c.mean is None:
        return "-"
    seeds = ", ".join(sorted(c.values, key=int))
    spread = f" ± {num(c.std, 2)}" if c.std is not None else ""
    return f"{num(c.mean, 6)}{spread} over seed{'s' * (len(c.values) != 1)} {seeds}"


def claim_line(c: ClaimLike) -> str:
    """One line per claim: `claim 2: not_reproduced: claimed ..., measured ...`."""
    return f"claim {c.claim + 1}: {c.verdict}: claimed {claimed(c)}, measured {measured(c)}"


def counts(state: RunState) -> str:
    """`2 claims: 1 reproduced, 1 not_reproduced`."""
    rows = claim_rows(state)
    tally: dict[str, int] = {}
    for c in rows:
        tally[c.verdict] = tally.get(c.verdict, 0) + 1
    return f"{len(rows)} claim{'s' * (len(rows) != 1)}: " + ", ".join(
        f"{n} {verdict}" for verdict, n in tally.items())


def status_lines(state: RunState) -> list[str]:
    """The reproduction's lines of `labcoat status` (none when there is nothing to say)."""
    lines = []
    failure = baseline_failure(state)
    rec = reproducer(state)
    if failure is not None and rec is not None:
        lines.append(f"baseline  does not run ({rec.id}): "
                     f"{first_line(failure, 240).removeprefix('the baseline does not run: ')}")
    fix = reproduction_fix(state)
    if fix is not None:
        lines.append(f"fix       {fix.id} @ {(fix.commit or '-')[:10]} is the baseline now: "
                     f"{first_line(fix.summary, 100)}")
    rows = claim_rows(state)
    if rows:
        lines.append(f"claims    {counts(state)}")
        lines += [f"  {claim_line(c)}" for c in rows]
    return lines


def report_lines(state: RunState, fix_diff: str) -> list[str]:
    """The report's sections: the claims table and the reproduction fix with its diff."""
    lines: list[str] = []
    failure = baseline_failure(state)
    if failure is not None:
        lines += ["## The baseline does not run", "", "```", failure, "```", ""]
    rows = claim_rows(state)
    if rows:
        lines += ["## Claims", "", "| # | metric | claimed | source | measured | verdict |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {c.claim + 1} | {c.metric} | {num(c.value, 6)} ± {num(c.tolerance, 3)} "
                  f"| {_cell(c.source)} | {measured(c)} | **{c.verdict}** |" for c in rows]
        lines += [""] + [f"- claim {c.claim + 1}: {_cell(c.reason)}" for c in rows if c.reason]
        lines += [""]
    fix = reproduction_fix(state)
    if fix is not None:
        lines += ["## Reproduction fix", "",
                  f"`{fix.id}` changed the code so that the baseline runs (commit "
                  f"`{(fix.commit or '')[:10]}`): {_cell(fix.summary)}. It is the baseline every "
                  "result is compared with, not an improvement.", ""]
        if fix_diff:
            lines += ["```diff", fix_diff, "```", ""]
    return lines


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())
