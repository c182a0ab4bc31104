"""``python -m benchmarks.clean_validation_draws``: when does ``clean_validation`` block on small sets.

Scratch draws of scikit-learn's breast cancer and wine sets, ten seeds each, scanned with the default
policy at the seed: clean batches that are merely new (a screening programme that sees only small
tumours, low-alcohol wines, ...) and batches with 30% of one class relabelled, against clean
validation sets of 18 to 171 records. Per scan: the verdict, the detectors that asked for a block, and
``clean_validation``'s overall and per-class comparison (records turned right -> wrong and back, both
p-values). ``--benign`` instead runs the benign situations (``benchmarks.benign_seeds``' sweep) and
records ``clean_validation``'s block, p-value and findings beside the verdict.

    python -m benchmarks.clean_validation_draws --out benchmarks/results/cv-block-draws-after.json
    python -m benchmarks.clean_validation_draws --benign --seeds 0,...,11 --situations a,b --out FILE
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split

from dataward.gates import scan

SMALL, LARGE = (0.4, 0.1, 0.3, 0.2), (0.3, 0.3, 0.3, 0.1)
"""Baseline / validation / pool / rest fractions: a 10% validation set (batch = pool and rest) and a 30%
one (batch = pool)."""

Make = Callable[[pd.DataFrame, pd.DataFrame, np.random.Generator], pd.DataFrame]


def _table(loader: Callable[[], Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    raw = loader()
    cols = [c.replace(" ", "_").replace("/", "_").replace("(", "").replace(")", "") for c in raw.feature_names]
    frame = pd.DataFrame(np.asarray(raw.data, float), columns=cols)
    frame["label"] = [str(raw.target_names[t]) for t in raw.target]
    return frame, {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in cols]}


def _split(frame: pd.DataFrame, seed: int, fr: tuple[float, float, float, float]) -> list[pd.DataFrame]:
    rest, test = train_test_split(frame, test_size=fr[3], random_state=1000 + seed, stratify=frame["label"])
    rest, pool = train_test_split(rest, test_size=fr[2] / (1 - fr[3]), random_state=2000 + seed, stratify=rest["label"])
    base, val = train_test_split(
        rest, test_size=fr[1] / (fr[0] + fr[1]), random_state=3000 + seed, stratify=rest["label"]
    )
    return [p.reset_index(drop=True) for p in (base, val, pool, test)]


def _selected(col: str, q: float, below: bool) -> Make:
    def make(base: pd.DataFrame, cand: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        t = base[col].quantile(q)
        return cand[cand[col] < t] if below else cand[cand[col] > t]

    return make


def _flipped(src: str, dst: str, frac: float) -> Make:
    def make(base: pd.DataFrame, cand: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        cand = cand.reset_index(drop=True).copy()
        idx = np.flatnonzero(cand["label"] == src)
        cand.loc[rng.choice(idx, round(frac * idx.size), replace=False), "label"] = dst
        return cand

    return make


CASES: dict[str, tuple[str, tuple[float, float, float, float], Make]] = {
    "clean:bc_small_q40": ("bc", SMALL, _selected("mean_radius", 0.4, True)),
    "clean:bc_small_q30": ("bc", SMALL, _selected("mean_radius", 0.3, True)),
    "clean:bc_small_q50": ("bc", SMALL, _selected("mean_radius", 0.5, True)),
    "clean:bc_large_q60": ("bc", SMALL, _selected("mean_radius", 0.6, False)),
    "clean:bc_texture_q40": ("bc", SMALL, _selected("mean_texture", 0.4, True)),
    "clean:bc_bigval_small_q40": ("bc", LARGE, _selected("mean_radius", 0.4, True)),
    "clean:wine_alcohol_q40": ("wine", SMALL, _selected("alcohol", 0.4, True)),
    "clean:wine_alcohol_hi_q60": ("wine", SMALL, _selected("alcohol", 0.6, False)),
    "clean:wine_bigval_alcohol_q40": ("wine", LARGE, _selected("alcohol", 0.4, True)),
    "clean:wine_bigval_color_q40": ("wine", LARGE, _selected("color_intensity", 0.4, True)),
    "poison:bc_mal30": ("bc", SMALL, _flipped("malignant", "benign", 0.3)),
    "poison:bc_ben30": ("bc", SMALL, _flipped("benign", "malignant", 0.3)),
    "poison:bc_bigval_mal30": ("bc", LARGE, _flipped("malignant", "benign", 0.3)),
    "poison:wine_c0_30": ("wine", SMALL, _flipped("class_0", "class_1", 0.3)),
    "poison:wine_bigval_c0_30": ("wine", LARGE, _flipped("class_0", "class_1", 0.3)),
    "poison:wine_bigval_c1_30": ("wine", LARGE, _flipped("class_1", "class_2", 0.3)),
}

KEEP = ("drop", "worse", "better", "records", "p_accuracy", "p_value")


def draws(seeds: list[int]) -> dict[str, dict[str, Any]]:
    data = {"bc": _table(datasets.load_breast_cancer), "wine": _table(datasets.load_wine)}
    out: dict[str, dict[str, Any]] = {}
    for name, (which, fractions, make) in CASES.items():
        frame, schema = data[which]
        for seed in seeds:
            base, val, pool, rest = _split(frame, seed, fractions)
            cand = pd.concat([pool, rest]) if fractions == SMALL else pool
            batch = make(base, cand, np.random.default_rng(seed)).reset_index(drop=True)
            report = scan(base, batch, schema, validation=val, policy={"seed": seed})
            cv = report.results["clean_validation"]
            row = {
                "verdict": report.verdict,
                "blockers": [d for d, r in report.results.items() if r.block],
                "overall": {k: cv.summary["overall"].get(k) for k in KEEP},
                "per_class": {c: {k: v.get(k) for k in KEEP} for c, v in cv.summary["per_class"].items()},
            }
            out[f"{name}@{seed}"] = row
            print(name, seed, row["verdict"], row["blockers"], flush=True)
    return out


def benign(seeds: list[int], names: list[str]) -> dict[str, dict[str, Any]]:
    from benchmarks import shifts
    from benchmarks.benign_seeds import sweep

    def row(case: Any, report: Any) -> dict[str, Any]:
        r = report.results.get("clean_validation")
        out = {
            "group": case.group,
            "verdict": report.verdict,
            "blockers": [d for d, res in report.results.items() if res.block],
            "queued": int(np.asarray(report.records.flagged, dtype=bool).sum()),
        }
        if r is not None:
            out["cv"] = {
                "block": r.block,
                "p_value": r.p_value,
                "findings": [f.reason for f in r.contribution_findings],
                "in_reasons": any(x.startswith("clean_validation") for x in report.reasons),
            }
        return out

    return sweep(seeds, names, lambda n, s: shifts.build(n, s, "full"), row)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.clean_validation_draws", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9", help="comma-separated seeds")
    parser.add_argument("--benign", action="store_true", help="the benign situations instead of the draws")
    parser.add_argument("--situations", help="with --benign: comma-separated situations (default: all)")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.benign:
        from benchmarks import shifts

        names = args.situations.split(",") if args.situations else [n for g in shifts.GROUPS.values() for n in g]
        figures = benign(seeds, names)
    else:
        figures = draws(seeds)
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
