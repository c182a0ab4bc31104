"""What a reviewer is shown of a flagged instruction, chat or preference record: its prompt and answer
(chosen and rejected for a pair), with the suspected trigger phrase and the recurring payload marked.

Read from a gate report's findings (``GateReport.to_dict()["findings"]``), so the review queue, the
CLI and the HTML report show the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TEXT_FIELDS = ("prompt", "response", "chosen", "rejected")
"""The evidence keys of language-model findings that hold a record's texts, in display order."""


def record_highlights(findings: Iterable[Mapping[str, Any]]) -> list[str]:
    """The strings to mark in one record: the trigger phrases ``llm_triggers`` named for it and the
    payloads ``llm_payloads`` found recurring in its answer (without their ``url:``/``code:`` prefix)."""
    out: list[str] = []
    for f in findings:
        evidence = f.get("evidence") or {}
        if f.get("detector") == "llm_triggers" and evidence.get("trigger"):
            out.append(str(evidence["trigger"]))
        elif f.get("detector") == "llm_payloads" and evidence.get("payload"):
            out.append(str(evidence["payload"]).split(":", 1)[-1])
    return list(dict.fromkeys(out))


def record_texts(findings: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The prompt and answer texts the language-model findings of one record quote (empty if none)."""
    texts: dict[str, str] = {}
    for f in findings:
        evidence = f.get("evidence") or {}
        for key in TEXT_FIELDS:
            if isinstance(evidence.get(key), str) and key not in texts:
                texts[key] = evidence[key]
    return {k: texts[k] for k in TEXT_FIELDS if k in texts}
