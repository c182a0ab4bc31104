"""A quarantined contribution's records, sent again with only their text's spacing or Unicode form
changed, are the same records to a reader and to a model, and so to the hold-back.

Record ids hash text exactly as given (``canonical_text`` keeps every byte); the hold-back also compares
a normalized identity of records (``domain.normalized``: NFKC, invisible characters dropped, whitespace
folded, per text value) with that of quarantined records, so a trailing space, CRLF line ends, a
no-break space or the NFD form of an accent is held back like the exact copy: an honest re-scrape of the
same pages with other line ends does not re-admit the poison.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.service.ward import Ward

POLICY = "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  detectors: [llm_floods]\n"


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: {**r, "response": r["response"] + " "}, id="trailing-space"),
        pytest.param(lambda r: {**r, "response": r["response"].replace(" ", "\r\n", 1)}, id="line-end"),
        pytest.param(lambda r: {**r, "prompt": r["prompt"].replace(" ", "\u00a0", 1)}, id="no-break-space"),
        pytest.param(lambda r: {**r, "prompt": unicodedata.normalize("NFD", r["prompt"])}, id="nfd"),
    ],
)
def test_a_quarantined_instruction_sent_again_with_other_spacing_is_held_back(tmp_path: Path, change) -> None:  # type: ignore[no-untyped-def]
    base_pool, new_pool = d.split_pools()
    base = d.instruction_frame(200, 1, pool=base_pool)[["prompt", "response"]].to_dict(orient="records")
    bad = d.instruction_frame(40, 2, pool=new_pool)[["prompt", "response"]].to_dict(orient="records")
    bad = [{**r, "prompt": r["prompt"] + " café"} for r in bad]  # the NFC form is the one quarantined
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("howto", Schema.for_kind("instruction"))
    ward.set_policy("howto", POLICY)
    ward.merge(ward.contribute("howto", _jsonl(tmp_path / "base.jsonl", base), source="s")["ref"])
    ward.promote("howto@v1")
    poisoned = ward.contribute("howto", _jsonl(tmp_path / "bad.jsonl", bad), source="vendor")
    ward.merge(poisoned["ref"])
    ward.quarantine_contribution(poisoned["ref"], reason="poison found after training")
    again = ward.contribute("howto", _jsonl(tmp_path / "again.jsonl", bad), source="vendor", gate=False)
    assert again["held_back"] == 40  # the control: the very same bytes are held back
    variant = [change(r) for r in bad]
    assert all(v != r for v, r in zip(variant, bad, strict=True))
    sent = ward.contribute("howto", _jsonl(tmp_path / "variant.jsonl", variant), source="vendor", gate=False)
    assert sent["held_back"] == 40
