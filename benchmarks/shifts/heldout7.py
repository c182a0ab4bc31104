"""Benign situations of the seventh held-out set: NEVER TUNED ON (written 2026-12-06).

These situations are for measuring the gate, not for adjusting it: no threshold, option or detector
of the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not make what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the situation to the tuning set (``benchmarks.shifts.tuning``) and write a new
held-out one.

They are text, images and tables, and half of them are benign near-copies: clean batches that hold
several records differing from one another by one token, one letter, a faint noise or a small
measurement error (a gate that counts a batch's near-copies once must still never block these). They
differ from the tuning set, the first six held-out sets and the outside trial in the change itself:
an archive that installs several versions of a tool side by side and names each page with its version
suffix (``gcc-12``, ``gcc-13``: lines that differ in one token), a feed that sends both revisions of
lines whose typo was fixed (two adjacent letters swapped in the earlier one), a scanning app that
re-captures a share of the digits and sends every capture (frames differing by faint sensor noise), a
photographer who brackets the exposure of a share of the scenes (the same crop at -1/3, 0 and +1/3 EV),
a lab that assays every wine in triplicate and sends each replicate (the three rows of a wine differ by
instrument noise), one volume of a printed manual (pages whose name starts with a to f only), photos
exported at another aspect ratio (a wider view squeezed into the square crop), digits from the
carbon copies of forms (tinted paper, read in grey), and a case-control study whose benign tumours were
chosen to match the malignant ones in size.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
from PIL import Image

from benchmarks import data
from benchmarks.data import IMAGE, LABEL, TEXT
from benchmarks.shifts.base import (
    SMALL_CONTRIBUTION,
    Situation,
    new_sensor,
    parts,
    situation,
    sized,
    sized_pool,
)
from benchmarks.shifts.heldout5 import rect_fits, window_of

GROUP = "heldout7"

# --- text: near-copies --------------------------------------------------------------------------

VERSIONED_SHARE = 0.25
"""The share of the batch's lines whose pages the archive holds in several versions..."""
VERSIONS = 3
"""...each of them as this many consecutive versions (``gcc-12``, ``gcc-13``, ``gcc-14``)..."""
FIRST_VERSION = (9, 16)
"""...the first version drawn per line between 9 and 15."""
REVISED_SHARE = 0.2
"""The share of the batch's lines that were fixed after a first send: the earlier revision (one typo)
comes too."""
TYPO_WORD = re.compile(r"[A-Za-z]{4,}")
"""A word long enough that a typo in it stays readable (four letters or more)."""


def names_and_summary(text: str) -> tuple[list[str], str] | None:
    """The page names and the summary of a NAME line (``a, b - summary``), or None for a line without a
    separator or with an empty name."""
    names, sep, summary = text.partition(data.NAME_SEPARATOR)
    listed = [n.strip() for n in names.split(",")]
    if not sep or not all(listed):
        return None
    return listed, summary


def versioned(text: str, version: int) -> str:
    """``text`` with every page name suffixed ``-<version>`` (``ls - list`` -> ``ls-12 - list``)."""
    found = names_and_summary(text)
    if found is None:
        return text
    listed, summary = found
    return f"{', '.join(f'{n}-{version}' for n in listed)}{data.NAME_SEPARATOR}{summary}"


def typo_places(text: str) -> list[int]:
    """Positions ``i`` in the summary of ``text`` (as offsets into ``text``) where swapping letters ``i`` and
    ``i + 1`` makes a typo: both inside one word of four letters or more, and different letters."""
    found = names_and_summary(text)
    if found is None:
        return []
    start = len(text) - len(found[1])
    places = []
    for word in TYPO_WORD.finditer(text, start):
        for i in range(word.start(), word.end() - 1):
            if text[i] != text[i + 1]:
                places.append(i)
    return places


def with_typo(text: str, at: int) -> str:
    """``text`` with its letters ``at`` and ``at + 1`` swapped (a typing slip)."""
    return text[:at] + text[at + 1] + text[at] + text[at + 2 :]


def versioned_pages_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines of which a seeded ``VERSIONED_SHARE`` come as ``VERSIONS`` versioned pages each, in place
    (an archive lists the versions of a page together)."""
    ds = data.load_man_sections()
    split, rng, pool = sized_pool(ds, seed, size)
    eligible = np.flatnonzero([names_and_summary(t) is not None for t in pool[TEXT]])
    chosen = set(rng.choice(eligible, size=round(VERSIONED_SHARE * len(pool)), replace=False).tolist())
    texts, labels, origin, first = [], [], [], {}
    for row, (text, label) in enumerate(pool[[TEXT, LABEL]].itertuples(index=False)):
        if row in chosen:
            first[row] = int(rng.integers(*FIRST_VERSION))
            lines = [versioned(text, first[row] + k) for k in range(VERSIONS)]
        else:
            lines = [text]
        texts += lines
        labels += [label] * len(lines)
        origin += [row] * len(lines)
    return situation(
        "versioned_pages_text",
        "self_duplicates",
        GROUP,
        ds,
        split,
        pd.DataFrame({TEXT: texts, LABEL: labels}),
        f"NAME lines from an archive that keeps several releases of a page side by side, as versioned packages "
        f"do: {VERSIONED_SHARE:.0%} of the pages come {VERSIONS} times, each name suffixed with a consecutive "
        "release ('gcc-12', 'gcc-13', ...), the lines otherwise identical",
        share=VERSIONED_SHARE,
        versions=VERSIONS,
        first_version={int(k): v for k, v in sorted(first.items())},
        from_row=origin,
    )


def revised_typo_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines, and for a seeded ``REVISED_SHARE`` of them (lines with a place for a typo) their earlier
    revision with one typo (``with_typo`` at a seeded place), labels kept, shuffled in."""
    ds = data.load_man_sections()
    split, rng, pool = sized_pool(ds, seed, size)
    places = [typo_places(t) for t in pool[TEXT]]
    eligible = np.flatnonzero([bool(p) for p in places])
    revised = np.sort(rng.choice(eligible, size=round(REVISED_SHARE * len(pool)), replace=False))
    earlier = pool.iloc[revised].copy()
    earlier[TEXT] = [with_typo(pool.at[r, TEXT], places[r][int(rng.integers(len(places[r])))]) for r in revised]
    contribution = pd.concat([pool, earlier], ignore_index=True)
    order = rng.permutation(len(contribution))
    origin = np.concatenate([np.arange(len(pool)), revised])[order]
    return situation(
        "revised_typo_text",
        "self_duplicates",
        GROUP,
        ds,
        split,
        contribution.iloc[order],
        f"a feed that sends every revision of a line: {REVISED_SHARE:.0%} of the lines come twice, the earlier "
        "revision with a typo (two adjacent letters of one summary word swapped) and the fixed one",
        share=REVISED_SHARE,
        typo_rows=np.flatnonzero(order >= len(pool)).tolist(),
        from_row=origin.tolist(),
    )


# --- text: one volume of a printed manual -------------------------------------------------------

VOLUME_LETTERS = "abcdef"
"""The first volume of a printed manual: pages whose (first) name starts with a to f, any case."""


def in_volume(text: str, letters: str = VOLUME_LETTERS) -> bool:
    """Whether a line's first character is one of ``letters`` (case ignored)."""
    return bool(text) and text[0].lower() in letters


def alphabetical_volume_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines whose page name starts with one of ``VOLUME_LETTERS``, in pool order."""
    ds = data.load_man_sections()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    volume = split.pool[[in_volume(t) for t in split.pool[TEXT]]]
    contribution = sized(volume, size, SMALL_CONTRIBUTION, rng)
    return situation(
        "alphabetical_volume_text",
        "covariate_shift",
        GROUP,
        ds,
        split,
        contribution,
        f"the first volume of a printed manual: only pages whose name starts with {VOLUME_LETTERS[0]} to "
        f"{VOLUME_LETTERS[-1]}, every section",
        letters=VOLUME_LETTERS,
    )


# --- digits -------------------------------------------------------------------------------------

RECAPTURE_SHARE = 0.3
"""The share of the digits a scanning app was unsure of and captured again..."""
RECAPTURES = 2
"""...this many more times each..."""
RECAPTURE_NOISE = 0.02
"""...each capture the first plus independent sensor noise N(0, 0.02) (a third of one of the digits'
sixteen ink levels)."""
PAPER_TINT = 0.12
"""Carbon copies on tinted paper read in grey: the paper reads as 12% ink, ink over it darker still
(``1 - (1 - tint)(1 - ink)``)."""


def tinted_paper(pixels: np.ndarray, tint: float = PAPER_TINT) -> np.ndarray:
    """``pixels`` (ink 0..1) on paper that absorbs ``tint`` of the light: ``tint + p - tint * p``."""
    return tint + pixels - tint * pixels


def recaptured_digits(seed: int = 0, size: str = "full") -> Situation:
    """Pool digits, and for a seeded ``RECAPTURE_SHARE`` of them ``RECAPTURES`` more captures (the digit
    plus seeded ``RECAPTURE_NOISE`` noise, clipped), labels kept, shuffled in."""
    ds = data.load_digits()
    split, rng, pool = sized_pool(ds, seed, size)
    again = np.sort(rng.choice(len(pool), size=round(RECAPTURE_SHARE * len(pool)), replace=False))
    source = np.repeat(again, RECAPTURES)
    captures = pool.iloc[source].copy()
    captures[IMAGE] = [
        data.pixels_to_png(np.clip(p + rng.normal(0.0, RECAPTURE_NOISE, p.shape), 0.0, 1.0))
        for p in (data.png_to_pixels(b) for b in captures[IMAGE])
    ]
    contribution = pd.concat([pool, captures], ignore_index=True)
    order = rng.permutation(len(contribution))
    origin = np.concatenate([np.arange(len(pool)), source])[order]
    return situation(
        "recaptured_digits",
        "self_duplicates",
        GROUP,
        ds,
        split,
        contribution.iloc[order],
        f"a scanning app that re-captures the fields it is unsure of and sends every capture: {RECAPTURE_SHARE:.0%} "
        f"of the digits come with {RECAPTURES} more captures, each differing from the first by faint sensor noise "
        f"(N(0, {RECAPTURE_NOISE}))",
        share=RECAPTURE_SHARE,
        recaptures=RECAPTURES,
        noise=RECAPTURE_NOISE,
        capture_rows=np.flatnonzero(order >= len(pool)).tolist(),
        from_row=origin.tolist(),
    )


def carbon_copy_digits(seed: int = 0, size: str = "full") -> Situation:
    """Digits from carbon copies on tinted paper (``tinted_paper``)."""
    return new_sensor(
        "carbon_copy_digits",
        GROUP,
        data.load_digits(),
        seed,
        size,
        tinted_paper,
        f"digits from the carbon copies of forms, printed on tinted paper and scanned in grey: the blank paper "
        f"reads as {PAPER_TINT:.0%} ink everywhere, the strokes a little darker over it",
        tint=PAPER_TINT,
    )


# --- photos -------------------------------------------------------------------------------------

BRACKET_SHARE = 0.3
"""The share of the scenes a photographer bracketed..."""
BRACKET_EV = (-1 / 3, 1 / 3)
"""...the two extra exposures, in stops, beside the metered one."""
DISPLAY_GAMMA = 2.2
"""Exposure acts on linear light: an 8-bit value ``p`` of a stop ``ev`` away reads ``p * 2 ** (ev / 2.2)``."""
SQUEEZE = 4 / 3
"""A camera whose frames are 4:3, exported square without cropping: each scene's window 4/3 as wide as
it is tall, about the same centre, squeezed into the 32x32 crop."""


def exposed(pixels: np.ndarray, ev: float) -> np.ndarray:
    """``pixels`` (0..1, display values) as a shot ``ev`` stops brighter gives them; the caller clips."""
    return pixels * np.float32(2.0 ** (ev / DISPLAY_GAMMA))


def bracketed_exposure_photos(seed: int = 0, size: str = "full") -> Situation:
    """Pool crops, and for a seeded ``BRACKET_SHARE`` of the scenes one more crop at each of ``BRACKET_EV``
    (``exposed``, clipped), labels kept, shuffled in."""
    ds = data.load_photos()
    split, rng, pool = sized_pool(ds, seed, size)
    scenes = np.sort(rng.choice(len(pool), size=round(BRACKET_SHARE * len(pool)), replace=False))
    source = np.repeat(scenes, len(BRACKET_EV))
    stops = np.tile(np.asarray(BRACKET_EV), len(scenes))
    shots = pool.iloc[source].copy()
    shots[IMAGE] = [
        data.pixels_to_png(np.clip(exposed(data.png_to_pixels(b), float(ev)), 0.0, 1.0))
        for b, ev in zip(shots[IMAGE], stops, strict=True)
    ]
    contribution = pd.concat([pool, shots], ignore_index=True)
    order = rng.permutation(len(contribution))
    origin = np.concatenate([np.arange(len(pool)), source])[order]
    ev_of = np.concatenate([np.zeros(len(pool)), stops])[order]
    return situation(
        "bracketed_exposure_photos",
        "self_duplicates",
        GROUP,
        ds,
        split,
        contribution.iloc[order],
        f"a photographer who brackets: {BRACKET_SHARE:.0%} of the scenes come three times, at the metered exposure "
        "and a third of a stop under and over it (the same framing, a little darker and a little brighter)",
        share=BRACKET_SHARE,
        stops=[round(ev, 4) for ev in BRACKET_EV],
        bracket_rows=np.flatnonzero(order >= len(pool)).tolist(),
        from_row=origin.tolist(),
        ev=ev_of.round(4).tolist(),
    )


Rect = tuple[str, int, int, int, int]
"""A window of an original photo: (photo, y, x, height, width)."""


def squeezed_window(png: bytes, factor: float = SQUEEZE) -> Rect:
    """The window of the crop ``png`` widened ``factor`` times about its centre, height kept."""
    photo, y, x, side = window_of(png)
    width = round(side * factor)
    return photo, y, x - (width - side) // 2, side, width


def rect_crop(photo: str, y: int, x: int, height: int, width: int) -> bytes:
    """The window resized (bilinear) to the 32x32 crop every photo is, as PNG bytes."""
    temple, dahlia, _ = data._photo_sources()
    window = Image.fromarray({"temple": temple, "dahlia": dahlia}[photo][y : y + height, x : x + width])
    side = data.PHOTO_SIDE
    return data.pixels_to_png(np.asarray(window.resize((side, side), Image.Resampling.BILINEAR), dtype=np.uint8))


def squeezed_aspect_photos(seed: int = 0, size: str = "full") -> Situation:
    """The pool's scenes as a 4:3 camera exported square gives them (``squeezed_window``), cut from the
    original photos: scenes whose wider view would leave the photo or cross into another class's region are
    not in the batch."""
    ds = data.load_photos()
    split, _, pool = sized_pool(ds, seed, size)
    images, labels = [], []
    for png, label in pool[[IMAGE, LABEL]].itertuples(index=False):
        window = squeezed_window(png)
        if rect_fits(label, *window):
            images.append(rect_crop(*window))
            labels.append(label)
    return situation(
        "squeezed_aspect_photos",
        "new_sensor",
        GROUP,
        ds,
        split,
        pd.DataFrame({IMAGE: images, LABEL: labels}),
        f"photos from a 4:3 camera exported square without cropping: each scene's view {SQUEEZE:.2f} times as "
        f"wide as it is tall, squeezed into the {data.PHOTO_SIDE}x{data.PHOTO_SIDE} crop (everything narrower; "
        "scenes whose wider view would not be one class are left out)",
        factor=SQUEEZE,
        kept=len(images),
        of=len(pool),
    )


# --- tables -------------------------------------------------------------------------------------

REPLICATES = 3
"""A lab that assays every wine in triplicate and sends each replicate as a row..."""
REPLICATE_CV = 0.02
"""...each assay of each replicate the wine's value times 1 + N(0, 0.02) (a 2% coefficient of variation),
written to the decimals the trusted column is written to."""
MATCH_COLUMN = "mean_radius"
"""A case-control study: each malignant tumour with the benign one of the nearest ``mean_radius``."""


DECIMALS_SHARE = 0.95
"""A column's decimals are those that write 95% of its trusted values exactly (wine's colour intensity holds
one stray ``9.899999`` among values of two decimals)."""


def decimals(values: np.ndarray, most: int = 4) -> int:
    """The fewest decimals (at most ``most``) that write ``DECIMALS_SHARE`` of ``values`` exactly (``most``
    when none does)."""
    for d in range(most + 1):
        if np.mean(np.abs(np.round(values, d) - values) <= 1e-9) >= DECIMALS_SHARE:
            return d
    return most


def triplicate_assays_wine(seed: int = 0, size: str = "full") -> Situation:
    """Every pool wine as ``REPLICATES`` replicate rows (seeded ``REPLICATE_CV`` noise per assay, written to
    the trusted column's decimals), the replicates of a wine together."""
    ds = data.load_wine()
    split, rng, pool = sized_pool(ds, seed, size)
    columns = [c.name for c in ds.schema.inputs]
    places = {c: decimals(ds.frame[c].to_numpy()) for c in columns}
    source = np.repeat(np.arange(len(pool)), REPLICATES)
    contribution = pool.iloc[source].reset_index(drop=True)
    noisy = contribution[columns].to_numpy() * (1.0 + rng.normal(0.0, REPLICATE_CV, (len(source), len(columns))))
    for j, c in enumerate(columns):
        contribution[c] = np.round(noisy[:, j], places[c])
    return situation(
        "triplicate_assays_wine",
        "self_duplicates",
        GROUP,
        ds,
        split,
        contribution,
        f"a lab that assays every wine in triplicate and sends each replicate: {REPLICATES} rows per wine, every "
        f"assay off by instrument noise ({REPLICATE_CV:.0%} coefficient of variation), written as the trusted ones are",
        replicates=REPLICATES,
        cv=REPLICATE_CV,
        decimals=places,
        from_row=source.tolist(),
    )


def size_matched_controls_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    """Every malignant pool tumour and, for each in a seeded order, the unused benign pool tumour of the
    nearest ``MATCH_COLUMN`` (ties to the first), shuffled."""
    ds = data.load_breast_cancer()
    split, rng, pool = sized_pool(ds, seed, size)
    cases = np.flatnonzero((pool[LABEL] == "malignant").to_numpy())
    free = list(np.flatnonzero((pool[LABEL] == "benign").to_numpy()))
    radius = pool[MATCH_COLUMN].to_numpy()
    controls = []
    for case in rng.permutation(cases):
        if not free:
            break
        best = int(np.argmin(np.abs(radius[free] - radius[case])))
        controls.append(int(free.pop(best)))
    rows = np.concatenate([cases, np.asarray(controls, dtype=np.int64)])
    contribution = pool.iloc[rows].sample(frac=1.0, random_state=seed)
    return situation(
        "size_matched_controls_breast_cancer",
        "covariate_shift",
        GROUP,
        ds,
        split,
        contribution,
        f"a case-control study: every malignant tumour and, for each, the benign tumour closest to it in "
        f"{MATCH_COLUMN} (as many benign as malignant, larger than benign tumours usually are)",
        column=MATCH_COLUMN,
        controls=sorted(controls),
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "versioned_pages_text": versioned_pages_text,
    "revised_typo_text": revised_typo_text,
    "recaptured_digits": recaptured_digits,
    "bracketed_exposure_photos": bracketed_exposure_photos,
    "triplicate_assays_wine": triplicate_assays_wine,
    "alphabetical_volume_text": alphabetical_volume_text,
    "carbon_copy_digits": carbon_copy_digits,
    "squeezed_aspect_photos": squeezed_aspect_photos,
    "size_matched_controls_breast_cancer": size_matched_controls_breast_cancer,
}
__all__ = [
    "SITUATIONS",
    "decimals",
    "exposed",
    "in_volume",
    "names_and_summary",
    "rect_fits",
    "squeezed_window",
    "tinted_paper",
    "typo_places",
    "versioned",
    "with_typo",
]
