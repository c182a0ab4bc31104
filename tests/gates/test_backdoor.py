"""The backdoor detector: label-inconsistent clusters block, clusters that are only new go to review."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image
from scipy.stats import binom
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from dataward.domain.errors import InputError
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.gates import scan
from dataward.gates.base import Evidence, GateContext, GateData, Requirement, registered
from dataward.gates.detectors import _within_batch
from dataward.gates.detectors.backdoor import REVIEW_FLOOR, BackdoorDetector
from dataward.gates.policy import GatePolicy
from dataward.service.first_import import trusted_for_first_import
from tests.gates.conftest import png

SCHEMA = Schema("label", tuple(Column(f"p{i}", ColumnKind.NUMERIC) for i in range(64)))
CLASSES = tuple(str(i) for i in range(10))
ALPHA = 0.01


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_digits()
    perm = np.random.default_rng(0).permutation(len(data.target))
    b, c = perm[:1000], perm[1000:1500]
    x = data.data.astype(np.float32)
    return x[b], data.target[b], x[c], data.target[c]


def table(x: np.ndarray) -> pa.Table:
    return pa.table({f"p{i}": x[:, i] for i in range(x.shape[1])})


def badnets(x: np.ndarray, y: np.ndarray, fraction: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stamp a 3x3 white patch in the bottom-right corner of non-target digits and relabel them 0."""
    rng = np.random.default_rng(seed)
    x, y = x.copy(), y.copy()
    poison = rng.choice(np.flatnonzero(y != 0), max(1, round(fraction * len(y))), replace=False)
    images = x[poison].reshape(-1, 8, 8)
    images[:, 5:8, 5:8] = 16.0
    x[poison] = images.reshape(-1, 64)
    y[poison] = 0
    truth = np.zeros(len(y), bool)
    truth[poison] = True
    return x, y, truth


def new_scanner(x: np.ndarray) -> np.ndarray:
    """The same digits from a new scanner: one pixel to the right and 10% darker."""
    images = x.reshape(-1, 8, 8)
    out = np.zeros_like(images)
    out[:, :, 1:] = images[:, :, :-1]
    return (0.9 * out).reshape(-1, 64)


def run(xb, yb, xc, yc, **options):
    ctx = GateContext(SCHEMA, CLASSES, alpha=ALPHA, options={"backdoor": options} if options else {})
    det = BackdoorDetector().fit(GateData(xb, yb, table(xb)), ctx)
    return det.score(GateData(xc, yc, table(xc)))


def test_backdoor_is_registered_with_its_contract() -> None:
    assert registered()["backdoor"] is BackdoorDetector
    assert BackdoorDetector.evidence is Evidence.POISONING
    assert BackdoorDetector.requires == frozenset({Requirement.BASELINE})


@pytest.mark.parametrize("fraction", [0.01, 0.03, 0.10])
def test_patch_poisons_rank_above_clean_records_at_every_poison_rate(digits, fraction) -> None:
    xb, yb, xc, yc = digits
    x, y, truth = badnets(xc, yc, fraction)
    result = run(xb, yb, x, y)
    assert result.p_values.shape == (len(y),)
    assert roc_auc_score(truth, result.scores) > 0.97
    assert result.flagged[~truth].mean() <= ALPHA
    if fraction >= 0.03:
        # Enough poison for a cluster whose content says other digits: blocked, with the reason.
        assert result.block is True
        assert "labelled '0'" in result.block_reason and "another class" in result.block_reason
        assert result.p_value < 1e-4
        cluster = next(f for f in result.findings if f.row is None)
        assert cluster.evidence["label"] == "0"
        rows = set(cluster.evidence["rows"])
        assert len(rows & {int(r) + 1 for r in np.flatnonzero(truth)}) >= 0.9 * truth.sum()
        assert all(r - 1 in set(np.flatnonzero(truth)) for r in rows)  # every record it names is poisoned
        # A flag is a poisoned record; none falls on a clean one.
        assert not result.flagged[~truth].any()


def test_patch_poisons_are_blocked_with_an_mlp_probe_too(digits) -> None:
    xb, yb, xc, yc = digits
    x, y, _ = badnets(xc, yc, 0.10)
    result = run(xb, yb, x, y, probe="mlp", hidden=16, max_iter=40)
    assert result.block is True


def test_a_new_scanner_is_reviewed_never_blocked_and_flags_no_record(digits) -> None:
    """Clean, correctly labelled digits shifted by a pixel and darkened by 10%: every record moved."""
    xb, yb, xc, yc = digits
    result = run(xb, yb, new_scanner(xc), yc)
    assert result.block is False and result.block_reason is None
    assert result.p_value >= REVIEW_FLOOR  # review-level at most
    assert result.flagged.mean() <= ALPHA
    assert result.contribution_findings, "what moved must be explained for review"
    reasons = " ".join(f.reason for f in result.contribution_findings)
    assert "as a whole" in reasons


def test_a_darker_scanner_alone_is_not_blocked(digits) -> None:
    xb, yb, xc, yc = digits
    result = run(xb, yb, 0.9 * xc, yc)
    assert result.block is False
    assert result.flagged.mean() <= ALPHA


def test_clean_label_patch_is_a_review_finding_that_names_the_pattern(digits) -> None:
    """Correctly labelled 0s carrying a patch: label-consistent, so review with what they share."""
    xb, yb, xc, yc = digits
    x = xc.copy()
    zeros = np.flatnonzero(yc == 0)
    images = x[zeros].reshape(-1, 8, 8)
    images[:, 5:8, 5:8] = 16.0
    x[zeros] = images.reshape(-1, 64)
    result = run(xb, yb, x, yc)
    assert result.block is False
    assert not result.flagged.any()
    assert result.p_value >= REVIEW_FLOOR
    finding = result.contribution_findings[0]
    assert finding.evidence["label"] == "0"
    assert "labelled '0'" in finding.reason and "clean-label" in finding.reason
    assert any(f"p{r * 8 + c}" in finding.reason for r in range(5, 8) for c in range(5, 8))


def test_clean_contribution_is_not_judged_poisoned(digits) -> None:
    xb, yb, xc, yc = digits
    result = run(xb, yb, xc, yc)
    assert result.block is False
    assert not result.flagged.any()
    assert result.p_value > 1e-3
    assert BackdoorDetector.flags_records is False and result.alpha is None


def test_a_one_class_source_is_not_blocked(digits) -> None:
    xb, yb, xc, yc = digits
    result = run(xb, yb, xc[yc == 4], yc[yc == 4])
    assert result.block is False
    assert not result.flagged.any()


def gaussian_classes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Five classes of very different spread (so pooled calibration would be wrong for some)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    centres = np.random.default_rng(99).normal(0.0, 3.0, (5, 8))
    spread = np.array([0.3, 0.6, 1.0, 1.5, 2.5])[y][:, None]
    return (centres[y] + spread * rng.normal(size=(n, 8))).astype(np.float32), y.astype(np.int64)


@pytest.mark.parametrize("n_baseline", [50, 400, 6000])
def test_clean_iid_records_are_flagged_at_most_at_alpha(n_baseline) -> None:
    """Per-record p-values are valid per class; flags never exceed alpha on clean i.i.d. data."""
    xb, yb = gaussian_classes(n_baseline, 1)
    xc, yc = gaussian_classes(6000, 2)
    schema = Schema("label", tuple(Column(f"f{i}", ColumnKind.NUMERIC) for i in range(8)))
    ctx = GateContext(schema, tuple("abcde"), alpha=ALPHA)
    result = BackdoorDetector().fit(GateData(xb, yb), ctx).score(GateData(xc, yc))
    assert result.block is False
    n = len(yc)
    # At most alpha of the records, with room for binomial noise only (3x alpha would fail here).
    assert result.flagged.sum() <= binom.ppf(0.999, n, ALPHA)
    if n_baseline >= 400:
        # The p-values themselves hold their rate in every class (Mondrian), where the class's
        # calibration set resolves the threshold.
        for c in range(5):
            rows = yc == c
            bound = binom.ppf(0.9999, rows.sum(), 0.05) / rows.sum() + 0.05
            assert (result.p_values[rows] <= 0.05).mean() <= bound


@pytest.mark.parametrize(
    "options, message",
    [
        ({"no_such_option": 1}, "no_such_option"),
        ({"neighbours": 0}, "neighbours"),
        ({"probe": "cnn"}, "probe"),
        ({"max_cluster_fraction": 2.0}, "max_cluster_fraction"),
        ({"hidden": "wide"}, "hidden"),
    ],
)
def test_options_are_validated(digits, options, message) -> None:
    xb, yb, _, _ = digits
    ctx = GateContext(SCHEMA, CLASSES, options={"backdoor": options})
    with pytest.raises(InputError, match=message):
        BackdoorDetector().fit(GateData(xb, yb), ctx)
    with pytest.raises(InputError, match=message):
        BackdoorDetector(**options)


def test_policy_options_are_applied(digits) -> None:
    xb, yb, _, _ = digits
    ctx = GateContext(SCHEMA, CLASSES, options={"backdoor": {"neighbours": 3}})
    det = BackdoorDetector().fit(GateData(xb, yb), ctx)
    assert det.opts_.neighbours == 3
    det = BackdoorDetector(neighbours=7).fit(GateData(xb, yb), ctx)
    assert det.opts_.neighbours == 7  # the constructor overrides the policy


def test_a_single_class_baseline_is_skipped() -> None:
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    y = np.zeros(60, np.int64)
    ctx = GateContext(Schema("label", (Column("a", ColumnKind.NUMERIC),)), ("a",))
    result = BackdoorDetector().fit(GateData(x[:30], y[:30]), ctx).score(GateData(x[30:], y[30:]))
    assert not result.flagged.any()
    assert result.p_value == 1.0
    assert result.block is False
    assert "skipped" in result.summary


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img, dtype=np.float64) / 16.0


def test_through_the_gate_a_new_scanner_is_reviewed_and_a_patch_is_blocked(digit_images) -> None:
    base, contrib, schema = digit_images
    policy = {"detectors": ["backdoor"], "alpha": ALPHA}
    scanner = contrib.copy()
    scanner["image"] = [png(new_scanner(_pixels(b).reshape(1, 64)).reshape(8, 8)) for b in contrib["image"]]
    report = scan(base, scanner, schema, policy=policy)
    result = report.results["backdoor"]
    assert report.verdict != "block" and result.block is False
    assert result.flagged.mean() <= ALPHA

    poisoned = contrib.copy()
    rng = np.random.default_rng(3)
    rows = rng.choice(np.flatnonzero(poisoned["label"].to_numpy() != 0), 40, replace=False)
    for r in rows:
        pixels = _pixels(poisoned.at[r, "image"]).copy()
        pixels[5:8, 5:8] = 16.0
        poisoned.at[r, "image"] = png(pixels)
        poisoned.at[r, "label"] = 0
    report = scan(base, poisoned, schema, policy=policy)
    result = report.results["backdoor"]
    assert report.verdict == "block" and result.block is True
    assert "labelled '0'" in result.block_reason
    assert not result.flagged[np.setdiff1d(np.arange(len(poisoned)), rows)].any()


GAUSS_SCHEMA = Schema("label", tuple(Column(f"f{i}", ColumnKind.NUMERIC) for i in range(4)))
GAUSS_CLASSES = ("a", "b", "c")
CENTRES = np.array([[0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]])


def _around(centres: np.ndarray, spread: float, n_per_class: int, rng: np.random.Generator):
    """``n_per_class`` Gaussian records around each of ``centres``, with their class codes."""
    y = np.repeat(np.arange(len(centres)), n_per_class)
    return (centres[y] + rng.normal(0.0, spread, (y.size, centres.shape[1]))).astype(np.float32), y


def _blobs(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _around(CENTRES, 0.6, n_per_class, rng)


def _run_on(schema: Schema, xb, yb, xc, yc):
    """``backdoor`` fitted on the trusted ``xb`` (classes 'a', 'b', 'c'), scoring the batch ``xc``."""
    ctx = GateContext(schema, GAUSS_CLASSES, alpha=ALPHA)
    return BackdoorDetector().fit(GateData(xb, yb, table(xb)), ctx).score(GateData(xc, yc, table(xc)))


def _run_blobs(xb, yb, xc, yc):
    return _run_on(GAUSS_SCHEMA, xb, yb, xc, yc)


def test_a_batch_shift_that_moves_one_class_towards_another_is_not_blocked() -> None:
    """A sensor offset moves every record by +1.2 along the axis between classes 'a' and 'b': against
    the trusted records many 'a's now read as 'b', but among the batch's own records they still read
    as 'a' (the 'b's moved too). That is a moved batch, for review, not relabelled content."""
    rng = np.random.default_rng(3)
    xb, yb = _blobs(300, rng)
    xc, yc = _blobs(150, rng)
    xc = xc + np.array([1.2, 0.0, 0.0, 0.0], np.float32)
    result = _run_blobs(xb, yb, xc, yc)
    assert result.block is False and result.block_reason is None
    assert result.flagged.sum() == 0


@pytest.mark.parametrize("hidden", [30, 60])
def test_relabelled_records_hidden_in_a_shifted_batch_are_still_blocked(hidden) -> None:
    """The attacker's answer: ship the relabelled records inside a batch that moved as a whole. Their
    content reads as 'b' among the batch's own 'b's, so the batch cannot excuse them."""
    rng = np.random.default_rng(4)
    xb, yb = _blobs(300, rng)
    xc, yc = _blobs(150, rng)
    poison = rng.choice(np.flatnonzero(yc == 1), hidden, replace=False)
    yc[poison] = 0
    xc = xc + np.array([1.2, 0.0, 0.0, 0.0], np.float32)
    result = _run_blobs(xb, yb, xc, yc)
    assert result.block is True
    caught = result.flagged[poison].mean()
    assert caught >= 0.5
    assert result.flagged[np.setdiff1d(np.arange(yc.size), poison)].mean() <= ALPHA


def test_a_class_relabelled_wholesale_cannot_be_excused_by_the_batch() -> None:
    """Every 'b' of the batch relabelled 'a': no clean 'b' of the batch is left to read them against, so
    the trusted reading stands and the group is blocked."""
    rng = np.random.default_rng(5)
    xb, yb = _blobs(300, rng)
    xc, yc = _blobs(150, rng)
    moved = yc == 1
    yc = yc.copy()
    yc[np.flatnonzero(moved)[:60]] = 0
    keep = ~moved | (yc == 0)
    result = _run_blobs(xb, yb, xc[keep], yc[keep])
    assert result.block is True


@pytest.mark.parametrize("cap, block", [(10**9, 65_536), (300, 16)], ids=["whole-batch", "sampled-in-blocks"])
def test_moved_records_are_excused_and_relabelled_ones_kept_misread(monkeypatch, cap, block) -> None:
    """The within-batch reading: a record that moved with its batch reads as its own label among the
    batch's records, a relabelled one as the class of its content, also when the batch is read
    through a seeded sample (past MAX_WITHIN_BATCH_REFERENCE) and the candidates in blocks."""
    monkeypatch.setattr(_within_batch, "MAX_WITHIN_BATCH_REFERENCE", cap)
    monkeypatch.setattr(_within_batch, "WITHIN_BATCH_BLOCK", block)
    rng = np.random.default_rng(0)

    def around(x: float, n: int) -> np.ndarray:
        points = rng.normal(0.0, 0.3, (n, 8))
        points[:, 0] += x
        return points

    # The batch moved: class 0 now sits at 2, class 1 at 4 (trusted: 0 and 3), so the trusted records
    # read its class-0 records near 3 as class 1. 20 records with class-1 content are labelled 0.
    features = np.vstack([around(2.0, 1000), around(4.0, 1000), around(2.6, 50), around(4.0, 20)]).astype(np.float32)
    labels = np.array([0] * 1000 + [1] * 1000 + [0] * 70)
    candidates = np.zeros(len(labels), bool)
    candidates[2000:] = True
    read_as = np.where(candidates, 1, labels)
    moved = _within_batch.reads_as_own_within_batch(GateData(features, labels), candidates, candidates, read_as, 10, 0)
    assert moved[2000:2050].mean() >= 0.9
    assert not moved[2050:].any() and not moved[:2000].any()


MAN_SECTIONS = Path(__file__).resolve().parents[2] / "examples" / "data" / "man_sections.csv"
TEXT_SCHEMA = Schema.parse("label", ["text:text"])


@pytest.fixture(scope="module")
def man_first_import() -> tuple[pa.Table, pd.DataFrame]:
    """A 250-record clean validation set and an 800-record clean batch, a random split of one file."""
    data = pd.read_csv(MAN_SECTIONS, dtype=str).dropna().sample(frac=1.0, random_state=1).reset_index(drop=True)
    return pa.Table.from_pandas(data.iloc[:250], preserve_index=False), data.iloc[250:1050].reset_index(drop=True)


def _first_import(validation: pa.Table, batch: pd.DataFrame, seed: int):
    baseline, held_out, _ = trusted_for_first_import(validation, "label", seed)
    batch_table = pa.Table.from_pandas(batch, preserve_index=False)
    report = scan(baseline, batch_table, TEXT_SCHEMA, held_out, {"seed": seed, "detectors": ["backdoor"]}, workers=1)
    return report.results["backdoor"]


@pytest.mark.parametrize("seed", [14, 16, 17, 23])
def test_a_clean_first_import_against_a_small_trusted_half_is_not_blocked(man_first_import, seed) -> None:
    """125 trusted records, 12 to 36 per class, judge 800 clean records drawn like them. Calibrated on
    all classes pooled, the 'admin' lines (which read as 'commands' far more often than the average
    class) were misread at two to four times the pooled rate and these halvings blocked the batch."""
    validation, batch = man_first_import
    result = _first_import(validation, batch, seed)
    assert result.block is False and result.block_reason is None
    assert result.flagged.sum() == 0


def _small_trusted_digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """125 trusted digits (6 to 18 a class) and 800 new ones, a random split of one set."""
    data = load_digits()
    perm = np.random.default_rng(seed).permutation(len(data.target))
    x = data.data.astype(np.float32)
    b, c = perm[:125], perm[125:925]
    return x[b], data.target[b], x[c], data.target[c]


@pytest.mark.parametrize("seed", range(6))
def test_clean_digits_against_a_small_trusted_set_are_not_blocked(seed) -> None:
    """Calibrated on every class pooled, the classes read worse than average were misread beyond the
    pooled rate: two of these six splits blocked clean digits."""
    xb, yb, xc, yc = _small_trusted_digits(seed)
    result = run(xb, yb, xc, yc)
    assert result.block is False and result.flagged.sum() == 0


@pytest.mark.parametrize("seed", range(4))
def test_a_class_relabelled_into_another_against_a_small_trusted_set_is_blocked(seed) -> None:
    """Every '0' of the batch labelled '6': about half of the batch's '6's read as '0', a share the 11 to
    18 trusted '6's cannot explain, per-class calibration or not."""
    xb, yb, xc, yc = _small_trusted_digits(seed)
    yc = np.where(yc == 0, 6, yc)
    result = run(xb, yb, xc, yc)
    assert result.block is True
    assert "labelled '6'" in result.block_reason


# A trigger spread over several features. Tight classes (spread 0.3) three apart in 8 dimensions.
TIGHT_SCHEMA = Schema("label", tuple(Column(f"f{i}", ColumnKind.NUMERIC) for i in range(8)))
TIGHT_CENTRES = np.zeros((3, 8))
TIGHT_CENTRES[1, 0] = TIGHT_CENTRES[2, 1] = 3.0


def _tight(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _around(TIGHT_CENTRES, 0.3, n_per_class, rng)


def _spread_trigger(poisoned: int, offset: float, seed: int):
    """``poisoned`` 'b' records of the batch relabelled 'a', each with ``offset`` added to features f2 to f7:
    the trigger takes the poisons away from every trusted 'b' as well, so they read as 'b' less clearly
    than any trusted 'b' does."""
    rng = np.random.default_rng(seed)
    xb, yb = _tight(300, rng)
    xc, yc = _tight(150, rng)
    xv, yv = _tight(100, rng)
    rows = rng.choice(np.flatnonzero(yc == 1), poisoned, replace=False)
    xc[rows, 2:8] += offset
    yc[rows] = 0
    return xb, yb, xc, yc, xv, yv, rows


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
@pytest.mark.parametrize(("poisoned", "offset"), [(12, 1.2), (15, 1.0), (20, 0.8)])
def test_relabelled_content_carrying_a_spread_trigger_is_blocked(seed, poisoned, offset) -> None:
    """The attacker's side of any rule that counts a misread record only when its content also fits the
    class it reads as (tried as `backdoor` 7 and withdrawn, docs/benchmarks.md): a trigger of a third of
    the classes' separation, spread over six features, makes every poison fit no class, and the batch
    went to review with none of them flagged. The trigger is what a backdoor adds; it must not excuse."""
    xb, yb, xc, yc, _, _, rows = _spread_trigger(poisoned, offset, seed)
    result = _run_on(TIGHT_SCHEMA, xb, yb, xc, yc)
    assert result.block is True
    assert "labelled 'a'" in result.block_reason
    assert result.flagged[rows].mean() >= 0.9
    assert result.flagged[np.setdiff1d(np.arange(yc.size), rows)].mean() <= ALPHA


def test_a_spread_trigger_is_blocked_and_its_poisons_queued_by_the_whole_gate() -> None:
    xb, yb, xc, yc, xv, yv, rows = _spread_trigger(15, 1.0, 11)

    def frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
        out = pd.DataFrame({f"f{i}": x[:, i] for i in range(8)})
        out["label"] = np.asarray(GAUSS_CLASSES)[y]
        return out

    report = scan(frame(xb, yb), frame(xc, yc), TIGHT_SCHEMA, frame(xv, yv), {"seed": 0})
    assert report.verdict == "block", report.reasons
    queued = np.asarray(report.records.flagged, dtype=bool)
    assert queued[rows].mean() >= 0.5
    assert np.delete(queued, rows).sum() == 0


def test_a_camera_with_more_contrast_is_not_blocked_at_a_tight_calibration_split() -> None:
    """Photo crops through a camera with 10% more contrast, split at seed 1, where the trusted
    'temple_garden' crops read as their class unusually well: 19 of the batch's 180 read as another
    class beyond all but 2% of them where 3 are expected (a clean i.i.d. batch at the same split: 15,
    p = 0.005). None is misread beyond the class's finest threshold, so the count is reviewed, never
    a block (backdoor version 8); before, the gate blocked it."""
    from benchmarks import data
    from benchmarks.shifts.base import new_sensor

    situation = new_sensor(
        "contrast_camera_photos",
        "tuning",
        data.load_photos(),
        1,
        "full",
        lambda p: 0.5 + 1.1 * (p - 0.5),
        "photo crops from a camera with 10% more contrast",
    )
    report = scan(situation.baseline, situation.contribution, situation.schema, situation.validation, {"seed": 1})
    assert report.verdict != "block", report.reasons


def _fitted_on_blobs(
    centres: np.ndarray, trusted: int | list[int], classes: str, rng: np.random.Generator
) -> tuple[BackdoorDetector, Callable[[int | list[int]], tuple[np.ndarray, np.ndarray]]]:
    """A detector fitted on Gaussian blobs around ``centres`` (``trusted`` records per class, one count or
    one per class), and the function that draws more of them (records, labels)."""
    k, d = centres.shape

    def blobs(sizes: int | list[int]) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(k), sizes)
        return (centres[y] + rng.normal(0, 0.5, (y.size, d))).astype(np.float32), y

    schema = Schema("label", tuple(Column(f"f{i}", ColumnKind.NUMERIC) for i in range(d)))
    xb, yb = blobs(trusted)
    detector = BackdoorDetector().fit(
        GateData(xb, yb, table(xb)), GateContext(schema, tuple(classes), alpha=ALPHA, seed=0)
    )
    return detector, blobs


def _edge_records(
    detector: BackdoorDetector, centre: np.ndarray, upper: float, n: int, pool: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` records drawn around ``centre`` that, labelled 'a', are misread at ``upper`` but not at 'a''s own
    resolution (300 trusted records: 1/301)."""
    content = (centre + rng.normal(0, 0.5, (pool, centre.size))).astype(np.float32)
    as_a = np.zeros(len(content), np.int64)
    read = detector.score_records(GateData(content, as_a, table(content)))
    p, _ = detector._label_p_values(read["label_score"], as_a)
    edge = content[np.flatnonzero((p > 1 / 301) & (p <= upper) & (read["label_score"] > 0))[:n]]
    assert len(edge) == n
    return edge


def _edge_and_scattered(n_edge: int, seed: int) -> tuple[BackdoorDetector, GateData, set[int]]:
    """A batch of 16 classes with ``n_edge`` 'b' records relabelled 'a' and chosen to be misread at 2% but
    not at the finest threshold, and 14 records of the 14 other classes relabelled 'a' and misread beyond
    it (deep and scattered); the fitted detector, the batch and the edge records' positions."""
    k, d = 16, 19
    centres = np.zeros((k, d))
    centres[1, 0] = 1.6
    for c in range(2, k):
        centres[c, c - 1] = 4.0
    rng = np.random.default_rng(seed)
    detector, blobs = _fitted_on_blobs(centres, 300, "abcdefghijklmnop", rng)
    xc, yc = blobs(150)
    edge = _edge_records(detector, centres[1], 0.02, n_edge, 400, rng)
    deep = (centres[2:] + rng.normal(0, 0.5, (k - 2, d))).astype(np.float32)
    x = np.vstack([xc, edge, deep])
    y = np.r_[yc, np.zeros(len(edge) + len(deep), np.int64)]
    return detector, GateData(x, y, table(x)), set(range(len(xc), len(xc) + n_edge))


@pytest.mark.parametrize(("n_edge", "seed"), [(10, 1), (15, 2), (20, 0), (30, 0)])
def test_scattered_deep_records_beside_edge_records_do_not_silence_the_edge_records_review(
    n_edge: int, seed: int
) -> None:
    """The attacker's side of counting only at the finest threshold (backdoor version 8): edge records
    relabelled 'a' beside 14 scattered deep ones. The 14 make the finest count significant but do not hold
    together, so that group does not block; the edge records, significant at 2% and holding together on
    their own, must still be named for review. Two first cuts of version 8 passed such batches with no
    finding: one dropped the coarser count whenever the finest was significant, the next tested the edge
    records for holding together with the scattered ones among them (and skipped the coarser count
    whenever the finest was the best of all thresholds)."""
    detector, batch, edge_rows = _edge_and_scattered(n_edge, seed)
    result = detector.score(batch)
    named = {row - 1 for f in [*result.findings, *result.contribution_findings] for row in f.evidence.get("rows", [])}
    assert result.block or edge_rows <= named, [f.reason for f in result.contribution_findings]
    # Review-level for the whole gate: below the default review_p shared by up to ten detectors.
    assert result.block or result.p_value * 10 < GatePolicy().review_p


def _edge_beside_a_small_class(n_edge: int, seed: int) -> tuple[BackdoorDetector, GateData, GateData]:
    """Four classes, 'd' calibrated on 60 trusted records and the others on 300, and ``n_edge`` 'b' records
    relabelled 'a' chosen to be misread at the small class's resolution (1/61) but not at 'a''s own
    (1/301). The fitted detector, and the batch without any 'd' record and with 30 of them (the edge
    records last in both)."""
    k, d = 4, 6
    centres = np.zeros((k, d))
    centres[1, 0] = 1.6
    centres[2, 1] = centres[3, 2] = 4.0
    rng = np.random.default_rng(seed)
    detector, blobs = _fitted_on_blobs(centres, [300, 300, 300, 60], "abcd", rng)
    edge = _edge_records(detector, centres[1], 1 / 61, n_edge, 2000, rng)
    xc, yc = blobs([150, 150, 150, 30])
    without = yc != 3
    batches = []
    for keep in (without, np.ones(len(yc), bool)):
        x = np.vstack([xc[keep], edge])
        y = np.r_[yc[keep], np.zeros(n_edge, np.int64)]
        batches.append(GateData(x, y, table(x)))
    return detector, batches[0], batches[1]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_class_counts_at_its_own_finest_threshold_whichever_classes_the_batch_holds(seed: int) -> None:
    """The attacker's side of "only a class's finest count blocks" (backdoor version 9): were a class's finest
    threshold the finest of the batch's classes, a sender would set it by sending or leaving out a small
    class: with 30 records of 'd' (60 trusted) every class counted at 1/61, without them at 1/301, and edge
    records misread at 1/61 but not at 1/301 went from a block to a review. Now 'a' counts at its own
    1/301 either way, and the edge records are named for review in both batches."""
    detector, without_small, with_small = _edge_beside_a_small_class(20, seed)
    results = [detector.score(batch) for batch in (without_small, with_small)]
    groups = [[(g["threshold"], g["coarse_only"], g["block"]) for g in r.summary["groups"]] for r in results]
    assert groups[0] == groups[1], groups
    assert results[0].block == results[1].block
    # No count at the small class's resolution: 'a' counts at 10%, 2% and its own 1/301.
    assert all(t != round(1 / 61, 6) for t, _, _ in groups[0]), groups
    for result, batch in zip(results, (without_small, with_small), strict=True):
        named = {
            row - 1 for f in [*result.findings, *result.contribution_findings] for row in f.evidence.get("rows", [])
        }
        edge_rows = set(range(len(batch) - 20, len(batch)))
        assert result.block or edge_rows <= named, [f.reason for f in result.contribution_findings]
