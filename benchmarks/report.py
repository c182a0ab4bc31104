"""Turn a run's figures into a JSON file, Markdown tables in docs/benchmarks.md, plots and a console table."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.data import REPO

DOCS = REPO / "docs" / "benchmarks.md"
RESULTS = REPO / "benchmarks" / "results"
MAKE_TARGETS = {"full": " (`make bench`)", "quick": " (`make bench-quick`)", "scale": " (`make bench-scale`)"}


def markers(suite: str) -> tuple[str, str]:
    """The docs/benchmarks.md markers a suite writes between (quick never overwrites full)."""
    key = "attacks" if suite == "full" else f"attacks-{suite}"
    return f"<!-- {key}:begin -->", f"<!-- {key}:end -->"


def json_ready(value: Any) -> Any:
    """Figures with NaN as null and NumPy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    return value


def write_json(results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"attacks-{results['suite']}.json"
    path.write_text(json.dumps(json_ready(results), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _cell(m: dict[str, Any]) -> str:
    if "error" in m:
        return "error"
    det = {"block": "B", "review": "R"}.get(m["verdict"], "-")
    return f"{_f(m['recall_at_1pct_fpr'])} / {_f(m['auroc'])} / {det}"


def _flag_cell(m: dict[str, Any]) -> str:
    """Flag precision / clean-record flag rate at the method's own threshold."""
    if "error" in m:
        return "error"
    return f"{_f(m.get('precision'))} / {_f(m.get('fpr'), 3)}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _attack_label(a: dict[str, Any]) -> str:
    c = a["case"]
    return f"{c['name']} ({c['poisoned']}/{c['contribution']})"


POISONED_PARTS = (("attacks", ""), ("heldout_attacks", " (held-out)"), ("fixed_counts", " (fixed count)"))
"""The parts of a run that hold poisoned cases, with the tag their notes carry."""
PRECISION_BAR = 0.8


def _poisoned(results: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    return [(a, tag) for key, tag in POISONED_PARTS for a in results.get(key, [])]


def losses(results: dict[str, Any], method: str = "dataward") -> list[str]:
    """Attacks where a peer beats ``method`` on recall at 1% FPR or on AUROC, stated plainly."""
    notes = []
    for a, tag in _poisoned(results):
        ours = a["methods"].get(method)
        if ours is None:
            continue
        if "error" in ours:
            notes.append(f"{a['case']['name']}{tag}: {method} failed ({_short(ours['error'])})")
            continue
        for metric, label in (("recall_at_1pct_fpr", "recall at 1% FPR"), ("auroc", "AUROC")):
            best_name, best = None, ours.get(metric)
            for name, m in a["methods"].items():
                value = m.get(metric) if name != method and "error" not in m else None
                if value is None or value != value:
                    continue
                if best is None or best != best or value > best + 1e-9:
                    best_name, best = name, value
            if best_name is not None:
                ours_value = _f(ours.get(metric), 3)
                notes.append(f"{a['case']['name']}{tag}: {best_name} {label} {_f(best, 3)} vs {method} {ours_value}")
    return notes


def _detector_evidence(m: dict[str, Any]) -> str:
    detectors = m.get("extra", {}).get("detectors", {})
    ranked = sorted(
        (1.0 if d.get("p_value") is None else d["p_value"], name, d.get("flagged")) for name, d in detectors.items()
    )
    return ", ".join(f"{name} p={p:.2g} ({flagged} flagged)" for p, name, flagged in ranked[:3])


def shortfalls(results: dict[str, Any], method: str = "dataward", asr_margin: float = 0.02) -> list[str]:
    """Where ``method`` misses the bar: undetected poisoned contributions, flag precision under
    ``PRECISION_BAR``, recall at 1% FPR under 0.95 on a dirty-label backdoor, clean contributions it
    stops, blocked benign situations, and attack success after the gate more than ``asr_margin`` above
    clean-only training."""
    notes = []
    for a, tag in _poisoned(results):
        m = a["methods"].get(method, {})
        if not m or "error" in m:
            continue
        name = a["case"]["name"] + tag
        precision = m.get("precision")
        if precision is not None and precision == precision and precision < PRECISION_BAR:
            clean_flagged = m["flagged"] - round(precision * m["flagged"])
            notes.append(
                f"{name}: flag precision {_f(precision)} ({clean_flagged} clean records flagged of {m['flagged']}; "
                f"bar: {PRECISION_BAR})"
            )
        if not m["detected"]:
            notes.append(
                f"{name}: not detected ({m['flagged']} records flagged, {a['case']['poisoned']} poisoned); "
                f"strongest detectors: {_detector_evidence(m)}"
            )
        recall = m.get("recall_at_1pct_fpr")
        dirty_label = a["case"]["family"] == "backdoor" and name != "clean_label"
        if dirty_label and recall is not None and recall == recall and recall < 0.95:
            notes.append(f"{name}: recall at 1% FPR {_f(recall)} on a dirty-label backdoor (bar: 0.95)")
        asr = m.get("downstream", {}).get("attack_success")
        ref = a["references"].get("clean_only", {}).get("attack_success")
        if asr is not None and ref is not None and asr == asr and ref == ref and asr > ref + asr_margin:
            notes.append(f"{name}: attack success after the gate {_f(asr)} vs {_f(ref)} with clean-only training")
    for c in results["clean"]:
        m = c["methods"].get(method, {})
        if m and "error" not in m and m["detected"]:
            reason = m["reasons"][0] if m["reasons"] else "no reason given"
            notes.append(f"{c['case']['name']} (clean): verdict {m['verdict']}: {reason}")
    for b in results.get("benign", []):
        m = b["methods"].get(method, {})
        if m and "error" not in m and m["verdict"] == "block":
            reason = m["reasons"][0] if m["reasons"] else "no reason given"
            group = "held-out" if b["situation"]["group"] == "heldout" else "tuning"
            notes.append(f"{b['situation']['name']} (benign, {group} set): **blocked**: {_short(reason)}")
    return notes


def _short(text: str, limit: int = 220) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _attack_tables(entries: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """The per-record table (recall at 1% FPR / AUROC / verdict) and the flag table beside it."""
    rows = [[_attack_label(a)] + [_cell(a["methods"].get(n, {"error": "not run"})) for n in methods] for a in entries]
    flag_rows = [
        [_attack_label(a)] + [_flag_cell(a["methods"].get(n, {"error": "not run"})) for n in methods] for a in entries
    ]
    return [
        _md_table(["attack (poisoned/records)", *methods], rows),
        "",
        "Flags at each method's own threshold: **flag precision / clean-record flag rate** (the share of flagged "
        "records that are poisoned, and the share of the contribution's clean records that are flagged).",
        "",
        _md_table(["attack (poisoned/records)", *methods], flag_rows),
        "",
    ]


def _downstream_table(entries: list[dict[str, Any]], methods: list[str]) -> str:
    rows = []
    for a in entries:
        refs = a["references"]
        cells = [_attack_label(a)]
        for ref in ("no_defence", "clean_only"):
            d = refs.get(ref, {})
            cells.append(f"{_f(d.get('attack_success'))} / {_f(d.get('clean_accuracy'))}")
        for n in methods:
            d = a["methods"].get(n, {}).get("downstream", {})
            cells.append(f"{_f(d.get('attack_success'))} / {_f(d.get('clean_accuracy'))}" if d else "error")
        rows.append(cells)
    return _md_table(["attack", "no defence", "clean only", *methods], rows)


VERDICT_RANK = {"pass": 0, "review": 1, "block": 2}
DIGEST_KEYS = ("auroc", "recall_at_1pct_fpr", "precision", "verdict")


def digest(results: dict[str, Any], method: str = "dataward") -> dict[str, Any]:
    """What a later run is compared with: ``method``'s figures per poisoned case of ``results``."""
    cases = {}
    for a, _ in _poisoned(results):
        m = a["methods"].get(method)
        if m is not None and "error" not in m:
            cases[a["case"]["name"]] = {k: m.get(k) for k in DIGEST_KEYS}
    return {"date": results.get("date"), "method": method, "cases": cases}


def _moves(before: dict[str, Any], after: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(worse, better): what moved between two figures of one case, in words."""
    worse, better = [], []
    for key, label, margin in (("recall_at_1pct_fpr", "recall at 1% FPR", 0.05), ("auroc", "AUROC", 0.02)):
        old, new = before.get(key), after.get(key)
        if old is None or new is None or old != old or new != new:
            continue
        text = f"{label} {_f(old)} -> {_f(new)}"
        if new < old - margin:
            worse.append(text)
        elif new > old + margin:
            better.append(text)
    old_v, new_v = before.get("verdict"), after.get("verdict")
    if old_v in VERDICT_RANK and new_v in VERDICT_RANK and old_v != new_v:
        (worse if VERDICT_RANK[new_v] < VERDICT_RANK[old_v] else better).append(f"verdict {old_v} -> {new_v}")
    return worse, better


def changes_section(results: dict[str, Any]) -> list[str]:
    """dataward's figures that moved since the previous run of the same suite (poisoned cases)."""
    previous = results.get("previous_run")
    if not previous or not previous.get("cases"):
        return []
    current = digest(results, previous.get("method", "dataward"))["cases"]
    worse, better = [], []
    for name, after in current.items():
        before = previous["cases"].get(name)
        if before is None:
            continue
        w, b = _moves(before, after)
        if w:
            worse.append(f"- {name}: {'; '.join(w)}")
        if b:
            better.append(f"- {name}: {'; '.join(b)}")
    new = [name for name in current if name not in previous["cases"]]
    return [
        f"### Changes since the previous run ({previous.get('date')})",
        "",
        "dataward's figures on the poisoned cases both runs hold, where recall at 1% FPR moved by more than "
        "0.05, AUROC by more than 0.02, or the verdict changed. Unless the list of benchmark changes at the top "
        "of this page says otherwise, a case's data is the same in both runs (same seeds), so these moves come "
        "from changes of the gate.",
        "",
        "Worse:",
        "",
        *(worse or ["- nothing"]),
        "",
        "Better:",
        "",
        *(better or ["- nothing"]),
        "",
        f"New cases in this run: {len(new)}.",
        "",
    ]


def benign_section(results: dict[str, Any], method: str = "dataward") -> list[str]:
    """The benign-shift tables, tuning set and held-out set apart."""
    entries = results.get("benign", [])
    if not entries:
        return []
    parts = [
        "### Benign shifts: clean data that is new",
        "",
        "Clean, correctly labelled contributions that differ from the trusted baseline in one realistic way "
        "(`benchmarks/shifts/`), each scanned with its clean validation set. The verdict may be `pass` or "
        "`review`; a `block` is a **failure**. *Flagged* is the share of the contribution's records flagged "
        "(all of them clean). The held-out set (`benchmarks/shifts/heldout.py`) is never tuned on.",
        "",
    ]
    for group, title in (("tuning", "Tuning set"), ("heldout", "Held-out set (never tuned on)")):
        rows = []
        for b in entries:
            sit = b["situation"]
            if sit["group"] != group:
                continue
            m = b["methods"].get(method)
            if m is None:
                continue
            if "error" in m:
                rows.append([sit["name"], sit["kind"], sit["dataset"], "", "error", "-", _short(m["error"])])
                continue
            verdict = "**block (failure)**" if m["verdict"] == "block" else m["verdict"]
            reasons = "; ".join(_short(r, 160) for r in m.get("reasons", [])[:2]) or "-"
            rows.append(
                [
                    sit["name"],
                    sit["kind"],
                    f"{sit['dataset']}: {_short(sit['description'], 140)}",
                    f"{sit['baseline']} / {sit['contribution']}",
                    verdict,
                    _f(m.get("flagged_share"), 3),
                    reasons,
                ]
            )
        if not rows:
            continue
        blocked = sum("block" in r[4] for r in rows)
        parts += [
            f"#### {title}: {blocked} of {len(rows)} blocked",
            "",
            _md_table(
                ["situation", "kind", "data", "baseline / contribution", "verdict", "flagged", "first reasons"], rows
            ),
            "",
        ]
    return parts


def fixed_count_section(results: dict[str, Any]) -> list[str]:
    """The fixed-count table: per case, every method's recall at 1% FPR, AUROC, flag precision, clean
    flag rate, verdict and seconds."""
    entries = results.get("fixed_counts", [])
    if not entries:
        return []
    methods = [n for n in results["methods"] if any(n in e["methods"] for e in entries)]
    header = ["case (poisoned/records)"]
    for n in methods:
        header += [f"{n} R@1%", "AUROC", "precision", "clean flag rate", "verdict", "s"]
    rows = []
    for e in entries:
        cells = [_attack_label(e)]
        for n in methods:
            m = e["methods"].get(n, {"error": "not run"})
            if "error" in m:
                cells += ["error", "", "", "", "", ""]
                continue
            cells += [
                _f(m["recall_at_1pct_fpr"]),
                _f(m["auroc"]),
                _f(m["precision"]),
                _f(m["fpr"], 4),
                m["verdict"],
                _f(m["seconds"], 1),
            ]
        rows.append(cells)
    baseline = entries[0]["case"]["baseline"]
    errors = [
        f"- {e['case']['name']}: {n} failed: {_short(m['error'])}"
        for e in entries
        for n, m in e["methods"].items()
        if "error" in m
    ]
    return [
        "### Small fixed counts",
        "",
        "25, 50 and 100 poisoned records inside contributions of 5,000 and 50,000 "
        "(`benchmarks/attacks/fixed_counts.py`): a rare-token text trigger and random label flips on recombined "
        "man-page lines, the scaled BadNets patch on "
        f"32x32 colour photo crops. Every case has a baseline of {baseline} records whatever the contribution size. "
        "Recall must not depend on the poison *rate*. Peers have no verdict (see above).",
        "",
        _md_table(header, rows),
        "",
        *errors,
        *([""] if errors else []),
    ]


def timing_section(results: dict[str, Any], method: str = "dataward", peer: str = "cleanlab_label_issues") -> list[str]:
    """Seconds per dataward detector on each case, beside the peer's time on the same batch."""
    entries = [
        e
        for key in ("attacks", "heldout_attacks", "fixed_counts")
        for e in results.get(key, [])
        if "timings" in e["methods"].get(method, {}).get("extra", {})
    ]
    if not entries:
        return []
    detectors = sorted({d for e in entries for d in e["methods"][method]["extra"]["timings"]})
    rows = []
    for e in entries:
        m = e["methods"][method]
        timings = m["extra"]["timings"]
        other = e["methods"].get(peer, {})
        ratio = m["seconds"] / other["seconds"] if other.get("seconds") else float("nan")
        rows.append(
            [_attack_label(e)]
            + [_f(timings.get(d), 2) if d in timings else "-" for d in detectors]
            + [_f(m["seconds"], 1), _f(other.get("seconds"), 1), _f(ratio, 1)]
        )
    return [
        f"### Seconds per detector ({method}) beside {peer}",
        "",
        f'Wall time of each detector inside `scan` (the report\'s `extras["timings"]`), the whole `scan` call '
        f"(features, calibration and report included) and {peer} on the same batch, in the same process, one BLAS "
        "thread, on a shared 2-core machine (other jobs running: the figures are noisy).",
        "",
        _md_table(["case", *detectors, f"{method} total", peer, f"ratio {method} / {peer}"], rows),
        "",
    ]


def markdown(results: dict[str, Any], plot: Path | None) -> str:
    """The Markdown section for docs/benchmarks.md."""
    methods = results["methods"]
    m = results["machine"]
    title = {
        "full": "full suite",
        "quick": "quick suite (CI smoke test)",
        "scale": "scale suite (fixed-count cases at full size)",
    }.get(results["suite"], f"{results['suite']} suite")
    parts = [
        f"## Attacks against the gates: {title}",
        "",
        f"- command: `{results['command'].strip()}`{MAKE_TARGETS.get(results['suite'], '')}, seed {results['seed']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}"
        + (
            f"; load average {m['load_average']} at the start (other jobs share the cores)"
            if m.get("load_average")
            else ""
        ),
        f"- date: {results['date']}; total time {results['seconds']:.0f} s",
    ]
    if results.get("skipped"):
        parts.append(f"- not run: {'; '.join(results['skipped'])}")
    parts += [
        "",
        "Each cell of the first table is **recall at 1% FPR / AUROC / contribution verdict** (R = review, "
        "B = block, - = not detected). Recall at 1% FPR is the share of poisoned records caught by the best "
        "threshold that flags at most 1% of the clean records of the same contribution. Peers have no verdict "
        "of their own; they *detect* a contribution when they flag a larger share of it than of the baseline "
        "(one-sided Fisher exact test, p < 0.01), and detected peers are shown as R.",
        "",
    ]
    if results["attacks"]:
        parts += ["### Per record and per contribution", ""]
        parts += _attack_tables(results["attacks"], methods)

        parts += [
            "### Downstream: attack success rate / clean accuracy",
            "",
            "The downstream model (MLP on pixels, TF-IDF + logistic regression (by SGD) on text, random forest on "
            "tabular columns) is trained on the baseline plus what each method lets through: every record it does "
            "not flag, or nothing at all when dataward blocks the contribution. Attack success is the share of "
            "triggered test inputs (source-class inputs for targeted flips) predicted as the attacker's target.",
            "",
        ]
        parts += [_downstream_table(results["attacks"], methods), ""]

        parts += ["### Summary per method", ""]
        rows = []
        for n in methods:
            s = results["summary"][n]
            rows.append(
                [
                    n,
                    _f(s["mean_auroc"]),
                    _f(s["mean_recall_at_1pct_fpr"]),
                    _f(s["mean_recall_at_5pct_fpr"]),
                    _f(s["mean_precision"]),
                    _f(s.get("mean_attack_fpr"), 3),
                    f"{s['detected']}/{s['attacks_run']}",
                    f"{s['false_alarms']}/{s['clean_runs']}",
                    f"{s['false_blocks']}/{s['clean_runs']}",
                    _f(s["mean_clean_fpr"], 3),
                    _f(s["mean_attack_success"]),
                    _f(s["mean_seconds"], 1),
                    _f(s["max_peak_mb"], 0),
                    str(s["errors"]),
                ]
            )
        parts += [
            _md_table(
                [
                    "method",
                    "mean AUROC",
                    "mean R@1%",
                    "mean R@5%",
                    "mean precision",
                    "mean clean flag rate (attacks)",
                    "attacks detected",
                    "clean flagged (review or block)",
                    "clean blocked",
                    "clean record FPR",
                    "mean attack success",
                    "mean s",
                    "peak MB",
                    "errors",
                ],
                rows,
            ),
            "",
            "Peak memory is what `tracemalloc` sees (Python and NumPy buffers), not memory PyTorch allocates "
            "natively. Clean contributions are random halves of each dataset's pool, scanned against the "
            "same baseline.",
            "",
        ]
    if results.get("heldout_attacks"):
        held = results["heldout_attacks"]
        parts += [
            "### Held-out attacks (never tuned on)",
            "",
            "Attacks of `benchmarks/attacks/heldout.py`, which the gate is never tuned on: other triggers, datasets, "
            "rates and opacities than the attacks above. Same cells as above.",
            "",
            *_attack_tables(held, methods),
            "Downstream (attack success rate / clean accuracy):",
            "",
            _downstream_table(held, methods),
            "",
        ]
        hs = results.get("heldout_summary", {})
        rows = [
            [
                n,
                _f(hs[n]["mean_auroc"]),
                _f(hs[n]["mean_recall_at_1pct_fpr"]),
                _f(hs[n]["mean_precision"]),
                _f(hs[n]["mean_attack_fpr"], 3),
                f"{hs[n]['detected']}/{hs[n]['attacks_run']}",
            ]
            for n in methods
            if n in hs
        ]
        if rows:
            parts += [
                _md_table(
                    ["method", "mean AUROC", "mean R@1%", "mean precision", "mean clean flag rate", "detected"], rows
                ),
                "",
            ]
    parts += benign_section(results)
    parts += fixed_count_section(results)
    parts += timing_section(results)
    parts += changes_section(results)
    if results.get("drift_sequence"):
        seq = results["drift_sequence"]
        parts += [
            "### Slow drift, step by step (dataward)",
            "",
            "Each of the twenty contributions moves class `benign` a further 0.02 standard deviations "
            "(0.4 by the last); step k is judged against the first baseline plus steps 1..k-1. "
            "Verdicts per step (P pass, R review, B block):",
            "",
        ]
        for key, label in (("with_first_baseline", "with the first baseline"), ("without_first_baseline", "without")):
            marks = " ".join({"pass": "P", "review": "R", "block": "B"}.get(v, "?") for v in seq[key])
            first = next((i + 1 for i, v in enumerate(seq[key]) if v != "pass"), None)
            parts.append(f"- {label}: `{marks}` (first stopped at step {first if first else 'never'})")
        parts.append("")
    if "dataward" in methods:
        notes = shortfalls(results)
        parts += ["### Where dataward falls short of the bar", ""]
        parts += [f"- {n}" for n in notes] if notes else ["- nowhere in this run"]
        notes = losses(results)
        parts += ["", "### Where a peer beats dataward per record", ""]
        parts += [f"- {n}" for n in notes] if notes else ["- nowhere in this run"]
        parts.append("")
    if plot is not None:
        parts += [f"![recall at 1% and 5% FPR per attack]({_relative(plot)})", ""]
    return "\n".join(parts)


def _relative(path: Path) -> str:
    return Path(os.path.relpath(path.resolve(), DOCS.parent.resolve())).as_posix()


def write_docs(results: dict[str, Any], section: str, docs: Path = DOCS) -> Path:
    """Write ``section`` between the suite's markers, keeping everything outside them."""
    begin, end = markers(results["suite"])
    block = f"{begin}\n{section.rstrip()}\n{end}"
    text = docs.read_text(encoding="utf-8") if docs.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    found = pattern.search(text)
    text = pattern.sub(lambda _: block, text) if found else text.rstrip() + "\n\n" + block + "\n"
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text, encoding="utf-8")
    return docs


def plot_recall(results: dict[str, Any], out_dir: Path) -> Path | None:
    """Grouped bars: recall at 1% and at 5% FPR per attack, one bar per method."""
    if not results["attacks"] or not results["methods"]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = [a["case"]["name"] for a in results["attacks"]]
    methods = results["methods"]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.9 * len(attacks) + 3), 8), sharex=True)
    width = 0.8 / len(methods)
    x = np.arange(len(attacks))
    for ax, key, label in zip(axes, ("recall_at_1pct_fpr", "recall_at_5pct_fpr"), ("1%", "5%"), strict=True):
        for i, name in enumerate(methods):
            values = [a["methods"].get(name, {}).get(key) for a in results["attacks"]]
            heights = [v if isinstance(v, float) and math.isfinite(v) else 0.0 for v in values]
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, heights, width, label=name)
        ax.set_ylabel(f"recall at {label} FPR")
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=min(4, len(methods)), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.25))
    axes[1].set_xticks(x, attacks, rotation=40, ha="right", fontsize=8)
    fig.suptitle(f"Per-record recall at fixed false-positive rates ({results['suite']} suite)", y=0.99)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"recall-at-fpr-{results['suite']}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def console_table(results: dict[str, Any], console: Console | None = None) -> None:
    """Print the per-attack table and the per-method summary with Rich."""
    # A log file or CI output is not a terminal: give the wide table room instead of 80 columns.
    console = console or Console()
    if not console.is_terminal:
        console = Console(width=200)
    methods = results["methods"]
    table = Table(title=f"attacks ({results['suite']}): recall@1%FPR / AUROC / verdict", show_lines=False)
    table.add_column("attack")
    for n in methods:
        table.add_column(n, justify="right")
    for a in results["attacks"]:
        table.add_row(_attack_label(a), *[_cell(a["methods"].get(n, {"error": "not run"})) for n in methods])
    console.print(table)
    summary = Table(title="summary per method")
    for col in ("method", "AUROC", "R@1%", "R@5%", "detected", "clean flagged", "clean blocked", "ASR", "s"):
        summary.add_column(col, justify="right" if col != "method" else "left")
    for n in methods:
        s = results["summary"][n]
        summary.add_row(
            n,
            _f(s["mean_auroc"]),
            _f(s["mean_recall_at_1pct_fpr"]),
            _f(s["mean_recall_at_5pct_fpr"]),
            f"{s['detected']}/{s['attacks_run']}",
            f"{s['false_alarms']}/{s['clean_runs']}",
            f"{s['false_blocks']}/{s['clean_runs']}",
            _f(s["mean_attack_success"]),
            _f(s["mean_seconds"], 1),
        )
    console.print(summary)
    console.print(f"total {results['seconds']:.0f} s")
