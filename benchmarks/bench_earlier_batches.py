"""``python -m benchmarks.bench_earlier_batches [ROUNDS]``: what the joint scan costs a contribution in a ward.

A sender's first 200-line batch (one scan) and his second (its own scan and the joint scan with the first,
``dataward.gates.earlier_batches``), against an 800-line training version of man-page lines: CPU seconds of
each ``contribute``, in one process, after a warm-up contribution of another sender. Each round builds a
fresh ward."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from dataward.domain.schema import Schema
from dataward.service.ward import Ward

TEXT = Path(__file__).resolve().parents[1] / "examples" / "data" / "man_sections.csv"
PARTS = {"validation": (0, 250), "baseline": (250, 1050), "first": (1050, 1250), "second": (1250, 1450)}
WARM_UP = (1450, 1650)


def ward_with_training(root: Path) -> Ward:
    """An 800-line `man` training version sent by the admin, and the batch files beside it."""
    data = pd.read_csv(TEXT, dtype=str).dropna().sample(frac=1.0, random_state=1).reset_index(drop=True)
    for name, (start, stop) in {**PARTS, "warm_up": WARM_UP}.items():
        data.iloc[start:stop].to_csv(root / f"{name}.csv", index=False)
    ward, _ = Ward.init(root / "ward")
    schema = Schema.parse("label", ["text:text"])
    ward.create_dataset("man", schema)
    ward.create_dataset("man-val", schema, validation_for="man")
    ward.set_policy("man", "approvals:\n  required: 0\n")
    ward.merge(ward.contribute("man-val", root / "validation.csv", source="curated")["id"])
    first = ward.contribute("man", root / "baseline.csv", source="debian", gate=True)
    for item in ward.review_list(contribution=first["ref"]):
        ward.review_decide([item["id"]], "accept", reason="checked")
    ward.merge(first["ref"])
    ward.promote("man@v1")
    return ward


def contributed(bot: Ward, path: Path) -> tuple[float, dict[str, Any]]:
    """CPU seconds of one gated ``contribute``, and what it returned."""
    start = time.process_time()
    result = bot.contribute("man", path, source=path.stem, gate=True)
    return time.process_time() - start, result


def one_round() -> tuple[float, float]:
    """CPU seconds of the sender's first and second batch."""
    with tempfile.TemporaryDirectory(prefix="bench-earlier-") as tmp:
        root = Path(tmp)
        ward = ward_with_training(root)
        bots = {}
        for name in ("sender", "other"):
            ward.create_principal(name)
            ward.grant(name, "contributor", "dataset:man")
            bots[name] = ward.as_key(ward.issue_key(name)["key"])
        contributed(bots["other"], root / "warm_up.csv")
        alone, _ = contributed(bots["sender"], root / "first.csv")
        joint, second = contributed(bots["sender"], root / "second.csv")
        assert second["gate"]["earlier_batches"]["records"] == 200, second["gate"].get("earlier_batches")
        ward.close()
    return alone, joint


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    for n in range(rounds):
        alone, joint = one_round()
        print(
            f"round {n + 1}: first batch {alone:.2f} CPU s, second (with the joint scan) {joint:.2f} CPU s, "
            f"{joint / alone:.2f}x"
        )


if __name__ == "__main__":
    main()
