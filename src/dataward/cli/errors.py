"""Turn errors into a readable message and a non-zero exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from dataward.cli.output import emit_json, err_console, safe
from dataward.cli.state import state
from dataward.cli.suggest import with_suggestion
from dataward.domain.errors import DatawardError, Interrupted, NotFound

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(fn: F) -> F:
    """Decorator for commands: a ``DatawardError`` becomes a message (or JSON with ``--json``) and
    its exit code; nothing else is caught, so bugs still show a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DatawardError as exc:
            _suggest(exc)
            _report(exc, as_json=bool(kwargs.get("as_json")), local_detail=exc.local_detail)
            raise typer.Exit(exc.exit_code) from None
        except Interrupted as exc:
            # Ctrl-C after something was stored (a contribution whose gate did not finish): said, with
            # how to finish it. A bare Ctrl-C ends the command with exit 130, as ever.
            _report(exc, as_json=bool(kwargs.get("as_json")))
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _report(exc: DatawardError | Interrupted, *, as_json: bool, local_detail: str | None = None) -> None:
    if as_json:
        emit_json(exc.to_dict())
    err_console.print(f"[bold red]error:[/bold red] {safe(exc.message)}")
    if exc.hint:
        err_console.print(f"  [dim]hint:[/dim] {safe(exc.hint)}")
    # Set only by the ward this process opened (a folder, its operator's own): a served ward's
    # errors arrive without it, its server keeps it in its log.
    if local_detail:
        err_console.print(f"  [dim]where:[/dim] {safe(local_detail)}")


def _suggest(exc: DatawardError) -> None:
    """Add a "did you mean" to a missing dataset's error, from the datasets the caller may read."""
    if not isinstance(exc, NotFound) or "dataset" not in exc.details or not state.opened:
        return
    try:
        visible = [d["name"] for d in state.opened[-1].datasets()]
    except DatawardError:  # the caller may read no dataset: nothing to suggest
        return
    with_suggestion(exc, visible)
