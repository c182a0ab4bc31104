"""benchmarks.record_combination's peer check: cleanlab's score put in label_consistency's place."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from benchmarks.record_combination import peer_in_place


def _write(cache: Path, name: str, kept: dict) -> None:
    (cache / "tuning").mkdir(parents=True, exist_ok=True)
    (cache / "tuning" / f"{name}.pkl").write_bytes(pickle.dumps(kept))


def test_peer_in_place_swaps_only_label_consistency(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 400
    poison = np.zeros(n, dtype=bool)
    poison[:8] = True
    noise = rng.uniform(0.2, 1.0, size=n)
    # cleanlab separates the flips; label_consistency ranks two of them among clean records; outliers is noise.
    peer = np.where(poison, 2.0, 0.0) + rng.uniform(size=n)
    lc = np.where(poison, 1e-4, rng.uniform(size=n))
    lc[:2] = 0.5
    dets = {
        "label_consistency": {"p": lc, "evidence": "poisoning"},
        "outliers": {"p": noise, "evidence": "difference"},
    }
    _write(tmp_path, "flips", {"poison": poison, "cleanlab": peer, "dets": dets})
    _write(tmp_path, "no_peer", {"poison": poison, "dets": dets})
    (row,) = peer_in_place(tmp_path, "tuning")
    assert row["case"] == "flips"
    assert row["cleanlab"] == (1.0, 1.0)
    assert row["fisher"][0] < 1.0 and row["label_consistency alone"][0] == 0.75
    # Only label_consistency's p-values are replaced: the rest of the score is the same noise.
    in_place = row["fisher, cleanlab in its place"]
    assert in_place[0] == 1.0 and in_place[1] > row["fisher"][1]
