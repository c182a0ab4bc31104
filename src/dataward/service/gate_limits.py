"""What a ``pass`` (or a ``review``) cannot vouch for: the limit the last self-test measured on the dataset.

A gate's verdict says whether its detectors found evidence in a batch; it never said how much poison they
can miss. A trial's batch passed with its flipped labels below what the gate sees, and nothing beside the
``pass`` said that such a floor exists. ``dataward gate selftest`` measures it on the dataset's own data:
canaries (flipped labels, a trigger...) planted at 5%, then 10% and 20% of a clean slice of the training
version, and the fewest planted records the gate caught (``detection_floor``). Its ``gate.selftest``
event is in the ledger; this module reads the newest one of the dataset and says, beside the verdict, what
it measured and whether it still describes this gate (the same training version and policy), or that no
self-test measured anything. No figure is made up here: every number is the self-test's or the batch's.

``detection_limit`` is added to a gate report (``gate run``, ``gate report``, ``contribute``) whose verdict
is ``pass`` or ``review``; a ``block`` needs no such caveat.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from dataward.catalog import ledger_store

CANARY_WORDS = {
    "label_flip": "label flips",
    "trigger": "a trigger",
    "trigger_link": "a trigger phrase teaching a link",
    "trigger_polarity": "a trigger phrase teaching a hostile answer",
    "swapped_preference": "swapped preference pairs",
}
"""How a canary is named in the sentence (others by their name, ``_`` read as a space)."""


def latest_selftest(conn: Connection, dataset_id: str) -> dict[str, Any] | None:
    """The newest ``gate.selftest`` event of dataset ``dataset_id`` as ``{event, at, summary}``, or None."""
    for event in ledger_store.read_events(conn, types=["gate.selftest"], newest_first=True, mentioning=[dataset_id]):
        if event.type == "gate.selftest" and event.subject.get("dataset") == dataset_id:
            return {"event": event.seq, "at": event.time, "summary": event.payload.get("summary") or {}}
    return None


def detection_limit(
    conn: Connection, ds: Any, report: dict[str, Any], *, baseline_version: str | None, sees_floors: bool
) -> dict[str, Any] | None:
    """``{records, selftest, note}`` for a ``pass`` or ``review`` report of dataset ``ds`` (its row) judged
    against ``baseline_version``; None for another verdict. ``selftest`` is None when none is recorded, else
    ``{event, at, records, canaries: [{name, detection_floor, missed_at}], same_training, same_policy}`` (the last two
    None when the event predates recording them).

    ``sees_floors``: whether the caller may run the dataset's self-test (``gate.run``: reviewers and
    owners). A contributor is told that a limit exists, never where it lies (``withheld``): the floors
    say how little poison passes this gate unseen, which is what a poisoner would plant under."""
    if report.get("verdict") not in ("pass", "review"):
        return None
    records = int((report.get("counts") or {}).get("records") or 0)
    if not sees_floors:
        note = (
            f"limit: a {report['verdict']} says only that no detector found evidence at its alpha; how much poison "
            f"this gate misses on {ds.name} is measured by its self-test, shown to its reviewers and owners"
        )
        return {"records": records, "selftest": None, "withheld": True, "note": note}
    found = latest_selftest(conn, ds.id)
    if found is None:
        note = (
            f"limit: what this gate misses on {ds.name} is unmeasured, no self-test is recorded (run `dataward gate "
            f"selftest {ds.name}`); a {report['verdict']} says only that no detector found evidence at its alpha"
        )
        return {"records": records, "selftest": None, "note": note}
    summary = found["summary"]
    canaries = [
        {
            "name": str(c.get("name")),
            "detection_floor": c.get("detection_floor"),
            # The most planted records it still missed (None when its first, smallest count was caught).
            "missed_at": max(
                (int(a["planted"]) for a in c.get("attempts") or [] if not a.get("detected") and "planted" in a),
                default=None,
            ),
        }
        for c in summary.get("canaries") or []
    ]
    slice_size = summary.get("records")
    facts = {
        "event": found["event"],
        "at": found["at"],
        "records": slice_size,
        "canaries": canaries,
        "same_training": None if "training" not in summary else summary["training"] == baseline_version,
        "same_policy": None if "policy_hash" not in summary else summary["policy_hash"] == ds.policy_hash,
    }
    return {"records": records, "selftest": facts, "note": _sentence(ds.name, records, facts)}


def _sentence(name: str, records: int, facts: dict[str, Any]) -> str:
    """The one line the CLI prints under the verdict."""
    of = facts["records"]
    parts = []
    for c in facts["canaries"]:
        what = CANARY_WORDS.get(c["name"], c["name"].replace("_", " "))
        floor, missed = c["detection_floor"], c["missed_at"]
        share = (lambda k: f" ({100 * k / of:.0f}%)") if of else (lambda k: "")
        if floor is None:
            parts.append(f"missed {what} even at {missed}{share(missed)}" if missed else f"missed {what}")
            continue
        below = f", missed at {missed}" if missed is not None else ", the fewest it planted"
        parts.append(f"caught {what} from {floor}{share(floor)}{below}")
    day = str(facts["at"])[:10]
    on = f", on a clean slice of {of} records" if of else ""
    line = f"limit: the last self-test of {name} ({day}{on}) " + "; ".join(parts or ["planted nothing"])
    line += f": a smaller share of poison in this batch of {records} records may pass unseen"
    other = [
        w
        for w, same in (("training version", facts["same_training"]), ("policy", facts["same_policy"]))
        if same is False
    ]
    if other:
        line += f" (it measured another {' and '.join(other)} than this gate's: run `dataward gate selftest {name}`)"
    return line


__all__ = ["CANARY_WORDS", "detection_limit", "latest_selftest"]
