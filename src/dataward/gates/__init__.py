"""Poisoning-aware validation gates: featurizers, detectors and verdicts. Pure computation.

``scan(baseline, contribution, schema)`` is the whole gate as one library call.

The names below load on first use (PEP 562): importing one light module of the package (its policy, its
report's shape) must not pay for scikit-learn and every detector, which ``scan`` needs and a command
that only reads a policy or an access review does not.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataward.gates.policy import GatePolicy
    from dataward.gates.report import GateReport
    from dataward.gates.scanning import scan

_HOMES = {
    "GatePolicy": "dataward.gates.policy",
    "GateReport": "dataward.gates.report",
    "scan": "dataward.gates.scanning",
}

__all__ = ["GatePolicy", "GateReport", "scan"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
