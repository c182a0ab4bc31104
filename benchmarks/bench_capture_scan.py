"""CPU of whole scans in which ``backdoor`` and ``label_consistency`` estimate a lower-resolution capture.

The outside trial's digits captured at 4x4 and stored at 8x8 (``outside_trial.digits_low_res``), one scan
per seed; the figure is the CPU time of ``scan`` alone (``time.process_time`` around each call), summed,
and a digest of the reports (``GateReport.to_dict`` as JSON) so that two trees' runs can be compared for
identical results as well as for cost. Run old and new code in turn (``PYTHONPATH`` pointing at each)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=src nice -n 5 python -m benchmarks.bench_capture_scan
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

from benchmarks import outside_trial
from dataward.gates import scan
from dataward.gates.fit_memo import MEMO


def run(seeds: list[int]) -> tuple[float, str]:
    """Summed scan CPU seconds over ``seeds`` and a SHA-256 of the reports (timings left out)."""
    cpu = 0.0
    digest = hashlib.sha256()
    for seed in seeds:
        base, validation, batch, schema = outside_trial.digits_low_res(seed)
        MEMO.clear()  # timed as a first scan: no fit of an earlier scan in this process reused
        started = time.process_time()
        report = scan(base, batch, schema, validation, {"seed": seed})
        cpu += time.process_time() - started
        data = report.to_dict()
        data.get("extras", {}).pop("timings", None)
        digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    return cpu, digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,3,5,7,9", help="comma-separated seeds (default 0,3,5,7,9)")
    args = parser.parse_args()
    cpu, digest = run([int(s) for s in args.seeds.split(",")])
    print(json.dumps({"scan_cpu_s": round(cpu, 2), "reports_sha256": digest}))


if __name__ == "__main__":
    main()
