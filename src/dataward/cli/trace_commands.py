"""``dataward trace``: provenance backward, blast radius forward, in one command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.tree import Tree

from dataward.cli.errors import reports_errors
from dataward.cli.output import VERDICT_STYLE, console, emit_json, safe, styled
from dataward.cli.state import JSON_HELP, open_ward
from dataward.domain.errors import InputError

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def _contribution_branch(tree: Tree, c: dict[str, Any]) -> None:
    node = tree.add(f"[bold]{c['ref']}[/bold] {styled(c['status'])}" + (f" row {c['row']}" if "row" in c else ""))
    if c.get("quarantine_listed"):
        listed = c["quarantine_listed"]
        node.add(
            f"[bold yellow]quarantined[/bold yellow] by event #{listed['event']} at {listed['at'][:19]}: "
            + safe(listed["note"])
        )
    src = c["source"] or {}
    node.add(
        f"source {safe(str(src.get('uri')))} fetched {src.get('fetched_at', '-')[:19]}, "
        f"licence {safe(src.get('licence') or '-')}, raw {str(src.get('raw_hash'))[:18]}…"
    )
    owner = f" (owned by {c['owner']})" if c.get("owner") else ""
    node.add(
        f"submitted by {c['kind']} [bold]{safe(c['submitted_by'])}[/bold]{owner} with key {c['key']} "
        f"at {c['submitted_at'][:19]}"
    )
    for g in c["gates"]:
        node.add(
            f"gate {g['run']}: {styled(g['verdict'], VERDICT_STYLE)}, {g['flagged']} flagged, "
            f"config {g['config_hash'][:14]}…"
        )
    for o in c.get("overrides", []):
        verb = "block override requested" if o["step"] == "requested" else "block override confirmed"
        node.add(
            f"[magenta]{verb}[/magenta] by {safe(str(o['by']))} ({o['role']}) at {o['at'][:19]}: {safe(o['reason'])}"
        )
    for a in c["approvals"]:
        verb = {"approve": "approved", "reject": "rejected"}.get(a["decision"], a["decision"])
        node.add(f"{verb} by {safe(a['by'])}: {safe(a['reason'])}")
    if c.get("review"):
        r = c["review"]
        node.add(
            f"[yellow]quarantined[/yellow] ({', '.join(r['detectors'])}), review {r['status']}"
            + (f" by {r['decided_by']}: {safe(r['decision_reason'] or '')}" if r["decided_by"] else "")
        )


def _key_line(k: dict[str, Any]) -> str:
    via = f", from {k['parent']}…" if k.get("parent") else ""
    made = f", made with {k['minted_with']}…" if k.get("minted_with") and k["minted_with"] != k.get("parent") else ""
    return (
        f"{k['key']}… of [bold]{safe(str(k['principal']))}[/bold] {styled(k['state'])}, "
        f"expires {k['expires_at'][:10]}{via}{made}"
    )


def _key_branches(tree: Tree, subject: dict[str, Any], result: dict[str, Any]) -> None:
    """A key's holder, dates and lineage: the keys minted from it and those issued with it."""
    tree.add(
        f"of [bold]{safe(str(subject['principal']))}[/bold], {styled(subject['state'])}, created "
        f"{subject['created_at'][:19]}, expires {subject['expires_at'][:19]}"
        + (f", revoked {subject['revoked_at'][:19]}" if subject.get("revoked_at") else "")
    )
    if subject.get("parent"):
        tree.add(f"minted from {subject['parent']}… (revoked with it, never outlives it)")
    if subject.get("successor"):
        tree.add(f"rotated to {subject['successor']}…")
    minted = tree.add(f"[bold red]keys minted through it[/bold red]: {len(result['minted'])} (revoked with it)")
    for k in result["minted"]:
        minted.add(_key_line(k))
    if result["issued"]:
        issued = tree.add(f"keys issued with it on an admin grant: {len(result['issued'])} (not revoked with it)")
        for k in result["issued"]:
            issued.add(_key_line(k))
    standing = [g for g in result.get("granted", []) if g["stands"]]
    if result.get("granted"):
        granted = tree.add(
            f"grants made with it: {len(result['granted'])}, {len(standing)} still standing (not revoked with it)"
        )
        for g in result["granted"]:
            granted.add(
                f"{safe(str(g['principal']))} {g['role']} on {safe(str(g['scope']))}, {g['at'][:19]} with {g['key']}… "
                + (f"[bold red]stands[/bold red]: {g['revoke']}" if g["stands"] else "revoked since")
            )


def _step_line(s: dict[str, Any]) -> str:
    code = s["code"]
    ident = (
        f"git {code['commit'][:12]}{' dirty' if code.get('dirty') else ''}"
        if code["kind"] == "git"
        else f"file {str(code.get('file_hash'))[:18]}…"
        if code["kind"] == "file"
        else "unknown code"
    )
    return (
        f"[bold]{s['kind']} {safe(s['name'])}[/bold] ({s['contribution']}, {styled(s['status'])}) of "
        f"{', '.join(s['inputs'])} by {safe(str(s['by']))}, {ident}"
    )


def _lineage_branches(tree: Tree, result: dict[str, Any]) -> None:
    """A record's transformations: the steps that made it and where its ancestors came from, then
    what later steps made of it."""
    if result.get("derived_from"):
        made = tree.add("made by")
        for s in result["derived_from"]:
            node = made.add(_step_line(s) + f": {s['record'][:12]}… from {len(s['parents'])} record(s)")
            if s.get("note"):
                node.add(safe(json.dumps(s["note"], sort_keys=True)))
        origins = tree.add(f"original records: {len(result.get('origins', []))}")
        for o in result.get("origins", []):
            node = origins.add(o["record"][:16] + "…")
            for c in o["contributions"]:
                _contribution_branch(node, c)
    if result.get("derived"):
        derived = tree.add(f"[bold red]made from it[/bold red]: {len(result['derived'])} record(s)")
        for s in result["derived"]:
            node = derived.add(_step_line(s) + f": {s['record'][:12]}…")
            for v in s["versions"]:
                node.add(f"in {v['ref']} {styled(v['stage'])}")


def _models_branch(tree: Tree, result: dict[str, Any]) -> None:
    """The model versions trained on any version the trace lists, each marked when it is released and
    its training data has been held out since."""
    if not result.get("models"):
        return
    node = tree.add(f"[bold red]models trained on it[/bold red]: {len(result['models'])}")
    for m in result["models"]:
        line = f"{safe(m['model'])} {styled(m['stage'])}"
        if m.get("affected"):
            line += " [bold red]affected[/bold red]"
        node.add(line)


def _quarantined_models(tree: Tree, models: list[dict[str, Any]]) -> None:
    """A quarantine's models trained on a version that held what it quarantined, and what to do about a
    released one: an operator in an incident reads this output, not the JSON."""
    _models_branch(tree, {"models": models})
    for m in models:
        if m.get("affected"):
            tree.add(
                f"[bold red]released model {safe(m['model'])} was trained on records now held out[/bold red]: "
                "train it again on the rollback version and release that"
            )


def _subject_name(subject: dict[str, Any]) -> str:
    """How a traced subject is named to a person: a version, contribution or model by its ref, a
    principal by its name, a source by its URI, a record or key by its id."""
    for field in ("ref", "name", "uri", "id"):
        if subject.get(field):
            return str(subject[field])
    return "?"


def _model_branches(tree: Tree, result: dict[str, Any]) -> None:
    """A model version's trace: its stage, run and trainer, why it is affected, then each dataset
    version it was trained on, traced back as a version is."""
    m = result["subject"]
    run = m.get("run") or {}
    gate = m.get("release_gate") or {}
    tree.add(
        f"{styled(m['stage'])}, trained by [bold]{safe(str(m.get('trained_by')))}[/bold] in run {run.get('id')}"
        + (f", release gate {styled(gate['verdict'], VERDICT_STYLE)}" if gate.get("verdict") else "")
        + (f", released by {safe(str(m['released_by']))}" if m.get("released_by") else "")
    )
    if m.get("withdrawal"):
        w = m["withdrawal"]
        tree.add(
            f"[bold red]withdrawn[/bold red] by {safe(str(w.get('by')))} at {w.get('at')}: {safe(str(w.get('reason')))}"
        )
    if result.get("why_affected"):
        why = tree.add(
            "[bold red]affected[/bold red]: its training data has been held out since"
            if m.get("affected")
            else "its training data has been held out since"
        )
        for reason in result["why_affected"]:
            why.add(safe(str(reason)))
    trained_on = tree.add(f"trained on {len(result['datasets'])} dataset version(s)")
    for d in result["datasets"]:
        v = d["subject"]
        node = trained_on.add(f"[bold]{safe(str(v['ref']))}[/bold] {styled(v['stage'])} ({v['records']} records)")
        back = node.add("came from")
        for c in d["contributions"]:
            _contribution_branch(back, c)
        if not d["contributions"]:
            back.add("[dim]nothing[/dim]")


def _show_incident(result: dict[str, Any]) -> None:
    subject = result["subject"]
    what = subject.get("key") or subject.get("principal") or subject.get("uri")
    title = f"[bold yellow]quarantined[/bold yellow] everything {safe(str(what))} touched"
    if not result["datasets"]:
        # A key that only approved: nothing to quarantine, but what it approved is the incident.
        title = f"{safe(str(what))} touched no contribution; what it approved:"
    tree = Tree(title)
    for d in result["datasets"]:
        node = tree.add(
            f"[bold]{safe(d['dataset'])}[/bold]: {', '.join(d['quarantined']) or 'nothing new'}"
            + (f" (already: {', '.join(d['already_quarantined'])})" if d["already_quarantined"] else "")
        )
        node.add(f"[bold red]blast radius[/bold red]: {', '.join(v['ref'] for v in d['affected_versions']) or '-'}")
        rollback = d["rollback_version"]
        if rollback:
            node.add(
                f"rollback version [bold]{rollback['ref']}[/bold]: -{rollback['records_removed']} records, "
                f"+{rollback['records_restored']} restored; {_promote_rollback(rollback)}"
            )
        _quarantined_models(node, d.get("models", []))
    # What a key approved: containment by key lists it, and says whether each approval still counts.
    for a in result.get("approvals", []):
        counts = "[yellow]still counts[/yellow]" if a["counts"] else "[red]no longer counts[/red]"
        tree.add(f"approved [bold]{safe(a['approved'])}[/bold] as {safe(a['by'])}: {counts}: {safe(a['why'])}")
    console.print(tree)
    for step in result.get("next_steps", []):
        console.print(f"[bold]next[/bold]: {safe(step)}")


def _trace_content(
    file: Path | None, row: str | None, dataset: str | None, format_: str | None, *, as_json: bool
) -> None:
    """Hash a file's rows (or one row) with a dataset's schema, here, and trace each record found."""
    from dataward.domain.errors import NotFound
    from dataward.domain.schema import Schema
    from dataward.provenance.handles import file_record_ids, row_record_id

    if dataset is None:
        raise InputError("hashing content needs the dataset whose schema it follows", hint="pass --dataset NAME")
    ward = open_ward()
    # The schema is read from the one dataset (dataset.read, which every role holding trace has), so
    # a grant on that dataset suffices; listing every dataset would need the whole ward's ledger.
    schema = Schema.from_dict(ward.dataset_info(dataset)["schema"])
    ids = file_record_ids(file, schema, format=format_) if file is not None else [row_record_id(row or "", schema)]
    traces, unknown = [], []
    for rid in dict.fromkeys(ids):
        try:
            traces.append(ward.trace(rid))
        except NotFound:
            unknown.append(rid)
    result = {
        "subject": {"kind": "file" if file is not None else "row", "path": str(file) if file else None,
                    "dataset": dataset, "rows": len(ids), "records": len(dict.fromkeys(ids))},
        "traces": traces,
        "unknown": unknown,
    }  # fmt: skip
    if as_json:
        emit_json(result)
        return
    console.print(f"{len(ids)} row(s), {len(traces)} record(s) known to the ward, {len(unknown)} never contributed")
    for t in traces:
        tree = Tree(f"[bold]record[/bold] {t['subject']['id']}")
        back = tree.add("came from")
        for c in t["contributions"]:
            _contribution_branch(back, c)
        _lineage_branches(tree, t)
        forward = tree.add(f"[bold red]blast radius[/bold red]: {len(t['versions'])} version(s)")
        for v in t["versions"]:
            forward.add(f"{v['ref']} {styled(v['stage'])} ({v['records']} records)")
        _models_branch(tree, t)
        console.print(tree)


def _promote_rollback(rollback: dict[str, Any]) -> str:
    """What to do with a quarantine's rollback version: promote it, with --accept-shrink (and a reason) when
    it holds no record, as promotion refuses an empty version otherwise."""
    if rollback.get("records") == 0:
        return (
            f"it holds no record: nothing of the dataset is left to train on; promoting it needs "
            f"dataward promote {rollback['ref']} --accept-shrink --reason '...'"
        )
    return "promote it to replace the training version"


def register(app: typer.Typer) -> None:
    """Add ``trace`` and ``quarantine`` to ``app``."""

    @app.command()
    @reports_errors
    def trace(
        ref: Annotated[
            str | None,
            typer.Argument(
                help="A record id, contribution (c_… or DATASET#N), key (dw_…), version (DATASET@vN), "
                "principal:NAME, source:URI or model:NAME@vN."
            ),
        ] = None,
        file: Annotated[
            Path | None,
            typer.Option("--file", help="Trace every record of this file (hashed here with --dataset's schema)."),
        ] = None,
        row: Annotated[
            str | None,
            typer.Option(
                "--row",
                help="Trace one row, a JSON object with the columns --file would hold: "
                '\'{"text": "...", "label": "x"}\', \'{"prompt": "...", "response": "..."}\'.',
            ),
        ] = None,
        dataset: Annotated[
            str | None, typer.Option("--dataset", help="The dataset whose schema hashes --file/--row.")
        ] = None,
        format_: Annotated[str | None, typer.Option("--format", help="Format of --file: csv, jsonl, parquet.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Where something came from (source, principal, key, gates, approvals, the transformations that
        made it) and every version that holds it."""
        if (ref is not None) + (file is not None) + (row is not None) != 1:
            raise InputError("trace one thing: a REF, --file FILE or --row JSON", hint="see `dataward trace --help`")
        if ref is None:
            _trace_content(file, row, dataset, format_, as_json=as_json)
            return
        result = open_ward().trace(ref)
        if as_json:
            emit_json(result)
            return
        subject = result["subject"]
        tree = Tree(f"[bold]{subject['kind']}[/bold] {safe(_subject_name(subject))}")
        if subject["kind"] == "model":
            _model_branches(tree, result)
            console.print(tree)
            return
        if subject["kind"] == "key":
            _key_branches(tree, subject, result)
        back = tree.add("came from")
        for c in result["contributions"]:
            _contribution_branch(back, c)
        if not result["contributions"]:
            back.add("[dim]nothing[/dim]")
        _lineage_branches(tree, result)
        forward = tree.add(f"[bold red]blast radius[/bold red]: {len(result['versions'])} version(s)")
        for v in result["versions"]:
            forward.add(f"{v['ref']} {styled(v['stage'])} ({v['records']} records)")
        _models_branch(tree, result)
        console.print(tree)

    @app.command()
    @reports_errors
    def quarantine(
        contribution: Annotated[
            str,
            typer.Argument(
                help="Contribution id or DATASET#N; or a key (dw_…), principal:NAME or source:URI for everything "
                "it touched."
            ),
        ],
        reason: Annotated[str, typer.Option(help="Why (the incident).")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Hold a contribution out of every future version; if merged, make a rollback version without it.
        Given a key, principal or source: every contribution it touched, one rollback version per dataset."""
        if contribution.startswith(("dw_", "principal:", "source:")):
            ward = open_ward()
            if not hasattr(ward, "quarantine_by"):
                raise InputError("a served ward does not quarantine by cause yet", hint="run against the ward folder")
            by_cause = ward.quarantine_by(contribution, reason=reason)  # type: ignore[attr-defined]
            if as_json:
                emit_json(by_cause)
                return
            _show_incident(by_cause)
            return
        result = open_ward().quarantine_contribution(contribution, reason=reason)
        if as_json:
            emit_json(result)
            return
        tree = Tree(
            f"[bold yellow]quarantined[/bold yellow] {result['contribution']} (was {result['previous_status']})"
        )
        affected = tree.add(f"[bold red]blast radius[/bold red]: {len(result['affected_versions'])} version(s)")
        for v in result["affected_versions"]:
            affected.add(f"{v['ref']} {styled(v['stage'])}")
        rollback = result["rollback_version"]
        if rollback:
            tree.add(
                f"rollback version [bold]{rollback['ref']}[/bold]: -{rollback['records_removed']} records, "
                f"+{rollback['records_restored']} restored; {_promote_rollback(rollback)}"
            )
        _quarantined_models(tree, result.get("models", []))
        console.print(tree)
