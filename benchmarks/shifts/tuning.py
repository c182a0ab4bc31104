"""Benign situations of the tuning set: the gate may be looked at, and adjusted, on these.

Each builder takes ``(seed, size)`` and returns one ``Situation``: a clean, correctly labelled
contribution that differs from the trusted baseline in one realistic way. The held-out set
(``benchmarks.shifts.heldout``) covers the same kinds on other datasets or with other parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
from scipy import ndimage

from benchmarks import data
from benchmarks.data import LABEL, TEXT
from benchmarks.shifts import heldout, heldout2, heldout3, heldout4, heldout6
from benchmarks.shifts.base import (
    SMALL_CONTRIBUTION,
    Situation,
    check_size,
    favouring,
    new_sensor,
    parts,
    rewritten_register,
    shift_image,
    situation,
    sized,
    upscaled,
    with_trusted_copies,
    without,
)

GROUP = "tuning"

ONE_CLASS = "commands"
TOPIC = r"(?i)\bgit"
"""git's manual pages (git-status, gitformat-bundle...): 120 lines in three sections."""
RECALIBRATION = 1.04
MALIGNANT_SHARE = 0.85
DUPLICATE_SHARE = 0.4
LARGE_BATCH = {"full": (400, 2_000), "small": (200, 800)}
LIBRARY_OTHERS_SHARE = 0.2
"""(baseline, contribution) crops for the larger-than-usual batch."""

CATALOG_ABBREVIATIONS = {
    "directory": "dir",
    "directories": "dirs",
    "information": "info",
    "configuration": "config",
    "file system": "filesystem",
    "and": "&",
    "with": "w/",
    "without": "w/o",
    "number": "no.",
    "utility": "util",
    "program": "prog",
    "command": "cmd",
}


def catalog_register(line: str) -> str:
    """A man-page line as a vendor's software catalogue exports it: a ``DOC:`` record prefix, the
    name and its summary separated by a colon, the summary capitalised, common words abbreviated."""
    name, _, desc = line.partition(" - ")
    for word, short in CATALOG_ABBREVIATIONS.items():
        desc = re.sub(rf"(?i)\b{re.escape(word)}\b", short, desc)
    desc = desc[:1].upper() + desc[1:]
    return f"DOC: {name}: {desc}"


def one_class_text(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_man_sections()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    contribution = sized(split.pool[split.pool[LABEL] == ONE_CLASS], size, SMALL_CONTRIBUTION, rng)
    return situation(
        "one_class_text",
        "one_class",
        GROUP,
        ds,
        split,
        contribution,
        f"a vendor that documents only user commands: every line labelled {ONE_CLASS!r}",
        label=ONE_CLASS,
    )


def new_topic_text(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_man_sections()
    topic = ds.frame[TEXT].str.contains(TOPIC).to_numpy()
    split = parts(without(ds, ~topic, ds.name), seed, size)
    contribution = ds.frame[topic]
    return situation(
        "new_topic_text",
        "new_topic",
        GROUP,
        ds,
        split,
        contribution,
        "git's manual pages, a software family the baseline never saw, correctly labelled in their three sections",
        pattern=TOPIC,
    )


def new_scanner_digits(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "new_scanner_digits",
        GROUP,
        data.load_digits(),
        seed,
        size,
        lambda p: shift_image(p, 0, 1),
        "digits from a scanner that places every page one pixel further right",
        dy=0,
        dx=1,
    )


def moved_camera_digits(seed: int = 0, size: str = "full") -> Situation:
    """A new user's case: digits on a tight 16x16 crop from a camera mounted two pixels to the right,
    whose right edge is cut (the '0's then sit where trusted '6's have their ink)."""
    return new_sensor(
        "moved_camera_digits",
        GROUP,
        upscaled(data.load_digits(), 2),
        seed,
        size,
        lambda p: shift_image(p, 0, 2),
        "16x16 digits from a camera mounted two pixels further right, their right edge cut",
        dy=0,
        dx=2,
    )


def recalibration_wine(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_wine()
    split = parts(ds, seed, size)
    contribution = split.pool.copy()
    columns = [c.name for c in ds.schema.inputs]
    contribution[columns] = contribution[columns] * RECALIBRATION
    return situation(
        "recalibration_wine",
        "recalibration",
        GROUP,
        ds,
        split,
        contribution,
        f"a recalibrated lab: every one of the 13 measurements {RECALIBRATION - 1:.0%} higher",
        factor=RECALIBRATION,
    )


def class_prior_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_breast_cancer()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    malignant = split.pool[split.pool[LABEL] == "malignant"]
    benign = split.pool[split.pool[LABEL] == "benign"]
    n_benign = round(len(malignant) * (1 - MALIGNANT_SHARE) / MALIGNANT_SHARE)
    picked = benign.iloc[np.sort(rng.choice(len(benign), size=n_benign, replace=False))]
    contribution = pd.concat([malignant, picked]).sample(frac=1.0, random_state=seed)
    return situation(
        "class_prior_breast_cancer",
        "class_prior",
        GROUP,
        ds,
        split,
        contribution,
        f"a referral clinic: {MALIGNANT_SHARE:.0%} malignant where the baseline has about 37%",
        malignant_share=MALIGNANT_SHARE,
    )


def register_text(seed: int = 0, size: str = "full") -> Situation:
    return rewritten_register(
        "register_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        catalog_register,
        "the same kind of lines from a software catalogue: 'DOC: name: Summary', common words abbreviated",
    )


def duplicates_digits(seed: int = 0, size: str = "full") -> Situation:
    return with_trusted_copies(
        "duplicates_digits",
        GROUP,
        data.load_digits(),
        seed,
        size,
        DUPLICATE_SHARE,
        f"a re-export that repeats trusted records: {DUPLICATE_SHARE:.0%} of the batch are exact copies of "
        "baseline records, with their labels",
    )


def large_batch_photos(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_photos()
    check_size(size)
    n_base, n_contrib = LARGE_BATCH[size]
    n_val = 200
    crops = data.photo_crops(n_base + n_val + n_contrib, seed=100 + seed)[[data.IMAGE, LABEL]]
    split = data.Split(crops.iloc[:n_base], crops.iloc[n_base : n_base + n_val], crops.iloc[:0], crops.iloc[:0])
    contribution = crops.iloc[n_base + n_val :]
    return situation(
        "large_batch_photos",
        "large_batch",
        GROUP,
        ds,
        split,
        contribution,
        f"a batch {n_contrib / n_base:.0f} times the size of the trusted baseline ({n_contrib} photo crops "
        f"against {n_base})",
        baseline_size=n_base,
        contribution_size=n_contrib,
    )


CAMERA_GAIN, CAMERA_OFFSET = 0.88, 0.02
"""A darker, flatter camera: every channel value ``v`` becomes ``0.88 v + 0.02`` (held out until 2026-12-01,
when it was blocked and the gate was changed for it)."""


def new_camera_photos(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "new_camera_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        lambda p: CAMERA_GAIN * p + CAMERA_OFFSET,
        f"photo crops from a darker, lower-contrast camera (every value v becomes {CAMERA_GAIN} v + {CAMERA_OFFSET})",
        gain=CAMERA_GAIN,
        offset=CAMERA_OFFSET,
    )


VIGNETTE_FALLOFF = 0.35
"""A lens that darkens towards the corners: a pixel at relative radius ``r`` (1 at a corner) keeps
``1 - 0.35 r^2`` of its value (written for the tuning set on 2026-12-03; blocked at 7 of 12 seeds before
``backdoor`` told a class that moved as a whole from a relabelled group)."""
WHITE_BALANCE = (1.06, 1.0, 0.9)
"""A warmer white balance: red, green and blue scaled by these factors (written with the vignette)."""
DENOISE_SIDE = 3
"""A camera that denoises with a 3x3 median filter per channel (written with the vignette; still blocked
at 2 of 12 seeds, docs/benchmarks.md)."""


def vignette(pixels: np.ndarray, falloff: float = VIGNETTE_FALLOFF) -> np.ndarray:
    """``pixels`` (0..1, colour) darkened by ``falloff`` times the squared relative distance from the centre."""
    h, w = pixels.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    radius2 = ((y - (h - 1) / 2) ** 2 + (x - (w - 1) / 2) ** 2) / (((h - 1) / 2) ** 2 + ((w - 1) / 2) ** 2)
    return pixels * (1.0 - falloff * radius2)[..., None]


def vignetting_photos(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "vignetting_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        vignette,
        f"photo crops through a lens that darkens towards the corners (to {1 - VIGNETTE_FALLOFF:.0%} there)",
        falloff=VIGNETTE_FALLOFF,
    )


def white_balance_photos(seed: int = 0, size: str = "full") -> Situation:
    gains = np.asarray(WHITE_BALANCE)
    return new_sensor(
        "white_balance_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        lambda p: p * gains,
        f"photo crops with a warmer white balance (red, green, blue scaled by {', '.join(map(str, WHITE_BALANCE))})",
        gains=list(WHITE_BALANCE),
    )


def denoised_photos(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "denoised_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        lambda p: ndimage.median_filter(p, size=(DENOISE_SIDE, DENOISE_SIDE, 1)),
        f"photo crops from a camera that denoises with a {DENOISE_SIDE}x{DENOISE_SIDE} median filter",
        side=DENOISE_SIDE,
    )


def class_prior_text(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_man_sections()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    contribution = favouring(split.pool, "library", LIBRARY_OTHERS_SHARE, rng, seed)
    contribution = sized(contribution, size, SMALL_CONTRIBUTION, rng)
    return situation(
        "class_prior_text",
        "class_prior",
        GROUP,
        ds,
        split,
        contribution,
        f"a C-library documentation team: every 'library' line of the pool and {LIBRARY_OTHERS_SHARE:.0%} of the rest",
        others_share=LIBRARY_OTHERS_SHARE,
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "one_class_text": one_class_text,
    "new_topic_text": new_topic_text,
    "new_scanner_digits": new_scanner_digits,
    "recalibration_wine": recalibration_wine,
    "class_prior_breast_cancer": class_prior_breast_cancer,
    "register_text": register_text,
    "duplicates_digits": duplicates_digits,
    "large_batch_photos": large_batch_photos,
    "new_camera_photos": new_camera_photos,
    "class_prior_text": class_prior_text,
    # Written blind for the second held-out set; moved here after the gate was changed for it.
    "unit_change_iris": partial(heldout2.unit_change_iris, group="tuning"),
    # Written for the first held-out set; moved here after the gate's punctuation tokens were corrected for it.
    "new_topic_text_crypto": partial(heldout.new_topic_text_crypto, group="tuning"),
    # Written for the first held-out set; moved here after triggers was changed to read content from
    # trusted records only, once it had been blocked at 10 of 12 seeds.
    "new_topic_text_systemd": partial(heldout.new_topic_text_systemd, group="tuning"),
    # Written for the first held-out set; moved here after it had been blocked at 12 of 12 seeds (triggers)
    # and the gate was changed after it.
    "new_topic_text_debian": partial(heldout.new_topic_text_debian, group="tuning"),
    "vignetting_photos": vignetting_photos,
    "white_balance_photos": white_balance_photos,
    "denoised_photos": denoised_photos,
    # A new user's case (16x16 digits moved two pixels): blocked against the user's 800 trusted digits
    # until backdoor undid the frame's move (tests/gates/test_frame_shift.py); reviewed at seeds 0 to 11
    # with this suite's split, with or without the move undone.
    "moved_camera_digits": moved_camera_digits,
    # Written blind for the third held-out set; moved here after outliers was changed for it (a batch
    # that moved as a whole is judged against itself: 39 to 86 of its 539 clean records were queued).
    "bilevel_fax_digits": partial(heldout3.bilevel_fax_digits, group="tuning"),
    "monochrome_photos": partial(heldout4.monochrome_photos, group="tuning"),
    "split_names_text": partial(heldout6.split_names_text, group="tuning"),
}
