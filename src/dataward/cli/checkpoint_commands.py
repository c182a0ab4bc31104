"""Commands about signed checkpoints: make one, list the kept ones, configure the witness."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dataward.cli.errors import reports_errors
from dataward.cli.output import console, emit_json, safe, short, table
from dataward.cli.state import JSON_HELP, open_ward
from dataward.cli.ward_commands import write_text_atomically

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def register(app: typer.Typer) -> None:
    """Add ``checkpoint`` (with ``list`` and ``witness``) to ``app``."""
    checkpoint_app = typer.Typer(
        help="Signed checkpoints of the ledger: keep one outside the ward, then `verify --checkpoint` it.",
        invoke_without_command=True,
    )
    app.add_typer(checkpoint_app, name="checkpoint")

    @checkpoint_app.callback()
    @reports_errors
    def checkpoint(
        ctx: typer.Context,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write the checkpoint to FILE (default: stdout).")
        ] = None,
    ) -> None:
        """Sign a checkpoint of the ledger as it is now (ward id, event number, head hash, time) and
        print it as JSON, or write it to FILE. Keep it outside the ward: a file, a git repository, a
        ticket. It is also kept in the ward and sent to the witness, if one is configured."""
        if ctx.invoked_subcommand is not None:
            return
        from dataward.ledger.checkpoint import Checkpoint  # cryptography: only when one is written

        made = open_ward().checkpoint()
        text = Checkpoint.from_dict(made).to_json()
        if output is None:
            sys.stdout.write(text)
            return
        write_text_atomically(output, text)
        console.print(f"checkpoint of event #{made['seq']} {short(made['head'], 24)} written to {safe(str(output))}")

    @checkpoint_app.command("list")
    @reports_errors
    def checkpoint_list(as_json: JsonOpt = False) -> None:
        """List the checkpoints kept in the ward folder (made after every promotion and on request)."""
        kept = open_ward().checkpoints()
        if as_json:
            emit_json(kept)
            return
        table(
            "Kept checkpoints",
            ["#", "time", "head", "file"],
            [(c["seq"], c["time"][:19].replace("T", " "), short(c["head"], 24), c["file"]) for c in kept],
        )

    @checkpoint_app.command("witness")
    @reports_errors
    def checkpoint_witness(
        location: Annotated[
            str | None,
            typer.Argument(help="A folder or fsspec URL outside the ward (s3://bucket/dataward, ...)."),
        ] = None,
        off: Annotated[bool, typer.Option("--off", help="Stop sending witness copies.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Show, set (admins) or turn off where a witness copy of every checkpoint is sent."""
        ward = open_ward()
        if off and location:
            raise typer.BadParameter("give a location or --off, not both")
        info = ward.set_witness(None) if off else ward.set_witness(location) if location else ward.witness()
        if as_json:
            emit_json(info)
        elif info["witness"]:
            console.print(f"checkpoints are witnessed at {safe(info['witness'])}")
        else:
            console.print("no witness: checkpoints are kept in the ward only")
