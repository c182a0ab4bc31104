"""A model-side trigger search for tabular models: backdoors the data gates did not name.

When the data gate named no trigger there is nothing to replay, so the release gate searches the model
itself. For each numeric input column, and then for pairs of the columns the model is most sensitive
to, it sets the column(s) to a rare value drawn from the trusted baseline's tails (its
``LOW_QUANTILE``-th and ``HIGH_QUANTILE``-th percentiles) on every clean validation row, and counts the
rows of other labels whose prediction flips to one label ``L``.

* **Control**: the same rows with the same column(s) set to an ordinary joint value instead, copied
  from a trusted row whose values of those columns all lie between their quartiles (a different row
  for each validation row): the same edit, with neutral content.
* **Test**: on the eligible rows (neither labelled nor predicted ``L``), an exact one-sided McNemar
  test of the trigger's flips to ``L`` against the control's (the rows flipped by one and not the
  other), for every candidate and label; the p-values are adjusted with Holm's method over all of
  them, so the chance of naming any trigger on a model without one stays under ``alpha``.
* **Explained by the data**: a flip is not a backdoor when the trusted data show the same thing. The
  trusted rows with the candidate's values or beyond (each column at or above a high value, at or
  below a low one) are counted: when there are at least ``MIN_SUPPORT`` of them and most are
  labelled ``L``, the flip follows the data (a large radius means malignant) and is reported as
  explained. A combination the trusted data hardly hold (a large radius with a small perimeter), or
  whose rows are mostly of another label, does not explain a model turning it into ``L``.

The release gate blocks on a significant, unexplained candidate whose excess over its control
reaches ``probe_block`` and reviews at ``probe_review`` (``dataward.release.gate``). Limits: the
search sees what a pair of tail values does; a trigger of three or more columns, of values inside the
quartiles, or of categorical columns is not searched; the trusted baseline must not itself hold the
poison, or the combination is "explained" by the poisoned rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from dataward.domain.schema import ColumnKind, Schema
from dataward.release.probe import ProbeResult, Trigger

LOW_QUANTILE = 0.05
HIGH_QUANTILE = 0.95
TOP_COLUMNS = 6
"""Pairs are searched among this many columns, those whose tail values change the most predictions."""
ALPHA = 0.01
"""Family-wise error rate of the search (Holm over every candidate and label)."""
MIN_SUPPORT = 5
"""Trusted rows needed before a flip can count as explained by the data."""
MAX_ROWS = 400
"""Validation rows the search stamps (a seeded sample beyond this)."""
MAX_REFERENCE_ROWS = 20_000
"""Trusted rows the tails and the reference model are taken from (a seeded sample beyond this)."""
MAX_COLUMNS = 48
"""Numeric columns searched (the first ones of the schema beyond this)."""
REFERENCE_TREES = 100
"""Trees of the reference model fitted on the trusted rows."""
REPORTED = 5
PAIR_GAIN = 0.1
"""A pair is reported only when it flips this share more than either of its columns alone."""
"""Candidates reported besides the significant ones (the largest excesses)."""

Predict = Callable[[pa.Table, Sequence[str]], list[str]]


@dataclass(frozen=True)
class _Candidate:
    conditions: tuple[tuple[str, str, float], ...]  # (column, "high" | "low", value)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c, _, _ in self.conditions)

    def name(self) -> str:
        parts = []
        for column, side, value in self.conditions:
            q = HIGH_QUANTILE if side == "high" else LOW_QUANTILE
            parts.append(f"{column} = {value:.4g} (its {round(q * 100)}th percentile)")
        return " and ".join(parts)


@dataclass
class SearchResult:
    """What the search measured: the reported candidates (``ProbeResult``, origin ``search``) and how
    much was searched."""

    probes: list[ProbeResult]
    tests: int
    columns: int
    pairs: int
    rows: int
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "tests": self.tests,
            "columns": self.columns,
            "pairs": self.pairs,
            "rows": self.rows,
            "alpha": ALPHA,
            "quantiles": [LOW_QUANTILE, HIGH_QUANTILE],
            "notes": self.notes,
        }


def _numeric(table: pa.Table, column: str) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in table.column(column).to_pylist()], dtype=float)


def _set_values(table: pa.Table, values: dict[str, np.ndarray]) -> pa.Table:
    out = table
    for column, new in values.items():
        idx = out.column_names.index(column)
        typ = out.schema.field(column).type
        arr = pa.array(new.astype(float)).cast(typ) if pa.types.is_floating(typ) else pa.array(new).cast(typ)
        out = out.set_column(idx, out.schema.field(column), arr)
    return out


def _exact_mcnemar(gained: int, lost: int) -> float:
    """One-sided exact McNemar: P(at least ``gained`` of the discordant rows go the trigger's way)."""
    from scipy.stats import binom  # here: a process that never searches for triggers does not import SciPy

    n = gained + lost
    return 1.0 if n == 0 or gained == 0 else float(binom.sf(gained - 1, n, 0.5))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (same order as given)."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


class _Search:
    def __init__(self, validation: pa.Table, schema: Schema, predict: Predict, reference: pa.Table, seed: int) -> None:
        self.schema = schema
        self.predict = predict
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        if validation.num_rows > MAX_ROWS:
            keep = np.sort(self.rng.choice(validation.num_rows, MAX_ROWS, replace=False))
            validation = validation.take(pa.array(keep))
        self.validation = validation
        if reference.num_rows > MAX_REFERENCE_ROWS:
            keep = np.sort(self.rng.choice(reference.num_rows, MAX_REFERENCE_ROWS, replace=False))
            reference = reference.take(pa.array(keep))
        self.truth = np.asarray([str(v) for v in validation.column(schema.label).to_pylist()])
        self.labels = sorted(set(self.truth.tolist()))
        columns = [c.name for c in schema.of_kind(ColumnKind.NUMERIC)]
        self.columns = [c for c in columns if c in reference.column_names][:MAX_COLUMNS]
        self.ref = {c: _numeric(reference, c) for c in self.columns}
        self.ref_labels = np.asarray([str(v) for v in reference.column(schema.label).to_pylist()])
        self.tails: dict[str, dict[str, float]] = {}
        self.inner: dict[str, np.ndarray] = {}
        for c in self.columns:
            values = self.ref[c]
            finite = values[np.isfinite(values)]
            if finite.size < 2:
                continue
            lo, q1, q3, hi = np.quantile(finite, [LOW_QUANTILE, 0.25, 0.75, HIGH_QUANTILE])
            if hi <= lo:
                continue
            self.tails[c] = {"low": float(lo), "high": float(hi)}
            self.inner[c] = (values >= q1) & (values <= q3)
        self.ids = (
            [str(v) for v in validation.column("record_id").to_pylist()]
            if "record_id" in validation.column_names
            else [str(i) for i in range(validation.num_rows)]
        )
        self.reference, self.x_val = self._reference_model(validation)

    def _reference_model(self, validation: pa.Table) -> tuple[Any, np.ndarray]:
        """A random forest fitted on the trusted rows' numeric columns: what the trusted data say a model
        does with the same edits. Missing values are the trusted median."""
        from sklearn.ensemble import RandomForestClassifier

        x_ref = np.column_stack([self.ref[c] for c in self.columns])
        medians = np.nan_to_num(np.nanmedian(np.where(np.isfinite(x_ref), x_ref, np.nan), axis=0))
        x_ref = np.where(np.isfinite(x_ref), x_ref, medians)
        x_val = np.column_stack([_numeric(validation, c) for c in self.columns])
        x_val = np.where(np.isfinite(x_val), x_val, medians)
        model = RandomForestClassifier(n_estimators=REFERENCE_TREES, random_state=self.seed, n_jobs=1)
        model.fit(x_ref, self.ref_labels)
        return model, x_val

    def _control_values(self, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """An ordinary joint value of ``columns`` per validation row, from trusted rows inside the quartiles."""
        mask = np.ones(len(self.ref_labels), dtype=bool)
        for c in columns:
            mask &= self.inner[c]
        pool = np.flatnonzero(mask)
        if pool.size == 0:  # no trusted row is ordinary in every column at once: each column apart
            return {c: self.rng.choice(self.ref[c][self.inner[c]], self.validation.num_rows) for c in columns}
        picks = self.rng.choice(pool, self.validation.num_rows)
        return {c: self.ref[c][picks] for c in columns}

    def run(self, candidates: Sequence[_Candidate], tag: str) -> tuple[np.ndarray, ...]:
        """Predictions of every candidate's stamped and control copies (candidates x rows), by the model
        and by the reference model fitted on the trusted rows."""
        n = self.validation.num_rows
        blocks, ids, ref_blocks = [], [], []
        for k, cand in enumerate(candidates):
            control = self._control_values(cand.columns)
            for values, suffix in (({c: np.full(n, v) for c, _, v in cand.conditions}, ""), (control, "c")):
                blocks.append(_set_values(self.validation, values))
                ids += [f"{tag}{k}{suffix}:{r}" for r in self.ids]
                x = self.x_val.copy()
                for c, new in values.items():
                    x[:, self.columns.index(c)] = new
                ref_blocks.append(x)
        if not blocks:
            empty = np.empty((0, n), dtype=object)
            return empty, empty, empty, empty
        table = pa.concat_tables(blocks)
        predictions = np.asarray(self.predict(table, ids), dtype=object)
        if predictions.shape[0] != table.num_rows:
            raise ValueError(f"{predictions.shape[0]} predictions for {table.num_rows} search rows")
        shaped = predictions.reshape(len(candidates), 2, n)
        ref = np.asarray(self.reference.predict(np.vstack(ref_blocks)), dtype=object).reshape(len(candidates), 2, n)
        return shaped[:, 0, :], shaped[:, 1, :], ref[:, 0, :], ref[:, 1, :]

    def support(self, cand: _Candidate, label: str) -> dict[str, Any]:
        region = np.ones(len(self.ref_labels), dtype=bool)
        for c, side, v in cand.conditions:
            region &= self.ref[c] >= v if side == "high" else self.ref[c] <= v
        rows = int(region.sum())
        with_label = int((self.ref_labels[region] == label).sum())
        return {"trusted_rows": rows, "trusted_rows_with_label": with_label}


def search_tabular(
    validation: pa.Table,
    schema: Schema,
    predict: Predict,
    reference: pa.Table,
    *,
    clean: Sequence[str] | None = None,
    seed: int = 0,
) -> SearchResult:
    """Search ``predict``'s model for a tabular trigger (see the module docstring). ``reference`` is the
    trusted baseline (raw records with the label column); ``clean`` the predictions on ``validation``
    when already made (they are recomputed when the validation set is sampled)."""
    s = _Search(validation, schema, predict, reference, seed)
    n = s.validation.num_rows
    if not s.tails or n == 0:
        return SearchResult([], 0, 0, 0, n, ["no numeric column with distinct tails in the trusted baseline"])
    if clean is None or len(clean) != n:
        clean = s.predict(s.validation, [f"clean:{r}" for r in s.ids])
    clean_arr = np.asarray([str(v) for v in clean], dtype=object)
    singles = [_Candidate(((c, side, s.tails[c][side]),)) for c in s.tails for side in ("low", "high")]
    single_runs = s.run(singles, "s")
    # The columns whose tail values change the most predictions (any label), for the pair search.
    changed = (single_runs[0] != clean_arr[None, :]).mean(axis=1)
    sensitivity: dict[str, float] = {}
    for cand, share in zip(singles, changed, strict=True):
        sensitivity[cand.columns[0]] = max(sensitivity.get(cand.columns[0], 0.0), float(share))
    top = sorted(sensitivity, key=lambda c: (-sensitivity[c], s.columns.index(c)))[:TOP_COLUMNS]
    pairs = [
        _Candidate(((a, sa, s.tails[a][sa]), (b, sb, s.tails[b][sb])))
        for a, b in itertools.combinations(top, 2)
        for sa in ("low", "high")
        for sb in ("low", "high")
    ]
    pair_runs = s.run(pairs, "p")
    candidates = singles + pairs
    stamped, control, ref_stamped, ref_control = (
        np.concatenate([a, b]) if pairs else a for a, b in zip(single_runs, pair_runs, strict=True)
    )
    ref_clean = np.asarray(s.reference.predict(s.x_val), dtype=object)
    tests: list[dict[str, Any]] = []
    for k in range(len(candidates)):
        for label in s.labels:
            eligible = (s.truth != label) & (clean_arr != label)
            m = int(eligible.sum())
            if m == 0:
                continue
            t = stamped[k][eligible] == label
            c = control[k][eligible] == label
            gained, lost = int((t & ~c).sum()), int((~t & c).sum())
            # The reference model's excess on the rows it too neither predicts nor sees labelled L.
            ref_eligible = (s.truth != label) & (ref_clean != label)
            ref_m = max(int(ref_eligible.sum()), 1)
            ref_excess = (
                int((ref_stamped[k][ref_eligible] == label).sum()) - int((ref_control[k][ref_eligible] == label).sum())
            ) / ref_m
            tests.append(
                {
                    "k": k,
                    "label": label,
                    "eligible": m,
                    "flipped": int(t.sum()),
                    "control": int(c.sum()),
                    "excess": (int(t.sum()) - int(c.sum())) / m,
                    "reference_excess": ref_excess,
                    "p": _exact_mcnemar(gained, lost),
                }
            )
    for test, adj in zip(tests, holm([t["p"] for t in tests]), strict=True):
        test["adjusted_p"] = adj
    best: dict[int, dict[str, Any]] = {}
    for test in tests:
        k = test["k"]
        order = (test["adjusted_p"], -test["excess"], -test["flipped"] / test["eligible"])
        if k not in best or order < (
            best[k]["adjusted_p"],
            -best[k]["excess"],
            -best[k]["flipped"] / best[k]["eligible"],
        ):
            best[k] = test
    # A pair that does no more than one of its columns alone is that column's finding, not a pair's.
    single_excess = {(singles[t["k"]].conditions[0], t["label"]): t["excess"] for t in tests if t["k"] < len(singles)}
    results = []
    for k, test in best.items():
        cand = candidates[k]
        if len(cand.conditions) > 1:
            alone = max(single_excess.get((c, test["label"]), 0.0) for c in cand.conditions)
            if test["excess"] <= alone + PAIR_GAIN:
                continue
        label = test["label"]
        trigger = Trigger(
            cand.name(), "value", "search", cand.columns, tuple((c, v) for c, _, v in cand.conditions), label
        )
        m = test["eligible"]
        result = ProbeResult(
            trigger, label, m, test["flipped"], test["flipped"] / m, test["control"] / m, test["excess"]
        )
        result.evidence = {
            "p_value": test["p"],
            "adjusted_p": test["adjusted_p"],
            "significant": test["adjusted_p"] <= ALPHA,
            "tests": len(tests),
            "reference_excess": test["reference_excess"],
            **s.support(cand, label),
        }
        results.append(result)
    results.sort(key=lambda r: (r.evidence["adjusted_p"], -r.excess))
    significant = [r for r in results if r.evidence["significant"]]
    rest = sorted((r for r in results if not r.evidence["significant"]), key=lambda r: -r.excess)[:REPORTED]
    return SearchResult(significant + rest, len(tests), len(s.tails), len(pairs), n)
