"""What ``llm_outliers`` and ``llm_drift`` cost beyond the sentence model, at 2,000 and 20,000 records:
``python -m benchmarks.llm_scaling [--sizes 2000,20000] [--out FILE]``.

MiniLM embedding (about 25 ms of CPU per distinct text on this machine) is replaced by seeded random unit
vectors, so what is timed is the detectors' own work: the trusted sample's neighbour searches, the topic
k-means, calibration, every contribution record's search against the trusted sample, and the batch-peer
search. Data and baselines as in ``benchmarks.llm`` (clean contribution, baseline as large as it). The
lexical gate (``benchmarks.llm.INSTRUCTION_DETECTORS``) runs in the same process on the same data, as
the yardstick: the figures to read are the ratios.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import llm_data as d
from benchmarks.llm import BASELINE_SIZE, INSTRUCTION_DETECTORS
from dataward.domain.schema import Schema
from dataward.gates.detectors import _llm_clusters, _llm_space, llm_drift, llm_outliers
from dataward.gates.scanning import scan

COLS = ["prompt", "response"]


def _random_unit(texts: list[str]) -> np.ndarray:
    """A fixed random unit vector per text (the same text, the same vector), without the sentence model."""
    out = np.empty((len(texts), 384), dtype=np.float32)
    for i, text in enumerate(texts):
        v = np.random.default_rng(zlib.crc32(text.encode())).normal(size=384).astype(np.float32)
        out[i] = v / np.linalg.norm(v)
    return out


def run(sizes: list[int], seed: int = 0) -> dict[str, Any]:
    for module in (_llm_clusters, _llm_space, llm_outliers, llm_drift):
        module.embed = _random_unit  # type: ignore[attr-defined]
    base_pool, new_pool = d.split_pools(seed)
    schema = Schema.for_kind("instruction")
    results = []
    for size in sizes:
        baseline = d.instruction_frame(max(BASELINE_SIZE, size), seed + 1, pool=base_pool)
        clean = d.instruction_frame(size, seed + 2, pool=new_pool)
        entry: dict[str, Any] = {"size": size}
        for label, detectors in (("lexical", INSTRUCTION_DETECTORS), ("embedding", ["llm_outliers", "llm_drift"])):
            started = time.perf_counter()
            report = scan(baseline[COLS], clean[COLS], schema, policy={"detectors": detectors})
            entry[f"{label}_seconds"] = round(time.perf_counter() - started, 2)
            entry[f"{label}_detector_seconds"] = report.extras.get("timings", {})
        entry["embedding_over_lexical"] = round(entry["embedding_seconds"] / entry["lexical_seconds"], 3)
        results.append(entry)
        print(json.dumps(entry), flush=True)
    return {"seed": seed, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--out", default="benchmarks/results/llm_scaling.json")
    args = parser.parse_args()
    figures = run([int(s) for s in args.sizes.split(",")])
    Path(args.out).write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
