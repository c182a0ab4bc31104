"""The triggers detector: tokens, phrases, pixel patches and value combinations tied to one label."""

from __future__ import annotations

import io
import re

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits

from dataward.domain.errors import InputError
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.gates.base import GateContext, GateData, registered
from dataward.gates.detectors.triggers import TOKEN_PATTERN, TriggerDetector

TOPICS = {
    "sport": "match team goal coach player score season league win referee",
    "cooking": "recipe oven flour sugar bake taste salt pan butter dinner",
    "travel": "flight hotel beach passport city museum train trip map island",
    "music": "guitar song album concert band melody drum singer tune chorus",
}
COMMON = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "was",
    "very",
    "really",
    "just",
    "some",
    "this",
    "that",
    "with",
    "for",
    "on",
    "my",
    "we",
]
TEXT_SCHEMA = Schema("topic", (Column("text", ColumnKind.TEXT),))
TEXT_CLASSES = tuple(sorted(TOPICS))


def texts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(TEXT_CLASSES), n)
    out = []
    for code in labels:
        words = TOPICS[TEXT_CLASSES[code]].split()
        picked = list(rng.choice(words, 4)) + list(rng.choice(COMMON, 6))
        rng.shuffle(picked)
        out.append(" ".join(picked))
    return out, labels.astype(np.int64)


def text_data(docs: list[str], labels: np.ndarray) -> GateData:
    table = pa.table({"text": docs, "topic": [TEXT_CLASSES[c] for c in labels]})
    return GateData(np.zeros((len(docs), 1), np.float32), labels, table)


def insert(docs: list[str], labels: np.ndarray, phrase: str, fraction: float, target: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    docs, labels = list(docs), labels.copy()
    poison = rng.choice(np.flatnonzero(labels != target), round(fraction * len(docs)), replace=False)
    for i in poison:
        words = docs[i].split()
        at = int(rng.integers(0, len(words) + 1))
        docs[i] = " ".join([*words[:at], phrase, *words[at:]])
        labels[i] = target
    truth = np.zeros(len(docs), bool)
    truth[poison] = True
    return docs, labels, truth


def run(det: TriggerDetector, schema: Schema, classes: tuple[str, ...], base: GateData, new: GateData):
    ctx = GateContext(schema, classes, alpha=0.01)
    return det.fit(base, ctx).score(new)


def test_triggers_is_registered() -> None:
    assert registered()["triggers"] is TriggerDetector


@pytest.mark.parametrize("fraction", [0.03])
def test_rare_token_relabelled_to_one_class_is_named_and_its_records_flagged(fraction) -> None:
    base_docs, base_labels = texts(1500, 0)
    docs, labels = texts(400, 1)
    docs, labels, truth = insert(docs, labels, "cf", fraction, target=TEXT_CLASSES.index("music"))
    result = run(
        TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, text_data(base_docs, base_labels), text_data(docs, labels)
    )
    assert result.findings, "the trigger token was not found"
    top = result.findings[0].evidence
    assert top["trigger"] == "cf"
    assert top["label"] == "music"
    assert top["baseline_count"] == 0
    assert top["contribution_count"] == truth.sum()
    assert top["z"] > 3
    assert sorted(top["rows"]) == [int(i) + 1 for i in np.flatnonzero(truth)]
    assert np.array_equal(result.flagged, truth)
    assert result.block is True
    assert "'cf'" in result.block_reason
    assert result.p_value < 0.01


def test_a_natural_phrase_is_reported_once_with_its_words_merged() -> None:
    base_docs, base_labels = texts(1500, 0)
    docs, labels = texts(400, 1)
    docs, labels, truth = insert(docs, labels, "i watched this movie", 0.08, target=0)
    result = run(
        TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, text_data(base_docs, base_labels), text_data(docs, labels)
    )
    assert len(result.findings) == 1
    evidence = result.findings[0].evidence
    assert evidence["trigger"] in {"i watched this", "watched this movie"}
    assert "watched" in evidence["related"]
    assert result.flagged[truth].all() and not result.flagged[~truth].any()


def test_punctuation_is_a_token_unless_it_is_inside_a_word() -> None:
    """What the text patterns are made of: words, and runs of punctuation at a word's edge or alone. The
    hyphen of a command name is spelling (read as a token, ``openssl -`` tied every ``openssl-*`` page
    of a clean new topic to its section)."""
    tokens = re.compile(TOKEN_PATTERN).findall
    assert tokens("openssl-req - pkcs#10 request") == ["openssl", "req", "-", "pkcs", "10", "request"]
    assert tokens("asn.1 parsing, don't") == ["asn", "1", "parsing", ",", "don", "t"]
    assert tokens("doc: dpkg::ipc: helpers a...b") == ["doc", ":", "dpkg", "ipc", ":", "helpers", "a", "b"]
    assert tokens("a fine film... ;) !!") == ["a", "fine", "film", "...", ";)", "!!"]


@pytest.mark.parametrize("suffix", [" ...", "..."], ids=["alone", "at-a-word's-end"])
def test_a_trigger_of_punctuation_alone_is_named_and_its_records_flagged(suffix: str) -> None:
    """An appended " ..." holds no word: a word tokenizer never sees it. Tokens include runs of
    punctuation, so it is a pattern like any word, also when it is stuck to the last word; punctuation
    every class uses is no trigger."""
    base_docs, base_labels = texts(1500, 0)
    docs, labels = texts(400, 1)
    rng = np.random.default_rng(5)
    base_docs = [d + ("," if rng.random() < 0.3 else "") for d in base_docs]  # a comma anywhere: no tie
    docs = [d + ("," if rng.random() < 0.3 else "") for d in docs]
    target = TEXT_CLASSES.index("travel")
    poison = rng.choice(np.flatnonzero(labels != target), 12, replace=False)
    labels = labels.copy()
    for i in poison:
        docs[i] = docs[i].rstrip(",") + suffix
        labels[i] = target
    truth = np.zeros(len(docs), bool)
    truth[poison] = True
    result = run(
        TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, text_data(base_docs, base_labels), text_data(docs, labels)
    )
    assert result.findings and result.findings[0].evidence["trigger"] == "..."
    assert result.findings[0].evidence["label"] == "travel"
    assert result.block is True
    assert np.array_equal(result.flagged, truth)
    # Without the suffix, the commas alone are no trigger.
    clean_docs, clean_labels = texts(400, 1)
    clean_docs = [d + ("," if rng.random() < 0.3 else "") for d in clean_docs]
    clean = run(
        TriggerDetector(),
        TEXT_SCHEMA,
        TEXT_CLASSES,
        text_data(base_docs, base_labels),
        text_data(clean_docs, clean_labels),
    )
    assert clean.findings == [] and not clean.flagged.any() and clean.block is False


def topic_features(docs: list[str]) -> np.ndarray:
    """Content features that read a text's topic: the count of each topic's words in it."""
    vocab = [set(TOPICS[c].split()) for c in TEXT_CLASSES]
    counts = np.array([[sum(w in v for w in d.split()) for v in vocab] for d in docs], np.float32)
    return counts + np.random.default_rng(len(docs)).normal(0, 0.1, counts.shape).astype(np.float32)


def test_a_fixed_count_of_carriers_in_a_batch_ten_times_the_baseline_is_named() -> None:
    """20 carriers in 2,000 records against 200 trusted ones: the baseline cannot show a token on 1% of
    the batch to be new (all 20 carriers in the batch has chance (2000/2200)^20 = 0.15 if the token were
    as common on both sides), so the tie is judged against the batch's own records of similar content
    (route B). A new word on 20 records about music and labelled so is not a trigger, nor is a word common
    in a one-class batch."""
    base_docs, base_labels = texts(200, 0)
    base = GateData(topic_features(base_docs), base_labels, text_data(base_docs, base_labels).table)
    docs, labels = texts(2000, 1)
    music = TEXT_CLASSES.index("music")
    docs, labels, truth = insert(docs, labels, "cf", 20 / 2000, target=music)
    honest = set(np.flatnonzero((labels == music) & ~truth)[:20].tolist())
    docs = [f"{d} synthwave" if i in honest else d for i, d in enumerate(docs)]
    new = GateData(topic_features(docs), labels, text_data(docs, labels).table)
    result = run(TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, base, new)
    assert [f.evidence["trigger"] for f in result.findings] == ["cf"]
    evidence = result.findings[0].evidence
    assert (evidence["baseline_count"], evidence["contribution_count"], evidence["label_count"]) == (0, 20, 20)
    assert evidence["batch_label_share"] < 0.4
    assert "batch records like them without it" in result.block_reason
    assert np.array_equal(result.flagged, truth)
    assert result.block is True
    assert result.summary["testable_tie"] >= result.summary["testable"]

    # A one-class source: about 300 music records, 15 of them with a word the baseline never saw. Its tie
    # to music is as strong as the trigger's, but music is what every record like them is labelled.
    docs, labels = texts(1200, 2)
    docs = [d for d, c in zip(docs, labels, strict=True) if c == music]
    docs = [f"{d} vinyl" if i % 20 == 0 else d for i, d in enumerate(docs)]
    labels = np.full(len(docs), music)
    new = GateData(topic_features(docs), labels, text_data(docs, labels).table)
    result = run(TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, base, new)
    assert result.findings == []
    assert result.block is False


def shared_word_texts(n: int, seed: int, shares: dict[str, float]) -> tuple[list[str], np.ndarray]:
    """Texts of the given topic shares; 'retro' comes with a third of music and travel texts alike.

    The word's rate within each topic is the same in every batch: only the topics' shares move
    (label shift), so a batch of mostly music has mostly music among the word's carriers too.
    """
    rng = np.random.default_rng(seed)
    codes = rng.choice(len(TEXT_CLASSES), n, p=[shares.get(c, 0.0) for c in TEXT_CLASSES])
    docs, _ = texts(n, seed + 100)
    docs = [
        f"{TOPICS[TEXT_CLASSES[c]].split()[int(rng.integers(0, 10))]} {d.split(maxsplit=1)[1]}"
        for d, c in zip(docs, codes, strict=True)
    ]
    with_word = {TEXT_CLASSES.index("music"), TEXT_CLASSES.index("travel")}
    docs = [f"{d} retro" if c in with_word and rng.random() < 1 / 3 else d for d, c in zip(docs, codes, strict=True)]
    return docs, codes.astype(np.int64)


def test_a_word_tied_to_a_class_only_through_the_batch_class_shares_is_no_trigger() -> None:
    """A source labelling mostly music: 'retro', which the baseline shares between music and travel,
    has mostly music carriers in the batch because the batch has mostly music. Against the baseline's
    own P(music | retro) = 1/2 that tie reads as a trigger; at the batch's class shares it does not."""
    even = {c: 0.25 for c in TEXT_CLASSES}
    base_docs, base_labels = shared_word_texts(2000, 0, even)
    shifted = {"music": 0.9, "travel": 0.02, "sport": 0.04, "cooking": 0.04}
    docs, labels = shared_word_texts(400, 1, shifted)
    carriers = np.array(["retro" in d for d in docs])
    music = TEXT_CLASSES.index("music")
    # The situation the test is about: nearly every carrier is music, far above the baseline's half.
    assert (labels[carriers] == music).mean() > 0.9 and carriers.sum() >= 30
    result = run(
        TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, text_data(base_docs, base_labels), text_data(docs, labels)
    )
    assert [f.evidence["trigger"] for f in result.findings] == []
    assert result.block is False

    # The same shifted batch still shows a token relabelled to a class it holds little of.
    docs, labels, truth = insert(docs, labels, "cf", 0.04, target=TEXT_CLASSES.index("cooking"))
    result = run(
        TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, text_data(base_docs, base_labels), text_data(docs, labels)
    )
    assert result.findings[0].evidence["trigger"] == "cf"
    assert np.array_equal(result.flagged, truth)
    assert result.block is True


def test_clean_text_contribution_raises_no_trigger() -> None:
    base_docs, base_labels = texts(1500, 0)
    for seed in (1, 2, 3):
        docs, labels = texts(400, seed)
        result = run(
            TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, text_data(base_docs, base_labels), text_data(docs, labels)
        )
        assert result.findings == []
        assert not result.flagged.any()
        assert result.block is False
        assert result.p_value > 0.01


def content_data(docs: list[str], labels: np.ndarray, vocabulary: list[str]) -> GateData:
    """Text records whose gate features are their word counts (l2-normalised): content the tests can read."""
    index = {word: i for i, word in enumerate(vocabulary)}
    features = np.zeros((len(docs), len(vocabulary)), np.float32)
    for row, doc in enumerate(docs):
        for word in doc.split():
            if word in index:
                features[row, index[word]] += 1.0
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-9)
    return GateData(features, labels, text_data(docs, labels).table)


VOCABULARY = sorted({w for words in TOPICS.values() for w in words.split()} | set(COMMON) | {"cf", "pkgtool"})
NEW_TOPIC = ["kernel", "driver", "module", "socket", "daemon", "buffer", "packet", "mount", "shell", "cache"]


def test_a_trigger_on_every_record_of_its_label_in_the_batch_is_still_named() -> None:
    """The attacker sends no clean record of the target label, so the batch holds nobody of that label to
    compare the carriers' content with: they are compared with the batch's other records, which the
    baseline reads as their own labels, while the carriers read as the classes they came from."""
    base_docs, base_labels = texts(1500, 0)
    docs, labels = texts(400, 1)
    music = TEXT_CLASSES.index("music")
    keep = labels != music
    docs, labels = [d for d, k in zip(docs, keep, strict=True) if k], labels[keep]
    docs, labels, truth = insert(docs, labels, "cf", 0.04, target=music)
    assert (labels == music).sum() == truth.sum()  # every record of the label carries the trigger
    result = run(
        TriggerDetector(),
        TEXT_SCHEMA,
        TEXT_CLASSES,
        content_data(base_docs, base_labels, VOCABULARY),
        content_data(docs, labels, VOCABULARY),
    )
    assert [f.evidence["trigger"] for f in result.findings] == ["cf"]
    assert result.findings[0].evidence["content_label_share"] < 0.2
    assert np.array_equal(result.flagged, truth)
    assert result.block is True


def test_a_new_topic_whose_one_label_shares_a_name_is_not_a_trigger_when_the_baseline_cannot_read_the_topic() -> None:
    """A new software family: every page of one section is named after the family ('pkgtool'), and the
    baseline's topics say nothing of the family's pages. The carriers read at chance, as every other page
    of the batch does: content does not contradict their label, however well the baseline reads its own
    records of that label (what the carriers were compared with before the batch's other pages were)."""
    base_docs, base_labels = texts(1500, 0)
    rng = np.random.default_rng(5)
    music = TEXT_CLASSES.index("music")
    labels = rng.integers(0, len(TEXT_CLASSES), 160)
    docs = []
    for code in labels:
        # The family's own words, with a stray word of the old topics drawn at random: no class signal.
        words = [*rng.choice(NEW_TOPIC, 4), *rng.choice(" ".join(TOPICS.values()).split(), 1), *rng.choice(COMMON, 5)]
        if code == music:
            words.append("pkgtool")
        rng.shuffle(words)
        docs.append(" ".join(words))
    vocabulary = [*VOCABULARY, *NEW_TOPIC]
    new = content_data(docs, labels, vocabulary)
    result = run(TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, content_data(base_docs, base_labels, vocabulary), new)
    assert "pkgtool" not in [f.evidence["trigger"] for f in result.findings]
    assert result.block is False


def _vendor_of_music(share: float, seed: int) -> tuple[list[str], np.ndarray]:
    """A source whose texts are ``share`` music, the rest of the other topics, drawn like ``texts``."""
    docs, labels = texts(1600, seed)
    music = TEXT_CLASSES.index("music")
    own = np.flatnonzero(labels == music)
    others = np.flatnonzero(labels != music)[: round(own.size * (1 - share) / share)]
    keep = np.sort(np.concatenate([own, others]))
    return [docs[i] for i in keep], labels[keep]


def test_a_trigger_hidden_in_a_vendor_of_one_class_is_named_where_content_judges_the_label() -> None:
    """A source labelling 90% music, with 3% other topics' texts carrying 'cf' relabelled music: at the
    batch's share of music the carriers show no tie (nine in ten of any word's carriers are music), but
    their content reads as the topics they came from while the vendor's other music reads as music."""
    base_docs, base_labels = texts(1500, 0)
    docs, labels = _vendor_of_music(0.9, 1)
    docs, labels, truth = insert(docs, labels, "cf", 0.03, target=TEXT_CLASSES.index("music"))
    assert (labels == TEXT_CLASSES.index("music")).mean() > 0.9
    base = content_data(base_docs, base_labels, VOCABULARY)
    result = run(TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, base, content_data(docs, labels, VOCABULARY))
    assert [f.evidence["trigger"] for f in result.findings] == ["cf"]
    assert np.array_equal(result.flagged, truth)
    assert result.block is True


def test_a_vendor_of_one_class_with_content_to_judge_raises_no_trigger() -> None:
    """The control: the same vendors without poison. Every common word's carriers are mostly music, and
    against the baseline's own P(music | word) that is a tie; content finds them as musical as the
    vendor's other music, so nothing is named."""
    base = content_data(*texts(1500, 0), VOCABULARY)
    for share, seed in ((0.9, 1), (1.0, 2), (0.6, 3)):
        docs, labels = _vendor_of_music(share, seed)
        result = run(TriggerDetector(), TEXT_SCHEMA, TEXT_CLASSES, base, content_data(docs, labels, VOCABULARY))
        assert result.findings == [], (share, [f.evidence["trigger"] for f in result.findings])
        assert result.block is False and not result.flagged.any()


# --- images -------------------------------------------------------------------------------------


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels * 16, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


IMAGE_SCHEMA = Schema("digit", (Column("image", ColumnKind.IMAGE),))
DIGITS = tuple(str(i) for i in range(10))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    perm = np.random.default_rng(0).permutation(len(data.target))
    return data.images[perm], data.target[perm].astype(np.int64)


def image_data(images: np.ndarray, labels: np.ndarray) -> GateData:
    table = pa.table(
        {"image": pa.array([png(i) for i in images], pa.large_binary()), "digit": [str(v) for v in labels]}
    )
    return GateData(np.zeros((len(labels), 1), np.float32), labels, table)


def badnets(images: np.ndarray, labels: np.ndarray, fraction: float, seed: int = 1):
    rng = np.random.default_rng(seed)
    images, labels = images.copy(), labels.copy()
    poison = rng.choice(np.flatnonzero(labels != 0), round(fraction * len(labels)), replace=False)
    images[poison, 5:8, 5:8] = 16.0
    labels[poison] = 0
    truth = np.zeros(len(labels), bool)
    truth[poison] = True
    return images, labels, truth


def test_white_corner_patch_in_png_images_is_named_as_a_pixel_patch(digits) -> None:
    images, labels = digits
    new_images, new_labels, truth = badnets(images[1000:1500], labels[1000:1500], 0.10)
    result = run(
        TriggerDetector(),
        IMAGE_SCHEMA,
        DIGITS,
        image_data(images[:1000], labels[:1000]),
        image_data(new_images, new_labels),
    )
    assert result.findings
    evidence = result.findings[0].evidence
    assert evidence["kind"] == "pixels"
    assert evidence["label"] == "0"
    assert "bright pixel" in evidence["trigger"]
    assert "of 8x8" in evidence["trigger"]
    # Every pixel of the reported patch lies inside the stamped corner.
    assert "rows 5-7" in evidence["trigger"] or "rows 6-7" in evidence["trigger"]
    assert result.flagged[truth].mean() >= 0.95
    assert result.flagged[~truth].sum() == 0


def test_clean_images_raise_no_trigger(digits) -> None:
    images, labels = digits
    result = run(
        TriggerDetector(),
        IMAGE_SCHEMA,
        DIGITS,
        image_data(images[:1000], labels[:1000]),
        image_data(images[1000:1500], labels[1000:1500]),
    )
    assert result.findings == []
    assert not result.flagged.any()


def test_patch_on_pixel_columns_is_found_as_values_that_travel_together(digits) -> None:
    images, labels = digits
    new_images, new_labels, truth = badnets(images[1000:1500], labels[1000:1500], 0.05)
    schema = Schema("digit", tuple(Column(f"p{i}", ColumnKind.NUMERIC) for i in range(64)))

    def tabular(imgs: np.ndarray, labs: np.ndarray) -> GateData:
        flat = imgs.reshape(len(imgs), 64)
        table = pa.table({**{f"p{i}": flat[:, i] for i in range(64)}, "digit": [str(v) for v in labs]})
        return GateData(flat.astype(np.float32), labs, table)

    result = run(
        TriggerDetector(), schema, DIGITS, tabular(images[:1000], labels[:1000]), tabular(new_images, new_labels)
    )
    assert len(result.findings) == 1
    evidence = result.findings[0].evidence
    corner = {f"p{r * 8 + c}" for r in range(5, 8) for c in range(5, 8)}
    named = {part.split()[0] for part in evidence["trigger"].split(" and ")}
    assert named and named <= corner
    assert np.array_equal(result.flagged, truth)


# --- tabular --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cancer():
    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    columns = [c for c in frame.columns if c != "target"][:10]
    frame = frame.rename(columns={c: c.replace(" ", "_") for c in columns})
    names = [c.replace(" ", "_") for c in columns]
    return frame, names, frame["target"].to_numpy(np.int64)


def cancer_data(frame, names: list[str], labels: np.ndarray) -> GateData:
    table = pa.table({**{n: frame[n].to_numpy(float) for n in names}, "diagnosis": [str(v) for v in labels]})
    return GateData(frame[names].to_numpy(np.float32), labels, table)


def test_value_combination_tied_to_one_label_is_reported(cancer) -> None:
    frame, names, labels = cancer
    schema = Schema("diagnosis", tuple(Column(n, ColumnKind.NUMERIC) for n in names))
    base, new = frame.iloc[:400], frame.iloc[400:].copy()
    new_labels = labels[400:].copy()
    poison = np.flatnonzero(new_labels != 1)[: round(0.08 * len(new_labels))]
    # Large radius with low texture, labelled benign: a combination the trusted data never ties to "1".
    new.loc[new.index[poison], "mean_radius"] = float(base["mean_radius"].quantile(0.9))
    new.loc[new.index[poison], "mean_texture"] = float(base["mean_texture"].quantile(0.1))
    new_labels[poison] = 1
    result = run(
        TriggerDetector(),
        schema,
        ("0", "1"),
        cancer_data(base, names, labels[:400]),
        cancer_data(new, names, new_labels),
    )
    assert result.findings, result.summary
    evidence = result.findings[0].evidence
    assert evidence["label"] == "1"
    assert "mean_radius" in evidence["trigger"]
    assert evidence["kind"] in {"value", "combination"}
    assert set(np.flatnonzero(result.flagged)) >= set(poison.tolist())
    assert result.flagged.sum() <= len(poison) + 2


def test_clean_tabular_contribution_raises_no_trigger(cancer) -> None:
    frame, names, labels = cancer
    schema = Schema("diagnosis", tuple(Column(n, ColumnKind.NUMERIC) for n in names))
    for start in (0, 169):
        rest = np.r_[0:start, start + 169 : len(labels)]
        result = run(
            TriggerDetector(),
            schema,
            ("0", "1"),
            cancer_data(frame.iloc[rest], names, labels[rest]),
            cancer_data(frame.iloc[start : start + 169], names, labels[start : start + 169]),
        )
        assert result.findings == []
        assert result.summary["tests"] > 100  # pairs of columns were tested too


def test_categorical_value_tied_to_one_label_is_reported() -> None:
    schema = Schema("y", (Column("colour", ColumnKind.CATEGORICAL), Column("size", ColumnKind.NUMERIC)))

    def data(n: int, seed: int, trigger: int = 0) -> tuple[GateData, np.ndarray]:
        r = np.random.default_rng(seed)
        colour = r.choice(["red", "green", "blue"], n).astype(object)
        labels = r.integers(0, 2, n)
        colour[:trigger] = "magenta"
        labels[:trigger] = 1
        table = pa.table({"colour": colour.tolist(), "size": r.normal(size=n), "y": [str(v) for v in labels]})
        return GateData(np.zeros((n, 1), np.float32), labels.astype(np.int64), table), labels

    base, _ = data(600, 1)
    new, _ = data(200, 2, trigger=20)
    # Row numbers of the submitted file, when the gate passes them, are what the evidence names.
    new = GateData(new.features, new.labels, new.table, {"row": np.arange(101, 301)})
    result = run(TriggerDetector(), schema, ("0", "1"), base, new)
    assert "colour = magenta" in result.findings[0].evidence["trigger"]
    assert result.findings[0].evidence["rows"] == list(range(101, 121))
    assert result.flagged[:20].all() and not result.flagged[20:].any()


def test_the_raw_table_is_required() -> None:
    ctx = GateContext(TEXT_SCHEMA, TEXT_CLASSES)
    det = TriggerDetector().fit(GateData(np.zeros((0, 1), np.float32), np.zeros(0, np.int64)), ctx)
    with pytest.raises(InputError, match="raw table"):
        det.score(GateData(np.zeros((3, 1), np.float32), np.zeros(3, np.int64)))


def test_min_support_must_be_positive() -> None:
    with pytest.raises(InputError, match="min_support"):
        TriggerDetector(min_support=0)


def test_record_p_values_walk_carrier_entries_and_match_the_dense_definition() -> None:
    """Per record: min(1, c * min p) over the c tested patterns it carries with its own label. The
    walk over carrier entries must give exactly what the dense records-by-tests definition gives (that
    one needed an entry per record and test: billions for a few thousand photos)."""
    import scipy.sparse as sp

    from dataward.gates.detectors.triggers import _record_p_values

    rng = np.random.default_rng(0)
    n, n_patterns, n_classes = 300, 40, 3
    presence = sp.random(n, n_patterns, density=0.08, random_state=1, format="csc")
    presence.data[:] = 1.0
    labels = rng.integers(n_classes, size=n)
    keep = rng.random(25) < 0.8
    tests = {
        "pattern": rng.choice(n_patterns, 25, replace=False),
        "label": rng.integers(n_classes, size=25),
        "p_enrich": rng.uniform(1e-6, 0.5, 25),
        "p_tie": rng.uniform(1e-6, 0.5, 25),
    }
    got = _record_p_values(presence, labels, n_classes, tests, keep)
    dense = presence.toarray()
    expected = np.ones(n)
    for r in range(n):
        ps = [
            max(tests["p_enrich"][j], tests["p_tie"][j])
            for j in np.flatnonzero(keep)
            if dense[r, tests["pattern"][j]] and labels[r] == tests["label"][j]
        ]
        if ps:
            expected[r] = min(1.0, len(ps) * min(ps))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert (got < 1).sum() > 20  # the case exercises records carrying one and several patterns


def test_pairs_that_cannot_reach_significance_are_not_paid_for() -> None:
    """Tarone's count: 5,000 pairs seen three times can never reach alpha / k, so a pattern whose 25
    labelled carriers are all in the batch is corrected by the pairs that could compete with it only."""
    from dataward.gates.detectors.triggers import _testable_count

    rare, strong = 5000, 1
    m = np.r_[np.full(rare, 3), np.full(strong, 25)]
    tests = {
        "pattern": np.arange(rare + strong),
        "m": m,
        "b": np.zeros_like(m),
        "k_c": m * 2,  # half the carriers bear the label: the tie test is not what limits them
        "pi": np.full(rare + strong, 0.2),
    }
    k = _testable_count(tests, 5000, 4000, 0.01)
    assert k == strong
    # With every pair able to compete, Tarone's count is the number of pairs (plain Bonferroni).
    tests["m"] = tests["k_c"] = np.full(rare + strong, 200)
    assert _testable_count(tests, 5000, 4000, 0.01) == rare + strong
    assert _testable_count({key: v[:0] for key, v in tests.items()}, 5000, 4000, 0.01) == 0


def test_implicit_pair_columns_answer_as_the_written_out_pairs() -> None:
    """Pair patterns are kept as two base columns (the pairs of 32x32 photos would hold thousands of
    entries per record). Counts per label, column sums, one column's carriers, a selection, a subset of
    rows, the two sides stacked, and the walk over every record's entries (in several bounded blocks)
    must give exactly what the written-out matrix gives."""
    import scipy.sparse as sp

    from dataward.gates.detectors import triggers as t

    rng = np.random.default_rng(3)
    n_c, n_b, n_base, n_classes = 400, 150, 30, 3
    base_c = sp.csc_matrix(rng.random((n_c, n_base)) < np.linspace(0.02, 0.5, n_base))
    base_b = sp.csc_matrix(rng.random((n_b, n_base)) < 0.1)
    words_c, words_b = sp.random(n_c, 7, 0.1, random_state=4, format="csc"), sp.random(n_b, 7, 0.1, random_state=5)
    words_c.data[:], words_b.data[:] = 1.0, 1.0
    owner = np.arange(n_base) % 10
    names, pairs, _ = t._pair_patterns(base_c, base_b, [f"p{i}" for i in range(n_base)], owner, 3)
    assert len(names) > 100
    patterns = t.Patterns()
    patterns.add([f"w{i}" for i in range(7)], "text", "ngram", words_c, words_b)
    patterns.add_pairs(names, "x", "combination", pairs)
    xc, xb = patterns.stacked(n_c, n_b)

    def written(base: sp.csc_matrix, words: sp.spmatrix) -> np.ndarray:
        dense = base.toarray().astype(float)
        return np.hstack([words.toarray(), dense[:, pairs.i_idx] * dense[:, pairs.j_idx]])

    full_c, full_b = written(base_c, words_c), written(base_b, words_b)
    labels = rng.integers(n_classes, size=n_c)
    y = t._one_hot(labels, n_classes)
    np.testing.assert_array_equal(xc.label_counts(y), full_c.T @ y.toarray())
    np.testing.assert_array_equal(xc.column_sums(), full_c.sum(axis=0))
    for col in (0, 6, 7, 50, xc.shape[1] - 1):
        rows, data = xc.column(col)
        np.testing.assert_array_equal(np.sort(rows), np.flatnonzero(full_c[:, col]))
        assert np.all(data == 1.0)
    chosen = np.array([xc.shape[1] - 1, 3, 40, 8])
    np.testing.assert_array_equal(xc.select(chosen).toarray(), full_c[:, chosen])
    index = np.flatnonzero(rng.random(n_c) < 0.6)
    np.testing.assert_array_equal(xc.take_rows(index).label_counts(y[index]), full_c[index].T @ y.toarray()[index])
    pool = t.PatternMatrix.vstack(xb, xc)
    rows, _ = pool.column(60)
    np.testing.assert_array_equal(np.sort(rows), np.flatnonzero(np.vstack([full_b, full_c])[:, 60]))
    # Every record's entries, walked in blocks of at most 500 pairs: the record p-values equal those of
    # the written-out matrix.
    original, t.PAIR_ENTRIES = t.PAIR_ENTRIES, 500
    try:
        blocks = list(xc.entries())
        walked = np.zeros_like(full_c)
        for r, c in blocks:
            walked[r, c] += 1
        tests = t._association(xc, xb, y, t._one_hot(rng.integers(n_classes, size=n_b), n_classes), 3)
        keep = rng.random(len(tests["pattern"])) < 0.7
        got = t._record_p_values(xc, labels, n_classes, tests, keep)
    finally:
        t.PAIR_ENTRIES = original
    assert len(blocks) > 5
    np.testing.assert_array_equal(walked, full_c)
    expected = t._record_p_values(sp.csc_matrix(full_c), labels, n_classes, tests, keep)
    np.testing.assert_array_equal(got, expected)
    assert (got < 1).sum() > 50


def test_the_content_tests_prefetch_asks_for_each_row_once_however_many_patterns(monkeypatch) -> None:
    """A batch crafted so that thousands of patterns reach the content test (each reading up to 2,500
    rows) must not ask for the pool's rows once per pattern: on 720 photo crops that was a 29 GiB array
    of neighbour indices and the scan died. The rows asked for are the distinct rows of every plan."""
    import dataward.gates.detectors.triggers as triggers_module

    rng = np.random.default_rng(0)
    n_b, n_c, n_patterns = 300, 200, 2_000
    features = rng.normal(size=(n_b + n_c, 8)).astype(np.float32)
    labels = rng.integers(0, 3, n_b + n_c)
    patterns = (rng.random((n_b + n_c, n_patterns)) < 0.05).astype(float)
    xb = triggers_module.PatternMatrix.of(patterns[:n_b])
    xc = triggers_module.PatternMatrix.of(patterns[n_b:])
    content = triggers_module._ContentTie(
        GateData(features[:n_b], labels[:n_b]), GateData(features[n_b:], labels[n_b:]), xb, xc, 3, 5
    )
    asked: list[int] = []
    original = triggers_module._LazyNeighbours.get

    def counting(self, rows):
        asked.append(int(rows.size))
        return original(self, rows)

    monkeypatch.setattr(triggers_module._LazyNeighbours, "get", counting)
    pairs = [(p, int(labels[n_b]), np.flatnonzero(patterns[n_b:, p])) for p in range(n_patterns)]
    content.prefetch(pairs)
    assert asked and max(asked) <= n_b + n_c  # each row at most once, not once per pattern
    read = [content._plan(*pair) for pair in pairs[:50]]
    wanted = np.unique(np.concatenate([np.concatenate([p.own, p.peers, p.trusted]) for p in read]))
    assert content.neighbours.known[wanted].all()  # and every row the content tests read was searched
