"""What every method under test returns, and the contribution-level rule used for peers.

A method scores each record of a contribution (higher = more suspicious), flags some records by its
own threshold, and decides whether the contribution as a whole is suspicious. dataward decides the
latter itself (its verdict). The peers have no such notion, so the benchmark applies one documented
rule to all of them: the contribution is *detected* when the share of its records the peer flags is
higher than the share of baseline records it flags, by a one-sided Fisher exact test at
``DETECTION_P``. A peer that flags 10% of everything therefore does not "detect" every contribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact

from dataward.domain.errors import InputError
from dataward.domain.schema import ColumnKind, Schema

DETECTION_P = 0.01


@dataclass
class MethodResult:
    """One method's judgement of one contribution."""

    scores: np.ndarray
    """Per contribution record, higher = more suspicious (any scale; only the order matters for AUROC)."""
    flags: np.ndarray
    """Per contribution record, True when the method's own threshold flags it."""
    verdict: str
    """``pass``, ``review`` or ``block`` (peers: ``review`` when detected, else ``pass``)."""
    reasons: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scores = np.nan_to_num(np.asarray(self.scores, dtype=np.float64), nan=0.0)
        self.flags = np.asarray(self.flags, dtype=bool)
        if self.scores.shape != self.flags.shape:
            raise ValueError("scores and flags must have one entry per contribution record")

    @property
    def detected(self) -> bool:
        return self.verdict in ("review", "block")


class Method(Protocol):
    """A defence under test."""

    name: str

    def score(
        self,
        baseline: pd.DataFrame,
        contribution: pd.DataFrame,
        schema: Schema,
        *,
        validation: pd.DataFrame | None = None,
        first_baseline: pd.DataFrame | None = None,
        groups: dict[str, np.ndarray] | None = None,
        seed: int = 0,
    ) -> MethodResult: ...


def modality_of(schema: Schema) -> str:
    """``image``, ``text`` or ``tabular``: the benchmark's datasets each have one kind of input."""
    kinds = {c.kind for c in schema.inputs}
    if ColumnKind.IMAGE in kinds:
        return "image"
    if ColumnKind.TEXT in kinds:
        return "text"
    if kinds <= {ColumnKind.NUMERIC, ColumnKind.CATEGORICAL, ColumnKind.EMBEDDING}:
        return "tabular"
    raise InputError(f"no benchmark modality for column kinds {sorted(kinds)}")


def peer_verdict(contribution_flags: np.ndarray, baseline_flags: np.ndarray) -> tuple[str, list[str]]:
    """The peers' contribution rule: flagged share of the contribution above that of the baseline."""
    a, n = int(contribution_flags.sum()), len(contribution_flags)
    b, m = int(baseline_flags.sum()), len(baseline_flags)
    _, p = fisher_exact([[a, n - a], [b, m - b]], alternative="greater")
    reason = f"{a}/{n} contribution records flagged vs {b}/{m} baseline records (Fisher p={p:.2g})"
    return ("review" if p < DETECTION_P else "pass"), [reason]


def label_codes(*frames: pd.DataFrame, label: str) -> tuple[np.ndarray, list[str]]:
    """Integer label codes over all ``frames`` stacked, and the class names they index."""
    labels = pd.concat([f[label].astype(str) for f in frames], ignore_index=True)
    classes = sorted(labels.unique())
    index = {c: i for i, c in enumerate(classes)}
    return labels.map(index).to_numpy(dtype=np.int64), classes
