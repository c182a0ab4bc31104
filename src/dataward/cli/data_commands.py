"""Commands about data: datasets, contributions, merges, versions, diff, export, promote."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.tree import Tree

from dataward.cli.errors import reports_errors
from dataward.cli.output import console, emit_json, err_console, safe, short, styled, table, working
from dataward.cli.state import JSON_HELP, open_ward, refuse_ward_output
from dataward.domain.errors import InputError
from dataward.domain.limits import InputLimits
from dataward.domain.wording import a_or_an

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"--fetched-at {text!r} is not an ISO-8601 time", hint="e.g. 2026-11-01T12:00:00Z") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_limits(items: list[str]) -> dict[str, str]:
    """``--limit NAME=SIZE`` options as a mapping; names and sizes are checked by the ward."""
    limits: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InputError(
                f"--limit {item!r} is not NAME=SIZE",
                hint="e.g. --limit max_record_bytes=64MiB (limits: " + ", ".join(InputLimits.names()) + ")",
            )
        limits[name.strip()] = value.strip()
    return limits


def show_contribution(info: dict[str, Any]) -> None:
    """Print a contribution as a tree."""
    tree = Tree(f"[bold]contribution {info['ref']}[/bold] ({info['id']}) {styled(info['status'])}")
    tree.add(f"submitted by [bold]{safe(str(info['submitted_by']))}[/bold] with key {info.get('key') or '-'}")
    tree.add(f"source {safe(str(info.get('source_uri')))}")
    tree.add(
        f"+{info['added']} records / -{info['removed']} records"
        + (f" ({info['new_records']} new to the ward)" if "new_records" in info else "")
    )
    if info.get("held_back"):
        # Otherwise a merge that adds nothing would look like a silent failure; and the submitter, sending
        # clean rows of a quarantined batch again, asks how they get back in: they do not.
        why = [_held_back_reason(r) for r in info.get("held_back_by") or []]
        held = tree.add(
            f"[yellow]{info['held_back']} of its records are held back[/yellow] "
            f"({safe('; '.join(why)) if why else 'in a quarantined contribution or rejected in review'}): "
            "a merge leaves them out"
        )
        for line in _held_back_note(info):
            held.add(line)
    tree.add(f"content hash {info['content_hash']}")
    if info.get("same_content_as"):
        # A re-submission is allowed, but whoever sends or reviews it should know the change is on file.
        tree.add(f"[yellow]same content as {safe(_earlier(info['same_content_as']))}[/yellow]")
    if info.get("gate_verdict"):
        tree.add(f"gate verdict {_gate_cell(info)}")
    console.print(tree)


def _gate_cell(info: dict[str, Any]) -> str:
    """A contribution's gate verdict; a block two principals lifted reads ``block (overridden by A and B)``
    (the contribution is then judged as ``review``): read as ``review`` alone, that it was blocked was
    only in ``trace``."""
    lifted = info.get("block_overridden")
    if lifted:
        return f"{styled('block')} (overridden by {safe(' and '.join(str(b) for b in lifted['by']))})"
    return styled(info["gate_verdict"]) if info.get("gate_verdict") else "-"


def _merge_held_back(info: dict[str, Any]) -> str:
    """What a merge's line says of held-back records: the merged contribution's own, then the other
    contributions' records of the dataset that stay held back (``held_back`` counts both: records of its
    quarantined contributions, rejected in review, or flagged and awaiting review in a contribution of the
    merged one's side). Those were not this merge's to leave out."""
    mine = info.get("held_back_of_contribution") or 0
    others = (info.get("held_back") or 0) - mine
    said = f", {mine} of its records held back (quarantined or rejected in review)" if mine else ""
    if others > 0:
        said += (
            f"; besides, {others} record{'s' if others != 1 else ''} of other contributions to "
            f"{safe(info['dataset'])} stay held back (quarantined, rejected in review or awaiting it)"
        )
    return said


def _merge_warning(info: dict[str, Any]) -> None:
    """A merge's ``warning`` (none of its records reached the version), on stderr: seen with ``--json``
    too, whose stdout holds the document alone."""
    if info.get("warning"):
        err_console.print(f"[bold yellow]warning:[/bold yellow] {safe(info['warning'])}")


def _held_back_note(info: dict[str, Any]) -> list[str]:
    """Why a contribution's held-back records stay out, and what its submitter can do: the lines printed
    under ``N of its records are held back``."""
    why = {r.get("why") for r in info.get("held_back_by") or []}
    lines = []
    if "quarantined" in why or not why:
        lines.append(
            "a quarantine is never lifted: no contribution sent after it brings its records back, whoever "
            "sends them and from whatever source; an independent contribution (another side and another "
            "source) vouches only for a copy it merged before the quarantine (docs/provenance.md)"
        )
    if "rejected in review" in why:
        lines.append("a record rejected in review in this dataset stays out of its versions, whoever sends it again")
    reaching, removed = info["added"] - info["held_back"], info.get("removed") or 0
    if reaching > 0:
        lines.append(f"a merge adds its other {reaching} record(s)" + (f" and removes {removed}" if removed else ""))
    elif removed:
        lines.append(f"a merge adds none of its records and removes {removed}")
    else:
        lines.append(
            "nothing of it can reach a version: a merge would make a version of the same records; withdraw it: "
            f"dataward withdraw {info['ref']} --reason '...'"
        )
    return lines


def _earlier(same: list[dict[str, Any]]) -> str:
    """A contribution's ``same_content_as`` in words: each earlier contribution and where it stands."""
    named = [s for s in same if s.get("contribution")]
    if not named:
        return f"{len(same)} earlier contribution(s) of this dataset"
    return ", ".join(
        f"{s['contribution']} ({s['status']}" + (f", gate {s['gate_verdict']}" if s.get("gate_verdict") else "") + ")"
        for s in named
    )


def _rollback_line(rollback: dict[str, Any]) -> str:
    """One rollback version of a diff's ``rollbacks`` in words: which quarantine made it, by whom, why."""
    held = ", ".join(rollback["quarantined"])
    incident = rollback.get("incident")
    if incident and held and incident != held:
        cause = f"quarantine of {incident} ({held})"
    elif incident or held:
        cause = f"quarantine of {incident or held}"
    else:
        cause = "containment of records derived from quarantined records"
    why = f": {rollback['reason']}" if rollback.get("reason") else ""
    return f"via {cause}, rollback version {rollback['version']} by {rollback['by']}{why}"


def _held_back_reason(reason: dict[str, Any]) -> str:
    """One entry of a contribution's ``held_back_by`` in words."""
    if reason.get("why") != "quarantined":
        return f"{reason['records']} {reason.get('why', 'held back')}"
    contribution = reason.get("contribution")
    where = (
        f"quarantined contribution {contribution}" if contribution else "a quarantined contribution of another dataset"
    )
    if reason.get("match") == "normalized":
        # The same text as a quarantined record once spacing and Unicode form are normalized.
        return f"{reason['records']} near copies of records in {where} (spacing or Unicode form changed)"
    return f"{reason['records']} in {where}"


def register(app: typer.Typer) -> None:
    """Add the data commands to ``app``."""
    dataset_app = typer.Typer(
        help="Create a dataset. List them with `dataward datasets`, a dataset's versions with `dataward versions`.",
        no_args_is_help=True,
    )
    app.add_typer(dataset_app, name="dataset")

    @dataset_app.command("create")
    @reports_errors
    def dataset_create(
        name: Annotated[str, typer.Argument(help="Dataset name.")],
        label: Annotated[str | None, typer.Option(help="The label column (labelled datasets).")] = None,
        input_: Annotated[
            list[str] | None,
            typer.Option(
                "--input",
                help="Input column NAME:KIND (text, image, numeric, "
                "categorical, embedding:DIM). Repeat for each column.",
            ),
        ] = None,
        kind: Annotated[
            str,
            typer.Option(
                help="labelled (columns from --label/--input), or a language-model kind with fixed fields: "
                "instruction (prompt, input, response), chat (messages), preference (prompt, chosen, rejected).",
            ),
        ] = "labelled",
        schema_file: Annotated[
            Path | None,
            typer.Option(
                "--schema",
                help='Take the schema from a JSON file ({"label": ..., "inputs": [{"name": ..., "kind": ...}]}, '
                "or one dataset's entry of `datasets --json`) instead of --label/--input/--kind.",
            ),
        ] = None,
        description: Annotated[str, typer.Option(help="What the dataset is for.")] = "",
        owner: Annotated[str | None, typer.Option(help="Owning principal (default: you).")] = None,
        validation_for: Annotated[
            str | None,
            typer.Option(help="Make this the clean validation set of that dataset (write-locked to its owner)."),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Create a dataset with its schema (or a clean validation set of another dataset)."""
        # Here, not at start-up: the schema and the file readers bring pyarrow.
        from dataward.domain.schema import Schema
        from dataward.io.schema_file import read_schema_file

        if schema_file is not None:
            if label or input_ or kind != "labelled":
                raise InputError("--schema gives the whole schema", hint="drop --label, --input and --kind")
            schema = read_schema_file(schema_file)
            kind = schema.kind.value
        elif kind != "labelled":
            if label or input_:
                raise InputError(f"{a_or_an(kind)} dataset has fixed fields", hint="drop --label and --input")
            schema = Schema.for_kind(kind)
        elif not label or not input_:
            raise InputError("a labelled dataset needs --label and --input", hint="or give --kind instruction")
        else:
            schema = Schema.parse(label, input_)
        info = open_ward().create_dataset(
            name, schema, description=description, owner=owner, validation_for=validation_for
        )
        if as_json:
            emit_json(info)
            return
        what = f"validation set of {validation_for}" if validation_for else "dataset"
        what = what if kind == "labelled" else f"{kind} {what}"
        console.print(f"[bold green]Created {what}[/bold green] {name} ({info['id']})")
        table(
            "schema",
            ["column", "kind"],
            [(c["name"], c["kind"] + (f":{c['dim']}" if c.get("dim") else "")) for c in info["schema"]["inputs"]]
            + [(info["schema"]["label"], "label")],
        )

    @app.command("datasets")
    @reports_errors
    def datasets(as_json: JsonOpt = False) -> None:
        """List the datasets you may read, with their latest and training versions."""
        items = open_ward().datasets()
        if as_json:
            emit_json(items)
            return
        if not items:
            # An empty table would read as an empty ward; the list only ever shows what grants reach.
            console.print("no dataset you may read (`dataward whoami` lists your grants)")
            return
        table(
            "Datasets",
            ["name", "role", "owner", "latest", "training", "description"],
            [
                (
                    d["name"],
                    d["role"] if d["role"] == "dataset" else f"validation of {d['validation_for']}",
                    d["owner"],
                    f"v{d['latest']}" if d["latest"] else "-",
                    f"v{d['training']}" if d["training"] else "-",
                    safe(d["description"]),
                )
                for d in items
            ],
        )

    @app.command()
    @reports_errors
    def contribute(
        dataset: Annotated[str, typer.Argument(help="Dataset to contribute to.")],
        file: Annotated[Path | None, typer.Argument(help="CSV, JSON Lines, Parquet file or image folder.")] = None,
        source: Annotated[str, typer.Option(help="Where the records came from (URI, system, vendor).")] = "",
        fetched_at: Annotated[str | None, typer.Option(help="When the source was fetched (ISO-8601).")] = None,
        licence: Annotated[str | None, typer.Option(help="Licence of the source.")] = None,
        removes: Annotated[Path | None, typer.Option(help="File of record ids this contribution removes.")] = None,
        format_: Annotated[
            str | None, typer.Option("--format", help="csv, jsonl, json (an array of objects), parquet or images.")
        ] = None,
        message: Annotated[str, typer.Option("--message", "-m", help="Why this contribution.")] = "",
        gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Run the dataset's gate on it now.")] = True,
        html: Annotated[Path | None, typer.Option(help="Write the gate's readable HTML report here.")] = None,
        limit: Annotated[
            list[str] | None,
            typer.Option(
                "--limit",
                help="Raise (or lower) an input limit for this import: NAME=SIZE, e.g. max_record_bytes=64MiB.",
            ),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Submit a contribution: records added from FILE and/or removed, from a declared --source.

        The dataset's gate runs on it right away (unless --no-gate); exit code 0 for a gate verdict
        of pass, 8 for review, 9 for block. Flagged records wait in `dataward review list`."""
        from dataward.io.writers import check_destination

        if not source:
            raise InputError("a contribution needs a declared source", hint="pass --source URI")
        if html is not None:
            check_destination(html, "HTML report")  # before anything is stored
            refuse_ward_output(html)
        with working(f"Importing {file or removes}", enabled=not as_json) as update:
            ward = open_ward()
            info = ward.contribute(
                dataset,
                file,
                source=source,
                fetched_at=_parse_time(fetched_at),
                licence=licence,
                removes=removes,
                message=message,
                format=format_,
                gate=gate,
                progress=update,
                limits=_parse_limits(limit or []),
            )
            html_problem = None
            if html and "gate" in info and info["gate"]["mode"] != "removal":
                from dataward.cli.gate_commands import write_gate_html

                try:
                    write_gate_html(ward, info["ref"], html)
                except InputError as exc:
                    # The contribution is stored and gated: its verdict's exit code stands, the page is a
                    # side product (`dataward gate report` draws it again).
                    html_problem = exc.message
        if as_json:
            emit_json(info)
        else:
            show_contribution(info)
            if "gate" in info:
                from dataward.cli.gate_commands import show_report

                show_report(info["gate"], top=5)
                if html and info["gate"]["mode"] == "removal":
                    console.print("no HTML report: the contribution only removes records")
                elif html and html_problem is None:
                    console.print(f"HTML report written to {safe(str(html))}")
        if html_problem is not None:
            err_console.print(f"[yellow]warning:[/yellow] {safe(html_problem)}; the contribution is stored")
        if "gate" in info:
            raise typer.Exit({"pass": 0, "review": 8, "block": 9}[info["gate"]["verdict"]])

    @app.command()
    @reports_errors
    def withdraw(
        contribution: Annotated[str, typer.Argument(help="Contribution id or DATASET#N.")],
        reason: Annotated[str, typer.Option(help="Why.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Withdraw your own contribution before it is merged."""
        info = open_ward().withdraw(contribution, reason=reason)
        if as_json:
            emit_json(info)
        else:
            console.print(f"[dim]withdrawn[/dim] {info['contribution']}")

    @app.command()
    @reports_errors
    def contributions(
        dataset: Annotated[str, typer.Argument(help="Dataset.")],
        status: Annotated[str | None, typer.Option(help="Only contributions with this status.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List a dataset's contributions."""
        items = open_ward().contributions(dataset, status=status)
        if as_json:
            emit_json(items)
            return
        table(
            f"Contributions to {dataset}",
            ["ref", "status", "gate", "by", "source", "+", "-", "when"],
            [
                (
                    c["ref"],
                    styled(c["status"]),
                    _gate_cell(c),
                    safe(str(c["submitted_by"])),
                    safe(str(c["source_uri"])),
                    c["added"],
                    c["removed"],
                    c["created_at"][:19],
                )
                for c in items
            ],
        )

    @app.command()
    @reports_errors
    def merge(
        contribution: Annotated[str, typer.Argument(help="Contribution id or DATASET#N.")],
        message: Annotated[str, typer.Option("--message", "-m")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Merge a contribution into a new immutable version."""
        info = open_ward().merge(contribution, message=message)
        if as_json:
            _merge_warning(info)
            emit_json(info)
            return
        console.print(
            f"[bold green]Merged[/bold green] {contribution} into [bold]{info['ref']}[/bold] "
            f"({info['records']} records{_merge_held_back(info)}) {short(info['id'], 20)}"
        )
        _merge_warning(info)
        if info.get("same_records_as") and not info.get("warning"):
            # Allowed (one more contribution holds them), but not new data: nobody should take it for that.
            console.print(
                f"[yellow]note[/yellow]: {info['ref']} holds the same {info['records']} records as "
                f"{info['same_records_as']}: every record {safe(contribution)} adds was in it already"
            )

    @app.command()
    @reports_errors
    def versions(dataset: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
        """List a dataset's versions."""
        items = open_ward().versions(dataset)
        if as_json:
            emit_json(items)
            return
        table(
            f"Versions of {dataset}",
            ["version", "stage", "records", "contributions", "id", "created"],
            [
                (
                    f"v{v['number']}",
                    styled(v["stage"]),
                    v["records"],
                    len(v["contributions"]),
                    short(v["id"], 20),
                    v["created_at"][:19],
                )
                for v in items
            ],
        )

    @app.command()
    @reports_errors
    def diff(
        a: Annotated[str, typer.Argument(help="DATASET@VERSION")],
        b: Annotated[str, typer.Argument(help="VERSION or DATASET@VERSION")],
        as_json: JsonOpt = False,
    ) -> None:
        """Records added and removed between two versions."""
        d = open_ward().diff(a, b)
        if as_json:
            emit_json(d)
            return
        tree = Tree(f"[bold]{d['from']['ref']} → {d['to']['ref']}[/bold]")
        tree.add(
            f"[green]+{len(d['added'])} added[/green]  [red]-{len(d['removed'])} removed[/red]  "
            f"{d['unchanged']} unchanged"
        )
        if d["contributions"]:
            tree.add("via " + ", ".join(d["contributions"]))
        for rollback in d.get("rollbacks") or []:
            tree.add(safe(_rollback_line(rollback)))
        for label, ids, colour in (("added", d["added"], "green"), ("removed", d["removed"], "red")):
            if ids:
                branch = tree.add(f"[{colour}]{label}[/{colour}]")
                for rid in ids[:5]:
                    branch.add(rid)
                if len(ids) > 5:
                    branch.add(f"… {len(ids) - 5} more (use --json)")
        console.print(tree)

    @app.command()
    @reports_errors
    def export(
        ref: Annotated[str, typer.Argument(help="DATASET@VERSION (version: vN, training, latest or id).")],
        output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
        format_: Annotated[
            str | None,
            typer.Option("--format", help="parquet, jsonl or csv (default: from the file's extension, else parquet)."),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Write a version's records to a file."""
        from dataward.io.writers import output_format

        # As `contribute` reads a file by its extension: `-o train.jsonl` writes JSON Lines, not Parquet.
        format_ = format_ or output_format(output)
        with working(f"Exporting {ref}", enabled=not as_json):
            info = open_ward().export(ref, output, format=format_)
        if as_json:
            emit_json(info)
        else:
            console.print(
                f"[bold green]Exported[/bold green] {info['version']['ref']} "
                f"({info['records']} records) to {safe(str(output))} as {format_}"
            )

    @app.command()
    @reports_errors
    def promote(
        ref: Annotated[str, typer.Argument(help="DATASET@VERSION")],
        stage: Annotated[str, typer.Option(help="training or retired.")] = "training",
        reason: Annotated[str, typer.Option(help="Why.")] = "",
        accept_shrink: Annotated[
            bool,
            typer.Option(
                "--accept-shrink",
                help="Promote a version with no record, or one leaving out most of the training version's "
                "records (a rollback that takes most of the data out): refused without it. Needs --reason.",
            ),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Promote a version to training (retiring the previous one), or retire it."""
        info = open_ward().promote(ref, stage=stage, reason=reason, accept_shrink=accept_shrink)
        if as_json:
            emit_json(info)
            return
        retired = f" ({info['retired']} retired)" if info.get("retired") else ""
        console.print(f"[bold green]{info['ref']} is now {stage}[/bold green]{retired}")
        if shrunk := info.get("accepted_shrink"):
            # Meant, as --accept-shrink said; still printed, so that nobody misses what training now reads.
            before = (
                f" (of the {shrunk['training_records']} records of {shrunk['training']}, it keeps {shrunk['kept']})"
            )
            console.print(
                f"[yellow]note[/yellow]: training now reads {shrunk['records']} records"
                + (before if shrunk.get("training") else "")
            )
        if info.get("same_records_as"):
            # Allowed, but not new data: whoever expected a model to learn something new should know.
            console.print(
                f"[yellow]note[/yellow]: {info['ref']} holds the same {info['records']} records as "
                f"{info['same_records_as']}, the training version it retires: what training reads is unchanged"
            )
