"""Approve, merge and promote on a ward whose bot holds tens of thousands of keys (docs/benchmarks.md,
"Separation of duties on a ward of many bot keys").

A ward issuing short-lived keys to a scraper bot collects one ``key.issued`` event per key. Separation of
duties reads who owned a bot while the key it acted with was live, so each approval, merge and promotion
depends on those keys' origins once the bot has been handed to another owner.

    python benchmarks/bench_bot_keys.py build FOLDER --keys 19950   # once: about 4 minutes on two cores
    python benchmarks/bench_bot_keys.py time FOLDER [--transfer]    # on a copy of the ward built

``time`` copies the ward, (with ``--transfer`` hands the scraper with the many keys to another human), has
the scraper submit 60 records, accepts what the gate flagged, and times one approval, the merge and the
promotion, each in the process that did the rest (a server's situation: the ledger already folded).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dataward.domain.schema import Schema
from dataward.service.ward import Ward

_START = datetime(2026, 11, 2, 9, 0, 30, tzinfo=UTC)
_FEATURES = ["alcohol", "malic_acid", "ash", "magnesium", "proline"]
_POLICY = "gate:\n  detectors: [duplicates]\nfirst_import: self-reference\n"


def _wine(folder: Path) -> tuple[Path, str, list[str]]:
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"}).sample(frac=1.0, random_state=0)
    data = data[[*_FEATURES, "cultivar"]]
    path = folder / "wine.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(data.columns))
        writer.writeheader()
        writer.writerows(data.iloc[:60].to_dict(orient="records"))
    return path, "cultivar", [f"{c}:numeric" for c in _FEATURES]


def build(folder: Path, keys: int) -> None:
    """A ward with dataset wine, alice (owner of the scraper bot), carol and bob (approvers), mallory, and
    ``keys`` one-day keys an admin issued the scraper."""
    folder.mkdir(parents=True)
    _, label, specs = _wine(folder)
    admin, _ = Ward.init(folder / "ward", clock=lambda: _START)
    admin.create_dataset("wine", Schema.parse(label, specs))
    admin.set_policy("wine", _POLICY)
    for name in ("alice", "bob", "carol", "mallory"):
        admin.create_principal(name)
    admin.create_principal("scraper", kind="service", owner="alice")
    admin.grant("scraper", "contributor", "dataset:wine")
    for name in ("bob", "carol"):
        admin.grant(name, "approver", "dataset:wine")
    credentials = {name: admin.issue_key(name)["key"] for name in ("alice", "bob", "carol", "mallory")}
    credentials["scraper"] = admin.issue_key("scraper", ttl_days=1)["key"]
    started = time.perf_counter()
    for _ in range(keys - 1):
        admin.issue_key("scraper", ttl_days=1)
    print(f"issued {keys} scraper keys in {time.perf_counter() - started:.0f} s")
    (folder / "keys.json").write_text(json.dumps(credentials))


def time_acts(folder: Path, transfer: bool) -> dict[str, float]:
    """Seconds of one approval, the merge and the promotion on a copy of the ward built in ``folder``."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch)
        shutil.copytree(folder / "ward", copy / "ward")
        credentials = json.loads((folder / "keys.json").read_text())
        now = _START + timedelta(hours=3)
        admin = Ward.open(copy / "ward", clock=lambda: now)
        if transfer:
            admin.transfer_principal("scraper", "mallory")
        path, _, _ = _wine(copy)
        ref = admin.as_key(credentials["scraper"]).contribute("wine", path, source="s:t")["ref"]
        for item in admin.review_list(contribution=ref):
            admin.review_decide([item["id"]], "accept", reason="ok")
        approver = admin.as_key(credentials["bob"])
        started = time.perf_counter()
        approver.approve(ref, reason="ok")
        approve = time.perf_counter() - started
        started = time.perf_counter()
        version = admin.merge(ref)["ref"]
        merge = time.perf_counter() - started
        started = time.perf_counter()
        admin.promote(version)
        promote = time.perf_counter() - started
        admin.close()
    return {"approve_s": round(approve, 3), "merge_s": round(merge, 3), "promote_s": round(promote, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["build", "time"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--keys", type=int, default=19950)
    parser.add_argument("--transfer", action="store_true", help="hand the scraper to another human first")
    args = parser.parse_args()
    if args.what == "build":
        build(args.folder, args.keys)
    else:
        print(json.dumps({"transfer": args.transfer, **time_acts(args.folder, args.transfer)}))


if __name__ == "__main__":
    main()
