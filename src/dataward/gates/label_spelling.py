"""Labels that are trusted labels written differently: ``1.0`` for ``1``, ``TRUE`` for ``true``.

A CSV written from floats spells the class ``1`` as ``1.0``; a spreadsheet may capitalize a word. Read
as new classes, such records are judged against no trusted record of their class (and a batch of them
looks like a relabelled one). Worse, an attacker can respell the target label of a backdoor so that
every detector sees a class of its own, while a training pipeline that reads labels as numbers, or
lower-cases them, trains on the target. The gate therefore reads a respelled label as the trusted
label it spells, for every detector, and says so in the verdict's reasons (for review).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable


def spelling(label: str) -> str:
    """A label's text with spelling set aside: Unicode compatibility forms (NFKC), surrounding blanks
    and case; and, for a number, how it is written (``1``, ``1.0``, ``+1``, ``1e0`` alike)."""
    text = unicodedata.normalize("NFKC", label).strip().casefold()
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return repr(int(number)) if number.is_integer() else repr(number)


def respelled(trusted: Iterable[str], given: Iterable[str]) -> dict[str, str]:
    """``{label: trusted label}`` for each label of ``given`` that is not a trusted label but spells
    exactly one of them (a spelling two trusted labels share aliases neither)."""
    by_spelling: dict[str, list[str]] = {}
    # Only text labels have spellings: a dataset without labels (language-model data) has None.
    known = {label for label in trusted if isinstance(label, str)}
    for label in known:
        by_spelling.setdefault(spelling(label), []).append(label)
    out = {}
    for label in {label for label in given if isinstance(label, str)} - known:
        same = by_spelling.get(spelling(label), [])
        if len(same) == 1:
            out[label] = same[0]
    return out


def describe(aliases: dict[str, str], counts: dict[str, int]) -> str:
    """The verdict's reason for ``aliases`` (``respelled``), with each label's record count."""
    parts = [f"'{new}' ({counts.get(new, 0)}) read as '{old}'" for new, old in sorted(aliases.items())]
    total = sum(counts.get(new, 0) for new in aliases)
    return (
        f"{total} records write trusted labels differently, and are judged as those labels: {'; '.join(parts)}. "
        "Write the labels as the trusted data does; if they are other classes, name them so"
    )


__all__ = ["describe", "respelled", "spelling"]
