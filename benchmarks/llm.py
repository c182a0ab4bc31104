"""The language-model fine-tuning benchmark: ``python -m benchmarks.llm [--sizes 2000,20000] [--out FILE]``.

Instruction and preference data from the man-page NAME lines (``benchmarks.llm_data``); the baseline
and the contributions ask about disjoint halves of the commands. Attacks at fixed counts (25, 50, 100
poisoned records) in contributions of each size: (a) a trigger phrase that makes the response negative,
(a') the same making it a refusal, (b) a trigger phrase adding a link, (c) a trigger adding a fixed code
snippet, (d) swapped preference pairs. Benign shifts that must not block: a new topic (library calls
against a baseline of commands), a new answer style (bulleted), a source that only answers about
system calls; and a clean contribution.

(e) a trigger making the answer a product recommendation in its own words (caught as a cluster of
responses in MiniLM space).

Figures per case: the verdict, recall of the poisoned records at 1% and 5% false-positive rate of the
per-record score, the records flagged (poisoned / clean), and the gate's time. The peers are the
filters practitioners use today (``benchmarks.llm_peers``): perplexity filtering with a word trigram
model fitted on the baseline's responses (no small causal language model is available offline), and a
URL and keyword blocklist, with the same recall figures and the records each flags.

Swapped preferences: the preference model is fitted and calibrated on the whole trusted baseline (20,000
pairs at 20,000), not on the policy's ``reference_size`` sample (``fits_whole_baseline``). The false-alarm
rate of the contribution-level verdict on clean preference data is measured on ``CLEAN_REPEATS``
contributions drawn from the baseline's own pool (exchangeable with it) at each size.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import llm_data as d
from benchmarks.llm_peers import blocklist_scores, perplexity_filter
from benchmarks.metrics import recall_at_fpr
from dataward.domain.schema import Schema
from dataward.gates.scan import scan

INSTRUCTION_DETECTORS = ["llm_triggers", "llm_payloads", "llm_behaviour_shift", "llm_floods"]
PREFERENCE_DETECTORS = ["preference_flips", *INSTRUCTION_DETECTORS]
BASELINE_SIZE = 2000
COUNTS = (25, 50, 100)
ATTACKS = ("negative", "refusal", "link", "code", "steer", "swapped")
CLEAN_REPEATS = {2000: 20, 20000: 4}
"""Clean preference contributions per size for the verdict's false-alarm rate (default: 4)."""


def _run(
    kind: str, baseline: pd.DataFrame, contribution: pd.DataFrame, poison: np.ndarray, **policy: Any
) -> dict[str, Any]:
    schema = Schema.for_kind(kind)
    cols = [c.name for c in schema.inputs if c.name in contribution.columns]
    detectors = PREFERENCE_DETECTORS if kind == "preference" else INSTRUCTION_DETECTORS
    started = time.perf_counter()
    report = scan(
        baseline[cols],
        contribution[cols],
        schema,
        policy={"detectors": detectors, **policy},
        groups={"source": contribution["source"].to_numpy()},
    )
    seconds = time.perf_counter() - started
    scores = report.records.score
    flagged = report.records.flagged
    mask = np.zeros(len(contribution), dtype=bool)
    mask[poison] = True
    response_column = "chosen" if kind == "preference" else "response"
    peer = blocklist_scores(list(contribution[response_column]))
    started = time.perf_counter()
    lm_scores, lm_flags = perplexity_filter(list(baseline[response_column]), list(contribution[response_column]))
    lm_seconds = time.perf_counter() - started
    triggers = report.results.get("llm_triggers")
    named = triggers.summary.get("triggers", []) if triggers is not None else []
    out: dict[str, Any] = {
        "verdict": report.verdict,
        "reasons": report.reasons[:3],
        "seconds": round(seconds, 2),
        "detector_seconds": report.extras.get("timings", {}),
        "trigger": named[0]["trigger"] if named else None,
        "behaviour": named[0]["behaviour"] if named else None,
        "flagged_poisoned": int(flagged[mask].sum()),
        "flagged_clean": int(flagged[~mask].sum()),
        "peer_flagged_clean": int((peer[~mask] > 0).sum()),
        "peer_flagged_poisoned": int((peer[mask] > 0).sum()),
        "lm_flagged_clean": int(lm_flags[~mask].sum()),
        "lm_flagged_poisoned": int(lm_flags[mask].sum()),
        "lm_seconds": round(lm_seconds, 2),
    }
    if mask.any():
        for fpr in (0.01, 0.05):
            out[f"recall@{fpr:g}"] = round(recall_at_fpr(scores, mask, fpr), 3)
            out[f"peer_recall@{fpr:g}"] = round(recall_at_fpr(peer, mask, fpr), 3)
            out[f"lm_recall@{fpr:g}"] = round(recall_at_fpr(lm_scores, mask, fpr), 3)
    return out


def run(
    sizes: list[int],
    counts: tuple[int, ...] = COUNTS,
    seed: int = 0,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every case at every size; returns the JSON-ready figures (``on_result`` sees each as it is done)."""
    base_pool, new_pool = d.split_pools(seed)
    results: list[dict[str, Any]] = []

    def add(entry: dict[str, Any]) -> None:
        results.append(entry)
        if on_result is not None:
            on_result(entry)

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
                add({"case": attack, "kind": "attack", "size": size, "baseline": base_size, "count": count, **figures})
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
            add({"case": name, "kind": "benign", "size": size, "baseline": base_size, "count": 0, **figures})
        add(_clean_preference_repeats(size, base_size, preference_baseline, base_pool, seed))
    return {"seed": seed, "results": results}


def _clean_preference_repeats(
    size: int, base_size: int, baseline: pd.DataFrame, pool: list[d.Entry], seed: int
) -> dict[str, Any]:
    """Verdicts on clean preference contributions drawn like the baseline: the false-alarm rate."""
    repeats = CLEAN_REPEATS.get(size, 4)
    verdicts: list[str] = []
    flagged: list[int] = []
    started = time.perf_counter()
    for r in range(repeats):
        frame = d.preference_frame(size, seed + 100 + r, pool=pool)
        figures = _run("preference", baseline, frame, np.zeros(0, dtype=np.int64))
        verdicts.append(figures["verdict"])
        flagged.append(figures["flagged_clean"])
    return {
        "case": f"clean preference x{repeats} (same pool)",
        "kind": "benign",
        "size": size,
        "baseline": base_size,
        "count": 0,
        "verdict": ", ".join(f"{v} {verdicts.count(v)}" for v in ("pass", "review", "block") if v in verdicts),
        "verdicts": verdicts,
        "flagged_poisoned": 0,
        "flagged_clean": int(np.mean(flagged)),
        "peer_flagged_clean": "-",
        "lm_flagged_clean": "-",
        "seconds": round((time.perf_counter() - started) / repeats, 2),
    }


def table(figures: dict[str, Any]) -> str:
    """The figures as a markdown table: dataward, then the perplexity filter, then the blocklist."""
    lines = [
        "| case | size | poisoned | verdict | recall@1% | recall@5% | flagged (poisoned / clean) | "
        "perplexity recall@1% / @5% | perplexity flags (poisoned / clean) | "
        "blocklist recall@1% / @5% | blocklist flags (poisoned / clean) | time (s) |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in figures["results"]:
        lm = f"{r['lm_recall@0.01']} / {r['lm_recall@0.05']}" if "lm_recall@0.01" in r else "-"
        peer = f"{r['peer_recall@0.01']} / {r['peer_recall@0.05']}" if "peer_recall@0.01" in r else "-"
        lines.append(
            f"| {r['case']} | {r['size']:,} | {r['count']} | {r['verdict']} | "
            f"{r.get('recall@0.01', '-')} | {r.get('recall@0.05', '-')} | "
            f"{r['flagged_poisoned']} / {r['flagged_clean']} | {lm} | "
            f"{r.get('lm_flagged_poisoned', '-')} / {r['lm_flagged_clean']} | {peer} | "
            f"{r.get('peer_flagged_poisoned', '-')} / {r['peer_flagged_clean']} | {r['seconds']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="contribution sizes, comma-separated")
    parser.add_argument("--out", default="benchmarks/results/llm.json", help="where to write the JSON figures")
    args = parser.parse_args()
    out = Path(args.out)
    done: list[dict[str, Any]] = []

    def save(entry: dict[str, Any]) -> None:
        # Each case is written as it finishes: a long run interrupted keeps what it measured.
        done.append(entry)
        out.write_text(json.dumps({"seed": 0, "results": done, "partial": True}, indent=1), encoding="utf-8")
        line = f"{entry['case']} {entry['size']} {entry['count']}: {entry['verdict']} ({entry['seconds']} s)"
        print(line, flush=True)

    figures = run([int(s) for s in args.sizes.split(",")], on_result=save)
    out.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    print(table(figures))


if __name__ == "__main__":
    main()
