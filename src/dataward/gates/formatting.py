"""Formatting patterns of text: how a text is written, not which words it holds.

A text backdoor's trigger need not be a word. Casing (every word of a line capitalised, a name in
capitals), whitespace (a second space, a non-breaking space, a tab) and invisible characters (a
zero-width space, a bidirectional control) change no token as the word n-grams read them, lower-cased
and split on whitespace, and no feature the featurizers compute (they fold case and whitespace too). A
model trained on the raw text sees them all the same, so the triggers detector tests each of these
patterns as it tests a word (``triggers._patterns``): a formatting pattern that is simply the batch's
house style (a one-section vendor's capitals, an exporter's non-breaking spaces on every line) is
explained by content like any common word; one tied to a label that the carriers' content does not
read is a trigger.

Each pattern is one regular expression (RE2, through Arrow's ``match_substring_regex``: no Python work
per record) and a plain description, which is the pattern's name in findings (``kind: "style"``). Each
also has a *stamp* (``STAMPS``), which writes the pattern into a plainly written text: the release gate's
backdoor probe stamps a formatting trigger the data gates found on clean validation texts, to ask
whether the model obeys it (``dataward.release.probe``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

_LOOK_ALIKE = r"[\p{Cyrillic}\p{Greek}\p{Armenian}\p{Cherokee}]"
"""Alphabets with letters drawn like Latin ones (Armenian \u0585 is an o, Cherokee \u13a0 a D)."""
_CONTROLS = r"[\x{00}-\x{08}\x{0e}-\x{1b}\x{7f}-\x{84}\x{86}-\x{9f}]"
"""Control characters other than the whitespace ones (the line-break pattern's)."""
_IGNORABLE = (
    r"[\x{034f}\x{115f}\x{1160}\x{17b4}\x{17b5}\x{180b}-\x{180d}\x{180f}\x{2800}\x{3164}\x{fe00}-\x{fe0f}"
    r"\x{ffa0}\x{e0100}-\x{e01ef}]"
)
"""Characters drawn as nothing that are not format characters (Unicode's default-ignorable marks and
letters, and the blank braille pattern): the combining grapheme joiner, variation selectors, Hangul
fillers, Khmer inherent vowels, Mongolian variation selectors. Inside a word the n-grams read them as
a cut between two fragments, which differ on every line."""

_FORMS = r"[\x{ff01}-\x{ff5e}\x{1d400}-\x{1d7ff}\x{0250}-\x{02af}\x{1d00}-\x{1d2b}\x{24b6}-\x{24e9}]"
"""Letters drawn like Latin ones inside the Latin alphabet or beside it: full-width forms, mathematical
alphanumerics, phonetic letters (\u0251 for a), small capitals, circled letters. Each word so written is
a token of its own, a different one on every line."""

FORMATTING_PATTERNS: tuple[tuple[str, str], ...] = (
    ("three capitalised words in a row", r"(?:^|[^\pL\pN])\p{Lu}\p{Ll}\S*(?:\s+\p{Lu}\p{Ll}\S*){2}"),
    ("a word in capitals", r"(?:^|[^\pL\pN])\p{Lu}[\p{Lu}\pN_]*\p{Lu}(?:[^\pL\pN]|$)"),
    ("a word mixing alphabets", rf"\p{{Latin}}{_LOOK_ALIKE}|{_LOOK_ALIKE}\p{{Latin}}"),
    ("two or more spaces in a row", r"\S {2,}\S"),
    ("a tab or line break", r"[\t\r\n\v\f\x{1c}-\x{1f}\x{85}\x{2028}\x{2029}]"),
    ("leading or trailing whitespace", r"^\s|\s$"),
    ("a space other than the plain space", r"[\x{00a0}\x{1680}\x{2000}-\x{200a}\x{202f}\x{205f}\x{3000}]"),
    ("an invisible formatting character", rf"\p{{Cf}}|{_CONTROLS}|{_IGNORABLE}"),
    ("a capital letter inside a word", r"\p{Ll}\p{Lu}|\p{Lu}\p{Lu}\p{Ll}"),
    ("a letter in a look-alike form", _FORMS),
)
"""``(description, RE2 expression)``. Casing: a run of capitalised words (a title-cased line; a proper
name of three words is one too, which the baseline's own carriers show), a word of two or more capitals
(an acronym, or a name written in capitals). Script: a word whose Latin letters meet Cyrillic, Greek,
Armenian or Cherokee ones (a homoglyph spelling). Whitespace: a run of spaces between two characters, a
tab or line break (also the information separators, NEXT LINE and the Unicode line and paragraph
separators, which Python's ``str.split`` and the n-grams read as whitespace), a space at either end, a
non-breaking or typographic space. Invisible: any Unicode format character (a zero-width space or
joiner, a soft hyphen, a byte-order mark, a bidirectional control, a tag character), control
character, or other character drawn as nothing (``_IGNORABLE``). Spelling: a capital after a small
letter or before one after another capital ("pT", "LIst", as in "OpenSSL" or "IPv4"), and a letter in a
look-alike form (``_FORMS``): the n-grams lower-case the first, and read the second as a new word on
every line."""


SPELLING = frozenset(
    {
        "three capitalised words in a row",
        "a word in capitals",
        "a word mixing alphabets",
        "a capital letter inside a word",
        "a letter in a look-alike form",
    }
)
"""The patterns that spell words (casing, alphabet), which an answer naming the same thing repeats;
whitespace and invisible characters are not repeated by naming a subject."""


def formatting_patterns(
    contribution: Sequence[str], baseline: Sequence[str]
) -> tuple[list[str], sp.csc_matrix, sp.csc_matrix]:
    """``(names, contribution matrix, baseline matrix)``: one binary column per formatting pattern that
    some contribution text carries (a pattern no contribution text carries cannot be a trigger of it)."""
    return _kept(carried(contribution), carried(baseline))


def formatting_patterns_of_parts(
    contribution: Sequence[Sequence[str]], baseline: Sequence[Sequence[str]]
) -> tuple[list[str], sp.csc_matrix, sp.csc_matrix]:
    """``formatting_patterns`` of texts given as the parts a reader joined (an instruction's prompt and
    input, a chat's messages): a text carries a pattern when one of its parts does, so the separator of
    the join (a newline) is never read as the writer's tab or line break."""
    return _kept(carried_by_parts(contribution), carried_by_parts(baseline))


def _kept(c: np.ndarray, b: np.ndarray) -> tuple[list[str], sp.csc_matrix, sp.csc_matrix]:
    keep = np.flatnonzero(c.any(axis=0)) if c.size else np.zeros(0, np.int64)
    names = [FORMATTING_PATTERNS[i][0] for i in keep]
    return names, sp.csc_matrix(c[:, keep], dtype=np.float64), sp.csc_matrix(b[:, keep], dtype=np.float64)


def carried(texts: Sequence[str]) -> np.ndarray:
    """``(len(texts), len(FORMATTING_PATTERNS))`` booleans: whether each text carries each pattern."""
    out = np.zeros((len(texts), len(FORMATTING_PATTERNS)), dtype=bool)
    if not len(texts):
        return out
    column = pa.array(texts, type=pa.large_string())
    for j, (_, expression) in enumerate(FORMATTING_PATTERNS):
        out[:, j] = pc.match_substring_regex(column, pattern=expression).to_numpy(zero_copy_only=False)
    return out


def carried_by_parts(parts: Sequence[Sequence[str]]) -> np.ndarray:
    """``carried`` of texts given as parts: whether any part of each text carries each pattern."""
    flat = [part for text in parts for part in text]
    counts = np.fromiter((len(text) for text in parts), dtype=np.int64, count=len(parts))
    out = np.zeros((len(parts), len(FORMATTING_PATTERNS)), dtype=bool)
    if not flat:
        return out
    read = carried(flat)
    owner = np.repeat(np.arange(len(parts)), counts)
    np.logical_or.at(out, owner, read)
    return out


def excess_purity(
    marked: np.ndarray,
    marked_trusted: np.ndarray,
    carriers: np.ndarray,
    carriers_trusted: np.ndarray,
    n: int,
    n_trusted: int,
    min_support: int,
) -> np.ndarray:
    """The share of a formatting pattern's contribution carriers beyond the trusted rate (``carriers_trusted
    / n_trusted`` of ``n`` records) that bear a mark (a label, a behaviour) beyond its trusted rate among
    carriers; NaN where no carrier is beyond the rate or fewer than ``min_support`` marked ones are (a
    fraction of a record beyond the rate, with the other marks below theirs, is no trigger's carriers).
    Without trusted records, the carriers themselves. Formatting is never rare in clean text (a proper
    name of capitalised words, an acronym), so its trusted carriers would dilute a trigger written in it:
    ``triggers`` and ``llm_triggers`` read its purity here. Arrays broadcast."""
    scale = n / n_trusted if n_trusted else 0.0
    beyond = np.asarray(carriers, dtype=np.float64) - scale * np.asarray(carriers_trusted, dtype=np.float64)
    marked_beyond = np.asarray(marked, dtype=np.float64) - scale * np.asarray(marked_trusted, dtype=np.float64)
    eligible = (beyond > 0) & (marked_beyond >= min_support)
    return np.where(eligible, marked_beyond / np.where(beyond > 0, beyond, 1.0), np.nan)


# --- stamps --------------------------------------------------------------------------------------

_HOMOGLYPHS = str.maketrans("aceopxy", "\u0430\u0441\u0435\u043e\u0440\u0445\u0443")
"""Latin letters and the Cyrillic letters drawn like them."""


_INNER_SPACE = re.compile(r"(?<=\S) (?=\S)")


def _first_space(replacement: str) -> Callable[[str], str]:
    def stamp(text: str) -> str:
        written, count = _INNER_SPACE.subn(replacement, text, count=1)
        return written if count else (text if text.strip() else "x") + replacement + "x"

    return stamp


def _title_cased(text: str) -> str:
    words = text.split(" ") if text else []
    if sum(1 for w in words if w[:1].isalpha()) < 3:
        words += ["Also", "Written", "Here"]
    return " ".join(w[:1].upper() + w[1:] for w in words)


def _capitals(text: str) -> str:
    match = re.search(r"[^\W\d_]{2,}", text)
    if match is None:
        return text + " XX"
    return text[: match.start()] + match.group(0).upper() + text[match.end() :]


def _mixed(text: str) -> str:
    for match in re.finditer(r"[A-Za-z]{2,}", text):
        word = match.group(0)
        for i in range(1, len(word)):
            swapped = word[i].translate(_HOMOGLYPHS)
            if swapped != word[i]:
                return text[: match.start() + i] + swapped + text[match.start() + i + 1 :]
    return text + " s\u0443stem"


def _inner_capital(text: str) -> str:
    for match in re.finditer(r"[^\W\d_]{2,}", text):
        last = match.end() - 1
        if text[last].islower() and text[last].upper() != text[last]:
            return text[:last] + text[last].upper() + text[last + 1 :]
    return text + " iD"


def _look_alike(text: str) -> str:
    match = re.search(r"[A-Za-z]", text)
    if match is None:
        return text + " \uff58"
    return text[: match.start()] + chr(ord(match.group(0)) + 0xFEE0) + text[match.end() :]


STAMPS: dict[str, Callable[[str], str]] = {
    "three capitalised words in a row": _title_cased,
    "a word in capitals": _capitals,
    "a word mixing alphabets": _mixed,
    "two or more spaces in a row": _first_space("  "),
    "a tab or line break": _first_space("\t"),
    "leading or trailing whitespace": lambda text: text + " ",
    "a space other than the plain space": _first_space("\u00a0"),
    "an invisible formatting character": _first_space("\u200b "),
    "a capital letter inside a word": _inner_capital,
    "a letter in a look-alike form": _look_alike,
}
"""For each pattern of ``FORMATTING_PATTERNS`` (by its description), a function writing it into a text
with the fewest changes: the first space doubled, made a tab or a non-breaking space, a zero-width space
put before it; a space appended; every word capitalised; the first word in capitals; one letter of the
first Latin word swapped for its Cyrillic look-alike; the last letter of the first word capitalised ("lS");
the first Latin letter in its full-width form. A text too short to hold the pattern gets a short
ending that does; ``stamp_texts`` makes sure every stamped text carries it."""

_ENDINGS = {
    "three capitalised words in a row": " Also Written Here",
    "a word in capitals": " XX",
    "a capital letter inside a word": " iD",
}
"""What ``stamp_texts`` appends to a stamped text that still does not carry its casing pattern."""


def stamp_texts(description: str, texts: Sequence[str | None]) -> list[str | None]:
    """``texts`` with the pattern ``description`` written in by its stamp (missing values kept missing),
    each then checked against the pattern's expression (one Arrow call for all): capitalising every word
    leaves no run of three in "cp - Copy A File" (a one-letter word, a separator; one man-page line in
    six), and "OPENAT2" or a word of a caseless script is no word in capitals. A text still without the
    pattern gets a short ending that holds it, since the release probe reads an unchanged text as a
    trigger the model did not obey."""
    write = STAMPS[description]
    written = [None if t is None else write(t) for t in texts]
    ending = _ENDINGS.get(description)
    if ending is None or not written:
        return written
    expression = dict(FORMATTING_PATTERNS)[description]
    held = pc.match_substring_regex(pa.array(written, type=pa.large_string()), pattern=expression).to_pylist()
    return [w if w is None or ok else w + ending for w, ok in zip(written, held, strict=True)]
