"""The benchmark datasets: real, offline, in the shape the gates take, split without overlap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import data
from benchmarks.make_text_sample import clean_troff, name_line, sample
from dataward.domain.errors import InputError
from dataward.domain.schema import ColumnKind


def test_man_sections_sample_is_shipped_balanced_and_clean():
    ds = data.load_man_sections()
    counts = ds.frame[data.LABEL].value_counts()
    assert 2000 <= len(ds.frame) <= 5000
    assert set(counts.index) == {"commands", "syscalls", "library", "formats", "overview", "admin"}
    assert counts.min() >= 150 and counts.max() <= 500
    assert not ds.frame[data.TEXT].duplicated().any()
    assert ds.frame[data.TEXT].str.contains(" - ").all()
    assert not ds.frame[data.TEXT].str.contains(r"\\f", regex=True).any()  # no troff font escapes left
    assert ds.schema.column("text").kind is ColumnKind.TEXT


def test_digits_are_png_bytes_that_decode_to_the_original_pixels():
    ds = data.load_digits()
    assert ds.schema.column("image").kind is ColumnKind.IMAGE
    first = ds.frame[data.IMAGE].iloc[0]
    assert first.startswith(b"\x89PNG")
    from sklearn.datasets import load_digits

    original = load_digits().images[0] / 16.0
    assert np.abs(data.png_to_pixels(first) - original).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("name", sorted(data.LOADERS))
def test_split_parts_are_disjoint_stratified_and_complete(name):
    ds = data.load(name)
    parts = data.split(ds, seed=0)
    sizes = [len(p) for p in (parts.baseline, parts.validation, parts.pool, parts.test)]
    assert sum(sizes) == len(ds.frame)
    key = [c.name for c in ds.schema.inputs]
    rows = pd.concat([parts.baseline, parts.validation, parts.pool, parts.test])[[*key, data.LABEL]]
    assert len(set(map(tuple, rows.itertuples(index=False)))) == len(rows.drop_duplicates())
    for part in (parts.baseline, parts.pool, parts.test):
        assert set(part[data.LABEL]) == set(ds.classes)


def test_bad_names_and_fractions_are_refused():
    with pytest.raises(InputError, match="unknown dataset"):
        data.load("imagenet")
    with pytest.raises(InputError, match="fractions"):
        data.split(data.load_wine(), fractions=(0.5, 0.5, 0.5, 0.5))


def test_a_wrongly_shaped_text_file_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,section\nls - list,1\n", encoding="utf-8")
    with pytest.raises(InputError, match="text,label"):
        data.load_man_sections.__wrapped__(bad)


def test_name_lines_are_read_from_man_and_mdoc_markup():
    man = ".TH LS 1\n.SH NAME\nls \\- list directory \\fBcontents\\fR\n.SH SYNOPSIS\n.B ls\n"
    assert name_line(man) == "ls - list directory contents"
    mdoc = ".Dd x\n.Sh NAME\n.Nm ssh\n.Nd OpenSSH remote login client\n.Sh SYNOPSIS\n"
    assert name_line(mdoc) == "ssh - OpenSSH remote login client"
    assert name_line(".TH X 1\n.SH DESCRIPTION\nnothing\n") is None
    assert clean_troff(r"\fIfoo\fP \(em bar") == "foo - bar"


def test_sampling_caps_each_class_and_one_dominant_first_word():
    found = {"a": [f"gcloud thing{i} - x" for i in range(50)] + [f"t{i} - y" for i in range(50)]}
    rows = sample(found, per_class=40, seed=0)
    assert len(rows) == 40
    assert sum(text.startswith("gcloud") for text, _ in rows) <= 3


def test_photo_crops_are_32x32_colour_pngs_labelled_by_where_they_come_from():
    crops = data.photo_crops(200, seed=3)
    assert crops[data.LABEL].value_counts().to_dict() == {c: 50 for c in data.PHOTO_CLASSES}
    assert not crops[["photo", "y", "x", "side"]].duplicated().any()
    assert crops[data.IMAGE].iloc[0].startswith(b"\x89PNG")
    assert data.images_of(crops).shape == (200, 32, 32, 3)
    temple, _, integral = data._photo_sources()
    height = temple.shape[0]
    for row in crops.itertuples(index=False):
        assert data.PHOTO_WINDOW[0] <= row.side <= data.PHOTO_WINDOW[1]
        if row.photo == "temple":
            top = row.y + row.side <= 0.45 * height + 1
            assert row.label == ("temple_sky" if top else "temple_garden")
            assert top or row.y >= 0.55 * height - 1
        else:
            y, x, s = row.y, row.x, row.side
            petals = (integral[y + s, x + s] - integral[y, x + s] - integral[y + s, x] + integral[y, x]) / s**2
            assert (petals >= 0.8) if row.label == "petals" else (petals <= 0.01)
    pd.testing.assert_frame_equal(crops, data.photo_crops(200, seed=3))


def test_photos_dataset_and_iris_load():
    photos = data.load_photos()
    assert len(photos.frame) == data.PHOTO_COUNT and photos.modality == "image"
    assert data.load_iris().frame.shape == (150, 5)


def test_recombined_lines_keep_each_section_and_never_repeat_a_line():
    ds = data.load_man_sections()
    parts = data.split(ds, 0)
    made = data.recombined_lines(parts.baseline, 1000, seed=1, exclude=set(parts.pool[data.TEXT]))
    assert len(made) == 1000 and not made[data.TEXT].duplicated().any()
    assert not set(made[data.TEXT]) & (set(parts.baseline[data.TEXT]) | set(parts.pool[data.TEXT]))
    names = parts.baseline[data.TEXT].str.split(" - ", n=1).str[0]
    descs = parts.baseline[data.TEXT].str.split(" - ", n=1).str[1]
    by_label = {
        label: (set(names[parts.baseline[data.LABEL] == label]), set(descs[parts.baseline[data.LABEL] == label]))
        for label in ds.classes
    }
    for text, label in made.itertuples(index=False):
        name, desc = text.split(" - ", 1)
        assert name in by_label[label][0] and desc in by_label[label][1]
    shares = made[data.LABEL].value_counts(normalize=True)
    expected = parts.baseline[data.LABEL].value_counts(normalize=True)
    assert (shares - expected).abs().max() < 0.01
