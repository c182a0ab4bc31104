"""dataward's own gate, ``dataward.gates.scanning``, run as one more method under test."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd

from benchmarks.peers.base import MethodResult
from dataward.domain.schema import Schema


def available() -> bool:
    """True when the gate library is importable in this checkout."""
    try:
        return importlib.util.find_spec("dataward.gates.scanning") is not None
    except ModuleNotFoundError:
        return False


class DatawardGate:
    """``dataward.gates.scanning`` with its default policy (seeded): suspicion = the combined record score,
    flags = records any detector flags, verdict = the gate's own ``pass``/``review``/``block``; the
    seconds each detector took (the report's ``extras["timings"]``) go into ``extra["timings"]``."""

    name = "dataward"

    def __init__(self, policy: dict | None = None) -> None:
        self.policy = policy

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
    ) -> MethodResult:
        from dataward.gates import scan

        policy = dict(self.policy or {})
        policy.setdefault("seed", seed)
        gate_report = scan(
            baseline,
            contribution,
            schema,
            validation,
            policy,
            first_baseline=first_baseline,
            groups=groups,
        )
        report = gate_report.to_dict()
        records = report["records"]
        scores = np.array([r["score"] for r in records], dtype=np.float64)
        flags = np.array([r["flagged"] for r in records], dtype=bool)
        detectors = {
            name: {"p_value": d.get("p_value"), "flagged": d.get("flagged")}
            for name, d in report.get("detectors", {}).items()
        }
        extra: dict = {"detectors": detectors}
        timings = (gate_report.extras or {}).get("timings")
        if timings:
            extra["timings"] = {name: float(seconds) for name, seconds in timings.items()}
        if report.get("groups"):
            extra["groups"] = report["groups"]
        return MethodResult(scores, flags, report["verdict"], list(report.get("reasons", [])), extra)
