"""Benign shifts: clean, correctly labelled contributions that differ from the trusted baseline in
one realistic way (a one-class source, a new topic, a new sensor, a recalibration, a class-prior
change, a new language register, duplicates of trusted records, a larger-than-usual batch).

A gate may send any of them to review, with an explanation of what moved; it must never block one.
``TUNING`` may be looked at while tuning the gate; ``HELDOUT`` (``benchmarks/shifts/heldout.py``) is
never tuned on. ``benign_situations(seed, size)`` builds them, for the benchmark and for tests.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.shifts import heldout, tuning
from benchmarks.shifts.base import KINDS, SIZES, Situation, check_size
from dataward.domain.errors import InputError

TUNING: dict[str, Callable[..., Situation]] = dict(tuning.SITUATIONS)
HELDOUT: dict[str, Callable[..., Situation]] = dict(heldout.SITUATIONS)
GROUPS = {"tuning": TUNING, "heldout": HELDOUT}


def build(name: str, seed: int = 0, size: str = "full") -> Situation:
    """One situation by name (a key of ``TUNING`` or ``HELDOUT``)."""
    check_size(size)
    for situations in GROUPS.values():
        if name in situations:
            return situations[name](seed, size)
    known = ", ".join([*TUNING, *HELDOUT])
    raise InputError(f"unknown benign situation {name!r}", hint=f"use one of: {known}")


def benign_situations(seed: int = 0, size: str = "small", group: str = "all") -> list[Situation]:
    """Every benign situation of ``group`` (``tuning``, ``heldout`` or ``all``), built with ``seed``.

    ``size="small"`` cuts baselines and contributions (keeping what makes each situation) so that a
    test can scan all of them in seconds; ``size="full"`` is what the benchmark reports.
    """
    check_size(size)
    if group != "all" and group not in GROUPS:
        raise InputError(f"unknown situation group {group!r}", hint="use tuning, heldout or all")
    names = [*TUNING, *HELDOUT] if group == "all" else list(GROUPS[group])
    return [build(name, seed, size) for name in names]


__all__ = ["GROUPS", "HELDOUT", "KINDS", "SIZES", "TUNING", "Situation", "benign_situations", "build"]
