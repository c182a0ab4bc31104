""" "Did you mean ..." for a dataset name that names nothing: the close names among the datasets the
caller may read (``datasets``), never one hidden from them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from dataward.domain.errors import DatawardError, NotFound


def close_names(name: str, known: Iterable[str], *, limit: int = 3) -> list[str]:
    """Names in ``known`` that ``name`` is probably a typo of, closest first (case aside)."""
    by_folded: dict[str, str] = {}
    for candidate in known:
        by_folded.setdefault(candidate.casefold(), candidate)
    found = difflib.get_close_matches(name.casefold(), list(by_folded), n=limit, cutoff=0.6)
    return [by_folded[f] for f in found]


def with_suggestion(exc: DatawardError, visible: Iterable[str]) -> DatawardError:
    """``exc`` with a "did you mean" hint when it is a missing dataset and a ``visible`` name is close."""
    name = exc.details.get("dataset") if isinstance(exc, NotFound) else None
    if not isinstance(name, str):
        return exc
    close = close_names(name, visible)
    if close:
        said = " or ".join(repr(c) for c in close)
        exc.hint = f"did you mean {said}? (list them with `dataward datasets`)"
        exc.details["did_you_mean"] = close
    return exc
