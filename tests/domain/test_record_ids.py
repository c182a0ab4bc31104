"""Column-wise record ids are exactly the reference per-row ids, whatever the Arrow layout."""

from __future__ import annotations

import itertools
import math
import struct
import time
import weakref
from typing import Any

import blake3
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataward.domain import records
from dataward.domain.errors import InputError
from dataward.domain.records import canonical_table, encode_record, record_id, record_ids, with_record_ids
from dataward.domain.schema import RECORD_ID, Schema
from tests.helpers import fail_hashing_batch

EVERY_KIND = Schema.parse("label", ["text:text", "x:numeric", "c:categorical", "img:image", "e:embedding:3"])


def reference_ids(schema: Schema, table: pa.Table) -> list[str]:
    """The definition: ``record_id`` of each row taken as Python values."""
    return [record_id(schema, row) for row in table.to_pylist()]


def every_kind_table(
    *,
    text: pa.DataType = pa.large_string(),
    category: pa.DataType = pa.string(),
    image: pa.DataType = pa.large_binary(),
    embedding: pa.DataType = pa.list_(pa.float32(), 3),
) -> pa.Table:
    return pa.table(
        {
            "text": pa.array(["a cat", None, "üñí€😀", "", "x" * 5000, "tab\there"], text),
            "x": pa.array([1.5, None, -0.0, float("nan"), math.inf, -1e-308], pa.float64()),
            "c": pa.array(["red", None, "", "blue", "0", "ß"], category),
            "img": pa.array([b"\x89PNG\r\n", None, b"", b"\x00" * 70_000, b"\xff", b"z"], image),
            "e": pa.array(
                [[0.1, 0.2, 0.3], None, [0.0, -0.0, 1e30], [1.0, 2.0, None], [-1.0, 0.5, 3.0], [7.0, 8.0, 9.0]],
                embedding,
            ),
            "label": pa.array(["1", "2", "3", None, "café", "1"], pa.string()),
        }
    )


def test_every_kind_with_missing_values_matches_the_reference() -> None:
    table = every_kind_table()
    ids = record_ids(EVERY_KIND, table)
    assert ids == reference_ids(EVERY_KIND, table)
    assert len(set(ids)) == len(ids)


def test_the_encoding_is_the_documented_byte_layout() -> None:
    schema = Schema.parse("y", ["a:text", "n:numeric"])

    def tlv(tag: bytes, payload: bytes) -> bytes:
        return tag + struct.pack(">Q", len(payload)) + payload

    # Columns sorted by name: a, n, y; the numeric -0.0 is encoded as 0.0.
    expected = (
        b"dataward/record/v1"
        + tlv(b"N", b"a")
        + tlv(b"T", "é".encode())
        + tlv(b"N", b"n")
        + tlv(b"F", struct.pack(">d", 0.0))
        + tlv(b"N", b"y")
        + tlv(b"L", b"pos")
    )
    assert encode_record(schema, {"a": "é", "n": -0.0, "y": "pos"}) == expected
    table = pa.table({"a": ["é"], "n": [-0.0], "y": ["pos"]})
    assert record_ids(schema, table) == [blake3.blake3(expected).hexdigest()]


@pytest.mark.parametrize(
    ("text", "category", "image", "embedding"),
    [
        (pa.string(), pa.large_string(), pa.binary(), pa.list_(pa.float32())),
        (pa.large_string(), pa.string(), pa.large_binary(), pa.large_list(pa.float32())),
        (pa.string(), pa.string(), pa.binary(), pa.list_(pa.float64(), 3)),
        (pa.large_string(), pa.large_string(), pa.large_binary(), pa.large_list(pa.float64())),
    ],
)
def test_ids_do_not_depend_on_arrow_type_widths(
    text: pa.DataType, category: pa.DataType, image: pa.DataType, embedding: pa.DataType
) -> None:
    expected = record_ids(EVERY_KIND, every_kind_table())
    other = every_kind_table(text=text, category=category, image=image, embedding=embedding)
    assert record_ids(EVERY_KIND, other) == expected


def test_ids_do_not_depend_on_dictionary_encoding() -> None:
    table = every_kind_table()
    encoded = table.set_column(2, "c", table.column("c").dictionary_encode())
    assert record_ids(EVERY_KIND, encoded) == record_ids(EVERY_KIND, table)


def test_multi_chunk_and_sliced_tables_give_the_ids_of_their_rows() -> None:
    table = every_kind_table()
    whole = record_ids(EVERY_KIND, table)
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2, 1), table.slice(3)])
    assert chunked.column("text").num_chunks == 3
    assert record_ids(EVERY_KIND, chunked) == whole
    assert record_ids(EVERY_KIND, table.slice(2, 3)) == whole[2:5]


def test_negative_zero_and_nan_fold_like_the_canonical_values() -> None:
    schema = Schema.parse("label", ["x:numeric"])
    table = pa.table({"x": [0.0, -0.0, float("nan"), None, 3.0], "label": ["a"] * 5})
    ids = record_ids(schema, table)
    assert ids[0] == ids[1], "-0.0 is the number 0.0"
    assert ids[2] == ids[3], "NaN is a missing value"
    assert len({ids[0], ids[2], ids[4]}) == 3


def test_integer_numbers_hash_as_the_same_floats() -> None:
    schema = Schema.parse("label", ["x:numeric"])
    values = [0, -3, 2**53 + 1, 2**62, None]
    as_int = pa.table({"x": pa.array(values, pa.int64()), "label": ["a"] * 5})
    assert record_ids(schema, as_int) == reference_ids(schema, as_int)
    as_float = pa.table({"x": pa.array([0.0, -3.0, None, None, None], pa.float64()), "label": ["a"] * 5})
    assert record_ids(schema, as_int)[:2] == record_ids(schema, as_float)[:2]


def test_missing_is_not_empty() -> None:
    schema = Schema.parse("label", ["t:text", "i:image"])
    table = pa.table(
        {"t": ["", None, ""], "i": pa.array([b"", b"", None], pa.large_binary()), "label": ["a", "a", "a"]}
    )
    ids = record_ids(schema, table)
    assert len(set(ids)) == 3
    assert ids == reference_ids(schema, table)


def test_unusual_arrow_types_use_the_per_row_definition() -> None:
    schema = Schema.parse("label", ["x:numeric", "e:embedding:2"])
    table = pa.table(
        {
            "x": pa.array(["1.5", "-0", None], pa.string()),
            "e": pa.array([[1, 2], [3, 4], [-5, 6]], pa.list_(pa.int64())),
            "label": ["a", "b", "c"],
        }
    )
    ids = record_ids(schema, table)
    assert ids == reference_ids(schema, table)
    floats = pa.table(
        {
            "x": [1.5, 0.0, None],
            "e": pa.array([[1, 2], [3, 4], [-5, 6]], pa.list_(pa.float32(), 2)),
            "label": ["a", "b", "c"],
        }
    )
    assert ids == record_ids(schema, floats)


def test_many_batches_give_the_same_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.concat_tables([every_kind_table()] * 40)
    expected = reference_ids(EVERY_KIND, table)
    monkeypatch.setattr(records, "_BATCH_BYTES", 200)  # far smaller than one row with an image
    assert record_ids(EVERY_KIND, table) == expected
    assert records.record_id_array(EVERY_KIND, table).to_pylist() == expected


def test_batches_hashed_on_threads_keep_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of hundreds of rows each (the column hasher's size, when installed) are encoded and
    hashed on threads: the ids come back in row order, as one batch gives them, and every row is in
    exactly one batch."""
    schema = Schema.parse("label", ["text:text"])
    table = pa.table(
        {"text": [f"line {i} " * (1 + i % 7) for i in range(6000)], "label": [f"c{i % 5}" for i in range(6000)]}
    )
    expected = reference_ids(schema, table)
    monkeypatch.setattr(records, "_BATCH_BYTES", 20_000)  # about ten batches of several hundred rows
    ranges = records._batches(records._RowEncoding(schema, table).sizes())
    assert len(ranges) >= 8
    assert [r for start, stop in ranges for r in range(start, stop)] == list(range(6000))
    assert record_ids(schema, table) == expected


def test_batches_of_a_chunked_table_give_the_same_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that spans two of a column's chunks (a CSV is parsed in blocks) is encoded as one."""
    table = every_kind_table()
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1)] * 30)
    assert chunked.column("text").num_chunks > 1
    monkeypatch.setattr(records, "_BATCH_BYTES", 300)
    assert record_ids(EVERY_KIND, chunked) == reference_ids(EVERY_KIND, chunked)


def test_a_batch_that_fails_to_hash_fails_the_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = Schema.parse("label", ["text:text"])
    table = pa.table({"text": [f"line {i}" for i in range(3000)], "label": ["c0"] * 3000})
    monkeypatch.setattr(records, "_BATCH_BYTES", 4_000)
    fail_hashing_batch(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="nulls"):
        record_ids(schema, table)


def test_joined_batches_held_at_once_are_bounded_and_freed_once_hashed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A joined batch is up to ``_BATCH_BYTES`` (16 MiB): no more than ``_HASH_THREADS`` are joined
    and held at a time, and a batch is let go once hashed, so a long import holds ``_HASH_THREADS``
    batches, not more."""
    schema = Schema.parse("label", ["text:text"])
    table = pa.table({"text": [f"line {i}" for i in range(3000)], "label": ["c0"] * 3000})
    monkeypatch.setattr(records, "_BATCH_BYTES", 4_000)

    class Batch:  # stands for a joined batch; weakly referenced to see when it is freed
        def __init__(self, start: int, stop: int) -> None:
            self.start, self.stop = start, stop

    alive: list[weakref.ref[Batch]] = []
    held_at_join: list[int] = []
    real_joined, real_digests = records._RowEncoding.joined, records._digests_joined

    def joined(self: records._RowEncoding, start: int, stop: int) -> Batch:
        held_at_join.append(sum(ref() is not None for ref in alive))
        batch = Batch(start, stop)
        alive.append(weakref.ref(batch))
        return batch

    def digest_of(batch: Batch) -> bytes:
        time.sleep(0.002)  # the hashing takes a while: the joining could run ahead of it
        return real_digests(real_joined(encoding, batch.start, batch.stop))

    encoding = records._RowEncoding(schema, table)
    monkeypatch.setattr(records._RowEncoding, "joined", joined)
    monkeypatch.setattr(records, "_digests_joined", digest_of)
    out = records.record_digest_array(schema, table)
    assert len(alive) >= 8
    assert [bytes(row).hex() for row in out] == reference_ids(schema, table)
    assert max(held_at_join) < records._HASH_THREADS
    assert all(ref() is None for ref in alive), "a hashed batch is still held"


def test_the_id_column_is_the_ids_as_strings() -> None:
    table = every_kind_table()
    ids = records.record_id_array(EVERY_KIND, table)
    assert ids.type == pa.string() and ids.to_pylist() == reference_ids(EVERY_KIND, table)
    assert records.record_id_array(EVERY_KIND, table.slice(0, 0)).to_pylist() == []


def test_a_missing_column_is_refused_by_name() -> None:
    table = every_kind_table().drop_columns(["img"])
    with pytest.raises(InputError, match="'img'"):
        record_ids(EVERY_KIND, table)


def test_an_empty_table_has_no_ids() -> None:
    assert record_ids(EVERY_KIND, every_kind_table().slice(0, 0)) == []


def test_canonical_tables_carry_the_reference_ids() -> None:
    rows = [{"text": "hello", "x": "2", "c": 3, "img": b"\x01", "e": [1, 2, 3], "label": 7}]
    table = canonical_table(EVERY_KIND, rows)
    canonical_row = {k: v for k, v in table.to_pylist()[0].items() if k != RECORD_ID}
    assert table.column(RECORD_ID).to_pylist() == [record_id(EVERY_KIND, canonical_row)]
    again = with_record_ids(EVERY_KIND, table)
    assert again.column_names[0] == RECORD_ID and again.num_columns == table.num_columns


# --- property: any content, any layout -------------------------------------------------------

_texts = st.one_of(st.none(), st.text(max_size=30))
_numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
_images = st.one_of(st.none(), st.binary(max_size=40))
_embeddings = st.one_of(st.none(), st.lists(st.one_of(st.none(), st.floats(width=32)), min_size=3, max_size=3))
_rows = st.fixed_dictionaries(
    {"text": _texts, "x": _numbers, "c": _texts, "img": _images, "e": _embeddings, "label": _texts}
)


def _as_table(rows: list[dict[str, Any]], wide: bool, fixed: bool) -> pa.Table:
    types = {
        "text": pa.large_string() if wide else pa.string(),
        "x": pa.float64(),
        "c": pa.large_string() if wide else pa.string(),
        "img": pa.large_binary() if wide else pa.binary(),
        "e": pa.list_(pa.float32(), 3) if fixed else pa.list_(pa.float32()),
        "label": pa.string(),
    }
    return pa.table({name: pa.array([r[name] for r in rows], typ) for name, typ in types.items()})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(_rows, min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=1, max_value=11), max_size=3),
    wide=st.booleans(),
    fixed=st.booleans(),
)
def test_property_fast_ids_equal_reference_ids(
    rows: list[dict[str, Any]], cuts: list[int], wide: bool, fixed: bool
) -> None:
    table = _as_table(rows, wide, fixed)
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    chunked = pa.concat_tables([table.slice(a, b - a) for a, b in itertools.pairwise(bounds)])
    expected = reference_ids(EVERY_KIND, table)
    assert record_ids(EVERY_KIND, chunked) == expected
    assert record_ids(EVERY_KIND, _as_table(rows, not wide, not fixed)) == expected


def test_digests_worked_out_ahead_are_those_of_record_ids_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """``RecordDigests`` (what an import reads its ids from while it encodes the first rows) gives each
    range of rows the digests ``record_digest_array`` gives them, whichever range is asked first."""
    schema = Schema.parse("label", ["text:text"])
    table = pa.table(
        {"text": [f"line {i} " * (1 + i % 7) for i in range(6000)], "label": [f"c{i % 5}" for i in range(6000)]}
    )
    expected = records.record_digest_array(schema, table)
    monkeypatch.setattr(records, "_BATCH_BYTES", 20_000)  # about ten batches
    ahead = records.RecordDigests(schema, table)
    assert (ahead.rows(5990, 6000) == expected[5990:]).all()
    assert (ahead.rows(0, 7) == expected[:7]).all()
    assert (ahead.result() == expected).all() and ahead.result().shape == (6000, 32)
    # One batch is hashed on the calling thread, and an empty table has nothing to wait for.
    monkeypatch.setattr(records, "_BATCH_BYTES", 16 << 20)
    assert (records.RecordDigests(schema, table).result() == expected).all()
    assert records.RecordDigests(schema, table.slice(0, 0)).result().shape == (0, 32)


def test_digests_worked_out_ahead_raise_the_hashing_error_to_every_waiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that fails to hash fails every wait for rows at or beyond it (the import's chunk thread
    and its calling thread alike), while rows hashed before it are still given: no wait hangs."""
    schema = Schema.parse("label", ["text:text"])
    table = pa.table({"text": [f"line {i}" for i in range(3000)], "label": ["c0"] * 3000})
    monkeypatch.setattr(records, "_BATCH_BYTES", 4_000)
    ranges = records._batches(records._RowEncoding(schema, table).sizes())
    real = records._digests_joined
    third = f"line {ranges[2][0]}".encode()  # the text is the last field of a row's encoding

    def third_fails(batch: pa.Array) -> bytes:
        if batch[0].as_py().endswith(third):
            raise RuntimeError("the column hasher returned nulls")
        return real(batch)

    monkeypatch.setattr(records, "_digests_joined", third_fails)
    ahead = records.RecordDigests(schema, table)
    with pytest.raises(RuntimeError, match="nulls"):
        ahead.rows(ranges[2][0], ranges[2][1])
    with pytest.raises(RuntimeError, match="nulls"):
        ahead.result()
    assert ahead.rows(0, ranges[0][1]).shape == (ranges[0][1], 32)
