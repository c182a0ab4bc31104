"""A self-contained HTML page of a release gate report (same look as the data gates' reports): verdict
and reasons, accuracy overall and per class against the released version, and every probed trigger
with its attack success and control. Every value is escaped."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from dataward.gates.html import CSS, VERDICT_COLOURS


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _pct(value: Any) -> str:
    return "" if value is None else f"{float(value):.1%}"


def render_release_html(report: Mapping[str, Any], *, title: str) -> str:
    """One HTML document for a release gate report (``ReleaseReport.to_dict()`` plus the model fields)."""
    verdict = str(report.get("verdict", ""))
    colour = VERDICT_COLOURS.get(verdict, "#59636e")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p><span class='verdict' style='background:{colour}'>{_e(verdict)}</span></p>",
        f"<p class='meta'>model {_e(report.get('model'))} · digest {_e(report.get('digest'))} · "
        f"trained on {_e(', '.join(report.get('datasets', [])))} · validation set "
        f"{_e(report.get('validation'))} ({_e(report.get('validation_rows'))} rows)</p>",
        "<h2>Reasons</h2><ul>",
        *[f"<li>{_e(r)}</li>" for r in report.get("reasons", [])],
        "</ul>",
    ]
    # A language model's report measures answers; a classifier's, accuracy.
    answers = report.get("answers")
    parts.append(_answers_html(answers) if answers else _accuracy_html(report, report.get("baseline") or {}))
    label = "behaviour" if answers else "label"
    parts.append(
        f"<h2>Backdoor probe</h2><table><tr><th>trigger</th><th>origin</th><th>{label}</th>"
        "<th>eligible</th><th>flipped</th><th>attack success</th><th>control</th><th>released</th></tr>"
    )
    for p in report.get("probes", []):
        origin = p.get("origin")
        if origin == "history":
            origin = "data gate: " + ", ".join(p.get("found_in", [])[:3])
        parts.append(
            f"<tr><td>{_e(p.get('trigger'))}</td><td>{_e(origin)}</td><td>{_e(p.get('target'))}</td>"
            f"<td>{_e(p.get('eligible'))}</td><td>{_e(p.get('flipped'))}</td><td>{_pct(p.get('attack_success'))}</td>"
            f"<td>{_pct(p.get('control_success'))}</td><td>{_pct(p.get('baseline_excess'))}</td></tr>"
        )
    parts.append("</table>")
    replayed = [p for p in report.get("probes", []) if p.get("replayed")]
    if replayed:
        parts.append("<h2>How colour patches were replayed</h2><ul>")
        parts += [f"<li>{_e(p.get('trigger'))}: {_e(p.get('replayed'))}</li>" for p in replayed]
        parts.append("</ul>")
    not_replayed = report.get("not_replayed") or []
    if not_replayed:
        parts.append("<h2>Data gate triggers not replayed</h2><ul>")
        parts += [
            f"<li>{_e(t.get('trigger'))} (found in {_e(', '.join(t.get('found_in', [])[:3]))}): "
            f"{_e(t.get('reason'))}</li>"
            for t in not_replayed
        ]
        parts.append("</ul>")
    scan = [s for s in report.get("scan", []) if s.get("pickle")]
    if scan:
        parts.append("<h2>Files that run code when loaded</h2><ul>")
        parts += [f"<li>{_e(s.get('file'))}: {_e(s.get('severity'))}</li>" for s in scan]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "".join(parts)


def _answers_html(answers: Mapping[str, Any]) -> str:
    """A language model's clean answers: violations per behaviour and relevance."""
    rows = "".join(f"<tr><td>{_e(b)}</td><td>{_e(k)}</td></tr>" for b, k in answers.get("by_behaviour", {}).items())
    return (
        "<h2>Answers to the clean validation prompts</h2>"
        f"<p>{_e(answers.get('violations'))} of {_e(answers.get('prompts'))} answers show a behaviour their expected "
        f"answer lacks; relevance {_pct(answers.get('relevance'))}</p>"
        f"<table><tr><th>behaviour</th><th>answers</th></tr>{rows}</table>"
    )


def _accuracy_html(report: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    """A classifier's accuracy, overall and per class, against the released version."""
    parts = [
        "<h2>Accuracy on the clean validation set</h2>",
        f"<p>overall {_pct(report.get('accuracy'))}"
        + (f"; released {_e(baseline.get('model'))}: {_pct(baseline.get('accuracy'))}" if baseline else "")
        + "</p><table><tr><th>class</th><th>support</th><th>accuracy</th><th>released</th><th>change</th></tr>",
    ]
    for label, stats in (report.get("per_class") or {}).items():
        before = (baseline.get("per_class") or {}).get(label)
        parts.append(
            f"<tr><td>{_e(label)}</td><td>{_e(stats.get('support'))}</td><td>{_pct(stats.get('accuracy'))}</td>"
            f"<td>{_pct(before)}</td><td>{_e(stats.get('change', ''))}</td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)
