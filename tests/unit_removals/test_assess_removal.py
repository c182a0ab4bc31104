"""``assess_removal`` on real data: what a removal does to classes, sources and held-out accuracy."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_digits

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.gates.removals import RemovalOptions, assess_removal, removal_features, worse


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 digits: 1,200 baseline records from three 'sources', 597 clean validation records."""
    data = load_digits()
    perm = np.random.default_rng(0).permutation(len(data.target))
    base, val = perm[:1200], perm[1200:]
    return {
        "x": data.data[base],
        "y": data.target[base].astype(str),
        "source": np.array(["scanner-a", "scanner-b", "vendor"])[np.arange(1200) % 3],
        "vx": data.data[val],
        "vy": data.target[val].astype(str),
    }


def _with_validation(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"features": d["x"], "validation_features": d["vx"], "validation_labels": d["vy"]}


def test_a_few_scattered_records_pass(digits: dict[str, np.ndarray]) -> None:
    removed = np.arange(0, 1200, 100)  # 12 records across every class and source
    report = assess_removal(digits["y"], removed, sources=digits["source"], **_with_validation(digits))
    assert report.verdict == "pass" and report.reasons == ()
    assert report.removed == 12 and report.total == 1200 and "12 of the 1200" in report.summary
    overall = report.validation[0]
    assert overall.group is None and abs(overall.drop) <= 0.02
    assert len(report.validation) == 11  # overall plus the ten classes


def test_removing_most_of_one_class_goes_to_review_and_says_what(digits: dict[str, np.ndarray]) -> None:
    sevens = np.flatnonzero(digits["y"] == "7")
    removed = sevens[: int(len(sevens) * 0.8)]
    report = assess_removal(digits["y"], removed, sources=digits["source"])
    assert report.verdict == "review"
    assert any("class '7'" in r and "80%" in r for r in report.reasons), report.reasons
    seven = next(g for g in report.classes if g.key == "7")
    assert seven.removed == len(removed) and seven.share == pytest.approx(0.8, abs=0.01)
    assert report.validation == () and "no clean validation set" in (report.validation_skipped or "")


def test_removing_one_source_goes_to_review(digits: dict[str, np.ndarray]) -> None:
    removed = digits["source"] == "vendor"
    report = assess_removal(digits["y"], removed, sources=digits["source"])
    assert report.verdict == "review"
    assert any("source 'vendor'" in r and "100%" in r for r in report.reasons)
    assert report.balance_change < 0.1  # the vendor covered every class: the balance barely moves


def test_a_marked_class_balance_change_goes_to_review() -> None:
    labels = np.array(["a"] * 500 + ["b"] * 500)
    # 40% of 'a' goes: below the share rule, but the priors move from 50/50 to 37.5/62.5.
    report = assess_removal(labels, np.arange(200), options=RemovalOptions(share_review=0.9))
    assert report.verdict == "review" and "class balance" in report.reasons[0]
    assert report.priors_after["a"] == pytest.approx(300 / 800)


def test_measured_harm_on_the_clean_validation_set_blocks(digits: dict[str, np.ndarray]) -> None:
    removed = np.isin(digits["y"], ["3", "8"])  # every 3 and 8: the probe can no longer recognise them
    report = assess_removal(digits["y"], removed, sources=digits["source"], **_with_validation(digits))
    assert report.verdict == "block"
    assert report.reasons[0].startswith("removal: clean-validation accuracy")
    by_class = {c.group: c for c in report.validation}
    assert by_class["3"].accuracy_without == 0.0 and by_class["3"].p_value < 1e-6
    assert by_class[None].drop > 0.1


def test_a_drop_too_small_to_tell_from_chance_is_review_not_block(digits: dict[str, np.ndarray]) -> None:
    # Nine validation records: losing all five 3s is suggestive (p = 1/32) but not significant at 1%
    # after the correction over overall + two classes.
    removed = np.isin(digits["y"], ["3"])
    pick = np.concatenate([np.flatnonzero(digits["vy"] == "3")[:5], np.flatnonzero(digits["vy"] == "1")[:4]])
    report = assess_removal(
        digits["y"],
        removed,
        features=digits["x"],
        validation_features=digits["vx"][pick],
        validation_labels=digits["vy"][pick],
        options=RemovalOptions(share_review=1.0, min_records=10_000, balance_review=1.0),
    )
    assert report.verdict == "review"
    assert any("too few validation records" in r for r in report.reasons), report.reasons


def test_mask_and_indices_agree_and_to_dict_is_json(digits: dict[str, np.ndarray]) -> None:
    idx = np.arange(10)
    mask = np.zeros(1200, dtype=bool)
    mask[idx] = True
    a, b = assess_removal(digits["y"], idx), assess_removal(digits["y"], mask)
    assert a.to_dict() == b.to_dict()
    assert json.loads(json.dumps(a.to_dict())) == a.to_dict()  # plain JSON types only
    assert worse("pass", "review") == "review" and worse("block", "review") == "block"


def test_bad_input_is_refused_with_a_clear_error(digits: dict[str, np.ndarray]) -> None:
    y = digits["y"]
    with pytest.raises(InputError, match="sources has 3 values"):
        assess_removal(y, [0], sources=["a", "b", "c"])
    with pytest.raises(InputError, match="outside"):
        assess_removal(y, [5000])
    with pytest.raises(InputError, match="mask has 3 values"):
        assess_removal(y, np.array([True, False, True]))
    with pytest.raises(InputError, match="boolean mask or integer"):
        assess_removal(y, [0.5])
    with pytest.raises(InputError, match="columns"):
        assess_removal(
            y, [0], features=digits["x"], validation_features=digits["vx"][:, :5], validation_labels=digits["vy"]
        )
    with pytest.raises(InputError, match="share_review"):
        RemovalOptions(share_review=1.5)


def test_removal_features_share_one_space_fitted_on_the_baseline() -> None:
    schema = Schema.parse("label", ["text:text"])
    texts = [f"ls lists files in directory {i}" for i in range(30)] + [f"open a file number {i}" for i in range(30)]
    labels = ["commands"] * 30 + ["calls"] * 30
    base = pa.table({"text": pa.array(texts, pa.large_string()), "label": labels})
    val = base.slice(0, 10)
    x, vx, none = removal_features(base, val, schema)
    assert none is None
    assert x.shape[0] == 60 and vx.shape == (10, x.shape[1])
    report = assess_removal(
        labels, np.arange(30, 60), features=x, validation_features=vx, validation_labels=labels[:10]
    )
    assert report.verdict in ("review", "block") and any("'calls'" in r for r in report.reasons)


def test_a_rewrite_of_every_record_is_a_replacement_not_the_loss_of_the_dataset(
    digits: dict[str, np.ndarray],
) -> None:
    """A transformation that rewrites every record (rounded pixel values) removes them all and adds their
    rewrites: judged alone, the removal read as the loss of the whole dataset, and blocked on accuracy."""
    everything = np.ones(1200, dtype=bool)
    rewritten = np.round(digits["x"] / 4) * 4
    alone = assess_removal(digits["y"], everything, **_with_validation(digits))
    assert alone.verdict == "block"
    report = assess_removal(
        digits["y"], everything, **_with_validation(digits), added_labels=digits["y"], added_features=rewritten
    )
    assert report.verdict == "pass", report.reasons
    assert report.removed == 1200 and report.balance_change == 0.0
    overall = report.validation[0]
    assert overall.group is None and overall.drop <= 0.02  # per class, a record or two either way


def test_a_replacement_that_drops_a_class_is_still_caught(digits: dict[str, np.ndarray]) -> None:
    """The attacker's replacement: every record of class '3' removed and as many records of other classes
    added back. Counting additions in must not hide the class's loss or the harm it does."""
    threes = digits["y"] == "3"
    others = np.flatnonzero(~threes)[: int(threes.sum())]
    report = assess_removal(
        digits["y"],
        threes,
        **_with_validation(digits),
        added_labels=digits["y"][others],
        added_features=digits["x"][others],
    )
    assert report.verdict == "block"
    assert any("class '3'" in r and "(100%)" in r for r in report.reasons), report.reasons
    assert any("clean-validation accuracy on class '3'" in r and "once they are replaced" in r for r in report.reasons)
    with pytest.raises(InputError, match="added_features has 2 rows for 3 labels"):
        assess_removal(digits["y"], threes, added_labels=["1", "2", "3"], added_features=np.zeros((2, 64)))
