"""Canary self-test: plant known poisons in copies of a clean contribution and see what the gate catches.

``selftest(baseline, clean_contribution, schema, validation, policy)`` runs the configured gate
(``dataward.gates.scanning``) three times:

* on the clean contribution as given: its flag rate is the gate's false-positive rate on this data,
  and its verdict should be ``pass``;
* on a copy with **label flips**: a share of the records get another class's label;
* on a copy with a **trigger**: a share of the records not of a target class get a trigger and the
  target label (a dirty-label backdoor). The trigger suits the data: a rare token inserted in the
  first text column; else a 3x3 white patch in the bottom-right corner of the first image column
  (decoded and re-encoded as PNG with Pillow) or of a square grid of numeric pixel columns; else a
  rare value combination of tabular columns
  (two numeric columns set to their 95th / 5th baseline percentiles, or the rarest baseline
  categories); else, for embeddings only, a fixed offset along one random direction.

For each canary it reports the share of planted records the gate flags (recall), whether the
contribution as a whole was caught (verdict ``review`` or ``block``), the flag rate among the copy's
untouched records, and which detectors caught the planted records. ``SelftestReport.to_dict()``::

    {"records": n, "seed": 0, "config_hash": "b3:...",
     "clean": {"verdict": "pass", "flagged": 3, "false_positive_rate": 0.006, "reasons": [...],
               "sources": []},
     "canaries": [{"name": "label_flip", "description": "...", "planted": 25, "rows": [...],
                   "caught": 24, "recall": 0.96, "detected": true, "verdict": "block",
                   "false_positive_rate": 0.008, "flagged_by": {"label_consistency": 24},
                   "trigger_named": null, "reasons": [...], "new_sources": ["label_consistency"],
                   "attempts": [{"planted": 25, "verdict": "block", "detected": true, "recall": 0.96,
                                 "new_sources": ["label_consistency"], "seen_by": ["label_consistency"]}],
                   "detection_floor": 25}, ...],
     "passed": true}

``passed`` is true when every canary contribution was detected and the clean one was not blocked. A
canary is detected when it moved the verdict: a block; a review where the clean copy passed; or a review
that a detector of poisoning (or the count of flagged records, when a planted record is among them) gave
which found nothing in the clean copy (``new_sources``, from ``gate.verdict_sources``). A clean copy
reviewed for a cluster of its own does not hide a canary reviewed for its flipped labels; where the clean
copy was reviewed, a canary reviewed only for what it was reviewed for too, or only for a difference
(``drift``), is not detected.
A missed canary is planted again at 2x and 4x its count (at most half the batch): ``attempts`` lists
each run and ``detection_floor`` the fewest planted records the gate caught, so a dataset whose
labels are hard to predict says from which share of flipped labels on its gate sees them.

Instruction, chat and preference datasets have no label to flip: their canaries (a trigger phrase
teaching a link, one teaching a hostile answer, swapped preference pairs) are planted by
``dataward.gates.selftest_llm`` and reported in the same shape.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from dataward.domain.errors import InputError
from dataward.domain.records import canonical_label
from dataward.domain.schema import RECORD_ID, ColumnKind, Schema
from dataward.domain.wording import a_or_an
from dataward.gates import selftest_llm
from dataward.gates.base import Evidence, registered
from dataward.gates.gate import FLAGGED_RECORDS, verdict_sources
from dataward.gates.policy import GatePolicy
from dataward.gates.report import GateReport
from dataward.gates.scanning import scan

PATCH = 3
MIN_CANARIES = 5


@dataclass
class CanaryResult:
    """What the gate made of one planted poison."""

    name: str
    description: str
    planted_positions: list[int]
    rows: list[int]
    caught: int
    verdict: str
    false_positive_rate: float
    flagged_by: dict[str, int]
    reasons: list[str]
    trigger_named: bool | None = None
    clean_verdict: str = "pass"
    """The verdict on the same batch without the canary."""
    sources: list[str] = field(default_factory=list)
    """What gave this copy's verdict a reason that can be evidence of poisoning (``gate.verdict_sources``:
    the ``POISONING`` detectors, and the count of flagged records)."""
    clean_sources: list[str] = field(default_factory=list)
    """The same for the batch without the canary."""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """Every planting of this canary: the rate asked for first, then larger ones while it was missed."""
    detection_floor: int | None = None
    """The fewest planted records at which the gate caught this canary (``None``: not at any tried)."""

    @property
    def planted(self) -> int:
        return len(self.planted_positions)

    @property
    def recall(self) -> float:
        return self.caught / self.planted if self.planted else 0.0

    @property
    def new_sources(self) -> list[str]:
        """What found evidence of poisoning in this copy and nothing in the clean one. A difference from the
        baseline (``drift``: relabelling moves the class shares) says the batch changed, not that the gate
        saw flipped labels; more flagged records than chance, none of them planted, is chance too."""
        new = set(self.sources) - set(self.clean_sources)
        if not self.caught:
            new.discard(FLAGGED_RECORDS)
        return sorted(new)

    @property
    def seen_by(self) -> list[str]:
        """What caught the canary: its new sources, or every source of a block the clean copy shared."""
        if self.new_sources or self.verdict != "block":
            return self.new_sources
        return sorted(self.sources)

    @property
    def detected(self) -> bool:
        """The canary moved the verdict: a block; or a review where the clean copy passed; or a review that a
        detector of poisoning gave which found nothing in the clean copy (``new_sources``: the clean copy
        reviewed for a cluster of its own, this one for the flipped labels). Where the clean copy was
        reviewed, a review only for what it was reviewed for too (a source unlike the rest of the data),
        or only for a difference (``drift``), says nothing about the canary."""
        if self.verdict == "block":
            return True
        return self.verdict == "review" and (self.clean_verdict == "pass" or bool(self.new_sources))

    def attempt(self) -> dict[str, Any]:
        """This run in one line of ``attempts``."""
        return {
            "planted": self.planted,
            "verdict": self.verdict,
            "detected": self.detected,
            "recall": self.recall,
            "new_sources": self.new_sources,
            "seen_by": self.seen_by if self.detected else [],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "planted": self.planted,
            "rows": list(self.rows),
            "caught": self.caught,
            "recall": self.recall,
            "detected": self.detected,
            "verdict": self.verdict,
            "false_positive_rate": self.false_positive_rate,
            "flagged_by": dict(self.flagged_by),
            "trigger_named": self.trigger_named,
            "reasons": list(self.reasons),
            "new_sources": self.new_sources,
            "attempts": [dict(a) for a in self.attempts],
            "detection_floor": self.detection_floor,
        }


@dataclass
class SelftestReport:
    """The clean run and every canary run of a self-test."""

    records: int
    seed: int
    config_hash: str
    clean_verdict: str
    clean_flagged: int
    clean_reasons: list[str]
    canaries: list[CanaryResult] = field(default_factory=list)
    clean_sources: list[str] = field(default_factory=list)
    """What gave the clean copy's verdict a reason that can be evidence of poisoning (``gate.verdict_sources``,
    the ``POISONING`` detectors and the count of flagged records)."""

    @property
    def clean_false_positive_rate(self) -> float:
        return self.clean_flagged / self.records if self.records else 0.0

    @property
    def passed(self) -> bool:
        return self.clean_verdict != "block" and all(c.detected for c in self.canaries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "seed": self.seed,
            "config_hash": self.config_hash,
            "clean": {
                "verdict": self.clean_verdict,
                "flagged": self.clean_flagged,
                "false_positive_rate": self.clean_false_positive_rate,
                "reasons": list(self.clean_reasons),
                "sources": list(self.clean_sources),
            },
            "canaries": [c.to_dict() for c in self.canaries],
            "passed": self.passed,
        }


def selftest(
    baseline: Any,
    clean_contribution: Any,
    schema: Schema | Mapping[str, Any],
    validation: Any = None,
    policy: GatePolicy | Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    rate: float = 0.05,
) -> SelftestReport:
    """Plant label flips and a trigger in copies of ``clean_contribution`` and report what ``scan`` catches.

    ``rate`` is the share of the contribution poisoned in each canary copy (at least 5 records, at most
    half of the contribution). Raises ``InputError`` when the contribution is too small or has a
    single class.
    """
    schema = schema if isinstance(schema, Schema) else Schema.from_dict(schema)
    policy = GatePolicy.coerce(policy)
    if not 0.0 < rate <= 0.5:
        raise InputError(f"the canary rate must be in (0, 0.5], got {rate!r}")
    if schema.is_llm:
        return _llm_selftest(baseline, clean_contribution, schema, validation, policy, seed=seed, rate=rate)
    clean = _frame(clean_contribution, "clean contribution", schema)
    base = _frame(baseline, "baseline", schema) if baseline is not None else None
    n = len(clean)
    if n < 2 * MIN_CANARIES:
        raise InputError(
            f"the clean contribution has {n} records; a self-test needs at least {2 * MIN_CANARIES}",
            hint="use a larger clean sample of the dataset",
        )
    labels = clean[schema.label].map(canonical_label)
    classes = sorted(set(labels) | (set(base[schema.label].map(canonical_label)) if base is not None else set()))
    if len(classes) < 2:
        raise InputError("a self-test needs at least two classes to flip labels between")
    rng = np.random.default_rng(seed)
    count = int(min(n // 2, max(MIN_CANARIES, round(rate * n))))

    out = _clean_run(base, clean, schema, validation, policy, seed)

    def label_flip(planted: int, rng: np.random.Generator) -> CanaryResult:
        flipped, positions = _label_flips(clean, labels, classes, planted, schema, rng)
        report = scan(base, flipped, schema, validation, policy)
        description = f"{len(positions)} labels changed to another class"
        return _result("label_flip", description, positions, report, out, policy)

    target = _target(labels)

    def trigger(planted: int, rng: np.random.Generator) -> CanaryResult:
        poisoned, positions, description, token = _trigger(clean, base, labels, target, planted, schema, rng)
        report = scan(base, poisoned, schema, validation, policy)
        result = _result("trigger", description, positions, report, out, policy)
        result.trigger_named = _trigger_named(report, target, result.rows, positions, token)
        return result

    for plant in (label_flip, trigger):
        out.canaries.append(_escalated(plant, count, n, rng))
    return out


def held_out_split(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Where a ward's self-test takes its clean copy from its training version of ``rows`` records: a seeded
    fifth, at least 50 and at most 500 records, and the trusted rest; each as sorted positions."""
    cut = max(50, min(500, rows // 5))
    order = np.random.default_rng(seed).permutation(rows)
    return np.sort(order[:cut]), np.sort(order[cut:])


ESCALATION = (2, 4)
"""When a canary is missed, it is planted again at these multiples of the rate (at most half the batch),
so that the report says from which share of poisoned records on this dataset's gate catches it."""


def _escalated(plant: Any, count: int, n: int, rng: np.random.Generator) -> CanaryResult:
    """The canary at ``count`` records; if missed, again at larger counts until caught, the detection
    floor recorded. The result describes the first run (the rate asked for); ``attempts`` lists all."""
    first = plant(count, rng)
    first.attempts.append(first.attempt())
    if not first.detected:
        for factor in ESCALATION:
            larger = min(n // 2, count * factor)
            if larger <= first.attempts[-1]["planted"]:
                break
            again = plant(larger, rng)
            first.attempts.append(again.attempt())
            if again.detected:
                break
    caught = [a["planted"] for a in first.attempts if a["detected"]]
    first.detection_floor = min(caught) if caught else None
    return first


def _llm_selftest(
    baseline: Any,
    clean_contribution: Any,
    schema: Schema,
    validation: Any,
    policy: GatePolicy,
    *,
    seed: int,
    rate: float,
) -> SelftestReport:
    """The self-test of a language-model dataset: its own canaries, the same report."""
    clean = selftest_llm.llm_frame(clean_contribution, "clean contribution", schema)
    base = selftest_llm.llm_frame(baseline, "baseline", schema) if baseline is not None else None
    n = len(clean)
    if n < 2 * selftest_llm.MIN_LLM_CANARIES:
        raise InputError(
            f"the clean contribution has {n} records; a self-test of {a_or_an(schema.kind.value)} dataset needs at "
            f"least {2 * selftest_llm.MIN_LLM_CANARIES}",
            hint="use a larger clean sample of the dataset",
        )
    out = _clean_run(base, clean, schema, validation, policy, seed)
    rng = np.random.default_rng(seed)
    for name, description, positions, report, phrase in selftest_llm.run_canaries(
        base, clean, schema, validation, policy, rate, rng
    ):
        result = _result(name, description, positions, report, out, policy)
        result.trigger_named = selftest_llm.trigger_named(report, result.rows, positions, phrase)
        out.canaries.append(result)
    return out


# --- canaries -----------------------------------------------------------------------------------


def _label_flips(
    clean: pd.DataFrame, labels: pd.Series, classes: list[str], count: int, schema: Schema, rng: np.random.Generator
) -> tuple[pd.DataFrame, list[int]]:
    copy = _copy(clean)
    positions = sorted(rng.choice(len(copy), count, replace=False).tolist())
    new_labels = labels.to_numpy(dtype=object).copy()
    for pos in positions:
        others = [c for c in classes if c != new_labels[pos]]
        new_labels[pos] = others[int(rng.integers(len(others)))]
    copy[schema.label] = new_labels
    return copy, positions


def _target(labels: pd.Series) -> str:
    """The most common class: a backdoor into it is the hardest to tell from ordinary records."""
    counts = labels.value_counts()
    return str(sorted(counts[counts == counts.max()].index)[0])


def _trigger(
    clean: pd.DataFrame,
    base: pd.DataFrame | None,
    labels: pd.Series,
    target: str,
    count: int,
    schema: Schema,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, list[int], str, str | None]:
    copy = _copy(clean)
    candidates = np.flatnonzero(labels.to_numpy(dtype=object) != target)
    count = min(count, candidates.size)
    positions = sorted(rng.choice(candidates, count, replace=False).tolist())
    reference = base if base is not None and len(base) else clean
    text, image = schema.of_kind(ColumnKind.TEXT), schema.of_kind(ColumnKind.IMAGE)
    if text:
        column = text[0].name
        token = _rare_token(pd.concat([reference[column], clean[column]]), rng)
        values = copy[column].to_numpy(dtype=object).copy()
        for pos in positions:
            words = str(values[pos] or "").split()
            at = int(rng.integers(len(words) + 1))
            values[pos] = " ".join([*words[:at], token, *words[at:]])
        copy[column] = values
        description = f"rare token {token!r} inserted in {column!r}, relabelled {target!r}"
        trigger: str | None = token
    elif image:
        column = image[0].name
        values = copy[column].to_numpy(dtype=object).copy()
        for pos in positions:
            values[pos] = stamp_patch(values[pos], row=pos + 1)
        copy[column] = values
        description = f"{PATCH}x{PATCH} white patch in the bottom-right corner of {column!r}, relabelled {target!r}"
        trigger = None
    else:
        description = _tabular_trigger(copy, reference, positions, schema, rng)
        description += f", relabelled {target!r}"
        trigger = None
    values = copy[schema.label].to_numpy(dtype=object).copy()
    values[positions] = target
    copy[schema.label] = values
    return copy, positions, description, trigger


def _rare_token(texts: pd.Series, rng: np.random.Generator) -> str:
    vocabulary = {w for t in texts.dropna().astype(str) for w in t.lower().split()}
    while True:
        token = "zq" + "".join(rng.choice(list("bcdfghjklmnpqrstvwxz"), 4))
        if token not in vocabulary:
            return token


def stamp_patch(data: Any, *, row: int | None = None, size: int = PATCH) -> bytes:
    """PNG bytes of the image with a ``size`` x ``size`` white square in its bottom-right corner."""
    try:
        img = Image.open(io.BytesIO(bytes(data)))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, TypeError) as exc:
        where = f" in row {row}" if row is not None else ""
        raise InputError(f"the image{where} cannot be decoded: {exc}") from exc
    if img.mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGB")
    pixels = np.array(img)
    white = {"L": 255, "RGB": (255, 255, 255), "RGBA": (255, 255, 255, 255)}[img.mode]
    pixels[-size:, -size:] = white
    buf = io.BytesIO()
    Image.fromarray(pixels, mode=img.mode).save(buf, format="PNG")
    return buf.getvalue()


def _tabular_trigger(
    copy: pd.DataFrame, reference: pd.DataFrame, positions: list[int], schema: Schema, rng: np.random.Generator
) -> str:
    grid = _pixel_grid(schema)
    if grid:
        return _stamp_grid(copy, reference, positions, grid)
    numeric = [
        c.name
        for c in schema.of_kind(ColumnKind.NUMERIC)
        if pd.to_numeric(reference[c.name], errors="coerce").std() > 0
    ]
    categorical = [c.name for c in schema.of_kind(ColumnKind.CATEGORICAL)]
    parts = []
    if len(numeric) >= 2:
        first, second = (numeric[i] for i in sorted(rng.choice(len(numeric), 2, replace=False)))
        high = float(pd.to_numeric(reference[first], errors="coerce").quantile(0.95))
        low = float(pd.to_numeric(reference[second], errors="coerce").quantile(0.05))
        _set(copy, first, positions, high)
        _set(copy, second, positions, low)
        parts = [f"{first} = {high:.4g}", f"{second} = {low:.4g}"]
    else:
        for name in numeric:
            value = float(pd.to_numeric(reference[name], errors="coerce").quantile(0.99))
            _set(copy, name, positions, value)
            parts.append(f"{name} = {value:.4g}")
        for name in categorical[: 2 - len(parts)]:
            counts = reference[name].dropna().astype(str).value_counts()
            value = str(counts.index[-1]) if len(counts) else "canary"
            _set(copy, name, positions, value)
            parts.append(f"{name} = {value}")
    if parts:
        return "rare value combination " + " and ".join(parts)
    embeddings = schema.of_kind(ColumnKind.EMBEDDING)
    if not embeddings:
        raise InputError("the schema has no column a trigger can be planted in")
    column = embeddings[0].name
    vectors = np.stack([np.asarray(v, dtype=np.float32) for v in copy[column]])
    direction = rng.normal(size=vectors.shape[1]).astype(np.float32)
    direction /= np.linalg.norm(direction)
    shift = 3.0 * float(np.std(vectors @ direction)) + 1e-3
    values = copy[column].to_numpy(dtype=object).copy()
    for pos in positions:
        values[pos] = (vectors[pos] + shift * direction).tolist()
    copy[column] = values
    return f"offset of {shift:.3g} along a fixed direction of {column!r}"


def _pixel_grid(schema: Schema) -> list[str] | None:
    """The columns of a square pixel grid (e.g. digits' 64 columns), when every input is numeric."""
    numeric = [c.name for c in schema.of_kind(ColumnKind.NUMERIC)]
    side = round(len(numeric) ** 0.5)
    if len(numeric) != len(schema.inputs) or side < 4 or side * side != len(numeric):
        return None
    return numeric


def _stamp_grid(copy: pd.DataFrame, reference: pd.DataFrame, positions: list[int], grid: list[str]) -> str:
    """A white patch on pixel columns: the bottom-right corner set to the brightest baseline value."""
    side = round(len(grid) ** 0.5)
    white = float(np.nanmax(reference[grid].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)))
    for r in range(side - PATCH, side):
        for c in range(side - PATCH, side):
            _set(copy, grid[r * side + c], positions, white)
    return f"{PATCH}x{PATCH} patch of value {white:g} in the bottom-right corner of the {side}x{side} pixel columns"


def _set(frame: pd.DataFrame, column: str, positions: list[int], value: Any) -> None:
    values = frame[column].to_numpy(dtype=object).copy()
    values[positions] = value
    frame[column] = values


# --- results ------------------------------------------------------------------------------------


def _clean_run(
    base: pd.DataFrame | None,
    clean: pd.DataFrame,
    schema: Schema,
    validation: Any,
    policy: GatePolicy,
    seed: int,
) -> SelftestReport:
    """The gate on the clean batch as given: the report every canary is then compared with."""
    report = scan(base, clean, schema, validation, policy)
    return SelftestReport(
        records=len(clean),
        seed=seed,
        config_hash=report.config_hash,
        clean_verdict=report.verdict,
        clean_flagged=int(np.sum(report.records.flagged_at_alpha)),
        clean_reasons=list(report.reasons),
        clean_sources=_sources(report, policy),
    )


def _sources(report: GateReport, policy: GatePolicy) -> list[str]:
    """What gave the report's verdict a reason that can be evidence of poisoning (not a ``DIFFERENCE``
    detector's: a clean copy reviewed for drift does not hide a canary that ``label_consistency`` sees,
    and a canary reviewed only for drift was not seen as poisoning)."""
    available = registered()
    return sorted(
        source
        for source in verdict_sources(report.results, report.records.flagged_at_alpha, policy)
        if source == FLAGGED_RECORDS or available[source].evidence is Evidence.POISONING
    )


def _result(
    name: str, description: str, positions: list[int], report: GateReport, clean: SelftestReport, policy: GatePolicy
) -> CanaryResult:
    # Record recall and the false-positive rate count the flags at alpha, as the verdict does: the rate
    # the verdict works with, not the review queue's (a subset of them, beside records queued on a rule).
    flagged = report.records.flagged_at_alpha
    planted = np.zeros(flagged.shape[0], bool)
    planted[positions] = True
    untouched = int((~planted).sum())
    flagged_by = {
        detector: int(np.sum(np.asarray(flags, dtype=bool) & planted))
        for detector, flags in report.records.detector_flags.items()
    }
    return CanaryResult(
        name=name,
        description=description,
        planted_positions=list(positions),
        rows=[int(report.records.rows[p]) for p in positions],
        caught=int(np.sum(flagged & planted)),
        verdict=report.verdict,
        false_positive_rate=float(np.sum(flagged & ~planted) / untouched) if untouched else 0.0,
        flagged_by={k: v for k, v in flagged_by.items() if v},
        reasons=list(report.reasons),
        clean_verdict=clean.clean_verdict,
        sources=_sources(report, policy),
        clean_sources=list(clean.clean_sources),
    )


def _trigger_named(report: GateReport, target: str, rows: list[int], positions: list[int], token: str | None) -> bool:
    """Did the triggers detector report a trigger for the target label on most planted rows?

    Evidence rows are row numbers when the gate knows them, else 1-based positions: both are accepted.
    """
    planted = set(rows)
    by_position = {p + 1 for p in positions}
    for finding in report.findings:
        evidence = finding.get("evidence") or {}
        if finding.get("detector") != "triggers" or evidence.get("label") != target:
            continue
        reported = {int(r) for r in evidence.get("rows") or []}
        hit = max(planted & reported, by_position & reported, key=len)
        if len(hit) >= 0.5 * len(planted) and (token is None or token in str(evidence.get("trigger", "")).split()):
            return True
    return False


# --- inputs -------------------------------------------------------------------------------------


def _frame(data: Any, what: str, schema: Schema) -> pd.DataFrame:
    if isinstance(data, pa.Table):
        frame = data.to_pandas()
    elif isinstance(data, pd.DataFrame):
        frame = data.copy()
    else:
        raise InputError(f"the {what} must be a pandas DataFrame or a pyarrow Table, not {type(data).__name__}")
    missing = [c for c in schema.columns if c not in frame.columns]
    if missing:
        raise InputError(f"the {what} has no column {missing[0]!r}", hint=f"expected columns: {schema.columns}")
    return frame.reset_index(drop=True)


def _copy(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose record ids will be recomputed: planted records are new content."""
    copy = frame.copy()
    if RECORD_ID in copy.columns:
        copy = copy.drop(columns=[RECORD_ID])
    return copy
