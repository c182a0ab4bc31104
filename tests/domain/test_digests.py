"""Column-wise digests and hex give exactly the ``blake3`` package's digests and Python's hex."""

from __future__ import annotations

import itertools

import blake3
import numpy as np
import pyarrow as pa
import pytest

from dataward.domain import digests
from dataward.domain.idarrays import binary_to_ids, distinct_order, ids_to_binary, sorted_distinct
from dataward.domain.records import record_id_array, record_ids
from tests.domain.test_record_ids import EVERY_KIND, every_kind_table

# Values of many lengths, empty ones included, end to end in one buffer: what is checked is that each
# value's own bytes are hashed (offsets honoured, no value running into the next), not BLAKE3 itself.
LENGTHS = [0, 1, 63, 64, 65, 1023, 1024, 1025, 2049, 4097, 17409]


def _column(lengths: list[int], seed: int = 0) -> tuple[bytes, np.ndarray]:
    data = np.random.default_rng(seed).integers(0, 256, sum(lengths), dtype=np.uint8).tobytes()
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return data, offsets


def test_digests_equal_blake3_of_each_value_and_an_offset_start_is_honoured() -> None:
    data, offsets = _column(LENGTHS)
    want = b"".join(blake3.blake3(data[a:b]).digest() for a, b in itertools.pairwise(offsets))
    assert digests.digests(data, offsets) == want
    # A sliced Arrow array's offsets start inside the data.
    assert digests.digests(data, offsets[3:]) == want[3 * 32 :]
    assert digests.digests(data, offsets[:1]) == b""


@pytest.mark.parametrize("offsets", [[0, 5, 3], [0, 11], [-1, 2], [4, 2]])
def test_offsets_outside_the_data_or_falling_are_refused(offsets: list[int]) -> None:
    with pytest.raises(ValueError, match="offsets must rise within the data"):
        digests.digests(b"0123456789", np.array(offsets, dtype=np.int64))


def _hex_rows(binary: np.ndarray) -> np.ndarray:
    """``hex_text`` as a writable ``(n, 64)`` array of characters, one row per id, to edit."""
    return np.frombuffer(bytearray(digests.hex_text(binary)), dtype=np.uint8).reshape(len(binary), -1)


def test_hex_both_ways_and_bad_rows_marked() -> None:
    binary = np.random.default_rng(3).integers(0, 256, (50, 32), dtype=np.uint8)
    text = _hex_rows(binary)
    assert [bytes(row).decode() for row in text] == [bytes(row).hex() for row in binary]
    text[7, 3] = ord("A")  # upper case is not how the ward writes ids
    text[9, 63] = ord("g")
    back, valid = digests.from_hex(text)
    assert valid.tolist() == [i not in (7, 9) for i in range(50)]
    assert (back[valid] == binary[valid]).all()
    assert not back[~valid].any()


@pytest.mark.parametrize(
    "bad",
    [b"A", b"F", b" ", b"\n", b"\x00", b"\xe9", b"g"],
    ids=["upper-a", "upper-f", "space", "newline", "nul", "non-ascii", "not-hex"],
)
def test_a_row_with_one_character_that_is_not_lowercase_hex_is_marked_alone(bad: bytes) -> None:
    """Each bad row on its own among good ones, so no other row sends the decoding down the look-up:
    upper case is hex to ``binascii.unhexlify`` and must still be refused (an id has one spelling)."""
    binary = np.random.default_rng(7).integers(0, 256, (6, 32), dtype=np.uint8)
    text = _hex_rows(binary)
    text[2, 10] = bad[0]
    text[5, 0] = bad[0]
    back, valid = digests.from_hex(text)
    assert valid.tolist() == [True, True, False, True, True, False]
    assert (back[valid] == binary[valid]).all() and not back[~valid].any()
    good, ok = digests.from_hex(_hex_rows(binary))
    assert ok.all() and np.array_equal(good, binary) and good.flags.writeable


def test_an_id_in_upper_case_is_not_a_valid_id() -> None:
    ids = [blake3.blake3(bytes([i])).hexdigest() for i in range(4)]
    binary, valid = ids_to_binary(pa.array([*ids[:2], ids[2].upper(), ids[3]]))
    assert valid.tolist() == [True, True, False, True] and not binary[2].any()
    assert binary_to_ids(binary[[0, 1, 3]]).to_pylist() == [ids[0], ids[1], ids[3]]


def test_sorted_distinct_is_numpys_unique_of_the_32_byte_rows() -> None:
    rng = np.random.default_rng(5)
    binary = rng.integers(0, 256, (400, 32), dtype=np.uint8)
    binary[100:140, :8] = binary[0, :8]  # many share their first 8 bytes and differ after them
    binary[200:230] = binary[5]  # repeats, one of them sharing those 8 bytes too
    binary[300] = binary[120]
    binary = binary[rng.permutation(len(binary))]
    want = np.unique(np.ascontiguousarray(binary).view("V32").ravel()).view(np.uint8).reshape(-1, 32)
    got = sorted_distinct(binary)
    assert len(got) == 400 - 31 and np.array_equal(got, want)
    assert np.array_equal(sorted_distinct(binary[:1]), binary[:1]) and sorted_distinct(binary[:0]).shape == (0, 32)
    # The first-occurrence mask that comes with the order: the first row of each id, by row.
    seen: set[bytes] = set()
    naive = [not (row.tobytes() in seen or seen.add(row.tobytes())) for row in binary]  # type: ignore[func-returns-value]
    order, first = distinct_order(binary)
    assert first.tolist() == naive and np.array_equal(binary[order[first[order]]], want)


@pytest.mark.parametrize("n", [2, 3, 255, 256, 257, 5000])
def test_distinct_order_sorts_on_whole_ids_then_rows_whatever_the_rows_bits(n: int) -> None:
    """The sort packs each row number into the low bits of the ids' first 8 bytes: ids that differ only
    in those bits, or only after the first 8 bytes, still come out in id order, repeats by row."""
    rng = np.random.default_rng(n)
    binary = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    binary[n // 2 :, :7] = binary[0, :7]  # half share their first 7 bytes: they differ in the packed bits
    binary[1::3] = binary[0]  # repeats
    if n > 3:
        binary[3, 8:] ^= 0xFF  # differs from row 0 only after the first 8 bytes
        binary[3, :8] = binary[0, :8]
    want = np.lexsort((np.arange(n), *(binary[:, i] for i in range(31, -1, -1))))
    order, first = distinct_order(binary)
    assert np.array_equal(order, want)
    _, firsts = np.unique(np.ascontiguousarray(binary).view("V32").ravel(), return_index=True)
    assert np.flatnonzero(first).tolist() == sorted(firsts.tolist())


def test_column_wise_ids_are_blake3_of_each_rows_encoding_and_round_trip() -> None:
    from dataward.domain.records import encode_record

    table = pa.concat_tables([every_kind_table()] * 5)
    ids = record_id_array(EVERY_KIND, table)
    assert record_ids(EVERY_KIND, table) == [
        blake3.blake3(encode_record(EVERY_KIND, row)).hexdigest() for row in table.to_pylist()
    ]
    binary, valid = ids_to_binary(ids)
    assert valid.all() and binary_to_ids(binary).equals(ids)


def test_a_column_hashed_in_one_call_gives_the_same_digests_as_one_call_per_value(monkeypatch) -> None:
    """The ``fast`` extra's column hasher (installed with the dev extra, so it is what this runs) and the
    per-value path agree on every value, empty ones and a start inside the data included."""
    assert digests._column_hasher() is not None, "the dev extra installs polars-hash: the batch path must be tested"
    rng = np.random.default_rng(11)
    lengths = [*LENGTHS, *rng.integers(0, 200, 2 * digests.BATCH_MIN_VALUES).tolist(), 0, 0]
    data, offsets = _column(lengths, seed=4)
    data = data.replace(b"\x01", b"\x00")  # NUL bytes inside values are values' bytes like any other
    want = b"".join(blake3.blake3(data[a:b]).digest() for a, b in itertools.pairwise(offsets))
    assert digests.digests(data, offsets) == want
    assert digests.digests(data, offsets[5:]) == want[5 * 32 :]
    monkeypatch.setattr(digests, "_column_hasher", lambda: None)
    assert digests.digests(data, offsets) == want


def test_ids_in_columns_of_other_types_are_read_or_marked_invalid() -> None:
    """Bytes spelling an id are read as its text; bytes that are not text, and columns of numbers or
    lists, hold no id (marked invalid, never an Arrow error)."""
    ids = [blake3.blake3(bytes([i])).hexdigest() for i in range(3)]
    spelled = pa.array([ids[0].encode(), b"\xff" * 64, None, ids[2].encode()], pa.binary())
    binary, valid = ids_to_binary(spelled)
    assert valid.tolist() == [True, False, False, True]
    assert binary_to_ids(binary[[0, 3]]).to_pylist() == [ids[0], ids[2]]
    large, large_valid = ids_to_binary(spelled.cast(pa.large_binary()).slice(1))
    assert large_valid.tolist() == [False, False, True] and bytes(large[2]) == bytes(binary[3])
    for other in (pa.array([1, 2]), pa.array([[1], [2]], pa.list_(pa.int64()))):
        none, none_valid = ids_to_binary(other)
        assert not none_valid.any() and not none.any()


def test_a_column_hasher_whose_digests_are_out_of_order_is_refused() -> None:
    """A column hasher's output becomes record ids: digests in another order (or of other bytes) are
    caught by recomputing spread values with the ``blake3`` package, before any id is used."""
    values = [f"record {i}".encode() for i in range(1000)]
    span = b"".join(values)
    offsets = np.concatenate(([0], np.cumsum([len(v) for v in values]))).astype(np.int64)
    right = b"".join(blake3.blake3(v).digest() for v in values)
    assert digests._spot_checked(span, offsets, right) == right
    swapped = right[32:64] + right[:32] + right[64:]  # the first two digests swapped
    with pytest.raises(RuntimeError, match="value 0 is not its BLAKE3"):
        digests._spot_checked(span, offsets, swapped)
    shifted = right[32:] + right[:32]  # every digest one place off
    with pytest.raises(RuntimeError, match="is not its BLAKE3"):
        digests._spot_checked(span, offsets, shifted)
    with pytest.raises(RuntimeError, match="bytes for 1000 digests"):
        digests._spot_checked(span, offsets, right[:-32])
