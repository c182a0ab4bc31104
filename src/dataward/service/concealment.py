"""Hidden datasets answer as missing ones.

A caller who may not read a dataset (``dataset.read`` on it, or ``ledger.read`` on the whole ward,
which names every dataset anyway) is told about it exactly what it is told about a dataset that does
not exist: the same ``not_found`` and the same message. A refusal on a dataset the caller can see
stays a refusal (``access_denied``), naming what is missing. Either way the refusal is recorded as
``access.denied``.

``use_case`` applies this to every refusal of a use case authorized on one dataset; a command that
names a dataset by another name than its scope's (a clean validation set is authorized on the
dataset it guards) says which name the caller used with :func:`remember_named`, so that the answer
names that one and never the guarded dataset; one that names a contribution says what a missing one
would be told with :func:`remember_missing` (``no contribution 'X#N'``, whether or not dataset X exists).
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import Any

from dataward.access import authorize
from dataward.access.roles import Action, Scope, ScopeKind
from dataward.domain.errors import NotFound

_NAMED: ContextVar[tuple[frozenset[Scope], NotFound] | None] = ContextVar("dataward_named_dataset", default=None)


def missing_dataset(name: str) -> NotFound:
    """What a caller is told of a dataset ``name`` that does not exist, or that it may not see."""
    # The hint is the same whether the dataset exists or is hidden, and says both: a user with no role on
    # a dataset is told where to look without learning whether it exists.
    return NotFound(
        f"no dataset named {name!r}",
        hint="list the ones you can see with `dataward datasets`; a dataset you have no role on is not shown "
        "(ask its owner for a role)",
        dataset=name,
    )


def missing_contribution(ref: str) -> NotFound:
    """What a caller is told of a contribution ``ref`` that does not exist, or that it may not see."""
    return NotFound(
        f"no contribution {ref!r}",
        hint="list them with `dataward contributions DATASET`; the contributions of a dataset you have no role "
        "on are not shown (ask its owner for a role)",
    )


def remember_named(name: str, scope: Scope) -> None:
    """Note that the caller named dataset ``name``, whose reads are authorized on ``scope``."""
    _NAMED.set((frozenset({scope}), missing_dataset(name)))


def remember_missing(scopes: frozenset[Scope], missing: NotFound) -> None:
    """Note that what the caller named lies in the dataset of ``scopes`` (those a use case on it may be
    authorized on), and what it would be told were it missing (``missing``): a contribution named
    ``DATASET#N`` is ``no contribution ...``."""
    _NAMED.set((scopes, missing))


def take_named() -> tuple[frozenset[Scope], NotFound] | None:
    """The dataset name noted by :func:`remember_named` since the last use case began, forgotten now:
    each use case takes what was noted for it, and nothing noted for one is used by the next."""
    named = _NAMED.get()
    _NAMED.set(None)
    return named


def sees_dataset(caller: Any, scope: Scope, now: datetime) -> bool:
    """True when ``caller`` may know that the dataset of ``scope`` exists (``datasets`` lists it)."""
    for action, where in ((Action.DATASET_READ, scope), (Action.LEDGER_READ, Scope.ward())):
        if authorize(caller.principal, caller.key, caller.grants, action, where, now).allowed:
            return True
    return False


def shown_instead(
    caller: Any,
    scope: Scope,
    now: datetime,
    missing: NotFound | None = None,
    named: tuple[frozenset[Scope], NotFound] | None = None,
) -> NotFound | None:
    """The not-found answer to give instead of a refusal on ``scope``, or None when the caller may see
    the dataset (or the scope is not one dataset) and the refusal stands. ``missing``: what the caller
    is told when the thing it named does not exist (default: that the dataset does not); ``named``:
    what :func:`take_named` returned when the use case began."""
    if caller is None or scope.kind is not ScopeKind.DATASET or scope.name is None:
        return None
    if sees_dataset(caller, scope, now):
        return None
    if missing is not None:
        return missing
    if named is not None and scope in named[0]:
        return named[1]
    return missing_dataset(scope.name)
