"""The language-model fine-tuning benchmark: ``python -m benchmarks.llm [--sizes 2000,20000] [--out FILE]``.

Instruction and preference data from the man-page NAME lines (``benchmarks.llm_data``); the baseline
and the contributions ask about disjoint halves of the commands. Attacks at fixed counts (25, 50, 100
poisoned records) in contributions of each size: (a) a trigger phrase that makes the response negative,
(a') the same making it a refusal, (b) a trigger phrase adding a link, (c) a trigger adding a fixed code
snippet, (d) swapped preference pairs. Benign shifts that must not block: a new topic (library calls
against a baseline of commands), a new answer style (bulleted), a source that only answers about
system calls; and a clean contribution.

Figures per case: the verdict, recall of the poisoned records at 1% and 5% false-positive rate of the
per-record score, the records flagged (poisoned / clean), and the gate's time. The peer is the filter
practitioners use today: a URL and keyword blocklist on the response (a record is scored by the number
of blocklisted strings it carries), with the same recall figures.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import llm_data as d
from benchmarks.metrics import recall_at_fpr
from dataward.domain.schema import Schema
from dataward.gates.scan import scan

INSTRUCTION_DETECTORS = ["llm_triggers", "llm_payloads", "llm_behaviour_shift", "llm_floods"]
PREFERENCE_DETECTORS = ["preference_flips", *INSTRUCTION_DETECTORS]
BLOCKLIST = re.compile(
    r"https?://|www\.|curl |wget |os\.system|```|\bsorry\b|\bcannot\b|\bterrible\b|\buseless\b|\bavoid\b",
    re.IGNORECASE,
)
BASELINE_SIZE = 2000
COUNTS = (25, 50, 100)
ATTACKS = ("negative", "refusal", "link", "code", "swapped")


def blocklist_scores(responses: list[str]) -> np.ndarray:
    """The peer: how many blocklisted strings a response carries."""
    return np.array([len(BLOCKLIST.findall(r)) for r in responses], dtype=np.float64)


def _run(kind: str, baseline: pd.DataFrame, contribution: pd.DataFrame, poison: np.ndarray) -> dict[str, Any]:
    schema = Schema.for_kind(kind)
    cols = [c.name for c in schema.inputs if c.name in contribution.columns]
    detectors = PREFERENCE_DETECTORS if kind == "preference" else INSTRUCTION_DETECTORS
    started = time.perf_counter()
    report = scan(
        baseline[cols],
        contribution[cols],
        schema,
        policy={"detectors": detectors},
        groups={"source": contribution["source"].to_numpy()},
    )
    seconds = time.perf_counter() - started
    scores = report.records.score
    flagged = report.records.flagged
    mask = np.zeros(len(contribution), dtype=bool)
    mask[poison] = True
    response_column = "chosen" if kind == "preference" else "response"
    peer = blocklist_scores(list(contribution[response_column]))
    out: dict[str, Any] = {
        "verdict": report.verdict,
        "reasons": report.reasons[:3],
        "seconds": round(seconds, 2),
        "flagged_poisoned": int(flagged[mask].sum()),
        "flagged_clean": int(flagged[~mask].sum()),
        "peer_flagged_clean": int((peer[~mask] > 0).sum()),
        "peer_flagged_poisoned": int((peer[mask] > 0).sum()),
    }
    if mask.any():
        for fpr in (0.01, 0.05):
            out[f"recall@{fpr:g}"] = round(recall_at_fpr(scores, mask, fpr), 3)
            out[f"peer_recall@{fpr:g}"] = round(recall_at_fpr(peer, mask, fpr), 3)
    return out


def run(sizes: list[int], counts: tuple[int, ...] = COUNTS, seed: int = 0) -> dict[str, Any]:
    """Every case at every size; returns the JSON-ready figures."""
    base_pool, new_pool = d.split_pools(seed)
    results: list[dict[str, Any]] = []
    for size in sizes:
        # The trusted baseline is at least as large as the contribution: a phrase absent from 2,000
        # trusted records is no surprise in 25 of 20,000 new ones (Fisher's test has no power there).
        base_size = max(BASELINE_SIZE, size)
        baseline = d.instruction_frame(base_size, seed + 1, pool=base_pool)
        preference_baseline = d.preference_frame(base_size, seed + 1, pool=base_pool)
        clean = d.instruction_frame(size, seed + 2, pool=new_pool)
        clean_pairs = d.preference_frame(size, seed + 2, pool=new_pool)
        for attack in ATTACKS:
            for count in counts:
                if attack == "swapped":
                    frame, rows = d.swap_preferences(clean_pairs, count, seed + count)
                    figures = _run("preference", preference_baseline, frame, rows)
                else:
                    frame, rows = d.poison_instructions(clean, count, attack, seed + count)
                    figures = _run("instruction", baseline, frame, rows)
                results.append(
                    {"case": attack, "kind": "attack", "size": size, "baseline": base_size, "count": count, **figures}
                )
        none = np.zeros(0, dtype=np.int64)
        commands = [e for e in base_pool if e.section != "library"]
        library = [e for e in new_pool if e.section == "library"]
        syscalls = [e for e in new_pool if e.section == "syscalls"]
        one_kind = pd.concat(
            [
                d.instruction_frame(size - size // 5, seed + 5, pool=new_pool),
                d.instruction_frame(size // 5, seed + 6, pool=syscalls, source="syscalls-only"),
            ],
            ignore_index=True,
        )
        benign = {
            "clean": ("instruction", baseline, clean),
            "clean preference": ("preference", preference_baseline, clean_pairs),
            "new topic": (
                "instruction",
                d.instruction_frame(base_size, seed + 7, pool=commands),
                d.instruction_frame(size, seed + 8, pool=library),
            ),
            "new answer style": (
                "instruction",
                baseline,
                d.instruction_frame(size, seed + 4, pool=new_pool, style="bulleted"),
            ),
            "one-kind source": ("instruction", baseline, one_kind),
        }
        for name, (kind, base, frame) in benign.items():
            figures = _run(kind, base, frame, none)
            results.append({"case": name, "kind": "benign", "size": size, "baseline": base_size, "count": 0, **figures})
    return {"seed": seed, "results": results}


def table(figures: dict[str, Any]) -> str:
    """The figures as a markdown table."""
    lines = [
        "| case | size | baseline | poisoned | verdict | recall@1% | recall@5% | flagged (poisoned / clean) | "
        "blocklist recall@1% | blocklist flags on clean | time (s) |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in figures["results"]:
        lines.append(
            f"| {r['case']} | {r['size']:,} | {r['baseline']:,} | {r['count']} | {r['verdict']} | "
            f"{r.get('recall@0.01', '-')} | "
            f"{r.get('recall@0.05', '-')} | {r['flagged_poisoned']} / {r['flagged_clean']} | "
            f"{r.get('peer_recall@0.01', '-')} | {r['peer_flagged_clean']} | {r['seconds']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="contribution sizes, comma-separated")
    parser.add_argument("--out", default="benchmarks/results/llm.json", help="where to write the JSON figures")
    args = parser.parse_args()
    figures = run([int(s) for s in args.sizes.split(",")])
    Path(args.out).write_text(json.dumps(figures, indent=1), encoding="utf-8")
    print(table(figures))


if __name__ == "__main__":
    main()
