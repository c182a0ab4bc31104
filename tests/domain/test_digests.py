"""The compiled column helpers give exactly the ``blake3`` package's digests and Python's hex."""

from __future__ import annotations

import itertools

import blake3
import numpy as np
import pyarrow as pa
import pytest

from dataward.domain import native
from dataward.domain.idarrays import binary_to_ids, ids_to_binary
from dataward.domain.records import record_id_array
from tests.domain.test_record_ids import EVERY_KIND, every_kind_table

# Across the block (64 bytes), chunk (1,024 bytes) and tree boundaries (2, 3, 4, 5, 8, 9, 16, 17 chunks).
LENGTHS = [0, 1, 63, 64, 65, 127, 128, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097, 5120]
LENGTHS += [8192, 8193, 9216, 16384, 16385, 17409, 50_000, (1 << 20) + 7]


def _column(lengths: list[int], seed: int = 0) -> tuple[bytes, np.ndarray]:
    data = np.random.default_rng(seed).integers(0, 256, sum(lengths), dtype=np.uint8).tobytes()
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return data, offsets


def test_the_compiled_helper_is_built() -> None:
    assert native.built(), "dataward.domain._native is not built: reinstall with `pip install -e .`"


def test_digests_equal_blake3_at_every_boundary() -> None:
    data, offsets = _column(LENGTHS)
    got = native.digests(data, offsets)
    want = b"".join(blake3.blake3(data[a:b]).digest() for a, b in itertools.pairwise(offsets))
    assert got == want


def test_two_threads_give_the_ids_in_order_and_an_offset_start_is_honoured() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 200, 3 * native._SPLIT).tolist()
    data, offsets = _column(lengths, seed=2)
    got = native.digests(data, offsets[5:])  # starts inside the data, as a sliced Arrow array does
    bounds = offsets[5:].tolist()
    want = b"".join(blake3.blake3(data[a:b]).digest() for a, b in itertools.pairwise(bounds))
    assert got == want


@pytest.mark.skipif(not native.built(), reason="the compiled helper is not built")
@pytest.mark.parametrize("offsets", [[0, 5, 3], [0, 11], [-1, 2], [4, 2]])
def test_offsets_outside_the_data_or_falling_are_refused(offsets: list[int]) -> None:
    with pytest.raises(ValueError, match="offsets must rise within the data"):
        native._native.digests(b"0123456789", np.array(offsets, dtype=np.int64))


def test_hex_both_ways_and_bad_rows_marked() -> None:
    binary = np.random.default_rng(3).integers(0, 256, (50, 32), dtype=np.uint8)
    text = native.to_hex(binary)
    assert [bytes(row).decode() for row in text] == [bytes(row).hex() for row in binary]
    text[7, 3] = ord("A")  # upper case is not how the ward writes ids
    text[9, 63] = ord("g")
    back, valid = native.from_hex(text)
    assert valid.tolist() == [i not in (7, 9) for i in range(50)]
    assert (back[valid] == binary[valid]).all()
    assert not back[~valid].any()
    back[0, 0] ^= 1  # writable, like the numpy result it replaces


def test_row_digests_hash_each_rows_pieces_joined_side_by_side_or_alone() -> None:
    # 37 rows (not a whole number of 8-row groups), lengths crossing the one-chunk limit in some groups.
    rng = np.random.default_rng(4)
    lengths = rng.integers(0, 300, 37)
    lengths[[3, 20]] = [1024 - 9, 5000]  # a row of exactly one chunk with the pieces, and a longer one
    data, offsets = _column(lengths.tolist(), seed=5)
    tail_data, tail_offsets = _column(rng.integers(0, 40, 37).tolist(), seed=6)
    pieces = [b"head:", (data, offsets), b"", (tail_data, tail_offsets), b"!!!!"]
    want = b"".join(
        blake3.blake3(b"head:" + data[a:b] + tail_data[c:d] + b"!!!!").digest()
        for a, b, c, d in zip(offsets[:-1], offsets[1:], tail_offsets[:-1], tail_offsets[1:], strict=True)
    )
    assert native.row_digests(pieces, 37) == want
    assert native.row_digests([b"p", (data, offsets[:2])], 1) == blake3.blake3(b"p" + data[: offsets[1]]).digest()
    with pytest.raises(ValueError, match="n \\+ 1 int64"):
        native.row_digests([(data, offsets)], 36)


def test_row_digests_on_two_threads_keep_row_order() -> None:
    n = 2 * native._SPLIT + 3
    data, offsets = _column(np.random.default_rng(7).integers(0, 90, n).tolist(), seed=8)
    got = native.row_digests([b"x", (data, offsets)], n)
    assert got == b"".join(blake3.blake3(b"x" + data[a:b]).digest() for a, b in itertools.pairwise(offsets))


def test_without_the_compiled_helper_the_ids_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.concat_tables([every_kind_table()] * 5)  # 30 rows: groups of eight and a rest
    compiled = record_id_array(EVERY_KIND, table)
    monkeypatch.setattr(native, "_native", None)
    assert not native.built()
    assert record_id_array(EVERY_KIND, table).equals(compiled)
    binary, valid = ids_to_binary(compiled)
    assert valid.all() and binary_to_ids(binary).equals(compiled)
    data, offsets = _column([0, 64, 1025])
    assert native.digests(data, offsets) == b"".join(
        blake3.blake3(data[a:b]).digest() for a, b in itertools.pairwise(offsets)
    )
