"""Clean validation records that the contribution holds too.

The clean-validation check measures what the contribution does to held-out accuracy. A validation
record that is also in the batch is not held out: a probe trained with the batch has seen it, so the
check would be judged partly on the batch's own records, and poison placed in both would hide its
harm. Such records are left out of the validation set the check measures on, and the report says how
many (docs/gates.md, "The clean validation set"). That the two sets overlap is a difference, not
evidence of poisoning: a finding for review, never a block.

A record is the same record when its inputs and its label are the same: the gate's own identity of a
record, the 64-bit content hash of its inputs (``hashing.input_hashes``, as ``duplicates`` compares a
batch with the whole baseline) and its label code (a respelled trusted label is that label).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dataward.gates.base import Finding

KIND = "validation_overlap"
"""``evidence["kind"]`` of the finding, so that a reader can tell it from the detector's own."""


@dataclass(frozen=True)
class ValidationOverlap:
    """How many of the validation set's records the contribution holds too (``overlapping``), and
    how many of the contribution's records are those copies (``contribution_records``)."""

    validation_records: int
    overlapping: int
    contribution_records: int

    @property
    def measured_on(self) -> int:
        """Validation records left to measure the contribution's effect on."""
        return self.validation_records - self.overlapping

    @property
    def reason(self) -> str:
        """The finding's sentence, for the verdict's reasons."""
        left = (
            f"they were left out of the clean-validation check, which measured on the other {self.measured_on}"
            if self.measured_on
            else "they were left out of the clean-validation check, and none is left to measure on"
        )
        return (
            f"{self.overlapping} of {self.validation_records} clean validation records are also in the contribution "
            f"({self.contribution_records} of its records, same inputs and label); {left}, so that the batch is not "
            "judged on its own records. Review why the batch holds held-out records"
        )

    def finding(self, detector: str) -> Finding:
        """The contribution-level finding, reported by the detector that measures on the validation set."""
        return Finding(
            detector=detector,
            score=self.overlapping / max(self.validation_records, 1),
            reason=self.reason,
            evidence={
                "kind": KIND,
                "validation_records": self.validation_records,
                "overlapping": self.overlapping,
                "contribution_records": self.contribution_records,
                "measured_on": self.measured_on,
            },
        )


def shared_records(
    validation_hashes: np.ndarray,
    validation_codes: np.ndarray,
    contribution_hashes: np.ndarray,
    contribution_codes: np.ndarray,
) -> tuple[np.ndarray, int]:
    """Which validation records the contribution holds too (a boolean mask over the validation set), and
    how many contribution records are copies of them.

    Records are equal when their input hashes and label codes are; the inputs are compared first, over
    the whole contribution at once, so the labels are compared only for the few records that share
    inputs with a validation record."""
    candidates = np.flatnonzero(np.isin(contribution_hashes, validation_hashes))
    if candidates.shape[0] == 0:
        return np.zeros(validation_hashes.shape[0], dtype=bool), 0
    in_batch = set(zip(contribution_hashes[candidates].tolist(), contribution_codes[candidates].tolist(), strict=True))
    shared = np.fromiter(
        (pair in in_batch for pair in zip(validation_hashes.tolist(), validation_codes.tolist(), strict=True)),
        dtype=bool,
        count=validation_hashes.shape[0],
    )
    pairs = set(zip(validation_hashes[shared].tolist(), validation_codes[shared].tolist(), strict=True))
    copies = sum(
        1
        for pair in zip(contribution_hashes[candidates].tolist(), contribution_codes[candidates].tolist(), strict=True)
        if pair in pairs
    )
    return shared, copies
