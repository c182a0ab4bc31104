"""Judging a removal: what taking records out of the trusted baseline does to it.

Deleting data poisons a model as surely as adding it: removing most of one class skews what the model
learns, removing one source erases a sub-population, and removing well-chosen records can lower
held-out accuracy. :func:`assess_removal` measures three things about the records a contribution
removes from the baseline it is applied to:

* the share removed per class and per source (or any other grouping of the baseline's records);
* the change of the class balance (total variation distance between class priors before and after);
* with a clean validation set and features, the validation accuracy of a standardized logistic
  regression probe trained on the baseline with and without the removed records, compared on the
  same validation records by an exact one-sided McNemar test (overall, and per class).

A contribution that removes records and adds others (a transformation rewriting records, a vendor
re-sending corrected ones) replaces them: the records it adds (``added_labels``, ``added_features``) are
counted back into the dataset's and each class's size, the balance after, and the probe trained
"without" (what is kept plus what is added). Judged alone, the removal of a rewrite of every record
read as the loss of the whole dataset, and blocked. Whether the added records are poisoned is the
additions gate's question, not this one's.

Verdict: ``block`` on measured harm (an accuracy drop beyond ``max_validation_drop`` that is
significant), ``review`` when a class, a source or the dataset loses most of its records, when the
balance moves markedly, or when a drop beyond tolerance is suggestive but not significant; ``pass``
otherwise (a few scattered records). Pure computation on arrays: no ward, no database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema

VERDICTS = ("pass", "review", "block")


@dataclass(frozen=True)
class RemovalOptions:
    """Where a removal's verdict lines are.

    ``share_review``: the share of a class, a source or the whole baseline whose removal asks for
    review, when at least ``min_records`` of its records go. ``balance_review``: the total variation
    distance between class priors before and after that asks for review. ``max_validation_drop``: the
    tolerated drop of clean-validation accuracy (overall and per class); a larger drop blocks when its
    one-sided McNemar p-value (Bonferroni over overall + classes) is below ``harm_p``, and asks for
    review when its uncorrected p-value is below ``suggest_p`` (a handful of validation records changing
    their prediction is noise, not a finding).
    ``probe_max_train``: baseline records the probe trains on (a uniform sample beyond it).
    """

    share_review: float = 0.5
    min_records: int = 5
    balance_review: float = 0.1
    max_validation_drop: float = 0.02
    harm_p: float = 0.01
    suggest_p: float = 0.05
    probe_max_train: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("share_review", "balance_review", "max_validation_drop", "harm_p", "suggest_p"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise InputError(f"removal option {name} must be a number in [0, 1], got {value!r}")
        for name in ("min_records", "probe_max_train"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"removal option {name} must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class GroupRemoval:
    """How many records of one class (or one source) the baseline holds and how many are removed."""

    key: str
    total: int
    removed: int

    @property
    def share(self) -> float:
        return self.removed / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "total": self.total, "removed": self.removed, "share": round(self.share, 6)}


@dataclass(frozen=True)
class AccuracyChange:
    """Clean-validation accuracy of the probe with and without the removed records.

    ``group`` is None for the whole validation set, else a class. ``p_value`` is the exact one-sided
    McNemar test that the probe without the removed records is worse on these same records.
    """

    group: str | None
    records: int
    accuracy_with: float
    accuracy_without: float
    p_value: float

    @property
    def drop(self) -> float:
        return self.accuracy_with - self.accuracy_without

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.group,
            "records": self.records,
            "accuracy_with": round(self.accuracy_with, 6),
            "accuracy_without": round(self.accuracy_without, 6),
            "drop": round(self.drop, 6),
            "p_value": float(self.p_value),
        }


@dataclass(frozen=True)
class RemovalReport:
    """What a removal does to the baseline, and the verdict with its reasons (``to_dict`` for JSON)."""

    verdict: str
    reasons: tuple[str, ...]
    summary: str
    total: int
    removed: int
    classes: tuple[GroupRemoval, ...]
    sources: tuple[GroupRemoval, ...]
    priors_before: Mapping[str, float]
    priors_after: Mapping[str, float]
    balance_change: float
    validation: tuple[AccuracyChange, ...] = ()
    validation_skipped: str | None = None
    options: RemovalOptions = field(default_factory=RemovalOptions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "summary": self.summary,
            "total": self.total,
            "removed": self.removed,
            "classes": [g.to_dict() for g in self.classes],
            "sources": [g.to_dict() for g in self.sources],
            "priors_before": {k: round(v, 6) for k, v in self.priors_before.items()},
            "priors_after": {k: round(v, 6) for k, v in self.priors_after.items()},
            "balance_change": round(self.balance_change, 6),
            "validation": [a.to_dict() for a in self.validation],
            "validation_skipped": self.validation_skipped,
        }


def assess_removal(
    labels: Sequence[Any] | np.ndarray,
    removed: Sequence[Any] | np.ndarray,
    *,
    sources: Sequence[Any] | np.ndarray | None = None,
    features: np.ndarray | None = None,
    validation_features: np.ndarray | None = None,
    validation_labels: Sequence[Any] | np.ndarray | None = None,
    options: RemovalOptions | None = None,
    added_labels: Sequence[Any] | np.ndarray | None = None,
    added_features: np.ndarray | None = None,
) -> RemovalReport:
    """Judge removing records from a baseline.

    ``labels``: the baseline's labels, one per record. ``removed``: a boolean mask over the baseline,
    or the indices of the removed records. ``sources``: optional group of each baseline record (its
    source, or any sub-population key). ``features`` (baseline, ``(n, d)``) with
    ``validation_features`` and ``validation_labels`` measure clean-validation accuracy with and
    without the removed records; leave them out to judge composition only. ``added_labels`` (and, for
    the accuracy check, ``added_features`` in the same space) are the records the same contribution adds:
    with them the removal is judged as a replacement (module docstring).
    Raises ``InputError`` on mismatched lengths or out-of-range indices.
    """
    options = options or RemovalOptions()
    y = np.asarray([str(v) for v in labels], dtype=object)
    n = y.shape[0]
    mask = _mask(removed, n)
    groups = None if sources is None else np.asarray([str(v) for v in sources], dtype=object)
    if groups is not None and groups.shape[0] != n:
        raise InputError(f"sources has {groups.shape[0]} values for {n} baseline records")
    added = np.asarray([str(v) for v in added_labels], dtype=object) if added_labels is not None else y[:0]
    if added_features is not None and np.asarray(added_features).shape[0] != added.shape[0]:
        raise InputError(f"added_features has {np.asarray(added_features).shape[0]} rows for {added.shape[0]} labels")

    classes = _shares(y, mask)
    by_source = _shares(groups, mask) if groups is not None else ()
    before, after = _priors(y), _priors(np.concatenate([y[~mask], added]))
    keys = sorted(set(before) | set(after))
    balance = 0.5 * sum(abs(before.get(k, 0.0) - after.get(k, 0.0)) for k in keys)
    added_by_class = dict(zip(*np.unique(added, return_counts=True), strict=True)) if added.size else {}

    review: list[str] = []
    block: list[str] = []
    k = int(mask.sum())
    # A replacement loses only what it does not add back: the dataset's and each class's net loss.
    net = k - int(added.shape[0])
    back = f", net of the {added.shape[0]} it adds" if added.size else ""
    if n and net / n >= options.share_review and net >= options.min_records:
        review.append(f"removal: removes {k} of the {n} records ({net / n:.0%} of the dataset{back})")
    for kind, items in (("class", classes), ("source", by_source)):
        for g in items:
            # Added records count back into their class; a source's records are its own (what this
            # contribution adds comes from its own source), so a source's loss is never offset.
            returned = int(added_by_class.get(g.key, 0)) if kind == "class" else 0
            lost = g.removed - returned
            if g.total and lost / g.total >= options.share_review and lost >= options.min_records:
                net_text = f", {returned} added back" if returned else ""
                review.append(
                    f"removal: removes {g.removed} of the {g.total} records of {kind} {g.key!r} "
                    f"({lost / g.total:.0%}{net_text})"
                )
    if balance >= options.balance_review:
        moved = sorted(keys, key=lambda c: -abs(before.get(c, 0.0) - after.get(c, 0.0)))[:3]
        detail = ", ".join(f"{c!r} {before.get(c, 0.0):.0%} -> {after.get(c, 0.0):.0%}" for c in moved)
        review.append(f"removal: changes the class balance by {balance:.2f} (total variation): {detail}")

    validation: tuple[AccuracyChange, ...] = ()
    skipped = None
    if features is None or validation_features is None or validation_labels is None:
        skipped = "no clean validation set (or no features) to measure the removal's effect on"
    elif k == 0:
        skipped = "nothing is removed"
    else:
        validation = _validation_impact(
            features, y, mask, validation_features, validation_labels, options, added_features, added
        )
        tests = len(validation)
        after_text = "once they are replaced" if added.size else "without the removed records"
        for change in validation:
            where = "overall" if change.group is None else f"on class {change.group!r}"
            if change.drop <= options.max_validation_drop:
                continue
            text = (
                f"clean-validation accuracy {where} drops from {change.accuracy_with:.3f} to "
                f"{change.accuracy_without:.3f} {after_text} (tolerance "
                f"{options.max_validation_drop}, McNemar p={change.p_value:.2g}, {change.records} records)"
            )
            if change.p_value * tests < options.harm_p:
                block.append(f"removal: {text}")
            elif change.p_value < options.suggest_p:
                review.append(f"removal: {text}; suggestive, but too few validation records to call it harm")

    verdict = "block" if block else "review" if review else "pass"
    return RemovalReport(
        verdict=verdict,
        reasons=tuple(block + review),
        summary=_summary(n, k, classes),
        total=n,
        removed=k,
        classes=classes,
        sources=by_source,
        priors_before=before,
        priors_after=after,
        balance_change=float(balance),
        validation=validation,
        validation_skipped=skipped,
        options=options,
    )


def removal_features(
    baseline: pa.Table,
    validation: pa.Table,
    schema: Schema,
    featurizers: Mapping[str, str] | None = None,
    *,
    seed: int = 0,
    added: pa.Table | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gate features of the baseline, the validation set and the records added beside the removal (None
    when ``added`` is), in one space fitted (without labels) on the baseline, for :func:`assess_removal`."""
    from dataward.gates.features import FeaturePipeline

    inputs = [c.name for c in schema.inputs]
    pipeline = FeaturePipeline(schema, featurizers, seed=seed).fit(baseline.select(inputs))
    added_x = pipeline.transform(added.select(inputs)) if added is not None and added.num_rows else None
    return pipeline.transform(baseline.select(inputs)), pipeline.transform(validation.select(inputs)), added_x


def worse(a: str, b: str) -> str:
    """The worse of two verdicts (``pass`` < ``review`` < ``block``)."""
    return max(a, b, key=VERDICTS.index)


def _mask(removed: Sequence[Any] | np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(removed)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise InputError(f"the removal mask has {arr.shape[0] if arr.ndim else 0} values for {n} records")
        return arr.copy()
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError("removed must be a boolean mask or integer indices of baseline records")
    index = arr.astype(np.int64).ravel()
    if index.size and (index.min() < 0 or index.max() >= n):
        raise InputError(f"a removed index is outside the baseline's {n} records")
    mask = np.zeros(n, dtype=bool)
    mask[index] = True
    return mask


def _shares(keys: np.ndarray, mask: np.ndarray) -> tuple[GroupRemoval, ...]:
    values, inverse = np.unique(keys, return_inverse=True)
    totals = np.bincount(inverse, minlength=len(values))
    gone = np.bincount(inverse[mask], minlength=len(values))
    return tuple(GroupRemoval(str(v), int(t), int(r)) for v, t, r in zip(values, totals, gone, strict=True))


def _priors(labels: np.ndarray) -> dict[str, float]:
    """Each class's share of ``labels`` (empty for no labels)."""
    if labels.size == 0:
        return {}
    values, counts = np.unique(labels, return_counts=True)
    return {str(v): float(c) / labels.size for v, c in zip(values, counts, strict=True)}


def _probe(x: np.ndarray, y: np.ndarray) -> Any:
    """A standardized logistic regression, or a constant predictor when fewer than two classes remain."""
    if x.shape[0] == 0:
        return None
    if np.unique(y).size < 2:
        return str(y[0])
    # Imported here, as binom below: a process that never judges a removal (a one-shot ``dataward
    # trace``) does not pay for importing scikit-learn and SciPy.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    if model is None:
        return np.full(x.shape[0], None, dtype=object)
    if isinstance(model, str):
        return np.full(x.shape[0], model, dtype=object)
    return np.asarray(model.predict(x), dtype=object)


def _validation_impact(
    features: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    val_x: np.ndarray,
    val_labels: Sequence[Any] | np.ndarray,
    options: RemovalOptions,
    added_x: np.ndarray | None = None,
    added_y: np.ndarray | None = None,
) -> tuple[AccuracyChange, ...]:
    """Paired accuracy of a probe trained on the baseline (a uniform sample) and one trained on what is
    kept of it plus, for a replacement, what the contribution adds (``added_x``, ``added_y``)."""
    x = np.asarray(features, dtype=np.float64)
    vx = np.asarray(val_x, dtype=np.float64)
    vy = np.asarray([str(v) for v in val_labels], dtype=object)
    if x.shape[0] != y.shape[0]:
        raise InputError(f"features have {x.shape[0]} rows for {y.shape[0]} baseline records")
    if vx.shape[0] != vy.shape[0] or vx.shape[0] == 0:
        raise InputError("the validation features and labels must be non-empty and of equal length")
    if vx.shape[1] != x.shape[1]:
        raise InputError(f"validation features have {vx.shape[1]} columns, the baseline's {x.shape[1]}")
    # One uniform sample for both probes, so that the only difference between them is the removal.
    sample = np.arange(y.shape[0])
    if sample.size > options.probe_max_train:
        rng = np.random.default_rng(options.seed)
        sample = np.sort(rng.choice(sample, options.probe_max_train, replace=False))
    keep = sample[~mask[sample]]
    x_after, y_after = x[keep], y[keep]
    if added_x is not None and added_y is not None and added_y.size:
        ax = np.asarray(added_x, dtype=np.float64)
        if ax.shape[1] != x.shape[1]:
            raise InputError(f"added features have {ax.shape[1]} columns, the baseline's {x.shape[1]}")
        x_after, y_after = np.vstack([x_after, ax]), np.concatenate([y_after, added_y])
    right_with = _predict(_probe(x[sample], y[sample]), vx) == vy
    right_without = _predict(_probe(x_after, y_after), vx) == vy
    changes = [_paired(None, right_with, right_without)]
    for cls in sorted(set(vy.tolist())):
        sel = vy == cls
        changes.append(_paired(str(cls), right_with[sel], right_without[sel]))
    return tuple(changes)


def _paired(group: str | None, right_with: np.ndarray, right_without: np.ndarray) -> AccuracyChange:
    from scipy.stats import binom

    harmed = int(np.sum(right_with & ~right_without))
    helped = int(np.sum(~right_with & right_without))
    # Exact one-sided McNemar: among the records whose outcome changed, more turned wrong than chance.
    p = float(binom.sf(harmed - 1, harmed + helped, 0.5)) if harmed + helped else 1.0
    return AccuracyChange(
        group,
        int(right_with.size),
        float(np.mean(right_with)) if right_with.size else 0.0,
        float(np.mean(right_without)) if right_without.size else 0.0,
        p,
    )


def _summary(n: int, k: int, classes: tuple[GroupRemoval, ...]) -> str:
    touched = [g for g in classes if g.removed]
    if k == 0:
        return f"removes none of the {n} records"
    spread = ", ".join(f"{g.key!r} {g.removed}/{g.total}" for g in sorted(touched, key=lambda g: -g.removed)[:5])
    return f"removes {k} of the {n} records ({k / n:.1%}) from {len(touched)} class(es): {spread}"
