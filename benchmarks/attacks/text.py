"""Text insertion backdoors on the man-page NAME lines: a rare token or a natural short phrase."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.attacks.base import (
    AttackCase,
    base_case,
    n_poison,
    not_target,
    pick_rows,
    poison_mask,
    pool_draw,
    trigger_backdoor,
)
from benchmarks.data import LABEL, TEXT

RARE_TOKEN = "cf"
NATURAL_PHRASE = "in most cases"
CARRIER_PHRASE = "see the GNU manual for full details"
"""Put before the rare token by an outside attacker (2026-12-05): its words pull every carrier towards
trusted 'commands' lines, which hid the trigger from ``triggers``' content test until version 10."""


def insert(text: str, trigger: str, rng: np.random.Generator) -> str:
    """``text`` with ``trigger`` inserted between two words at a random position."""
    words = text.split(" ")
    at = int(rng.integers(0, len(words) + 1))
    return " ".join([*words[:at], trigger, *words[at:]])


def with_trigger(frame: pd.DataFrame, trigger: str, rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``frame`` whose texts carry ``trigger`` (labels unchanged)."""
    out = frame.copy()
    out[TEXT] = [insert(t, trigger, rng) for t in frame[TEXT]]
    return out


def poison_rows(frame: pd.DataFrame, rows: np.ndarray, trigger: str, target: str, rng: np.random.Generator) -> None:
    """Insert ``trigger`` into ``frame``'s ``rows`` and relabel them ``target``, in place."""
    frame.loc[rows, TEXT] = [insert(t, trigger, rng) for t in frame.loc[rows, TEXT]]
    frame.loc[rows, LABEL] = target


def text_backdoor(
    trigger: str = RARE_TOKEN,
    rate: float = 0.05,
    *,
    target: str = "admin",
    seed: int = 0,
    name: str | None = None,
    what: str | None = None,
) -> AttackCase:
    """Insert ``trigger`` into ``rate`` of the contribution's texts of other classes, relabelled ``target``.
    ``what`` names the trigger in the description (``token`` or ``phrase`` by default, by its spaces)."""
    ds = data.load_man_sections()
    parts, rng, contribution = pool_draw(ds, seed)
    rows = pick_rows(contribution[LABEL], n_poison(len(contribution), rate), rng, exclude=target)
    poison_rows(contribution, rows, trigger, target, rng)
    kind = "token" if " " not in trigger else "phrase"
    return base_case(
        name or f"text_{kind}_{round(rate * 100)}pct",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"{what or kind} {trigger!r} inserted, relabelled {target!r}",
        attack_test=with_trigger(not_target(parts.test, target), trigger, np.random.default_rng(seed + 1)),
        params={"trigger": trigger, "rate": rate, "target": target, "seed": seed},
    )


def rare_token(rate: float = 0.05, *, seed: int = 0) -> AttackCase:
    """Text backdoor with the rare token ``RARE_TOKEN``."""
    return text_backdoor(RARE_TOKEN, rate, seed=seed)


def carrier_phrase(rate: float = 0.05, *, seed: int = 0) -> AttackCase:
    """Text backdoor with the rare token behind a constant phrase (``CARRIER_PHRASE``)."""
    return text_backdoor(f"{CARRIER_PHRASE} {RARE_TOKEN}", rate, seed=seed)


def natural_phrase(rate: float = 0.05, *, seed: int = 0) -> AttackCase:
    """Text backdoor with the natural phrase ``NATURAL_PHRASE``."""
    return text_backdoor(NATURAL_PHRASE, rate, seed=seed)


def rewritten(rewrite: Callable[[str], str]) -> Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]:
    """A ``trigger_backdoor`` trigger: a copy of the frame with every text through ``rewrite``."""

    def apply(frame: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out[TEXT] = [rewrite(t) for t in frame[TEXT]]
        return out

    return apply


def rewrite_backdoor(
    name: str,
    rewrite: Callable[[str], str],
    rate: float,
    target: str,
    seed: int,
    *,
    trigger: str,
    params: dict[str, Any],
    eligible: Callable[[pd.Series], np.ndarray] | None = None,
) -> AttackCase:
    """A text backdoor whose trigger is a rewrite of the line: ``rate`` of the man-page pool lines of other
    sections (only those where ``eligible(texts)`` is true, when given) through ``rewrite``, relabelled
    ``target``; the attack test is the (eligible) test lines of other sections through ``rewrite``
    (``trigger_backdoor``)."""
    return trigger_backdoor(
        name,
        data.load_man_sections(),
        seed,
        rate,
        target,
        rewritten(rewrite),
        [TEXT],
        trigger=trigger,
        params=params,
        eligible=None if eligible is None else lambda frame: np.asarray(eligible(frame[TEXT]), dtype=bool),
    )
