"""An overridden block still sends the records it rested on through review.

A BadNets batch of digits against a baseline of about a hundred trusted digits a class is blocked by
``backdoor``, and no record of it can be flagged at the gate's alpha share. Before the block's records
were queued with it, the review queue of that contribution was empty: two owners overriding the block
could merge every poisoned digit without anyone looking at one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from dataward.domain.errors import Conflict
from dataward.domain.schema import Schema
from dataward.service.ward import Ward

POISONED = 25
SETUP_POLICY = "approvals:\n  required: 0\ngate:\n  detectors: [duplicates]\nfirst_import: self-reference\n"
GATED_POLICY = "approvals:\n  required: 0\ngate:\n  seed: 0\n"  # pinned: the same scan on every run


def _csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    frame = pd.DataFrame({f"p{i}": x[:, i] for i in range(64)})
    frame["label"] = [str(v) for v in y]
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def blocked(tmp_path: Path) -> tuple[dict[str, Ward], str, set[int]]:
    """A ward whose ``digits`` training version holds 1,000 digits, and a vendor's batch of 500 others
    with ``POISONED`` of them patched and relabelled 0, blocked; the poisoned rows (CSV lines)."""
    admin, _ = Ward.init(tmp_path / "ward")
    admin.create_dataset("digits", Schema.parse("label", [f"p{i}:numeric" for i in range(64)]))
    admin.set_policy("digits", SETUP_POLICY)
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    x, y = data.data.astype(np.float32), data.target.copy()
    first = admin.contribute("digits", _csv(tmp_path / "base.csv", x[order[:1000]], y[order[:1000]]), source="trusted")
    assert not admin.review_list(contribution=first["ref"])
    admin.merge(first["ref"])
    admin.promote("digits@v1")
    admin.set_policy("digits", GATED_POLICY)

    xb, yb = x[order[1000:1500]].copy(), y[order[1000:1500]].copy()
    poison = np.random.default_rng(1).choice(np.flatnonzero(yb != 0), POISONED, replace=False)
    images = xb[poison].reshape(-1, 8, 8)
    images[:, 5:8, 5:8] = 16.0
    xb[poison], yb[poison] = images.reshape(-1, 64), 0
    for name in ("vendor", "ann", "ben", "dan"):
        admin.create_principal(name)
    admin.grant("vendor", "contributor", "dataset:digits")
    admin.grant("ann", "owner", "dataset:digits")
    admin.grant("ben", "owner", "dataset:digits")
    admin.grant("dan", "reviewer", "dataset:digits")
    team = {name: admin.as_key(admin.issue_key(name)["key"]) for name in ("vendor", "ann", "ben", "dan")}
    team["admin"] = admin
    c = team["vendor"].contribute("digits", _csv(tmp_path / "batch.csv", xb, yb), source="https://vendor.example/b")
    assert c["gate"]["verdict"] == "block"
    return team, c["ref"], {int(p) + 2 for p in poison}  # CSV line: the header is line 1


def test_a_blocked_batchs_poison_waits_in_the_queue_and_an_override_does_not_let_it_through(blocked) -> None:
    team, ref, poisoned_rows = blocked
    queue = team["dan"].review_list(contribution=ref)
    by_block = [item for item in queue if "backdoor:block" in item["detectors"]]
    assert {item["row"] for item in by_block} == poisoned_rows
    # Nothing else queues them: no detector flags one of them at its alpha share.
    assert all(item["detectors"] == ["backdoor:block"] for item in by_block)
    assert len(queue) - len(by_block) <= 3, "beside them, only the other detectors' few flags"
    shown = team["dan"].review_show(by_block[0]["id"])
    assert "label-inconsistent cluster" in shown["reason"]

    team["ann"].override_block(ref, reason="the vendor says these are fine")
    assert team["ben"].override_block(ref, reason="agreed")["status"] == "overridden"
    assert team["admin"].contribution(ref)["gate_verdict"] == "review"
    # The override lifts the block, not the review of the records it rested on.
    assert {item["id"] for item in team["dan"].review_list(contribution=ref)} == {item["id"] for item in queue}
    with pytest.raises(Conflict, match="await review"):
        team["admin"].merge(ref)
    for item in queue:
        if item in by_block:
            team["dan"].review_decide([item["id"]], "reject", reason="a white corner patch on a relabelled digit")
        else:
            team["dan"].review_decide([item["id"]], "accept", reason="an odd but real digit")
    version = team["admin"].merge(ref)
    assert version["held_back_of_contribution"] == POISONED
    ids = team["admin"].dataset("digits").version(f"v{version['number']}").to_arrow().column("record_id").to_pylist()
    assert not set(ids) & {item["record_id"] for item in by_block}
