"""The language-model fine-tuning benchmark: ``python -m benchmarks.llm [--sizes 2000,20000] [--out FILE]``.

Every case runs the *default* gate (``--gate default``): every detector the default policy runs on the
dataset's kind, ``llm_outliers`` and ``llm_drift`` (MiniLM sentence embeddings) included.
``--gate lexical`` runs only the detectors that need no sentence model (``INSTRUCTION_DETECTORS``, with
``preference_flips`` on preference data); ``--quick`` is the CI run of ``make bench-quick`` (lexical, 25
poisoned records, two clean preference repeats). ``--cases`` runs some cases only and ``--append`` merges them
into ``--out``, so that a long run can be made in parts; ``--embedding-cache FILE`` keeps the MiniLM
embeddings (by text) between parts, and each case reports how many texts it embedded itself.

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
per-record score, the records flagged (poisoned / clean) with the share of the contribution's clean
records flagged (the per-record false alarms beside the detection) and which detectors flagged them,
and the gate's time. The peers are the
filters practitioners use today (``benchmarks.llm_peers``): perplexity filtering with a word trigram
model fitted on the baseline's responses (no small causal language model is available offline), and a
URL and keyword blocklist, with the same recall figures and the records each flags.

Swapped preferences: the preference model is fitted and calibrated on the whole trusted baseline (20,000
pairs at 20,000), not on the policy's ``reference_size`` sample (``fits_whole_baseline``). The false-alarm
rate of the contribution-level verdict on clean preference data is measured on ``CLEAN_REPEATS``
contributions drawn from the baseline's own pool (exchangeable with it) at each size.

The detectors were built against these attacks and shifts, so these are figures on tuning data. The
held-out cases, never tuned on, are in ``benchmarks.llm_heldout`` (``--heldout``): other triggers,
payloads, positions and data kinds, and other benign changes.
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
from dataward.domain.conversation import split_conversation
from dataward.domain.schema import Schema
from dataward.gates.detectors import _llm_clusters as _clusters
from dataward.gates.policy import GatePolicy
from dataward.gates.scanning import scan, stratified_sample

INSTRUCTION_DETECTORS = ["llm_triggers", "llm_payloads", "llm_behaviour_shift", "llm_floods"]
"""The detectors that need no sentence model (``--gate lexical``)."""
PREFERENCE_DETECTORS = ["preference_flips", *INSTRUCTION_DETECTORS]
GATES = ("default", "lexical")
BENIGN = ("clean", "clean preference", "new topic", "new answer style", "one-kind source")
REPEATS_CASE = "clean preference repeats"
BASELINE_SIZE = 2000
COUNTS = (25, 50, 100)
ATTACKS = ("negative", "refusal", "link", "code", "steer", "swapped")
CLEAN_REPEATS = {2000: 20, 20000: 4}
"""Clean preference contributions per size for the verdict's false-alarm rate (default: 4)."""


def _policy(kind: str, gate: str) -> dict[str, Any] | None:
    """The default policy (None), or the lexical detectors only."""
    if gate == "default":
        return None
    return {"detectors": PREFERENCE_DETECTORS if kind == "preference" else INSTRUCTION_DETECTORS}


def _run(
    kind: str, baseline: pd.DataFrame, contribution: pd.DataFrame, poison: np.ndarray, gate: str = "default"
) -> dict[str, Any]:
    schema = Schema.for_kind(kind)
    cols = [c.name for c in schema.inputs if c.name in contribution.columns]
    cached = len(_clusters._cache)
    started, cpu = time.perf_counter(), time.process_time()
    report = scan(
        baseline[cols],
        contribution[cols],
        schema,
        policy=_policy(kind, gate),
        groups={"source": contribution["source"].to_numpy()},
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    embedded = max(len(_clusters._cache) - cached, 0)
    scores = report.records.score
    flagged = report.records.flagged
    mask = np.zeros(len(contribution), dtype=bool)
    mask[poison] = True
    clean_records = int((~mask).sum())
    response_column = "chosen" if kind == "preference" else "response"
    peer = blocklist_scores(list(contribution[response_column]))
    started = time.perf_counter()
    lm_scores, lm_flags = perplexity_filter(list(baseline[response_column]), list(contribution[response_column]))
    lm_seconds = time.perf_counter() - started
    triggers = report.results.get("llm_triggers")
    named = triggers.summary.get("triggers", []) if triggers is not None else []
    out: dict[str, Any] = {
        "verdict": report.verdict,
        "reasons": [r[:300] for r in report.reasons[:6]],
        "detectors": sorted(report.results),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "embedded_texts": embedded,
        "detector_seconds": report.extras.get("timings", {}),
        "trigger": named[0]["trigger"] if named else None,
        "behaviour": named[0]["behaviour"] if named else None,
        "flagged_poisoned": int(flagged[mask].sum()),
        "flagged_clean": int(flagged[~mask].sum()),
        "clean_flag_share": round(float(flagged[~mask].sum()) / max(clean_records, 1), 5),
        "clean_flagged_by": {
            name: int(r.flagged[~mask].sum()) for name, r in report.results.items() if r.flagged[~mask].any()
        },
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
    gate: str = "default",
    cases: set[str] | None = None,
    repeats: int | None = None,
    runner: Callable[..., dict[str, Any]] | None = None,
    done: set[tuple[str, int, int]] | None = None,
) -> dict[str, Any]:
    """Every case (or those named in ``cases``) at every size with ``gate``; returns the JSON-ready
    figures (``on_result`` sees each as it is done). ``runner`` replaces the scan of one case (``_run``);
    ``done`` holds (case, size, count) keys not to run again (``--resume``)."""
    runner = runner or _run
    done = done or set()
    if gate not in GATES:
        raise ValueError(f"gate must be one of {', '.join(GATES)}")
    base_pool, new_pool = d.split_pools(seed)
    results: list[dict[str, Any]] = []

    def add(entry: dict[str, Any]) -> None:
        entry["gate"] = gate
        results.append(entry)
        if on_result is not None:
            on_result(entry)

    def wanted(name: str) -> bool:
        return cases is None or name in cases

    for size in sizes:
        # The trusted baseline is at least as large as the contribution: a phrase absent from 2,000
        # trusted records is no surprise in 25 of 20,000 new ones (Fisher's test has no power there).
        base_size = max(BASELINE_SIZE, size)
        baseline = d.instruction_frame(base_size, seed + 1, pool=base_pool)
        preference_baseline = d.preference_frame(base_size, seed + 1, pool=base_pool)
        clean = d.instruction_frame(size, seed + 2, pool=new_pool)
        clean_pairs = d.preference_frame(size, seed + 2, pool=new_pool)
        for attack in ATTACKS:
            if not wanted(attack):
                continue
            for count in counts:
                if (attack, size, count) in done:
                    continue
                if attack == "swapped":
                    frame, rows = d.swap_preferences(clean_pairs, count, seed + count)
                    figures = runner("preference", preference_baseline, frame, rows, gate)
                else:
                    frame, rows = d.poison_instructions(clean, count, attack, seed + count)
                    figures = runner("instruction", baseline, frame, rows, gate)
                add({"case": attack, "kind": "attack", "size": size, "baseline": base_size, "count": count, **figures})
        none = np.zeros(0, dtype=np.int64)
        sides = {"instruction": (baseline, clean), "preference": (preference_baseline, clean_pairs)}
        for name in BENIGN:
            if not wanted(name) or (name, size, 0) in done:
                continue
            kind, base, frame = _benign(name, size, seed, (base_pool, new_pool), sides)
            figures = runner(kind, base, frame, none, gate)
            add({"case": name, "kind": "benign", "size": size, "baseline": base_size, "count": 0, **figures})
        if wanted(REPEATS_CASE) and (REPEATS_CASE, size, 0) not in done:
            count = repeats if repeats is not None else CLEAN_REPEATS.get(size, 4)
            add(_clean_preference_repeats(size, base_size, preference_baseline, base_pool, seed, gate, count, runner))
    return {"seed": seed, "results": results}


def _benign(
    name: str,
    size: int,
    seed: int,
    pools: tuple[list[d.Entry], list[d.Entry]],
    sides: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The kind, baseline and contribution of a benign case; ``sides``: kind -> (baseline, clean frame)."""
    base_pool, new_pool = pools
    baseline = sides["instruction"][0]
    match name:
        case "clean":
            return "instruction", *sides["instruction"]
        case "clean preference":
            return "preference", *sides["preference"]
        case "new topic":
            commands = [e for e in base_pool if e.section != "library"]
            library = [e for e in new_pool if e.section == "library"]
            return (
                "instruction",
                d.instruction_frame(len(baseline), seed + 7, pool=commands),
                d.instruction_frame(size, seed + 8, pool=library),
            )
        case "new answer style":
            return "instruction", baseline, d.instruction_frame(size, seed + 4, pool=new_pool, style="bulleted")
        case "one-kind source":
            syscalls = [e for e in new_pool if e.section == "syscalls"]
            one_kind = pd.concat(
                [
                    d.instruction_frame(size - size // 5, seed + 5, pool=new_pool),
                    d.instruction_frame(size // 5, seed + 6, pool=syscalls, source="syscalls-only"),
                ],
                ignore_index=True,
            )
            return "instruction", baseline, one_kind
    raise ValueError(f"unknown benign case {name!r}")


def _clean_preference_repeats(
    size: int,
    base_size: int,
    baseline: pd.DataFrame,
    pool: list[d.Entry],
    seed: int,
    gate: str,
    repeats: int,
    runner: Callable[..., dict[str, Any]] = _run,
) -> dict[str, Any]:
    """Verdicts on ``repeats`` clean preference contributions drawn like the baseline: the false-alarm rate."""
    verdicts: list[str] = []
    flagged: list[int] = []
    started = time.perf_counter()
    for r in range(repeats):
        frame = d.preference_frame(size, seed + 100 + r, pool=pool)
        figures = runner("preference", baseline, frame, np.zeros(0, dtype=np.int64), gate)
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
        "clean_flag_share": round(float(np.mean(flagged)) / size, 5),
        "peer_flagged_clean": "-",
        "lm_flagged_clean": "-",
        "seconds": round((time.perf_counter() - started) / repeats, 2),
    }


def false_alarms(figures: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Per size: clean and benign contributions blocked and reviewed (out of how many), and the share of
    clean records flagged in them and in the attacked contributions."""
    out: dict[int, dict[str, Any]] = {}
    for r in figures["results"]:
        s = out.setdefault(
            r["size"], {"contributions": 0, "blocked": 0, "reviewed": 0, "benign_share": [], "attack_share": []}
        )
        if r["kind"] == "benign":
            verdicts = r.get("verdicts", [r["verdict"]])
            s["contributions"] += len(verdicts)
            s["blocked"] += verdicts.count("block")
            s["reviewed"] += verdicts.count("review")
            s["benign_share"].append(r["clean_flag_share"])
        else:
            s["attack_share"].append(r["clean_flag_share"])
    for s in out.values():
        for key in ("benign_share", "attack_share"):
            shares = s.pop(key)
            s[f"{key}_max"] = max(shares) if shares else None
    return out


def table(figures: dict[str, Any]) -> str:
    """The figures as a markdown table: dataward with its false alarms, then the perplexity filter,
    then the blocklist."""
    lines = [
        "| case | size | poisoned | verdict | recall@1% | recall@5% | flagged (poisoned / clean) | "
        "clean records flagged | perplexity recall@1% / @5% | perplexity flags (poisoned / clean) | "
        "blocklist recall@1% / @5% | blocklist flags (poisoned / clean) | time (s) |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in figures["results"]:
        lm = f"{r['lm_recall@0.01']} / {r['lm_recall@0.05']}" if "lm_recall@0.01" in r else "-"
        peer = f"{r['peer_recall@0.01']} / {r['peer_recall@0.05']}" if "peer_recall@0.01" in r else "-"
        share = r.get("clean_flag_share")
        lines.append(
            f"| {r['case']} | {r['size']:,} | {r['count']} | {r['verdict']} | "
            f"{r.get('recall@0.01', '-')} | {r.get('recall@0.05', '-')} | "
            f"{r['flagged_poisoned']} / {r['flagged_clean']} | "
            f"{'-' if share is None else f'{100 * share:.2f}%'} | {lm} | "
            f"{r.get('lm_flagged_poisoned', '-')} / {r['lm_flagged_clean']} | {peer} | "
            f"{r.get('peer_flagged_poisoned', '-')} / {r['peer_flagged_clean']} | {r['seconds']} |"
        )
    return "\n".join(lines)


def load_embeddings(path: Path) -> int:
    """Preload MiniLM embeddings saved by ``save_embeddings`` into the detectors' per-text cache."""
    if not path.exists():
        return 0
    with np.load(path, allow_pickle=False) as saved:
        for text, vector in zip(saved["texts"].tolist(), saved["vectors"], strict=True):
            _clusters._cache[text] = vector
    return len(_clusters._cache)


def _npz(path: Path) -> Path:
    """``path`` as ``numpy.savez`` writes it: with ``.npz`` added when it lacks the suffix."""
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def save_embeddings(path: Path) -> None:
    """Save the detectors' per-text embedding cache (texts and unit vectors) for the next part of a run."""
    if not _clusters._cache:
        return
    texts = np.array(list(_clusters._cache), dtype=str)
    np.savez(path, texts=texts, vectors=np.stack(list(_clusters._cache.values())))


def trusted_sample(baseline: pd.DataFrame, max_reference: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The trusted records ``llm_outliers`` and ``llm_drift`` embed under the default policy: the gate's
    reference sample (``reference_size``) and, within it, the detectors' ``max_reference`` sample."""
    rng = np.random.default_rng(seed)
    reference = stratified_sample(np.zeros(len(baseline), dtype=np.int64), GatePolicy().reference_size, rng)
    n = reference.shape[0]
    inner = (
        np.arange(n)
        if n <= max_reference
        else np.sort(np.random.default_rng(seed).choice(n, max_reference, replace=False))
    )
    return baseline.iloc[reference[inner]]


def _prompts_and_answers(kind: str, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The prompts and answers the detectors embed (a chat's: its turns before the last answer, and it)."""
    if kind == "chat":
        pairs = [split_conversation(json.dumps(m)) for m in frame["messages"]]
        return [p for p, _ in pairs], [a for _, a in pairs]
    return list(frame["prompt"]), list(frame["chosen" if kind == "preference" else "response"])


def prefetch(
    sizes: list[int],
    counts: tuple[int, ...],
    cases: set[str] | None,
    repeats: int | None,
    cache: Path,
    budget: float,
    part: tuple[int, int] = (0, 1),
    run_cases: Callable[..., dict[str, Any]] | None = None,
) -> tuple[int, int]:
    """Embed the contributions' prompts and answers of the cases (500 texts at a time, saving ``cache``
    after each) until done or ``budget`` seconds have passed; returns (texts embedded, texts left).
    ``part`` ``(i, n)``: only every ``n``-th text from the ``i``-th, for parts run side by side.
    A long run's cold embedding can so be paid in parts of a bounded length."""
    wanted: dict[str, None] = {}

    def collect(kind: str, baseline: pd.DataFrame, frame: pd.DataFrame, poison: np.ndarray, gate: str) -> dict:
        for side in (trusted_sample(baseline), frame):
            prompts, answers = _prompts_and_answers(kind, side)
            wanted.update(dict.fromkeys([*prompts, *answers]))
        return {"verdict": "-", "flagged_clean": 0, "seconds": 0.0}

    (run_cases or run)(sizes, counts, cases=cases, repeats=repeats, runner=collect)
    texts = [t for t in wanted if t not in _clusters._cache][part[0] :: part[1]]
    started, done = time.perf_counter(), 0
    for start in range(0, len(texts), 500):
        if time.perf_counter() - started > budget:
            break
        _clusters.embed(texts[start : start + 500])
        done += len(texts[start : start + 500])
        save_embeddings(cache)
    return done, len(texts) - done


def _key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry["case"], entry["size"], entry["count"], entry.get("gate", "default"))


def _resume_key(entry: dict[str, Any]) -> tuple[str, int, int]:
    """The (case, size, count) ``run`` skips for a result already held; repeats are one case."""
    case = REPEATS_CASE if entry["case"].startswith("clean preference x") else entry["case"]
    return (case, entry["size"], entry["count"])


class OutOfBudget(Exception):
    """The next case would run past the part's wall-time budget."""


def _budgeted(runner: Callable[..., dict[str, Any]], budget: float, started: float) -> Callable[..., dict[str, Any]]:
    """``runner`` that refuses to start a scan, after the first, when the process's wall time plus the
    longest scan so far (at least a minute) would pass ``budget`` s."""
    longest = [60.0]
    calls = [0]

    def call(*args: Any) -> dict[str, Any]:
        elapsed = time.perf_counter() - started
        if calls[0] and elapsed + longest[0] > budget:
            raise OutOfBudget(f"{elapsed:.0f} s spent, the longest scan took {longest[0]:.0f} s")
        begun = time.perf_counter()
        figures = runner(*args)
        if calls[0]:
            longest[0] = max(longest[0], time.perf_counter() - begun)
        calls[0] += 1
        return figures

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="contribution sizes, comma-separated")
    parser.add_argument("--out", default=None, help="where to write the JSON figures (default: results/llm.json)")
    parser.add_argument("--gate", choices=GATES, default=None, help="default policy (default), or lexical detectors")
    parser.add_argument("--counts", default=None, help="poisoned records per attack (default: 25,50,100)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the CI run: lexical detectors, 25 poisoned records, 2 clean preference repeats (unless given)",
    )
    parser.add_argument(
        "--cases",
        default=None,
        help=f"run only these cases (comma-separated: {', '.join((*ATTACKS, *BENIGN))}, '{REPEATS_CASE}')",
    )
    parser.add_argument("--repeats", type=int, default=None, help="clean preference contributions per size")
    parser.add_argument("--append", action="store_true", help="merge into --out instead of replacing it")
    parser.add_argument(
        "--embedding-cache",
        default=None,
        help="an .npz of MiniLM embeddings kept between runs (saved to the first of a comma-separated list)",
    )
    parser.add_argument(
        "--prefetch",
        type=float,
        default=None,
        help="only embed the cases' texts into --embedding-cache for this many s",
    )
    parser.add_argument("--part", default="0/1", help="with --prefetch: i/n, embed every n-th text from the i-th")
    parser.add_argument(
        "--heldout",
        action="store_true",
        help="run the held-out cases of benchmarks.llm_heldout instead (never tuned on; "
        "default --out benchmarks/results/llm-heldout.json)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --append: skip the cases --out already holds (a run made in parts)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="start no case, after the first, that the longest case so far would take past this many s of "
        "the process's wall time; the cases left are run by the next part (--append --resume)",
    )
    args = parser.parse_args()
    process_started, process_cpu = time.perf_counter(), time.process_time()
    if args.out is None:
        args.out = "benchmarks/results/llm-heldout.json" if args.heldout else "benchmarks/results/llm.json"
    out = Path(args.out)
    # The first file is where this run saves; the others are only read (parts run side by side).
    # numpy's savez adds ".npz" to a name without it: read where it writes.
    caches = [_npz(Path(c)) for c in args.embedding_cache.split(",")] if args.embedding_cache else []
    cache = caches[0] if caches else None
    for path in caches:
        print(f"{load_embeddings(path)} embeddings held after reading {path}", flush=True)
    cases = {c.strip() for c in args.cases.split(",")} if args.cases else None
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = tuple(int(c) for c in args.counts.split(",")) if args.counts else (25,) if args.quick else COUNTS
    gate = args.gate or ("lexical" if args.quick else "default")
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else None)
    if args.heldout:
        from benchmarks import llm_heldout

        run_cases: Callable[..., dict[str, Any]] = llm_heldout.run
    else:
        run_cases = run
    if args.prefetch is not None:
        if cache is None:
            parser.error("--prefetch needs --embedding-cache")
        started = time.perf_counter()
        cpu = time.process_time()
        part = tuple(int(x) for x in args.part.split("/"))
        done, left = prefetch(sizes, counts, cases, repeats, cache, args.prefetch, (part[0], part[1]), run_cases)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"{done} texts embedded in {wall:.0f} s ({cpu:.0f} s of CPU), {left} left", flush=True)
        return
    kept: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    if args.append and out.exists():
        previous = json.loads(out.read_text(encoding="utf-8"))
        kept, parts = previous["results"], previous.get("parts", [])
    skip = {_resume_key(e) for e in kept} if args.resume else set()
    done: list[dict[str, Any]] = []

    def part_record() -> dict[str, Any]:
        # What this process ran and what it cost, whole (MiniLM's load and every cold embedding included).
        return {
            "cases": [list(_key(e)[:3]) for e in done],
            "wall_seconds": round(time.perf_counter() - process_started, 1),
            "cpu_seconds": round(time.process_time() - process_cpu, 1),
            "embedding_cache": bool(caches),
        }

    def merged() -> list[dict[str, Any]]:
        new = {_key(e) for e in done}
        return [e for e in kept if _key(e) not in new] + done

    def save(entry: dict[str, Any]) -> None:
        # Each case is written as it finishes: a long run interrupted keeps what it measured.
        done.append(entry)
        partial = {"seed": 0, "results": merged(), "parts": [*parts, part_record()], "partial": True}
        out.write_text(json.dumps(partial, indent=1), encoding="utf-8")
        if cache is not None:
            save_embeddings(cache)
        line = (
            f"{entry['case']} {entry['size']} {entry['count']}: {entry['verdict']} ({entry['seconds']} s, "
            f"clean flagged {entry['flagged_clean']}, poisoned flagged {entry['flagged_poisoned']})"
        )
        print(line, flush=True)

    runner = _budgeted(_run, args.budget, process_started) if args.budget else None
    try:
        figures = run_cases(
            sizes, counts=counts, on_result=save, gate=gate, cases=cases, repeats=repeats, runner=runner, done=skip
        )
    except OutOfBudget as exc:
        print(f"stopped before the budget ran out: {exc}; run again with --append --resume", flush=True)
        figures = {"seed": 0, "partial": True}
    figures["results"] = merged()
    figures["parts"] = [*parts, part_record()]
    figures["false_alarms"] = false_alarms(figures)
    out.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    print(table(figures))
    print(json.dumps(figures["false_alarms"], indent=1))


if __name__ == "__main__":
    main()
