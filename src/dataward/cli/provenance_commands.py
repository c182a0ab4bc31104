"""Provenance commands: record a transformation, relabel records, attest a version, and check an
attestation offline."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.tree import Tree

from dataward.cli.errors import reports_errors
from dataward.cli.output import console, emit_json, safe, short, styled
from dataward.cli.state import JSON_HELP, open_ward
from dataward.cli.ward_commands import write_text_atomically
from dataward.domain.errors import InputError, not_a_file

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def _params(pairs: list[str], flag: str = "--param") -> dict[str, Any]:
    """``KEY=VALUE`` pairs given with ``flag``; a VALUE that parses as JSON (a number, true, a list) is kept
    as such."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"{flag} {pair!r} is not KEY=VALUE")
        if key in out:
            # The last value won silently, and the run or step recorded something other than was meant.
            raise InputError(f"{flag} gives {key!r} twice", hint=f"give each key once, e.g. {flag} {key}=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _parents(path: Path) -> list[list[str]]:
    """One line per output record, in file order: the ids of the input records it came from,
    separated by spaces or commas."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the parents file {path}: {exc}") from None
    return [[p for p in line.replace(",", " ").split() if p] for line in lines if line.strip()]


def _labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        rid, sep, label = pair.partition("=")
        if not sep:
            raise InputError(f"--set {pair!r} is not RECORD_ID=LABEL")
        if rid.strip() in out:
            raise InputError(f"--set gives record {rid.strip()!r} twice", hint="give each record's new label once")
        out[rid.strip()] = label
    return out


def _show_result(info: dict[str, Any]) -> None:
    t = info["transformation"]
    code = t["code"]
    ident = (
        f"git {code['commit'][:12]}{' (dirty)' if code.get('dirty') else ''} {code.get('path')}"
        if code["kind"] == "git"
        else f"file {code.get('path')} {short(code.get('file_hash'), 18)}"
        if code["kind"] == "file"
        else "not recorded (no --script)"
    )
    # A relabel is a transformation of kind and name "relabel": say it once.
    title = t["kind"] if t["name"] == t["kind"] else f"{t['kind']} {safe(t['name'])}"
    tree = Tree(f"[bold]{title}[/bold] recorded as {info['ref']}")
    tree.add(f"inputs {', '.join(i['ref'] for i in t['inputs'])}; code {safe(ident)}")
    tree.add(f"params {safe(json.dumps(t['params'], sort_keys=True))}")
    tree.add(f"+{info['added']} -{info['removed']} records, {t['lineage_pairs']} lineage links")
    if info.get("gate_verdict"):
        tree.add(f"gate {styled(info['gate_verdict'])}")
    console.print(tree)


def verify_attestation(path: Path, pinned_b64: str | None, *, as_json: bool) -> None:
    """``verify --attestation``: check a bundle against the pinned key only; exit 7 if it fails."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from dataward.provenance.attestation import issued_at, verify_bundle

    if not path.is_file():
        raise not_a_file(path, what="attestation")
    if pinned_b64 is None:
        raise InputError("an attestation is checked against a pinned key", hint="pass --public-key FILE")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the attestation {path}: {exc}") from None
    check = verify_bundle(text, Ed25519PublicKey.from_public_bytes(base64.b64decode(pinned_b64)))
    if as_json:
        emit_json(check.to_dict())
    else:
        tree = Tree(
            "[bold green]attestation verified with the pinned key[/bold green]"
            if check.ok
            else f"[bold red]attestation: {len(check.problems)} problem(s)[/bold red]"
        )
        for s in check.statements:
            names = ", ".join(f"{x['name']} {short(x['digest'].get('sha256'), 18)}" for x in s["subject"])
            head = issued_at(s)
            # What a statement says holds as of its ledger head: a later quarantine is not in it.
            when = f" as of ledger event #{head.get('seq')}" if isinstance(head, dict) else ""
            tree.add(f"{safe(s['predicateType'])} about {safe(names)}{safe(when)}")
        for p in check.problems:
            tree.add(f"[red]envelope {p['envelope']}[/red] {p['kind']}: {safe(str(p['detail']))}")
        console.print(tree)
    if not check.ok:
        raise typer.Exit(7)


def register(app: typer.Typer) -> None:
    """Add ``transform``, ``relabel``, ``transformations``, ``attest`` and ``card`` to ``app``."""

    @app.command()
    @reports_errors
    def transform(
        name: Annotated[str, typer.Argument(help="The step's name (dedup, filter, augment, translate...).")],
        file: Annotated[Path, typer.Argument(help="The step's output records (CSV, JSON Lines, Parquet).")],
        input_: Annotated[
            list[str], typer.Option("--input", help="An input version DATASET@vN the step read; repeatable.")
        ],
        output: Annotated[
            str | None, typer.Option(help="Dataset the output goes to (default: the first input's).")
        ] = None,
        parents: Annotated[
            Path | None,
            typer.Option(help="One line per output record: the input record ids it came from."),
        ] = None,
        param: Annotated[list[str] | None, typer.Option("--param", help="KEY=VALUE; repeatable.")] = None,
        script: Annotated[
            Path | None, typer.Option(help="The script that ran the step (its git commit or file hash is recorded).")
        ] = None,
        replace: Annotated[
            bool | None,
            typer.Option(
                "--replace/--add",
                help="The output replaces the input version (input records left out are removed); default when "
                "the output dataset is an input's.",
            ),
        ] = None,
        format_: Annotated[str | None, typer.Option("--format", help="csv, jsonl or parquet.")] = None,
        message: Annotated[str, typer.Option("--message", "-m", help="Why this step.")] = "",
        gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Run the dataset's gate on the output.")] = True,
        as_json: JsonOpt = False,
    ) -> None:
        """Record a transformation step and submit its output as a gated contribution. Exit codes as
        for `contribute` (8 review, 9 block)."""
        from dataward.provenance.code import code_identity

        ward = open_ward()
        if not hasattr(ward, "record_transformation"):
            raise InputError("a served ward does not record transformations yet", hint="run against the ward folder")
        info = ward.record_transformation(  # type: ignore[attr-defined]
            name,
            inputs=input_,
            data=file,
            output=output,
            parents=_parents(parents) if parents else None,
            params=_params(param or []),
            code=code_identity(script) if script else {"kind": "unknown"},
            replace=replace,
            format=format_,
            message=message,
            gate=gate,
        )
        if as_json:
            emit_json(info)
        else:
            _show_result(info)
        if "gate" in info:
            raise typer.Exit({"pass": 0, "review": 8, "block": 9}[info["gate"]["verdict"]])

    @app.command()
    @reports_errors
    def relabel(
        ref: Annotated[str, typer.Argument(help="DATASET or DATASET@vN whose records are relabelled.")],
        set_: Annotated[list[str], typer.Option("--set", help="RECORD_ID=NEW_LABEL; repeatable.")],
        reason: Annotated[str, typer.Option(help="Why the labels change.")] = "",
        gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Run the dataset's gate on it.")] = True,
        as_json: JsonOpt = False,
    ) -> None:
        """Relabel records: a gated contribution replacing them, recorded as a `relabel` transformation
        (who changed which label, from what, to what, why)."""
        ward = open_ward()
        if not hasattr(ward, "relabel"):
            raise InputError("a served ward does not relabel yet", hint="run against the ward folder")
        dataset, _, version = ref.partition("@")
        info = ward.relabel(dataset, _labels(set_), reason=reason, version=version or None, gate=gate)  # type: ignore[attr-defined]
        if as_json:
            emit_json(info)
        else:
            _show_result(info)
        if "gate" in info:
            raise typer.Exit({"pass": 0, "review": 8, "block": 9}[info["gate"]["verdict"]])

    @app.command()
    @reports_errors
    def transformations(
        dataset: Annotated[str, typer.Argument(help="Dataset the transformations wrote to.")],
        as_json: JsonOpt = False,
    ) -> None:
        """List the transformations recorded into a dataset."""
        ward = open_ward()
        if not hasattr(ward, "transformations"):
            raise InputError("a served ward does not list transformations yet", hint="run against the ward folder")
        found = ward.transformations(dataset)  # type: ignore[attr-defined]
        if as_json:
            emit_json(found)
            return
        for t in found:
            console.print(
                f"{t['contribution']} [bold]{t['kind']} {safe(t['name'])}[/bold] of "
                f"{', '.join(i['ref'] for i in t['inputs'])} by {safe(str(t['by']))} at {t['created_at'][:19]}"
            )

    @app.command()
    @reports_errors
    def attest(
        ref: Annotated[str, typer.Argument(help="DATASET@VERSION to attest.")],
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write the bundle to FILE (default: stdout).")
        ] = None,
    ) -> None:
        """Write an in-toto attestation bundle (JSON Lines of DSSE envelopes signed with the ward key):
        SLSA provenance v1 and the dataward predicate (sources, contributions, transformations, gate
        verdicts, approvals, promotions) about the version's manifest. Check it with
        `dataward verify --attestation FILE --public-key ward.pem` or any DSSE/in-toto verifier."""
        ward = open_ward()
        if not hasattr(ward, "attest"):
            raise InputError("a served ward does not issue attestations yet", hint="run against the ward folder")
        envelopes = ward.attest(ref)  # type: ignore[attr-defined]
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in envelopes)
        if output is None:
            typer.echo(text, nl=False)
            return
        write_text_atomically(output, text)
        console.print(f"attestation of {safe(ref)} ({len(envelopes)} statements) written to {safe(str(output))}")

    @app.command()
    @reports_errors
    def card(
        ref: Annotated[str, typer.Argument(help="DATASET@VERSION to describe.")],
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Folder to write croissant.json and card.md into.")
        ] = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Write a dataset card of a version: Croissant JSON-LD (collection, preprocessing as the
        transformations, gate history and open quarantines as known limitations) and a Markdown card
        (sources and licences, contributors, gate history, transformations, open quarantines)."""
        ward = open_ward()
        if not hasattr(ward, "card"):
            raise InputError("a served ward does not write dataset cards yet", hint="run against the ward folder")
        from dataward.service.cards import croissant_text

        made = ward.card(ref)  # type: ignore[attr-defined]
        croissant, markdown = output / "croissant.json", output / "card.md"
        write_text_atomically(croissant, croissant_text(made["croissant"]))
        write_text_atomically(markdown, made["markdown"])
        if as_json:
            emit_json({"version": made["version"], "croissant": str(croissant), "markdown": str(markdown)})
        else:
            console.print(f"card of {made['version']} written to {safe(str(croissant))} and {safe(str(markdown))}")
