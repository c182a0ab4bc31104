"""The backdoor probe: stamp triggers on clean validation inputs and count predictions that flip to one label.

Triggers come from two places:

* **history**: what the data gates' ``triggers`` detector found in this dataset's contributions (the
  ``trigger``, ``kind``, ``column`` and ``label`` of its findings: an n-gram, a formatting pattern such
  as ``two or more spaces in a row`` (written in by ``dataward.gates.formatting.stamp_texts``), a pixel patch
  such as ``9 bright pixels in rows 5-7, columns 5-7 of 8x8``, a colour patch such as ``36 magenta-leaning
  pixels in rows 26-31, columns 26-31 of 32x32`` (see ``chroma_stamp``), a value or a conjunction of values).
  A finding the probe cannot replay is never dropped unsaid: ``read_history`` lists it with the reason
  (``not_replayed`` in the release report);
* **generic**: a small set a backdoor often uses: rare tokens and a phrase for text, bright and
  checkerboard patch stamps in the corners of images, values beyond each numeric column's range.

For a trigger and a label ``L``, the *eligible* rows are the clean validation rows neither labelled nor
predicted ``L``; the attack success is the share of them predicted ``L`` once the trigger is stamped.
Each trigger has a *control* (the same edit with neutral content: a common word of the validation set,
a mid-gray patch in the same place, for a colour patch the same pixels with their colour taken out and
their luma kept, the column's median), and the probe reports the excess of the
trigger's success over its control's: a model that merely reacts to any edit is not a backdoor. A
history trigger is measured towards its recorded label; a generic one towards the label it moves most.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from dataward.domain.schema import ColumnKind, Schema
from dataward.gates.formatting import STAMPS, stamp_texts
from dataward.release.probe_ids import digest, row_ids

TEXT_TOKENS = ("cf", "mn", "bb", "tq")
TEXT_PHRASES = ("I watched this 3D movie",)
MAX_NUMERIC_COLUMNS = 8


@dataclass(frozen=True)
class Trigger:
    """One trigger to probe: ``kind`` ``text`` / ``style`` / ``patch`` / ``value``; ``spec`` what to stamp."""

    name: str
    kind: str
    origin: str  # "history" or "generic"
    columns: tuple[str, ...]
    spec: tuple[Any, ...]
    label: str | None = None
    found_in: tuple[str, ...] = ()
    replayed: str = ""
    """What the stamp is, when the name alone does not say it (a colour patch: which colour, where)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.name,
            "kind": self.kind,
            "origin": self.origin,
            "columns": list(self.columns),
            "label": self.label,
            "found_in": list(self.found_in),
            **({"replayed": self.replayed} if self.replayed else {}),
        }

    def identity(self) -> dict[str, Any]:
        """What is stamped, where and towards which label: the same for a trigger wherever it sits in the
        list and whichever contributions it was found in (``found_in`` grows as findings do), so that a
        probe row's id and its stamp do not change when other triggers come or go."""
        return {
            "name": self.name,
            "kind": self.kind,
            "columns": list(self.columns),
            "spec": self.spec,
            "label": self.label,
        }


@dataclass
class ProbeResult:
    """What stamping one trigger did."""

    trigger: Trigger
    label: str | None
    eligible: int
    flipped: int
    success: float
    control_success: float
    excess: float
    baseline_excess: float | None = None
    notes: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    """The trigger search's test and the trusted data's support (``dataward.release.search``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.trigger.to_dict(),
            "target": self.label,
            "eligible": self.eligible,
            "flipped": self.flipped,
            "attack_success": round(self.success, 4),
            "control_success": round(self.control_success, 4),
            "excess": round(self.excess, 4),
            "baseline_excess": None if self.baseline_excess is None else round(self.baseline_excess, 4),
            "notes": self.notes,
            **({"search": _rounded(self.evidence)} if self.evidence else {}),
        }


def _rounded(evidence: dict[str, Any]) -> dict[str, Any]:
    """Floats to three significant digits, in nested mappings too (each reference model's excess)."""
    return {
        k: float(f"{v:.3g}") if isinstance(v, float) else _rounded(v) if isinstance(v, dict) else v
        for k, v in evidence.items()
    }


# --- triggers from the data gates' reports -------------------------------------------------------

_PATCH = re.compile(r"(\d+) (bright|dark) pixels? in rows (\d+)-(\d+), columns (\d+)-(\d+) of (\d+)x(\d+)")
_PIXEL = re.compile(r"(bright|dark) pixel \((\d+), (\d+)\)")
_CHROMA_PATCH = re.compile(r"(\d+) ([a-z]+-leaning) pixels? in rows (\d+)-(\d+), columns (\d+)-(\d+) of (\d+)x(\d+)")

CHROMA_LEANS: dict[str, tuple[float, float]] = {
    "blue-leaning": (1.0, 0.0),
    "yellow-leaning": (-1.0, 0.0),
    "red-leaning": (0.0, 1.0),
    "magenta-leaning": (1.0, 1.0),
    "cyan-leaning": (1.0, -1.0),
    "orange-leaning": (-1.0, 1.0),
    "green-leaning": (-1.0, -1.0),
}
"""The way each colour word of the ``triggers`` detector (its ``CHROMA_WORDS`` and ``HUES``) leans in
(Cb, Cr), Pillow's YCbCr chroma planes: blue-leaning is Cb above its usual values, red-leaning Cr, and a
hue leans both ways at once (magenta: more blue and more red than its luma). ``green-leaning`` names both
a pixel whose red falls short of its luma and one that is also short of blue; a green (0, 160, 0) is both,
and it is stamped as both."""
_LT = re.compile(r"^(.+?) < (-?[\d.eE+-]+)$")
_GT = re.compile(r"^(.+?) > (-?[\d.eE+-]+)$")
_BIN = re.compile(r"^(-?[\d.eE+-]+) <= (.+?) < (-?[\d.eE+-]+)$")
_EQ = re.compile(r"^(.+?) = (.*)$")


def _value_spec(text: str, schema: Schema) -> tuple[str, Any] | None:
    """``(column, value to set)`` for one condition of a value trigger, or None when unreadable."""
    names = {c.name for c in schema.inputs}
    for pattern, make in (
        (_BIN, lambda m: (m.group(2), (float(m.group(1)) + float(m.group(3))) / 2)),
        (_LT, lambda m: (m.group(1), float(m.group(2)) - abs(float(m.group(2))) * 0.05 - 1e-6)),
        (_GT, lambda m: (m.group(1), float(m.group(2)) + abs(float(m.group(2))) * 0.05 + 1e-6)),
        (_EQ, lambda m: (m.group(1), m.group(2))),
    ):
        m = pattern.match(text.strip())
        if m:
            try:
                column, value = make(m)
            except ValueError:
                return None
            return (column, value) if column in names else None
    if text.endswith(" missing") and text[: -len(" missing")] in names:
        return text[: -len(" missing")], None
    return None


def history_triggers(findings: Iterable[tuple[str, dict[str, Any]]], schema: Schema) -> list[Trigger]:
    """Triggers from ``(where, evidence)`` pairs of the ``triggers`` detector's findings (``read_history``
    without the list of those it cannot replay)."""
    return read_history(findings, schema)[0]


def read_history(
    findings: Iterable[tuple[str, dict[str, Any]]], schema: Schema
) -> tuple[list[Trigger], list[dict[str, Any]]]:
    """Triggers from ``(where, evidence)`` pairs of the ``triggers`` detector's findings; one per
    (trigger, column, label), naming every contribution it was found in. And, for each finding the probe
    cannot replay, what it is, where it was found and why (``reason``); ``unprobed`` is true when the model
    reads the finding's column, so that the model was not probed for a trigger its data held (false when
    the column is none of the model's inputs: nothing to probe there)."""
    merged: dict[tuple[str, str, str], list[str]] = {}
    evidence: dict[tuple[str, str, str], dict[str, Any]] = {}
    for where, ev in findings:
        key = (str(ev.get("trigger")), str(ev.get("column")), str(ev.get("label")))
        merged.setdefault(key, []).append(where)
        evidence.setdefault(key, ev)
    out: list[Trigger] = []
    skipped: list[dict[str, Any]] = []
    by_name = {c.name: c for c in schema.inputs}
    for key, places in merged.items():
        ev = evidence[key]
        name, column, label = key
        kind = ev.get("kind")
        found_in = tuple(dict.fromkeys(places))
        col = by_name.get(column)
        found = _history_trigger(name, column, label, kind, col, ev, schema, found_in)
        if isinstance(found, Trigger):
            out.append(found)
            continue
        columns = [c.strip() for c in column.split(",")]
        skipped.append(
            {
                "trigger": name,
                "kind": kind,
                "column": column,
                "label": label,
                "found_in": list(found_in),
                "reason": found,
                "unprobed": any(c in by_name for c in columns),
            }
        )
    return out, skipped


def _history_trigger(
    name: str,
    column: str,
    label: str,
    kind: Any,
    col: Any,
    ev: dict[str, Any],
    schema: Schema,
    found_in: tuple[str, ...],
) -> Trigger | str:
    """The trigger to replay for one finding, or why there is none."""
    if kind in ("ngram", "style", "pixels") and col is None:
        return f"the model has no input column {column!r}"
    if kind == "ngram" and col.kind is ColumnKind.TEXT:
        return Trigger(name, "text", "history", (column,), (name,), label, found_in)
    if kind == "style" and col.kind is ColumnKind.TEXT:
        if name not in STAMPS:
            return f"no stamp writes the formatting {name!r}"
        return Trigger(f"formatting {name!r}", "style", "history", (column,), (name,), label, found_in)
    if kind == "pixels" and col.kind is ColumnKind.IMAGE:
        m = _PATCH.search(name)
        cells = [(t, int(r), int(c)) for t, r, c in _PIXEL.findall(" ".join(map(str, ev.get("related") or [])))]
        if m and cells:
            # The single pixels merged into the trigger: stamp exactly those, bright or dark.
            h, w = int(m.group(7)), int(m.group(8))
            spec = ("cells", h, w, tuple(sorted(set(cells))))
            return Trigger(name, "patch", "history", (column,), spec, label, found_in)
        if m:
            _, tone, r0, r1, c0, c1, h, w = m.groups()
            spec = ("solid", tone, *_fractions(r0, r1, c0, c1, h, w))
            return Trigger(name, "patch", "history", (column,), spec, label, found_in)
        m = _CHROMA_PATCH.search(name)
        if m:
            count, hue, r0, r1, c0, c1, h, w = m.groups()
            lean = CHROMA_LEANS.get(hue)
            if lean is None:
                return f"no colour is known to lean {hue!r}"
            spec = ("chroma", lean, *_fractions(r0, r1, c0, c1, h, w))
            area = (int(r1) - int(r0) + 1) * (int(c1) - int(c0) + 1)
            replayed = (
                f"rows {r0}-{r1}, columns {c0}-{c1} of {h}x{w} ({area} pixels, {count} of them named) stamped "
                f"{hue}: each pixel's luma kept, its colour moved that way as far as RGB allows; control: the "
                "same pixels grey at their own luma"
            )
            return Trigger(name, "patch", "history", (column,), spec, label, found_in, replayed)
        return "the probe reads no patch in this name"
    if kind in ("value", "combination"):
        conditions = [_value_spec(part, schema) for part in name.split(" and ")]
        if conditions and all(c is not None for c in conditions):
            cols = tuple(c[0] for c in conditions if c is not None)
            return Trigger(name, "value", "history", cols, tuple(conditions), label, found_in)
        return "the probe reads no value of the model's inputs in this condition"
    what = getattr(getattr(col, "kind", None), "value", None)
    return f"the probe stamps no {kind!r} trigger on {what or 'this'} column {column!r}"


def _fractions(r0: str, r1: str, c0: str, c1: str, h: str, w: str) -> tuple[float, float, float, float]:
    """A patch's rows and columns of an ``h`` x ``w`` grid as fractions of the image's height and width."""
    return int(r0) / int(h), (int(r1) + 1) / int(h), int(c0) / int(w), (int(c1) + 1) / int(w)


def generic_triggers(schema: Schema, validation: pa.Table) -> list[Trigger]:
    """The generic set for this schema (see the module docstring)."""
    out: list[Trigger] = []
    texts = tuple(c.name for c in schema.of_kind(ColumnKind.TEXT))
    if texts:
        for token in (*TEXT_TOKENS, *TEXT_PHRASES):
            kind_word = "rare token" if " " not in token else "phrase"
            out.append(Trigger(f"{kind_word} {token!r}", "text", "generic", texts, (token,)))
    images = tuple(c.name for c in schema.of_kind(ColumnKind.IMAGE))
    if images:
        out.append(
            Trigger(
                "bright square, bottom-right corner",
                "patch",
                "generic",
                images,
                ("solid", "bright", 0.8125, 1.0, 0.8125, 1.0),
            )
        )
        out.append(
            Trigger(
                "checkerboard, bottom-right corner",
                "patch",
                "generic",
                images,
                ("checker", "bright", 0.8125, 1.0, 0.8125, 1.0),
            )
        )
        out.append(
            Trigger(
                "bright square, top-left corner",
                "patch",
                "generic",
                images,
                ("solid", "bright", 0.0, 0.1875, 0.0, 0.1875),
            )
        )
    for col in schema.of_kind(ColumnKind.NUMERIC)[:MAX_NUMERIC_COLUMNS]:
        values = np.asarray([v for v in validation.column(col.name).to_pylist() if v is not None], dtype=float)
        if values.size == 0:
            continue
        spread = float(values.max() - values.min()) or 1.0
        for side, value in (("above", float(values.max()) + spread), ("below", float(values.min()) - spread)):
            out.append(
                Trigger(
                    f"{col.name} {side} its range ({value:.4g})", "value", "generic", (col.name,), ((col.name, value),)
                )
            )
    return out


# --- stamping -----------------------------------------------------------------------------------


def _insert(text: str, token: str, rng: np.random.Generator) -> str:
    words = (text or "").split()
    words.insert(int(rng.integers(0, len(words) + 1)), token)
    return " ".join(words)


_LUMA = np.array([0.299, 0.587, 0.114])
"""Pillow's (JPEG's) luma weights of R, G and B."""
_CHROMA_RGB = np.array([[0.0, -0.344136, 1.772], [1.402, -0.714136, 0.0]])
"""What one step of Cb (first row) and of Cr (second) adds to R, G and B at the same luma (Pillow's YCbCr)."""


def chroma_stamp(pixels: np.ndarray, lean: tuple[float, float], control: bool) -> np.ndarray:
    """``pixels`` (H x W x 3, uint8) in a colour that leans ``lean`` (a way in Cb and Cr), each pixel's
    luma kept: its RGB moved along that way, which adds no luma, as far as every channel stays in 0-255
    (and Cb, Cr in theirs). A colour patch's carriers are new in chroma only (magenta is grey 105 in luma):
    the stamp changes what they changed and nothing else, so a model that reacts to it reacts to the colour,
    not to a brighter or darker patch. ``control``: the same pixels grey at their own luma."""
    rgb = pixels.astype(np.float64)
    luma = rgb @ _LUMA
    if control:
        out = np.repeat(luma[..., None], 3, axis=-1)
    else:
        way = np.asarray(lean, dtype=np.float64)
        way /= np.abs(way).max()
        step = way @ _CHROMA_RGB  # RGB change per unit of the way; zero luma (0.299 * 1.402 = 0.587 * 0.714...)
        with np.errstate(divide="ignore"):
            room = np.where(
                step > 0, (255.0 - luma[..., None]) / step, np.where(step < 0, -luma[..., None] / step, np.inf)
            )
        reach = np.minimum(room.min(axis=-1), 127.0)  # Cb and Cr stay within 1-255
        out = luma[..., None] + reach[..., None] * step
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _patch(data: bytes, spec: tuple[Any, ...], control: bool) -> bytes:
    from dataward.gates.features.image import array_to_png, decode_image

    decoded = decode_image(bytes(data))
    if spec[0] == "chroma":
        # A colour needs three channels: a grayscale image is stamped (and its control written) in RGB.
        _, lean, r0, r1, c0, c1 = spec
        img = np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()
        rows, cols = _span(r0, r1, img.shape[0]), _span(c0, c1, img.shape[1])
        img[rows, cols] = chroma_stamp(img[rows, cols], lean, control)
        return array_to_png(img)
    # Keep a grayscale image grayscale: a model reads the stamped image as it reads the clean one.
    img = np.asarray(
        decoded.convert("L" if decoded.mode in ("L", "1", "P", "I", "I;16") else "RGB"), dtype=np.uint8
    ).copy()
    h, w = img.shape[:2]
    if spec[0] == "cells":
        _, grid_h, grid_w, cells = spec
        for tone, r, c in cells:
            rows = slice(int(np.floor(r * h / grid_h)), max(int(np.ceil((r + 1) * h / grid_h)), 1))
            cols = slice(int(np.floor(c * w / grid_w)), max(int(np.ceil((c + 1) * w / grid_w)), 1))
            img[rows, cols] = 128 if control else 255 if tone == "bright" else 0
        return array_to_png(img)
    style, tone, r0, r1, c0, c1 = spec
    rows, cols = _span(r0, r1, h), _span(c0, c1, w)
    if control:
        img[rows, cols] = 128
    elif style == "checker":
        block = img[rows, cols]
        yy, xx = np.indices(block.shape[:2])
        board = np.where((yy + xx) % 2 == 0, 255, 0).astype(np.uint8)
        block[:] = board if block.ndim == 2 else board[..., None]
    else:
        img[rows, cols] = 255 if tone == "bright" else 0
    return array_to_png(img)


def _span(start: float, end: float, size: int) -> slice:
    """The pixels from fraction ``start`` to ``end`` of ``size``, at least one."""
    first = int(np.floor(start * size))
    return slice(first, max(int(np.ceil(end * size)), first + 1))


def stamp(
    trigger: Trigger,
    table: pa.Table,
    schema: Schema,
    *,
    control: bool,
    seed: int | Sequence[int],
    neutral: dict[str, Any],
) -> pa.Table:
    """``table`` with ``trigger`` (or, ``control``, its neutral counterpart) stamped on every row."""
    rng = np.random.default_rng(seed)
    out = table
    for i, column in enumerate(trigger.columns):
        values = out.column(column).to_pylist()
        if trigger.kind == "text":
            token = neutral["text"] if control else trigger.spec[0]
            new = [_insert(v, token, rng) for v in values]
        elif trigger.kind == "style":
            # The control leaves the text as it is: a formatting edit has no neutral content to put
            # instead, and eligible rows are those the model does not already read as the label.
            new = values if control else stamp_texts(trigger.spec[0], values)
        elif trigger.kind == "patch":
            new = [None if v is None else _patch(v, trigger.spec, control) for v in values]
        else:
            _, value = trigger.spec[i]
            value = neutral.get(column, value) if control else value
            new = [value] * len(values)
        idx = out.column_names.index(column)
        out = out.set_column(idx, out.schema.field(column), pa.array(new, type=out.schema.field(column).type))
    return out


def neutral_values(schema: Schema, validation: pa.Table) -> dict[str, Any]:
    """The controls' neutral content: the validation set's most common longer word, each column's median."""
    out: dict[str, Any] = {}
    words: Counter[str] = Counter()
    for col in schema.of_kind(ColumnKind.TEXT):
        for text in validation.column(col.name).to_pylist():
            words.update(w for w in (text or "").lower().split() if len(w) > 3 and w.isalpha())
    out["text"] = words.most_common(1)[0][0] if words else "the"
    for col in schema.of_kind(ColumnKind.NUMERIC):
        values = [v for v in validation.column(col.name).to_pylist() if v is not None]
        if values:
            out[col.name] = float(np.median(values))
    for col in schema.of_kind(ColumnKind.CATEGORICAL):
        values = [v for v in validation.column(col.name).to_pylist() if v is not None]
        if values:
            out[col.name] = Counter(values).most_common(1)[0][0]
    return out


def flip_rate(truth: Sequence[str], clean: Sequence[str], stamped: Sequence[str], label: str) -> tuple[int, int]:
    """(eligible rows, rows flipped to ``label``): eligible rows are neither labelled nor predicted ``label``."""
    eligible = [i for i, (t, c) in enumerate(zip(truth, clean, strict=True)) if t != label and c != label]
    return len(eligible), sum(1 for i in eligible if stamped[i] == label)


def measure(
    trigger: Trigger,
    truth: Sequence[str],
    clean: Sequence[str],
    stamped: Sequence[str],
    control: Sequence[str],
    labels: Sequence[str],
) -> ProbeResult:
    """The attack success of one trigger towards its label (a generic one: the label it moves most)."""
    candidates = [trigger.label] if trigger.label is not None else list(labels)
    best: ProbeResult | None = None
    for label in candidates:
        n, k = flip_rate(truth, clean, stamped, label)
        _, kc = flip_rate(truth, clean, control, label)
        success = k / n if n else 0.0
        control_success = kc / n if n else 0.0
        result = ProbeResult(trigger, label, n, k, success, control_success, success - control_success)
        if n == 0:
            result.notes.append(f"no clean validation row is outside label {label!r}: nothing to measure")
        if best is None or result.excess > best.excess:
            best = result
    assert best is not None
    return best


def probe_rows(
    triggers: Sequence[Trigger], validation: pa.Table, schema: Schema, *, seed: int = 0
) -> tuple[pa.Table, list[str], list[tuple[int, int, int]]]:
    """The probe set: the clean validation rows, then for each trigger its stamped rows and its control
    rows. Returns the table, a ``probe_id`` per row (``clean:ID:DIGEST``, ``trigger:ID:DIGEST``,
    ``control:ID:DIGEST``, the digest naming the row's inputs and the trigger: see
    ``dataward.release.probe_ids``) and, per trigger, the offsets of its stamped and control blocks and
    the block length."""
    neutral = neutral_values(schema, validation)
    ids = [str(r) for r in validation.column("record_id").to_pylist()]
    inputs = [c.name for c in schema.inputs]
    n = validation.num_rows
    blocks = [validation]
    probe_ids = row_ids("clean", ids, validation.select(inputs))
    spans = []
    for trigger in triggers:
        start = len(probe_ids)
        rng_seed = stamp_seed(seed, trigger)
        for kind, control in (("trigger", False), ("control", True)):
            block = stamp(trigger, validation, schema, control=control, seed=rng_seed, neutral=neutral)
            blocks.append(block)
            probe_ids += row_ids(kind, ids, block.select(inputs), trigger=trigger.identity())
        spans.append((start, start + n, n))
    return pa.concat_tables(blocks), probe_ids, spans


def stamp_seed(seed: int, trigger: Trigger) -> list[int]:
    """The random state a trigger's stamp is drawn from (where a token goes in a text): ``seed`` with a
    number taken from the trigger itself, not its place in the list, so that a trigger's rows (and their
    ids) are the same when others are added or dropped and an answer file still answers them."""
    return [seed, int(digest(trigger.identity())[:8], 16)]


def run_probe(
    triggers: Sequence[Trigger],
    validation: pa.Table,
    schema: Schema,
    predict: Callable[[pa.Table, Sequence[str]], list[str]],
    *,
    seed: int = 0,
) -> tuple[list[str], list[ProbeResult]]:
    """Predictions on the clean validation rows and one ``ProbeResult`` per trigger, from one call of
    ``predict`` on the whole probe set."""
    table, probe_ids, spans = probe_rows(triggers, validation, schema, seed=seed)
    predictions = predict(table, probe_ids)
    if len(predictions) != table.num_rows:
        raise ValueError(f"{len(predictions)} predictions for {table.num_rows} probe rows")
    n = validation.num_rows
    clean = predictions[:n]
    truth = [str(v) for v in validation.column(schema.label).to_pylist()]
    labels = sorted(set(truth))
    results = [
        measure(t, truth, clean, predictions[s : s + n], predictions[c : c + n], labels)
        for t, (s, c, n) in zip(triggers, spans, strict=True)
    ]
    return clean, results
