"""Text read in blocks of rows (the naive Bayes matrix of ``label_consistency``, its leave-one-out scores,
the TF-IDF/SVD featurizer's vectors): the same bits as all rows at once, with less memory held."""

from __future__ import annotations

import numpy as np


def test_text_blocks_are_the_whole_matrix(monkeypatch) -> None:
    """The contribution's naive Bayes matrix, its leave-one-out scores and the text featurizer's vectors
    read ``TEXT_ROWS`` / ``TRANSFORM_ROWS`` rows at a time are the same bits as all rows at once."""
    import pyarrow as pa

    from dataward.domain.schema import Schema
    from dataward.gates.detectors import label_consistency as lc
    from dataward.gates.features import text as text_features
    from dataward.gates.features.pipeline import FeaturePipeline

    rng = np.random.default_rng(0)
    words = ["list", "files", "copy", "move", "print", "socket", "read", "write", "open", "close", "tool"]
    texts = [" ".join(rng.choice(words, rng.integers(1, 7))) + f" {i % 37}" for i in range(700)]
    labels = rng.integers(0, 3, len(texts))
    groups = rng.integers(0, 500, len(texts))
    idf = [lc._reference_idf(b) for b in (lc._word_counts(texts[:100]), lc._char_counts(texts[:100]))]
    schema = Schema.from_dict({"label": "label", "inputs": [{"name": "text", "kind": "text"}]})
    table = pa.table({"text": texts})

    def run() -> tuple[lc.sparse.csr_matrix, np.ndarray, np.ndarray]:
        matrix = lc._new_rows_matrix(texts, idf)
        joint = lc.NaiveBayes(matrix, labels, 3).loo_log_joint(groups)
        vectors = FeaturePipeline(schema).fit(table.slice(0, 300)).transform(table)
        return matrix, joint, vectors

    whole = run()
    monkeypatch.setattr(lc, "TEXT_ROWS", 64)
    monkeypatch.setattr(text_features, "TRANSFORM_ROWS", 50)
    blocks = run()
    assert (whole[0] != blocks[0]).nnz == 0 and np.array_equal(whole[0].indptr, blocks[0].indptr)
    assert np.array_equal(whole[1], blocks[1]) and np.array_equal(whole[2], blocks[2])
