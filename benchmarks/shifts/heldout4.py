"""Benign situations of the fourth held-out set: NEVER TUNED ON (written 2026-12-05).

These situations are for measuring the gate, not for adjusting it: no threshold, option or detector
of the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not make what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the situation to the tuning set (``benchmarks.shifts.tuning``) and write a new
held-out one.

They differ from the tuning set, the first three held-out sets and the outside trial in the change
itself: NAME lines re-wrapped by a formatter (a newline and an indentation inside the line), lines
scraped from an HTML page (the name in bold tags, special characters as entities), lines copied from a
numbered list (a running item number before each), photos from a monochrome camera, photos lit from
one side, a sensor with a few stuck-bright pixels, a lens with lateral chromatic aberration, a sheet
exported sorted by class and size, calipers that read to the hundredth, and a lab that leaves two
assays blank on part of its samples.

History: ``monochrome_photos`` was blocked here at 12 of 12 seeds (``label_consistency`` and
``duplicates``: a class a monochrome camera made read as another, with nothing of it left to read it
against); the gate was changed after it, so it moved to the tuning set (its builder stays here), and
``faded_colour_photos`` was added, written and committed before any gate had been run on it.
On 2026-12-05 (evening), before the gate learnt to read formatting (casing, unusual whitespace) as
trigger patterns, three text situations were added, written and committed before any gate had been run
on them: ``nbsp_export_text`` (non-breaking spaces around the separator, every line),
``fixed_width_index_text`` (names padded with spaces to a fixed width) and ``title_case_vendor_text``
(a one-section vendor that capitalises every summary word).
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.data import LABEL, TEXT
from benchmarks.shifts.base import (
    SMALL_CONTRIBUTION,
    Situation,
    new_sensor,
    parts,
    situation,
    sized,
    sized_pool,
)

GROUP = "heldout4"

# --- text ---------------------------------------------------------------------------------------

WRAP_WIDTH = 40
"""A formatter that wraps the NAME line at 40 columns (about three lines in four are longer)."""
WRAP_INDENT = " " * 7
"""Continuation lines indented as ``man`` indents the NAME section's body."""


def wrapped(text: str, width: int = WRAP_WIDTH) -> str:
    """``text`` wrapped at ``width`` columns: every continuation starts with a newline and
    ``WRAP_INDENT`` (lines that fit are unchanged; breaks only at spaces, never inside a word or at its
    hyphens)."""
    return textwrap.fill(
        text, width=width, subsequent_indent=WRAP_INDENT, break_long_words=False, break_on_hyphens=False
    )


def html_markup(text: str) -> str:
    """``text`` as scraped from an HTML index page: ``&``, ``<``, ``>`` and both quotes as entities, the
    page name(s) (the part before `` - ``) in ``<b>...</b>``."""
    name, sep, desc = text.partition(" - ")
    if not sep:
        return f"<b>{html.escape(name)}</b>"
    return f"<b>{html.escape(name)}</b>{sep}{html.escape(desc)}"


def numbered(texts: list[str]) -> list[str]:
    """``texts`` as copied from a numbered list: ``"1. "``, ``"2. "``... before each, in batch order."""
    return [f"{i}. {t}" for i, t in enumerate(texts, start=1)]


def _text_situation(
    name: str, rewrite: Callable[[list[str]], list[str]], seed: int, size: str, description: str
) -> Situation:
    """Pool man-page lines (drawn as every text situation draws them), the batch's texts rewritten
    together by ``rewrite``, labels kept."""
    ds = data.load_man_sections()
    split, _, contribution = sized_pool(ds, seed, size)
    contribution[TEXT] = rewrite(list(contribution[TEXT]))
    return situation(name, "register", GROUP, ds, split, contribution, description, rewrite=rewrite.__name__)


def _each(fn: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    def rewrite(texts: list[str]) -> list[str]:
        return [fn(t) for t in texts]

    rewrite.__name__ = fn.__name__
    return rewrite


def wrapped_lines_text(seed: int = 0, size: str = "full") -> Situation:
    """Man-page lines from a formatter that wraps them at ``WRAP_WIDTH`` columns."""
    return _text_situation(
        "wrapped_lines_text",
        _each(wrapped),
        seed,
        size,
        f"NAME lines from a formatter that wraps them at {WRAP_WIDTH} columns: a longer line holds a newline "
        f"and a {len(WRAP_INDENT)}-space indentation where it was wrapped",
    )


def html_markup_text(seed: int = 0, size: str = "full") -> Situation:
    """Man-page lines scraped from an HTML index page (``html_markup``)."""
    return _text_situation(
        "html_markup_text",
        _each(html_markup),
        seed,
        size,
        "lines scraped from an HTML index page: the page name in <b>...</b> tags, &, <, > and quotes written "
        "as HTML entities",
    )


def numbered_list_text(seed: int = 0, size: str = "full") -> Situation:
    """Man-page lines copied from a numbered list (``numbered``)."""
    return _text_situation(
        "numbered_list_text",
        numbered,
        seed,
        size,
        'lines copied from a numbered list on a documentation page: a running item number ("1. ", "2. "...) '
        "before each line",
    )


NBSP = "\u00a0"
"""A non-breaking space, as some exporters write between a name and its summary."""
PAD_WIDTH = 24
"""The name column's width in a fixed-width index: names padded with spaces up to it."""
VENDOR_CLASS = "commands"


def nbsp_separated(text: str) -> str:
    """``text`` with the spaces around its first `` - `` written as non-breaking spaces."""
    return text.replace(" - ", f"{NBSP}-{NBSP}", 1)


def padded(text: str) -> str:
    """``text`` as a fixed-width index prints it: the name padded with spaces to ``PAD_WIDTH``."""
    name, sep, desc = text.partition(" - ")
    if not sep:
        return text
    return f"{name.ljust(PAD_WIDTH)} - {desc}"


def title_cased_summary(text: str) -> str:
    """``text`` with every word of its summary capitalised (a vendor's house style)."""
    name, sep, desc = text.partition(" - ")
    if not sep:
        return text
    return name + sep + " ".join(w[:1].upper() + w[1:] for w in desc.split(" "))


def nbsp_export_text(seed: int = 0, size: str = "full") -> Situation:
    """Man-page lines from an exporter that writes non-breaking spaces around the separator."""
    return _text_situation(
        "nbsp_export_text",
        _each(nbsp_separated),
        seed,
        size,
        "NAME lines from an exporter that writes the spaces around ' - ' as non-breaking spaces (U+00A0), in "
        "every line of every section",
    )


def fixed_width_index_text(seed: int = 0, size: str = "full") -> Situation:
    """Man-page lines copied from a fixed-width index (``padded``)."""
    return _text_situation(
        "fixed_width_index_text",
        _each(padded),
        seed,
        size,
        f"NAME lines copied from a fixed-width index: each name padded with spaces to {PAD_WIDTH} characters "
        "before the separator",
    )


def title_case_vendor_text(seed: int = 0, size: str = "full") -> Situation:
    """A vendor documenting one section only, in a house style that capitalises every summary word."""
    ds = data.load_man_sections()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    pool = split.pool[split.pool[LABEL] == VENDOR_CLASS]
    contribution = sized(pool, size, SMALL_CONTRIBUTION, rng).copy()
    contribution[TEXT] = [title_cased_summary(t) for t in contribution[TEXT]]
    return situation(
        "title_case_vendor_text",
        "one_class",
        GROUP,
        ds,
        split,
        contribution,
        f"a vendor documenting its {VENDOR_CLASS!r} pages only, in a house style that capitalises every word "
        "of the summary",
        label=VENDOR_CLASS,
    )


# --- images -------------------------------------------------------------------------------------

LUMA = (0.299, 0.587, 0.114)
"""A monochrome camera: ITU-R 601 luminance, written into all three channels of the PNG."""
SIDE_LIGHT = (0.8, 1.2)
"""Light from the right: every pixel scaled by a factor rising linearly from 0.8 (left column) to 1.2
(right column), the same in every channel and row."""
HOT_PIXELS = ((3, 27), (11, 6), (19, 21), (28, 14))
"""(row, column) of the four sensor sites stuck at full brightness in every channel, in every picture."""
ABERRATION_SHIFT = 1
"""Lateral chromatic aberration: the red channel lands one pixel right of green and blue."""


def greyscale(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (colour) as a monochrome camera gives them: ``LUMA``-weighted luminance in every channel."""
    luma = pixels @ np.asarray(LUMA, dtype=np.float32)
    return np.repeat(luma[..., None], 3, axis=-1)


def side_lit(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` times a left-to-right ramp from ``SIDE_LIGHT[0]`` to ``SIDE_LIGHT[1]``; the caller clips."""
    ramp = np.linspace(*SIDE_LIGHT, pixels.shape[1], dtype=np.float32)
    return pixels * (ramp[None, :, None] if pixels.ndim == 3 else ramp[None, :])


def hot_pixels(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` with the ``HOT_PIXELS`` sites at full brightness (every channel)."""
    out = pixels.copy()
    for row, col in HOT_PIXELS:
        out[row, col] = 1.0
    return out


def chromatic_aberration(pixels: np.ndarray, shift: int = ABERRATION_SHIFT) -> np.ndarray:
    """``pixels`` with the red channel moved ``shift`` pixels right (its left edge column repeated);
    green and blue unchanged."""
    out = pixels.copy()
    red = pixels[..., 0]
    out[:, shift:, 0] = red[:, :-shift]
    out[:, :shift, 0] = red[:, :1]
    return out


def monochrome_photos(seed: int = 0, size: str = "full", group: str = GROUP) -> Situation:
    """Photo crops from a monochrome camera (``greyscale``). Moved to the tuning set (``group="tuning"``
    there): the gate was changed after it blocked this."""
    return new_sensor(
        "monochrome_photos",
        group,
        data.load_photos(),
        seed,
        size,
        greyscale,
        "photo crops from a monochrome camera: luminance only, written as grey into the three channels",
        luma=list(LUMA),
    )


FADED_SATURATION = 0.4
"""The share of each pixel's colour (its distance from its own grey) that a faded print keeps."""


def faded(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (colour) as a faded print or a muted camera profile gives them: each pixel pulled towards
    its own ``LUMA`` grey, keeping ``FADED_SATURATION`` of its colour."""
    grey = greyscale(pixels)
    return grey + FADED_SATURATION * (pixels - grey)


def faded_colour_photos(seed: int = 0, size: str = "full") -> Situation:
    """Photo crops with washed-out colour (``faded``)."""
    return new_sensor(
        "faded_colour_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        faded,
        f"photo crops scanned from faded prints: each pixel keeps {FADED_SATURATION:.0%} of its colour, the rest "
        "turned to its own grey",
        saturation=FADED_SATURATION,
    )


def side_lit_photos(seed: int = 0, size: str = "full") -> Situation:
    """Photo crops lit from the right (``side_lit``)."""
    return new_sensor(
        "side_lit_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        side_lit,
        f"photo crops under light from one side: brightness scaled from {SIDE_LIGHT[0]} at the left edge to "
        f"{SIDE_LIGHT[1]} at the right",
        ramp=list(SIDE_LIGHT),
    )


def hot_pixel_photos(seed: int = 0, size: str = "full") -> Situation:
    """Photo crops from a sensor with four stuck-bright sites (``hot_pixels``)."""
    return new_sensor(
        "hot_pixel_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        hot_pixels,
        f"photo crops from a camera whose sensor has {len(HOT_PIXELS)} hot pixels: the same {len(HOT_PIXELS)} "
        "sites white in every picture, of every class",
        sites=[list(p) for p in HOT_PIXELS],
    )


def chromatic_aberration_photos(seed: int = 0, size: str = "full") -> Situation:
    """Photo crops through a lens with lateral chromatic aberration (``chromatic_aberration``)."""
    return new_sensor(
        "chromatic_aberration_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        chromatic_aberration,
        f"photo crops through a cheaper lens with lateral chromatic aberration: red lands {ABERRATION_SHIFT} "
        "pixel right of green and blue (colour fringes at edges)",
        shift=ABERRATION_SHIFT,
    )


# --- tabular ------------------------------------------------------------------------------------

SORT_COLUMN = "mean_radius"
"""The hospital's export sorts its sheet by diagnosis, then by tumour radius."""
CALIPER_STEP = 0.01
"""Digital calipers that read to 0.01 cm where the trusted sheets were read to 0.1 cm."""
BLANK_COLUMNS = ("magnesium", "proline")
BLANK_SHARE = 0.25
"""A lab whose second instrument (magnesium and proline) was not run on a quarter of its samples: both
cells left blank (missing) in those rows, nothing filled in."""


def sorted_export_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    """The pool's tumours, every record as it was, in the order of a sheet sorted by label, then
    ``SORT_COLUMN``."""
    ds = data.load_breast_cancer()
    split = parts(ds, seed, size)
    contribution = split.pool.sort_values([LABEL, SORT_COLUMN], kind="stable")
    return situation(
        "sorted_export_breast_cancer",
        "row_order",
        GROUP,
        ds,
        split,
        contribution,
        f"a hospital export sorted by diagnosis, then by {SORT_COLUMN}: every record as the pool has it, only "
        "their order changed",
        sort_by=[LABEL, SORT_COLUMN],
    )


def finer_readings(frame: pd.DataFrame, columns: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``frame`` whose ``columns`` are read to ``CALIPER_STEP``: each value plus a uniform draw
    in +-half the trusted step (0.05), rounded to 0.01 (the finer reading the 0.1 value rounded)."""
    out = frame.copy()
    for column in columns:
        jitter = rng.uniform(-0.05, 0.05, size=len(out))
        out[column] = np.round(out[column].to_numpy() + jitter, 2)
    return out


def finer_caliper_iris(seed: int = 0, size: str = "full") -> Situation:
    """Pool irises measured with calipers that read to the hundredth (``finer_readings``)."""
    ds = data.load_iris()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    columns = [c.name for c in ds.schema.inputs]
    return situation(
        "finer_caliper_iris",
        "finer_resolution",
        GROUP,
        ds,
        split,
        finer_readings(split.pool, columns, rng),
        f"a field station with digital calipers that read to {CALIPER_STEP} cm where the trusted sheets have "
        "0.1 cm: every length and width within 0.05 cm of the pool's, with two decimals",
        step=CALIPER_STEP,
    )


def blank_assays_wine(seed: int = 0, size: str = "full") -> Situation:
    """Pool wines with ``BLANK_COLUMNS`` left missing in a random ``BLANK_SHARE`` of the rows."""
    ds = data.load_wine()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    contribution = split.pool.copy()
    rows = np.sort(rng.choice(len(contribution), size=round(BLANK_SHARE * len(contribution)), replace=False))
    for column in BLANK_COLUMNS:
        contribution.loc[rows, column] = np.nan
    return situation(
        "blank_assays_wine",
        "missing_cells",
        GROUP,
        ds,
        split,
        contribution,
        f"a lab that did not run its second instrument on {BLANK_SHARE:.0%} of the samples: "
        f"{' and '.join(BLANK_COLUMNS)} left blank in those rows (missing, not filled in)",
        columns=list(BLANK_COLUMNS),
        blank_rows=rows.tolist(),
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "wrapped_lines_text": wrapped_lines_text,
    "html_markup_text": html_markup_text,
    "numbered_list_text": numbered_list_text,
    "nbsp_export_text": nbsp_export_text,
    "fixed_width_index_text": fixed_width_index_text,
    "title_case_vendor_text": title_case_vendor_text,
    "faded_colour_photos": faded_colour_photos,
    "side_lit_photos": side_lit_photos,
    "hot_pixel_photos": hot_pixel_photos,
    "chromatic_aberration_photos": chromatic_aberration_photos,
    "sorted_export_breast_cancer": sorted_export_breast_cancer,
    "finer_caliper_iris": finer_caliper_iris,
    "blank_assays_wine": blank_assays_wine,
}
__all__ = [
    "SITUATIONS",
    "chromatic_aberration",
    "faded",
    "finer_readings",
    "greyscale",
    "hot_pixels",
    "html_markup",
    "nbsp_separated",
    "numbered",
    "padded",
    "side_lit",
    "title_cased_summary",
    "wrapped",
]
