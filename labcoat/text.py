"""Text for people: cut to size, made inert for a terminal, secrets redacted.

    head(text, n)       the start, with a marker saying how much was cut (commands)
    tail(text, n)       the end, with a marker (stdout/stderr tails)
    middle(text, n)     the start and the end, with a marker between (output shown to a model)
    squash(text, n)     one line, white space folded, "..." where it was cut (digests, tables)
    first_line(text, n) the first non-blank line, "..." where it was cut (timelines)
    inert(text)         control characters as visible escapes (whatever a terminal shows)
    redact(text, keys)  every secret, and every long fragment of one in any case, replaced

Every cutting function returns at most `n` characters (`middle` adds only its marker line).
"""

from __future__ import annotations

from collections.abc import Iterable


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


def _escapes() -> dict[int, str]:
    # C0 but tab and newline, DEL and C1 (8-bit CSI/OSC), the bidi overrides that make text
    # read in another order than it is ("Trojan source"), and lone surrogates (bytes that were
    # not UTF-8, which a strict terminal encoder refuses with a traceback).
    codes = [*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]
    table = {c: f"\\x{c:02x}" for c in codes}
    for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), *range(0xD800, 0xE000)]:
        table[c] = f"\\u{c:04x}"
    return table


_INERT = _escapes()


def inert(text: str) -> str:
    """`text` safe to print: escape sequences, carriage returns, bells, bidi overrides and
    invalid bytes (lone surrogates) become visible `\\x1b`-style escapes; newline and tab stay.

    Used wherever a person reads what agent code produced: the timeline, live progress,
    status, report.md, commit messages and error lines.
    """
    return text.translate(_INERT)


REDACTED = "[REDACTED]"
FRAGMENT = 12
"""A run of this many characters of a secret (in any case) is redacted wherever it appears."""
MIN_SECRET = 8
"""Shorter values are never redacted (they would match ordinary words)."""
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret, and every run of `FRAGMENT`+ characters of one, in any case
    (a provider that echoes the key upper-cased or cut short), replaced by `[REDACTED]`."""
    keys = [s for s in secrets if s and len(s) >= MIN_SECRET]
    if not keys:
        return text
    folded = text.translate(_ASCII_LOWER)  # same length as `text`: spans carry over
    spans = [span for key in keys for span in _matches(folded, key.translate(_ASCII_LOWER))]
    return _replace(text, spans) if spans else text


def _matches(text: str, key: str) -> list[tuple[int, int]]:
    """Spans of `text` that are the whole `key` or a run of `FRAGMENT`+ of its characters.

    Any such run contains one of `key`'s aligned `step`-grams (step = FRAGMENT // 2 and a run
    of 2*step characters), so a few `find` calls locate every candidate; each is then grown
    both ways while it keeps matching `key`.
    """
    need = min(len(key), FRAGMENT)
    step = max(1, need // 2)
    spans = []
    for at in range(0, len(key) - step + 1, step):
        gram, pos = key[at:at + step], text.find(key[at:at + step])
        while pos >= 0:
            start, end = _grow(text, key, pos, at, len(gram))
            if end - start >= need:
                spans.append((_whole_escape(text, start), end))
            pos = text.find(gram, pos + 1)
    return spans


def _grow(text: str, key: str, pos: int, at: int, size: int) -> tuple[int, int]:
    start, k = pos, at
    while start > 0 and k > 0 and text[start - 1] == key[k - 1]:
        start, k = start - 1, k - 1
    end, k = pos + size, at + size
    while end < len(text) and k < len(key) and text[end] == key[k]:
        end, k = end + 1, k + 1
    return start, end


def _whole_escape(text: str, start: int) -> int:
    """Widen a span that starts right after an escaping backslash (`\\n` in JSON text) to take
    the backslash too, so that redacting JSON text leaves valid JSON."""
    run = 0
    while start - run > 0 and text[start - run - 1] == "\\":
        run += 1
    return start - run % 2


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in sorted(spans):
        if end <= last:
            continue
        out.append(text[last:max(start, last)] + REDACTED * (start >= last))
        last = end
    return "".join(out) + text[last:]
