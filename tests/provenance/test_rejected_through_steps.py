"""Rejected records laundered through a transformation into another dataset.

The attack (an attacker review of transformations): the bot ``scraper`` (owned by alice) sends a batch;
alice's clean batch carries 4 of the same records into ``wine``. The bot's 4 records are flagged, then
rejected (as a unit, or by a reviewer). ``wine``'s version holding alice's copy is barred. carol, who may
read ``wine`` and own ``other``, copies that version into ``other`` with a recorded step (or augments
it, lineage given). The step's output contribution, under carol's name and the reserved
``transformation:`` source, counted as an independent voucher: ``other@v1`` was promoted and served
the rejected records (or the records made from them) for training. A step's output now vouches for
nothing it copied or made from rejected records.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.domain.schema import RECORD_ID, Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.provenance.test_quarantine_sides import BOT_SOURCE, _added, _as, _flag


def _laundered(ward: Ward, tmp_path: Path, decision: str, step: str) -> tuple[str, list[str]]:
    """The bot's batch flagged then rejected (``decision``: ``unit`` or ``review``), alice's earlier copy
    merged in ``wine``, and carol's ``step`` (``copy`` or ``augment``) of that version into ``other``,
    merged. Returns the bot's ref and its flagged records."""
    ward.grant("alice", "contributor", "dataset:wine")
    bot_ref = _as(ward, "scraper").contribute(
        "wine", write_csv(tmp_path / "bot.csv", wine_rows(100, 124)), source=BOT_SOURCE
    )["ref"]
    rows = wine_rows(100, 104) + wine_rows(130, 170)
    copy = _as(ward, "alice").contribute("wine", write_csv(tmp_path / "copy.csv", rows), source="s3://alice/mirror")
    version = merge_reviewed(ward, copy["ref"])["ref"]
    flagged = _added(ward, bot_ref)[:4]
    _flag(ward, bot_ref, flagged)
    if decision == "unit":
        ward.reject(bot_ref, reason="backdoor")
    else:
        ward.create_principal("rev")
        ward.grant("rev", "reviewer", "dataset:wine")
        items = [i["id"] for i in ward.review_list(contribution=bot_ref)]
        _as(ward, "rev").review_decide(items, "reject", reason="backdoor")
    label, specs = wine_schema_specs()
    ward.create_dataset("other", Schema.parse(label, specs))
    ward.set_policy("other", NO_APPROVALS_POLICY)
    ward.create_principal("carol")
    ward.grant("carol", "owner", "dataset:wine")
    ward.grant("carol", "owner", "dataset:other")
    with _as(ward, "carol").transform(step, inputs=version, output="other", code={"kind": "unknown"}) as t:
        read = t.read().to_pylist()
        bump = 0.01 if step == "augment" else 0.0
        t.write([{**r, "alcohol": r["alcohol"] + bump} for r in read], parents=[r[RECORD_ID] for r in read])
    assert t.result is not None
    merge_reviewed(ward, t.result["ref"])
    return bot_ref, flagged


@pytest.mark.parametrize(
    ("decision", "step", "reason"),
    [
        ("unit", "copy", "4 made by a transformation from records flagged in rejected contribution wine#3"),
        ("unit", "augment", "4 made by a transformation from records flagged in rejected contribution wine#3"),
        ("review", "copy", "4 made by a transformation from records rejected in review"),
        ("review", "augment", "4 made by a transformation from records rejected in review"),
    ],
)
def test_a_step_s_copy_of_rejected_records_is_not_served_in_another_dataset(
    wine_ward: Ward, tmp_path: Path, decision: str, step: str, reason: str
) -> None:
    ward = wine_ward
    _laundered(ward, tmp_path, decision, step)
    with pytest.raises(PolicyViolation, match=reason):
        ward.promote("other@v1", reason="carol's copy")
    with pytest.raises(PolicyViolation, match=reason):
        ward.load_version("other", "v1", stage=None)
    # What is signed and published about the version says so too.
    statement = json.loads(base64.b64decode(ward.attest("other@v1")[1]["payload"]))
    assert statement["predicate"]["barred_records"] == [{"reason": reason.split(" ", 1)[1], "records": 4}]


def test_a_step_of_records_nobody_rejected_is_still_served(wine_ward: Ward, tmp_path: Path) -> None:
    """Nothing is barred when the flagged records were accepted: the step is an ordinary step again."""
    ward = wine_ward
    label, specs = wine_schema_specs()
    ward.create_dataset("other", Schema.parse(label, specs))
    ward.set_policy("other", NO_APPROVALS_POLICY)
    bot_ref = _as(ward, "scraper").contribute(
        "wine", write_csv(tmp_path / "bot.csv", wine_rows(100, 124)), source=BOT_SOURCE
    )["ref"]
    _flag(ward, bot_ref, _added(ward, bot_ref)[:4])
    merge_reviewed(ward, bot_ref)  # a reviewer accepts the flagged records
    with ward.transform("copy", inputs="wine@v3", output="other", code={"kind": "unknown"}) as t:
        read = t.read().to_pylist()
        t.write(read, parents=[r[RECORD_ID] for r in read])
    assert t.result is not None
    merge_reviewed(ward, t.result["ref"])
    ward.promote("other@v1", reason="nothing rejected")
    assert ward.load_version("other", "training")[1].num_rows == 104


def test_a_rejection_after_a_read_bars_the_steps_copy_on_the_next_read(
    wine_ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the reads derive from the steps is kept while the ledger's head stays the same event: what a
    read kept before the rejection must not let the next read, after it, serve the step's copies."""
    from dataward.service import derived

    ward = wine_ward
    ward.grant("alice", "contributor", "dataset:wine")
    bot_ref = _as(ward, "scraper").contribute(
        "wine", write_csv(tmp_path / "bot.csv", wine_rows(100, 124)), source=BOT_SOURCE
    )["ref"]
    rows = wine_rows(100, 104) + wine_rows(130, 170)
    copy = _as(ward, "alice").contribute("wine", write_csv(tmp_path / "copy.csv", rows), source="s3://alice/mirror")
    version = merge_reviewed(ward, copy["ref"])["ref"]
    added = _added(ward, bot_ref)
    copied, elsewhere = added[:4], added[10:12]  # alice's copy holds the first 4 only
    _flag(ward, bot_ref, copied + elsewhere)
    label, specs = wine_schema_specs()
    ward.create_dataset("other", Schema.parse(label, specs))
    ward.set_policy("other", NO_APPROVALS_POLICY)
    with ward.transform("copy", inputs=version, output="other", code={"kind": "unknown"}) as t:
        read = t.read().to_pylist()
        t.write(read, parents=[r[RECORD_ID] for r in read])
    assert t.result is not None
    merge_reviewed(ward, t.result["ref"])
    ward.create_principal("rev")
    ward.grant("rev", "reviewer", "dataset:wine")
    lineage_reads: list[int] = []
    real = derived.transformation_steps
    monkeypatch.setattr(derived, "transformation_steps", lambda *a, **k: lineage_reads.append(1) or real(*a, **k))
    items = {i["record_id"]: i["id"] for i in ward.review_list(contribution=bot_ref)}
    _as(ward, "rev").review_decide([items[r] for r in elsewhere], "reject", reason="backdoor")
    # Two records nobody copied are rejected: the copy is served, and the second read uses the steps the
    # first one read (the ledger's head is the same event).
    assert ward.load_version("other", "v1", stage=None)[1].num_rows == 124
    first = len(lineage_reads)
    assert ward.load_version("other", "v1", stage=None)[1].num_rows == 124
    assert first > 0
    assert len(lineage_reads) == first
    # The rejection is a new event: the next read derives again and bars the step's copies.
    _as(ward, "rev").review_decide([items[r] for r in copied], "reject", reason="backdoor")
    with pytest.raises(PolicyViolation, match="4 made by a transformation from records rejected in review"):
        ward.load_version("other", "v1", stage=None)
    assert len(lineage_reads) == first + 1
