"""A dataset's key rule (``keys: {max_ttl_days: N}``) binds every key that writes to the dataset over
HTTP too, in the requests that name no dataset in their path: ``POST /review/decide`` and ``POST
/quarantine`` are use cases on the ward that act on the datasets they find. A 365-day key accepted a
contribution's flagged records and quarantined by principal where the dataset allows 30 days."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.client import HTTPWard
from dataward.domain.errors import AccessDenied
from dataward.domain.schema import Schema
from tests.helpers import wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import Served

POLICY = (
    "keys:\n  max_ttl_days: 30\n"
    "gate:\n  detectors: [duplicates, outliers]\n  alpha: 0.5\n  flag_fdr: null\nfirst_import: self-reference\n"
)


def test_review_decisions_and_containment_over_http_keep_the_dataset_key_rule(served: Served, tmp_path: Path) -> None:
    admin = HTTPWard(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    admin.create_dataset("kept-short", Schema.parse(label, specs))
    for name, role in (("carol-keys", "contributor"), ("rev-keys", "reviewer")):
        admin.create_principal(name)
        admin.grant(name, role, "dataset:kept-short")
    admin.set_policy("kept-short", POLICY)  # the admin's own 90-day key writes to it no more
    carol = HTTPWard(served.url, key=admin.issue_key("carol-keys", ttl_days=30)["key"])
    batch = write_csv(tmp_path / "batch.csv", wine_rows(0, 60, shuffled=True))
    c = carol.contribute("kept-short", batch, source="https://vendor.example/a.csv")
    long_lived = HTTPWard(served.url, key=admin.issue_key("rev-keys", ttl_days=365)["key"])
    queue = long_lived.review_list(contribution=c["ref"])
    assert queue, "a permissive alpha must flag something to review"

    refused = r"live 365 days; dataset kept-short's policy lets keys that write to it live at most 30 days"
    with pytest.raises(AccessDenied, match=refused):
        long_lived.review_decide([], "accept", reason="looks fine", contribution=c["ref"])
    with pytest.raises(AccessDenied, match=refused):
        long_lived.review_decide([queue[0]["id"]], "accept", reason="looks fine")
    with pytest.raises(AccessDenied, match=refused):
        long_lived.quarantine_by("principal:carol-keys", reason="incident")
    assert {q["status"] for q in admin.review_list(contribution=c["ref"], status="all")} == {"pending"}

    fits = HTTPWard(served.url, key=admin.issue_key("rev-keys", ttl_days=30)["key"])
    assert fits.review_decide([queue[0]["id"]], "accept", reason="looks fine")[0]["status"] == "accepted"
