"""The per-record false-positive rate on clean data, from tiny baselines to a million trusted records.

A record flagged at the policy's ``alpha`` must look poisoned on its own: on clean records exchangeable
with the trusted ones, the union of every detector's flags must stay at ``alpha`` (1x, not 3x), whatever
the baseline's size, and within each class (Mondrian calibration), not only on average. This benchmark
scans clean contributions against baselines of growing size and reports, per size:

- the share of clean records flagged at alpha, with its 95% Clopper-Pearson interval and its ratio to
  alpha;
- the highest per-class flag rate (a pooled calibration would over-flag the widest class);
- the share in the review queue (after the false-discovery check) and the verdicts.

Two families of data:

- ``gaussian``: three classes of four numeric features whose spreads differ (0.5, 1 and 2), so that a
  calibration pooled over classes would flag the widest class far above alpha;
- ``text``: recombined man-page lines (``benchmarks.data.recombined_lines``), baseline and contribution
  drawn alike from every shipped line;
- ``photos``: distinct 32x32 colour crops of scikit-learn's sample photos (``benchmarks.data.photo_crops``).

    python -m benchmarks.flag_rate [--family gaussian|text|photos|all] [--sizes 50,300,...] [--reps 3]
        [--contribution 2000] [--alpha 0.01] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta

from benchmarks import data
from dataward.gates import scan

GAUSSIAN_SIZES = (50, 300, 3_000, 30_000, 300_000, 1_000_000)
TEXT_SIZES = (50, 400, 4_000, 40_000)
PHOTO_SIZES = (50, 400, 4_000)
SPREADS = (0.5, 1.0, 2.0)
CENTRES = np.array([[0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 1.0, 0.0], [0.0, 3.0, 0.0, 1.0]])
GAUSSIAN_SCHEMA = {"label": "label", "inputs": [{"name": f"f{i}", "kind": "numeric"} for i in range(4)]}


def gaussian(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` records of three classes whose spreads differ, drawn alike for baseline and contribution."""
    y = rng.integers(0, len(SPREADS), n)
    x = CENTRES[y] + rng.normal(size=(n, 4)) * np.asarray(SPREADS)[y, None]
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)])
    frame["label"] = np.array(["narrow", "middle", "wide"])[y]
    return frame


def text_split(n_base: int, n_new: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """A baseline and a clean contribution of distinct recombined man-page lines."""
    ds = data.load_man_sections()
    lines = data.recombined_lines(ds.frame, n_base + n_new, seed)
    order = np.random.default_rng(seed).permutation(len(lines))
    lines = lines.iloc[order].reset_index(drop=True)
    schema = {"label": data.LABEL, "inputs": [{"name": data.TEXT, "kind": "text"}]}
    return lines.iloc[:n_base].reset_index(drop=True), lines.iloc[n_base:].reset_index(drop=True), schema


def photo_split(n_base: int, n_new: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """A baseline and a clean contribution of distinct photo crops."""
    crops = data.photo_crops(n_base + n_new, seed)[[data.IMAGE, data.LABEL]]
    schema = {"label": data.LABEL, "inputs": [{"name": data.IMAGE, "kind": "image"}]}
    return crops.iloc[:n_base].reset_index(drop=True), crops.iloc[n_base:].reset_index(drop=True), schema


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval of a rate of ``k`` in ``n``."""
    tail = (1 - level) / 2
    low = float(beta.ppf(tail, k, n - k + 1)) if k > 0 else 0.0
    high = float(beta.ppf(1 - tail, k + 1, n - k)) if k < n else 1.0
    return low, high


def run_size(family: str, n_base: int, reps: int, n_new: int, alpha: float) -> dict[str, Any]:
    """Scan ``reps`` clean contributions against baselines of ``n_base`` records; pool the flags."""
    flagged = queued = total = 0
    per_class: dict[str, list[int]] = {}
    per_detector: dict[str, int] = {}
    verdicts: list[str] = []
    seconds = 0.0
    for rep in range(reps):
        seed = 1_000 * rep + 7
        if family == "gaussian":
            rng = np.random.default_rng(seed)
            baseline, contribution, schema = gaussian(n_base, rng), gaussian(n_new, rng), GAUSSIAN_SCHEMA
        else:
            split = text_split if family == "text" else photo_split
            baseline, contribution, schema = split(n_base, n_new, seed)
        started = time.perf_counter()
        report = scan(baseline, contribution, schema, policy={"alpha": alpha, "seed": seed})
        seconds += time.perf_counter() - started
        at_alpha = report.records.flagged_at_alpha
        flagged += int(at_alpha.sum())
        queued += int(report.records.flagged.sum())
        total += len(contribution)
        verdicts.append(report.verdict)
        labels = contribution[schema["label"]].astype(str).to_numpy()
        for label in np.unique(labels):
            counts = per_class.setdefault(str(label), [0, 0])
            counts[0] += int(at_alpha[labels == label].sum())
            counts[1] += int((labels == label).sum())
        for name, flags in report.records.detector_flags.items():
            per_detector[name] = per_detector.get(name, 0) + int(np.asarray(flags).sum())
    low, high = clopper_pearson(flagged, total)
    class_rates = {label: k / n for label, (k, n) in per_class.items()}
    return {
        "family": family,
        "baseline": n_base,
        "contribution": n_new,
        "reps": reps,
        "alpha": alpha,
        "records": total,
        "flagged_at_alpha": flagged,
        "rate": flagged / total,
        "rate_ci95": [low, high],
        "rate_over_alpha": flagged / total / alpha,
        "highest_class_rate": max(class_rates.values()),
        "class_rates": class_rates,
        "queued": queued,
        "queue_rate": queued / total,
        "flags_by_detector": per_detector,
        "verdicts": verdicts,
        "seconds_per_scan": seconds / reps,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=("gaussian", "text", "photos", "all"), default="all")
    parser.add_argument("--sizes", default="", help="comma-separated baseline sizes (default: per family)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--contribution", type=int, default=2_000)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    families = ("gaussian", "text", "photos") if args.family == "all" else (args.family,)
    rows = []
    for family in families:
        default = {"gaussian": GAUSSIAN_SIZES, "text": TEXT_SIZES, "photos": PHOTO_SIZES}[family]
        sizes = [int(s) for s in args.sizes.split(",") if s] or list(default)
        for n_base in sizes:
            row = run_size(family, n_base, args.reps, args.contribution, args.alpha)
            rows.append(row)
            low, high = row["rate_ci95"]
            print(
                f"{family:8s} baseline {n_base:>9,d}: {row['flagged_at_alpha']:>4d} of {row['records']:,d} flagged "
                f"= {row['rate']:.4f} ({row['rate_over_alpha']:.2f}x alpha; 95% CI {low:.4f}-{high:.4f}), "
                f"highest class {row['highest_class_rate']:.4f}, queued {row['queued']}, "
                f"verdicts {','.join(row['verdicts'])}, {row['seconds_per_scan']:.1f} s a scan",
                flush=True,
            )
            if args.out:
                args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
