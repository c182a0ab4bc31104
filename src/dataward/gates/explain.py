"""Plain sentences saying *what* moved between the trusted baseline and a batch.

Drift is a reason to review, never to block; a reviewer can only judge it when the report says which
classes, which columns, which words or which pixels moved, and by how much. Everything here reads the
raw tables (the gate features are projections a person cannot read) and is pure computation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from scipy import stats
from sklearn.feature_extraction.text import CountVectorizer

from dataward.domain.errors import InputError
from dataward.domain.schema import ColumnKind, Schema
from dataward.gates.features.image import gray_pixels, image_size
from dataward.gates.features.text import TEXT_MAX_CHARS, cut_text

TOP = 3
"""Items named per kind of change."""
SAMPLE = 2000
"""Records per side read for the explanation."""
MIN_KS = 0.1
"""Smallest Kolmogorov-Smirnov distance worth naming for a numeric column."""
MIN_WORD_SHARE = 0.05
"""A word is named only when at least this share of the batch's records carries it."""
IMAGE_SIDE = 32


def explain_shift(
    schema: Schema,
    reference: pa.Table | None,
    batch: pa.Table | None,
    reference_labels: np.ndarray,
    batch_labels: np.ndarray,
    classes: Sequence[str],
    *,
    seed: int = 0,
) -> list[str]:
    """Sentences naming the largest changes of the batch against the reference, largest first per kind."""
    rng = np.random.default_rng(seed)
    out = class_balance(reference_labels, batch_labels, classes)
    if reference is None or batch is None or reference.num_rows == 0 or batch.num_rows == 0:
        return out
    ref = _sample(reference, rng)
    new = _sample(batch, rng)
    for column in schema.inputs:
        if column.name not in ref.column_names or column.name not in new.column_names:
            continue
        a, b = ref.column(column.name).to_pylist(), new.column(column.name).to_pylist()
        if column.kind is ColumnKind.NUMERIC:
            out.extend(numeric_shift(column.name, a, b))
        elif column.kind is ColumnKind.TEXT:
            out.extend(word_shift(column.name, a, b))
        elif column.kind is ColumnKind.IMAGE:
            out.extend(image_shift(column.name, a, b))
        elif column.kind is ColumnKind.CATEGORICAL:
            out.extend(category_shift(column.name, a, b))
    return out


def class_balance(reference_labels: np.ndarray, batch_labels: np.ndarray, classes: Sequence[str]) -> list[str]:
    """Classes whose share of the batch differs from the baseline by 10 points or more."""
    k = len(classes)
    if reference_labels.size == 0 or batch_labels.size == 0 or k == 0:
        return []
    ref = np.bincount(reference_labels, minlength=k) / reference_labels.size
    new = np.bincount(batch_labels, minlength=k) / batch_labels.size
    moved = [c for c in np.argsort(-np.abs(new - ref)) if abs(new[c] - ref[c]) >= 0.10][:TOP]
    return [f"class '{classes[c]}' is {new[c]:.0%} of the batch and {ref[c]:.0%} of the baseline" for c in moved]


def numeric_shift(name: str, reference: list, batch: list) -> list[str]:
    """The column's median and spread when its distribution moved (KS distance at least ``MIN_KS``)."""
    a = np.asarray([v for v in reference if v is not None], dtype=np.float64)
    b = np.asarray([v for v in batch if v is not None], dtype=np.float64)
    if a.size < 5 or b.size < 5:
        return []
    ks = float(stats.ks_2samp(a, b, method="asymp").statistic)
    if ks < MIN_KS:
        return []
    med_a, med_b = float(np.median(a)), float(np.median(b))
    rel = f" ({(med_b - med_a) / abs(med_a):+.1%})" if med_a else ""
    spread = np.subtract(*np.percentile(a, [75, 25])) or float(np.std(a)) or 1.0
    return [
        f"column '{name}': median {med_b:.4g} against {med_a:.4g} in the baseline{rel}, "
        f"{(med_b - med_a) / spread:+.2f} interquartile ranges (KS {ks:.2f})"
    ]


def category_shift(name: str, reference: list, batch: list) -> list[str]:
    """Categories whose share moved by 10 points or more."""
    values = sorted({str(v) for v in reference + batch})
    ref = np.array([sum(str(v) == c for v in reference) for c in values]) / max(len(reference), 1)
    new = np.array([sum(str(v) == c for v in batch) for c in values]) / max(len(batch), 1)
    moved = [i for i in np.argsort(-np.abs(new - ref)) if abs(new[i] - ref[i]) >= 0.10][:TOP]
    return [f"column '{name}': '{values[i]}' in {new[i]:.0%} of the batch, {ref[i]:.0%} of the baseline" for i in moved]


def word_shift(name: str, reference: list, batch: list) -> list[str]:
    """Words carried by many more of the batch's records than of the baseline's."""
    # Cut as the featurizer cuts them: the batch's whole vocabulary is built before any is dropped.
    texts_a = [cut_text(str(t or ""), TEXT_MAX_CHARS) for t in reference]
    texts_b = [cut_text(str(t or ""), TEXT_MAX_CHARS) for t in batch]
    vec = CountVectorizer(token_pattern=r"(?u)\b\w\w+\b", lowercase=True, binary=True, min_df=1)
    try:
        vec.fit(texts_b)
    except ValueError:  # no words at all
        return []
    vocab = vec.get_feature_names_out()
    share_b = np.asarray(vec.transform(texts_b).mean(axis=0)).ravel()
    share_a = np.asarray(vec.transform(texts_a).mean(axis=0)).ravel()
    # Smoothed log-odds of a record carrying the word, batch against baseline.
    na, nb = len(texts_a), len(texts_b)
    lift = np.log((share_b * nb + 0.5) / (nb + 1)) - np.log((share_a * na + 0.5) / (na + 1))
    keep = (share_b >= MIN_WORD_SHARE) & (lift > np.log(3.0))
    order = [i for i in np.argsort(-lift) if keep[i]][: TOP * 2]
    if not order:
        return []
    words = ", ".join(f"'{vocab[i]}' ({share_b[i]:.0%} against {share_a[i]:.1%})" for i in order)
    return [f"column '{name}': words far more common in the batch than in the baseline: {words}"]


def image_shift(name: str, reference: list, batch: list) -> list[str]:
    """Brightness, contrast and position of the content, where they moved."""
    try:
        # From the header: a full-size decode could be gigabytes of floats.
        w, h = image_size(batch[0])
    except InputError:  # the featurizers already refuse undecodable images with the row named
        return []
    size = (min(w, IMAGE_SIDE), min(h, IMAGE_SIDE))
    a = np.stack([gray_pixels(v, size) for v in reference if v is not None])
    b = np.stack([gray_pixels(v, size) for v in batch if v is not None])
    out = []
    mean_a, mean_b = float(a.mean()), float(b.mean())
    ks = float(stats.ks_2samp(a.mean(axis=(1, 2)), b.mean(axis=(1, 2)), method="asymp").statistic)
    if ks >= MIN_KS and mean_a > 0:
        out.append(
            f"column '{name}': mean brightness {mean_b:.1f} against {mean_a:.1f} in the baseline "
            f"({(mean_b - mean_a) / mean_a:+.1%}, KS {ks:.2f})"
        )
    std_a, std_b = float(a.std(axis=(1, 2)).mean()), float(b.std(axis=(1, 2)).mean())
    if std_a > 0 and abs(std_b - std_a) / std_a >= 0.05:
        out.append(
            f"column '{name}': contrast (pixel spread) {std_b:.1f} against {std_a:.1f} ({std_b / std_a - 1:+.1%})"
        )
    shift = _centre_of_mass(b) - _centre_of_mass(a)
    if np.abs(shift).max() >= 0.5:
        out.append(
            f"column '{name}': content sits {shift[0]:+.1f} rows, {shift[1]:+.1f} columns from where it sits "
            f"in the baseline (centre of mass, {size[1]}x{size[0]})"
        )
    return out


def _centre_of_mass(images: np.ndarray) -> np.ndarray:
    weights = images.mean(axis=0)
    total = float(weights.sum()) or 1.0
    rows, cols = np.indices(weights.shape)
    return np.array([(rows * weights).sum() / total, (cols * weights).sum() / total])


def _sample(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    if table.num_rows <= SAMPLE:
        return table
    return table.take(pa.array(np.sort(rng.choice(table.num_rows, SAMPLE, replace=False))))
