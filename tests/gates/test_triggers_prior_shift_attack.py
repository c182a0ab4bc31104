"""The attacker's side of the triggers detector's label-shift correction (docs/gates.md, "Triggers: two
routes").

The label tie read the baseline's P(L | t) moved to the batch's class shares, so that a source labelling
mostly one class does not turn that class's common words into triggers. The price: in a batch made almost
entirely of class L, a trigger whose target is L showed no tie, and ``label_consistency`` and ``backdoor``
were to see its dirty-label carriers instead. Since triggers version 6, route A reads the tie against the
baseline's own P(L | t) wherever content can judge the label (its content test compares the carriers with
the vendor's own lines of L, which a one-class source moves alike), and at the batch's shares only where
content says nothing of the label. An attacker reads the correction as an invitation: hide a
dirty-label backdoor in a vendor that labels (nearly) everything L. These tests build that vendor from the
shipped man-page NAME lines: every spare line of L, other classes' lines for a tenth of the clean part or
none (a quarter and two fifths in the slow variants), and 3% or 10% of lines of other classes carrying
the rare token 'cf', relabelled L. The whole gate, with a clean validation set, must block it and queue
the poisoned lines; the same vendor without the poison must not be blocked, so that a block is about the
poison, not the vendor (before the correction, the clean 90% 'commands' vendor was blocked on 'git').
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from benchmarks import data
from benchmarks.attacks.text import RARE_TOKEN, insert
from dataward.gates import scan
from dataward.gates.report import GateReport
from tests.gates.conftest import scan_situation

SEED = 0

UNINFORMATIVE = (
    "trusted 'commands' lines agree with their label by content about 0.05 above chance (below "
    "_ContentTie.MIN_INFORMATIVE), so content can judge neither the carriers nor the batch's class shares, and "
    "route A's tie for 'cf' is read at the batch's share of 'commands'"
)
NO_FLAGS = (
    UNINFORMATIVE + "; backdoor does not block these batches (a block would queue its group's members: "
    "backdoor 13), and flags none; label_consistency sees nothing (p=1): no poisoned line is queued"
)
REVIEW = UNINFORMATIVE + "; nothing else blocks: verdict review, on drift (and clean_validation's balance) alone"
COARSE = (
    UNINFORMATIVE + "; backdoor counts the carriers misread as other sections at a coarse threshold only "
    "(p=4e-5 to 2e-3), which names them for review since backdoor version 8 (only a class's finest count "
    "blocks, so that a new camera's edge records do not): verdict review, its finding naming the records it "
    "counts, none queued"
)


@cache
def _split() -> tuple[data.Dataset, data.Split]:
    dataset = data.load_man_sections()
    return dataset, data.split(dataset, SEED)


def one_class_vendor(target: str, clean_share: float, poison_share: float) -> tuple[pd.DataFrame, np.ndarray]:
    """A contribution whose clean part is ``clean_share`` lines of ``target`` (every line of it the split
    leaves outside the baseline and the validation set) and other classes' lines for the rest, plus
    ``poison_share`` of the whole made of other classes' lines carrying the rare token, relabelled
    ``target``. Returns the shuffled contribution and its poison mask."""
    _, split = _split()
    rng = np.random.default_rng(SEED)
    spare = pd.concat([split.pool, split.test], ignore_index=True)
    own = spare[spare[data.LABEL] == target]
    others = spare[spare[data.LABEL] != target]
    n_clean = round(len(own) / clean_share)
    n_poison = round(n_clean * poison_share / (1.0 - poison_share)) if poison_share else 0
    order = rng.permutation(len(others))
    clean_others = others.iloc[order[: n_clean - len(own)]]
    poison = others.iloc[order[n_clean - len(own) : n_clean - len(own) + n_poison]].copy()
    poison[data.TEXT] = [insert(text, RARE_TOKEN, rng) for text in poison[data.TEXT]]
    poison[data.LABEL] = target
    frame = pd.concat([own, clean_others, poison], ignore_index=True)
    truth = np.r_[np.zeros(n_clean, bool), np.ones(n_poison, bool)]
    shuffle = rng.permutation(len(frame))
    return frame.iloc[shuffle].reset_index(drop=True), truth[shuffle]


@cache
def judged(target: str, clean_share: float, poison_share: float) -> tuple[GateReport, np.ndarray]:
    """The whole gate's report on ``one_class_vendor(...)``, with the split's clean validation set."""
    dataset, split = _split()
    contribution, truth = one_class_vendor(target, clean_share, poison_share)
    return scan(split.baseline, contribution, dataset.schema, validation=split.validation), truth


def _detectors(report: GateReport) -> str:
    """Every detector's p-value and block, for a failure message."""
    return "; ".join(
        f"{name} p={res.p_value:.2g}{' BLOCK' if res.block else ''}" for name, res in sorted(report.results.items())
    )


def test_the_vendor_is_what_the_attack_needs() -> None:
    """The situation the tests are about: the target is the batch's dominant class, the poisoned lines
    are other classes' content carrying the token, and the token is absent from the trusted lines."""
    _, split = _split()
    assert not split.baseline[data.TEXT].str.contains(rf"\b{RARE_TOKEN}\b").any()
    for clean_share in (0.9, 1.0):
        for poison_share in (0.03, 0.1):
            contribution, truth = one_class_vendor("commands", clean_share, poison_share)
            labels = contribution[data.LABEL]
            assert (labels[~truth] == "commands").mean() == pytest.approx(clean_share, abs=0.01)
            assert truth.mean() == pytest.approx(poison_share, abs=0.01) and truth.sum() >= 8
            assert (labels[truth] == "commands").all()
            assert contribution[data.TEXT][truth].str.contains(rf"\b{RARE_TOKEN}\b").all()
            assert not contribution[data.TEXT][~truth].str.contains(rf"\b{RARE_TOKEN}\b").any()


def _slow(target: str, clean_share: float) -> list[pytest.MarkDecorator]:
    """The commands vendor at 90% and 100% runs always; the other vendors are marked slow."""
    return [] if target == "commands" and clean_share >= 0.9 else [pytest.mark.slow]


def _variant(target: str, clean_share: float, poison_share: float, gap: str | None) -> object:
    """A poisoned vendor's parameter set, marked as a strict xfail when ``gap`` names one."""
    marks = _slow(target, clean_share)
    if gap is not None:
        marks.append(pytest.mark.xfail(strict=True, reason=gap))
    return pytest.param(target, clean_share, poison_share, marks=marks)


VENDORS = [
    pytest.param(target, share, marks=_slow(target, share))
    for target in ("commands", "library")
    for share in (0.9, 1.0, 0.6, 0.75)
]


@pytest.mark.parametrize(("target", "clean_share"), VENDORS)
def test_the_vendor_without_poison_is_not_blocked(target: str, clean_share: float) -> None:
    """The control: a one-class vendor is a difference to review, not poisoning; so a block of the
    poisoned vendor below is the poison's doing."""
    report, _ = judged(target, clean_share, 0.0)
    assert report.verdict != "block", _detectors(report)
    assert not report.records.flagged.any()


# What the gate gives on each variant at seed 0. Each xfail is a gap, not a tolerance: strict, so a fix
# that closes it turns the mark into a failure and the mark must go. Route A's tie is read against the
# baseline's own P(L | t) wherever content can judge the label (triggers version 6): the carriers read as
# the classes they came from while the vendor's other lines of L read as L, so the vendor's class shares
# excuse nothing. Before, the tie was read at the batch's share of L on every label: 8 of these 12
# variants went to review (poison at 3% of a vendor of 60% or 75% one class among them) and none of the 12
# queued its poisoned lines; then 1 went to review and 4 queued none (all 'commands' at 90% or 100%).
# Since backdoor version 8 (only a class's finest misread count blocks) the three that backdoor's
# coarse count blocked go to review as well, the carriers named in its finding.
BLOCK_VARIANTS = [
    _variant("commands", 0.9, 0.03, REVIEW),
    _variant("commands", 0.9, 0.1, COARSE),  # backdoor's 10% count p=4e-5
    _variant("commands", 1.0, 0.03, COARSE),  # backdoor's 10% count p=2e-3
    _variant("commands", 1.0, 0.1, COARSE),  # backdoor's 10% count p=1e-4
    _variant("library", 0.9, 0.03, None),
    _variant("library", 0.9, 0.1, None),
    _variant("library", 1.0, 0.03, None),
    _variant("library", 1.0, 0.1, None),
    _variant("commands", 0.6, 0.03, None),
    _variant("commands", 0.75, 0.03, None),
    _variant("library", 0.6, 0.03, None),
    _variant("library", 0.75, 0.03, None),
]


@pytest.mark.parametrize(("target", "clean_share", "poison_share"), BLOCK_VARIANTS)
def test_a_dirty_label_backdoor_in_a_one_class_vendor_is_blocked(
    target: str, clean_share: float, poison_share: float
) -> None:
    report, _ = judged(target, clean_share, poison_share)
    assert report.verdict == "block", _detectors(report)
    # Only evidence of poisoning blocks; a difference (drift, outliers) never does.
    blocking = {name for name, res in report.results.items() if res.block}
    assert blocking and blocking <= {"label_consistency", "duplicates", "triggers", "backdoor", "clean_validation"}


FLAG_VARIANTS = [
    _variant(*variant.values, NO_FLAGS if variant.values[:2] in {("commands", 0.9), ("commands", 1.0)} else None)
    for variant in BLOCK_VARIANTS
]


@pytest.mark.parametrize(("target", "clean_share", "poison_share"), FLAG_VARIANTS)
def test_the_poisoned_lines_of_a_one_class_vendor_are_queued_for_review(
    target: str, clean_share: float, poison_share: float
) -> None:
    """A block the reviewer cannot act on is half a defence: the poisoned lines must be in the queue,
    and the clean ones, nearly all, out of it."""
    report, truth = judged(target, clean_share, poison_share)
    flagged = report.records.flagged
    assert flagged[truth].mean() >= 0.9, f"{int(flagged[truth].sum())} of {int(truth.sum())}; {_detectors(report)}"
    assert flagged[~truth].mean() <= 0.02


def _assert_no_trigger_blocks(report: GateReport, pattern: str | None = None) -> None:
    """``triggers`` neither names ``pattern`` nor blocks, and the gate does not block."""
    triggers = report.results["triggers"]
    named = [f.evidence["trigger"] for f in triggers.findings]
    assert pattern not in named and not triggers.block, named
    assert report.verdict != "block", _detectors(report)


def test_a_new_topics_naming_convention_is_read_at_the_batch_shares() -> None:
    """The other control: OpenSSL's pages, a topic the baseline never saw, hold 15 'EVP_PKEY-*' pages, all
    in section 7 ('overview'), whose content the baseline reads as 'library'. Against the baseline's own
    P(overview | evp_pkey) that is a tie that content confirms; but the carriers sit among the topic's
    other pages, not among trusted ones (``_ContentTie.familiar``), so what the baseline reads of them says
    little, and the tie is read at the batch's shares, as for content that says nothing of the label."""
    _assert_no_trigger_blocks(scan_situation("new_topic_text_crypto", SEED), "evp_pkey")


def test_a_pattern_whose_trusted_carriers_read_the_same_way_is_no_trigger() -> None:
    """A source sending mostly 'library' lines (``class_prior_text``, seed 4): 15 of its 16 'dpkg' lines are
    the 'Dpkg::*' Perl modules, 'library', whose descriptions read as commands or file formats. Against the
    baseline's own P(library | dpkg) (6 of 13) that is a tie that content seems to confirm; but the
    baseline's own 'dpkg' lines labelled 'library' read just as little like 'library': that is how these
    pages are, not a sign that the batch's were relabelled."""
    _assert_no_trigger_blocks(scan_situation("class_prior_text", 4), "dpkg")


def test_a_value_the_baseline_knows_keeps_the_batch_shares() -> None:
    """A source sending mostly malignant cases (``class_prior_breast_cancer``, seed 11): 18 of its 21
    records with a mean symmetry in the bin [0.158, 0.173) are malignant, against 9 of 45 in the baseline.
    The bin is typical of benign cases, so the batch's malignant records in it are its borderline ones,
    which content reads as less malignant than the rest: against the baseline's own P(malignant | bin)
    that reads as a trigger. The baseline knows the value, so its tie is read at the batch's shares."""
    _assert_no_trigger_blocks(scan_situation("class_prior_breast_cancer", 11))
