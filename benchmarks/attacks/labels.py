"""Label attacks: random flips and targeted flips (one source class relabelled as one target)."""

from __future__ import annotations

import numpy as np

from benchmarks import data
from benchmarks.attacks.base import AttackCase, base_case, n_poison, other_label, pick_rows, pool_draw
from benchmarks.data import LABEL


def random_flips(rate: float = 0.05, *, dataset: str = "digits", seed: int = 0) -> AttackCase:
    """Relabel a random ``rate`` of the contribution with a random other class.

    Label noise with no target: it lowers clean accuracy rather than planting a behaviour, so the
    case has no attack test.
    """
    ds = data.load(dataset)
    parts, rng, contribution = pool_draw(ds, seed)
    rows = pick_rows(contribution[LABEL], n_poison(len(contribution), rate), rng)
    classes = ds.classes
    contribution.loc[rows, LABEL] = [other_label(v, classes, rng) for v in contribution.loc[rows, LABEL]]
    poison = np.zeros(len(contribution), dtype=bool)
    poison[rows] = True
    return base_case(
        f"random_flips_{round(rate * 100)}pct_{dataset}",
        "label_noise",
        ds,
        parts,
        contribution,
        poison,
        trigger=f"{round(rate * 100)}% of labels replaced by a random other class",
        params={"rate": rate, "seed": seed},
    )


def targeted_flips(
    source: str = "8", target: str = "1", share: float = 0.6, *, dataset: str = "digits", seed: int = 0
) -> AttackCase:
    """Relabel ``share`` of the contribution's ``source``-class records as ``target``.

    Success is measured on the clean test records of the source class: the share a model trained
    on the data predicts as the target.
    """
    ds = data.load(dataset)
    parts, rng, contribution = pool_draw(ds, seed)
    candidates = np.flatnonzero((contribution[LABEL] == source).to_numpy())
    count = max(1, round(share * len(candidates)))
    rows = np.sort(rng.choice(candidates, size=count, replace=False))
    contribution.loc[rows, LABEL] = target
    poison = np.zeros(len(contribution), dtype=bool)
    poison[rows] = True
    attack_test = parts.test[parts.test[LABEL] == source].reset_index(drop=True)
    return base_case(
        f"targeted_flips_{dataset}",
        "label_noise",
        ds,
        parts,
        contribution,
        poison,
        target=target,
        trigger=f"class {source!r} relabelled as {target!r}",
        attack_test=attack_test,
        params={"source": source, "target": target, "share": share, "seed": seed},
    )
