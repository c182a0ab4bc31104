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


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _attack_label(a: dict[str, Any]) -> str:
    c = a["case"]
    return f"{c['name']} ({c['poisoned']}/{c['contribution']})"


def losses(results: dict[str, Any], method: str = "dataward") -> list[str]:
    """Attacks where a peer beats ``method`` on recall at 1% FPR or on AUROC, stated plainly."""
    notes = []
    for a in results["attacks"]:
        ours = a["methods"].get(method)
        if ours is None:
            continue
        if "error" in ours:
            notes.append(f"{a['case']['name']}: {method} failed ({ours['error']})")
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
                notes.append(f"{a['case']['name']}: {best_name} {label} {_f(best, 3)} vs {method} {ours_value}")
    return notes


def _detector_evidence(m: dict[str, Any]) -> str:
    detectors = m.get("extra", {}).get("detectors", {})
    ranked = sorted(
        (1.0 if d.get("p_value") is None else d["p_value"], name, d.get("flagged")) for name, d in detectors.items()
    )
    return ", ".join(f"{name} p={p:.2g} ({flagged} flagged)" for p, name, flagged in ranked[:3])


def shortfalls(results: dict[str, Any], method: str = "dataward", asr_margin: float = 0.02) -> list[str]:
    """Where ``method`` misses the bar: undetected poisoned contributions, recall at 1% FPR under 0.95
    on a dirty-label backdoor, clean contributions it stops, and attack success after the gate more
    than ``asr_margin`` above clean-only training."""
    notes = []
    for a in results["attacks"]:
        m = a["methods"].get(method, {})
        if not m or "error" in m:
            continue
        name = a["case"]["name"]
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
    return notes


def markdown(results: dict[str, Any], plot: Path | None) -> str:
    """The Markdown section for docs/benchmarks.md."""
    methods = results["methods"]
    m = results["machine"]
    title = "full suite" if results["suite"] == "full" else f"{results['suite']} suite (CI smoke test)"
    parts = [
        f"## Attacks against the gates: {title}",
        "",
        f"- command: `{results['command'].strip()}` (or `make bench`/`make bench-quick`), seed {results['seed']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}",
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
        "### Per record and per contribution",
        "",
    ]
    rows = [
        [_attack_label(a)] + [_cell(a["methods"].get(n, {"error": "not run"})) for n in methods]
        for a in results["attacks"]
    ]
    parts += [_md_table(["attack (poisoned/records)", *methods], rows), ""]

    parts += [
        "### Downstream: attack success rate / clean accuracy",
        "",
        "The downstream model (MLP on pixels, TF-IDF + logistic regression (by SGD) on text, random forest on tabular "
        "columns) is trained on the baseline plus what each method lets through: every record it does not flag, "
        "or nothing at all when dataward blocks the contribution. Attack success is the share of triggered test "
        "inputs (source-class inputs for targeted flips) predicted as the attacker's target.",
        "",
    ]
    rows = []
    for a in results["attacks"]:
        refs = a["references"]
        cells = [_attack_label(a)]
        for ref in ("no_defence", "clean_only"):
            d = refs.get(ref, {})
            cells.append(f"{_f(d.get('attack_success'))} / {_f(d.get('clean_accuracy'))}")
        for n in methods:
            d = a["methods"].get(n, {}).get("downstream", {})
            cells.append(f"{_f(d.get('attack_success'))} / {_f(d.get('clean_accuracy'))}" if d else "error")
        rows.append(cells)
    parts += [_md_table(["attack", "no defence", "clean only", *methods], rows), ""]

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
