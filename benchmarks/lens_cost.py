"""What undoing changes of the raw images costs `backdoor`, and what it changes: the same scan with a
lens's gain field and the frame's move (``BackdoorDetector._undo_on_pixels``) disabled and enabled,
side by side in one process, on the benign photo situations where they run.

    python -m benchmarks.lens_cost [--cases vignetting_photos@2,new_camera_photos@0] [--repeat 2] [--out F.json]

Per scan: the verdict, CPU seconds of the whole scan (``time.process_time``, every thread) on one worker,
and the records the field and the move excused (``summary["lens"]``, ``summary["frame_shift"]``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.shifts import build
from dataward.gates import scan
from dataward.gates.detectors import backdoor
from dataward.gates.fit_memo import MEMO

CASES = "vignetting_photos@2,new_camera_photos@0,white_balance_photos@0"


def measure(name: str, seed: int, lens: bool) -> dict[str, Any]:
    """One scan of the benign situation ``name`` at ``seed``, the changes of the raw images undone or not."""
    situation = build(name, seed, "full")
    original = backdoor.BackdoorDetector._undo_on_pixels
    if not lens:
        backdoor.BackdoorDetector._undo_on_pixels = lambda self, *args, **kwargs: (None, None)  # type: ignore[method-assign]
    try:
        MEMO.clear()  # timed as a first scan: no fit of an earlier scan in this process reused
        start = time.process_time()
        report = scan(
            situation.baseline,
            situation.contribution,
            situation.schema,
            situation.validation,
            {"seed": seed},
            workers=1,
        )
        cpu = time.process_time() - start
    finally:
        backdoor.BackdoorDetector._undo_on_pixels = original  # type: ignore[method-assign]
    field = report.results["backdoor"].summary.get("lens")
    move = report.results["backdoor"].summary.get("frame_shift")
    return {
        "case": f"{name}@{seed}",
        "lens": lens,
        "verdict": report.verdict,
        "cpu_seconds": round(cpu, 3),
        "excused": None if field is None else field["excused"],
        "excused_by_move": None if move is None else move["excused"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lens_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=CASES, help="comma-separated situation@seed")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for case in args.cases.split(","):
        name, seed = case.split("@")
        for _ in range(args.repeat):
            for lens in (False, True):
                row = measure(name, int(seed), lens)
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
