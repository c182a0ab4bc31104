"""Whether promoting a version would take most of the training data away.

A promotion replaces what every later training run reads. A version with no record (the rollback version
of a quarantine that held back every contribution of a dataset, say) or one that leaves out most of the
records of the training version it retires is seldom what the promoter means: the next `export
DATASET@training` gives nothing, or a fraction of the data, and no gate looked at that. Such a promotion is
refused unless the promoter says it is meant (``--accept-shrink``, with a reason), and then recorded so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MOST = 0.5
"""A promotion that leaves out more than this share of the training version's records shrinks it."""


@dataclass(frozen=True)
class Shrink:
    """What a promotion to training would do to the data training reads."""

    version: str
    """``DATASET@vN``, the version promoted."""
    records: int
    """Its records."""
    training: str | None
    """``DATASET@vM``, the training version it would retire (None: the dataset has none)."""
    training_records: int
    """The records of that training version."""
    kept: int
    """How many of those the promoted version holds."""

    @property
    def dropped(self) -> int:
        return self.training_records - self.kept

    def problem(self) -> str | None:
        """Why the promotion needs to be meant (None when it does not): an empty version, or one that
        leaves out most of the training version's records."""
        if self.records == 0:
            instead = f" in place of the {self.training_records} records of {self.training}" if self.training else ""
            return f"{self.version} holds no record: training would read an empty dataset{instead}"
        if self.training is not None and self.training_records and self.dropped > MOST * self.training_records:
            share = round(100 * self.dropped / self.training_records)
            return (
                f"{self.version} leaves out {self.dropped} of the {self.training_records} records of {self.training} "
                f"({share}%), the training version it would retire; it holds {self.records}"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        """As a promotion event records an accepted shrink."""
        return {
            "records": self.records,
            "training": self.training,
            "training_records": self.training_records,
            "kept": self.kept,
        }


__all__ = ["MOST", "Shrink"]
