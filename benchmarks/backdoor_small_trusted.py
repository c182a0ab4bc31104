"""`backdoor` verdicts at small trusted sizes, and on the attack and benign suites.

A first import judges its batch against one half of the clean validation set. ``first-import`` splits
the shipped man-page lines like a ward does: the first ``--validation`` lines of a shuffled file are
the validation set, halved by ``trusted_for_first_import`` at each seed, and the next 800 are a clean
batch drawn exactly like it; every clean block is a false block. ``suites`` runs ``backdoor`` alone at
seed 0 on the tuning attacks, the held-out attacks, and the tuning and held-out benign situations.

    python -m benchmarks.backdoor_small_trusted first-import [--validation 250] [--seeds 40] [--out F.json]
    python -m benchmarks.backdoor_small_trusted suites [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from dataward.domain.schema import Schema
from dataward.gates import GatePolicy, scan
from dataward.service.first_import import trusted_for_first_import

MAN_SECTIONS = Path(__file__).resolve().parents[1] / "examples" / "data" / "man_sections.csv"
BATCH = 800


def first_import(validation_size: int, seeds: int) -> dict[str, Any]:
    """Per seed: the gate's verdict on a clean batch and ``backdoor``'s block and p-value."""
    data = pd.read_csv(MAN_SECTIONS, dtype=str).dropna().sample(frac=1.0, random_state=1).reset_index(drop=True)
    validation = pa.Table.from_pandas(data.iloc[:validation_size], preserve_index=False)
    batch = pa.Table.from_pandas(data.iloc[validation_size : validation_size + BATCH], preserve_index=False)
    schema = Schema.parse("label", ["text:text"])
    out: dict[str, Any] = {}
    for seed in range(1, seeds + 1):
        baseline, held_out, _ = trusted_for_first_import(validation, "label", seed)
        report = scan(baseline, batch, schema, held_out, GatePolicy(seed=seed), workers=1)
        result = report.results["backdoor"]
        out[str(seed)] = {"verdict": report.verdict, "block": result.block, "p_value": result.p_value}
        print(seed, out[str(seed)], flush=True)
    blocks = sum(r["block"] for r in out.values())
    print(f"backdoor blocked {blocks} of {seeds} clean batches")
    return out


def suites() -> dict[str, Any]:
    """``backdoor`` alone at seed 0 on every attack and benign situation: block and p-value per case."""
    from benchmarks import shifts
    from benchmarks.attacks import ATTACKS, build
    from benchmarks.attacks.heldout import HELDOUT_ATTACKS, build_heldout

    cases = [("attack", name, lambda n=name: build(n, 0)) for name in ATTACKS]
    cases += [("heldout attack", name, lambda n=name: build_heldout(n, 0)) for name in HELDOUT_ATTACKS]
    cases += [("benign", name, lambda n=name: shifts.build(n, 0, "full")) for name in [*shifts.TUNING, *shifts.HELDOUT]]
    out: dict[str, Any] = {}
    for group, name, make in cases:
        case = make()
        report = scan(
            case.baseline, case.contribution, case.schema, case.validation, {"seed": 0, "detectors": ["backdoor"]}
        )
        result = report.results["backdoor"]
        out[name] = {"group": group, "block": result.block, "p_value": result.p_value}
        print(name, out[name], flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("first-import", "suites"))
    parser.add_argument("--validation", type=int, default=250, help="validation lines (halved at each seed)")
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    result = first_import(args.validation, args.seeds) if args.what == "first-import" else suites()
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
