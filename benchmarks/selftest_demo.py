"""``python -m benchmarks.selftest_demo --seeds 0,1,2``: the gate self-test on the demo's own data.

The demo promotes the Debian batch and the one-section vendor's batch (894 man-page lines), then runs
``dataward gate selftest manpages``, which holds out a seeded fifth of the training version (178 lines) as
the clean copy and judges it, and copies of it with planted flips and a planted trigger, against the rest
(716). This does the same from the demo's input files (``scripts/demo_data.py``), with the same split rule
over the files' order (the ward's version orders its records otherwise: the slices are not the demo's own),
at several seeds, and prints per seed the clean copy's verdict and sources, and per canary each attempt
(planted, verdict, detected, what saw it) and the detection floor. ``--json PATH`` writes every report.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from pathlib import Path

import pandas as pd

from dataward.domain.schema import Schema
from dataward.gates.selftest import held_out_split, selftest

ROOT = Path(__file__).resolve().parent.parent


def demo_frames() -> dict[str, pd.DataFrame]:
    """The demo's input files, written by ``scripts/demo_data.py`` into a temporary folder and read back."""
    spec = importlib.util.spec_from_file_location("demo_data", ROOT / "scripts" / "demo_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with tempfile.TemporaryDirectory() as folder:
        module.main(Path(folder))
        return {path.stem: pd.read_csv(path, dtype=str) for path in Path(folder).glob("*.csv")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    frames = demo_frames()
    table = pd.concat([frames["batch-debian"], frames["batch-vendor"]], ignore_index=True)
    schema = Schema.parse("label", ["text:text"])
    out = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        held_out, rest = held_out_split(len(table), seed)  # the ward's split
        clean, trusted = table.iloc[held_out], table.iloc[rest]
        report = selftest(trusted, clean, schema, frames["validation"], seed=seed).to_dict()
        out[seed] = report
        print(f"seed {seed}: {len(clean)} held out against {len(trusted)}; clean copy {report['clean']['verdict']}"
              f" (sources {report['clean']['sources'] or '-'})")  # fmt: skip
        for canary in report["canaries"]:
            tried = "; ".join(
                f"{a['planted']} {a['verdict']}{' seen by ' + ', '.join(a['seen_by']) if a['detected'] else ''}"
                for a in canary["attempts"]
            )
            print(f"  {canary['name']}: {tried}; floor {canary['detection_floor']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
