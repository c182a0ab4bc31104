"""Sentences built from words known only at run time: a dataset kind, a column name, a type."""

from __future__ import annotations

_U_READ_YOU = ("uni", "use", "usu", "uti", "ura", "uri", "ui")
"""How words whose ``u`` reads "you" begin ("a unique", "a user", "a uint8"); other ``u`` words take "an"
("an unknown", "an unlabelled")."""


def a_or_an(word: str) -> str:
    """``word`` after its indefinite article: "an instruction", "a chat", "an 'outcome'", "an int".

    The article follows the first letter, quotes and other marks before it set aside: "an" before a
    vowel, except a ``u`` that reads "you" (``_U_READ_YOU``). Words whose sound their spelling hides
    ("hour", "one") are not told apart: the words given here are names the code makes or reads, not prose.
    """
    letters = word.lstrip("'\"`([{<").casefold()
    vowel = letters[:1] in ("a", "e", "i", "o") or (letters[:1] == "u" and not letters.startswith(_U_READ_YOU))
    return f"{'an' if vowel else 'a'} {word}"


__all__ = ["a_or_an"]
