"""The release probe replays a colour patch the data gate found.

The data gate names a patch of ordinary luma by the way its colour leans ("36 magenta-leaning pixels in
rows 26-31, columns 26-31 of 32x32"). The probe stamps those pixels in a colour that leans that way at
each pixel's own luma (its control: the same pixels grey at their luma), so a model trained on the
colour-patch backdoor is found out, and says in the report what it stamped. A finding it cannot stamp is
listed with its reason, never dropped. The data and the finding are those of
``tests/gates/test_colour_triggers.py``: 6 of 200 photo crops with a solid magenta 6x6 patch in the
bottom-right corner relabelled to one class, against 1,000 trusted crops; the models are scikit-learn
logistic regressions on the crops' RGB pixels.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from benchmarks import data
from benchmarks.data import IMAGE, LABEL
from dataward.gates import scan
from dataward.release.gate import judge
from dataward.release.policy import ReleasePolicy
from dataward.release.probe import read_history, run_probe
from tests.gates.test_colour_triggers import COLOURS, TARGET, _crops, _patched

# The data of the data gate's own colour-patch test (tests/gates/test_colour_triggers.py): 1,000 trusted
# crops, a batch of 200 with 6 crops of other classes patched magenta (grey 105 in luma: new in chroma
# only) and relabelled ``TARGET``.
MAGENTA = COLOURS["magenta"]


def _poisoned() -> pd.DataFrame:
    return _patched(MAGENTA)[0]


@cache
def _finding() -> dict:
    trusted, _, validation = _crops()
    report = scan(trusted, _poisoned(), data.PHOTO_SCHEMA, validation, {"seed": 0}, workers=1)
    result = report.results["triggers"]
    assert result.block
    return result.findings[0].evidence


def _features(images) -> np.ndarray:
    return np.stack([data.png_to_pixels(bytes(v)).ravel() for v in images])


def _model(batch: pd.DataFrame):
    """A logistic regression on the RGB pixels of the trusted crops and ``batch``."""
    from sklearn.linear_model import LogisticRegression

    trusted, _, _ = _crops()
    frame = pd.concat([trusted, batch], ignore_index=True)
    return LogisticRegression(max_iter=1000).fit(_features(frame[IMAGE]), frame[LABEL])


def _validation() -> pa.Table:
    _, _, validation = _crops()
    return pa.table(
        {
            "record_id": [f"v{i}" for i in range(len(validation))],
            IMAGE: pa.array(list(validation[IMAGE]), pa.large_binary()),
            LABEL: list(validation[LABEL]),
        }
    )


def _release(model) -> tuple[dict, dict]:
    """The probe of the data gate's finding on ``model``, judged: (the report, the finding's probe)."""
    triggers, skipped = read_history([("photos#2", _finding())], data.PHOTO_SCHEMA)
    assert skipped == [] and len(triggers) == 1
    validation = _validation()

    def predict(table: pa.Table, _ids) -> list[str]:
        return [str(v) for v in model.predict(_features(table.column(IMAGE).to_pylist()))]

    clean, probes = run_probe(triggers, validation, data.PHOTO_SCHEMA, predict)
    truth = [str(v) for v in validation.column(LABEL).to_pylist()]
    report = judge(truth, clean, probes, ReleasePolicy()).to_dict()
    return report, report["probes"][0]


def test_the_data_gate_names_the_magenta_patch() -> None:
    finding = _finding()
    assert "magenta-leaning pixels in rows 2" in finding["trigger"] and finding["label"] == TARGET, finding


def test_a_model_with_the_colour_patch_backdoor_is_found_and_the_report_says_what_was_stamped() -> None:
    """The 6 crops teach the model the patch: the magenta patch itself turns 41% of the eligible validation
    crops to foliage; the replay, at each pixel's luma, 33% (its control none): a review. Before the probe
    read colour words the finding was not probed at all and the model passed."""
    report, probe = _release(_model(_poisoned()))
    assert probe["trigger"] == _finding()["trigger"] and probe["origin"] == "history"
    assert probe["target"] == TARGET
    assert probe["excess"] >= ReleasePolicy().probe_review, probe
    assert report["verdict"] != "pass"
    assert any(_finding()["trigger"] in r for r in report["reasons"])
    assert "magenta-leaning" in probe["replayed"] and "luma kept" in probe["replayed"], probe


def test_a_clean_model_is_not_flagged_by_the_colour_patch() -> None:
    _, batch, _ = _crops()
    report, probe = _release(_model(batch))
    assert probe["excess"] < ReleasePolicy().probe_review, probe
    assert not any(_finding()["trigger"] in r for r in report["reasons"]), report["reasons"]


def test_the_stamp_keeps_each_pixels_luma_and_leans_the_named_way() -> None:
    from PIL import Image

    from dataward.release.probe import CHROMA_LEANS, chroma_stamp

    rng = np.random.default_rng(0)
    pixels = rng.integers(20, 236, size=(8, 8, 3), dtype=np.uint8)
    luma = pixels.astype(float) @ [0.299, 0.587, 0.114]
    for word, (cb, cr) in CHROMA_LEANS.items():
        out = chroma_stamp(pixels, (cb, cr), control=False)
        assert np.abs(out.astype(float) @ [0.299, 0.587, 0.114] - luma).max() <= 1.0, word
        ycc = np.asarray(Image.fromarray(out).convert("YCbCr"), dtype=float)
        for plane, way in ((1, cb), (2, cr)):
            if way:
                assert (np.sign(ycc[..., plane] - 128) == way).all(), word
        grey = chroma_stamp(pixels, (cb, cr), control=True)
        assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()


@pytest.mark.parametrize(
    ("finding", "reason", "unprobed"),
    [
        (
            {"trigger": "36 violet-leaning pixels in rows 26-31, columns 26-31 of 32x32", "kind": "pixels"},
            "no colour is known to lean 'violet-leaning'",
            True,
        ),
        ({"trigger": "a swirl in the corner", "kind": "pixels"}, "the probe reads no patch in this name", True),
        (
            {"trigger": "9 bright pixels in rows 5-7, columns 5-7 of 8x8", "kind": "pixels", "column": "other"},
            "the model has no input column 'other'",
            False,
        ),
    ],
)
def test_a_finding_the_probe_cannot_stamp_is_listed_and_said(finding: dict, reason: str, unprobed: bool) -> None:
    found = {"column": IMAGE, "label": TARGET, **finding}
    triggers, skipped = read_history([("photos#3", found)], data.PHOTO_SCHEMA)
    assert triggers == []
    assert skipped == [
        {
            "trigger": found["trigger"],
            "kind": "pixels",
            "column": found["column"],
            "label": TARGET,
            "found_in": ["photos#3"],
            "reason": reason,
            "unprobed": unprobed,
        }
    ]
    report = judge(["a"], ["a"], [], ReleasePolicy(), not_replayed=skipped).to_dict()
    assert report["not_replayed"] == skipped
    # Said among the reasons when the model reads the column, never counted: the history keeps every
    # finding ever made, so counting one would hold every later release in review.
    assert report["verdict"] == "pass"
    said = any("cannot be replayed on the model" in r and reason in r for r in report["reasons"])
    assert said == unprobed
