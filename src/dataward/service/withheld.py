"""What a gate report shows of records to a caller who may not read them.

A gate report quotes records: the flagged records themselves (``extras.evidence``), the trusted
records nearest to them, and, for language-model data, the prompts and answers behind a finding.
Reading records needs ``dataset.export`` on every path (docs/access.md); a contributor without it
sees the records of its own contributions only. For everyone else the report keeps what the gate
measured (counts, p-values, verdicts, scores, labels, record ids and row numbers, a trigger token,
a payload's domain) and loses what it quoted: see :data:`RECORD_KEYS`, and the excerpts a reason
quotes after ``e.g.``. ``records_withheld`` then says what was left out and which permission shows it.
"""

from __future__ import annotations

import re
from typing import Any

from dataward.access import roles_allowing
from dataward.access.roles import Action

RECORD_KEYS = frozenset(
    {
        "text",
        "image_png_b64",
        "prompt",
        "response",
        "chosen",
        "rejected",
        "answer",
        "expected",
        "example",
        "neighbours",
        "nearest_trusted",
    }
)
"""Keys whose values are record contents wherever a gate report holds them (evidence, findings,
detector summaries). ``examples`` keeps its row numbers only."""

TRUSTED_KEYS = frozenset({"neighbours", "nearest_trusted"})
"""Keys whose values are trusted records (not the contribution's own): withheld from its submitter too."""

VALIDATION_QUOTES = frozenset({"llm_validation"})
"""Detectors whose ``example`` quotes the clean validation set (trusted), not the contribution."""

_QUOTED = re.compile(r"""(e\.g\. |responses like )('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
WITHHELD = "[record withheld]"


def _strip(value: Any, keys: frozenset[str]) -> Any:
    """``value`` with every entry under ``keys`` dropped and quoted excerpts in its text replaced."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in keys:
                continue
            if key == "examples" and "text" in keys and isinstance(item, list):
                out[key] = [{"row": e["row"]} if isinstance(e, dict) and "row" in e else None for e in item]
                continue
            out[key] = _strip(item, keys)
        return out
    if isinstance(value, list):
        return [_strip(item, keys) for item in value]
    if isinstance(value, str) and "text" in keys:
        return _QUOTED.sub(lambda m: m.group(1) + WITHHELD, value)
    return value


def withhold_records(report: dict[str, Any], *, own: bool, dataset: str) -> dict[str, Any]:
    """``report`` (a stored gate report) for a caller without ``dataset.export`` on ``dataset``.

    ``own``: the caller submitted the contribution (or owns the bot that did); it keeps its own
    records and loses only the trusted ones quoted beside them."""
    keys = TRUSTED_KEYS if own else RECORD_KEYS
    out = dict(report)
    for part in ("findings", "detectors", "reasons", "removals"):
        if part in out:
            out[part] = _strip(out[part], keys)
    if own:
        # The clean validation set's prompts and expected answers are trusted records too.
        out["findings"] = [
            _strip(f, frozenset({"example"})) if isinstance(f, dict) and f.get("detector") in VALIDATION_QUOTES else f
            for f in out.get("findings") or []
        ]
        if isinstance(out.get("detectors"), dict):
            out["detectors"] = {
                name: _strip(d, frozenset({"example"})) if name in VALIDATION_QUOTES else d
                for name, d in out["detectors"].items()
            }
    if "extras" in out:
        extras = dict(out["extras"] or {})
        if isinstance(extras.get("evidence"), dict):
            extras["evidence"] = _strip(extras["evidence"], keys)
        out["extras"] = extras
    what = "the trusted records quoted beside them" if own else "the records this report quotes"
    roles = ", ".join(sorted(r.value for r in roles_allowing(Action.DATASET_EXPORT)))
    out["records_withheld"] = (
        f"{what} are withheld: reading the records of {dataset!r} needs dataset.export on it ({roles})"
    )
    return out
