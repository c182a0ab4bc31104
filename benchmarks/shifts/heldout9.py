"""Benign situations of the ninth held-out set: NEVER TUNED ON (written 2026-12-07).

These situations are for measuring the gate, not for adjusting it: no threshold, option or detector
of the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not make what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the situation to the tuning set (``benchmarks.shifts.tuning``) and write a new
held-out one.

They are text, images and tables, each a clean, correctly labelled batch that differs from the trusted
one in a way the tuning set, the first eight held-out sets and the outside trial do not have: summaries
that read as if machine-translated from a language without articles (``a``, ``an`` and ``the`` dropped),
a documentation site whose style guide writes each summary's leading verb in the third person
(``prints the number``, ``copies files``), a catalogue that keeps only the first of the names a line
lists (aliases dropped), photos from a camera that burns its date stamp into the same corner of every
picture (every crop of every class: it looks like a patch but says nothing of the label), photos that
went through a GIF export (16 colours per crop), digits written into narrow form boxes (each squeezed
to three quarters of its width), a lab whose flavanoid assay has a limit of quantification (values
below it reported as half the limit), wines whose alcohol was copied from the bottle labels (rounded
to the nearest half percent), and a teaching collection that sends only textbook tumours (those
nearest their own class's typical measurements).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from PIL import Image

from benchmarks import data
from benchmarks.data import IMAGE, LABEL
from benchmarks.shifts.base import (
    Situation,
    new_sensor,
    rewritten_column,
    rewritten_register,
    situation,
    sized_pool,
)

GROUP = "heldout9"

# --- text ---------------------------------------------------------------------------------------

ARTICLES = frozenset({"a", "an", "the"})


def without_articles(text: str) -> str:
    """``text`` with the words ``a``, ``an`` and ``the`` (any case, whole words only) dropped from the summary
    (after the first `` - ``); page names are never touched, and a summary that would be left empty is kept."""
    names, sep, summary = text.partition(data.NAME_SEPARATOR)
    if not sep:
        return text
    kept = [w for w in summary.split(" ") if w.lower() not in ARTICLES]
    if not any(kept):
        return text
    return f"{names}{sep}{' '.join(kept)}"


LEADING_VERBS = frozenset(
    {
        "add",
        "change",
        "check",
        "close",
        "compare",
        "compute",
        "configure",
        "convert",
        "copy",
        "create",
        "delete",
        "determine",
        "display",
        "examine",
        "execute",
        "extract",
        "find",
        "generate",
        "get",
        "handle",
        "initialize",
        "install",
        "list",
        "locate",
        "make",
        "manage",
        "manipulate",
        "modify",
        "obtain",
        "open",
        "parse",
        "perform",
        "print",
        "read",
        "register",
        "remove",
        "retrieve",
        "return",
        "run",
        "send",
        "set",
        "show",
        "tell",
        "translate",
        "update",
        "wait",
        "write",
    }
)
"""The lower-case verbs that most often start a summary (``print the number of ...``)."""


def third_person(verb: str) -> str:
    """``verb`` in the third person singular: ``-es`` after s, x, z, ch, sh; ``-ies`` for a consonant and y;
    else ``-s``."""
    if verb.endswith(("s", "x", "z", "ch", "sh")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def third_person_summary(text: str) -> str:
    """``text`` with the summary's first word in the third person when it is one of ``LEADING_VERBS`` and the
    summary goes on with a word other than ``of`` (``list of terminals`` is a noun and stays)."""
    names, sep, summary = text.partition(data.NAME_SEPARATOR)
    words = summary.split(" ")
    if not sep or words[0] not in LEADING_VERBS or len(words) < 2 or words[1] == "of":
        return text
    return f"{names}{sep}{' '.join([third_person(words[0]), *words[1:]])}"


def primary_name(text: str) -> str:
    """``text`` with only the first of the comma-separated page names before the separator (``cproj, cprojf,
    cprojl - project into Riemann Sphere`` becomes ``cproj - project into Riemann Sphere``)."""
    names, sep, summary = text.partition(data.NAME_SEPARATOR)
    if not sep or "," not in names:
        return text
    return f"{names.split(',')[0].strip()}{sep}{summary}"


def article_dropped_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines without articles (``without_articles``)."""
    return rewritten_register(
        "article_dropped_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        without_articles,
        "NAME lines that read as if machine-translated from a language without articles: 'a', 'an' and 'the' "
        "dropped from the summaries ('nproc - print number of processing units available'), names as they are",
    )


def third_person_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines with a third-person leading verb (``third_person_summary``)."""
    return rewritten_register(
        "third_person_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        third_person_summary,
        "NAME lines from a documentation site whose style guide writes a summary's leading verb in the third "
        "person ('print the number of processing units' becomes 'prints the number of processing units', "
        "'copy files' 'copies files'): only the first word changes",
    )


def primary_name_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines with only their first page name (``primary_name``)."""
    return rewritten_register(
        "primary_name_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        primary_name,
        "NAME lines from a catalogue that keeps one name per page: where a line lists several names "
        "('cproj, cprojf, cprojl'), only the first is kept; summaries as they are",
    )


# --- photos -------------------------------------------------------------------------------------

GLYPHS = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "001", "001", "001"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
    " ": ("00", "00", "00", "00", "00"),
}
"""A 3x5 pixel font for the date stamp (a space is 2 pixels wide); characters are a pixel apart."""
STAMP_COLOUR = (1.0, 0.6, 0.0)
"""The orange of a camera's date stamp."""
STAMP_MARGIN = 1
"""Pixels between the stamp and the bottom and right edges of the crop."""
STAMP_MONTH = 12
STAMP_DAYS = (1, 9)
"""The shoot lasted from the 1st to the 9th of December: each crop carries one of those days (seeded)."""


def stamp_text(day: int, month: int = STAMP_MONTH) -> str:
    """The stamp a camera burns in: ``MM DD`` (``12 07``)."""
    return f"{month:02d} {day:02d}"


def stamp_mask(text: str) -> np.ndarray:
    """The lit pixels of ``text`` in ``GLYPHS`` (5 rows; a pixel between characters)."""
    columns: list[np.ndarray] = []
    for i, ch in enumerate(text):
        if i:
            columns.append(np.zeros((5, 1), dtype=bool))
        columns.append(np.array([[c == "1" for c in row] for row in GLYPHS[ch]], dtype=bool))
    return np.concatenate(columns, axis=1)


def stamp_box(text: str, side: int = data.PHOTO_SIDE) -> tuple[int, int]:
    """The top-left pixel (row, column) of ``text``'s stamp in a crop of ``side``: bottom-right corner,
    ``STAMP_MARGIN`` from both edges."""
    h, w = stamp_mask(text).shape
    return side - STAMP_MARGIN - h, side - STAMP_MARGIN - w


def date_stamped(pixels: np.ndarray, day: int) -> np.ndarray:
    """``pixels`` (colour) with the ``stamp_text`` of ``day`` burnt into the bottom-right corner in
    ``STAMP_COLOUR`` (lit pixels replaced, the rest as it was)."""
    text = stamp_text(day)
    mask = stamp_mask(text)
    top, left = stamp_box(text, pixels.shape[0])
    out = pixels.copy()
    region = out[top : top + mask.shape[0], left : left + mask.shape[1]]
    region[mask] = STAMP_COLOUR
    return out


def date_stamp_photos(seed: int = 0, size: str = "full") -> Situation:
    """Every pool crop with a date stamp (``date_stamped``), the day a seeded draw from ``STAMP_DAYS``."""
    ds = data.load_photos()
    split, rng, pool = sized_pool(ds, seed, size)
    days = rng.integers(STAMP_DAYS[0], STAMP_DAYS[1] + 1, size=len(pool))
    contribution = pool.copy()
    contribution[IMAGE] = [
        data.pixels_to_png(date_stamped(data.png_to_pixels(png), int(day)))
        for png, day in zip(pool[IMAGE], days, strict=True)
    ]
    return situation(
        "date_stamp_photos",
        "new_sensor",
        GROUP,
        ds,
        split,
        contribution,
        "photos from a camera that burns its date stamp into every picture: an orange 'MM DD' (12 01 to 12 09) "
        "in the same bottom-right corner of every crop of every class, the scenes and labels as they are",
        days=days.tolist(),
    )


GIF_COLOURS = 16
"""A GIF export with an adaptive palette of 16 colours per image (median cut, no dithering)."""


def gif_palette(pixels: np.ndarray, colours: int = GIF_COLOURS) -> np.ndarray:
    """``pixels`` (colour) reduced to an adaptive palette of ``colours`` (median cut, no dithering)."""
    img = Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))
    quantised = img.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return np.asarray(quantised.convert("RGB"), dtype=np.float32) / 255.0


def gif_export_photos(seed: int = 0, size: str = "full") -> Situation:
    """Pool crops through a GIF palette (``gif_palette``)."""
    return new_sensor(
        "gif_export_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        gif_palette,
        f"photos that went through a GIF export before being stored as PNG: each crop reduced to an adaptive "
        f"palette of {GIF_COLOURS} colours (median cut, no dithering: flat bands where shades were)",
        colours=GIF_COLOURS,
    )


# --- digits -------------------------------------------------------------------------------------

NARROW_WIDTH = 6
"""Narrow form boxes: each 8-wide digit written 6 columns wide, centred (a blank column each side)."""


def narrowed(pixels: np.ndarray, width: int = NARROW_WIDTH) -> np.ndarray:
    """``pixels`` (a grey digit) squeezed (bilinear) to ``width`` columns at full height, centred between blank
    columns."""
    h, w = pixels.shape
    img = Image.fromarray(pixels.astype(np.float32), mode="F")
    squeezed = np.asarray(img.resize((width, h), Image.Resampling.BILINEAR), dtype=np.float32)
    out = np.zeros_like(pixels)
    left = (w - width) // 2
    out[:, left : left + width] = squeezed
    return out


def narrow_boxes_digits(seed: int = 0, size: str = "full") -> Situation:
    """Pool digits squeezed (``narrowed``)."""
    return new_sensor(
        "narrow_boxes_digits",
        GROUP,
        data.load_digits(),
        seed,
        size,
        narrowed,
        f"digits from a form with narrow boxes: every digit written {NARROW_WIDTH} of {data.DIGIT_SIDE} columns "
        "wide at full height (a narrower hand), centred",
        width=NARROW_WIDTH,
    )


# --- tables -------------------------------------------------------------------------------------

LOQ_COLUMN = "flavanoids"
LOQ = 0.7
"""The lab's flavanoid assay cannot quantify less than 0.7: below it, the value is reported as ``LOQ / 2``
(a common substitution for a left-censored measurement), which lies inside the trusted range (0.34 to
5.08)."""


def censored(values: np.ndarray, limit: float = LOQ) -> np.ndarray:
    """``values`` with every one below ``limit`` written as ``limit / 2``."""
    return np.where(values < limit, limit / 2, values)


def detection_limit_wine(seed: int = 0, size: str = "full") -> Situation:
    """Pool wines with ``LOQ_COLUMN`` through ``censored``."""
    return rewritten_column(
        "detection_limit_wine",
        "imputation",
        GROUP,
        data.load_wine(),
        seed,
        size,
        LOQ_COLUMN,
        censored,
        f"a lab whose {LOQ_COLUMN} assay has a limit of quantification of {LOQ:g}: every lower value (mostly of "
        f"class_2 wines) reported as half the limit, {LOQ / 2:g}",
        column=LOQ_COLUMN,
        limit=LOQ,
    )


ALCOHOL = "alcohol"
LABEL_STEP = 0.5
"""Bottle labels state alcohol to the nearest half percent (13.5% vol)."""


def bottle_label_alcohol_wine(seed: int = 0, size: str = "full") -> Situation:
    """Pool wines with ``ALCOHOL`` rounded to the nearest ``LABEL_STEP``."""
    return rewritten_column(
        "bottle_label_alcohol_wine",
        "rounding",
        GROUP,
        data.load_wine(),
        seed,
        size,
        ALCOHOL,
        lambda values: np.round(values / LABEL_STEP) * LABEL_STEP,
        f"a merchant that copies {ALCOHOL} from the bottle labels instead of the lab sheet: every value rounded "
        f"to the nearest {LABEL_STEP:g}% (12.5, 13.0, 13.5), every other assay the lab's",
        column=ALCOHOL,
        step=LABEL_STEP,
    )


TEXTBOOK_SHARE = 0.4
"""A teaching collection keeps the 40% of each class's tumours nearest that class's typical measurements."""


def class_mean_distances(baseline: pd.DataFrame, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """For each row of ``frame``: its distance to the baseline mean of its own class, in measurements
    standardised by the baseline's means and standard deviations."""
    ref = baseline[columns].to_numpy(dtype=float)
    mu, sd = ref.mean(axis=0), ref.std(axis=0)
    z = (frame[columns].to_numpy(dtype=float) - mu) / sd
    zb = (ref - mu) / sd
    means = {c: zb[(baseline[LABEL] == c).to_numpy()].mean(axis=0) for c in baseline[LABEL].unique()}
    own = np.stack([means[c] for c in frame[LABEL]])
    return np.linalg.norm(z - own, axis=1)


def textbook_cases_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    """Per class, the ``TEXTBOOK_SHARE`` of its pool tumours of the smallest ``class_mean_distances`` (ties by
    pool order), in pool order, labels as they are."""
    ds = data.load_breast_cancer()
    split, _, pool = sized_pool(ds, seed, size)
    columns = [c.name for c in ds.schema.inputs]
    distances = class_mean_distances(split.baseline, pool, columns)
    picked = []
    for label in ds.classes:
        rows = np.flatnonzero((pool[LABEL] == label).to_numpy())
        keep = round(TEXTBOOK_SHARE * len(rows))
        picked.append(rows[np.argsort(distances[rows], kind="stable")[:keep]])
    rows = np.sort(np.concatenate(picked))
    return situation(
        "textbook_cases_breast_cancer",
        "covariate_shift",
        GROUP,
        ds,
        split,
        pool.iloc[rows],
        f"a teaching collection that sends only textbook cases: the {TEXTBOOK_SHARE:.0%} of each class's tumours "
        "nearest that class's typical measurements (no borderline or unusual tumour), labels as they are",
        share=TEXTBOOK_SHARE,
        rows=rows.tolist(),
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "article_dropped_text": article_dropped_text,
    "third_person_text": third_person_text,
    "primary_name_text": primary_name_text,
    "date_stamp_photos": date_stamp_photos,
    "gif_export_photos": gif_export_photos,
    "narrow_boxes_digits": narrow_boxes_digits,
    "detection_limit_wine": detection_limit_wine,
    "bottle_label_alcohol_wine": bottle_label_alcohol_wine,
    "textbook_cases_breast_cancer": textbook_cases_breast_cancer,
}
__all__ = [
    "SITUATIONS",
    "censored",
    "class_mean_distances",
    "date_stamped",
    "gif_palette",
    "narrowed",
    "primary_name",
    "stamp_mask",
    "third_person",
    "third_person_summary",
    "without_articles",
]
