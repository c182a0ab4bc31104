"""The ``dataward`` command: one Typer app, commands registered by topic."""

from __future__ import annotations

from typing import Annotated

import typer

from dataward import __version__
from dataward.cli import (
    access_commands,
    checkpoint_commands,
    data_commands,
    gate_commands,
    model_commands,
    provenance_commands,
    serve_commands,
    trace_commands,
    ward_commands,
)
from dataward.cli.global_options import GlobalOptionsGroup
from dataward.cli.state import state

app = typer.Typer(
    name="dataward",
    help="Keep poisoned data out of your models: governed contributions, signed provenance, poisoning gates.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    cls=GlobalOptionsGroup,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main_options(
    context: typer.Context,
    ward: Annotated[
        str | None, typer.Option("--ward", envvar="DATAWARD_WARD", help="Ward folder (default: ./.dataward).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="DATAWARD_URL",
            help="URL of a served ward (`dataward serve`); wins over --ward. Needs $DATAWARD_KEY.",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Every command talks to the served ward at --url/$DATAWARD_URL, or else to the ward folder from
    --ward, else $DATAWARD_WARD, else ./.dataward; and acts as the principal of $DATAWARD_KEY, else
    (for a folder) the ward's local admin credentials."""
    state.ward_path = ward
    state.url = url
    # Runs when the invocation ends, after the command, whether it succeeded, failed or exited.
    context.call_on_close(state.close_opened)


ward_commands.register(app)
checkpoint_commands.register(app)
data_commands.register(app)
gate_commands.register(app)
access_commands.register(app)
trace_commands.register(app)
provenance_commands.register(app)
model_commands.register(app)
serve_commands.register(app)


def main() -> None:
    """Run the CLI (the ``dataward`` console script)."""
    try:
        app()
    except SystemExit as exit_:
        if exit_.code == _INTERRUPTED:
            _end_without_gate_threads()
        raise


_INTERRUPTED = 130
"""The exit status of a command stopped by Ctrl-C (128 + SIGINT), as a shell reports it."""


def _end_without_gate_threads() -> None:
    """After a Ctrl-C, end the process now rather than when a gate's detectors end (minutes, for a large
    contribution): Python waits for its worker threads at exit, and a thread cannot be stopped. They
    only compute (and write the embedding cache, a file at a time, by renaming a complete one); what
    the command stored was stored in transactions that have ended, and the ward was closed."""
    import os
    import sys
    import threading

    scanning = sys.modules.get("dataward.gates.scanning")  # not imported: no gate ran
    if scanning is None:
        return
    alive = [t.name for t in threading.enumerate() if t.is_alive()]
    # A server's job threads may be writing (a transaction, an object): the process ends as Python
    # ends it, after they are done, never cut short under them.
    if any(name.startswith("dataward-job-") for name in alive):
        return
    if any(name.startswith(scanning.GATE_THREADS) for name in alive):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_INTERRUPTED)
