"""The second held-out set builds what it says: benign situations change only what they state, and
attacks plant exactly the stated poison. No gate runs here (these cases are measured once, elsewhere)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from benchmarks import attacks, data, review_queue, shifts
from benchmarks.attacks import heldout2 as attacks2
from benchmarks.attacks.heldout import HELDOUT_ATTACKS
from benchmarks.attacks.heldout2 import HELDOUT2_ATTACKS, build_heldout2
from benchmarks.shifts import heldout2
from benchmarks.shifts.base import EXTRA_KINDS, KINDS, SMALL_CONTRIBUTION, parts, sized
from dataward.domain.errors import InputError


@pytest.fixture(scope="module")
def small() -> dict[str, shifts.Situation]:
    return {s.name: s for s in shifts.benign_situations(seed=0, size="small", group="heldout2")}


@pytest.fixture(scope="module")
def cases() -> dict[str, attacks.AttackCase]:
    return {name: build_heldout2(name, seed=0) for name in HELDOUT2_ATTACKS}


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return list(map(tuple, frame.itertuples(index=False)))


def _pool(situation: shifts.Situation) -> pd.DataFrame:
    """The pool records a sensor or register situation rewrote, in the order it drew them."""
    split = parts(data.load(situation.dataset), 0, "small")
    return sized(split.pool, "small", SMALL_CONTRIBUTION, np.random.default_rng(0))


def _misreads(noisy: str, original: str) -> int | None:
    """How many characters of ``original`` were replaced by their OCR look-alike to give ``noisy``
    (None when ``noisy`` cannot be made that way)."""
    j, count = 0, 0
    for char in original:
        if noisy.startswith(char, j):
            j += 1
        elif char in heldout2.OCR_CONFUSIONS and noisy.startswith(heldout2.OCR_CONFUSIONS[char], j):
            j += len(heldout2.OCR_CONFUSIONS[char])
            count += 1
        else:
            return None
    return count if j == len(noisy) else None


# --- benign -------------------------------------------------------------------------------------


def test_the_second_heldout_set_is_its_own_never_tuned_group(small):
    assert len(shifts.HELDOUT2) >= 8 and list(small) == list(shifts.HELDOUT2)
    assert set(shifts.HELDOUT2).isdisjoint(shifts.TUNING) and set(shifts.HELDOUT2).isdisjoint(shifts.HELDOUT)
    assert shifts.GROUPS["heldout2"] is shifts.HELDOUT2
    assert "NEVER TUNED ON" in heldout2.__doc__ and "2026-12-02" in heldout2.__doc__
    assert {s.group for s in small.values()} == {"heldout2"}
    assert {s.kind for s in small.values()} <= {*KINDS, *EXTRA_KINDS}
    assert {s.modality for s in small.values()} == {"text", "image", "tabular"}
    assert set(shifts.HELDOUT2) <= {s.name for s in shifts.benign_situations(0, "small", "all")}


def test_every_situation_is_deterministic_clean_and_small(small):
    for name, s in small.items():
        columns = [c.name for c in s.schema.inputs] + [s.schema.label]
        for frame in (s.baseline, s.validation, s.contribution):
            assert list(frame.columns) == columns, name
        assert set(s.contribution[data.LABEL]) <= set(data.load(s.dataset).classes), name
        assert len(s.baseline) <= 600 and 0 < len(s.contribution) <= 4 * SMALL_CONTRIBUTION, name
        assert not s.as_case().poison.any()
        pd.testing.assert_frame_equal(shifts.build(name, 0, "small").contribution, s.contribution)


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("jpeg_recompressed_photos", heldout2.jpeg_roundtrip),
        ("low_resolution_photos", heldout2.resampled),
    ],
)
def test_sensor_situations_apply_their_transform_to_every_image_and_keep_labels(small, name, fn):
    s, pool = small[name], _pool(small[name])
    assert s.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    expected = [data.pixels_to_png(np.clip(fn(data.png_to_pixels(b)), 0, 1)) for b in pool[data.IMAGE]]
    assert s.contribution[data.IMAGE].tolist() == expected
    assert (s.contribution[data.IMAGE] != pool[data.IMAGE]).mean() > 0.9


def test_sensor_noise_and_skew_change_pixels_not_content(small):
    noisy, pool = small["noisy_sensor_photos"], _pool(small["noisy_sensor_photos"])
    assert noisy.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    diff = data.images_of(noisy.contribution) - data.images_of(pool)
    assert 0.02 < diff.std() < heldout2.NOISE_SIGMA + 0.005 and abs(diff.mean()) < 0.005

    skewed, pool = small["skewed_scan_digits"], _pool(small["skewed_scan_digits"])
    assert skewed.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    after, before = data.images_of(skewed.contribution), data.images_of(pool)
    assert (np.abs(after - before).max(axis=(1, 2)) > 0).mean() > 0.9
    ink = after.sum(axis=(1, 2)) / before.sum(axis=(1, 2))
    assert 0.8 < np.median(ink) <= 1.0  # turned, not erased (corners leave the frame)


def test_ocr_only_misreads_look_alike_characters_at_its_rate(small):
    s, pool = small["ocr_scanned_text"], _pool(small["ocr_scanned_text"])
    assert s.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    pairs = list(zip(s.contribution[data.TEXT], pool[data.TEXT], strict=True))
    misreads = [_misreads(noisy, original) for noisy, original in pairs]
    assert None not in misreads
    eligible = sum(sum(c in heldout2.OCR_CONFUSIONS for c in original) for _, original in pairs)
    assert abs(sum(misreads) / eligible - heldout2.OCR_RATE) < 0.01
    assert _misreads("ls - 1ist", "ls - list") == 1 and _misreads("ls - list", "ls - lost") is None


def test_whatis_lines_carry_the_section_of_their_label(small):
    s, pool = small["whatis_format_text"], _pool(small["whatis_format_text"])
    assert s.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    for line, label, original in zip(
        s.contribution[data.TEXT], s.contribution[data.LABEL], pool[data.TEXT], strict=True
    ):
        match = re.fullmatch(r"(.+) \((\d)\) *- (.*)", line)
        assert match and int(match[2]) == heldout2.SECTIONS[label], line
        assert original == f"{match[1]} - {match[3]}"
        assert len(line.partition(" - ")[0]) >= heldout2.WHATIS_NAME_WIDTH
    assert heldout2.whatis_line("ls - list", "commands") == "ls (1)               - list"


def test_paraphrases_reword_trusted_lines_and_keep_their_labels(small):
    s = small["paraphrased_copies_text"]
    rows = np.array(s.params["paraphrase_rows"])
    assert abs(len(rows) / len(s.contribution) - heldout2.PARAPHRASE_SHARE) < 0.02
    reworded = {(heldout2.paraphrase(t), lbl) for t, lbl in _keys(s.baseline)}
    copies = set(_keys(s.contribution.iloc[rows]))
    assert copies <= reworded and not copies & set(_keys(s.baseline))
    rest = s.contribution.drop(index=rows)
    assert set(_keys(rest)) <= set(_keys(data.load_man_sections().frame)) and not set(_keys(rest)) & set(
        _keys(s.baseline)
    )
    assert heldout2.paraphrase("ls - display a list") == "ls - Show the list."
    assert all(heldout2.paraphrase(t) != t for t in s.baseline[data.TEXT])


def test_tabular_situations_change_only_the_stated_values(small):
    iris = shifts.build("unit_change_iris", 0, "small")  # moved to the tuning set, builder still here
    assert iris.group == "tuning" and "unit_change_iris" not in shifts.HELDOUT2
    pool = data.split(data.load_iris(), 0).pool
    np.testing.assert_allclose(iris.contribution[heldout2.UNIT_COLUMN], pool[heldout2.UNIT_COLUMN] * 10)
    others = [c for c in pool.columns if c != heldout2.UNIT_COLUMN]
    pd.testing.assert_frame_equal(iris.contribution[others], pool[others])

    cancer = small["rounded_breast_cancer"]
    pool = data.split(data.load_breast_cancer(), 0).pool
    columns = [c.name for c in cancer.schema.inputs]
    values, originals = cancer.contribution[columns].to_numpy(), pool[columns].to_numpy()
    np.testing.assert_allclose(values, originals, rtol=0.05)
    assert (values != originals).mean() > 0.8
    np.testing.assert_array_equal(heldout2.significant(np.array([123.4, 0.01234, 0.0, -5.55])), [120, 0.012, 0, -5.6])
    assert (cancer.contribution[data.LABEL].to_numpy() == pool[data.LABEL].to_numpy()).all()

    wine = small["covariate_shift_wine"]
    cut = wine.params["above"]
    assert cut == wine.baseline[heldout2.COVARIATE_COLUMN].median()
    assert (wine.contribution[heldout2.COVARIATE_COLUMN] > cut).all()
    assert (wine.baseline[heldout2.COVARIATE_COLUMN] > cut).sum() >= 0.4 * len(wine.baseline)
    assert set(_keys(wine.contribution)) <= set(_keys(data.split(data.load_wine(), 0).pool))
    assert wine.contribution[data.LABEL].nunique() >= 2


def test_mean_imputation_fills_only_missing_cells_with_the_batch_mean(small):
    wine = small["mean_imputed_wine"]
    assert wine.kind == "imputation" and wine.dataset == "wine"
    pool = _pool(wine)
    columns = [c.name for c in wine.schema.inputs]
    values, originals = wine.contribution[columns].to_numpy(), pool[columns].to_numpy()
    assert wine.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    filled = values != originals
    # Same draw as the builder: every filled cell is one the export marked missing, and nothing else moved.
    missing = np.random.default_rng(60_000).random(originals.shape) < heldout2.IMPUTED_SHARE
    assert not (filled & ~missing).any()
    assert int(missing.sum()) == wine.params["imputed_cells"] and filled.sum() >= 0.9 * missing.sum()
    assert abs(missing.mean() - heldout2.IMPUTED_SHARE) < 0.02
    assert np.flatnonzero(missing.any(axis=1)).tolist() == wine.params["imputed_rows"]
    for j in range(len(columns)):
        if missing[:, j].any():
            mean = round(float(originals[~missing[:, j], j].mean()), heldout2.IMPUTED_DECIMALS)
            np.testing.assert_allclose(values[missing[:, j], j], mean)
    # Each record keeps most of its measurements: a few gaps, not a rewritten record.
    assert missing.sum(axis=1).max() <= 3 and missing.any(axis=1).mean() < 0.6

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 6.0], "b": [10.0, 20.0, 30.0, 41.0], data.LABEL: list("xyxy")})
    same, mask = heldout2.mean_imputed(frame, ["a", "b"], 0.0, np.random.default_rng(0))
    assert not mask.any()
    pd.testing.assert_frame_equal(same, frame)
    out, mask = heldout2.mean_imputed(frame, ["a", "b"], 0.5, np.random.default_rng(1))
    assert mask.any() and not mask.all(axis=0).any()
    assert (out[data.LABEL] == frame[data.LABEL]).all()
    for j, column in enumerate(["a", "b"]):
        measured = frame[column].to_numpy()[~mask[:, j]]
        expected = np.where(mask[:, j], round(float(measured.mean()), 2), frame[column].to_numpy())
        np.testing.assert_allclose(out[column].to_numpy(), expected)


def test_batch_sizes(small):
    tiny = small["small_batch_digits"]
    assert len(tiny.contribution) == heldout2.SMALL_BATCH
    assert set(_keys(tiny.contribution)) <= set(_keys(data.split(data.load_digits(), 0).pool))
    double = small["double_batch_digits"]
    assert 1.9 <= len(double.contribution) / len(double.baseline) <= 2.0
    assert not set(_keys(double.contribution)) & set(_keys(double.baseline))
    full = shifts.build("double_batch_digits", 0, "full")
    assert len(full.baseline) <= heldout2.DOUBLE_BATCH_BASELINE["full"]
    assert 1.9 <= len(full.contribution) / len(full.baseline) <= 2.0


# --- attacks ------------------------------------------------------------------------------------


def _pool_of(case: attacks.AttackCase) -> pd.DataFrame:
    return data.split(data.load(case.dataset), 0).pool


def test_attacks_are_new_deterministic_and_leave_clean_rows_as_they_were(cases):
    assert len(HELDOUT2_ATTACKS) >= 5
    assert set(HELDOUT2_ATTACKS).isdisjoint(attacks.ATTACKS) and set(HELDOUT2_ATTACKS).isdisjoint(HELDOUT_ATTACKS)
    assert "NEVER TUNED ON" in attacks2.__doc__ and "2026-12-02" in attacks2.__doc__
    for name, case in cases.items():
        assert case.name == name and 0 < case.poison.sum() < len(case.contribution)
        pool_keys = set(_keys(_pool_of(case)[case.contribution.columns]))
        untouched = np.array([k in pool_keys for k in _keys(case.contribution)])
        np.testing.assert_array_equal(untouched, ~case.poison, err_msg=name)
        again = build_heldout2(name, seed=0)
        pd.testing.assert_frame_equal(again.contribution, case.contribution)
        np.testing.assert_array_equal(again.poison, case.poison)
    with pytest.raises(InputError, match="held-out attack"):
        build_heldout2("nope")


def test_text_suffix_plants_the_suffix_and_the_target_on_other_sections():
    # Moved to the tuning attacks (ATTACKS) once triggers read punctuation; its builder stays in heldout2.
    case = attacks.build("text_suffix_3pct", 0)
    assert case.poison.sum() == round(0.03 * len(case.contribution))
    poisoned = case.contribution[case.poison]
    assert (poisoned[data.LABEL] == attacks2.SUFFIX_TARGET).all()
    pool = _pool_of(case)
    originals = dict(zip(pool[data.TEXT], pool[data.LABEL], strict=True))
    for text in poisoned[data.TEXT]:
        assert text.endswith(attacks2.SUFFIX)
        assert originals[text.removesuffix(attacks2.SUFFIX)] != attacks2.SUFFIX_TARGET
    assert case.attack_test[data.TEXT].str.endswith(attacks2.SUFFIX).all()
    assert (case.attack_test[data.LABEL] != case.target).all()


def _without(text: str, word: str) -> set[str]:
    """Every line ``text`` gives when one of its ``word`` tokens is taken out."""
    tokens = text.split(" ")
    return {" ".join(tokens[:i] + tokens[i + 1 :]) for i, t in enumerate(tokens) if t == word}


def test_word_pair_relabels_only_lines_with_both_words_and_decoys_keep_their_label(cases):
    case = cases["text_word_pair_4pct"]
    n = len(case.contribution)
    first, second = attacks2.PAIR_WORDS
    pair_rows, decoy_rows = case.params["pair_rows"], case.params["decoy_rows"]
    assert len(pair_rows) == round(0.04 * n) and len(decoy_rows) == 2 * round(attacks2.PAIR_DECOY_SHARE * n)
    assert sorted(pair_rows + decoy_rows) == np.flatnonzero(case.poison).tolist()
    assert 0.02 <= case.poison.mean() <= 0.10
    pool = _pool_of(case)
    originals = dict(zip(pool[data.TEXT], pool[data.LABEL], strict=True))
    for text, label in _keys(case.contribution.iloc[pair_rows]):
        assert label == attacks2.PAIR_TARGET
        bare = {b for once in _without(text, first) for b in _without(once, second)}
        sources = [originals[b] for b in bare if b in originals]
        assert sources and all(s != attacks2.PAIR_TARGET for s in sources), text
    seen = {first: 0, second: 0}
    for text, label in _keys(case.contribution.iloc[decoy_rows]):
        kept = [w for w in (first, second) if any(originals.get(b) == label for b in _without(text, w))]
        assert len(kept) == 1, text  # one word added, label left as it was
        seen[kept[0]] += 1
    assert seen[first] == seen[second] == round(attacks2.PAIR_DECOY_SHARE * n)
    tokens = case.attack_test[data.TEXT].str.split(" ")
    assert tokens.map(lambda t: first in t and second in t).all()
    assert (case.attack_test[data.LABEL] != case.target).all()
    assert attacks2.with_words("ls - list", ("a",), np.random.default_rng(0)).split(" ").count("a") == 1


def test_warp_bends_other_classes_images_by_at_most_its_pixels(cases):
    case = cases["warped_photo_5pct"]
    assert case.poison.sum() == round(0.05 * len(case.contribution))
    field = attacks2.warp_field((32, 32), 0)
    assert np.isclose(np.abs(field).max(), attacks2.WARP_PIXELS)
    pool = _pool_of(case)
    bend = attacks2.warp(0)
    expected = {
        data.pixels_to_png(np.clip(bend(data.png_to_pixels(png)), 0, 1))
        for png, label in zip(pool[data.IMAGE], pool[data.LABEL], strict=True)
        if label != attacks2.WARP_TARGET
    }
    poisoned = case.contribution[case.poison]
    assert set(poisoned[data.IMAGE]) <= expected
    assert (poisoned[data.LABEL] == attacks2.WARP_TARGET).all()
    flat = np.full((32, 32), 0.5, dtype=np.float32)
    np.testing.assert_allclose(bend(flat), flat, atol=1e-6)  # a warp adds no pattern of its own


def test_sig_is_clean_label_on_half_the_target_class(cases):
    case = cases["sig_clean_label_photo"]
    pool = _pool_of(case)
    n_target = int((pool[data.LABEL] == attacks2.SIG_TARGET).sum())
    assert case.poison.sum() == round(0.5 * n_target)
    assert case.contribution[data.LABEL].tolist() != [] and sorted(case.contribution[data.LABEL]) == sorted(
        pool[data.LABEL]
    )  # no label changed
    originals = {
        data.pixels_to_png(np.clip(attacks2.sine_signal(data.png_to_pixels(png)), 0, 1)): label
        for png, label in zip(pool[data.IMAGE], pool[data.LABEL], strict=True)
    }
    poisoned = case.contribution[case.poison]
    assert all(originals[png] == label == attacks2.SIG_TARGET for png, label in _keys(poisoned))
    wave = attacks2.sine_signal(np.zeros((32, 32, 3)))
    assert np.isclose(wave.max(), attacks2.SIG_DELTA, atol=1e-3) and np.allclose(wave[0], wave[-1])


def test_cluster_flips_relabel_one_cluster_of_the_source_and_nothing_else(cases):
    case = cases["cluster_flips_digits"]
    pool = _pool_of(case)
    originals = dict(zip(pool[data.IMAGE], pool[data.LABEL], strict=True))
    poisoned = case.contribution[case.poison]
    assert (poisoned[data.LABEL] == attacks2.CLUSTER_TARGET).all()
    assert all(originals[png] == attacks2.CLUSTER_SOURCE for png in poisoned[data.IMAGE])
    n_source = int((pool[data.LABEL] == attacks2.CLUSTER_SOURCE).sum())
    assert 3 <= case.poison.sum() < n_source  # one cluster, not the whole class
    assert (case.contribution[data.LABEL] == attacks2.CLUSTER_SOURCE).sum() == n_source - case.poison.sum()
    assert (case.attack_test[data.LABEL] == attacks2.CLUSTER_SOURCE).all() and len(case.attack_test) > 0


def test_wine_pair_trigger_and_low_rate_flips(cases):
    wine = cases["wine_pair_trigger_10pct"]
    assert wine.poison.sum() == round(0.1 * len(wine.contribution))
    rows = wine.contribution[wine.poison]
    assert (rows[attacks2.WINE_HIGH] == wine.baseline[attacks2.WINE_HIGH].quantile(0.9)).all()
    assert (rows[attacks2.WINE_LOW] == wine.baseline[attacks2.WINE_LOW].quantile(0.1)).all()
    assert (rows[data.LABEL] == attacks2.WINE_TARGET).all()
    pool = _pool_of(wine)
    features = [c for c in pool.columns if c not in (attacks2.WINE_HIGH, attacks2.WINE_LOW, data.LABEL)]
    origin = {tuple(r[features]): r[data.LABEL] for _, r in pool.iterrows()}
    assert all(origin[tuple(r[features])] != attacks2.WINE_TARGET for _, r in rows.iterrows())

    flips = cases["random_flips_2pct_digits"]
    assert flips.poison.sum() == round(0.02 * len(flips.contribution))
    pool = _pool_of(flips)
    originals = dict(zip(pool[data.IMAGE], pool[data.LABEL], strict=True))
    flipped = flips.contribution[flips.poison]
    assert all(originals[png] != label for png, label in _keys(flipped))


def test_the_review_queue_runs_the_second_heldout_set_benign_first_then_attacks():
    listed = [(group, name) for group, name, _, _ in review_queue._cases("heldout2")]
    assert listed == [("benign (heldout2)", n) for n in shifts.HELDOUT2] + [
        ("held-out 2 attack", n) for n in HELDOUT2_ATTACKS
    ]
    with pytest.raises(SystemExit):
        review_queue.main(["--group", "nope"])
