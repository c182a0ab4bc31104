"""Ways to combine the detectors' per-record p-values into one ranking score, compared offline.

Each case is scanned once per seed (``dataward.gates.scanning``, default policy at that seed, with its
validation set); every detector's per-record p-values and contribution-level result, the ground truth and
``cleanlab.filter.find_label_issues``'s score on the same case are kept in a cache (JSON and ``.npz``, no
pickles), and every combination is then ranked on that cache (recall at 1% FPR and AUROC, means over the
seeds). Verdicts and flags do not depend on the combination (they come from each detector's own tests),
so only the ranking is compared.

    python -m benchmarks.record_combination scan --group tuning|heldout|heldout2|clean [--seeds 0,1,2] [--cache DIR]
    python -m benchmarks.record_combination compare --group tuning|heldout|heldout2 [--seeds 0,1,2] [--cache DIR]
    python -m benchmarks.record_combination peer --group tuning|heldout [--seeds 0] [--cache DIR]

``peer`` asks whether a better ``label_consistency`` could close the gap: the gate's Fisher score with
``label_consistency``'s p-values replaced by cleanlab's own score, turned into p-values exactly (against
the contribution's clean records, known from the ground truth), beside cleanlab and the gate.

Combinations (``p_d`` a record's p-value from detector ``d``, ``m`` detectors):

- ``fisher``: ``-2 sum_d log p_d`` (the gate's; chi-square with ``2m`` degrees of freedom under the null);
- ``tpm``: Zaykin's truncated product, ``prod_{p_d <= tau} p_d`` (exact null known; mild p-values add nothing);
- ``rtp``: the rank-truncated product of the ``k`` smallest p-values;
- ``acat``: the Cauchy combination, mean of ``tan((1/2 - p_d) pi)``;
- ``lancaster``: ``sum_d F^-1_{chi2(k_d)}(1 - p_d)``, ``k_d`` = 2 for detectors whose declared evidence
  is poisoning, 1 for difference (exact null: chi-square with ``sum k_d`` degrees of freedom);
- ``weighted``: Fisher's terms weighted 1 (poisoning) and 1/2 (difference);
- ``bum``: ``sum_d log f_d(p_d)``, ``f_d`` the beta-uniform mixture ``pi0 + (1 - pi0) a p^(a-1)`` fitted to
  detector ``d``'s p-values in the batch (Pounds and Morris, 2003): an estimated likelihood ratio;
- ``grenander``: the same with ``f_d`` the batch's decreasing density (Grenander estimator), log clipped at 0;
- ``led``: the gate's (``dataward.gates.gate.combine_records``): Fisher's terms weighted 1 for the detectors
  whose contribution-level test is a reason of the verdict (a block, or ``p m < review_p``) and
  ``OTHER_WEIGHT`` for the others when any detector leads; ``led_w`` the same with weight ``w``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, stats

from benchmarks.metrics import auroc, recall_at_fpr

FIXED = [
    ("label_flip", 25, 5000),
    ("label_flip", 50, 5000),
    ("label_flip", 100, 5000),
    ("text_trigger", 25, 5000),
    ("image_patch", 25, 5000),
]
CLEAN = ["man_sections", "digits", "photos", "breast_cancer", "wine"]
BENIGN = ["register_text", "new_camera_photos", "duplicates_text", "one_class_digits"]
FLOOR = 1e-300


def _cases(group: str, seed: int) -> Iterator[tuple[str, Any, np.ndarray]]:
    from benchmarks import shifts
    from benchmarks.attacks import ATTACKS, build, clean_contribution
    from benchmarks.attacks.fixed_counts import fixed_count
    from benchmarks.attacks.heldout import HELDOUT_ATTACKS, build_heldout
    from benchmarks.attacks.heldout2 import HELDOUT2_ATTACKS, build_heldout2

    if group == "tuning":
        for name in ATTACKS:
            case = build(name, seed)
            yield name, case, np.asarray(case.poison, dtype=bool)
        for kind, count, size in FIXED:
            case = fixed_count(kind, count, size, seed=seed)
            yield case.name, case, np.asarray(case.poison, dtype=bool)
    elif group in ("heldout", "heldout2"):
        names, builder = (HELDOUT_ATTACKS, build_heldout) if group == "heldout" else (HELDOUT2_ATTACKS, build_heldout2)
        for name in names:
            case = builder(name, seed)
            yield name, case, np.asarray(case.poison, dtype=bool)
    else:
        for dataset in CLEAN:
            case = clean_contribution(dataset, seed=seed)
            yield case.name, case, np.zeros(len(case.contribution), dtype=bool)
        for name in BENIGN:
            situation = shifts.build(name, seed, "full")
            yield name, situation, np.zeros(len(situation.contribution), dtype=bool)


def _save(path: Path, kept: dict[str, Any]) -> None:
    """One scan's cache: the arrays in ``path.npz``, the rest in ``path.json``."""
    dets = kept["dets"]
    arrays = {k: kept[k] for k in ("poison", "score", "flagged_at_alpha", "queue", "cleanlab") if k in kept}
    np.savez(path.with_suffix(".npz"), p=np.vstack([d["p"] for d in dets.values()]), **arrays)
    meta = {
        "verdict": kept["verdict"],
        "dets": {name: {k: v for k, v in d.items() if k != "p"} for name, d in dets.items()},
    }
    path.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")


def _read(path: Path) -> dict[str, Any]:
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
        kept: dict[str, Any] = {k: arrays[k] for k in arrays.files if k != "p"}
        p = arrays["p"]
    kept["verdict"] = meta["verdict"]
    kept["dets"] = {name: d | {"p": p[j]} for j, (name, d) in enumerate(meta["dets"].items())}
    return kept


def scan_group(group: str, cache: Path, seeds: list[int] | None = None) -> None:
    """Scan every case of ``group`` once per seed and keep what the comparison needs."""
    from benchmarks.benign_seeds import scan_at_seed
    from benchmarks.peers.cleanlab_peers import CleanlabLabelIssues
    from dataward.gates.base import registered

    (cache / group).mkdir(parents=True, exist_ok=True)
    for seed in seeds or [0]:
        for name, case, poison in _cases(group, seed):
            path = cache / group / f"{name}@{seed}"
            if path.with_suffix(".json").exists():
                continue
            started = time.perf_counter()
            report = scan_at_seed(case, seed)
            available = registered()
            kept: dict[str, Any] = {
                "poison": poison,
                "verdict": report.verdict,
                "score": np.asarray(report.records.score),
                "flagged_at_alpha": np.asarray(report.records.flagged_at_alpha, dtype=bool),
                "queue": np.asarray(report.records.flagged, dtype=bool),
                "dets": {
                    d: {
                        "p": np.asarray(r.p_values, dtype=float),
                        "evidence": str(available[d].evidence),
                        "contribution_p": float(r.p_value),
                        "block": bool(r.block),
                    }
                    for d, r in report.results.items()
                },
            }
            if poison.any():
                peer = CleanlabLabelIssues().score(case.baseline, case.contribution, case.schema, seed=seed)
                kept["cleanlab"] = np.asarray(peer.scores)
            _save(path, kept)
            print(f"{group} {name}@{seed}: {report.verdict}, {time.perf_counter() - started:.1f} s", flush=True)


# --- combinations: each maps the (m, n) p-values and the detectors' declared evidence to a ranking ---


def fisher(p: np.ndarray, evidence: list[str], leading: np.ndarray | None = None) -> np.ndarray:
    return -np.log(p).sum(axis=0)


def truncated_product(tau: float) -> Callable[[np.ndarray, list[str]], np.ndarray]:
    def combine(p: np.ndarray, evidence: list[str], leading: np.ndarray | None = None) -> np.ndarray:
        return np.where(p <= tau, -np.log(p), 0.0).sum(axis=0)

    return combine


def truncated_product_null(w: np.ndarray, m: int, tau: float) -> np.ndarray:
    """Zaykin et al. (2002): ``P(W <= w)`` for ``W`` the product of the p-values ``<= tau`` among ``m``
    independent uniform ones (``W = 1`` when there is none)."""
    log_w, log_tau = np.log(w), math.log(tau)
    total = np.zeros_like(w)
    for k in range(1, m + 1):
        below = w * sum((k * log_tau - log_w) ** s / math.factorial(s) for s in range(k))
        total += math.comb(m, k) * (1 - tau) ** (m - k) * np.where(log_w <= k * log_tau, below, tau**k)
    return np.where(w >= 1.0, 1.0, np.minimum(total, 1.0))


def rank_truncated(k: int) -> Callable[[np.ndarray, list[str]], np.ndarray]:
    def combine(p: np.ndarray, evidence: list[str], leading: np.ndarray | None = None) -> np.ndarray:
        return -np.log(np.sort(p, axis=0)[:k]).sum(axis=0)

    return combine


def cauchy(p: np.ndarray, evidence: list[str], leading: np.ndarray | None = None) -> np.ndarray:
    # Undefined at p = 1 (tan(-pi/2)); dataward's p-values are often exactly 1, so they are clipped.
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return np.tan((0.5 - q) * np.pi).mean(axis=0)


def lancaster(p: np.ndarray, evidence: list[str], leading: np.ndarray | None = None) -> np.ndarray:
    dof = [2.0 if e == "poisoning" else 1.0 for e in evidence]
    return sum(stats.chi2.isf(p[j], dof[j]) for j in range(p.shape[0]))


def weighted(p: np.ndarray, evidence: list[str], leading: np.ndarray | None = None) -> np.ndarray:
    w = np.array([1.0 if e == "poisoning" else 0.5 for e in evidence])
    return (w[:, None] * -np.log(p)).sum(axis=0)


def _bum_log_density(p: np.ndarray) -> np.ndarray:
    log_p, lowest = np.log(p), 1.0 / p.size

    def parameters(theta: np.ndarray) -> tuple[float, float]:
        pi1 = lowest + (1 - lowest) / (1 + math.exp(-float(np.clip(theta[0], -50, 50))))
        return pi1, 1 / (1 + math.exp(-float(np.clip(theta[1], -50, 50))))

    def log_density(theta: np.ndarray) -> np.ndarray:
        pi1, a = parameters(theta)
        with np.errstate(divide="ignore"):  # pi1 = 1: no null component
            return np.logaddexp(np.log1p(-pi1), math.log(pi1) + math.log(a) + (a - 1) * log_p)

    fits = [optimize.minimize(lambda t: -log_density(t).sum(), x0, method="Nelder-Mead") for x0 in ([-3, 0], [0, -2])]
    return log_density(min(fits, key=lambda r: r.fun).x)


def _grenander_log_density(p: np.ndarray) -> np.ndarray:
    n = p.size
    order = np.argsort(p, kind="stable")
    x, y = np.concatenate([[0.0], p[order]]), np.arange(n + 1) / n
    hull = [0]  # least concave majorant of the empirical distribution function
    for i in range(1, n + 1):
        while len(hull) >= 2 and (y[hull[-1]] - y[hull[-2]]) * (x[i] - x[hull[-2]]) <= (y[i] - y[hull[-2]]) * (
            x[hull[-1]] - x[hull[-2]]
        ):
            hull.pop()
        hull.append(i)
    knots = np.array(hull)
    slopes = np.diff(y[knots]) / np.maximum(np.diff(x[knots]), FLOOR)
    segment = np.clip(np.searchsorted(x[knots], x[1:], side="left") - 1, 0, slopes.size - 1)
    density = np.empty(n)
    density[order] = slopes[segment]
    return np.log(np.maximum(density, FLOOR))


def batch_likelihood(estimate: Callable[[np.ndarray], np.ndarray], clip: bool):
    def combine(p: np.ndarray, evidence: list[str], leading: np.ndarray | None = None) -> np.ndarray:
        total = np.zeros(p.shape[1])
        for row in p:
            if np.all(row >= 1.0):
                continue
            log_f = estimate(row)
            total += np.maximum(log_f, 0.0) if clip else log_f
        # Ties (records in one density segment) are broken by Fisher's sum.
        return total + 1e-6 * fisher(p, evidence)

    return combine


def led(weight: float) -> Callable[..., np.ndarray]:
    """Fisher's terms weighted 1 for the leading detectors, ``weight`` for the others when any leads."""

    def combine(p: np.ndarray, evidence: list[str], leading: np.ndarray | None = None) -> np.ndarray:
        lead = np.zeros(p.shape[0], dtype=bool) if leading is None else leading
        w = np.where(lead | ~lead.any(), 1.0, weight)
        return (w[:, None] * -np.log(p)).sum(axis=0)

    return combine


def leading_rows(dets: dict[str, Any]) -> np.ndarray:
    """Which detectors lead (``dataward.gates.gate.leading_detectors``'s rule at the default policy)."""
    from dataward.gates.gate import asks_for_review
    from dataward.gates.policy import GatePolicy

    m, policy = max(len(dets), 1), GatePolicy()
    return np.array(
        [asks_for_review(bool(d.get("block")), d.get("contribution_p", 1.0), m, policy) for d in dets.values()]
    )


COMBINATIONS: dict[str, Callable[..., np.ndarray]] = {
    "fisher": fisher,
    "tpm_0.05": truncated_product(0.05),
    "tpm_0.1": truncated_product(0.1),
    "rtp_3": rank_truncated(3),
    "acat": cauchy,
    "lancaster": lancaster,
    "weighted": weighted,
    "bum": batch_likelihood(_bum_log_density, clip=False),
    "grenander": batch_likelihood(_grenander_log_density, clip=True),
    "led": led(0.5),
    "led_0.4": led(0.4),
    "led_0.6": led(0.6),
    "led_0.75": led(0.75),
}


def _load(cache: Path, group: str, seeds: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """``{"name@seed": kept}`` of the cached scans of ``group`` at ``seeds`` (every seed cached: None)."""
    found = {}
    for path in sorted((cache / group).glob("*.json")):
        seed = path.stem.rpartition("@")[2]
        if seeds is None or int(seed) in seeds:
            found[path.stem] = _read(path)
    return found


def _p_values(kept: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    dets = kept["dets"]
    p = np.vstack([np.clip(d["p"], FLOOR, 1.0) for d in dets.values()])
    return p, [d["evidence"] for d in dets.values()]


def compare(cache: Path, group: str, seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """R@1% FPR and AUROC of cleanlab and every combination on each cached poisoned case, means over seeds."""
    per_case: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for key, kept in _load(cache, group, seeds).items():
        poison = kept["poison"]
        if not poison.any():
            continue
        p, evidence = _p_values(kept)
        leading = leading_rows(kept["dets"])
        row = per_case.setdefault(key.rpartition("@")[0], {})
        if "cleanlab" in kept:
            row.setdefault("cleanlab", []).append(
                (recall_at_fpr(kept["cleanlab"], poison, 0.01), auroc(kept["cleanlab"], poison))
            )
        for label, combine in COMBINATIONS.items():
            score = combine(p, evidence, leading)
            row.setdefault(label, []).append((recall_at_fpr(score, poison, 0.01), auroc(score, poison)))
    return [
        {"case": case, "seeds": len(cells["fisher"])}
        | {label: tuple(float(np.mean(v)) for v in zip(*values, strict=True)) for label, values in cells.items()}
        for case, cells in per_case.items()
    ]


def clean_figures(cache: Path) -> list[dict[str, Any]]:
    """Per clean case: verdict, flags at alpha, queue, and the share of records whose combined p-value
    (Fisher's chi-square law; Zaykin's law at tau = 0.05) is at most 0.01."""
    rows = []
    for name, kept in _load(cache, "clean", [0]).items():
        p, evidence = _p_values(kept)
        m = p.shape[0]
        fisher_p = stats.chi2.sf(2 * fisher(p, evidence), 2 * m)
        tpm_p = truncated_product_null(np.exp(-truncated_product(0.05)(p, evidence)), m, 0.05)
        rows.append(
            {
                "case": name,
                "records": int(p.shape[1]),
                "verdict": kept["verdict"],
                "flagged_at_alpha": int(kept["flagged_at_alpha"].sum()),
                "queue": int(kept["queue"].sum()),
                "fisher_p_le_0.01": float(np.mean(fisher_p <= 0.01)),
                "tpm_p_le_0.01": float(np.mean(tpm_p <= 0.01)),
            }
        )
    return rows


def peer_in_place(cache: Path, group: str, seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """Per poisoned case: cleanlab, the gate's Fisher score, the same with cleanlab's score in
    ``label_consistency``'s place (p-values exact on the contribution's clean records: no calibration on
    trusted records resolves finer), and ``label_consistency`` alone; each as (R@1% FPR, AUROC)."""
    rows = []
    for name, kept in _load(cache, group, seeds).items():
        poison = kept["poison"]
        if "cleanlab" not in kept or "label_consistency" not in kept["dets"]:
            continue
        peer = np.asarray(kept["cleanlab"], dtype=np.float64)
        clean = np.sort(peer[~poison])
        exact = (1.0 + clean.shape[0] - np.searchsorted(clean, peer, side="left")) / (clean.shape[0] + 1.0)
        names = list(kept["dets"])
        p, evidence = _p_values(kept)
        swapped = p.copy()
        swapped[names.index("label_consistency")] = exact
        alone = -np.log(p[names.index("label_consistency")])
        row: dict[str, Any] = {"case": name}
        for label, score in (
            ("cleanlab", peer),
            ("fisher", fisher(p, evidence)),
            ("fisher, cleanlab in its place", fisher(swapped, evidence)),
            ("label_consistency alone", alone),
        ):
            row[label] = (recall_at_fpr(score, poison, 0.01), auroc(score, poison))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["scan", "compare", "peer"])
    parser.add_argument("--group", choices=["tuning", "heldout", "heldout2", "clean"], default="tuning")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (scans; the means of compare)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/record-combination"))
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.action == "scan":
        scan_group(args.group, args.cache, seeds)
        return
    if args.group == "clean":
        for row in clean_figures(args.cache):
            print(row)
        return
    if args.action == "peer":
        rows = peer_in_place(args.cache, args.group, seeds)
        labels = [k for k in rows[0] if k != "case"] if rows else []
    else:
        rows = compare(args.cache, args.group, seeds)
        labels = ["cleanlab", *COMBINATIONS]
    print("| case | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for row in rows:
        cells = [f"{row[k][0]:.3f} / {row[k][1]:.4f}" if k in row else "" for k in labels]
        print(f"| {row['case']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
