"""Benign shifts: clean, correctly labelled contributions that differ from the trusted baseline in
one realistic way (a one-class source, a new topic, a new sensor, a recalibration, a class-prior
change, a new language register, duplicates of trusted records, a larger-than-usual batch).

A gate may send any of them to review, with an explanation of what moved; it must never block one.
``TUNING`` may be looked at while tuning the gate; ``HELDOUT`` (``benchmarks/shifts/heldout.py``),
``HELDOUT2`` (``benchmarks/shifts/heldout2.py``, a second set written blind on 2026-12-02), ``HELDOUT3``
(``benchmarks/shifts/heldout3.py``, a third written blind on 2026-12-05), ``HELDOUT4``
(``benchmarks/shifts/heldout4.py``, a fourth written blind on 2026-12-05), ``HELDOUT5``
(``benchmarks/shifts/heldout5.py``, a fifth written blind on 2026-12-06, images only), ``HELDOUT6``
(``benchmarks/shifts/heldout6.py``, a sixth written blind on 2026-12-06, text and tables only) and
``HELDOUT7`` (``benchmarks/shifts/heldout7.py``, a seventh written blind on 2026-12-06, benign near-copies
among others), ``HELDOUT8`` (``benchmarks/shifts/heldout8.py``, an eighth written blind on 2026-12-07),
``HELDOUT9`` (``benchmarks/shifts/heldout9.py``, a ninth written blind on 2026-12-07) and ``HELDOUT10``
(``benchmarks/shifts/heldout10.py``, a tenth written blind on 2026-12-07) are never tuned on.
``benign_situations(seed, size)`` builds them, for the benchmark and for tests.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.shifts import (
    heldout,
    heldout2,
    heldout3,
    heldout4,
    heldout5,
    heldout6,
    heldout7,
    heldout8,
    heldout9,
    heldout10,
    tuning,
)
from benchmarks.shifts.base import KINDS, SIZES, Situation, check_size
from dataward.domain.errors import InputError

TUNING: dict[str, Callable[..., Situation]] = dict(tuning.SITUATIONS)
HELDOUT: dict[str, Callable[..., Situation]] = dict(heldout.SITUATIONS)
HELDOUT2: dict[str, Callable[..., Situation]] = dict(heldout2.SITUATIONS)
HELDOUT3: dict[str, Callable[..., Situation]] = dict(heldout3.SITUATIONS)
HELDOUT4: dict[str, Callable[..., Situation]] = dict(heldout4.SITUATIONS)
HELDOUT5: dict[str, Callable[..., Situation]] = dict(heldout5.SITUATIONS)
HELDOUT6: dict[str, Callable[..., Situation]] = dict(heldout6.SITUATIONS)
HELDOUT7: dict[str, Callable[..., Situation]] = dict(heldout7.SITUATIONS)
HELDOUT8: dict[str, Callable[..., Situation]] = dict(heldout8.SITUATIONS)
HELDOUT9: dict[str, Callable[..., Situation]] = dict(heldout9.SITUATIONS)
HELDOUT10: dict[str, Callable[..., Situation]] = dict(heldout10.SITUATIONS)
GROUPS = {
    "tuning": TUNING,
    "heldout": HELDOUT,
    "heldout2": HELDOUT2,
    "heldout3": HELDOUT3,
    "heldout4": HELDOUT4,
    "heldout5": HELDOUT5,
    "heldout6": HELDOUT6,
    "heldout7": HELDOUT7,
    "heldout8": HELDOUT8,
    "heldout9": HELDOUT9,
    "heldout10": HELDOUT10,
}


def build(name: str, seed: int = 0, size: str = "full") -> Situation:
    """One situation by name (a key of ``TUNING`` or of a ``HELDOUT`` set, ``HELDOUT`` to ``HELDOUT10``)."""
    check_size(size)
    for situations in GROUPS.values():
        if name in situations:
            return situations[name](seed, size)
    known = ", ".join(name for situations in GROUPS.values() for name in situations)
    raise InputError(f"unknown benign situation {name!r}", hint=f"use one of: {known}")


def benign_situations(seed: int = 0, size: str = "small", group: str = "all") -> list[Situation]:
    """Every benign situation of ``group`` (``tuning``, ``heldout``, ``heldout2``, ``heldout3``, ``heldout4``,
    ``heldout5``, ``heldout6``, ``heldout7``, ``heldout8``, ``heldout9``, ``heldout10`` or ``all``), built with
    ``seed``.

    ``size="small"`` cuts baselines and contributions (keeping what makes each situation) so that a
    test can scan all of them in seconds; ``size="full"`` is what the benchmark reports.
    """
    check_size(size)
    if group != "all" and group not in GROUPS:
        raise InputError(f"unknown situation group {group!r}", hint=f"use {', '.join(GROUPS)} or all")
    names = [n for s in GROUPS.values() for n in s] if group == "all" else list(GROUPS[group])
    return [build(name, seed, size) for name in names]


__all__ = [
    "GROUPS",
    "HELDOUT",
    "HELDOUT2",
    "HELDOUT3",
    "HELDOUT4",
    "HELDOUT5",
    "HELDOUT6",
    "HELDOUT7",
    "HELDOUT8",
    "HELDOUT9",
    "HELDOUT10",
    "KINDS",
    "SIZES",
    "TUNING",
    "Situation",
    "benign_situations",
    "build",
]
