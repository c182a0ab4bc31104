"""Commands about the ward itself: init, ledger, verify."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.tree import Tree

from dataward.cli.errors import reports_errors
from dataward.cli.output import console, emit_json, short, table, working
from dataward.cli.state import JSON_HELP, open_ward, state
from dataward.service.ward import Ward

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def register(app: typer.Typer) -> None:
    """Add ``init``, ``ledger`` and ``verify`` to ``app``."""
    ledger_app = typer.Typer(help="Read the signed, hash-chained ledger.", invoke_without_command=True)
    app.add_typer(ledger_app, name="ledger")

    @app.command()
    @reports_errors
    def init(
        path: Annotated[Path | None, typer.Argument(help="Folder to create (default: --ward or ./.dataward).")] = None,
        admin: Annotated[str, typer.Option(help="Name of the first administrator.")] = "admin",
        catalog: Annotated[
            str | None, typer.Option(help="Catalog database URL (default: SQLite in the folder).")
        ] = None,
        store: Annotated[
            str | None, typer.Option(help="Object store path or fsspec URL (default: in the folder).")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Create a ward: catalog, object store, signing key, and the first admin with its API key."""
        target = path or Path(state.ward_path or ".dataward")
        ward, key = Ward.init(target, admin=admin, catalog_url=catalog, store_url=store)
        info = {"ward": ward.ward_id, "path": str(target), "admin": admin, "key": key}
        if as_json:
            emit_json(info)
            return
        console.print(f"[bold green]Created ward[/bold green] {ward.ward_id} at {escape(str(target))}")
        console.print(
            f"First admin [bold]{escape(admin)}[/bold]. API key (shown once, also saved to "
            f"{escape(str(target / 'credentials'))} readable only by you):"
        )
        console.print(f"  [bold yellow]{key}[/bold yellow]")

    @ledger_app.callback()
    @reports_errors
    def ledger(
        ctx: typer.Context,
        limit: Annotated[int, typer.Option("--limit", "-n", help="How many events (newest first).")] = 20,
        type_: Annotated[
            list[str] | None, typer.Option("--type", help="Only events whose type starts with this.")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Show the newest ledger events."""
        if ctx.invoked_subcommand is not None:
            return
        events = open_ward().ledger(limit=limit, types=type_)
        if as_json:
            emit_json(events)
            return
        table(
            "Ledger (newest first)",
            ["#", "time", "type", "actor", "subject", "hash"],
            [
                (
                    e["seq"],
                    e["time"][:19].replace("T", " "),
                    e["type"],
                    e["actor_name"] + (f" (dw_{e['actor']['key']})" if e["actor"]["key"] else ""),
                    ", ".join(f"{k}={short(str(v), 16)}" for k, v in e["subject"].items()),
                    short(e["hash"]),
                )
                for e in events
            ],
            styles={"type": "cyan"},
        )

    @ledger_app.command("head")
    @reports_errors
    def ledger_head(as_json: JsonOpt = False) -> None:
        """Print the newest event's number and hash: publish it elsewhere to anchor the chain."""
        head = open_ward().ledger_head()
        if as_json:
            emit_json(head)
        else:
            console.print(f"event #{head['seq']}  {head['hash']}")

    @app.command()
    @reports_errors
    def verify(as_json: JsonOpt = False) -> None:
        """Re-check the ledger chain and signatures, every stored object, and the catalog against the
        ledger. Exits non-zero and lists each discrepancy when anything was altered."""
        with working("Verifying ledger, objects and catalog", enabled=not as_json):
            report = open_ward().verify()
        if as_json:
            emit_json(report.to_dict())
        else:
            tree = Tree(
                "[bold green]verify: everything checks out[/bold green]"
                if report.ok
                else f"[bold red]verify: {len(report.problems)} problem(s) found[/bold red]"
            )
            checked = tree.add("checked")
            for name, count in report.checked.items():
                checked.add(f"{count} {name.replace('_', ' ')}")
            checked.add(f"ledger head #{report.head.get('seq')} {short(report.head.get('hash'), 24)}")
            if report.problems:
                by_area = tree.add("[red]problems[/red]")
                for p in report.problems:
                    by_area.add(f"[red]{p.area}[/red] {p.kind}: {escape(p.where)} - {escape(p.detail)}")
            console.print(tree)
        if not report.ok:
            raise typer.Exit(7)
