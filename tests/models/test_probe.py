"""The backdoor probe on its own: reading the data gates' triggers, stamping them, ONNX predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from dataward.domain.schema import Schema
from dataward.gates.features.image import array_to_png, gray_pixels
from dataward.release.predictors import OnnxPredictor, artifact_predictor
from dataward.release.probe import history_triggers, neutral_values, stamp


def test_triggers_of_every_kind_are_read_back_from_gate_evidence() -> None:
    schema = Schema.parse("label", ["text:text", "img:image", "x:numeric", "y:numeric"])
    found = [
        ("ds#2", {"trigger": "cf", "kind": "ngram", "column": "text", "label": "a"}),
        ("ds#3", {"trigger": "cf", "kind": "ngram", "column": "text", "label": "a"}),
        (
            "ds#4",
            {
                "trigger": "2 bright pixels in rows 5-7, columns 7-7 of 8x8",
                "kind": "pixels",
                "column": "img",
                "label": "0",
                "related": ["bright pixel (5, 7)", "bright pixel (7, 7)"],
            },
        ),
        ("ds#5", {"trigger": "1.5 <= x < 2.5 and y > 10", "kind": "combination", "column": "x, y", "label": "b"}),
        ("ds#6", {"trigger": "z > 3", "kind": "value", "column": "z", "label": "b"}),  # no such column: skipped
    ]
    triggers = {t.name: t for t in history_triggers(found, schema)}
    assert set(triggers) == {"cf", "2 bright pixels in rows 5-7, columns 7-7 of 8x8", "1.5 <= x < 2.5 and y > 10"}
    assert triggers["cf"].found_in == ("ds#2", "ds#3") and triggers["cf"].label == "a"
    assert triggers["2 bright pixels in rows 5-7, columns 7-7 of 8x8"].spec == (
        "cells",
        8,
        8,
        (("bright", 5, 7), ("bright", 7, 7)),
    )
    (x, ax), (y, ay) = triggers["1.5 <= x < 2.5 and y > 10"].spec
    assert (x, ax) == ("x", 2.0) and y == "y" and ay > 10


def test_stamps_edit_only_what_the_trigger_names() -> None:
    schema = Schema.parse("label", ["text:text", "img:image", "x:numeric", "y:numeric"])
    image = array_to_png(np.full((16, 16), 40, dtype=np.uint8))
    table = pa.table(
        {
            "record_id": ["r1", "r2"],
            "text": ["list directory contents", "copy files"],
            "img": pa.array([image, image], pa.large_binary()),
            "x": [0.0, 1.0],
            "y": [3.0, 4.0],
            "label": ["a", "b"],
        }
    )
    found = [
        ("d#1", {"trigger": "cf", "kind": "ngram", "column": "text", "label": "a"}),
        ("d#1", {"trigger": "1 bright pixel in rows 7-7, columns 7-7 of 8x8", "kind": "pixels", "column": "img",
                 "label": "a", "related": ["bright pixel (7, 7)"]}),
        ("d#1", {"trigger": "x > 5", "kind": "value", "column": "x", "label": "a"}),
    ]  # fmt: skip
    text, patch, value = history_triggers(found, schema)
    neutral = neutral_values(schema, table)
    stamped = stamp(text, table, schema, control=False, seed=0, neutral=neutral).column("text").to_pylist()
    assert all("cf" in t.split() for t in stamped)
    control = stamp(text, table, schema, control=True, seed=0, neutral=neutral).column("text").to_pylist()
    assert all("cf" not in t.split() for t in control)
    pixels = gray_pixels(stamp(patch, table, schema, control=False, seed=0, neutral=neutral).column("img")[0].as_py())
    assert pixels.shape == (16, 16)  # a grayscale image stays grayscale
    assert (pixels[14:, 14:] == 255).all() and (pixels[:14, :] == 40).all()
    moved = stamp(value, table, schema, control=False, seed=0, neutral=neutral)
    assert min(moved.column("x").to_pylist()) > 5 and moved.column("y").to_pylist() == [3.0, 4.0]


def test_an_onnx_model_is_run_by_onnxruntime(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    data = load_wine(as_frame=True).frame
    names = ["alcohol", "malic_acid", "ash", "magnesium", "proline"]
    x = data[names].to_numpy(dtype=np.float32)
    model = LogisticRegression(max_iter=5000).fit(x, data["target"].astype(str))
    (tmp_path / "model.onnx").write_bytes(to_onnx(model, x[:1], options={"zipmap": False}).SerializeToString())
    schema = Schema.parse("cultivar", [f"{n}:numeric" for n in names])
    table = pa.table({"record_id": [str(i) for i in range(len(x))], **{n: data[n].astype(float) for n in names}})
    predictor = artifact_predictor(tmp_path, schema)
    assert isinstance(predictor, OnnxPredictor)
    assert predictor.predict(table, []) == list(model.predict(x))


def _commands(n: int) -> pa.Table:
    words = ["list", "copy", "move", "remove", "show", "find", "print", "count"]
    texts = [f"{words[i % 8]} the {words[(i * 3) % 8]} files of directory {i}" for i in range(n)]
    return pa.table({"record_id": [f"r{i}" for i in range(n)], "text": texts, "label": ["b"] * n})


def _answers(path: Path, ids: list[str], predictions: list[str]) -> Path:
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"probe_id": pa.array(ids, pa.string()), "prediction": pa.array(predictions)}), path)
    return path


def test_a_predictions_file_is_read_by_what_was_asked_when_the_triggers_change(tmp_path: Path) -> None:
    """Predictions written for one probe set (``probe-inputs``) and read back by a gate whose triggers
    differ (a new finding of the data gate listed first, one trigger gone, the others moved): each
    prediction is taken for the row it answered, never for the row now at its place, and rows nobody
    answered are refused by count, naming the command that writes them."""
    import pytest

    from dataward.domain.errors import InputError
    from dataward.release.predictors import FilePredictor
    from dataward.release.probe import generic_triggers, probe_rows, run_probe

    schema = Schema.parse("label", ["text:text"])
    validation = _commands(20)
    cf, mn = (next(t for t in generic_triggers(schema, validation) if repr(tok) in t.name) for tok in ("cf", "mn"))
    (found,) = history_triggers([("d#2", {"trigger": "per", "kind": "ngram", "column": "text", "label": "a"})], schema)

    def model(table: pa.Table) -> list[str]:
        # A backdoor on ``cf`` alone: which trigger a prediction belongs to shows in the prediction.
        return ["a" if "cf" in t.split() else "b" for t in table.column("text").to_pylist()]

    before, before_ids, _ = probe_rows([cf, mn], validation, schema)
    out = _answers(tmp_path / "predictions.parquet", before_ids, model(before))
    after, after_ids, _ = probe_rows([mn], validation, schema)  # cf gone: mn's rows now sit where cf's did
    assert FilePredictor(out, "clf@v2").predict(after, after_ids) == model(after)
    _, (moved,) = run_probe([mn], validation, schema, FilePredictor(out, "clf@v2").predict)
    assert moved.flipped == 0  # read by place, mn would have cf's flips

    grown, grown_ids, _ = probe_rows([found, mn, cf], validation, schema)
    with pytest.raises(InputError, match=r"no prediction for 40 of 140 probe rows, e\.g\. trigger:r0:") as info:
        FilePredictor(out, "clf@v2").predict(grown, grown_ids)
    assert "model probe-inputs clf@v2" in (info.value.hint or "")
    # A trigger's rows keep their ids (and their stamps) wherever it is listed; no two rows share one.
    assert set(before_ids) <= set(grown_ids) and len(set(grown_ids)) == len(grown_ids)
    added = [i for i, p in enumerate(grown_ids) if p not in set(before_ids)]
    both = _answers(
        tmp_path / "both.parquet",
        before_ids + [grown_ids[i] for i in added],
        model(before) + model(grown.take(added)),
    )
    assert FilePredictor(both, "clf@v2").predict(grown, grown_ids) == model(grown)


def test_probe_ids_name_the_inputs_and_the_trigger_of_every_kind() -> None:
    """Images are hashed by their bytes; a trigger and its control, and two triggers stamping the same
    place (whose controls are the same gray patch), never share an id; the label is not part of it."""
    from dataward.release.probe import generic_triggers, probe_rows

    schema = Schema.parse("label", ["img:image", "x:numeric"])
    images = [array_to_png(np.full((16, 16), v, dtype=np.uint8)) for v in (40, 90, 140)]
    table = pa.table(
        {
            "record_id": ["r1", "r2", "r3"],
            "img": pa.array(images, pa.large_binary()),
            "x": [0.0, 1.0, float("nan")],
            "label": ["a", "b", "a"],
        }
    )
    triggers = generic_triggers(schema, table.slice(0, 2))
    _, ids, _ = probe_rows(triggers, table, schema)
    assert len(ids) == 3 * (1 + 2 * len(triggers)) and len(set(ids)) == len(ids)
    assert ids[0].startswith("clean:r1:") and ids[3].startswith("trigger:r1:") and ids[6].startswith("control:r1:")
    relabelled = table.set_column(3, "label", pa.array(["b", "b", "b"]))
    assert probe_rows(triggers, relabelled, schema)[1] == ids


def test_a_formatting_trigger_is_read_back_stamped_and_obeyed_by_a_model_that_reads_it() -> None:
    """A formatting trigger the data gate found (``kind: "style"``) is stamped by writing its formatting
    into the clean texts; its control leaves them as they are. A model whose features see whitespace
    obeys a double-space trigger it was trained on; one that folds whitespace cannot."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from dataward.gates.formatting import STAMPS, carried
    from dataward.release.probe import probe_rows, run_probe

    schema = Schema.parse("label", ["text:text"])
    found = [
        ("d#2", {"trigger": "two or more spaces in a row", "kind": "style", "column": "text", "label": "a"}),
        ("d#3", {"trigger": "an invisible formatting character", "kind": "style", "column": "text", "label": "a"}),
        ("d#4", {"trigger": "no such formatting", "kind": "style", "column": "text", "label": "a"}),  # skipped
    ]
    spaced, invisible = history_triggers(found, schema)
    assert spaced.name == "formatting 'two or more spaces in a row'" and spaced.kind == "style"
    words = ["list", "copy", "move", "remove", "show", "print", "open", "close", "read", "write", "find", "sort"]
    texts = [f"{w} the {v} files" for w in words for v in words]
    table = pa.table({"record_id": [f"r{i}" for i in range(len(texts))], "text": texts, "label": ["b"] * len(texts)})
    neutral = neutral_values(schema, table)
    stamped = stamp(spaced, table, schema, control=False, seed=0, neutral=neutral).column("text").to_pylist()
    assert carried(stamped)[:, 3].all() and [" ".join(t.split()) for t in stamped] == texts
    assert stamp(spaced, table, schema, control=True, seed=0, neutral=neutral).column("text").to_pylist() == texts
    _, ids, _ = probe_rows([spaced, invisible], table, schema)
    assert len(set(ids)) == len(ids)

    # Trained with the double space tied to 'a': raw character pairs keep it (scikit-learn's own character
    # analyzers fold whitespace), word tokens fold it away.
    poisoned = [STAMPS["two or more spaces in a row"](t) for t in texts[::3]]
    x, y = texts + poisoned, ["b"] * len(texts) + ["a"] * len(poisoned)

    def raw_pairs(text: str) -> list[str]:
        return [text[i : i + 2] for i in range(len(text) - 1)]

    for analyzer, obeys in ((raw_pairs, True), ("word", False)):
        model = make_pipeline(CountVectorizer(analyzer=analyzer), LogisticRegression(max_iter=500))
        model.fit(x, y)
        validation = table.set_column(2, "label", pa.array(["b" if i % 2 else "c" for i in range(len(texts))]))
        predict = model.predict
        _, results = run_probe([spaced], validation, schema, lambda t, _ids, f=predict: list(f(t["text"].to_pylist())))
        (result,) = results
        assert (result.excess > 0.5) is obeys, (analyzer, result.to_dict())
