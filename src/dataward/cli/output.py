"""How the CLI shows things: Rich tables and trees for people, stable JSON for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape as escape_markup
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from dataward.domain.names import hidden_character, is_hidden, visible


def safe(value: object) -> str:
    """``value`` as text ready for Rich markup: controls shown as escapes (``visible``) and markup
    escaped, so it prints exactly as the characters that were sent. Every data string the CLI prints
    for a person goes through this (``--json`` output does not: JSON escapes controls itself)."""
    return escape_markup(visible(str(value)))


class SafeConsole(Console):
    """A Rich console that never writes a raw control character it was given as text.

    ``safe`` makes data visible before layout (so widths are right); this is the backstop for a
    string that reached a ``print`` without it. Rich's own control output (cursor moves of a
    progress line, colours) is not text and passes."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(visible(segment.text, keep="\n\t"), segment.style)
            for segment in buffer
        )


# Emoji codes are off: what the CLI prints holds untrusted text (records, reasons, source URIs, names
# such as "dataset:secret:"), and ":zap:" or ":secret:" in it must print as written, not as a symbol
# a reviewer would read differently. Markup and controls in untrusted text are made safe (``safe``)
# where it is printed.
console = SafeConsole(highlight=False, emoji=False)
# Errors are never hard-wrapped: a message names a file and a line, and a newline inserted at the
# terminal's width would split "line 3" for anyone (or any script) reading stderr.
err_console = SafeConsole(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (the ``--json`` contract: one document per command)."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def stdout_is_terminal() -> bool:
    """Whether a person reads stdout on a terminal (not a pipe or a file a program reads)."""
    return sys.stdout.isatty()


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON writes a character beyond the BMP as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def terminal_json(text: str) -> str:
    """JSON ``text`` with every character ``visible`` escapes (C1 controls such as U+009B CSI, DEL,
    bidi overrides, zero-width and never-drawn characters) written as a JSON ``\\u`` escape.

    JSON written with ``ensure_ascii=False`` keeps them raw, and a terminal acts on them. Outside a
    string JSON holds none of them (its layout is ASCII and newlines, which are kept), so the result is
    the same document: it parses to the same values."""
    return "\n".join(
        line if hidden_character(line) is None else "".join(_json_escape(c) if is_hidden(c) else c for c in line)
        for line in text.split("\n")
    )


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
    readable: dict[str, int] | None = None,
) -> None:
    """Print a Rich table (``None`` shows as ``-``). A column of single words (ids, refs, names, event
    types) is never cut: the next command needs them whole, so the columns of prose wrap instead.
    When the terminal is too narrow for that (the whole columns alone are wider than it, or they leave
    a prose column narrower than its longest word, up to ``PROSE_MIN``), each row is printed as a list of
    ``column  value`` lines instead (``records``): a table would have dropped its last columns or cut
    every word of its prose. ``readable`` gives a prose column a width it is not squeezed below, beyond its
    longest word: a sentence a decision rests on (a review item's reason) read one word a line in a column
    of 11 characters.

    Cells are Rich markup: a data string in one is passed through ``safe``. Controls left in a cell
    are shown as escapes here (before the widths are measured); only the newlines of a cell of
    several lines are kept."""
    cells = [["-" if v is None else visible(str(v), keep="\n") for v in row] for row in rows]
    t = Table(title=title, title_justify="left", header_style="bold", expand=False)
    columns_values = [[row[i] for row in cells if i < len(row)] for i in range(len(columns))]
    wholes = [whole_width(values) for values in columns_values]
    whole_total = sum(max(w, len(c)) for w, c in zip(wholes, columns, strict=True) if w is not None)
    prose = sum(1 for w in wholes if w is None)
    # What is left for the prose columns once the whole ones and the borders (3 a column) are drawn.
    room = console.width - 1 - 3 * len(columns) - whole_total
    share = room // prose if prose else 0
    # Prose wraps, but is not squeezed below its longest word (up to PROSE_MIN): where it would be, or
    # where the whole columns alone do not fit, the rows are printed as records instead.
    needs = [
        None
        if whole is not None
        else max(min(PROSE_MIN, max(_longest_word(values), len(col))), (readable or {}).get(col, 0))
        for col, values, whole in zip(columns, columns_values, wholes, strict=True)
    ]
    if room < 0 or any(need is not None and share < need for need in needs):
        records(title, columns, cells, styles=styles)
        return
    for col, need, whole in zip(columns, needs, wholes, strict=True):
        style = (styles or {}).get(col)
        if need is not None:
            # A word longer than the column folds onto the next line rather than being cut.
            t.add_column(col, style=style, min_width=need, overflow="fold")
        elif whole is not None:
            t.add_column(col, style=style, no_wrap=True, min_width=max(whole, len(col)))
    for row in cells:
        t.add_row(*row)
    console.print(t)


def _longest_word(values: Sequence[str]) -> int:
    """The width of the longest word of a column's cells, once their Rich markup is rendered."""
    return max((cell_len(w) for v in values for w in Text.from_markup(v).plain.split()), default=0)


def records(
    title: str,
    columns: Sequence[str],
    cells: Sequence[Sequence[str]],
    *,
    styles: dict[str, str] | None = None,
) -> None:
    """Print rows as records, one ``column  value`` line per column and a blank line between rows:
    ``table``'s layout for a terminal too narrow for its columns. ``cells`` are ``table``'s, markup
    made safe and controls shown as escapes; a value wraps (folding a word longer than the line)
    beside its column's name."""
    console.print(Text(title, style="italic"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for n, row in enumerate(cells):
        if n:
            grid.add_row("", "")
        for col, value in zip(columns, row, strict=False):
            style = (styles or {}).get(col)
            grid.add_row(col, Text.from_markup(value, style=style or ""))
    console.print(grid)


WHOLE_MAX = 48
"""The widest single-word cell kept whole; a longer one (a path, a digest list) may be cut."""

PROSE_MIN = 10
"""The narrowest a column of prose is squeezed to (less when its longest word is shorter)."""

SENTENCE_MIN = 32
"""The narrowest a column of sentences is squeezed to when given as ``readable`` (a review item's reason):
about five words a line. Narrower, the rows are printed as records, the sentence on lines of its own."""


def whole_width(values: Sequence[str]) -> int | None:
    """The width a column of single words (one per line, no other whitespace once Rich markup is
    rendered) needs to be shown whole, or None for a column of prose, or of words wider than ``WHOLE_MAX``."""
    widths = []
    for value in values:
        for line in Text.from_markup(value).plain.split("\n"):
            if not line or any(ch.isspace() for ch in line) or len(line) > WHOLE_MAX or line.endswith("…"):
                return None  # prose, a long word, or a value already cut for people (``short``)
            widths.append(cell_len(line))
    return max(widths, default=None)


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
