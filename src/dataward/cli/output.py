"""How the CLI shows things: Rich tables and trees for people, stable JSON for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

# Emoji codes are off: what the CLI prints holds untrusted text (records, reasons, source URIs, names
# such as "dataset:secret:"), and ":zap:" or ":secret:" in it must print as written, not as a symbol
# a reviewer would read differently. Markup in untrusted text is escaped where it is printed.
console = Console(highlight=False, emoji=False)
# Errors are never hard-wrapped: a message names a file and a line, and a newline inserted at the
# terminal's width would split "line 3" for anyone (or any script) reading stderr.
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (the ``--json`` contract: one document per command)."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def short(value: str | None, width: int = 14) -> str:
    """A digest or id trimmed for people (``b3:1a2b3c4d5e…``); JSON output always has the full value."""
    if not value:
        return "-"
    return value if len(value) <= width else value[: width - 1] + "…"


def table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    styles: dict[str, str] | None = None,
) -> None:
    """Print a Rich table (``None`` shows as ``-``)."""
    t = Table(title=title, title_justify="left", header_style="bold", expand=False)
    for col in columns:
        t.add_column(col, style=(styles or {}).get(col))
    for row in rows:
        t.add_row(*("-" if v is None else str(v) for v in row))
    console.print(t)


VERDICT_STYLE = {"pass": "bold green", "review": "bold yellow", "block": "bold red"}
VERDICT_EXIT = {"pass": 0, "review": 8, "block": 9}
"""The exit code of a command that ends in a gate's verdict (data gate or release gate)."""


def answer(value: Any, as_json: bool, show: Callable[[Any], None]) -> None:
    """The ``--json`` contract in one place: ``value`` as JSON, or ``show(value)`` for a person."""
    if as_json:
        emit_json(value)
    else:
        show(value)


STATUS_STYLE = {
    "merged": "green",
    "approved": "green",
    "submitted": "cyan",
    "gated": "cyan",
    "rejected": "red",
    "blocked": "red",
    "withdrawn": "dim",
    "training": "bold green",
    "candidate": "cyan",
    "retired": "dim",
    "released": "bold green",
}


def styled(value: str | None, styles: dict[str, str] = STATUS_STYLE) -> str:
    """``value`` in Rich markup coloured by its meaning."""
    if value is None:
        return "-"
    style = styles.get(value)
    return f"[{style}]{value}[/{style}]" if style else value


@contextmanager
def working(description: str, *, enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A transient progress line with elapsed time; yields a function to update its text."""
    if not enabled or not err_console.is_terminal:
        yield lambda _text: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None)
        yield lambda text: progress.update(task, description=text)
