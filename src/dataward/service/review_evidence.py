"""What a reviewer is told of a flagged record: why it is queued, and its trusted neighbours' texts.

**Why it is queued, when no finding of its own row says it.**

A detector may flag every carrier of what it found but write a per-record finding for only some of them:
``llm_triggers`` and ``llm_payloads`` write one for the first 50 carriers of a trigger or a payload, and
list every carrier (up to their ``max_rows_in_evidence``) in the contribution-level finding's
``evidence.rows``. The queue item of a later carrier said only "flagged by llm_triggers", and ``review
show`` had nothing to show or mark. These findings say, for such a record, what the detector found that it
carries: the trigger and its behaviour, or the payload, as the per-record findings word it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_KEPT = ("trigger", "behaviour", "payload", "kind")
"""The evidence a carrier's finding keeps: what marks the record in ``review show``."""


def carrier_findings(findings: Sequence[Mapping[str, Any]], row: int, detectors: Iterable[str]) -> list[dict[str, Any]]:
    """Findings for the record at file row ``row`` from the contribution-level findings of ``detectors``
    (those that flagged it) that list it among their carriers, for each detector that has no finding of
    this row of its own."""
    wanted = set(detectors) - {f.get("detector") for f in findings if f.get("row") == row}
    out = []
    for f in findings:
        evidence = f.get("evidence") or {}
        if f.get("row") is not None or f.get("detector") not in wanted or row not in (evidence.get("rows") or ()):
            continue
        out.append(
            {
                "detector": f["detector"],
                "score": f.get("score", 0.0),
                "reason": _carrier_reason(f),
                "row": row,
                "evidence": {k: evidence[k] for k in _KEPT if k in evidence},
            }
        )
    return out


def _carrier_reason(finding: Mapping[str, Any]) -> str:
    evidence = finding.get("evidence") or {}
    if evidence.get("trigger") and evidence.get("behaviour"):
        what = "prompt formatting" if evidence.get("kind") == "prompt_style" else "prompt trigger"
        return f"carries {what} {evidence['trigger']!r} with response {evidence['behaviour']}"
    if isinstance(evidence.get("payload"), str):
        kind, _, value = evidence["payload"].partition(":")
        return f"response carries recurring {kind} {value!r}"
    return f"one of the records of: {finding.get('reason', '')}"


def item_reason(findings: Sequence[Mapping[str, Any]], row: int, flagged_by: Sequence[str]) -> str:
    """The reason of a queue item: its row's findings (at most three), those of the contribution-level
    findings it is a carrier of, and only when nothing names it, which detectors flagged it."""
    own = [f for f in findings if f.get("row") == row]
    reasons = [str(f["reason"]) for f in [*own, *carrier_findings(findings, row, flagged_by)]][:3]
    return "; ".join(reasons) or "flagged by " + ", ".join(flagged_by)


NEIGHBOUR_TEXT = 80
"""How much of a neighbour's prompt and answer ``review show`` keeps (its start): enough to compare."""


def neighbour_texts(neighbours: list[dict[str, Any]], records: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The trusted neighbours of a language-model record with what a reviewer compares: each one's
    ``prompt`` and the start of its answer (``response``; a pair's ``chosen`` and ``rejected``; a chat's
    last user turn and last answer), read from ``records`` (record id -> stored record). The gate kept only
    the prompt (as ``text``) and the kind's name as the neighbour's ``label``, which says nothing of an
    unlabelled record; both stay in the JSON for what reads them. A neighbour not in ``records`` (erased
    since) keeps what the gate stored."""
    out = []
    for n in neighbours:
        record = records.get(str(n.get("record_id")))
        if record is None:
            out.append(dict(n))
            continue
        texts = _record_texts(record)
        out.append({**n, **{k: _start(v) for k, v in texts.items()}})
    return out


def _record_texts(record: Mapping[str, Any]) -> dict[str, str | None]:
    if "messages" in record:
        try:
            messages = json.loads(record["messages"] or "[]")
        except (TypeError, ValueError):
            messages = []
        last = {m.get("role"): m.get("content") for m in messages if isinstance(m, dict)}
        return {"prompt": last.get("user") or last.get("system"), "response": last.get("assistant")}
    return {k: record.get(k) for k in ("prompt", "response", "chosen", "rejected") if k in record}


def _start(text: Any) -> str | None:
    if text is None:
        return None
    flat = " ".join(str(text).split())
    return flat if len(flat) <= NEIGHBOUR_TEXT else flat[: NEIGHBOUR_TEXT - 1] + "…"


__all__ = ["carrier_findings", "item_reason", "neighbour_texts"]
