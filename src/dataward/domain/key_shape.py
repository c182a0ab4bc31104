"""What an API key looks like as text, for the layers that must recognise one where it does not belong
(a URL, a log line, free text the ledger keeps). Issuing and checking keys is ``dataward.access.keys``."""

from __future__ import annotations

import re

KEY_PREFIX = "dw_"
KEY_ID_LENGTH = 8  # 5 random bytes in base32: 40 bits, enough to look keys up, not to guess them
SECRET_LENGTH = 52  # 32 bytes in unpadded base32

FULL_KEY_SHAPE = re.compile(rf"{KEY_PREFIX}([a-z2-7]{{{KEY_ID_LENGTH}}})_[a-z2-7]{{16,}}", re.IGNORECASE)
"""Anything shaped like a whole key (an id and at least part of a secret), in any case: what must
never go where keys leak (a URL, a log line, an error message, the ledger)."""

_SECRET_END = "[aq]"
"""The last character of every secret: 32 bytes are 256 bits, 52 base32 characters carry 260, so the last
one holds a single bit followed by four zero bits (``a`` or ``q``)."""

WRITTEN_KEY = re.compile(
    rf"{KEY_PREFIX}([a-z2-7]{{{KEY_ID_LENGTH}}})_[a-z2-7]{{{SECRET_LENGTH - 1}}}{_SECRET_END}", re.IGNORECASE
)
"""A whole key as issued, written out in free text, even run into the text around it (pasted twice, or
into the next word): a key's id and a secret of a secret's length and ending, so that a name that merely
starts like one (``dw_customer_ordershistory``, a warehouse table in a source URI) is not taken for a key."""

WRITTEN_SECRET = re.compile(rf"(?<![a-z0-9])[a-z2-7]{{{SECRET_LENGTH - 1}}}{_SECRET_END}(?![a-z0-9])", re.IGNORECASE)
"""A key's secret written out alone (apart from its id, or after a space): a key's id is no secret (the
ledger names keys by it), so the secret is the whole key. A word of exactly a secret's length in its
alphabet and ending, which no prose or hex digest is."""

_GAP = r"[\s\u200b-\u200d\u2060\ufeff]"
"""What a paste or a line wrap puts between the characters of a key: white space, and the invisible
characters (zero-width spaces and joiners) that some editors and chat tools insert."""

_SPACED_KEY = re.compile(
    rf"{KEY_PREFIX}((?:{_GAP}*[a-z2-7]){{{KEY_ID_LENGTH}}}){_GAP}*_((?:{_GAP}*[a-z2-7]){{{SECRET_LENGTH - 1}}}"
    rf"{_GAP}*{_SECRET_END})",
    re.IGNORECASE,
)
"""A whole key with white space inside its id or its secret (wrapped at a line's end, grouped for reading).
``dw_``, an id and ``_`` already make a key's shape, which no prose has; the secret's length and ending
are counted without the white space."""

_BASE32_RUN = re.compile(rf"(?<![a-z0-9])[a-z2-7]+(?:{_GAP}+[a-z2-7]+)+(?![a-z0-9])", re.IGNORECASE)
"""Words of a secret's alphabet separated by white space only: where a secret split apart would be."""

_SPLIT_SECRET_DIGITS = 3
"""Digits (2-7) a split secret must hold to be taken for one. A secret is random base32: 6 of its 32
characters are digits, so it holds about ten (fewer than three in about one secret in a thousand)."""


def _split_like_a_secret(words: list[str]) -> bool:
    """Whether ``words`` (together a secret's length and ending) are split the way a secret is: a line
    wrap or a stray space leaves two or three long pieces; grouping for reading leaves pieces of one
    length (three or more), the last maybe shorter. Prose is many words of every length: neither."""
    if len(words) <= 3:
        return True
    size = len(words[0])
    return size >= 3 and all(len(w) == size for w in words[:-1]) and len(words[-1]) <= size


def _split_secret(run: str) -> bool:
    """Whether consecutive words of ``run`` (a match of ``_BASE32_RUN``) make a secret together: exactly
    a secret's length and ending, split as a secret is (``_split_like_a_secret``), with at least
    ``_SPLIT_SECRET_DIGITS`` digits and a word mixing letters and digits (a random secret split leaves
    one; the words and numbers of prose do not)."""
    words = re.split(f"{_GAP}+", run)
    for start in range(len(words)):
        length, end = 0, start
        for end in range(start, len(words)):
            length += len(words[end])
            if length >= SECRET_LENGTH:
                break
        part = words[start : end + 1]
        if length != SECRET_LENGTH or len(part) < 2 or part[-1][-1].lower() not in "aq":
            continue
        if not _split_like_a_secret(part) or sum(ch.isdigit() for w in part for ch in w) < _SPLIT_SECRET_DIGITS:
            continue
        if any(not w.isalpha() and not w.isdigit() for w in part):
            return True
    return False


def written_key(text: str) -> str | None:
    """What of a key ``text`` holds written out: the key's id (``dw_...``, lower case) when a whole key
    is written (``WRITTEN_KEY``, or with white space inside it), ``""`` for a secret alone
    (``WRITTEN_SECRET``, or split by white space), None when neither. The rules free text is held to."""
    if found := WRITTEN_KEY.search(text) or _SPACED_KEY.search(text):
        return KEY_PREFIX + re.sub(f"{_GAP}+", "", found.group(1)).lower()
    if WRITTEN_SECRET.search(text) or any(_split_secret(m.group(0)) for m in _BASE32_RUN.finditer(text)):
        return ""
    return None
