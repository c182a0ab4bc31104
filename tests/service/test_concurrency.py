"""Concurrent imports from separate processes keep a gap-free chain and a consistent catalog."""

from __future__ import annotations

from pathlib import Path

from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.preloaded import preloaded_context


def _contribute(folder: str, path: str, source: str) -> str:
    ward = Ward.open(folder)
    return ward.contribute("wine", path, source=source)["id"]


def test_concurrent_imports(tmp_path: Path, catalog_url: str | None) -> None:
    ward, _ = Ward.init(tmp_path / "ward", catalog_url=catalog_url)
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    files = [
        str(write_csv(tmp_path / f"part{i}.csv", wine_rows(i * 20, i * 20 + 30))) for i in range(6)
    ]  # overlapping slices: the same record arrives from several processes at once
    ctx = preloaded_context(__name__)
    with ctx.Pool(3) as pool:
        ids = pool.starmap(_contribute, [(str(ward.folder), f, f"src{i}") for i, f in enumerate(files)])
    assert len(set(ids)) == 6
    contribs = ward.contributions("wine")
    assert sorted(c["number"] for c in contribs) == list(range(1, 7))
    report = ward.verify()
    assert report.ok, report.to_dict()
    for c in contribs:
        merge_reviewed(ward, c["id"])
    assert ward.versions("wine")[-1]["records"] == 130
