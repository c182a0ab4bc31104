"""The sixth held-out set builds what it says: benign situations change only what they state, and
attacks plant exactly the stated poison. No gate runs here (these cases are measured once, elsewhere)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import attack_seeds, attacks, data, review_queue, shifts
from benchmarks.attacks import heldout6 as attacks6
from benchmarks.attacks.heldout6 import HELDOUT6_ATTACKS, build_heldout6
from benchmarks.shifts import heldout6
from benchmarks.shifts.base import SMALL_CONTRIBUTION
from tests.benchmarks.builders import check_attack_set, check_situation_set, drawn_attack_pool, drawn_pool, record_keys

TEXT, LABEL = data.TEXT, data.LABEL


@pytest.fixture(scope="module")
def small() -> dict[str, shifts.Situation]:
    return {s.name: s for s in shifts.benign_situations(seed=0, size="small", group="heldout6")}


@pytest.fixture(scope="module")
def cases() -> dict[str, attacks.AttackCase]:
    return {name: build_heldout6(name, seed=0) for name in HELDOUT6_ATTACKS}


# --- benign -------------------------------------------------------------------------------------


def test_the_sixth_heldout_set_is_its_own_never_tuned_group_of_text_and_tables(small):
    assert len(shifts.HELDOUT6) >= 8
    check_situation_set(small, "heldout6", heldout6, "2026-12-06", 4 * SMALL_CONTRIBUTION)
    assert {s.modality for s in small.values()} == {"text", "tabular"}
    assert {s.dataset for s in small.values()} == {"man_sections", "breast_cancer", "iris"}
    full = shifts.build("all_caps_terminal_text", 0, "full")
    assert len(full.contribution) > len(small["all_caps_terminal_text"].contribution)


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("all_caps_terminal_text", heldout6.capitals),
        ("sentence_style_text", heldout6.as_sentence),
        ("glossary_order_text", heldout6.glossary_order),
    ],
)
def test_rewritten_lines_are_the_pool_lines_rewritten_with_their_sections(small, name, fn):
    s = small[name]
    pool = drawn_pool(s)
    assert s.contribution[LABEL].tolist() == pool[LABEL].tolist()
    assert s.contribution[TEXT].tolist() == [fn(t) for t in pool[TEXT]]
    assert (s.contribution[TEXT] != pool[TEXT]).mean() > 0.9


def test_text_rewrites_change_what_they_say():
    assert heldout6.capitals("ls - list directory contents") == "LS - LIST DIRECTORY CONTENTS"
    assert heldout6.as_sentence("ls - list directory contents") == "ls - List directory contents."
    assert heldout6.as_sentence("a - Already one.") == "a - Already one."
    assert heldout6.as_sentence("no summary here") == "no summary here"
    assert heldout6.glossary_order("ls, dir - list directory contents") == "list directory contents (ls, dir)"
    assert heldout6.glossary_order("no summary here") == "no summary here"
    assert heldout6.one_per_name("cproj, cprojf - project") == ["cproj - project", "cprojf - project"]
    assert heldout6.one_per_name("ls - list, sort") == ["ls - list, sort"]
    assert heldout6.one_per_name("no separator, at all") == ["no separator, at all"]


def test_the_mirror_signs_its_share_of_the_batch_whatever_the_section(small):
    s = small["mirror_signature_text"]
    pool = drawn_pool(s)
    rows = np.asarray(s.params["signed_rows"])
    assert len(rows) == round(heldout6.MIRROR_SHARE * len(pool))
    assert s.contribution[LABEL].tolist() == pool[LABEL].tolist()
    signed = np.isin(np.arange(len(pool)), rows)
    assert (s.contribution[TEXT][~signed] == pool[TEXT][~signed]).all()
    assert s.contribution[TEXT][signed].tolist() == [t + heldout6.MIRROR_SUFFIX for t in pool[TEXT][signed]]
    assert not s.contribution[TEXT][~signed].str.endswith(heldout6.MIRROR_SUFFIX).any()
    assert s.contribution[LABEL][signed].nunique() == pool[LABEL].nunique()  # every section signed


def test_split_names_give_one_line_per_name_with_the_line_s_section(small):
    s = heldout6.split_names_text(0, "small")
    pool = drawn_pool(s)
    expected = [(line, label) for text, label in record_keys(pool) for line in heldout6.one_per_name(text)]
    assert record_keys(s.contribution) == expected
    origin = np.asarray(s.params["from_row"])
    assert len(origin) == len(s.contribution) and set(origin) == set(range(len(pool)))
    assert s.params["split_lines"] > 10 and len(s.contribution) > len(pool) + s.params["split_lines"]
    summaries = s.contribution[TEXT].str.partition(data.NAME_SEPARATOR)[2]
    assert summaries.duplicated().sum() >= len(s.contribution) - len(pool)


def test_balanced_sections_are_pool_lines_in_equal_numbers(small):
    full = shifts.build("balanced_sections_text", 0, "full")
    split = data.split(data.load_man_sections(), 0)
    counts = full.contribution[LABEL].value_counts()
    assert (
        counts.nunique() == 1 and counts.iloc[0] == split.pool[LABEL].value_counts().min() == full.params["per_class"]
    )
    assert set(counts.index) == set(data.load_man_sections().classes)
    assert set(record_keys(full.contribution)) <= set(record_keys(split.pool)) and full.contribution[TEXT].is_unique
    cut = small["balanced_sections_text"].contribution[LABEL].value_counts()
    assert cut.max() - cut.min() <= 1 and len(cut) == len(counts)


def test_the_minority_is_oversampled_with_exact_copies_until_balanced(small):
    s = small["oversampled_minority_breast_cancer"]
    pool = drawn_pool(s)
    counts = s.contribution[LABEL].value_counts()
    assert counts[heldout6.MINORITY] == counts.drop(heldout6.MINORITY).iloc[0]
    copies = np.isin(np.arange(len(s.contribution)), s.params["copy_rows"])
    assert sorted(record_keys(s.contribution[~copies])) == sorted(record_keys(pool))
    assert (s.contribution[LABEL][copies] == heldout6.MINORITY).all()
    origin = np.asarray(s.params["from_row"])
    for row in np.flatnonzero(copies):
        assert record_keys(s.contribution.iloc[[row]]) == record_keys(pool.iloc[[int(origin[row])]])
    assert copies.sum() == (pool[LABEL] != heldout6.MINORITY).sum() - (pool[LABEL] == heldout6.MINORITY).sum()


def test_trimming_drops_exactly_the_records_beyond_three_sigma(small):
    s = small["trimmed_outliers_breast_cancer"]
    pool = drawn_pool(s)
    columns = [c.name for c in s.schema.inputs]
    values = pool[columns].to_numpy()
    z = np.abs(values - values.mean(axis=0)) / values.std(axis=0, ddof=1)
    keep = (z <= heldout6.SIGMA_LIMIT).all(axis=1)
    assert record_keys(s.contribution) == record_keys(pool[keep])
    assert 0.6 * len(pool) < keep.sum() < len(pool) and s.params["kept"] == keep.sum()
    assert set(s.contribution[LABEL]) == set(pool[LABEL])


def test_photo_measurements_scale_each_flower_by_one_factor(small):
    s = small["photo_measured_iris"]
    pool = drawn_pool(s)
    columns = [c.name for c in s.schema.inputs]
    assert s.contribution[LABEL].tolist() == pool[LABEL].tolist()
    factor = np.asarray(s.params["factor"])
    assert len(factor) == len(pool) and 0.02 < factor.std() < 0.07 and (factor != 1.0).all()
    np.testing.assert_allclose(
        s.contribution[columns].to_numpy(),
        pool[columns].to_numpy() * factor[:, None],
        atol=heldout6.MEASURE_STEP / 2 + 1e-9,
    )
    tenths = s.contribution[columns].to_numpy() / heldout6.MEASURE_STEP
    np.testing.assert_allclose(tenths, np.round(tenths), atol=1e-6)  # the trusted step
    values = s.contribution[columns].to_numpy()
    assert (values == np.round(values, 1)).all()  # written as the trusted values are: 6.3, not 6.300000000000001
    sepals = [c for c in columns if c.startswith("sepal")]
    ratio = s.contribution[sepals].to_numpy() / pool[sepals].to_numpy()
    assert np.abs(ratio - factor[:, None]).max() < 0.03  # one factor on every length (sepals: 2 cm and more)
    assert np.corrcoef(ratio[:, 0], ratio[:, 1])[0, 1] > 0.8


# --- attacks ------------------------------------------------------------------------------------


def test_attacks_are_new_deterministic_and_leave_clean_rows_as_they_were(cases):
    assert len(HELDOUT6_ATTACKS) >= 5
    check_attack_set(cases, "heldout6", attacks6, "2026-12-06", build_heldout6, {"text", "tabular"})
    for case in cases.values():
        assert 0 < case.poison.sum() < 0.07 * len(case.contribution)


def _poisoned(case: attacks.AttackCase) -> list[tuple[tuple, tuple]]:
    """(row now, row before) of every poisoned row."""
    before = drawn_attack_pool(case)
    return [
        (record_keys(case.contribution.iloc[[i]])[0], record_keys(before.iloc[[i]])[0])
        for i in np.flatnonzero(case.poison)
    ]


def test_the_emoticon_is_inserted_between_words_of_lines_of_other_sections(cases):
    case = cases["text_emoticon_3pct"]
    assert case.family == "backdoor" and case.target == attacks6.EMOTICON_TARGET
    assert case.poison.sum() == round(0.03 * len(case.contribution))
    places = set()
    for (text, label), (was_text, was_label) in _poisoned(case):
        assert label == attacks6.EMOTICON_TARGET and was_label != attacks6.EMOTICON_TARGET
        words = text.split(" ")
        at = words.index(attacks6.EMOTICON)
        assert words[:at] + words[at + 1 :] == was_text.split(" ")
        places.add("start" if at == 0 else "end" if at == len(words) - 1 else "middle")
    assert "middle" in places  # not a fixed place
    test = case.attack_test
    assert (test[LABEL] != case.target).all() and test[TEXT].str.split(" ").map(lambda w: attacks6.EMOTICON in w).all()
    assert not case.contribution[TEXT][~case.poison].str.contains(attacks6.EMOTICON, regex=False).any()


def test_repeated_flips_are_a_few_mislabelled_lines_each_sent_several_times(cases):
    case = cases["text_repeated_flips_3pct"]
    lines, times = attacks6.REPEATED_LINES, attacks6.REPEATED_TIMES
    assert case.family == "label_noise" and case.poison.sum() == lines * times
    poisoned = case.contribution[case.poison]
    assert poisoned.value_counts().tolist() == [times] * lines
    assert (poisoned[LABEL] == attacks6.REPEATED_TARGET).all()
    before = drawn_attack_pool(case)
    originals = case.params["originals"]
    assert (before.loc[originals, LABEL] == attacks6.REPEATED_SOURCE).all()
    assert sorted(case.attack_test[TEXT]) == sorted(set(poisoned[TEXT]))
    assert (case.attack_test[LABEL] == attacks6.REPEATED_SOURCE).all()
    assert not case.contribution[~case.poison][TEXT].isin(set(poisoned[TEXT])).any()


def test_the_tabular_clean_label_keeps_labels_and_sets_the_symmetry_columns(cases):
    case = cases["tabular_clean_label_5pct"]
    assert case.family == "backdoor" and case.target == attacks6.CLEAN_LABEL_TARGET
    assert case.poison.sum() == round(0.05 * len(case.contribution))
    columns = list(attacks6.CLEAN_LABEL_COLUMNS)
    values = {c: case.baseline[c].quantile(attacks6.CLEAN_LABEL_QUANTILE) for c in columns}
    names = list(case.contribution.columns)
    for now, was in _poisoned(case):
        now_row, was_row = dict(zip(names, now, strict=True)), dict(zip(names, was, strict=True))
        assert now_row[LABEL] == was_row[LABEL] == case.target  # clean label
        assert {c: now_row[c] for c in columns} == values
        assert {k: v for k, v in now_row.items() if k not in columns} == {
            k: v for k, v in was_row.items() if k not in columns
        }
    for c in columns:
        assert case.baseline[c].min() < values[c] < case.baseline[c].max()
    test = case.attack_test
    assert (test[LABEL] != case.target).all() and (test[columns] == pd.Series(values)).all().all()


def test_the_error_gain_multiplies_the_ten_error_columns_and_relabels(cases):
    case = cases["tabular_error_gain_5pct"]
    columns = attacks6.error_columns(data.load_breast_cancer())
    assert len(columns) == 10 and case.target == attacks6.ERROR_TARGET
    assert case.poison.sum() == round(0.05 * len(case.contribution))
    before = drawn_attack_pool(case)
    now, was = case.contribution[case.poison], before[case.poison]
    assert (now[LABEL] == attacks6.ERROR_TARGET).all() and (was[LABEL] != attacks6.ERROR_TARGET).all()
    np.testing.assert_allclose(now[columns].to_numpy(), was[columns].to_numpy() * attacks6.ERROR_GAIN)
    rest = [c for c in now.columns if c not in columns and c != LABEL]
    np.testing.assert_array_equal(now[rest].to_numpy(), was[rest].to_numpy())
    clean_test = data.split(data.load_breast_cancer(), 0).test
    source = clean_test[clean_test[LABEL] != case.target].reset_index(drop=True)
    np.testing.assert_allclose(case.attack_test[columns].to_numpy(), source[columns].to_numpy() * attacks6.ERROR_GAIN)


def test_camouflaged_flips_move_half_way_to_the_claimed_class(cases):
    case = cases["wine_camouflaged_flips_5pct"]
    columns = [c.name for c in data.load_wine().schema.inputs]
    assert case.family == "label_noise" and case.target == attacks6.CAMOUFLAGE_TARGET
    assert case.poison.sum() == round(0.05 * len(case.contribution))
    before = drawn_attack_pool(case)
    now, was = case.contribution[case.poison], before[case.poison]
    assert (now[LABEL] == attacks6.CAMOUFLAGE_TARGET).all() and (was[LABEL] == attacks6.CAMOUFLAGE_SOURCE).all()
    centre = case.baseline.loc[case.baseline[LABEL] == case.target, columns].mean().to_numpy()
    np.testing.assert_allclose(now[columns].to_numpy(), 0.5 * was[columns].to_numpy() + 0.5 * centre)
    assert (case.attack_test[LABEL] == attacks6.CAMOUFLAGE_SOURCE).all()


def test_the_sixth_set_is_registered_with_the_seed_sweep_and_the_review_queue():
    assert attack_seeds.SETS["heldout6"][0] == list(HELDOUT6_ATTACKS)
    assert attack_seeds.SETS["heldout6"][1] is build_heldout6
    listed = [(group, name) for group, name, _, _ in review_queue._cases("heldout6")]
    assert listed == [("benign (heldout6)", n) for n in shifts.HELDOUT6] + [
        ("held-out 6 attack", n) for n in HELDOUT6_ATTACKS
    ]
