"""A trusted baseline too small for the detectors to judge a contribution: the report says so plainly and
the verdict is at least review, never a silent pass (docs/gates.md, "A baseline too small to judge")."""

from __future__ import annotations

import pytest

from dataward.domain.errors import InputError
from dataward.gates import scan
from dataward.gates.gate import MIN_TRUSTED_RECORDS
from tests.gates.conftest import flip_labels


def _too_few(reasons: list[str]) -> list[str]:
    return [r for r in reasons if "too few to judge the contribution" in r]


@pytest.mark.parametrize("trusted", [1, 10])
def test_thirty_percent_flips_against_a_tiny_baseline_are_not_passed_silently(wine, trusted: int) -> None:
    baseline, contribution, schema = wine
    poisoned, _ = flip_labels(contribution, 0.3, 3)
    report = scan(baseline.iloc[:trusted], poisoned, schema)
    assert report.mode == "baseline"
    assert report.verdict in ("review", "block"), report.reasons
    (reason,) = _too_few(report.reasons)
    records = "1 record," if trusted == 1 else f"{trusted} records,"
    assert f"the trusted baseline holds only {records}" in reason
    assert f"at least {MIN_TRUSTED_RECORDS}" in reason
    # The detectors that could not run are named; each says why in its own summary.
    skipped = [name for name, d in report.to_dict()["detectors"].items() if (d["summary"] or {}).get("skipped")]
    assert "backdoor" in skipped and "backdoor" in reason
    if trusted == 1:
        assert "label_consistency" in reason


def test_a_clean_batch_against_a_tiny_baseline_is_reviewed_too(wine) -> None:
    """A gate that could not judge says so whatever the batch holds: a pass would vouch for it."""
    baseline, contribution, schema = wine
    report = scan(baseline.iloc[:1], contribution, schema, policy={"detectors": ["duplicates"]})
    assert report.verdict == "review" and _too_few(report.reasons), report.reasons
    alone = scan(baseline.iloc[:1], contribution, schema, policy={"detectors": ["backdoor"]})
    assert alone.verdict == "review" and "no detector could run on it" in _too_few(alone.reasons)[0]


def test_a_baseline_of_the_least_size_is_judged_as_any_other(wine) -> None:
    baseline, contribution, schema = wine
    report = scan(baseline.iloc[:MIN_TRUSTED_RECORDS], contribution, schema, policy={"detectors": ["duplicates"]})
    assert _too_few(report.reasons) == []


def test_an_empty_baseline_is_refused_and_none_is_self_reference_mode(wine) -> None:
    """A filter upstream that kept no trusted record must not turn the scan into self-reference mode,
    which skips the trigger test and passed a poisoned batch with no word said."""
    baseline, contribution, schema = wine
    with pytest.raises(InputError, match="the baseline holds no records") as refused:
        scan(baseline.iloc[:0], contribution, schema, policy={"detectors": ["duplicates"]})
    assert "baseline=None" in refused.value.hint
    report = scan(None, contribution, schema, policy={"detectors": ["duplicates"]})
    assert report.mode == "self-reference" and _too_few(report.reasons) == []
