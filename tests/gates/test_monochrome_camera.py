"""A monochrome camera, and a class that moved as a whole with its batch (``_within_batch.wholesale_new_classes``).

Greyed, the pink petals read as the temple's garden: every petal of the batch reads as another class against
the trusted (colour) records, so none is left to read the others against, and ``label_consistency`` and
``duplicates`` blocked the clean batch at 12 of 12 seeds (``monochrome_photos``, found by the fourth held-out
set). A class that moved as a whole into content no trusted record holds, in a batch whose other classes
moved too, is now read against its own records in the batch. The attacker's side: a class replaced
wholesale by another class's photos is blocked, sent as the trusted data are and sent through the same
monochrome camera, where the replaced records sit among the batch's records of the class they came from.
"""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from benchmarks import data
from benchmarks.shifts.base import map_images, parts
from benchmarks.shifts.heldout4 import greyscale
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.gates import scan
from dataward.gates.gate import blocking_detectors
from tests.gates.conftest import scan_situation

VICTIM, SOURCE = "petals", "temple_garden"


@pytest.mark.parametrize("seed", [2, 4])
def test_photos_from_a_monochrome_camera_are_reviewed_not_blocked(seed: int) -> None:
    report = scan_situation("monochrome_photos", seed)
    assert report.verdict == "review", report.reasons
    assert blocking_detectors(report.results, report.policy["block_p"]) == []
    consistency = report.results["label_consistency"]
    assert consistency.summary["moved_with_batch"] > 250
    assert consistency.flagged.sum() <= 5
    assert report.results["duplicates"].p_value > 1e-6


def _petals_replaced_by_garden(seed: int, *, monochrome: bool) -> SimpleNamespace:
    """The benchmark's photo batch at ``seed`` with every petal crop replaced by a garden crop the gate has
    not seen (from the split's test part), labels kept; greyed throughout when ``monochrome``."""
    case = _petals_replaced_by_garden_as_sent(seed)
    if not monochrome:
        return case
    return SimpleNamespace(**{**vars(case), "batch": map_images(case.batch, greyscale)})


@cache
def _petals_replaced_by_garden_as_sent(seed: int) -> SimpleNamespace:
    """The batch of ``_petals_replaced_by_garden`` as the trusted data were sent, built once for both cameras
    (the photos are cropped and split once; the gate and ``map_images`` never write to the parts)."""
    ds = data.load_photos()
    split = parts(ds, seed, "full")
    batch = split.pool.copy().reset_index(drop=True)
    victims = np.flatnonzero(batch[data.LABEL].to_numpy() == VICTIM)
    garden = split.test[split.test[data.LABEL] == SOURCE]
    swapped = garden.sample(n=victims.size, replace=victims.size > len(garden), random_state=seed)
    batch.loc[victims, data.IMAGE] = swapped[data.IMAGE].to_numpy()
    poison = np.zeros(len(batch), bool)
    poison[victims] = True
    return SimpleNamespace(split=split, schema=ds.schema, batch=batch, poison=poison)


@pytest.mark.parametrize("monochrome", [False, True], ids=["same-camera", "through-the-monochrome-camera"])
def test_a_class_replaced_wholesale_by_another_class_is_blocked(monochrome: bool) -> None:
    case = _petals_replaced_by_garden(0, monochrome=monochrome)
    report = scan(case.split.baseline, case.batch, case.schema, case.split.validation, {"seed": 0})
    assert report.verdict == "block", report.reasons
    # The detectors the verdict blocks on, whether by their own block or by their batch p-value.
    assert "label_consistency" in blocking_detectors(report.results, report.policy["block_p"])
    consistency = report.results["label_consistency"]
    assert consistency.flagged[case.poison].sum() >= 0.3 * case.poison.sum()
    assert consistency.flagged[~case.poison].sum() <= 2


@cache
def _digit_columns() -> data.Dataset:
    """scikit-learn's digits as 64 numeric columns (intensities 0..16), labels ``"0"``..``"9"``."""
    raw = load_digits()
    columns = [f"p{i}" for i in range(raw.data.shape[1])]
    frame = pd.DataFrame(raw.data.astype(float), columns=columns)
    frame[data.LABEL] = [str(t) for t in raw.target]
    schema = Schema(label=data.LABEL, inputs=tuple(Column(c, ColumnKind.NUMERIC) for c in columns))
    return data.Dataset("digit_columns", frame, schema, "tabular")


def _threes_replaced_by_shifted_eights(seed: int, decoy: str, decoy_shift: float) -> SimpleNamespace:
    """The split's pool with every '3' replaced by an '8' the gate has not seen (from the test part), labels
    kept, its varying columns (standard deviation above 2) raised by 2: another class's content moved off it,
    new content to the trusted records; ``decoy``'s records moved by ``decoy_shift`` on the same columns."""
    ds = _digit_columns()
    split = data.split(ds, seed)
    pool = split.pool.copy().reset_index(drop=True)
    varying = [c for c, sd in ds.frame.drop(columns=data.LABEL).std().items() if sd > 2.0]
    victims = np.flatnonzero(pool[data.LABEL].to_numpy() == "3")
    eights = split.test[split.test[data.LABEL] == "8"]
    eights = eights.sample(n=victims.size, replace=victims.size > len(eights), random_state=seed)
    inputs = [c.name for c in ds.schema.inputs]
    pool.loc[victims, inputs] = eights[inputs].to_numpy()
    pool.loc[victims, varying] += 2.0
    moved = np.flatnonzero(pool[data.LABEL].to_numpy() == decoy)
    pool.loc[moved, varying] += decoy_shift
    poison = np.zeros(len(pool), bool)
    poison[victims] = True
    return SimpleNamespace(split=split, schema=ds.schema, batch=pool, poison=poison)


@pytest.mark.parametrize(
    ("decoy", "decoy_shift"),
    [("1", 2.0), ("8", -2.0)],
    ids=["a-decoy-class-moved-alike", "the-source-class-moved-apart"],
)
def test_a_class_replaced_by_another_class_shifted_off_it_is_blocked(decoy: str, decoy_shift: float) -> None:
    # The shift makes the relabelled class new content, and a second class moved (a decoy tinted alike, or
    # the source class moved the other way): the wholesale reading used to excuse 48 and 54 of the 55 and
    # the batch was only reviewed. About their centre the relabelled records are eights.
    case = _threes_replaced_by_shifted_eights(0, decoy, decoy_shift)
    report = scan(case.split.baseline, case.batch, case.schema, case.split.validation, {"seed": 0})
    assert report.verdict == "block", report.reasons
    assert "label_consistency" in blocking_detectors(report.results, report.policy["block_p"])
    consistency = report.results["label_consistency"]
    assert consistency.flagged[case.poison].sum() >= 0.3 * case.poison.sum()
    assert consistency.flagged[~case.poison].sum() <= 2
