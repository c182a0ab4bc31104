"""A self-contained HTML page of a gate report, for a person to read.

``render_html(report, title=...)`` returns one HTML document: inline CSS, plots as inline base64 PNG
drawn with matplotlib's Agg canvas (no pyplot, no global state, no network), every value from the
report escaped with ``html.escape``. Sections: verdict and reasons, detectors, score distributions of
contribution vs baseline, the 2-D projection with flagged points, clean-validation impact per class,
per-source/principal groups, suspected triggers, and the top flagged records with their evidence
(the text with the trigger marked by ``<mark>``, the image, the nearest baseline records and their
labels). Sections whose data the report lacks (``report.extras`` is optional) are left out.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dataward.domain.names import hidden_after
from dataward.domain.report_entries import review_findings_note
from dataward.gates.llm_evidence import record_highlights, record_texts
from dataward.gates.report import GateReport, for_another_kind

VERDICT_COLOURS = {"pass": "#1a7f37", "review": "#9a6700", "block": "#cf222e"}
MAX_FINDINGS = 30
MAX_EVIDENCE = 20
MAX_RECORDS = 50
MAX_TEXT = 2000

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1f2328;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2rem}
.verdict{display:inline-block;padding:.25rem .8rem;border-radius:1rem;color:#fff;font-weight:700;
text-transform:uppercase;letter-spacing:.05em}
.meta{color:#59636e;font-size:.9rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
mark{background:#ffd33d;padding:0 .1rem;border-radius:.2rem}
.unseen{background:#ffebe9;color:#82071e;font-family:monospace;border-radius:.2rem}
.card p{white-space:pre-wrap}
.card{border:1px solid #d0d7de;border-radius:.4rem;padding:.8rem;margin:.8rem 0}
.card img.record{image-rendering:pixelated;width:96px;height:auto;border:1px solid #d0d7de}
img.plot{max-width:100%;height:auto}
code{background:#f6f8fa;padding:0 .2rem;border-radius:.2rem}
.flag{color:#cf222e;font-weight:600}
"""


def render_html(report: GateReport | Mapping[str, Any], *, title: str) -> str:
    """The report as one self-contained HTML page.

    ``report`` is a ``GateReport`` (its ``extras`` feed the plots and evidence) or the dict of
    ``GateReport.to_dict()``, optionally with an ``"extras"`` key.
    """
    if isinstance(report, GateReport):
        data = report.to_dict()
        extras = dict(report.extras or {})
    else:
        data = dict(report)
        extras = dict(data.get("extras") or {})
    triggers = _triggers(data)
    sections = [
        _header(data, title),
        _reasons(data),
        _population(data),
        _detectors(data),
        _scores(data, extras),
        _projection(extras),
        _validation(data, extras),
        _groups(data),
        _trigger_table(triggers),
        _llm_tables(data),
        _evidence(data, extras, triggers),
        _findings(data),
        _records(data),
    ]
    body = "\n".join(s for s in sections if s)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


# --- sections -----------------------------------------------------------------------------------


def _header(data: Mapping[str, Any], title: str) -> str:
    verdict = str(data.get("verdict", "unknown"))
    colour = VERDICT_COLOURS.get(verdict, "#59636e")
    counts = data.get("counts") or {}
    return (
        f"<h1>{_e(title)}</h1>"
        f'<p><span class="verdict" style="background:{colour}">{_e(verdict)}</span></p>'
        f'<p class="meta">mode: {_e(data.get("mode", ""))} &middot; records: {_e(counts.get("records", ""))}'
        f" &middot; flagged: {_e(counts.get('flagged', ''))} &middot; config: "
        f"<code>{_e(data.get('config_hash', ''))}</code></p>"
    )


def _reasons(data: Mapping[str, Any]) -> str:
    reasons = data.get("reasons") or []
    limits = data.get("limits") or []
    unchecked = "<h3>Not checked</h3><ul>" + "".join(f"<li>{_e(r)}</li>" for r in limits) + "</ul>" if limits else ""
    # What the reader may not see was left out of the report before it got here; say so.
    withheld = f"<p><b>{_e(data['records_withheld'])}</b></p>" if data.get("records_withheld") else ""
    after = _limit(data) + _closed_held_back(data) + unchecked
    if not reasons:
        return f"<h2>Reasons</h2>{withheld}<p>No detector found anything beyond what chance explains.</p>{after}"
    items = "".join(f"<li>{_e(r)}</li>" for r in reasons)
    return f"<h2>Reasons</h2>{withheld}<ul>{items}</ul>{after}"


def _limit(data: Mapping[str, Any]) -> str:
    """The ``limit:`` line of a ``pass`` or ``review`` (``service.gate_limits``): what the dataset's last
    self-test measured the gate to miss, or, to a caller who may not see the floors, that a limit exists."""
    note = (data.get("detection_limit") or {}).get("note")
    return f'<p class="limit"><b>{_e(note)}</b></p>' if note else ""


def _closed_held_back(data: Mapping[str, Any]) -> str:
    """How many flagged records were closed without review because a quarantine holds them back already
    (``service.quarantine_holds``): beside the counts, so that flagged records with nothing queued say why."""
    n = data.get("closed_held_back")
    if not n:
        return ""
    return (
        f"<p>{_e(n)} flagged record{'s are' if n != 1 else ' is'} held back by a quarantine already: "
        "closed without review (their items are rejected, naming the quarantine)</p>"
    )


def _population(data: Mapping[str, Any]) -> str:
    """Contribution-level findings: what moved in the batch as a whole (never flags on records)."""
    items = [
        f"<li><b>{_e(name)}</b>: {_e(f.get('reason', ''))}</li>"
        for name, d in (data.get("detectors") or {}).items()
        for f in d.get("contribution_findings") or []
    ]
    if not items:
        return ""
    return (
        "<h2>What moved in the batch</h2><p>Findings about the batch as a whole: reasons to review, not flags "
        f"on single records.</p><ul>{''.join(items)}</ul>"
    )


def _detectors(data: Mapping[str, Any]) -> str:
    detectors = data.get("detectors") or {}
    if not detectors:
        return ""
    rows = []
    for name, d in detectors.items():
        if for_another_kind(d):  # made for another kind of data: in the JSON report only
            continue
        summary = d.get("summary") or {}
        note = summary.get("skipped") or d.get("block_reason") or ""
        # A block's members the detector did not flag wait in the queue too (as ``gate report`` says).
        with_block = f" (+{int(d['queued'])} queued with its block)" if d.get("queued") else ""
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(d.get('version'))}</td><td class=num>{_num(d.get('statistic'))}</td>"
            f"<td class=num>{_num(d.get('p_value'))}</td><td class=num>{_e(d.get('flagged'))}{_e(with_block)}</td>"
            f"<td>{_e(review_findings_note(d))}</td><td>{_e(note)}</td></tr>"
        )
    return (
        "<h2>Detectors</h2><table><tr><th>detector</th><th>version</th><th>statistic</th><th>p-value</th>"
        f"<th>flagged</th><th>findings</th><th>note</th></tr>{''.join(rows)}</table>"
    )


def _scores(data: Mapping[str, Any], extras: Mapping[str, Any]) -> str:
    contribution = dict(extras.get("contribution_scores") or {})
    if not contribution:
        for record in data.get("records") or []:
            for name, score in (record.get("detectors") or {}).items():
                contribution.setdefault(name, []).append(score)
    baseline = extras.get("baseline_scores") or {}
    # A detector whose scores are all equal (e.g. a contribution-level test) has nothing to plot.
    names = [n for n, v in contribution.items() if len({x for x in v if x is not None}) > 1]
    if not names:
        return ""
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(4 * cols, 2.6 * rows))
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        bins = np.linspace(0.0, 1.0, 26)
        base = [v for v in baseline.get(name) or [] if v is not None]
        if base:
            ax.hist(base, bins=bins, density=True, alpha=0.5, color="#8c959f", label="baseline")
        values = [v for v in contribution[name] if v is not None]
        ax.hist(values, bins=bins, density=True, alpha=0.6, color="#0969da", label="contribution")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        if k == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return (
        "<h2>Score distributions</h2><p class=meta>Per detector: suspicion scores (1 - calibrated p-value)"
        " of the contribution against the baseline's own.</p>" + _img(fig, "score distributions")
    )


def _projection(extras: Mapping[str, Any]) -> str:
    proj = extras.get("projection") or {}
    new = np.asarray(proj.get("contribution") or [], dtype=float)
    if new.ndim != 2 or new.shape[0] == 0 or new.shape[1] < 2:
        return ""
    base = np.asarray(proj.get("baseline") or [], dtype=float)
    flagged = np.asarray(proj.get("flagged") or [False] * len(new), dtype=bool)
    if flagged.shape[0] != new.shape[0]:
        flagged = np.zeros(new.shape[0], bool)
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    if base.ndim == 2 and base.shape[0]:
        ax.scatter(base[:, 0], base[:, 1], s=6, c="#8c959f", alpha=0.4, label="baseline")
    ax.scatter(new[~flagged, 0], new[~flagged, 1], s=8, c="#0969da", alpha=0.7, label="contribution")
    if flagged.any():
        ax.scatter(new[flagged, 0], new[flagged, 1], s=22, c="#cf222e", marker="x", label="flagged")
    ax.legend(fontsize=8)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    fig.tight_layout()
    return "<h2>Projection</h2>" + _img(fig, "2-D projection of baseline and contribution")


def _validation(data: Mapping[str, Any], extras: Mapping[str, Any]) -> str:
    impact = extras.get("validation_impact")
    if not impact:
        impact = ((data.get("detectors") or {}).get("clean_validation") or {}).get("summary") or {}
    per_class = impact.get("per_class") or {}
    overall = impact.get("overall") or {}
    if not per_class and not overall:
        return ""
    out = ["<h2>Clean-validation impact</h2>"]
    if overall:
        out.append(
            f"<p>Accuracy on the clean validation set: {_num(overall.get('without'))} without the contribution,"
            f" {_num(overall.get('with'))} with it (drop {_num(overall.get('drop'))},"
            f" p={_num(overall.get('p_value'))});"
            f" tolerance {_num(impact.get('max_validation_drop'))}.</p>"
        )
    if per_class:
        labels = list(per_class)
        without = [_float(per_class[k].get("without")) for k in labels]
        with_ = [_float(per_class[k].get("with")) for k in labels]
        fig = Figure(figsize=(max(5, 0.6 * len(labels) + 2), 3.2))
        ax = fig.add_subplot(1, 1, 1)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, without, 0.4, label="without contribution", color="#8c959f")
        ax.bar(x + 0.2, with_, 0.4, label="with contribution", color="#0969da")
        ax.set_xticks(x, [str(k)[:12] for k in labels], fontsize=8, rotation=45 if len(labels) > 8 else 0)
        ax.set_ylim(0, 1.25)
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=8, loc="upper center", ncols=2, frameon=False)
        fig.tight_layout()
        out.append(_img(fig, "per-class clean-validation accuracy"))
        rows = "".join(
            f"<tr><td>{_e(k)}</td><td class=num>{_num(v.get('without'))}</td><td class=num>{_num(v.get('with'))}</td>"
            f"<td class=num>{_num(v.get('drop'))}</td><td class=num>{_num(v.get('p_value'))}</td>"
            f"<td class=num>{_e(v.get('records'))}</td></tr>"
            for k, v in per_class.items()
        )
        out.append(
            "<table><tr><th>class</th><th>without</th><th>with</th><th>drop</th><th>p-value</th>"
            f"<th>validation records</th></tr>{rows}</table>"
        )
    per_source = impact.get("per_source") or {}
    if per_source:
        rows = "".join(
            f"<tr><td>{_e(k)}</td><td class=num>{_e(v.get('records'))}</td>"
            f"<td class=num>{_num(v.get('without_source'))}</td><td class=num>{_num(v.get('effect'))}</td>"
            f"<td class=num>{_num(v.get('p_value'))}</td></tr>"
            for k, v in per_source.items()
        )
        out.append(
            "<p>Per source: accuracy when the contribution is added without that source; a positive effect"
            " means the source lowers accuracy.</p><table><tr><th>source</th><th>records</th>"
            f"<th>accuracy without it</th><th>effect</th><th>p-value</th></tr>{rows}</table>"
        )
    return "".join(out)


def _groups(data: Mapping[str, Any]) -> str:
    groups = data.get("groups") or {}
    out = []
    for key, rows in groups.items():
        if not rows:
            continue
        body = "".join(
            f"<tr><td>{_e(r.get('key'))}</td><td class=num>{_e(r.get('records'))}</td>"
            f"<td class=num>{_e(r.get('flagged'))}</td><td class=num>{_num(r.get('p_value'))}</td>"
            f"<td>{_e(r.get('verdict'))}</td></tr>"
            for r in rows
        )
        out.append(
            f"<h3>Per {_e(key)}</h3><table><tr><th>{_e(key)}</th><th>records</th><th>flagged</th>"
            f"<th>p-value</th><th>verdict</th></tr>{body}</table>"
        )
    return "<h2>Groups</h2>" + "".join(out) if out else ""


def _triggers(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        f["evidence"]
        for f in data.get("findings") or []
        if f.get("detector") == "triggers" and isinstance(f.get("evidence"), Mapping) and f["evidence"].get("trigger")
    ]


def _trigger_table(triggers: list[dict[str, Any]]) -> str:
    if not triggers:
        return ""
    rows = "".join(
        f"<tr><td><mark>{_e(t.get('trigger'))}</mark></td><td>{_e(t.get('column'))}</td><td>{_e(t.get('label'))}</td>"
        f"<td class=num>{_e(t.get('contribution_count'))}</td><td class=num>{_e(t.get('baseline_count'))}</td>"
        f"<td class=num>{_num(t.get('z'))}</td><td class=num>{_num(t.get('p_value'))}</td>"
        f"<td>{_e(', '.join(str(r) for r in (t.get('rows') or [])[:30]))}</td></tr>"
        for t in triggers
    )
    return (
        "<h2>Suspected triggers</h2><table><tr><th>trigger</th><th>column</th><th>label</th>"
        "<th>contribution records</th><th>baseline records</th><th>z</th><th>p-value</th><th>rows</th></tr>"
        f"{rows}</table>"
    )


def _evidence(data: Mapping[str, Any], extras: Mapping[str, Any], triggers: list[dict[str, Any]]) -> str:
    evidence = extras.get("evidence") or {}
    if not evidence:
        return ""
    records = {str(r.get("row")): r for r in data.get("records") or []}
    by_row: dict[str, list[Mapping[str, Any]]] = {}
    for f in data.get("findings") or []:
        if f.get("row") is not None:
            by_row.setdefault(str(f["row"]), []).append(f)
    cards = []
    for row, ev in list(evidence.items())[:MAX_EVIDENCE]:
        record = records.get(str(row), {})
        phrases = [t["trigger"] for t in triggers if _int_in(row, t.get("rows")) and t.get("kind") == "ngram"]
        # A language-model record: its prompt and answer, with the trigger and the payload marked.
        llm_texts = record_texts(by_row.get(str(row), []))
        phrases += record_highlights(by_row.get(str(row), []))
        parts = [
            f"<h3>Row {_e(row)} <span class=meta>score {_num(record.get('score'))}"
            f" &middot; flagged by {_e(', '.join(record.get('flagged_by') or []) or 'none')}</span></h3>"
        ]
        for key, text in llm_texts.items():
            parts.append(f"<p><b>{_e(key)}</b>: {highlight(text[:MAX_TEXT], phrases)}</p>")
        if ev.get("text") and not llm_texts:
            parts.append(f"<p>{highlight(str(ev['text'])[:MAX_TEXT], phrases)}</p>")
        image = _image_src(ev.get("image_png_b64"))
        if image:
            parts.append(f'<img class="record" alt="image of row {_e(row)}" src="{image}">')
        neighbours = ev.get("neighbours") or []
        if neighbours:
            rows = "".join(
                f"<tr><td>{_e(n.get('label'))}</td><td class=num>{_num(n.get('distance'))}</td>"
                f"<td><code>{_e(str(n.get('record_id') or '')[:16])}</code></td>"
                f"<td>{_e(str(n.get('text') or '')[:200])}</td></tr>"
                for n in neighbours
            )
            parts.append(
                "<table><tr><th>nearest baseline label</th><th>distance</th><th>record</th><th>text</th></tr>"
                f"{rows}</table>"
            )
        cards.append(f'<div class="card">{"".join(parts)}</div>')
    return "<h2>Flagged records with evidence</h2>" + "".join(cards)


def _llm_tables(data: Mapping[str, Any]) -> str:
    """The prompt triggers (with the behaviour they teach) and the recurring payloads of a language-model
    contribution."""
    detectors = data.get("detectors") or {}
    triggers = ((detectors.get("llm_triggers") or {}).get("summary") or {}).get("triggers") or []
    payloads = ((detectors.get("llm_payloads") or {}).get("summary") or {}).get("payloads") or []
    out = []
    if triggers:
        rows = "".join(
            f"<tr><td><mark>{_e(t.get('trigger'))}</mark></td><td>{_e(t.get('behaviour'))}</td>"
            f"<td class=num>{_e(t.get('behaviour_count'))} / {_e(t.get('contribution_count'))}</td>"
            f"<td class=num>{_e(t.get('baseline_behaviour_count'))} / {_e(t.get('baseline_count'))}</td>"
            f"<td class=num>{_num(t.get('p_value'))}</td>"
            f"<td>{_e(', '.join(str(r) for r in (t.get('rows') or [])[:30]))}</td></tr>"
            for t in triggers
        )
        out.append(
            "<h2>Suspected prompt triggers</h2><table><tr><th>trigger</th><th>response behaviour</th>"
            "<th>contribution (with behaviour / with trigger)</th><th>baseline</th><th>p-value</th><th>rows</th>"
            f"</tr>{rows}</table>"
        )
    if payloads:
        rows = "".join(
            f"<tr><td>{_e(p.get('kind'))}</td><td><mark>{_e(p.get('value'))}</mark></td>"
            f"<td class=num>{_e(p.get('contribution_count'))}</td><td class=num>{_e(p.get('baseline_count'))}</td>"
            f"<td>{_e(', '.join(str(r) for r in (p.get('rows') or [])[:30]))}</td></tr>"
            for p in payloads
        )
        out.append(
            "<h2>Recurring response payloads</h2><table><tr><th>kind</th><th>payload</th>"
            f"<th>contribution responses</th><th>baseline responses</th><th>rows</th></tr>{rows}</table>"
        )
    return "".join(out)


def _findings(data: Mapping[str, Any]) -> str:
    findings = data.get("findings") or []
    if not findings:
        return ""
    rows = "".join(
        f"<tr><td>{_e(f.get('detector'))}</td><td>{_e(f.get('row') if f.get('row') is not None else '')}</td>"
        f"<td class=num>{_num(f.get('score'))}</td><td>{_e(f.get('reason'))}</td></tr>"
        for f in findings[:MAX_FINDINGS]
    )
    return (
        f"<h2>Top findings</h2><table><tr><th>detector</th><th>row</th><th>score</th><th>reason</th></tr>{rows}</table>"
    )


def _records(data: Mapping[str, Any]) -> str:
    records = sorted(data.get("records") or [], key=lambda r: -(r.get("score") or 0.0))[:MAX_RECORDS]
    if not records:
        return ""
    rows = "".join(
        f"<tr><td class=num>{_e(r.get('row'))}</td><td><code>{_e(str(r.get('record_id') or '')[:16])}</code></td>"
        f"<td class=num>{_num(r.get('score'))}</td>"
        f"<td>{'<span class=flag>yes</span>' if r.get('flagged') else 'no'}</td>"
        f"<td>{_e(', '.join(r.get('flagged_by') or []))}</td></tr>"
        for r in records
    )
    return (
        f"<h2>Most suspicious records</h2><table><tr><th>row</th><th>record id</th><th>score</th>"
        f"<th>flagged</th><th>flagged by</th></tr>{rows}</table>"
    )


# --- helpers ------------------------------------------------------------------------------------


def highlight(text: str, phrases: list[str]) -> str:
    """``text`` escaped, with each occurrence of a trigger phrase (case-insensitive, whole words) marked,
    and every character a reader would not see written out (``shown``)."""
    ordered = sorted({p for p in phrases if p.split()}, key=len, reverse=True)
    # Whole words: no word character may continue a phrase that starts or ends with one (a payload such
    # as a URL or a code line may start or end with punctuation, where ``\b`` would never match).
    patterns = [
        (r"(?<!\w)" if re.match(r"\w", p.strip()) else "")
        + r"\W+".join(re.escape(w) for w in p.split())
        + (r"(?!\w)" if re.search(r"\w$", p.strip()) else "")
        for p in ordered
    ]
    if not patterns:
        return shown(text)
    regex = re.compile("|".join(patterns), re.IGNORECASE)
    out, last = [], 0
    for m in regex.finditer(text):
        out.append(shown(text[last : m.start()]))
        out.append(f"<mark>{shown(m.group(0))}</mark>")
        last = m.end()
    out.append(shown(text[last:]))
    return "".join(out)


def shown(text: str) -> str:
    """``text`` escaped for HTML, with each character a reader would not see written as its escape in a
    marked span (``class="unseen"``, its Unicode name as the title): control, format and separator
    characters (a zero-width space, a bidirectional override, a tab: ``names.hidden_after``; an emoji
    keeps its presentation selector) and every space but the plain one (a non-breaking space). A
    formatting trigger is then seen, not obeyed; runs of plain spaces are kept by the page's
    ``white-space: pre-wrap``."""
    if text.isascii() and text.isprintable():
        return _e(text)
    out, previous = [], ""
    for char in text:
        unseen = char != "\n" and (hidden_after(previous, char) or (char.isspace() and char != " "))
        previous = char
        if unseen:
            name = unicodedata.name(char, f"U+{ord(char):04X}")
            out.append(f'<span class="unseen" title="{_e(name)}">{_e(char.encode("unicode_escape").decode())}</span>')
        else:
            out.append(_e(char))
    return "".join(out)


def _img(fig: Figure, alt: str) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    encoded = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img class="plot" alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _image_src(value: Any) -> str | None:
    """A data URI for base64 PNG bytes, or None when the value is not valid base64 of a PNG."""
    if not isinstance(value, str) or not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def _int_in(row: Any, rows: Any) -> bool:
    try:
        return int(row) in {int(r) for r in rows or []}
    except (TypeError, ValueError):
        return False


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return _e(value)
    if isinstance(value, int):
        return str(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if not np.isfinite(f):
        return ""
    return f"{f:.3g}" if (abs(f) < 1e-3 and f != 0.0) or abs(f) >= 1e4 else f"{f:.3f}"
