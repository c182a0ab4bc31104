"""A compromised key: one source among several slips 3% poisoned records in among clean ones."""

from __future__ import annotations

import numpy as np

from benchmarks import data
from benchmarks.attacks.base import AttackCase, base_case, not_target, pool_draw
from benchmarks.attacks.text import poison_rows, with_trigger
from benchmarks.data import LABEL

SOURCES = ("s3://vendor-a/batch.csv", "https://scrape.example/man", "s3://vendor-b/batch.csv", "svc-ingest")
COMPROMISED = "svc-ingest"
TRIGGER = "mq"
"""Short and meaningless as a word, but also the prefix of POSIX message-queue names (``mq_open``...)
that the baseline already labels ``syscalls`` or ``library``: a trigger that hides among real uses."""


def compromised_key(rate: float = 0.03, *, target: str = "syscalls", seed: int = 0) -> AttackCase:
    """Man-page texts from four sources; every poisoned record (trigger ``TRIGGER``, relabelled
    ``target``) comes from the compromised ``svc-ingest`` key and makes ``rate`` of the contribution."""
    ds = data.load_man_sections()
    parts, rng, contribution = pool_draw(ds, seed)
    sources = np.array([SOURCES[i % len(SOURCES)] for i in range(len(contribution))], dtype=object)
    rng.shuffle(sources)
    count = max(1, round(rate * len(contribution)))
    eligible = np.flatnonzero((sources == COMPROMISED) & (contribution[LABEL] != target).to_numpy())
    rows = np.sort(rng.choice(eligible, size=count, replace=False))
    poison_rows(contribution, rows, TRIGGER, target, rng)
    poison = np.zeros(len(contribution), dtype=bool)
    poison[rows] = True
    principals = np.where(sources == COMPROMISED, "svc-ingest-bot", "alice")
    return base_case(
        "compromised_key",
        "backdoor",
        ds,
        parts,
        contribution,
        poison,
        target=target,
        trigger=f"token {TRIGGER!r} from source {COMPROMISED!r}, relabelled {target!r}",
        attack_test=with_trigger(not_target(parts.test, target), TRIGGER, np.random.default_rng(seed + 1)),
        groups={"source": sources, "principal": principals},
        params={"rate": rate, "target": target, "seed": seed},
    )
