"""Real data for tests: scikit-learn's bundled sets written out as the files users would bring."""

from __future__ import annotations

import csv
import itertools
import os
import subprocess
import sys
from pathlib import Path

from sklearn.datasets import load_wine

WINE_FEATURES = ["alcohol", "malic_acid", "ash", "magnesium", "proline"]


def wine_rows(start: int = 0, stop: int | None = None, *, shuffled: bool = False) -> list[dict[str, object]]:
    """Rows of the wine set; ``shuffled`` mixes the classes (the file is sorted by class)."""
    data = load_wine(as_frame=True).frame
    if shuffled:
        data = data.sample(frac=1.0, random_state=0)
    data = data.rename(columns={"target": "cultivar"})
    rows = data[[*WINE_FEATURES, "cultivar"]].iloc[start:stop]
    return rows.to_dict(orient="records")


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def wine_schema_specs() -> tuple[str, list[str]]:
    return "cultivar", [f"{name}:numeric" for name in WINE_FEATURES]


# The data-path tests exercise storage, not judgement: merges need no second person, the gate runs
# only its duplicate check, so no record of the (clean) test data waits for review, and a first import
# is judged against itself (the explicit opt-in; by default it needs a clean validation set).
NO_APPROVALS_POLICY = "approvals:\n  required: 0\ngate:\n  detectors: [duplicates]\nfirst_import: self-reference\n"
# Governance tests keep the default approvals with the same light gate.
LIGHT_GATE_POLICY = "gate:\n  detectors: [duplicates]\nfirst_import: self-reference\n"


_REVIEWERS: dict[str, object] = {}


def merge_reviewed(ward, ref: str) -> dict:  # type: ignore[no-untyped-def]
    """Merge a contribution after a second principal accepted whatever its gate flagged.

    The data-path tests are about storage: a record the light gate happens to flag is accepted by a
    reviewer (nobody reviews their own contribution), then the contribution is merged.
    """
    pending = ward.review_list(contribution=ref)
    if pending:
        key = str(ward.folder)
        if key not in _REVIEWERS:
            dataset = ref.rsplit("#", 1)[0] if "#" in ref else ward.contribution(ref)["dataset"]
            ward.create_principal("test-reviewer")
            ward.grant("test-reviewer", "reviewer", f"dataset:{dataset}")
            _REVIEWERS[key] = ward.as_key(ward.issue_key("test-reviewer")["key"])
        reviewer = _REVIEWERS[key]
        ids = [item["id"] for item in pending]
        reviewer.review_decide(ids, "accept", reason="test data, checked")  # type: ignore[attr-defined]
    return ward.merge(ref)


def wine_ward(folder: Path, policy: str = NO_APPROVALS_POLICY, catalog_url: str | None = None):  # type: ignore[no-untyped-def]
    """A new ward at ``folder`` (its catalog at ``catalog_url`` when given) with an empty ``wine``
    dataset under ``policy``."""
    from dataward.domain.schema import Schema
    from dataward.service.ward import Ward

    ward, _ = Ward.init(folder, catalog_url=catalog_url)
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", policy)
    return ward


def wine_training_ward(root: Path, policy: str, records: int):  # type: ignore[no-untyped-def]
    """A new ward at ``root / "ward"`` whose ``wine`` dataset (``policy``) has a training version
    ``wine@v1`` of the first ``records`` rows of the shuffled wine set, from source ``a``."""
    ward = wine_ward(root / "ward", policy)
    first = ward.contribute("wine", write_csv(root / "a.csv", wine_rows(0, records, shuffled=True)), source="a")
    merge_reviewed(ward, first["id"])
    ward.promote("wine@v1")
    return ward


def run_cli(ward: Path, *args: str, key: str | None = None, columns: int = 250) -> subprocess.CompletedProcess[str]:
    """``dataward ARGS`` in a fresh process on the ward folder ``ward``, as a user runs it: no key or server
    from this environment (``key`` sets ``DATAWARD_KEY``), a terminal ``columns`` wide."""
    env = {**os.environ, "DATAWARD_WARD": str(ward), "COLUMNS": str(columns)}
    env.pop("DATAWARD_KEY", None)
    env.pop("DATAWARD_URL", None)
    if key:
        env["DATAWARD_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "dataward", *args], env=env, capture_output=True, text=True, timeout=300
    )


def shuffled_with_poison(clean, poison, rng):  # type: ignore[no-untyped-def]
    """``(frame, truth)``: the clean and poisoned rows (pandas frames) in one seeded random order, and a
    mask of the poisoned ones."""
    import numpy as np
    import pandas as pd

    frame = pd.concat([clean, poison], ignore_index=True)
    truth = np.r_[np.zeros(len(clean), bool), np.ones(len(poison), bool)]
    order = rng.permutation(len(frame))
    return frame.iloc[order].reset_index(drop=True), truth[order]


def fail_hashing_batch(monkeypatch, number: int) -> None:  # type: ignore[no-untyped-def]
    """Make the record-id hashing fail at its ``number``-th batch (1-based) with "the column hasher
    returned nulls", as a column hasher that broke would; the batches before it hash as usual."""
    from dataward.domain import records

    real = records._digests_joined
    calls = itertools.count(1)

    def failing(batch):  # type: ignore[no-untyped-def]
        if next(calls) == number:
            raise RuntimeError("the column hasher returned nulls")
        return real(batch)

    monkeypatch.setattr(records, "_digests_joined", failing)


# The smallest well-formed model files of the formats registration reads for their structure: an ONNX
# ModelProto (IR version 8, a graph named "g", opset 17) and a safetensors file holding no tensor.
TINY_ONNX = b"\x08\x08" + b"\x3a\x03\x12\x01g" + b"\x42\x02\x10\x11"
EMPTY_SAFETENSORS = (8).to_bytes(8, "little") + b"{}      "
