"""Commands about the ward itself: init, ledger (and its export and public key), verify, reindex."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.tree import Tree

from dataward.cli.errors import reports_errors
from dataward.cli.output import console, emit_json, safe, short, stdout_is_terminal, table, terminal_json, working
from dataward.cli.state import JSON_HELP, open_ward, refuse_ward_output, state
from dataward.domain.errors import InputError

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


VERIFY_SHOWN = 5
"""Problems of one kind that `verify` prints (``--json`` gives every one)."""
MAX_EVENTS = 1_000_000_000
"""The most events one `ledger` listing asks for: what a served ward returns at once. A larger `--limit`
is asked as this, which is every event of any ward, so that it means "all" against a folder and a server."""


def event_count(limit: int) -> int:
    """The number of events `ledger --limit` asks for; an ``InputError`` naming the option when it is not
    positive (the service's own message names its argument and a bound of 4.6e18, meaningless here)."""
    if limit < 1:
        raise InputError(
            f"--limit (-n) must be a positive number of events, got {limit}",
            hint="e.g. `dataward ledger -n 50` shows the 50 newest events",
        )
    return min(limit, MAX_EVENTS)


def register(app: typer.Typer) -> None:
    """Add ``init``, ``ledger``, ``verify`` and ``reindex`` to ``app``."""
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
        from dataward.service.ward import Ward  # the service layer: only for the commands that run

        target = path or Path(state.ward_path or ".dataward")
        ward, key = Ward.init(target, admin=admin, catalog_url=catalog, store_url=store)
        info = {"ward": ward.ward_id, "path": str(target), "admin": admin, "key": key}
        if as_json:
            emit_json(info)
            return
        console.print(f"[bold green]Created ward[/bold green] {ward.ward_id} at {safe(str(target))}")
        console.print(
            f"First admin [bold]{safe(admin)}[/bold]. API key (shown once, also saved to "
            f"{safe(str(target / 'credentials'))} readable only by you):"
        )
        console.print(f"  [bold yellow]{key}[/bold yellow]")

    def _refused(payload: dict) -> list[str]:
        return [f"{k}={short(str(payload[k]), 60)}" for k in ("action", "reason") if payload.get(k)]

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
        count = event_count(limit)  # before the ward is opened: a bad count is the first thing to say
        events = open_ward().ledger(limit=count, types=type_)
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
                    # One per line, ids whole; a refusal says what was refused and why.
                    "\n".join(
                        [f"{k}={short(str(v), 20)}" for k, v in e["subject"].items()]
                        + (_refused(e["payload"]) if e["type"] == "access.denied" else [])
                    ),
                    short(e["hash"]),
                )
                for e in events
            ],
            styles={"type": "cyan"},
        )

    @ledger_app.command("head")
    @reports_errors
    def ledger_head(as_json: JsonOpt = False) -> None:
        """Print the newest event's number and hash (`dataward checkpoint` makes a signed, verifiable one)."""
        head = open_ward().ledger_head()
        if as_json:
            emit_json(head)
        else:
            console.print(f"event #{head['seq']}  {head['hash']}")

    @ledger_app.command("export")
    @reports_errors
    def ledger_export(
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write the export to FILE (default: stdout).")
        ] = None,
    ) -> None:
        """Export the whole chain (JSON, in sequence order) for a verifier in any language."""
        document = open_ward().ledger_export()
        text = json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        if output is None:
            # Event payloads hold contributors' text: on a terminal, its C1 controls (U+009B CSI) and bidi
            # overrides are written as JSON escapes, which parse to the same values; a pipe or a file gets
            # the export byte for byte as ``--output`` writes it.
            sys.stdout.write(terminal_json(text) if stdout_is_terminal() else text)
            return
        write_text_atomically(output, text)
        console.print(f"exported {len(document['events'])} events to {safe(str(output))}")

    @ledger_app.command("public-key")
    @reports_errors
    def ledger_public_key(
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write the PEM to FILE (default: stdout).")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Print the ward's Ed25519 public key (PEM): pin it outside the ward for `verify --public-key`."""
        info = open_ward().public_key()
        if output is not None:
            write_text_atomically(output, info["pem"])
        if as_json:
            emit_json(info)
        elif output is None:
            sys.stdout.write(info["pem"])
        else:
            console.print(f"wrote the public key {info['fingerprint']} to {safe(str(output))}")

    @app.command()
    @reports_errors
    def verify(
        checkpoint: Annotated[
            list[Path] | None,
            typer.Option(
                "--checkpoint",
                help="A checkpoint file (or a folder of them, such as a witness folder) the ledger must extend; "
                "repeatable.",
            ),
        ] = None,
        public_key: Annotated[
            Path | None,
            typer.Option(
                "--public-key",
                help="The pinned ward public key (PEM or base64): signatures are checked against it, never "
                "against a key read from the ward.",
            ),
        ] = None,
        attestation: Annotated[
            Path | None,
            typer.Option(
                "--attestation",
                help="Check an attestation bundle from `dataward attest` offline against --public-key instead "
                "(no ward needed).",
            ),
        ] = None,
        all_signatures: Annotated[
            bool,
            typer.Option(
                "--all-signatures",
                help="Check every event's own signature too. By default every event's link and hash are "
                "checked, and the signatures of every 1024th event and of the last one, each of which covers "
                "every event before it (docs/ledger-format.md).",
            ),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Re-check the ledger chain and signatures, every stored object, and the catalog against the
        ledger; and that the ledger extends every checkpoint (given, kept in the ward, witnessed).
        Exits 7 and lists each discrepancy when anything was altered. With --attestation, check an
        attestation's signatures and statements against the pinned key only."""
        from dataward.ledger.signing import parse_public_key
        from dataward.service.checkpoints import load_checkpoint_files

        pinned = None
        if public_key is not None:
            try:
                text = public_key.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"cannot read the public key {public_key}: {exc}") from None
            pinned = parse_public_key(text, source=str(public_key))
        if attestation is not None:
            from dataward.cli.provenance_commands import verify_attestation

            verify_attestation(attestation, pinned, as_json=as_json)
            return
        given = load_checkpoint_files(checkpoint or [])
        with working("Verifying ledger, checkpoints, objects and catalog", enabled=not as_json):
            report = open_ward().verify(checkpoints=given, public_key=pinned, all_signatures=all_signatures)
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
            anchor = report.anchor
            checked.add(
                f"signatures checked against the {'[bold]pinned[/bold]' if anchor.get('key') == 'pinned' else 'ward'}"
                f" key {anchor.get('fingerprint')}"
            )
            if anchor.get("signatures"):
                checked.add(f"event signatures checked: {anchor['signatures']}")
            if witness := anchor.get("witness"):
                checked.add(f"witness {safe(witness['location'])} (set by event #{witness['set_by_event']})")
            for cp in anchor.get("checkpoints", []):
                style = "green" if cp["status"] == "extends" else "red"
                checked.add(
                    f"checkpoint #{cp['seq']} of {cp['time'][:19].replace('T', ' ')} "
                    f"({safe(cp['source'])}): [{style}]{cp['status']}[/{style}]"
                )
            if report.first_bad_event is not None:
                tree.add(f"[bold red]first missing or rewritten event: #{report.first_bad_event}[/bold red]")
            if report.problems:
                # Causes first (the ledger, stored objects), a few of each kind: one altered chunk makes one
                # object problem and one record-index problem per record, and the cause must be seen.
                by_area = tree.add("[red]problems[/red]")
                for area, kind, found in report.grouped():
                    group = by_area.add(f"[red]{area}[/red] {kind}: {len(found)}")
                    for p in found[:VERIFY_SHOWN]:
                        group.add(f"{safe(p.where)} - {safe(p.detail)}")
                    if len(found) > VERIFY_SHOWN:
                        group.add(f"[dim]... and {len(found) - VERIFY_SHOWN} more (--json lists them all)[/dim]")
            for warning in report.warnings:
                tree.add(f"[yellow]warning[/yellow]: {safe(warning)}")
            console.print(tree)
        if not report.ok:
            raise typer.Exit(7)

    @app.command()
    @reports_errors
    def reindex(
        rebuild: Annotated[
            bool,
            typer.Option("--rebuild", help="Rebuild the whole index from the id lists (after verify reported it)."),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Index, for trace, the record ids of contributions and versions recorded before the holder index
        existed (a trace reads those lists itself until then, which is slower). Safe to run again; needs
        the right to verify the ward. Runs on the ward's folder, not through a server."""
        from dataward.service.ward import Ward

        ward = open_ward()
        if not isinstance(ward, Ward):
            raise InputError("reindex runs on the ward itself", hint="run it where the ward's folder is, with --ward")
        with working("Indexing id lists for trace", enabled=not as_json):
            info = ward.reindex(rebuild=rebuild)
        if as_json:
            emit_json(info)
        else:
            console.print(
                f"indexed {info['lists_added']} id lists; the index holds {info['lists']} lists, "
                f"{info['entries']} entries in {info['segments']} segments"
            )


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename; never
    into the ward's own files (``refuse_ward_output``)."""
    from dataward.io.staged import staged_file  # here: dataward.io imports pyarrow, which --help need not

    refuse_ward_output(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A random temporary name, made exclusively: `.NAME.PID.tmp` could be planted as a link in a
        # shared folder and the checkpoint written through it into another file (dataward.io.staged).
        with staged_file(path) as fh:
            fh.write(text.encode("utf-8"))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
