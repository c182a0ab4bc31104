"""Every ``dataward`` name the documentation gives exists, is called as its signature allows, and the
self-contained Python examples run.

docs/llm-data.md told a reader to call ``dataward.gates.scanning(baseline, contribution, schema)``: that
is the module, the function is ``dataward.gates.scan``, and the call failed (docs/input-limits.md had
the same slip). Names drift when code is renamed; this test reads the docs as a reader would.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
RUN = [ROOT / "docs" / "llm-data.md"]
"""Docs whose Python examples need no data and no ward: each is run as it is written."""
NOT_OBJECTS = {"dataward.detectors"}
"""Names the docs give that are not Python objects: the entry-point group of third-party detectors."""
_MISSING = object()


def _resolve(dotted: str) -> Any:
    """The object a dotted name reaches (a module, then attributes), or ``_MISSING``."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, _MISSING)
            if obj is _MISSING:
                return _MISSING
        return obj
    return _MISSING


def _call_problem(obj: Any, call: ast.Call) -> str | None:
    """Why ``call`` cannot be made on ``obj`` (not callable, a keyword it does not take, too many
    arguments), or None. A ``...`` argument stands for any arguments, so only keywords are checked."""
    if not callable(obj):
        return "is not callable"
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    keywords = {k.arg: None for k in call.keywords if k.arg is not None}
    if any(isinstance(a, ast.Constant) and a.value is Ellipsis for a in call.args) or any(
        isinstance(a, ast.Starred) for a in call.args
    ):
        takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        unknown = [k for k in keywords if k not in signature.parameters and not takes_any]
        return f"takes no keyword {unknown}" if unknown else None
    try:
        signature.bind_partial(*[None] * len(call.args), **keywords)
    except TypeError as exc:
        return str(exc)
    return None


def _blocks(path: Path) -> Iterator[tuple[int, str]]:
    """The ```python blocks of a Markdown file: (line of the fence, code)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = None
    for number, line in enumerate(lines, start=1):
        if start is None and line.strip() == "```python":
            start = number
        elif start is not None and line.strip() == "```":
            yield start, textwrap.dedent("\n".join(lines[start : number - 1]))
            start = None


def _inline_problems(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    problems = []
    for match in re.finditer(r"`(dataward(?:\.[A-Za-z_]\w*)+)(\([^`]*\))?`", text):
        name, args = match.group(1), match.group(2)
        if name in NOT_OBJECTS:
            continue
        where = f"{path.name}:{text.count(chr(10), 0, match.start()) + 1} `{match.group(0).strip('`')}`"
        obj = _resolve(name)
        if obj is _MISSING:
            problems.append(f"{where}: no such name")
            continue
        if args is None:
            continue
        try:
            call = ast.parse(name + args, mode="eval").body
        except SyntaxError:
            problem = None if callable(obj) else "is not callable"
        else:
            problem = _call_problem(obj, call) if isinstance(call, ast.Call) else None
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for an attribute chain rooted at a name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := _dotted(node.value)) is not None:
        return f"{base}.{node.attr}"
    return None


def _block_problems(path: Path, line: int, code: str) -> list[str]:
    """The ``dataward`` imports, names and calls of one example that do not exist or do not fit."""
    where = f"{path.name}:{line}"
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [f"{where}: not Python: {exc}"]
    bound: dict[str, str] = {}  # local name -> the dotted dataward name it stands for
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dataward":
                    bound[alias.asname or alias.name.split(".")[0]] = (alias.asname and alias.name) or "dataward"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dataward":
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                if _resolve(f"{node.module}.{alias.name}") is _MISSING:
                    problems.append(f"{where}: cannot import {alias.name} from {node.module}")

    def full(node: ast.AST) -> str | None:
        dotted = _dotted(node)
        if dotted is None or dotted.split(".")[0] not in bound:
            return None
        head, _, rest = dotted.partition(".")
        return bound[head] + (f".{rest}" if rest else "")

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (name := full(node)) is not None and _resolve(name) is _MISSING:
            problems.append(f"{where}: no such name {name}")
        if isinstance(node, ast.Call) and (name := full(node.func)) is not None:
            obj = _resolve(name)
            if obj is not _MISSING and (problem := _call_problem(obj, node)):
                problems.append(f"{where}: {name}(...) {problem}")
    return problems


def test_every_dataward_name_in_the_docs_exists_and_is_called_as_it_can_be() -> None:
    problems = [p for path in DOCS for p in _inline_problems(path)]
    for path in DOCS:
        for line, code in _blocks(path):
            problems += _block_problems(path, line, code)
    assert not problems, "the docs name what does not exist:\n" + "\n".join(sorted(set(problems)))


def test_the_check_sees_the_slip_that_was_in_the_docs(tmp_path: Path) -> None:
    """The name the docs gave, and a keyword no function takes, are both caught."""
    page = tmp_path / "page.md"
    page.write_text(
        '`dataward.gates.scanning(baseline, contribution, Schema.for_kind("chat"))` and '
        "`dataward.gates.scan(..., limit=...)` and `dataward.gates.nope`\n\n"
        "  ```python\n  from dataward.gates import scanned, scan\n  scan(a, b, c, limit=1)\n  ```\n"
    )
    inline = _inline_problems(page)
    assert len(inline) == 3 and "not callable" in inline[0] and "limit" in inline[1] and "no such name" in inline[2]
    ((line, code),) = _blocks(page)
    found = _block_problems(page, line, code)
    assert any("scanned" in p for p in found) and any("limit" in p for p in found)


@pytest.mark.parametrize("path", RUN, ids=lambda p: p.name)
def test_the_python_examples_run(path: Path) -> None:
    for line, code in _blocks(path):
        exec(compile(code, f"{path.name}:{line}", "exec"), {"__name__": "__doc_example__"})
