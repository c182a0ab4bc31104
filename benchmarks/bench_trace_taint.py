"""Cold traces from a contribution, a key and a source, with ``taint_of`` as it was and as it is, in one process.

``taint_of(..., complete=False)`` (the forward part of those traces) read the lineage of every
transformation before keeping the steps that can carry a suspect record; it now reads only those
steps' lineage, and the suspects' id lists only when those steps name any record. The earlier body is
kept here (``before``) and swapped in for alternate rounds on the same ward: CPU milliseconds, median
of the cold traces of each kind (parsed lists and lineage forgotten before every call).

Usage (a ward kept by ``bench_trace_index`` or ``bench_provenance --ward``)::

    nice -n 10 python -m benchmarks.bench_trace_taint DIR/sqlite-100000
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from dataward.provenance.taint import derived_from
from dataward.service import derived, idsets, tracing
from dataward.service.idsets import id_keys, id_set
from dataward.service.ward import Ward


def before(store: Any, conn: Any, suspects: Any, *, complete: bool = True) -> derived.Taint:
    """``taint_of(..., complete=False)`` as it was before it read only the reachable steps' lineage."""
    suspects = list(suspects)
    steps = derived.transformation_steps(store, conn)
    reachable = derived.steps_reading(conn, {c.id for c in suspects})
    steps = [s for s in steps if s.contribution_id in reachable]
    linked = sorted({r for step in steps for link in step.links for r in (link["record_id"], link["parent_id"])})
    keys = id_keys(linked)
    found = np.zeros(len(linked), dtype=bool)
    for c in suspects:
        found |= id_set(store, c.added_object).hits(keys)
    seeds = {r for r, hit in zip(linked, found.tolist(), strict=True) if hit}
    made = derived_from(seeds, steps) if steps and seeds else {}
    suspect = seeds | set(made)
    return derived.Taint(
        seeds=seeds,
        derived=made,
        step_contributions={s.contribution_id for s in steps},
        copied_by={s.contribution_id for s in steps if any(link["record_id"] in suspect for link in s.links)},
    )


def main() -> None:
    folder = Path(sys.argv[1])
    handles = json.loads((folder / "built.json").read_text())["handles"]
    ward = Ward.open(folder / "ward")
    rng = random.Random(1)
    refs = {
        "contribution": rng.sample(handles["contribution"], min(15, len(handles["contribution"]))),
        "key": handles["key"],
        "source": ["source:" + s for s in handles["source"]],
    }
    now = tracing.taint_of
    out: dict[str, dict[str, float]] = {}
    for label, taint in (("before", before), ("after", now), ("before again", before), ("after again", now)):
        tracing.taint_of = taint  # type: ignore[assignment]
        for kind, picks in refs.items():
            cpu = []
            for ref in picks:
                idsets.clear()
                derived.clear()
                start = time.process_time()
                ward.trace(ref)
                cpu.append(time.process_time() - start)
            out.setdefault(kind, {})[label] = round(statistics.median(cpu) * 1000, 2)
    tracing.taint_of = now
    print(json.dumps(out))


if __name__ == "__main__":
    main()
