"""Poisoning-aware validation gates: featurizers, detectors and verdicts. Pure computation.

``scan(baseline, contribution, schema)`` is the whole gate as one library call.
"""

from dataward.gates.policy import GatePolicy
from dataward.gates.report import GateReport
from dataward.gates.scan import scan

__all__ = ["GatePolicy", "GateReport", "scan"]
