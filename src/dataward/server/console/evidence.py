"""How a flagged record's evidence is shown: the trigger highlighted in text, the patch outlined on
an image. Presentation only: the evidence itself comes from ``WardAPI.review_show``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from dataward.gates.html import highlight

# The pixel trigger's name, as the triggers detector writes it:
# "9 bright pixels in rows 5-7, columns 5-7 of 8x8" (rows and columns of a downscaled grid).
_PATCH = re.compile(r"rows (\d+)-(\d+), columns (\d+)-(\d+) of (\d+)x(\d+)")


@dataclass(frozen=True)
class Patch:
    """A trigger patch as fractions of the image's height and width (0..1), for an outline."""

    top: float
    left: float
    height: float
    width: float
    label: str


def patches(triggers: list[str]) -> list[Patch]:
    """The image patches the gate named among a record's triggers (none when it named no location)."""
    out = []
    for trigger in triggers:
        m = _PATCH.search(trigger)
        if not m:
            continue
        r0, r1, c0, c1, h, w = (int(g) for g in m.groups())
        if h <= 0 or w <= 0:
            continue
        out.append(Patch(r0 / h, c0 / w, (r1 - r0 + 1) / h, (c1 - c0 + 1) / w, trigger))
    return out


def highlighted(text: Any, triggers: list[str]) -> Markup:
    """``text`` escaped, with the trigger phrases marked (``<mark>``)."""
    phrases = [t for t in triggers if not _PATCH.search(t)]
    return Markup(highlight(str(text), phrases))


def record_fields(record: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The record's fields as (name, kind, value): ``image`` (a data URI), ``text`` or ``value``."""
    fields = []
    for name, value in record.items():
        if name == "record_id":
            continue
        if isinstance(value, dict) and "image_base64" in value:
            raw = str(value["image_base64"])
            mime = "image/jpeg" if raw.startswith("/9j/") else "image/png"
            fields.append((name, "image", f"data:{mime};base64,{raw}"))
        elif isinstance(value, str):
            fields.append((name, "text", value))
        else:
            fields.append((name, "value", value))
    return fields
