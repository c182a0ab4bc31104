"""Fits on the trusted records are done once per process, and a reused fit is the fit, bit for bit."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from dataward.gates import scan
from dataward.gates.fit_memo import MEMO, FitMemo, fit_key
from tests.gates.conftest import flip_labels

DETECTORS = ["label_consistency", "outliers"]


def _report(baseline, contribution, schema, seed: int = 0, options: dict | None = None) -> dict:
    policy = {"detectors": DETECTORS, "seed": seed, "options": options or {}}
    report = scan(baseline, contribution, schema, policy=policy)
    out = json.loads(json.dumps(report.to_dict()))
    out.pop("timings", None)
    for detector in out["detectors"].values():
        detector.pop("seconds", None)
    return out


@pytest.fixture(scope="module")
def first_scan_fits(digits) -> list:
    """What a scan of the digits' baseline and contribution leaves in an empty store: the fits the tests
    below start from. It is scanned once for the module; each test puts these same fits, in the same
    order, into an emptied store (``_after_the_first_scan``), as the scan itself would have left it.
    Stored fits are read-only down to their models (test below), so no test can change what the next reads."""
    baseline, contribution, schema = digits
    MEMO.clear()
    _report(baseline, contribution, schema)
    return list(MEMO._fits.items())


def _after_the_first_scan(fits: list) -> None:
    MEMO.clear()
    for key, (value, weight) in fits:
        MEMO.get_or_fit(key, lambda value=value: value, lambda _, weight=weight: weight)
    assert list(MEMO._fits) == [key for key, _ in fits]


def test_a_second_scan_against_the_same_records_reuses_the_fits_and_reports_what_a_fresh_process_would(
    digits, first_scan_fits
):
    baseline, contribution, schema = digits
    poisoned, _ = flip_labels(contribution, 0.05, 10)
    _after_the_first_scan(first_scan_fits)
    hits = MEMO.hits
    reused = _report(baseline, poisoned, schema)
    assert MEMO.hits > hits, "the second scan fitted its forests and probes again"
    MEMO.clear()
    misses = MEMO.misses
    fresh = _report(baseline, poisoned, schema)
    assert MEMO.misses > misses
    assert reused == fresh


@pytest.mark.parametrize("change", ["trusted-records", "trusted-labels", "seed", "probe-folds", "probe-max-train"])
def test_other_trusted_records_another_seed_or_other_options_are_fitted_anew(digits, first_scan_fits, change):
    baseline, contribution, schema = digits
    other, seed, options = baseline, 0, {}
    if change == "trusted-records":
        # The same number of records and features, other values: only the bytes tell them apart.
        other = baseline.copy()
        features = [c for c in other.columns if c != "label"]
        other[features] = other[features] + np.random.default_rng(3).integers(0, 2, (len(other), len(features)))
    elif change == "trusted-labels":
        other, _ = flip_labels(baseline, 0.05, 10, seed=4)
    elif change == "seed":
        seed = 1
    elif change == "probe-folds":
        options = {"label_consistency": {"folds": 3}}
    else:
        options = {"label_consistency": {"probe_max_train": 300}}
    _after_the_first_scan(first_scan_fits)
    misses = MEMO.misses
    after_the_first = _report(other, contribution, schema, seed=seed, options=options)
    assert MEMO.misses > misses
    MEMO.clear()
    assert after_the_first == _report(other, contribution, schema, seed=seed, options=options)


def test_every_array_of_a_stored_fit_is_read_only_down_to_the_models(first_scan_fits):
    _after_the_first_scan(first_scan_fits)
    stored = [value for value, _ in MEMO._fits.values()]
    probes = [fit for fit in stored if hasattr(fit, "models")]
    forests = [fit for fit in stored if isinstance(fit, tuple)]
    assert probes and forests
    for probe in probes:
        assert not probe.margins.flags.writeable and not probe.log_proba.flags.writeable
        for model in probe.models:
            assert not model.model.coef_.flags.writeable and not model.scaler.mean_.flags.writeable
    for _forest, calibration in forests:
        assert not calibration.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        probes[0].margins[0] = 0.0


def test_stored_arrays_cannot_be_written_into():
    memo = FitMemo()
    fitted = memo.get_or_fit(b"k", lambda: (np.zeros(3), {"calibration": np.ones(2)}), lambda v: 40)
    with pytest.raises(ValueError, match="read-only"):
        fitted[0][0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        fitted[1]["calibration"][:] = 0.0
    assert memo.get_or_fit(b"k", lambda: pytest.fail("fitted again"), lambda v: 40) is fitted


def test_the_least_recently_used_fits_are_dropped_beyond_the_budget():
    memo = FitMemo(budget_bytes=100)
    calls: list[str] = []

    def fit(name: str):
        return lambda: calls.append(name) or name

    memo.get_or_fit(b"a", fit("a"), lambda v: 40)
    memo.get_or_fit(b"b", fit("b"), lambda v: 40)
    memo.get_or_fit(b"a", fit("a"), lambda v: 40)  # a is now the most recently used
    memo.get_or_fit(b"c", fit("c"), lambda v: 40)  # 120 bytes: b goes
    assert calls == ["a", "b", "c"]
    memo.get_or_fit(b"a", fit("a"), lambda v: 40)
    memo.get_or_fit(b"b", fit("b"), lambda v: 40)
    assert calls == ["a", "b", "c", "b"]
    memo.get_or_fit(b"huge", fit("huge"), lambda v: 101)
    assert len(memo) <= 2 and b"huge" not in memo._fits, "a fit heavier than the budget was stored"


def test_threads_asking_for_one_fit_all_get_it():
    memo = FitMemo()
    results: list[object] = []

    def ask() -> None:
        results.append(memo.get_or_fit(b"k", lambda: ("fit",), lambda v: 8))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [("fit",)] * 8
    assert len(memo) == 1


def test_keys_tell_every_input_apart():
    ints = np.arange(4, dtype=np.int32)
    assert fit_key("k", ints) != fit_key("k", ints.view(np.int64)), "same bytes, another dtype"
    assert fit_key("k", ints) != fit_key("k", ints.reshape(2, 2)), "same bytes, another shape"
    assert fit_key("k", "ab", "c") != fit_key("k", "a", "bc"), "parts run together"
    assert fit_key("k", ints, 1) != fit_key("k", ints, 2)
    assert fit_key("k", ints) != fit_key("j", ints)
    assert fit_key("k", ints[::2]) == fit_key("k", np.array([0, 2], dtype=np.int32)), "strided views hash by value"
    assert fit_key("k", ints) == fit_key("k", ints.copy())
    assert fit_key("k", 1) != fit_key("k", "1") != fit_key("k", True)
    assert fit_key("k", np.int64(3)) == fit_key("k", 3)


@pytest.mark.parametrize(
    "part",
    [[np.zeros(3)], {"a": 1}, np.array(["a", "b"], dtype=object), (1, 2)],
    ids=["list", "dict", "objects", "tuple"],
)
def test_a_part_whose_repr_or_bytes_leave_out_its_values_is_refused(part):
    with pytest.raises(TypeError, match="fit_key"):
        fit_key("k", part)
