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
