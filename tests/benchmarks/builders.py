"""What the held-out sets' builder tests compare with (the pool a situation or an attack drew, records as
tuples), and the checks every held-out set's tests share."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks import attack_seeds, attacks, data, shifts
from benchmarks.attacks.base import pool_draw
from benchmarks.shifts.base import EXTRA_KINDS, HELDOUT3_KINDS, HELDOUT4_KINDS, KINDS, SET_GROUPS, sized_pool
from dataward.domain.errors import InputError


def record_keys(frame: pd.DataFrame) -> list[tuple]:
    """Each record of ``frame`` as a tuple of its values, in order."""
    return list(map(tuple, frame.itertuples(index=False)))


def drawn_pool(situation: shifts.Situation, seed: int = 0) -> pd.DataFrame:
    """The pool records a situation drew (small), in the order it drew them."""
    _, _, pool = sized_pool(data.load(situation.dataset), seed, "small")
    return pool


def drawn_attack_pool(case: attacks.AttackCase, seed: int = 0) -> pd.DataFrame:
    """The pool in the order the attack drew it (its first use of its seed's generator): row ``i`` is what row
    ``i`` of the contribution was before it was poisoned."""
    _, _, pool = pool_draw(data.load(case.dataset), seed)
    return pool


def check_never_tuned_doc(module: ModuleType, written: str) -> None:
    """``module``'s docstring says it is never tuned on, the day it was ``written``, and that every case was
    committed before any gate ran on it."""
    assert "NEVER TUNED ON" in module.__doc__ and written in module.__doc__
    assert "committed before any gate" in " ".join(module.__doc__.split())


def check_situation_set(
    small: dict[str, shifts.Situation], group: str, module: ModuleType, written: str, most: int
) -> None:
    """The checks every held-out benign set passes. ``small`` is ``group`` (``shifts.HELDOUT9`` for
    ``heldout9``) built small at seed 0: the group in order, no name in an earlier group (those before it in
    ``shifts.GROUPS``), the module's docstring (``check_never_tuned_doc``); every situation of the group and a
    known kind, with its dataset's columns and classes, at most 600 baseline records and 1 to ``most``
    contributed, no poison, a description, the same when built again at seed 0 and another at seed 1."""
    situations = shifts.GROUPS[group]
    assert situations is getattr(shifts, group.upper()) and group in SET_GROUPS
    assert list(small) == list(situations)
    for earlier in list(shifts.GROUPS)[: list(shifts.GROUPS).index(group)]:
        assert set(situations).isdisjoint(shifts.GROUPS[earlier]), earlier
    check_never_tuned_doc(module, written)
    assert {s.group for s in small.values()} == {group}
    assert {s.kind for s in small.values()} <= {*KINDS, *EXTRA_KINDS, *HELDOUT3_KINDS, *HELDOUT4_KINDS}
    for name, s in small.items():
        columns = [c.name for c in s.schema.inputs] + [s.schema.label]
        for frame in (s.baseline, s.validation, s.contribution):
            assert list(frame.columns) == columns, name
        assert set(s.contribution[data.LABEL]) <= set(data.load(s.dataset).classes), name
        assert len(s.baseline) <= 600 and 0 < len(s.contribution) <= most, name
        assert not s.as_case().poison.any() and s.description, name
        pd.testing.assert_frame_equal(shifts.build(name, 0, "small").contribution, s.contribution)
        other_seed = shifts.build(name, 1, "small").contribution
        assert not other_seed.equals(s.contribution), name


def check_attack_set(
    cases: dict[str, attacks.AttackCase],
    group: str,
    module: ModuleType,
    written: str,
    build: Callable[..., Any],
    modalities: set[str],
) -> None:
    """The checks every held-out attack set passes. ``cases`` is ``group``'s attacks built at seed 0: no name in
    an earlier set (those before it in ``attack_seeds.SETS``), the module's docstring (``check_never_tuned_doc``)
    naming every case, the set's ``modalities``; every case named by its key, with some poison and only its
    dataset's classes, its contribution the drawn pool (``drawn_attack_pool``) changed exactly at the poison,
    the same when built again at seed 0 and another at seed 1, a target and an attack test; an unknown name
    refused."""
    names = list(cases)
    for earlier in list(attack_seeds.SETS)[: list(attack_seeds.SETS).index(group)]:
        assert set(names).isdisjoint(attack_seeds.SETS[earlier][0]), earlier
    check_never_tuned_doc(module, written)
    assert {case.modality for case in cases.values()} == modalities
    for name, case in cases.items():
        assert name in module.__doc__  # the docstring says what each plants
        assert case.name == name and case.poison.sum() > 0, name
        assert set(case.contribution[data.LABEL]) <= set(data.load(case.dataset).classes)
        before = drawn_attack_pool(case)
        assert len(case.contribution) == len(before)
        changed = np.array([a != b for a, b in zip(record_keys(case.contribution), record_keys(before), strict=True)])
        np.testing.assert_array_equal(changed, case.poison, err_msg=name)
        again = build(name, seed=0)
        pd.testing.assert_frame_equal(again.contribution, case.contribution)
        np.testing.assert_array_equal(again.poison, case.poison)
        other = build(name, seed=1)
        assert not np.array_equal(other.poison, case.poison) or not other.contribution.equals(case.contribution)
        assert case.target is not None and len(case.attack_test) > 0
    with pytest.raises(InputError, match="held-out attack"):
        build("nope")
