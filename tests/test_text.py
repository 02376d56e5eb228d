"""Text for people: agent output made inert for a terminal, secrets redacted in any shape."""

from __future__ import annotations

import json

import pytest

from labcoat.text import inert, redact

KEY = "sk-ant-api03-Q7wErTyUiOpAsDfGhJkLzXcVbNm1234567890"

PAYLOADS = {
    "title": "\x1b]0;pwned\x07",
    "clear": "\x1b[2J\x1b[H",
    "link": "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "red": "\x1b[31mall tests passed\x1b[0m",
    "overwrite": "FAILED\rPASSED",
    "c1 csi": "\x9b2J",
    "bidi": "safe\u202egnp.exe",
    "bad bytes": b"caf\xe9".decode("utf-8", "surrogateescape"),
}


@pytest.mark.parametrize("name", PAYLOADS)
def test_inert_leaves_no_control_character_and_shows_each(name: str) -> None:
    shown = inert(PAYLOADS[name])
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in shown), repr(shown)
    assert not any(0xD800 <= ord(c) < 0xE000 or c in "\u202a\u202e\u2066" for c in shown)
    shown.encode("utf-8")  # a strict terminal encoder takes it
    assert "\\x" in shown or "\\u" in shown


def test_inert_keeps_text_newlines_and_tabs() -> None:
    text = "accuracy\t0.93\nloss: 0.2 — ok ✓"
    assert inert(text) == text
    assert inert("\x1b[31mred") == "\\x1b[31mred"


@pytest.mark.parametrize("echo", [
    KEY, KEY.upper(), KEY[:-1], KEY[1:], KEY[10:22], f"key={KEY.lower()}!",
])
def test_redact_takes_the_key_and_any_long_fragment_of_it_in_any_case(echo: str) -> None:
    out = redact(f"provider said: {echo} (try again)", [KEY])
    assert "[REDACTED]" in out and out.startswith("provider said: ")
    folded, key = out.lower(), KEY.lower()
    assert not any(key[i:i + 12] in folded for i in range(len(key) - 11)), out


def test_redact_leaves_short_runs_and_short_secrets_alone() -> None:
    assert redact(f"prefix {KEY[:11]} end", [KEY]) == f"prefix {KEY[:11]} end"
    assert redact("the word hunter2 stays", ["hunter2"]) == "the word hunter2 stays"
    assert redact("nothing secret", [None, ""]) == "nothing secret"


def test_redacting_json_text_leaves_valid_json() -> None:
    # In JSON, "\n" is backslash + n: a fragment that starts with the key's "N" must take the
    # backslash with it; after an escaped backslash it must not.
    at = KEY.index("Nm")
    body = json.dumps({"m": f"line\n{KEY[at + 1:]}", "n": f"back\\{KEY[at:]}"})
    out = redact(body, [KEY])
    assert out.count("[REDACTED]") == 2, out
    assert json.loads(out) == {"m": "line[REDACTED]", "n": "back\\[REDACTED]"}
