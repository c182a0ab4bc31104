"""``gate.verdict_sources`` names exactly what gave ``gate.verdict`` its reasons.

The self-test compares a canary copy's sources with the clean copy's to say whether the canary was seen; the
two functions are written apart, so they are held together here over many drawn detector results.
"""

from __future__ import annotations

import numpy as np

from dataward.gates.base import DetectorResult, Evidence, Finding, registered
from dataward.gates.gate import FLAGGED_RECORDS, verdict, verdict_sources
from dataward.gates.policy import GatePolicy

NAMES = ["label_consistency", "triggers", "backdoor", "duplicates", "clean_validation", "drift", "outliers"]
P_VALUES = [1.0, 0.5, 0.02, 5e-3, 1e-3, 2e-4, 1e-7]


def _drawn(rng: np.random.Generator, n: int) -> dict[str, DetectorResult]:
    available = registered()
    results = {}
    for name in rng.choice(NAMES, size=int(rng.integers(1, len(NAMES) + 1)), replace=False):
        poisoning = available[name].evidence is Evidence.POISONING
        flagged = rng.random(n) < rng.choice([0.0, 0.01, 0.1])
        block = poisoning and rng.random() < 0.15
        findings = [Finding(name, 1.0, "a class moved")] if rng.random() < 0.2 else []
        results[name] = DetectorResult(
            name,
            "1",
            np.where(flagged, 1e-4, 0.5),
            flagged,
            p_value=float(rng.choice(P_VALUES)),
            block=block,
            block_reason="planted evidence" if block else None,
            n_calibration=int(rng.choice([0, 100, 1000])),
            alpha=float(rng.choice([0.01, 0.0033])) if rng.random() < 0.7 else None,
            contribution_findings=findings,
        )
    return results


def test_every_reason_of_a_verdict_has_its_source_and_every_source_a_reason() -> None:
    rng = np.random.default_rng(0)
    verdicts = set()
    for _ in range(400):
        # block_p as loose as review_p too: a p-value then blocks that the m-detector review test would not take.
        policy = GatePolicy(block_p=float(rng.choice([1e-6, 1e-2])))
        n = int(rng.integers(20, 300))
        results = _drawn(rng, n)
        flagged = np.zeros(n, bool)
        for r in results.values():
            flagged |= r.flagged
        said, reasons, _ = verdict(results, flagged, policy)
        sources = verdict_sources(results, flagged, policy)
        verdicts.add(said)
        assert bool(sources) == (said != "pass"), (said, reasons, sources)
        prefixes = {reason.split(":", 1)[0] for reason in reasons}
        assert sources - {FLAGGED_RECORDS} == prefixes & set(results), (reasons, sources)
        union = any("records flagged where" in r and r.split(":", 1)[0] not in results for r in reasons)
        assert (FLAGGED_RECORDS in sources) == union, (reasons, sources)
    assert verdicts == {"pass", "review", "block"}  # every branch drawn
