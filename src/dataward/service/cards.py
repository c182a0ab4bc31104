"""``card``: a dataset card of one version, as Croissant JSON-LD (with its responsible-AI fields) and as
readable Markdown, built from the same facts as ``trace`` and ``attest``."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from dataward.access.removals import Removals
from dataward.access.roles import Action
from dataward.catalog.tables import contributions, quarantine
from dataward.domain.names import visible
from dataward.service import rows
from dataward.service.core import Service, WardContext
from dataward.service.guard import SignedCheck
from dataward.service.removal_list import listed_removals, quarantine_listed

if TYPE_CHECKING:
    from dataward.service.attestations import AttestationService
    from dataward.service.datasets import DatasetService

# Croissant (schema.org) data types of dataward column kinds; anything else is described as text.
_DATA_TYPES = {"numeric": "FLOAT", "categorical": "TEXT", "text": "TEXT", "image": "IMAGE_OBJECT", "embedding": "FLOAT"}


# Markdown and HTML syntax an inline value could use to become structure: emphasis, code, links and
# images, table cells, strikethrough, HTML tags, comments and entities, and math (``$...$``, which the
# Hugging Face Hub and GitHub render as TeX: styled, coloured, boxed text) (``#`` only opens a heading at
# the start of a line or list item: see ``_MD_LINE_START``).
_MD_ESCAPES = str.maketrans({**{ch: "\\" + ch for ch in "\\`*_[]|!~$"}, "<": "&lt;", ">": "&gt;", "&": "&amp;"})
# What opens a CommonMark block at the start of a line once ``_MD_ESCAPES`` has been applied: an ATX
# heading (``#``), a bullet list or a thematic break (``-``, ``+``; ``*`` and ``_`` are escaped
# already), an ordered list (``1.``, ``1)``) and a setext underline (``=``, ``-``). The other openers are
# escaped wherever they are: a block quote (``>``) and an HTML block (``<``) become entities, a code
# fence (backtick, ``~``), a table row (``|``) and a link reference definition (``[``) are escaped.
# Indentation is no way around it either: a line-start value is written from its first non-space
# character (four spaces would open a code block, one to three are allowed before any other opener).
_MD_LINE_START = re.compile(r"\d+[.)]|[-+=#]")


def croissant_text(croissant: Mapping[str, Any]) -> str:
    """The Croissant JSON-LD as ``croissant.json`` holds it, with ``<``, ``>`` and ``&`` written as JSON
    escapes (the same JSON). A dataset page embeds the file in a ``<script type="application/ld+json">``
    element, which the first ``</script>`` in it closes whatever JSON says: a licence, description, source
    or quarantine reason holding one ran the rest as the page's own markup and script."""
    text = json.dumps(croissant, indent=2, sort_keys=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e") + "\n"


def md_text(value: object, *, line_start: bool = False) -> str:
    """``value`` as inert inline Markdown text: it renders as the characters that were given and can
    open no section, table cell, link, image, HTML tag or comment. Newlines become spaces; control and
    format characters are shown as escapes (``\\x1b``, ``\\u202e``).

    The card is published with the dataset, and its values (licences, sources, descriptions, reasons
    naming labels) come from contributors: a licence ending in ``\\n## Gate history ... <!--`` forged a
    section and hid the real gate history and open quarantines inside an unclosed comment.

    ``line_start``: the value begins a line or a list item, where it must not open a heading, a list,
    a thematic break or a code block either (``# x``, ``- x``, ``1. x``, ``---``, four spaces), however
    it is indented: its leading whitespace (a leading newline included) is left out, which CommonMark
    does with a paragraph's anyway, and a block opener it then starts with is escaped."""
    text = visible(" ".join(str(value).splitlines())).translate(_MD_ESCAPES)
    if not line_start:
        return text
    text = text.lstrip()
    if start := _MD_LINE_START.match(text):
        return text[: start.end() - 1] + "\\" + text[start.end() - 1 :]
    return text


def _quarantined(listed: Removals, name: str, dataset_id: str, mine: list[Any]) -> list[str]:
    """The quarantined contributions of dataset ``name`` (its contribution rows ``mine``), as the card
    names them: those whose row says so, those the ward's list of removals holds quarantined whatever
    the row says (naming the event), and those the list holds that the catalog never had (restored from
    a backup older than them: named by id, as the list names them)."""
    out = []
    for c in mine:
        shown = quarantine_listed(listed, c.id, c.status)
        if c.status == "quarantined":
            out.append(f"{name}#{c.number}")
        elif shown is not None:
            out.append(
                f"{name}#{c.number} (by event #{shown['event']} at {shown['at']}, which the ward's list of removals "
                f"holds; the catalog says {c.status})"
            )
    known = {c.id for c in mine}
    for cid, held_in in sorted(listed.quarantined_in.items()):
        fact = listed.quarantined[cid]
        if held_in == dataset_id and cid not in known:
            out.append(
                f"contribution {cid} (by event #{fact.seq} at {fact.time}, which the ward's list of removals "
                "holds; the catalog predates the contribution)"
            )
    return out


class CardService(Service):
    """Use case ``card``, built on the statements the attestation service makes."""

    def __init__(self, context: WardContext, datasets: DatasetService, attestations: AttestationService) -> None:
        super().__init__(context)
        self.datasets = datasets
        self.attestations = attestations

    def card(self, ref: str) -> dict[str, Any]:
        """The card of ``DATASET@VERSION``: ``{"croissant": JSON-LD dict, "markdown": text, "version": ...}``.
        Needs ``trace`` on the dataset (it names principals, keys and gate findings)."""
        import mlcroissant as mlc

        name, version = rows.split_ref(ref)
        scope = self.datasets.read_scope(name)
        with self.use_case(Action.TRACE, scope, detail={"ref": ref}) as uc:
            conn = uc.conn
            ds = rows.dataset_row(conn, name)
            ver = rows.version_row(conn, ds.id, name, version)
            doing = "make a card of"
            _slsa, ours = self.attestations.statements(conn, ds, ver, uc.caller.principal_name, doing=doing)
            facts = ours["predicate"]
            schema = rows.dataset_schema(ds)
            # The open quarantines and pending reviews the card lists are read from rows checked against
            # the signed ledger, with those the ledger has and the catalog lost (see guard.SignedCheck).
            check = SignedCheck(self, conn, doing=doing)
            mine = check.matching(
                "contributions",
                conn.execute(select(contributions.c.id).where(contributions.c.dataset_id == ds.id)).scalars(),
                [r["id"] for r in check.signed("contributions") if r.get("dataset_id") == ds.id],
                f"the contributions of {name!r}",
            )
            mine.sort(key=lambda c: c.number)
            numbers = {c.id: c.number for c in mine}
            items = check.matching(
                "quarantine",
                [
                    r.id
                    for r in conn.execute(select(quarantine.c.id, quarantine.c.contribution_id))
                    if r.contribution_id in numbers
                ],
                [r["id"] for r in check.signed("quarantine") if r.get("contribution_id") in numbers],
                f"the review items of {name!r}",
            )
            listed = listed_removals(conn)
            # A quarantined contribution's records are out of every version: nothing of it awaits review.
            # The catalog closes its items when it quarantines it; one restored from before the quarantine
            # still has them pending, while the ward's list holds it quarantined.
            out = {c.id for c in mine if c.status == "quarantined" or listed.quarantine(c.id) is not None}
            held = [
                (numbers[q.contribution_id], q.record_id, q.status, q.reason)
                for q in sorted(items, key=lambda q: (numbers[q.contribution_id], q.record_id))
                if q.status == "pending" and q.contribution_id not in out
            ]
            quarantined = _quarantined(listed, name, ds.id, mine)
            manifest_sha = hashlib.sha256(self.store.get(ver.manifest_object)).hexdigest()
        v = facts["version"]
        sources = facts["sources"]
        contribs = facts["contributions"]
        steps = facts["transformations"]
        # What the loader refuses of the version (records made from a quarantined contribution's, or
        # added by one elsewhere): the version's own contributions may all be merged and still hold them.
        barred = [
            f"barred from training: {b['records']} record(s) {b['reason']} (loader and promotion refuse the version)"
            for b in facts["barred_records"]
        ]
        gate_lines = [
            f"{c['ref']}: gate {g['run']} verdict {g['verdict']}, {g['flagged']} record(s) flagged "
            f"(config {g['config_hash']})"
            for c in contribs
            for g in c["gates"]
        ]
        collection = "; ".join(
            f"{s['uri']} (raw file {s['digest'].get('blake3', '')[:16]}…, fetched {s['annotations']['fetched_at']}, "
            f"licence {s['annotations']['licence'] or 'unknown'})"
            for s in sources
        )
        preprocessing = [
            f"{t['kind']} {t['name']} ({t['contribution']}) of {', '.join(i['ref'] for i in t['inputs'])} "
            f"by {t['by']}, "
            f"params {json.dumps(t['params'], sort_keys=True)}, code {json.dumps(t['code'], sort_keys=True)}"
            for t in steps
        ]
        relabels = [p for p, t in zip(preprocessing, steps, strict=True) if t["kind"] == "relabel"]
        licences = sorted({s["annotations"]["licence"] for s in sources if s["annotations"]["licence"]})
        file_id = "records"
        fields = [
            mlc.Field(
                id=f"records/{col}",
                name=col,
                description="the label" if col == schema.label else f"input column ({schema.column(col).kind})",
                data_types=[
                    getattr(mlc.DataType, _DATA_TYPES.get(schema.column(col).kind, "TEXT"))
                    if col != schema.label
                    else mlc.DataType.TEXT
                ],
                source=mlc.Source(file_object=file_id, extract=mlc.Extract(column=col)),
            )
            for col in schema.columns
        ]
        metadata = mlc.Metadata(
            name=name,
            description=(ds.description or f"dataset {name}") + f", version {v['number']} ({v['stage']})",
            version=f"{v['number']}.0.0",
            url=f"dataward://{self.ward_id}/{name}@v{v['number']}",
            license=licences or None,
            date_created=None,
            distribution=[
                mlc.FileObject(
                    id=file_id,
                    name=f"{name}-v{v['number']}.parquet",
                    description="the version's records, as `dataward export` writes them; sha256 is that of the "
                    "version's manifest (the record ids it holds)",
                    content_url=f"dataward://{self.ward_id}/{name}@v{v['number']}",
                    encoding_formats=["application/x-parquet"],
                    sha256=manifest_sha,
                )
            ],
            record_sets=[mlc.RecordSet(id="records_set", name="records", fields=fields)],
            data_collection=collection or None,
            data_preprocessing_protocol=preprocessing or None,
            data_annotation_protocol=relabels or None,
            data_limitations=gate_lines
            + [f"pending review: {name}#{n} record {r[:16]}… ({reason})" for n, r, _s, reason in held]
            + [f"quarantined contribution: {q}" for q in quarantined]
            + barred
            or None,
        )
        croissant = metadata.to_json()
        by_principal = Counter(c["submitted_by"] for c in contribs)
        md = [f"# {name}@v{v['number']}", "", md_text(ds.description or "", line_start=True), ""]
        md += [
            f"- version id `{v['id']}`, manifest `{v['manifest']}` (sha256 `{manifest_sha}`)",
            f"- {v['records']} records, stage **{v['stage']}**, made {v['created_at']} by {md_text(v['created_by'])}",
            f"- label column `{schema.label}`; inputs " + ", ".join(f"`{c.name}` ({c.kind})" for c in schema.inputs),
            "",
            "## Sources and licences",
            "",
            "| source | raw file (BLAKE3) | fetched | licence |",
            "| --- | --- | --- | --- |",
        ]
        md += [
            f"| {md_text(s['uri'])} | `{s['digest'].get('blake3', '')[:16]}…` | {s['annotations']['fetched_at']} | "
            f"{md_text(s['annotations']['licence']) if s['annotations']['licence'] else '-'} |"
            for s in sources
        ]
        md += ["", "## Contributors", "", "| principal | contributions |", "| --- | --- |"]
        md += [f"| {md_text(p)} | {n} |" for p, n in sorted(by_principal.items())]
        md += ["", "## Contributions and gate history", "", "| contribution | by | key | source | gate | approvals |"]
        md += ["| --- | --- | --- | --- | --- | --- |"]
        for c in contribs:
            gates = ", ".join(f"{g['verdict']} ({g['flagged']} flagged)" for g in c["gates"]) or "-"
            approvals = ", ".join(f"{a['decision']} by {a['by']}" for a in c["approvals"]) or "-"
            src = (c["source"] or {}).get("uri", "-")
            cells = (c["ref"], c["submitted_by"], c["key"] or "-", src, gates, approvals)
            md.append("| " + " | ".join(md_text(cell) for cell in cells) + " |")
        md += ["", "## Transformations", ""]
        md += [f"- {md_text(line, line_start=True)}" for line in preprocessing] or ["none"]
        md += ["", "## Promotions", ""]
        md += [
            f"- {p['time']}: {p['type']} by {md_text(p['by'])}: {md_text(p['payload'].get('reason') or '')}"
            for p in facts["promotions"]
        ] or ["none"]
        md += ["", "## Open quarantines", ""]
        md += [f"- {q} (quarantined contribution)" for q in quarantined]
        md += [f"- {name}#{n}: record `{r[:16]}…` pending review ({md_text(reason)})" for n, r, _s, reason in held]
        md += [f"- {md_text(line)}" for line in barred]
        if not quarantined and not held and not barred:
            md.append("none")
        return {"version": f"{name}@v{v['number']}", "croissant": croissant, "markdown": "\n".join(md) + "\n"}


__all__ = ["CardService", "croissant_text"]
