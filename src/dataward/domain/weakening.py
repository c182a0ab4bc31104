"""One way a new policy is weaker than the one it replaces.

Policies are compared setting by setting (the gate section by :mod:`dataward.gates.policy`, the rest by
:mod:`dataward.access.policy`); each setting that lets more through than before is one
:class:`Weakening`. Setting a policy with any weakening needs an admin and is a ledger event of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Weakening:
    """``field`` (a dotted policy path) went from ``before`` to ``after``; ``what`` says why that is weaker."""

    field: str
    before: Any
    after: Any
    what: str

    def __str__(self) -> str:
        return f"{self.field}: {self.what}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for ledger events and access review rows."""
        return {"field": self.field, "before": self.before, "after": self.after, "what": self.what}
