"""scan() as a library call: odd but legitimate tables work, malformed ones are refused with an
``InputError`` naming the problem, never with pandas', Arrow's or Python's own exception."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataward.domain.errors import InputError
from dataward.gates import scan

ONLY = {"detectors": ["outliers"]}


def test_a_column_name_given_twice_is_refused_on_every_side_and_in_every_form(wine, tmp_path) -> None:
    """Which of two same-named columns a detector reads is undefined: pandas hands back a frame
    (AttributeError), Arrow refuses the lookup (KeyError). Each form is refused, naming the column."""
    baseline, contribution, schema = wine
    twice = pd.concat([contribution, contribution[["f0"]]], axis=1)
    table = pa.Table.from_pandas(contribution, preserve_index=False)
    table = table.append_column("f0", table.column("f0"))
    pq.write_table(table, tmp_path / "twice.parquet")
    for given in (twice, table, table.to_batches()[0], tmp_path / "twice.parquet", iter(table.to_batches())):
        with pytest.raises(InputError, match="the contribution has more than one column named 'f0'"):
            scan(baseline, given, schema, policy=ONLY)
    with pytest.raises(InputError, match="the baseline has more than one column named 'f0'"):
        scan(pd.concat([baseline, baseline[["f0"]]], axis=1), contribution, schema, policy=ONLY)
    with pytest.raises(InputError, match="the validation set has more than one column named 'label'"):
        scan(baseline, contribution, schema, validation=pd.concat([baseline, baseline[["label"]]], axis=1), policy=ONLY)


def test_a_column_name_given_twice_is_refused_when_a_table_is_scored_in_partitions(wine, tmp_path) -> None:
    """With an engine (or a partitioned other side) a DataFrame is cut into partitions first: pandas'
    ValueError ('Duplicate column names found') escaped there."""
    baseline, contribution, schema = wine
    pq.write_table(pa.Table.from_pandas(contribution, preserve_index=False), tmp_path / "c.parquet")
    with pytest.raises(InputError, match="the contribution has more than one column named 'f0'"):
        scan(baseline, pd.concat([contribution, contribution[["f0"]]], axis=1), schema, policy=ONLY, engine="local")
    with pytest.raises(InputError, match="the baseline has more than one column named 'f0'"):
        scan(pd.concat([baseline, baseline[["f0"]]], axis=1), tmp_path / "c.parquet", schema, policy=ONLY)


@pytest.mark.parametrize("rows", [0, "100", 2.5, True, None])
def test_partition_rows_must_be_a_whole_number_of_at_least_one(wine, rows) -> None:
    baseline, contribution, schema = wine
    with pytest.raises(InputError, match=f"partition_rows must be a whole number of at least 1, got {rows!r}"):
        scan(baseline, contribution, schema, policy=ONLY, engine="local", partition_rows=rows)


def test_groups_given_as_a_list_is_an_input_error(wine) -> None:
    """``groups`` maps a name to per-row keys; one list of keys (the natural slip) failed with
    AttributeError ('list' object has no attribute 'items')."""
    baseline, contribution, schema = wine
    with pytest.raises(InputError, match="groups must map a group name to one key per contribution row, not list"):
        scan(baseline, contribution, schema, policy=ONLY, groups=["a"] * len(contribution))
    keyed = pd.Series(
        ["a", "b"] * (len(contribution) // 2) + ["a"] * (len(contribution) % 2), index=contribution.index + 7
    )
    report = scan(baseline, contribution, schema, policy=ONLY, groups={"source": keyed})
    assert [g["key"] for g in report.to_dict()["groups"]["source"]] == ["a", "b"]


def test_a_row_column_with_a_missing_row_number_is_refused(wine) -> None:
    """The optional ``row`` column numbers the records in the submitted file; a missing number (NaN in
    pandas) passed the checks and failed at the end of the scan with Python's ValueError."""
    baseline, contribution, schema = wine
    rows = [float(i + 1) for i in range(len(contribution))]
    rows[3] = float("nan")
    with pytest.raises(InputError, match="the contribution's column 'row' has a missing value"):
        scan(baseline, contribution.assign(row=rows), schema, policy=ONLY)


def test_an_embedding_of_the_wrong_width_is_refused_naming_the_side_and_column() -> None:
    """The message said only "expected embeddings of dimension 4, got 5"."""
    schema = {"label": "label", "inputs": [{"name": "vec", "kind": "embedding", "dim": 4}]}
    rng = np.random.default_rng(0)
    baseline = pd.DataFrame({"vec": list(rng.normal(size=(60, 4))), "label": ["a", "b"] * 30})
    wide = pd.DataFrame({"vec": list(rng.normal(size=(20, 5))), "label": ["a", "b"] * 10})
    ragged = pd.DataFrame({"vec": [np.zeros(4)] * 19 + [np.zeros(3)], "label": ["a", "b"] * 10})
    with pytest.raises(
        InputError, match="the contribution's embedding column 'vec': expected embeddings of dimension 4, got 5"
    ):
        scan(baseline, wide, schema, policy=ONLY)
    with pytest.raises(
        InputError, match="the validation set's embedding column 'vec': embeddings in one column must all"
    ):
        scan(baseline, baseline, schema, validation=ragged, policy=ONLY)


def test_a_list_of_record_batches_is_refused_naming_every_accepted_form(wine) -> None:
    """An iterator of record batches is read in partitions, a list of them was refused as if only a
    DataFrame or a Table were accepted; the message names the other forms and how to pass the list."""
    baseline, contribution, schema = wine
    batches = pa.Table.from_pandas(contribution, preserve_index=False).to_batches(max_chunksize=50)
    with pytest.raises(InputError, match="an iterator of record batches\\), not list") as caught:
        scan(baseline, batches, schema, policy=ONLY)
    assert "iter(" in (caught.value.hint or "")
    assert len(scan(baseline, iter(batches), schema, policy=ONLY).records.record_ids) == len(contribution)
    with pytest.raises(InputError, match="the validation set must be a pandas DataFrame or a pyarrow Table, not list"):
        scan(baseline, contribution, schema, validation=batches, policy=ONLY)


@pytest.mark.parametrize("value", [1e39, 1e100, 1e300])
def test_a_finite_number_beyond_float32_is_judged_as_any_extreme_value(wine, value) -> None:
    """One record holding 1e100 in a numeric column (finite, so accepted) made its feature infinite in
    float32 and failed the whole scan with numpy's LinAlgError: in a ward the contribution could never
    be gated. It is now scored as a record far out but within float32 (1e35) is: the most extreme."""
    baseline, contribution, schema = wine

    def judged(x: float):
        extreme = contribution.copy()
        extreme.loc[0, "f0"] = x
        return scan(baseline, extreme, schema)

    report, far = judged(value), judged(1e35)
    assert report.verdict == far.verdict and report.reasons == far.reasons
    assert np.array_equal(report.records.score, far.records.score)
    assert report.results["outliers"].p_values[0] == report.results["outliers"].p_values.min()


def test_labels_mixing_numbers_and_text_are_the_labels_they_spell(wine) -> None:
    """Two frames concatenated, one with labels 0, 1, 2 and one with '0', '1', '2', give an object
    column Arrow cannot type: scan refused it ('Could not convert '1' with type str') where a ward's
    contribute reads it; 1 and '1' are one label, as everywhere in dataward."""
    baseline, contribution, schema = wine
    half = len(contribution) // 2
    mixed = contribution.assign(label=[*contribution["label"][:half], *contribution["label"][half:].astype(str)])
    assert mixed["label"].dtype == object
    report, plain = scan(baseline, mixed, schema, policy=ONLY), scan(baseline, contribution, schema, policy=ONLY)
    assert report.records.record_ids == plain.records.record_ids
    assert json.dumps(report.to_dict()) == json.dumps(plain.to_dict())
    missing = mixed.astype({"label": object})
    missing.loc[3, "label"] = None
    with pytest.raises(InputError, match="the contribution's column 'label' has a missing value"):
        scan(baseline, missing, schema, policy=ONLY)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (lambda n: list(range(n)), "holds 0: expected text, got int"),
        (lambda n: [b"abc"] * n, "holds b'abc': expected text, got bytes"),
        (lambda n: [float("inf")] * n, "holds inf: expected text, got float"),
    ],
    ids=["int", "bytes", "inf"],
)
def test_a_text_column_holding_no_text_is_refused_as_import_refuses_it(text_sets, values, message) -> None:
    """scan cast such values to their text ('0', 'abc', 'inf') and judged them, where a ward's import
    of the same values refuses them."""
    baseline, contribution, schema = text_sets
    with pytest.raises(InputError, match=f"the contribution's column 'text' {message}"):
        scan(baseline, contribution.assign(text=values(len(contribution))), schema, policy=ONLY)
    missing = contribution.assign(text=[None, *contribution["text"][1:]])
    assert len(scan(baseline, missing, schema, policy=ONLY).records.record_ids) == len(contribution)


def test_a_contribution_label_that_is_not_visible_text_is_refused_as_import_refuses_it(text_sets) -> None:
    """A label with an ESC looks like another one on every screen; import refuses it, scan judged it."""
    baseline, contribution, schema = text_sets
    hidden = contribution.assign(label=[f"{contribution['label'][0]}\x1b[8m", *contribution["label"][1:]])
    with pytest.raises(InputError, match="U\\+001B ESCAPE"):
        scan(baseline, hidden, schema, policy=ONLY)


def _pil_images(pngs: pd.Series) -> list:
    from PIL import Image

    images = []
    for data in pngs:
        with Image.open(io.BytesIO(data)) as image:
            images.append(image.copy())
    return images


def test_pil_images_in_an_image_column_are_the_png_bytes_of_their_pixels(digit_images) -> None:
    """A frame of PIL images (as Hugging Face datasets hand them out) is scanned as the PNG bytes of the
    same pixels: the same record ids and the same report as the bytes themselves."""
    baseline, contribution, schema = digit_images
    contribution = contribution.iloc[:120].reset_index(drop=True)
    as_images = contribution.assign(image=_pil_images(contribution["image"]))
    policy = {"detectors": ["duplicates", "outliers"]}
    from_bytes = scan(baseline, contribution, schema, policy=policy)
    from_images = scan(baseline.assign(image=_pil_images(baseline["image"])), as_images, schema, policy=policy)
    assert from_images.records.record_ids == from_bytes.records.record_ids
    assert json.dumps(from_images.to_dict(), sort_keys=True) == json.dumps(from_bytes.to_dict(), sort_keys=True)


def test_an_image_value_that_cannot_be_taken_is_refused_naming_the_side_column_and_row(digit_images) -> None:
    from PIL import Image

    baseline, contribution, schema = digit_images
    contribution = contribution.iloc[:20].reset_index(drop=True)
    cmyk = contribution.astype({"image": object})
    cmyk.at[3, "image"] = Image.new("CMYK", (8, 8))
    with pytest.raises(InputError, match=r"the contribution's image column 'image', row 4: .*CMYK.*convert"):
        scan(baseline, cmyk, schema, policy=ONLY)
    path = contribution.astype({"image": object})
    path.at[0, "image"] = "digit.png"
    with pytest.raises(InputError, match=r"the contribution's image column 'image', row 1: .*str.*PIL image"):
        scan(baseline, path, schema, policy=ONLY)
    arrays = contribution.astype({"image": object})
    arrays.at[5, "image"] = np.zeros((2, 2, 2))
    with pytest.raises(InputError, match=r"the contribution's image column 'image', row 6: .*shape \(2, 2, 2\)"):
        scan(baseline, arrays, schema, policy=ONLY)
