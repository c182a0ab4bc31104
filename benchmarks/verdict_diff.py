"""``python -m benchmarks.verdict_diff``: what a change of the gate does to every earlier figure.

``run`` scans every case of the measured sets at one seed with the whole gate (as the review queue
scans them: ``benign_seeds.scan_at_seed``) and writes one JSON line per case: verdict, the detectors
that block, records queued and poisoned records queued, flags at alpha, recall at 1% FPR and AUROC.
``compare`` lists the cases whose line differs between two such files. Run ``run`` on two trees (the
code before a change and after it, ``PYTHONPATH`` pointing at each), then ``compare``::

    PYTHONPATH=/tmp/old/src:/tmp/old python -m benchmarks.verdict_diff run --out old.jsonl
    PYTHONPATH=src:. python -m benchmarks.verdict_diff run --out new.jsonl
    python -m benchmarks.verdict_diff compare old.jsonl new.jsonl

``run --kind image`` scans only the cases with an image column (``text`` likewise), when a change can move
no other.

The sets kept blind (``--skip``, by default the newest held-out set, ``heldout10``) are never scanned: a
change is judged on them once, on purpose, and not by this comparison.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import review_queue, shifts
from benchmarks.benign_seeds import scan_at_seed
from benchmarks.metrics import auroc, recall_at_fpr
from benchmarks.shifts.base import SET_GROUPS
from dataward.domain.schema import ColumnKind

DEFAULT_SKIP = "heldout10"
"""The set ``run`` never scans unless told otherwise: the newest held-out set, kept blind."""
ATTACK_GROUPS = tuple(group for group in SET_GROUPS if group != DEFAULT_SKIP)
"""The review queue's groups whose cases are scanned (each held-out group brings its benign situations)."""
COMPARED = ("verdict", "blockers", "queued", "poison_queued", "at_alpha", "r1", "auroc")
"""The fields of a line that ``compare`` reads (``seconds`` is left out)."""


def scanned(skip: set[str]) -> tuple[list[str], list[str]]:
    """The review queue's groups scanned, and the sets whose benign situations are scanned on their own
    (the tuning and first held-out sets': the later sets' come with their groups), none in ``skip``."""
    groups = [g for g in ATTACK_GROUPS if g not in skip] + ["fixed"]
    return groups, [s for s in ("tuning", "heldout") if s not in skip]


KINDS = {"all": None, "image": ColumnKind.IMAGE, "text": ColumnKind.TEXT}
"""``--kind``: every case, or only those whose schema has an input column of this kind."""


def cases(skip: set[str], kind: ColumnKind | None = None) -> Iterator[tuple[str, str, Any, np.ndarray]]:
    """(group, name, case, poison mask) of every measured case, none of a set in ``skip``; with ``kind``,
    only the cases with an input column of that kind."""
    groups, benign_sets = scanned(skip)

    def every() -> Iterator[tuple[str, str, Any, np.ndarray]]:
        for group in groups:
            yield from review_queue._cases(group)
        for set_name in benign_sets:
            for name in shifts.GROUPS[set_name]:
                situation = shifts.build(name, 0, "full")
                yield f"benign ({set_name})", name, situation, np.zeros(len(situation.contribution), dtype=bool)

    for item in every():
        if kind is None or any(col.kind == kind for col in item[2].schema.inputs):
            yield item


def line(group: str, name: str, case: Any, poison: np.ndarray, seed: int) -> dict[str, Any]:
    """One case scanned at ``seed``: what ``compare`` reads."""
    started = time.perf_counter()
    report = scan_at_seed(case, seed)
    records = report.records
    queued = np.asarray(records.flagged, dtype=bool)
    ranked = bool(poison.any())
    return {
        "group": group,
        "case": name,
        "verdict": report.verdict,
        "blockers": sorted(k for k, v in report.results.items() if v.block),
        "queued": int(queued.sum()),
        "poison_queued": int((queued & poison).sum()),
        "at_alpha": int(np.asarray(records.flagged_at_alpha, dtype=bool).sum()),
        "r1": round(recall_at_fpr(records.score, poison, 0.01), 4) if ranked else None,
        "auroc": round(auroc(records.score, poison), 4) if ranked else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def compare(before: Path, after: Path) -> list[str]:
    """One line per case whose figures differ (or that only one file holds)."""
    read = [{(r["group"], r["case"]): r for r in map(json.loads, p.read_text().splitlines())} for p in (before, after)]
    out = []
    for key in sorted(read[0].keys() | read[1].keys()):
        old, new = read[0].get(key), read[1].get(key)
        if old is None or new is None:
            out.append(f"{key[0]} / {key[1]}: only {'after' if old is None else 'before'}")
            continue
        moved = {f: (old[f], new[f]) for f in COMPARED if old[f] != new[f]}
        if moved:
            out.append(f"{key[0]} / {key[1]}: " + ", ".join(f"{f} {a} -> {b}" for f, (a, b) in moved.items()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="scan every measured case, one JSON line each")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--skip", default=DEFAULT_SKIP, help="comma-separated sets never scanned")
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--kind", choices=list(KINDS), default="all", help="only cases with an input column of this kind")
    diff = commands.add_parser("compare", help="the cases whose figures differ between two runs")
    diff.add_argument("before", type=Path)
    diff.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "compare":
        moved = compare(args.before, args.after)
        print("\n".join(moved) if moved else "no case moved")
        return 0
    skip = {s for s in args.skip.split(",") if s}
    with args.out.open("w") as out:
        for group, name, case, poison in cases(skip, KINDS[args.kind]):
            row = line(group, name, case, poison, args.seed)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
