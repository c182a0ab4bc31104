"""benchmarks.record_combination: its cache, the peer check (cleanlab's score put in label_consistency's place)
and the led combination the gate uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.metrics import auroc
from benchmarks.record_combination import _save, compare, leading_rows, peer_in_place
from dataward.gates.base import DetectorResult
from dataward.gates.gate import combine_records


def _write(cache: Path, name: str, kept: dict) -> None:
    (cache / "tuning").mkdir(parents=True, exist_ok=True)
    full = {"verdict": "block", "score": np.zeros(len(kept["poison"]))} | kept
    _save(cache / "tuning" / f"{name}@0", full)


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
        "label_consistency": {"p": lc, "evidence": "poisoning", "contribution_p": 1e-9, "block": False},
        "outliers": {"p": noise, "evidence": "difference", "contribution_p": 0.5, "block": False},
    }
    _write(tmp_path, "flips", {"poison": poison, "cleanlab": peer, "dets": dets})
    _write(tmp_path, "no_peer", {"poison": poison, "dets": dets})
    (row,) = peer_in_place(tmp_path, "tuning")
    assert row["case"] == "flips@0"
    assert row["cleanlab"] == (1.0, 1.0)
    assert row["fisher"][0] < 1.0 and row["label_consistency alone"][0] == 0.75
    # Only label_consistency's p-values are replaced: the rest of the score is the same noise.
    in_place = row["fisher, cleanlab in its place"]
    assert in_place[0] == 1.0 and in_place[1] > row["fisher"][1]


def test_the_led_combination_ranks_as_the_gate_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 300
    poison = np.zeros(n, dtype=bool)
    poison[:10] = True
    lc = np.where(poison, rng.uniform(0.001, 0.02, n), rng.uniform(size=n))
    others = rng.uniform(0.05, 1.0, size=(2, n))
    dets = {
        "label_consistency": {"p": lc, "evidence": "poisoning", "contribution_p": 1e-12, "block": False},
        "backdoor": {"p": others[0], "evidence": "poisoning", "contribution_p": 0.6, "block": False},
        "outliers": {"p": others[1], "evidence": "difference", "contribution_p": 1.0, "block": False},
    }
    assert leading_rows(dets).tolist() == [True, False, False]
    _write(tmp_path, "flips", {"poison": poison, "dets": dets})
    (row,) = compare(tmp_path, "tuning")
    results = {
        name: DetectorResult(name, "1", d["p"], np.zeros(n, dtype=bool), p_value=d["contribution_p"])
        for name, d in dets.items()
    }
    gate_score = combine_records(results, n, {"label_consistency"})[0]
    # The benchmark's "led" candidate is the gate's score up to a monotone map: the same ranking.
    assert row["led"][1] == auroc(gate_score, poison)
    assert row["led"][1] >= row["fisher"][1]
