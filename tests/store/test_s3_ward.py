"""A ward whose objects live in an S3 bucket (moto's server on loopback, reached through s3fs):
imports, dedup, guarded reads and verify behave as on a local folder, and tampering in the bucket
is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import IntegrityViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from dataward.store import FsspecObjectStore
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


def _ward_on_s3(tmp_path: Path, s3_url: str) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward", store_url=s3_url)
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    return ward


def test_a_ward_on_s3_imports_dedups_serves_and_verifies(tmp_path: Path, s3_url: str) -> None:
    ward = _ward_on_s3(tmp_path, s3_url)
    assert isinstance(ward.store, FsspecObjectStore) and ward.store.url == s3_url
    first = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 40)), source="a")
    merge_reviewed(ward, first["id"])
    again = ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(20, 60)), source="b")
    assert again["new_records"] == 20  # the 20 already in the bucket are stored once
    merge_reviewed(ward, again["id"])
    frame = ward.dataset("wine").version("v2").to_pandas()
    assert len(frame) == 60 and frame["record_id"].is_unique
    # Every object the catalog names is in the bucket, under its content hash.
    assert len(list(ward.store.iter_digests())) >= 4
    assert ward.verify().ok


def test_an_object_altered_in_the_bucket_is_refused_and_reported(tmp_path: Path, s3_url: str) -> None:
    ward = _ward_on_s3(tmp_path, s3_url)
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 30)), source="a")["id"])
    with ward.db.reading() as conn:
        chunk = conn.exec_driver_sql("SELECT digest FROM chunks").scalar_one()
    hex_part = chunk.removeprefix("b3:")
    fs = ward.store.fs
    root = fs._strip_protocol(s3_url)
    with fs.open(f"{root}/objects/{hex_part[:2]}/{hex_part[2:]}", "wb") as out:
        out.write(b"not the chunk that was stored")
    fs.invalidate_cache()
    with pytest.raises(IntegrityViolation, match=chunk):
        ward.dataset("wine").version("v1").to_pandas()
    assert any(p.area == "objects" and chunk in p.where for p in ward.verify().problems)
