"""`llm_payloads` names tied payloads in one order whatever the process's string hashing (it followed the
iteration order of sets of strings, which ``PYTHONHASHSEED`` decides)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json
import numpy as np
from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan

base_pool, new_pool = d.split_pools()
baseline = d.instruction_frame(300, 1, pool=base_pool)
batch = d.instruction_frame(300, 2, pool=new_pool)
links = ["https://zeta.example.net/get", "https://alpha.example.net/get", "https://mu.example.net/get"]
rows = np.arange(0, 300, 25)[:12]  # the three links together in the same 12 answers: a three-way tie
batch.loc[rows, "response"] = batch.loc[rows, "response"] + " see " + " or ".join(links)
schema = Schema.for_kind("instruction")
cols = [c.name for c in schema.inputs if c.name in batch.columns]
report = scan(baseline[cols], batch[cols], schema, policy={"detectors": ["llm_payloads"]})
print(json.dumps([p["payload"] for p in report.results["llm_payloads"].summary["payloads"]]))
"""


def _payloads(hash_seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tied_payloads_are_named_in_the_same_order_under_any_string_hashing() -> None:
    first = _payloads("1")
    assert len(first) == 3 and first == sorted(first)
    assert all(_payloads(seed) == first for seed in ("2", "3"))
