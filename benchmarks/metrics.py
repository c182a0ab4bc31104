"""The figures the benchmark reports: per record, per contribution, downstream and cost."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from benchmarks.attacks.base import AttackCase
from benchmarks.data import LABEL
from benchmarks.features import train_and_predict

T = TypeVar("T")


def auroc(scores: np.ndarray, poison: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` against the ground truth; NaN without both classes."""
    poison = np.asarray(poison, dtype=bool)
    if poison.all() or not poison.any():
        return float("nan")
    return float(roc_auc_score(poison, scores))


def recall_at_fpr(scores: np.ndarray, poison: np.ndarray, fpr: float) -> float:
    """The largest share of poison a threshold on ``scores`` catches while flagging at most ``fpr`` of
    the clean records (ties are flagged together, so a tie straddling the limit is not split)."""
    poison = np.asarray(poison, dtype=bool)
    if poison.all() or not poison.any():
        return float("nan")
    false_rates, true_rates, _ = roc_curve(poison, scores)
    allowed = false_rates <= fpr + 1e-12
    return float(true_rates[allowed].max()) if allowed.any() else 0.0


def record_metrics(scores: np.ndarray, flags: np.ndarray, poison: np.ndarray) -> dict[str, float]:
    """AUROC, recall at 1% and 5% FPR, and precision/recall/FPR at the method's own threshold."""
    poison = np.asarray(poison, dtype=bool)
    flags = np.asarray(flags, dtype=bool)
    caught = int((flags & poison).sum())
    clean = int((~poison).sum())
    return {
        "auroc": auroc(scores, poison),
        "recall_at_1pct_fpr": recall_at_fpr(scores, poison, 0.01),
        "recall_at_5pct_fpr": recall_at_fpr(scores, poison, 0.05),
        "precision": caught / int(flags.sum()) if flags.any() else float("nan"),
        "recall": caught / int(poison.sum()) if poison.any() else float("nan"),
        "fpr": int((flags & ~poison).sum()) / clean if clean else float("nan"),
        "flagged": int(flags.sum()),
    }


def attack_success_rate(predictions: np.ndarray | None, target: str | None) -> float:
    """Share of the attack test inputs predicted as the attacker's target (NaN without a target)."""
    if predictions is None or target is None or len(predictions) == 0:
        return float("nan")
    return float(np.mean(predictions == target))


def accuracy(predictions: np.ndarray | None, truth: pd.Series) -> float:
    if predictions is None:
        return float("nan")
    return float(np.mean(predictions == truth.astype(str).to_numpy()))


def downstream(case: AttackCase, keep: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Clean test accuracy and attack success of the downstream model trained on the baseline plus
    the contribution records in ``keep``."""
    keep = np.asarray(keep, dtype=bool)
    train = pd.concat([case.baseline, case.contribution[keep]], ignore_index=True)
    test_pred, attack_pred = train_and_predict(train, [case.test, case.attack_test], case.modality, case.schema, seed)
    return {
        "clean_accuracy": accuracy(test_pred, case.test[LABEL]),
        "attack_success": attack_success_rate(attack_pred, case.target),
        "kept_poison": int((keep & case.poison).sum()),
        "kept_clean": int((keep & ~case.poison).sum()),
    }


@dataclass
class Cost:
    seconds: float
    peak_mb: float


def measured(fn: Callable[[], T]) -> tuple[T, Cost]:
    """Run ``fn`` and return its result with wall time and peak traced memory.

    Peak memory is what ``tracemalloc`` sees: Python and NumPy allocations (NumPy reports its buffers
    to it), not memory a native library such as PyTorch allocates on its own.
    """
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return result, Cost(seconds, peak / 1e6)


def mean_ignoring_nan(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return float(np.mean(finite)) if finite else float("nan")


def summarise(rows: list[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over ``rows``, ignoring rows where it is NaN or missing."""
    return mean_ignoring_nan([float(r.get(key, float("nan"))) for r in rows])
