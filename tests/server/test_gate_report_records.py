"""The gate report quotes records only to those who may read them, in the folder and over HTTP.

Attack: a contributor without ``dataset.export`` (``crawler``) asks for the gate report of another
principal's contribution (``scraper``'s), whose flagged records ``review show`` refuses to show it,
and reads them from ``extras.evidence`` instead (`gate report`, ``GET /contributions/{ref}/gate``,
the ``--html`` page). It gets what the gate measured, not the records.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dataward.api import WardAPI
from dataward.cli.gate_commands import write_gate_html
from dataward.client import HTTPWard
from dataward.domain.errors import AccessDenied
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.server.conftest import Served

MODES = ("embedded", "http")
TOPICS = ("network", "storage", "graphics")
MARK = "SCRAPERS-OWN-WORDING"
TRUSTED = "TRUSTED-WORDING"


def _rows(start: int, stop: int) -> list[dict[str, str]]:
    return [
        {"label": TOPICS[i % 3], "text": f"{TOPICS[i % 3]} manual page {i} {MARK} explains option {i * 7 % 13}"}
        for i in range(start, stop)
    ]


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["label", "text"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def keys(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A text dataset with a clean validation set; ``scraper`` (a bot) submitted ``ds#1``, whose gate
    flagged records with their texts and trusted neighbours as evidence. ``crawler`` is another
    contributor, ``bob`` a reader. Returns the keys and the contribution's reference."""
    root = tmp_path_factory.mktemp("report-records")
    admin = HTTPWard(served.url, key=served.admin_key)
    schema = Schema.parse("label", ["text:text"])
    admin.create_dataset("ds", schema)
    admin.create_dataset("ds-val", schema, validation_for="ds")
    admin.set_policy("ds", "gate:\n  detectors: [duplicates]\n  alpha: 0.2\n  flag_fdr: null\n")
    trusted = [{**r, "text": r["text"].replace(MARK, TRUSTED)} for r in _rows(100, 160)]
    admin.merge(admin.contribute("ds-val", _write(root / "v.csv", trusted), source="curated")["ref"])
    admin.create_principal("alice")
    admin.create_principal("bob")
    for bot in ("scraper", "crawler"):
        admin.create_principal(bot, kind="service", owner="alice")
        admin.grant(bot, "contributor", "dataset:ds")
    admin.grant("bob", "reader", "dataset:ds")
    out = {name: admin.issue_key(name)["key"] for name in ("scraper", "crawler", "bob")}
    # Near copies of trusted records under another label: flagged, with their neighbours as evidence.
    batch = _rows(0, 30) + [
        {"label": TOPICS[(TOPICS.index(t["label"]) + 1) % 3], "text": f"{t['text']} {MARK}"} for t in trusted[:3]
    ]
    scraper = HTTPWard(served.url, key=out["scraper"])
    out["ref"] = scraper.contribute("ds", _write(root / "a.csv", batch), source="a", gate=True)["ref"]
    return out


def _ward(served: Served, mode: str, key: str) -> WardAPI:
    return Ward.open(served.ward, key=key) if mode == "embedded" else HTTPWard(served.url, key=key)


@pytest.mark.parametrize("mode", MODES)
def test_a_contributor_gets_no_record_of_anothers_contribution_from_its_gate_report(
    served: Served, keys: dict[str, str], mode: str, tmp_path: Path
) -> None:
    crawler, bob = _ward(served, mode, keys["crawler"]), _ward(served, mode, keys["bob"])
    full = bob.gate_report(keys["ref"])
    flagged = {str(r["row"]) for r in full["records"] if r["flagged"]}
    quoted = json.dumps(full["extras"]["evidence"])
    assert flagged and MARK in quoted and TRUSTED in quoted
    item = bob.review_list(contribution=keys["ref"])[0]["id"]
    with pytest.raises(AccessDenied, match=r"dataset\.export"):
        crawler.review_show(item)  # the same records, refused on this path ...
    seen = crawler.gate_report(keys["ref"])  # ... and on this one
    text = json.dumps(seen)
    assert MARK not in text and TRUSTED not in text
    assert "dataset.export" in seen["records_withheld"]
    # What the gate measured stays: verdict, counts, scores, flagged rows and their record ids.
    assert (seen["verdict"], seen["counts"], seen["records"]) == (full["verdict"], full["counts"], full["records"])
    assert set(seen["extras"]["evidence"]) == set(full["extras"]["evidence"])
    assert [f["reason"] for f in seen["findings"]] == [f["reason"] for f in full["findings"]]
    # The HTML page (`gate report --html`) is made from the same report.
    page = tmp_path / "report.html"
    write_gate_html(crawler, keys["ref"], page)
    html = page.read_text("utf-8")
    assert MARK not in html and "dataset.export" in html


@pytest.mark.parametrize("mode", MODES)
def test_the_submitter_sees_its_own_records_but_no_trusted_ones(
    served: Served, keys: dict[str, str], mode: str
) -> None:
    mine = _ward(served, mode, keys["scraper"]).gate_report(keys["ref"])
    evidence = mine["extras"]["evidence"]
    assert any(MARK in str(ev.get("text")) for ev in evidence.values())
    assert all("neighbours" not in ev for ev in evidence.values())
    assert "trusted records" in mine["records_withheld"]
    full = _ward(served, mode, keys["bob"]).gate_report(keys["ref"])
    assert "records_withheld" not in full and any(ev["neighbours"] for ev in full["extras"]["evidence"].values())
