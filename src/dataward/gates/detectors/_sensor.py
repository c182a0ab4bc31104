"""A batch-wide sensor change: a gain and an offset per feature, shared by every class, and undoing it.

A new camera, scanner or instrument changes every record of a batch alike: a darker, flatter camera
turns every pixel value ``v`` into ``g v + o``, a recalibrated instrument reads every quantity a few
percent higher. The gate's features are affine in the raw values for such a change (centred pixels
and a PCA; standardized columns), so in the gate's space the batch's records are ``g x + b`` of what
the same sensor as the baseline's would have given: one gain ``g`` shared by every feature, one offset
``b`` per feature. The change moves every class alike, and may bring one class closer to another
(a darker camera brings bright skies closer to dark gardens) without any label being wrong.

Tabular columns are each a quantity of its own: a field station that writes one length in millimetres,
or an instrument recalibrated on one channel, changes one column's gain and not the others'. With
``per_feature_gain`` a column has a gain of its own where every class agrees that it was scaled apart
from the others (``OWN_GAIN_FACTOR``), else the shared gain; spreads are mean absolute deviations
there, which columns of rounded values keep. Image and text features are projections that mix raw
values, where one gain for all is what a sensor does and per-feature gains would only add noise.

:func:`estimate_sensor_change` estimates ``g`` and ``b`` from each class's robust statistics (median
and median absolute deviation per feature, batch against trusted records of the same class) and takes
the median over classes, so that one class moved on its own (relabelled wholesale, or carrying a
group of relabelled records) cannot set it: the change must be shared by most classes, and undone it
must bring most classes' medians closer to their trusted medians than they are (a batch that only
spread out, or whose classes moved each their own way, has no shared change). It needs at least
``MIN_CLASSES`` classes with ``MIN_RECORDS`` records on both sides; with fewer, a class's own move
cannot be told from a sensor's, and nothing is estimated.

Undoing the change (:meth:`SensorChange.undo`) gives the batch as the baseline's sensor would have
seen it. ``backdoor`` reads a misread record of a class that moved once more on it: a record whose
content contradicts its label (another class's content relabelled, with or without a patch) still
reads as that other class, whatever the sensor; a record that only moved with its batch reads as
its own label again. The estimate is a majority's claim, each class one vote however few its
records, and a sender controls every class of a batch: classes moved on purpose (two of three, or three
throwaway classes of ten records) can set a "change" that, undone, would carry relabelled records of a
class left as it was over to their new label. ``backdoor`` therefore lets the change excuse a record only
when it explains both classes the record is read between (each class's batch records, undone, read
like its trusted records).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np

MIN_CLASSES = 3
"""Classes the estimate needs (each with ``MIN_RECORDS`` records on both sides): the median over classes
is then set by a majority of them, not by one class that moved on its own."""

MIN_RECORDS = 10
"""Records of a class each side needs before the class enters the estimate."""

SPREAD_FACTOR = 2.5
"""How far (a factor either way) a class's undone records may spread, feature by feature, from its
trusted records' spread before the change is said not to be the class's own (``spreads_like``)."""

SAMPLE_PER_CLASS = 5_000
"""Records of a class read on each side at most (a seeded sample beyond it): medians need no more."""


@dataclass(frozen=True)
class SensorChange:
    """The batch's records are ``gain * x + offset`` of the baseline sensor's ``x``."""

    gain: float
    """The gain shared by the features (the median of the per-feature gains)."""
    offset: np.ndarray
    classes: int
    """Classes the estimate was taken over."""
    feature_gain: np.ndarray | None = None
    """One gain per feature, when each feature keeps its own; None: every feature has ``gain``."""
    dead: np.ndarray | None = None
    """Columns that hold one value for every record of the batch, in every class, where the trusted records
    spread (a measurement a site does not take, exported as 0): undoing gives each record the same value
    (the median of the trusted classes' medians), so the column says nothing of any record's class. None:
    no such column (or features that are not columns)."""

    @property
    def gains(self) -> np.ndarray | float:
        """What undoing divides each feature by: the per-feature gains, or the shared gain."""
        return self.gain if self.feature_gain is None else self.feature_gain

    @property
    def rescaled(self) -> np.ndarray:
        """The features undoing divides by a gain beyond ``OWN_GAIN_FACTOR`` either way (a column in
        another unit), dead columns left out: undone, they take one value whatever the record."""
        rescaled = self._in_another_unit()
        return rescaled & ~self.dead if self.dead is not None else rescaled

    def _in_another_unit(self) -> np.ndarray:
        gains = np.broadcast_to(np.asarray(self.gains, dtype=np.float64), self.offset.shape)
        return (gains >= OWN_GAIN_FACTOR) | (gains <= 1.0 / OWN_GAIN_FACTOR)

    def undo(self, features: np.ndarray) -> np.ndarray:
        """``features`` as the baseline's sensor would have given them (same dtype if floating, else float32)."""
        dtype = features.dtype if np.issubdtype(features.dtype, np.floating) else np.float32
        return ((features - self.offset) / self.gains).astype(dtype, copy=False)

    def scaled_only(self) -> SensorChange | None:
        """The change on the features it scales only (gain and offset where a feature's gain lies
        beyond ``OWN_GAIN_FACTOR`` either way, nothing elsewhere), or None when it scales none.

        A class misread wholesale has no records left to vouch for the change, so only a column in
        another unit may explain it: an offset alone, shared by the other classes, is what a sender
        who moves every other class by ``b - a`` and sends 'b' content as 'a' sets, and undone it
        would carry that content onto the trusted 'a's. A gain near 1 is no unit either: a sender
        who widens every class's column gets one of its own (every class agrees it was scaled) while
        the classes' medians, moved by ``b - a``, give a slope near 1."""
        scaled = self._in_another_unit()
        # A column that lost its information is undone to one value for every record: like a new unit, it
        # moved each class by its own amount, and undone it favours no class.
        if self.dead is not None:
            scaled |= self.dead
        if not scaled.any():
            return None
        return SensorChange(
            gain=self.gain,
            offset=np.where(scaled, self.offset, 0.0),
            classes=self.classes,
            feature_gain=np.where(scaled, self.gains, 1.0),
            dead=self.dead,
        )

    def describe(self, names: list[str] | None = None) -> str:
        """One sentence: the gain (or the features whose own gain moved most) and the offsets' size."""
        shift = f"offset by {float(np.linalg.norm(self.offset)):.3g} in all"
        if self.feature_gain is None:
            return f"a change shared by {self.classes} classes: every feature scaled by {self.gain:.3g} and {shift}"
        own = np.flatnonzero(self.feature_gain != self.gain)
        moved = own[np.argsort(-np.abs(np.log(self.feature_gain[own] / self.gain)), kind="stable")][:3]
        named = ", ".join(
            f"{names[i] if names and i < len(names) else f'feature {i}'} x{self.feature_gain[i]:.3g}" for i in moved
        )
        more = f" and {own.size - moved.size} more" if own.size > moved.size else ""
        dead_columns = (
            ""
            if self.dead is None
            else ", ".join(names[i] if names and i < len(names) else f"feature {i}" for i in np.flatnonzero(self.dead))
        )
        dead = f"; one value for every record in {dead_columns}" if dead_columns else ""
        if not named:
            live = self.offset if self.dead is None else np.where(self.dead, 0.0, self.offset)
            if dead_columns and self.gain == 1.0 and not live.any():  # the dead columns alone (two classes)
                return f"a change shared by {self.classes} classes: one value for every record in {dead_columns}"
            every = f"every feature scaled by {self.gain:.3g}"
            return f"a change shared by {self.classes} classes: {every} and {shift}{dead}"
        return (
            f"a change shared by {self.classes} classes: {named}{more} scaled, every other feature by "
            f"{self.gain:.3g}, and {shift}{dead}"
        )


def sample_per_class(rows: np.ndarray, rng: np.random.Generator, *, cap: int = SAMPLE_PER_CLASS) -> np.ndarray:
    """``rows`` (one class's), or a seeded sample of ``cap`` of them in order when more."""
    if rows.size <= cap:
        return rows
    return np.sort(rng.choice(rows, cap, replace=False))


def rows_by_class(labels: np.ndarray) -> dict[int, np.ndarray]:
    """Each label's rows, from one sort (not one pass over the labels per class)."""
    if labels.size == 0:
        return {}
    order = np.argsort(labels, kind="stable")
    codes, starts = np.unique(labels[order], return_index=True)
    return {int(c): rows for c, rows in zip(codes, np.split(order, starts[1:]), strict=True)}


def _median_and_spread(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(features, dtype=np.float64)
    median = np.median(values, axis=0)
    return median, np.median(np.abs(values - median), axis=0)


SHARED_GAIN_FACTOR = 1.25
"""With a gain per column, a gain shared by every column is taken only when each class's median ratio
over its columns lies beyond this factor, on the same side of 1; else the shared gain is 1."""

OWN_GAIN_FACTOR = 1.5
"""A column keeps its own gain only when every class's spread ratio for it lies beyond this factor, on
the same side of 1."""


def _own_gains(
    ratios: np.ndarray, medians: list[tuple[np.ndarray, np.ndarray]], spreads: np.ndarray, shared: float
) -> np.ndarray:
    """Per feature, its own gain where every class agrees that the feature was scaled apart from the
    others (each spread ratio beyond ``OWN_GAIN_FACTOR`` of the ``shared`` gain, on the same side, at
    least two classes readable), else the shared gain.

    A column's spread in a few dozen rounded measurements scatters by a factor of two when nothing
    happened to it; undoing that scatter would stretch the column, while a column in other units moves
    every class alike. Where classes sit apart on the column (their trusted medians further apart than
    their spread), the gain is the median slope between pairs of classes' medians (Theil-Sen): class
    medians are far steadier than spreads. Else it is the median spread ratio."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature no class can read: all NaN
        median = np.nanmedian(ratios, axis=0)
        low = np.nanmax(ratios, axis=0) < shared / OWN_GAIN_FACTOR
        high = np.nanmin(ratios, axis=0) > shared * OWN_GAIN_FACTOR
    own = (np.sum(np.isfinite(ratios), axis=0) >= 2) & (low | high) & np.isfinite(median) & (median > 0.0)
    gains = np.where(own, median, shared)
    med_t = np.vstack([t for t, _ in medians])
    med_b = np.vstack([b for _, b in medians])
    for j in np.flatnonzero(own):
        slopes = [
            (med_b[c2, j] - med_b[c1, j]) / (med_t[c2, j] - med_t[c1, j])
            for c1, c2 in itertools.combinations(range(med_t.shape[0]), 2)
            if abs(med_t[c2, j] - med_t[c1, j]) > spreads[j]
        ]
        slope = float(np.median(slopes)) if slopes else 0.0
        if slope > 0.0 and np.isfinite(slope):
            gains[j] = slope
    return gains


def estimate_sensor_change(
    trusted: np.ndarray,
    trusted_labels: np.ndarray,
    batch: np.ndarray,
    batch_labels: np.ndarray,
    seed: int = 0,
    *,
    per_feature_gain: bool = False,
) -> SensorChange | None:
    """The sensor change from the trusted records to the batch's, or None with too few classes to tell.

    Per class: the ratio of the batch's to the trusted records' median absolute deviation per feature,
    and their medians. A feature's gain is the median of its ratios over classes; the shared gain is
    the median of those over features (features without spread on the trusted side are left out).
    With ``per_feature_gain`` spreads are mean absolute deviations, and a feature that every class
    agrees was scaled apart from the shared gain has its own (``_own_gains``). Each feature's offset
    is the median over classes of ``batch median - gain * trusted median``.
    """
    rng = np.random.default_rng([seed, 11])
    ratios, medians, column_ratios, deviations = [], [], [], []
    trusted_of, batch_of = rows_by_class(trusted_labels), rows_by_class(batch_labels)
    for code in sorted(trusted_of.keys() & batch_of.keys()):
        own_trusted, own_batch = trusted_of[code], batch_of[code]
        if own_trusted.size < MIN_RECORDS or own_batch.size < MIN_RECORDS:
            continue
        side_t, side_b = trusted[sample_per_class(own_trusted, rng)], batch[sample_per_class(own_batch, rng)]
        med_t, spread_t = _median_and_spread(side_t)
        med_b, spread_b = _median_and_spread(side_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios.append(np.where(spread_t > 0, spread_b / spread_t, np.nan))
            if per_feature_gain:  # the mean deviation: a column of rounded values keeps a spread
                dev_t, dev_b = _mean_deviation(side_t), _mean_deviation(side_b)
                column_ratios.append(np.where(dev_t > 0, dev_b / dev_t, np.nan))
                deviations.append(dev_t)
        medians.append((med_t, med_b))
    if len(medians) < MIN_CLASSES:
        return _dead_columns_only(medians, column_ratios, batch) if per_feature_gain else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature without spread in every class: all NaN
        per_feature = np.nanmedian(np.vstack(ratios), axis=0)
    finite = np.isfinite(per_feature)
    if not finite.any():
        return None
    gain = float(np.median(per_feature[finite]))
    if not np.isfinite(gain) or gain <= 0.0:
        return None
    feature_gain = None
    dead: np.ndarray | None = None
    if per_feature_gain:
        # Mean deviations keep a spread in columns of rounded values, where medians of absolute
        # deviations are noisy or zero: the shared gain is read from them here.
        column_ratios_ = np.vstack(column_ratios)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_column = np.nanmedian(column_ratios_, axis=0)
            per_class = np.nanmedian(column_ratios_, axis=1)
        per_column = per_column[np.isfinite(per_column) & (per_column > 0.0)]
        if per_column.size == 0:
            return None
        # A shared gain only where every class agrees that its columns were scaled (a few dozen
        # records of a few columns give a median ratio 10% off 1 when nothing was scaled at all).
        agreed = np.all(per_class > SHARED_GAIN_FACTOR) or np.all(per_class < 1.0 / SHARED_GAIN_FACTOR)
        gain = float(np.median(per_column)) if agreed else 1.0
        trusted_spread = np.mean(np.vstack(deviations), axis=0)
        feature_gain = _own_gains(column_ratios_, medians, trusted_spread, gain)
        # One value for every batch record of every class, where every class's trusted records spread.
        dead = np.all(column_ratios_ == 0.0, axis=0)
        feature_gain = np.where(dead, 1.0, feature_gain)
    gains = gain if feature_gain is None else feature_gain
    offset = np.median(np.vstack([med_b - gains * med_t for med_t, med_b in medians]), axis=0)
    if not np.isfinite(offset).all():
        return None
    # The change must be one the classes share: undone, it brings most classes' batch medians closer to
    # their trusted medians than leaving the batch as it is. A batch whose classes only spread out, or
    # moved each its own way, gives a "change" that would carry records somewhere arbitrary.
    closer = sum(
        np.linalg.norm((med_b - offset) / gains - med_t) < np.linalg.norm(med_b - med_t) for med_t, med_b in medians
    )
    if 2 * closer <= len(medians):
        return None
    return SensorChange(
        gain=gain,
        offset=offset,
        classes=len(medians),
        feature_gain=feature_gain,
        dead=dead if dead is not None and dead.any() else None,
    )


def _dead_columns_only(
    medians: list[tuple[np.ndarray, np.ndarray]], column_ratios: list[np.ndarray], batch: np.ndarray
) -> SensorChange | None:
    """With too few classes for a majority's gain and offset (two), the one change that needs no vote:
    columns that hold one value for every record of the batch, where the trusted records of each class
    read spread (a measurement a site does not take). Undone, as with more classes, to the median of the
    trusted classes' medians; every other feature is left as sent. None: no such column, or fewer than
    two classes to read it on."""
    if len(medians) < 2 or batch.shape[0] == 0:
        return None
    values = np.asarray(batch, dtype=np.float64)
    one_value = np.all(values == values[:1], axis=0)
    dead = one_value & np.all(np.vstack(column_ratios) == 0.0, axis=0)
    if not dead.any():
        return None
    trusted_median = np.median(np.vstack([med_t for med_t, _ in medians]), axis=0)
    offset = np.where(dead, values[0] - trusted_median, 0.0)
    return SensorChange(gain=1.0, offset=offset, classes=len(medians), feature_gain=np.ones(values.shape[1]), dead=dead)


def _mean_deviation(values: np.ndarray) -> np.ndarray:
    """Mean absolute deviation from the median, per feature: zero only when every value is the same (a
    median absolute deviation is zero for a column of rounded values that is mostly one value)."""
    values = np.asarray(values, dtype=np.float64)
    return np.mean(np.abs(values - np.median(values, axis=0)), axis=0)


def spreads_like(
    undone: np.ndarray, trusted: np.ndarray, factor: float = SPREAD_FACTOR, *, judged: np.ndarray | None = None
) -> bool:
    """Whether a class's batch records, with a change undone, spread like its trusted records in every
    judged feature that has spread on the trusted side (within ``factor`` either way).

    A change undone from records that never went through it shrinks or stretches them: another class's
    content relabelled wholesale and left as it was, while every other class went through a column's
    new unit, lands on the class's trusted centre when undone, but ten times too tight in that column.
    Records that did go through the change spread like their trusted records again. ``judged``: the
    columns the undoing rescales (``SensorChange.rescaled``; None: every column). Elsewhere undoing
    leaves a record's spread as it was, and a few dozen records of a skewed column spread up to three
    times their class's trusted records by chance alone (wine's malic acid, 18 records against 23)."""
    trusted_spread = _mean_deviation(trusted)
    judged = trusted_spread > 0 if judged is None else judged & (trusted_spread > 0)
    if not judged.any():
        return True
    ratio = _mean_deviation(undone)[judged] / trusted_spread[judged]
    return bool(np.all((ratio >= 1.0 / factor) & (ratio <= factor)))
