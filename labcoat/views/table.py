"""Tables for people and for pipes: a rich table on a terminal, tab-separated lines elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from labcoat.text import inert


def print_rows(headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str = "",
               error_prefix: str = "ERROR: ") -> None:
    """Print `rows`; on a TTY as a table whose rows starting with `error_prefix` are red.
    Cells are shown inert, and never read as rich markup."""
    if not sys.stdout.isatty():
        for row in rows:
            print(inert("\t".join(row)))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*headers, title=title or None)
    for row in rows:
        style = "red" if any(cell.startswith(error_prefix) for cell in row) else None
        table.add_row(*(Text(inert(cell)) for cell in row), style=style)
    Console().print(table)
