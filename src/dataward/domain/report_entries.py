"""Reading the detector entries of a stored gate report without the gate code: the CLI prints stored
reports (``gate report``, a contribution's answer), and importing the gates package for that loads
scikit-learn and every detector (seconds per command)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NOT_FOR_KIND = "applies to "
"""How the skip reason of a detector made for another kind of data begins (``select_detectors``)."""


def for_another_kind(detector: Mapping[str, Any]) -> bool:
    """True for a report's detector entry skipped because it can never apply to this dataset's kind of
    data (an ``llm_*`` detector on a tabular dataset): summaries for people leave it out; the JSON
    report keeps it."""
    skipped = (detector.get("summary") or {}).get("skipped")
    return isinstance(skipped, str) and skipped.startswith(NOT_FOR_KIND)


def review_findings_note(detector: Mapping[str, Any]) -> str:
    """How many contribution-level findings a report's detector entry holds, with the smallest p-value
    they state (``evidence.p_value``), as ``"1 finding for review (p=2.7e-45)"``; "" when it holds none.

    The detectors table shows each detector's own contribution-level test (``p_value``: its flags' count,
    or the evidence it may block on), and a finding is another test (a batch of new content, a new group
    of records, a repeated pattern), each of which is a reason of the verdict. Shown alone, that
    ``p_value`` read as the detector having found nothing: a text batch from a new source was reviewed
    on "label_consistency: ... new content ... p=2.7e-45" while its table row said "flagged 0, p=1"."""
    findings = [f for f in detector.get("contribution_findings") or [] if isinstance(f, Mapping)]
    if not findings:
        return ""
    stated = [
        float(p)
        for f in findings
        if isinstance(f.get("evidence"), Mapping)
        and isinstance(p := f["evidence"].get("p_value"), int | float)
        and not isinstance(p, bool)
    ]
    count = f"{len(findings)} finding{'s' if len(findings) > 1 else ''} for review"
    return f"{count} (p={min(stated):.2g})" if stated else count
