"""Records whose label no trusted record carries: named, and queued for a reviewer's decision.

A label no trusted record carries (in any spelling: ``label_spelling`` reads ``BENIGN`` as ``benign``
first) gives the detectors nothing to judge the record's content against: ``label_consistency`` sees no
trusted record of the class and ``drift`` reports the class shares. Such a label is either a mistake (a
typo, ``benigm`` for ``benign``; the wrong column) or a deliberate new class. Neither is evidence of
poisoning, so neither moves the verdict beyond ``review``; but a training pipeline would learn the
label as written, so each such record goes to the review queue, where a reviewer decides it. A
deliberate new class is decided as a group: ``dataward review accept --contribution DATASET#N`` accepts
every pending record of the contribution at once (docs/gates.md, "Labels written differently, and new
labels").

No detector's flags or p-values change: the records are added to the queue (``records.flagged``)
beside the flags, and the report's ``flagged_by`` names ``QUEUED_BY`` for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUEUED_BY = "new_label"
"""The name ``flagged_by`` (and a review item's detectors) gives a record queued for its label."""

MAX_ROWS_NAMED = 20
"""The most file rows a reason names; a longer list ends with how many more there are."""


def unknown_label_mask(trusted_codes: np.ndarray, contribution_codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Per contribution record: whether no trusted record carries its label (label codes, ``0..n_classes``)."""
    trusted = np.bincount(np.asarray(trusted_codes, dtype=np.int64), minlength=n_classes) > 0
    return ~trusted[np.asarray(contribution_codes, dtype=np.int64)]


def rows_text(rows: list[int]) -> str:
    """File rows as a reader types them: ``7``, ``7, 12`` or ``7, 12, ... (30 more)``."""
    shown = ", ".join(str(r) for r in rows[:MAX_ROWS_NAMED])
    more = len(rows) - MAX_ROWS_NAMED
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def record_findings(mask: np.ndarray, labels: np.ndarray, rows: np.ndarray, record_ids: Any) -> list[dict[str, Any]]:
    """One finding per record of ``mask`` (its label ``labels[i]`` as written, file row ``rows[i]``): the
    reason its review item shows."""
    out = []
    for i in np.flatnonzero(mask):
        label = str(labels[i])
        out.append(
            {
                "detector": QUEUED_BY,
                "row": int(rows[i]),
                "record_id": record_ids[i] if record_ids is not None and len(record_ids) else None,
                "score": 1.0,
                "reason": f"label '{label}' is carried by no trusted record: a new class or a mistyped label; "
                "no detector can judge the content against it, so a reviewer decides whether it is meant",
                "evidence": {"label": label},
            }
        )
    return out


def describe(mask: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> str:
    """The verdict's reason for the records of ``mask``: each new label with its file rows, and what a
    reviewer does with them."""
    by_label: dict[str, list[int]] = {}
    for i in np.flatnonzero(mask):
        by_label.setdefault(str(labels[i]), []).append(int(rows[i]))
    parts = [
        f"'{label}' (file row{'s' if len(found) != 1 else ''} {rows_text(sorted(found))})"
        for label, found in sorted(by_label.items(), key=lambda item: (-len(item[1]), item[0]))
    ]
    total = int(mask.sum())
    return (
        f"{total} record{'s' if total != 1 else ''} with a label no trusted record has "
        f"{'waits' if total == 1 else 'wait'} in the review queue: {'; '.join(parts)}. A mistyped label: reject "
        "them and re-submit them labelled as the trusted data is; a new class: accept them as a group "
        "(dataward review accept --contribution DATASET#N --reason ...)"
    )


__all__ = ["MAX_ROWS_NAMED", "QUEUED_BY", "describe", "record_findings", "rows_text", "unknown_label_mask"]
