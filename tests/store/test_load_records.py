"""Records are served in the order asked, whichever chunks hold them and however the ids are ordered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import text

from dataward.domain.errors import IntegrityViolation
from dataward.domain.schema import Schema
from dataward.service import recordstore
from dataward.service.ward import Ward
from tests.helpers import wine_rows, wine_schema_specs, write_csv


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Ward, Schema, dict[str, dict]]:
    """A ward whose records sit in two chunks (two contributions), and every record by id."""
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    schema = Schema.parse(label, specs)
    ward.create_dataset("wine", schema)
    for name, (start, stop) in {"a": (0, 60), "b": (60, 120)}.items():
        ward.contribute("wine", write_csv(tmp_path / f"{name}.csv", wine_rows(start, stop)), source=name, gate=False)
    with ward.db.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM chunks")).scalar_one() == 2
        every = recordstore.load_records(conn, ward.store, _all_ids(conn), schema)
    return ward, schema, {row["record_id"]: row for row in every.to_pylist()}


def _all_ids(conn) -> list[str]:  # type: ignore[no-untyped-def]
    blocks = conn.execute(text("SELECT chunk, ids FROM record_blocks ORDER BY chunk")).all()
    return [bytes(ids[i : i + 32]).hex() for _, ids in blocks for i in range(0, len(ids), 32)]


@pytest.mark.parametrize("arrangement", ["chunk by chunk", "interleaved", "reversed", "repeats and a subset"])
def test_records_come_back_in_the_order_asked(stored: tuple[Ward, Schema, dict[str, dict]], arrangement: str) -> None:
    ward, schema, by_id = stored
    ids = list(by_id)  # chunk by chunk: the first contribution's records, then the second's
    rng = np.random.default_rng(0)
    if arrangement == "interleaved":
        ids = [ids[i] for i in rng.permutation(len(ids))]
    elif arrangement == "reversed":
        ids = ids[::-1]
    elif arrangement == "repeats and a subset":
        ids = [ids[i] for i in rng.integers(0, len(ids), 50)] + ids[100:103] + ids[:3]
    with ward.db.reading() as conn:
        table = recordstore.load_records(conn, ward.store, pa.array(ids), schema)
    assert table.column("record_id").to_pylist() == ids
    assert table.to_pylist() == [by_id[i] for i in ids]


@pytest.mark.parametrize("interleaved", [False, True])
def test_an_index_entry_pointed_at_another_row_is_refused_in_either_order(
    stored: tuple[Ward, Schema, dict[str, dict]], interleaved: bool
) -> None:
    ward, schema, by_id = stored
    ids = list(by_id)
    victim = ids[70]  # in the second chunk
    with ward.db.transaction() as conn:
        blocks = conn.execute(text("SELECT bits, prefix, chunk, ids, rows FROM record_blocks")).all()
        for bits, prefix, chunk, blob, rows in blocks:
            listed = [bytes(blob[i : i + 32]).hex() for i in range(0, len(blob), 32)]
            if victim in listed:
                at = listed.index(victim)
                other = (int.from_bytes(rows[4 * at : 4 * at + 4], "little") + 1) % 60
                edited = bytes(rows[: 4 * at]) + other.to_bytes(4, "little") + bytes(rows[4 * at + 4 :])
                conn.execute(
                    text("UPDATE record_blocks SET rows = :r WHERE bits = :b AND prefix = :p AND chunk = :c"),
                    {"r": edited, "b": bits, "p": prefix, "c": chunk},
                )
    asked = [ids[i] for i in np.random.default_rng(1).permutation(len(ids))] if interleaved else ids
    refused = f"record {victim} is located at row .* by the record index"
    with ward.db.reading() as conn, pytest.raises(IntegrityViolation, match=refused):
        recordstore.load_records(conn, ward.store, pa.array(asked), schema)


def test_a_manifests_summary_is_what_sorting_its_ids_as_strings_gives() -> None:
    """The version check sorts ids as digests and hashes them column-wise: the same records hash,
    distinct count and length as sorting the hex strings, and non-ids counted apart."""
    from dataward.service.recordstore import records_hash, summarize_ids

    rng = np.random.default_rng(3)
    ids = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(3000)]
    ids[10:20] = [ids[5]] * 10  # repeats
    ids[40] = ids[41][:8] + "0" * 56  # shares a prefix with another id
    shuffled = [ids[i] for i in rng.permutation(len(ids))]
    summary = summarize_ids(pa.array(shuffled))
    distinct = sorted(set(shuffled))
    assert (summary.listed, summary.distinct, summary.invalid) == (3000, len(distinct), 0)
    assert summary.records == records_hash(distinct)
    empty = summarize_ids(pa.array([], pa.string()))
    assert (empty.listed, empty.distinct, empty.records) == (0, 0, records_hash([]))
    odd = summarize_ids(pa.array([ids[0], ids[1].upper(), "not an id", None, ids[2]]))
    assert (odd.listed, odd.distinct, odd.invalid) == (5, 2, 3)
    assert odd.records == records_hash(sorted([ids[0], ids[2]]))
