"""``outliers``' float64 re-check of a distance block's band: one pair at a time against each distinct pair
of vectors once (``_band_within``), in one process, on the block records of unseen categories make.

Every record of a category the trusted data never showed is the same one-hot vector: in a batch of
distinct unseen values every distance to the 20,000 sampled peers is 0, the radius too, and the whole
``PEER_CHUNK x PEER_SAMPLE`` block is in the re-check band. Both ways give the same booleans (checked).

    python -m benchmarks.bench_outlier_band --blocks 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=3, help="distance blocks timed each way")
    parser.add_argument("--dim", type=int, default=4, help="width of the one-hot vectors")
    args = parser.parse_args(argv)

    from dataward.gates.detectors.outliers import PEER_CHUNK, PEER_SAMPLE, _band_within, _pairs_within, _UniqueRows

    vector = np.zeros(args.dim, dtype=np.float32)
    vector[-1] = 1.0
    q, ref = np.tile(vector, (PEER_CHUNK, 1)), np.tile(vector, (PEER_SAMPLE, 1))
    rows, cols = np.divmod(np.arange(PEER_CHUNK * PEER_SAMPLE, dtype=np.int64), PEER_SAMPLE)
    seconds = {}
    answers = {}
    for name, fn in (
        ("one pair at a time", lambda: _pairs_within(q, ref, rows, cols, 0.0)),
        ("distinct pairs once", lambda: _band_within(q, ref, rows, cols, 0.0, _UniqueRows(ref))),
    ):
        started = time.perf_counter()
        for _ in range(args.blocks):
            answers[name] = fn()
        seconds[name] = (time.perf_counter() - started) / args.blocks
    same = len({a.tobytes() for a in answers.values()}) == 1
    old, new = seconds.values()
    print(
        f"band of {rows.shape[0]:,} pairs per block ({PEER_CHUNK} x {PEER_SAMPLE:,}, d={args.dim}), "
        f"same answers: {same}"
    )
    for name, s in seconds.items():
        print(f"  {name:20s} {s * 1000:9.1f} ms per block")
    print(f"  ratio {old / new:.0f}x")


if __name__ == "__main__":
    main()
