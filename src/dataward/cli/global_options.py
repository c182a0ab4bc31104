"""``--ward`` and ``--url`` anywhere on the command line: ``dataward verify --ward W`` means
``dataward --ward W verify``. They are the app's options (read before any command runs), so one
given after the subcommand is moved in front of it before Click parses the line."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperGroup

from dataward.cli.output import emit_json
from dataward.cli.pipes import BROKEN_PIPE_EXIT, silence_stdout

HOISTED = ("--ward", "--url")
"""Global options that may also follow the subcommand, each taking one value."""

OWN_OPTIONS = frozenset({"serve"})
"""Subcommands that declare ``--ward`` themselves (``serve --ward``: the folder to serve); their
command lines are left as they are."""


def _subcommand_at(args: Sequence[str]) -> int:
    """The index of the first token that is not a global option or its value (len(args): none)."""
    i = 0
    while i < len(args):
        token = args[i]
        if token in HOISTED:
            i += 2
        elif token.startswith("-"):
            i += 1
        else:
            return i
    return len(args)


def _take(args: Sequence[str], found: dict[str, list[str]]) -> list[str]:
    """``args`` without its ``--ward``/``--url`` options (up to a ``--``), their values added to ``found``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        name, eq, value = token.partition("=")
        if name in HOISTED and eq:
            found[name].append(value)
        elif token in HOISTED:
            if i + 1 >= len(args):
                raise typer.BadParameter("needs a value", param_hint=f"'{token}'")
            found[token].append(args[i + 1])
            i += 1
        else:
            out.append(token)
        i += 1
    return out


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """``args`` with every ``--ward``/``--url`` moved in front of the subcommand (``typer.BadParameter``, a usage error
    when one is given twice with different values)."""
    at = _subcommand_at(args)
    if at == len(args) or args[at] in OWN_OPTIONS:
        return list(args)
    found: dict[str, list[str]] = {name: [] for name in HOISTED}
    before = _take(args[:at], found)
    after = _take(args[at:], found)
    front: list[str] = []
    for name, values in found.items():
        distinct = list(dict.fromkeys(values))
        if len(distinct) > 1:
            raise typer.BadParameter(
                f"given twice with different values: {', '.join(distinct)}", param_hint=f"'{name}'"
            )
        if distinct:
            front += [name, distinct[0]]
    return front + before + after


class GlobalOptionsGroup(TyperGroup):
    """The ``dataward`` group: accepts its global options after the subcommand too, ends quietly
    (exit 141) when stdout's reader goes away (``| head``), where Click exited 1, and answers a
    command line it cannot parse (an unknown option, a missing argument) with the ``--json`` error
    document when ``--json`` was asked for, as every other refusal is answered."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta[JSON_ASKED] = wants_json(args)
        # Parsing prints `--help` (and `--version`): its reader may stop early too.
        with quiet_broken_pipe(), usage_errors_as_json(ctx):
            return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: Any) -> Any:
        with quiet_broken_pipe(), usage_errors_as_json(ctx):
            return super().invoke(ctx)


USAGE_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
"""The usage error class of the Click that Typer runs on: Click's own, or the copy newer Typers carry
(``typer._click``), which ``click.UsageError`` does not catch."""

JSON_ASKED = "dataward.json_asked"
"""The context's ``meta`` key saying whether the command line holds ``--json``."""


def wants_json(args: Sequence[str]) -> bool:
    """Whether ``--json`` is among ``args``, before a ``--`` (after one it is an argument)."""
    options = list(args)[: list(args).index("--")] if "--" in args else list(args)
    return "--json" in options


@contextmanager
def usage_errors_as_json(ctx: Any) -> Iterator[None]:
    """A usage error (Click's ``UsageError``: no such option or command, a missing or malformed
    argument) also prints the ``--json`` error document on stdout when ``--json`` was asked for; Click
    then prints its usage on stderr and exits 2, as without ``--json``. A script reading stdout gets
    ``{"error": "bad_input", ...}`` rather than nothing."""
    try:
        yield
    except USAGE_ERROR as exc:
        if ctx.meta.get(JSON_ASKED):
            usage_ctx = getattr(exc, "ctx", None)
            where = usage_ctx.command_path if usage_ctx is not None else "dataward"
            emit_json(
                {
                    "error": "bad_input",
                    "message": exc.format_message(),  # type: ignore[attr-defined]
                    "hint": f"see `{where} --help`",
                    "details": {"usage": where},
                }
            )
        raise


@contextmanager
def quiet_broken_pipe() -> Iterator[None]:
    """A ``BrokenPipeError`` inside becomes a quiet exit 141 (``dataward.cli.pipes``), and so does
    Rich's own answer to one (a console that hit a broken pipe raises ``SystemExit(1)``)."""
    try:
        yield
    except BrokenPipeError:
        silence_stdout()
        raise typer.Exit(BROKEN_PIPE_EXIT) from None
    except SystemExit as exc:
        if not isinstance(exc.__context__, BrokenPipeError):
            raise
        silence_stdout()
        raise typer.Exit(BROKEN_PIPE_EXIT) from None
