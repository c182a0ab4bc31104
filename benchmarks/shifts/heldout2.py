"""Benign situations of the second held-out set: NEVER TUNED ON (written 2026-12-02).

These situations are for measuring the gate, not for adjusting it: no threshold, option or detector
of the gate may be chosen by looking at its result on them. Every one was written before any gate was
run on it, and none may be changed after its result is seen (a builder that crashes or does not make
what it says may be fixed, and the fix is reported). When a result here leads to a change of the gate,
move the situation to the tuning set (``benchmarks.shifts.tuning``) and write a new held-out one.

History: ``unit_change_iris`` (one column in millimetres) was blocked here when first measured: the
sensor model had one gain for every feature, and a pair of values the baseline never held was read
against the label's prior. ``backdoor`` now keeps a gain per column of a table and ``triggers`` backs a
pair off to its parts, so the situation moved to the tuning set (its builder stays here). Its
replacement, ``mean_imputed_wine`` (a lab whose export fills the assays it did not run with the batch's
column mean), was written and committed before any gate ran on it.

They differ from the tuning and first held-out sets in kind or in the change itself: OCR-damaged and
``whatis``-formatted text, paraphrased copies of trusted lines, JPEG recompression, sensor noise,
resampling and skew of images, one feature in other units, rounded measurements, a sample from one
part of a feature's range, missing assays filled with the column mean, a very small batch and a batch
twice the size of its baseline.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from benchmarks import data
from benchmarks.data import LABEL, TEXT, Dataset
from benchmarks.shifts.base import (
    Situation,
    check_size,
    new_sensor,
    parts,
    situation,
    sized_pool,
    take,
)

GROUP = "heldout2"

# --- text ---------------------------------------------------------------------------------------

OCR_RATE = 0.04
"""Share of the characters that have an OCR look-alike which an OCR pass gets wrong."""
OCR_CONFUSIONS = {"l": "1", "I": "l", "O": "0", "o": "0", "e": "c", "m": "rn", "S": "5", "B": "8"}
"""Look-alike characters an OCR engine mixes up on printed manuals (``m`` read as ``rn`` and so on)."""
SECTIONS = {"commands": 1, "syscalls": 2, "library": 3, "formats": 5, "overview": 7, "admin": 8}
"""The manual section number of every label, as ``whatis`` prints it."""
WHATIS_NAME_WIDTH = 20
PARAPHRASE_SHARE = 0.35
"""Share of the paraphrase batch made of reworded trusted lines."""
PARAPHRASES = {
    "display": "show",
    "show": "display",
    "print": "output",
    "get": "obtain",
    "set": "change",
    "create": "make",
    "remove": "delete",
    "delete": "remove",
    "information": "info",
    "a": "the",
    "files": "file(s)",
}


def ocr_noise(text: str, rng: np.random.Generator) -> str:
    """``text`` as an OCR pass of a printed page reads it: each character that has a look-alike is
    misread with probability ``OCR_RATE``."""
    return "".join(OCR_CONFUSIONS[c] if c in OCR_CONFUSIONS and rng.random() < OCR_RATE else c for c in text)


def whatis_line(text: str, label: str) -> str:
    """A man-page NAME line as ``whatis`` prints it: the name padded to 20 columns, the section number
    in brackets, then `` - `` and the summary."""
    name, _, desc = text.partition(" - ")
    return f"{f'{name} ({SECTIONS[label]})':<{WHATIS_NAME_WIDTH}} - {desc}"


def paraphrase(text: str) -> str:
    """``text`` reworded as a second writer would say it: common words swapped for a synonym, the
    summary capitalised and ended with a full stop (or, when that changes nothing, its full stop
    dropped: always different from ``text``)."""
    name, sep, desc = text.partition(" - ")
    words = [PARAPHRASES.get(w, w) for w in desc.split(" ")]
    desc = " ".join(words)
    desc = desc[:1].upper() + desc[1:]
    desc = desc if desc.endswith(".") else desc + "."
    out = f"{name}{sep}{desc}"
    return out if out != text else out.removesuffix(".")


def ocr_scanned_text(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_man_sections()
    split, _, contribution = sized_pool(ds, seed, size)
    noise = np.random.default_rng(30_000 + seed)
    contribution[TEXT] = [ocr_noise(t, noise) for t in contribution[TEXT]]
    return situation(
        "ocr_scanned_text",
        "new_sensor",
        GROUP,
        ds,
        split,
        contribution,
        f"NAME lines typed in from printed manuals by OCR: {OCR_RATE:.0%} of look-alike characters misread "
        "(l/1, O/0, e/c, m/rn...)",
        ocr_rate=OCR_RATE,
    )


def whatis_format_text(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_man_sections()
    split, _, contribution = sized_pool(ds, seed, size)
    contribution[TEXT] = [whatis_line(t, lbl) for t, lbl in zip(contribution[TEXT], contribution[LABEL], strict=True)]
    return situation(
        "whatis_format_text",
        "register",
        GROUP,
        ds,
        split,
        contribution,
        "the same lines as `whatis` prints them: 'name (section)' padded to 20 columns, then ' - summary'",
    )


def paraphrased_copies_text(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_man_sections()
    split, rng, fresh = sized_pool(ds, seed, size)
    n_copies = round(len(fresh) * PARAPHRASE_SHARE / (1 - PARAPHRASE_SHARE))
    copies = split.baseline.iloc[np.sort(rng.choice(len(split.baseline), size=n_copies, replace=False))].copy()
    copies[TEXT] = [paraphrase(t) for t in copies[TEXT]]
    contribution = pd.concat([fresh, copies], ignore_index=True)
    order = rng.permutation(len(contribution))
    return situation(
        "paraphrased_copies_text",
        "duplicates",
        GROUP,
        ds,
        split,
        contribution.iloc[order],
        f"a wiki that rewords trusted lines: {PARAPHRASE_SHARE:.0%} of the batch are baseline lines with "
        "synonyms swapped in, capitalised and ended with a full stop, with their labels",
        paraphrase_share=PARAPHRASE_SHARE,
        paraphrase_rows=np.flatnonzero(order >= len(fresh)).tolist(),
    )


# --- images -------------------------------------------------------------------------------------

JPEG_QUALITY = 60
NOISE_SIGMA = 0.03
"""Standard deviation of the per-pixel sensor noise, on the 0..1 scale (about 8 of 255 levels)."""
LOW_RESOLUTION = 16
"""The camera's native side: crops are taken at 16x16 and resampled to the schema's 32x32."""
SKEW_DEGREES = 10.0
"""Each digit is rotated by an angle drawn uniformly in +-10 degrees (a page fed in askew)."""


def jpeg_roundtrip(pixels: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """``pixels`` (0..1) after a JPEG encoding at ``quality`` and back."""
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        return np.asarray(img.convert("RGB" if pixels.ndim == 3 else "L"), dtype=np.float32) / 255.0


def resampled(pixels: np.ndarray, side: int = LOW_RESOLUTION) -> np.ndarray:
    """``pixels`` (0..1, colour) shrunk to ``side`` and enlarged back, both bilinear."""
    img = Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))
    h, w = pixels.shape[:2]
    small = img.resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def sensor_noise(seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Independent Gaussian noise of ``NOISE_SIGMA`` on every pixel, from one seeded stream."""
    rng = np.random.default_rng(40_000 + seed)
    return lambda p: p + rng.normal(0.0, NOISE_SIGMA, size=p.shape)


def skew(seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """A rotation by a seeded random angle in +-``SKEW_DEGREES`` about the centre (bilinear, blank
    background), one angle per image."""
    rng = np.random.default_rng(41_000 + seed)

    def rotate(pixels: np.ndarray) -> np.ndarray:
        angle = float(rng.uniform(-SKEW_DEGREES, SKEW_DEGREES))
        return ndimage.rotate(pixels, angle, reshape=False, order=1, mode="constant", cval=0.0)

    return rotate


def jpeg_recompressed_photos(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "jpeg_recompressed_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        jpeg_roundtrip,
        f"photo crops that went through a JPEG export at quality {JPEG_QUALITY} before being stored as PNG",
        quality=JPEG_QUALITY,
    )


def noisy_sensor_photos(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "noisy_sensor_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        sensor_noise(seed),
        f"photo crops from a noisier sensor (high ISO): Gaussian noise of sd {NOISE_SIGMA} on every pixel",
        sigma=NOISE_SIGMA,
    )


def low_resolution_photos(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "low_resolution_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        resampled,
        f"photo crops from a lower-resolution camera: taken at {LOW_RESOLUTION}x{LOW_RESOLUTION} and "
        f"resampled to {data.PHOTO_SIDE}x{data.PHOTO_SIDE}",
        native_side=LOW_RESOLUTION,
    )


def skewed_scan_digits(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "skewed_scan_digits",
        GROUP,
        data.load_digits(),
        seed,
        size,
        skew(seed),
        f"digits from forms fed in askew: each image rotated by a random angle within +-{SKEW_DEGREES:.0f} degrees",
        max_degrees=SKEW_DEGREES,
    )


# --- tabular ------------------------------------------------------------------------------------

UNIT_COLUMN = "petal_length_cm"
UNIT_FACTOR = 10.0
"""A field station that records petal length in millimetres, in the column the baseline fills in cm."""
ROUND_DIGITS = 2
"""Significant digits every breast-cancer measurement is exported with."""
COVARIATE_COLUMN = "alcohol"
"""Wines from a warmer region: only those above the baseline's median alcohol."""
IMPUTED_SHARE = 0.05
"""Share of the wine assays (cells) a lab did not run; its export fills each with the column's mean."""
IMPUTED_DECIMALS = 2
"""The export writes a filled-in mean with two decimals, as the lab's other results."""
SMALL_BATCH = 12
DOUBLE_BATCH_BASELINE = {"full": 440, "small": 200}


def significant(values: np.ndarray, digits: int = ROUND_DIGITS) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (zeros stay zero)."""
    values = np.asarray(values, dtype=np.float64)
    magnitude = np.floor(np.log10(np.abs(np.where(values == 0, 1.0, values))))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.round(values * scale) / scale


def unit_change_iris(seed: int = 0, size: str = "full", group: str = GROUP) -> Situation:
    """Moved to the tuning set (``group="tuning"`` there): the gate was changed after it blocked this."""
    ds = data.load_iris()
    split = parts(ds, seed, size)
    contribution = split.pool.copy()
    contribution[UNIT_COLUMN] = contribution[UNIT_COLUMN] * UNIT_FACTOR
    return situation(
        "unit_change_iris",
        "unit_change",
        group,
        ds,
        split,
        contribution,
        f"a field station that writes {UNIT_COLUMN} in millimetres (x{UNIT_FACTOR:.0f}); every other column in cm",
        column=UNIT_COLUMN,
        factor=UNIT_FACTOR,
    )


def rounded_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_breast_cancer()
    split = parts(ds, seed, size)
    contribution = split.pool.copy()
    columns = [c.name for c in ds.schema.inputs]
    contribution[columns] = significant(contribution[columns].to_numpy())
    return situation(
        "rounded_breast_cancer",
        "rounding",
        GROUP,
        ds,
        split,
        contribution,
        f"a hospital whose export keeps {ROUND_DIGITS} significant digits of every one of the 30 measurements",
        significant_digits=ROUND_DIGITS,
    )


def covariate_shift_wine(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_wine()
    split = parts(ds, seed, size)
    cut = float(split.baseline[COVARIATE_COLUMN].median())
    contribution = split.pool[split.pool[COVARIATE_COLUMN] > cut]
    return situation(
        "covariate_shift_wine",
        "covariate_shift",
        GROUP,
        ds,
        split,
        contribution,
        f"wines from a warmer region: only those with {COVARIATE_COLUMN} above the baseline median ({cut:.2f}), "
        "a range the baseline also covers",
        column=COVARIATE_COLUMN,
        above=cut,
    )


def mean_imputed(
    frame: pd.DataFrame, columns: list[str], share: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """``frame`` with a random ``share`` of its ``columns`` cells (each cell missing independently, as
    assays skipped for want of sample or time) replaced by the mean of that column's values that were
    measured in ``frame``, written with ``IMPUTED_DECIMALS`` decimals: what an exporter that fills gaps
    with the column mean sends. Also returns the (rows, columns) mask of the filled cells."""
    values = frame[columns].to_numpy(dtype=np.float64)
    missing = rng.random(values.shape) < share
    measured = np.where(missing, np.nan, values)
    means = np.round(np.nanmean(measured, axis=0), IMPUTED_DECIMALS)
    out = frame.copy()
    out[columns] = np.where(missing, means, values)
    return out, missing


def mean_imputed_wine(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_wine()
    split, _, pool = sized_pool(ds, seed, size)
    columns = [c.name for c in ds.schema.inputs]
    contribution, missing = mean_imputed(pool, columns, IMPUTED_SHARE, np.random.default_rng(60_000 + seed))
    return situation(
        "mean_imputed_wine",
        "imputation",
        GROUP,
        ds,
        split,
        contribution,
        f"a lab that did not run every assay: {IMPUTED_SHARE:.0%} of the 13 measurements missing at random, "
        "each filled by its export with the mean of that column over the batch",
        share=IMPUTED_SHARE,
        imputed_cells=int(missing.sum()),
        imputed_rows=np.flatnonzero(missing.any(axis=1)).tolist(),
    )


def small_batch_digits(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_digits()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    contribution = split.pool.iloc[np.sort(rng.choice(len(split.pool), size=SMALL_BATCH, replace=False))]
    return situation(
        "small_batch_digits",
        "small_batch",
        GROUP,
        ds,
        split,
        contribution,
        f"a single form's worth: {SMALL_BATCH} digits drawn at random",
        records=SMALL_BATCH,
    )


def double_batch_digits(seed: int = 0, size: str = "full") -> Situation:
    check_size(size)
    ds: Dataset = data.load_digits()
    split = data.split(ds, seed)
    rng = np.random.default_rng(seed)
    baseline = take(split.baseline, DOUBLE_BATCH_BASELINE[size], rng)
    fresh = pd.concat([split.pool, split.test], ignore_index=True)
    contribution = take(fresh, 2 * len(baseline), rng)
    trimmed = data.Split(baseline, split.validation, split.pool.iloc[:0], split.test.iloc[:0])
    return situation(
        "double_batch_digits",
        "large_batch",
        GROUP,
        ds,
        trimmed,
        contribution,
        f"a batch about twice the size of its trusted baseline ({len(contribution)} digits against {len(baseline)})",
        baseline_size=len(baseline),
        contribution_size=len(contribution),
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "ocr_scanned_text": ocr_scanned_text,
    "whatis_format_text": whatis_format_text,
    "paraphrased_copies_text": paraphrased_copies_text,
    "jpeg_recompressed_photos": jpeg_recompressed_photos,
    "noisy_sensor_photos": noisy_sensor_photos,
    "low_resolution_photos": low_resolution_photos,
    "skewed_scan_digits": skewed_scan_digits,
    "rounded_breast_cancer": rounded_breast_cancer,
    "covariate_shift_wine": covariate_shift_wine,
    "mean_imputed_wine": mean_imputed_wine,
    "small_batch_digits": small_batch_digits,
    "double_batch_digits": double_batch_digits,
}
__all__ = ["SITUATIONS", "mean_imputed", "ocr_noise", "paraphrase", "significant", "whatis_line"]
