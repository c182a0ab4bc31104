"""Names of datasets and principals: what a valid one is, and when two are the same name to a person.

A name is an identifier people read, type and grant roles on, so it must look like exactly one thing:

* NFC-normalized (a decomposed ``é`` is refused, with the composed form in the hint);
* printable: no control, format (zero-width, bidirectional), private-use or unassigned characters, no
  line or paragraph separators, none of the characters no screen draws (a grapheme joiner, variation
  selectors, Hangul fillers, U+2800: ``_INVISIBLE_RANGES``), no whitespace at all (so none leading or
  trailing);
* made of letters, combining marks, digits and ``_ . -``, starting with a letter or digit, at most
  128 characters.

Two names are *the same name* when they are equal after case folding (NFKC, then ``casefold``) or after
confusable folding: the skeleton of Unicode TR39 built from the confusables data shipped by the
``confusable-homoglyphs`` package (each character replaced by the prototype it is confusable with:
Cyrillic ``а`` by ``a``, ``1`` and ``I`` by ``l``, ``0`` by ``O``, ``m`` by ``rn``). A new dataset or
principal whose name is the same name as an existing one is refused.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from dataward.domain.errors import InputError

MAX_NAME_LENGTH = 128
_PUNCTUATION = frozenset("_.-")
_FIRST = "a letter or digit"
_ALLOWED = "letters, digits, '_', '.', '-' (up to 128), starting with a letter or digit"


_CONTROL_NAMES = {
    "\x1b": "ESCAPE",
    "\t": "CHARACTER TABULATION",
    "\n": "LINE FEED",
    "\r": "CARRIAGE RETURN",
    "\x00": "NULL",
}


_UNNAMED = ("unassigned character", "control character")


def _describe(char: str) -> str:
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(char) or _UNNAMED[unicodedata.category(char) == "Cc"]
    return f"U+{ord(char):04X} {name}"


# What ``visible`` keeps although Python does not call it printable: spaces such as U+00A0 and U+3000
# in ordinary text; private-use and not yet assigned code points, drawn as a box at worst.
_SHOWN_CATEGORIES = frozenset({"Zs", "Co", "Cn"})
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


# Characters Python calls printable (letters, marks, unassigned) that no screen draws, so that a label or
# a name holding one looks exactly like the one without it ("commands\u034f" like "commands"):
# * Unicode's Default_Ignorable_Code_Point property, the ranges of DerivedCoreProperties.txt in the
#   Unicode Character Database (a test compares them with the ``regex`` package's table when it is
#   installed): the combining grapheme joiner, the Hangul fillers, the Khmer inherent vowels, the
#   Mongolian and the standard variation selectors (U+180B.., U+FE00.., U+E0100..), the tags
#   (U+E0000..U+E007F) and the reserved code points kept ignorable for invisible characters to come.
#   Its Cf members (zero-width, bidi, soft hyphen...) are not printable to Python either; they are
#   listed so that the list is the property.
# * U+2800 BRAILLE PATTERN BLANK, drawn as an empty cell (a symbol, not a space, to Unicode).
# Written out: ``unicodedata`` has no access to the property, and the list is short and stable (the
# reserved ranges in it are kept ignorable so that characters assigned there later stay invisible).
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
    (0x2800, 0x2800),
)
_INVISIBLE = frozenset(chr(code) for first, last in _INVISIBLE_RANGES for code in range(first, last + 1))


def _searcher(chars: Iterable[str]) -> re.Pattern[str]:
    """A pattern finding any of ``chars``, written as ranges (``re`` tests a class range by range)."""
    codes = sorted(map(ord, chars))
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return re.compile("[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]")


# Text Python calls printable can only hold the invisible characters it calls printable: the search
# for those is what a label or a record with a non-ASCII character pays at every input.
_PRINTABLE_INVISIBLE = _searcher(char for char in _INVISIBLE if char.isprintable())


_ANY_INVISIBLE = _searcher(_INVISIBLE)


def without_invisible(text: str) -> str:
    """``text`` without the characters no screen draws (Unicode Default_Ignorable_Code_Point and U+2800):
    what two texts that read alike are compared on, so that a zero-width space or a soft hyphen slipped
    into a word does not make one text many."""
    return text if text.isascii() else _ANY_INVISIBLE.sub("", text)


def read_alike(text: str) -> str:
    """``text`` as it reads: NFKC form (compatibility characters such as full-width letters or a no-break
    space folded to the plain ones) without the characters no screen draws (``without_invisible``).
    ASCII text is returned as is. What near-duplicate comparisons start from (``llm_floods``, the
    normalized identity of records in ``domain.normalized``)."""
    return text if text.isascii() else unicodedata.normalize("NFKC", without_invisible(text))


def _shown(char: str) -> bool:
    if char in _INVISIBLE:
        return False
    return char.isprintable() or unicodedata.category(char) in _SHOWN_CATEGORIES


def hidden_after(previous: str, char: str) -> bool:
    """Whether ``visible`` writes ``char`` as an escape where it follows ``previous``: a hidden character
    (``is_hidden``) other than a presentation selector drawn as part of the symbol before it."""
    return not (_shown(char) or _presents(previous, char))


def is_hidden(char: str) -> bool:
    """Whether ``char`` is one ``hidden_character`` finds (and ``visible`` writes as an escape)."""
    return not _shown(char)


def hidden_character(text: str) -> str | None:
    """The first control, format (bidi, zero-width), line-separator or never-drawn (Unicode
    Default_Ignorable_Code_Point, U+2800 BRAILLE PATTERN BLANK) character of ``text``, or None: a
    character a terminal acts on or a screen does not draw, so that ``text`` can look like other text."""
    if text.isprintable():  # the common case, in C
        if text.isascii():
            return None
        found = _PRINTABLE_INVISIBLE.search(text)
        return found.group() if found else None
    return next((char for char in text if not _shown(char)), None)


def _escaped(char: str) -> str:
    """``char`` written as Python writes it in a ``repr``: ``\\x1b``, ``\\u202e``, ``\\U000e0041``."""
    code = ord(char)
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str, *, keep: str = "") -> str:
    """``text`` with every control, format and line-separator character (``hidden_character``) written
    as an escape (``\\x1b``, ``\\u202e``), and everything else as is (``é``, ``中文``).

    Untrusted text (record values, labels, licences, reasons, names) reaches a reviewer's terminal and
    the ward's documents: an ESC or CSI sequence there can erase a suspected trigger from the screen,
    overwrite a line with a fake verdict or conceal what follows; OSC sequences plant links and window
    titles; a carriage return rewrites the line; bidi overrides and zero-width characters make one
    string look like another. Shown as escapes, they are what they are: evidence. ``keep`` names
    characters left alone (``"\\n"`` for the layout of the one printing)."""
    if text.isprintable() and hidden_character(text) is None:  # the common case: one search
        return text
    out, previous = [], ""
    for char in text:
        out.append(char if char in keep or _shown(char) or _presents(previous, char) else _escaped(char))
        previous = char
    return "".join(out)


_PRESENTATION_SELECTORS = frozenset("\ufe0e\ufe0f")
_KEYCAP_BASES = frozenset("#*0123456789")


def _presents(previous: str, char: str) -> bool:
    """Whether ``char`` is a text or emoji presentation selector after a symbol (``❤\ufe0f``, a keycap's
    ``1\ufe0f``): drawn as part of that symbol, not hidden in a word, so free text keeps it as written.
    Labels and names still refuse it (``hidden_character``): they need no emoji."""
    return (
        char in _PRESENTATION_SELECTORS
        and bool(previous)
        and (previous in _KEYCAP_BASES or unicodedata.category(previous) == "So")
    )


def shown_repr(text: str) -> str:
    """``repr(text)`` with the characters ``repr`` leaves as they are but no screen draws (``\\u034f``,
    ``\\ufe0f``) escaped too: how an error message quotes the text it refuses."""
    return visible(repr(text))


def describe_character(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: a character named for an error message."""
    return _describe(char)


def text_problem(value: object, what: str) -> str | None:
    """Why ``value`` is not printable, NFC, trimmed text (what every identifier and label must be), or None."""
    if not isinstance(value, str):
        return f"{what} must be text, got {type(value).__name__}"
    if not value:
        return f"{what} is empty"
    if value != value.strip() or value[0].isspace() or value[-1].isspace():
        edge = value[0] if value[0].isspace() else value[-1]
        where = "starts" if value[0].isspace() else "ends"
        return f"{what} {value!r} {where} with whitespace ({_describe(edge)})"
    for char in value:
        if not char.isprintable() or char in _INVISIBLE:
            return f"{what} {shown_repr(value)} holds an invisible or control character ({_describe(char)})"
    if unicodedata.normalize("NFC", value) != value:
        return f"{what} {value!r} is not NFC-normalized (write it as {unicodedata.normalize('NFC', value)!r})"
    return None


def name_problem(name: object, kind: str, *, underscore_first: bool = False) -> str | None:
    """Why ``name`` is not a valid name of a ``kind`` (dataset, principal...), or None."""
    problem = text_problem(name, f"{kind} name")
    if problem is not None:
        return problem
    assert isinstance(name, str)
    if len(name) > MAX_NAME_LENGTH:
        return f"{kind} name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
    for char in name:
        category = unicodedata.category(char)
        if char.isspace():
            return f"{kind} name {name!r} holds whitespace ({_describe(char)})"
        if category[0] not in "LMN" and char not in _PUNCTUATION:
            return f"{kind} name {name!r} holds {_describe(char)}, which is not a letter, digit, '_', '.' or '-'"
    first = unicodedata.category(name[0])[0]
    if first not in "LN" and not (underscore_first and name[0] == "_"):
        return f"{kind} name {name!r} must start with {_FIRST}"
    return None


# A principal's id (``p_`` and 16 hex digits): commands take a principal by id or by name, so a name of
# this shape could stand for another principal (``principal disable p_…`` reaching the wrong one).
_PRINCIPAL_ID = re.compile(r"p_[0-9a-f]{16}")


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid name for a ``kind``, else ``InputError`` naming the problem."""
    problem = name_problem(name, kind)
    if problem is not None:
        raise InputError(problem, hint=f"use {_ALLOWED}")
    if kind == "principal" and _PRINCIPAL_ID.fullmatch(name):
        raise InputError(
            f"principal name {name!r} has the shape of a principal id: commands that take a principal by id "
            "or by name could not tell them apart",
            hint="choose a name that is not 'p_' followed by 16 hex digits",
        )
    return name


def _fold_case(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


@functools.cache
def _prototypes() -> dict[str, str]:
    """Character -> the prototype it is confusable with (TR39 skeleton mapping), from the package's data."""
    from confusable_homoglyphs.confusables import confusables_data

    def clean(text: str) -> str:
        # The data wraps right-to-left characters in direction marks, which are not part of the glyph.
        return "".join(c for c in text if unicodedata.category(c) != "Cf")

    # A character confusable with exactly one other is mapped to it; a prototype lists all of its
    # look-alikes. Two characters listing only each other are mapped to the smaller one, so the mapping
    # has no cycles.
    single: dict[str, str] = {}
    for key, glyphs in confusables_data.items():
        source = clean(key)
        if len(source) != 1 or len(glyphs) != 1:
            continue
        target = clean(glyphs[0]["c"])
        if target and target != source:
            single[source] = target
    table: dict[str, str] = {}
    for source, target in single.items():
        if single.get(target) == source:
            target = min(source, target)
        if target != source:
            table[source] = target
    return table


def skeleton(text: str) -> str:
    """The confusable skeleton of ``text`` (TR39: NFD, map each character to its prototype, NFD)."""
    table = _prototypes()
    out = unicodedata.normalize("NFD", text)
    for _ in range(3):  # prototypes of prototypes: the data has short chains
        mapped = unicodedata.normalize("NFD", "".join(table.get(c, c) for c in out))
        if mapped == out:
            break
        out = mapped
    return out


def name_keys(name: str) -> frozenset[str]:
    """The forms under which ``name`` must be unique: case-folded, confusable-folded, and both."""
    folded = _fold_case(name)
    return frozenset(
        {folded, skeleton(name), skeleton(folded), _fold_case(skeleton(name)), _fold_case(skeleton(folded))}
    )


def same_name(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are the same name to a reader (case or confusable characters aside)."""
    return bool(name_keys(a) & name_keys(b))


def clashing_name(name: str, existing: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The first of ``existing`` that is the same name as ``name`` (see :func:`same_name`), or None."""
    keys = name_keys(name)
    for other in sorted(existing):
        if keys & name_keys(other):
            return other
    return None
