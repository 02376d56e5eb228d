"""Cutting text down to size: one function per way of cutting, used everywhere.

    head(text, n)       the start, with a marker saying how much was cut (commands)
    tail(text, n)       the end, with a marker (stdout/stderr tails)
    middle(text, n)     the start and the end, with a marker between (output shown to a model)
    squash(text, n)     one line, white space folded, "..." where it was cut (digests, tables)
    first_line(text, n) the first non-blank line, "..." where it was cut (timelines)

Every function returns at most `n` characters (`middle` adds only its marker line).
"""

from __future__ import annotations


def head(text: str, limit: int) -> str:
    """At most `limit` characters: the start of `text`, saying how much was cut. Idempotent."""
    if len(text) <= limit:
        return text
    marker = f" [...{len(text) - limit + 40} chars cut]".rjust(40)
    return text[:limit - 40] + marker


def tail(text: str, limit: int) -> str:
    """At most `limit` characters: the end of `text`, saying how much was cut. Idempotent."""
    if len(text) <= limit:
        return text
    marker = f"[...{len(text) - limit + 40} chars cut]".ljust(39) + "\n"
    return marker + text[len(text) - limit + 40:]


def middle(text: str, limit: int) -> str:
    """Keep the head and the tail of a long text, with a marker where it was cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters cut ...]\n{text[-half:]}"


def squash(text: object, limit: int) -> str:
    """`text` on one line (white space folded), cut to `limit` characters with "..."."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def first_line(text: str | None, limit: int = 90) -> str:
    """The first non-blank line of `text`, cut to `limit` characters with "..."."""
    stripped = (text or "").strip()
    line = stripped.splitlines()[0] if stripped else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def num(value: float | None, digits: int = 4, none: str = "n/a") -> str:
    """A metric for people: `digits` significant digits, `none` when there is no value."""
    return none if value is None else f"{value:.{digits}g}"
