"""The shape the house issue promises: small functions, small files, no `Any` parameters.

Checked on labcoat/'s source with `ast`, so a long function or file fails the suite the moment
it lands (docs/architecture.md says where to split).
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "labcoat"
MAX_FUNCTION_LINES = 40
MAX_FILE_LINES = 450


def _functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((f"{path.relative_to(SOURCE.parent)}:{node.lineno}", node))
    return found


def test_no_function_longer_than_40_lines() -> None:
    long = [f"{where} {fn.name} ({(fn.end_lineno or fn.lineno) - fn.lineno + 1} lines)"
            for where, fn in _functions()
            if (fn.end_lineno or fn.lineno) - fn.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "split these functions:\n" + "\n".join(long)


def test_no_file_longer_than_450_lines() -> None:
    long = [f"{p.relative_to(SOURCE.parent)} ({n} lines)" for p in sorted(SOURCE.rglob("*.py"))
            if (n := p.read_text(encoding="utf-8").count("\n")) > MAX_FILE_LINES]
    assert not long, "split these files:\n" + "\n".join(long)


def test_no_parameter_is_typed_any() -> None:
    loose = [f"{where} {fn.name}({arg.arg})" for where, fn in _functions()
             for arg in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
             if arg.annotation is not None and ast.unparse(arg.annotation) == "Any"]
    assert not loose, "give these parameters a real type or a Protocol:\n" + "\n".join(loose)
