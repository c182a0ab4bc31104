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
* **Explained by the data**: a flip is not a backdoor when honest models fitted on the trusted rows make
  it too. A stamped row keeps its other columns (a large radius with the perimeter it had), so it
  usually lies where no trusted row does, and there the answer depends on the learner: a random forest
  stays flat beyond its last split, a logistic regression keeps following each column's partial effect.
  Both kinds are fitted (``_reference_models``), and, when the model is a scikit-learn estimator, a clone
  of it (its settings, not its fitted state) too; each is given the same edits, and the release gate
  takes the largest excess of theirs as explained.
* **What the trusted rows say**: the trusted rows with the candidate's values or beyond (each column at
  or above a high value, at or below a low one) are counted, with those labelled ``L`` and a one-sided
  Clopper-Pearson bound on their share (``share_upper_bound``), given from ``MIN_SUPPORT`` rows on. For
  the reason above they cannot explain a flip (every trusted row with a small perimeter is benign, yet a
  malignant row given one keeps its large radius); they can rule one out, and the release gate reviews a
  flip they rule out even when a reference model makes it.

The release gate blocks on a significant, unexplained candidate whose excess over its control
reaches ``probe_block`` and reviews at ``probe_review`` (``dataward.release.gate``). Limits: the
search sees what a pair of tail values does; a trigger of three or more columns, of values inside the
quartiles, or of categorical columns is not searched; the trusted baseline must not itself hold the
poison, or the combination is "explained" by the poisoned rows; a backdoor doing what one of the reference
models would do with the same values anyway is explained.
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
"""Trusted rows holding a candidate's values needed before their labels say anything about it."""
SUPPORT_ALPHA = 0.01
"""Level of the bound on the share of those rows with the candidate's label."""
MAX_ROWS = 400
"""Validation rows the search stamps (a seeded sample beyond this)."""
MAX_REFERENCE_ROWS = 20_000
"""Trusted rows the tails and the reference model are taken from (a seeded sample beyond this)."""
MAX_COLUMNS = 48
"""Numeric columns searched (the first ones of the schema beyond this)."""
REFERENCE_TREES = 100
"""Trees of the reference model fitted on the trusted rows."""
LINEAR_PENALTIES = {"linear": (1.0, True), "linear_weak": (100.0, True), "linear_raw": (1.0, False)}
"""The linear reference models: inverse penalty (scikit-learn's ``C``) and whether columns are standardised
first (a penalty on raw columns falls hardest on the columns of small scale)."""
LINEAR_ITERATIONS = 200
"""Newton iterations of a linear reference fit (about ten suffice; a first-order solver on raw columns still
drifts after thousands, and with it the fit's answer)."""
REPORTED = 5
"""Candidates reported besides the significant ones (the largest excesses)."""
PAIR_GAIN = 0.1
"""A pair is reported only when it flips this share more than either of its columns alone."""

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


def share_upper_bound(successes: int, trials: int, alpha: float = SUPPORT_ALPHA) -> float:
    """One-sided Clopper-Pearson upper bound of a binomial share: the largest share that ``successes`` of
    ``trials`` do not rule out at level ``alpha`` (1.0 when every trial succeeded or there is none)."""
    from scipy.stats import beta  # here, like binom: only a search imports SciPy

    if trials == 0 or successes >= trials:
        return 1.0
    return float(beta.ppf(1.0 - alpha, successes + 1, trials - successes))


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


def _linear_references(x: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Logistic regressions penalised in the ways an honest linear model commonly is (``LINEAR_PENALTIES``):
    with correlated columns a column's partial effect, even its sign, depends on the penalty (a larger
    radius at the same perimeter reads as benign when weakly penalised, malignant at the default), so no
    single fit stands for what the data say."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    models = {}
    for name, (c, standardise) in LINEAR_PENALTIES.items():
        steps = [StandardScaler()] if standardise else []
        model = make_pipeline(*steps, LogisticRegression(C=c, solver="newton-cholesky", max_iter=LINEAR_ITERATIONS))
        with warnings.catch_warnings():  # a fit short of convergence still says what the data lean to
            warnings.simplefilter("ignore", ConvergenceWarning)
            models[name] = model.fit(x, labels)
    return models


def _reference_excess(runs: np.ndarray, clean: np.ndarray, truth: np.ndarray, label: str) -> float:
    """A reference model's excess towards ``label`` (stamped minus control, ``runs`` = 2 x rows) on the rows
    it too neither predicts nor sees labelled ``label``."""
    eligible = (truth != label) & (clean != label)
    m = max(int(eligible.sum()), 1)
    return (int((runs[0][eligible] == label).sum()) - int((runs[1][eligible] == label).sum())) / m


class _Search:
    def __init__(
        self,
        validation: pa.Table,
        schema: Schema,
        predict: Predict,
        reference: pa.Table,
        seed: int,
        architecture: Any | None = None,
    ) -> None:
        self.schema = schema
        self.architecture = architecture
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
        self.references, self.x_val = self._reference_models(validation)

    def _reference_models(self, validation: pa.Table) -> tuple[dict[str, Any], np.ndarray]:
        """Models fitted on the trusted rows' numeric columns: what honest models trained on the trusted data
        do with the same edits. Two families, because a stamped row often lies where no trusted row does (a
        large radius with the perimeter left as it was) and there the data leave the answer to the learner:
        a random forest stays flat beyond its last split, a linear model keeps following each column's
        partial effect. Missing values are the trusted median."""
        from sklearn.ensemble import RandomForestClassifier

        x_ref = np.column_stack([self.ref[c] for c in self.columns])
        medians = np.nan_to_num(np.nanmedian(np.where(np.isfinite(x_ref), x_ref, np.nan), axis=0))
        x_ref = np.where(np.isfinite(x_ref), x_ref, medians)
        x_val = np.column_stack([_numeric(validation, c) for c in self.columns])
        x_val = np.where(np.isfinite(x_val), x_val, medians)
        forest = RandomForestClassifier(n_estimators=REFERENCE_TREES, random_state=self.seed, n_jobs=1)
        models: dict[str, Any] = {"forest": forest.fit(x_ref, self.ref_labels)}
        if len(set(self.ref_labels.tolist())) > 1:
            models.update(_linear_references(x_ref, self.ref_labels))
            same = self._same_architecture(x_ref)
            if same is not None:
                models["same architecture"] = same
        return models, x_val

    def _same_architecture(self, x_ref: np.ndarray) -> Any | None:
        """The candidate's own learner (a scikit-learn estimator, cloned: its settings, none of its fitted
        state) fitted on the trusted rows: what this very kind of model does with the edits when nothing
        poisoned it. Gradient-boosted trees, say, split sharply at the tails where a forest averages, so a
        clean one moves more than any of the other references. Only when the model reads exactly the
        searched columns in schema order (``predictors.model_inputs`` of an all-numeric schema), so that
        the clone sees what the model sees; None otherwise, or when the estimator cannot be cloned or
        fitted."""
        if self.architecture is None or not honest_learner(self.architecture):
            return None
        inputs = [c.name for c in self.schema.inputs]
        if inputs != self.columns or any(c.kind is not ColumnKind.NUMERIC for c in self.schema.inputs):
            return None
        from sklearn.base import clone

        try:
            return clone(self.architecture).fit(x_ref.astype(np.float32), self.ref_labels)
        except Exception:  # any estimator's own failure: the other references still stand
            return None

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

    def run(self, candidates: Sequence[_Candidate], tag: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Predictions of every candidate's stamped and control copies (candidates x rows) by the model, and
        by each reference model fitted on the trusted rows (stamped and control, 2 x candidates x rows)."""
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
            return empty, empty, {name: np.empty((2, 0, n), dtype=object) for name in self.references}
        table = pa.concat_tables(blocks)
        predictions = np.asarray(self.predict(table, ids), dtype=object)
        if predictions.shape[0] != table.num_rows:
            raise ValueError(f"{predictions.shape[0]} predictions for {table.num_rows} search rows")
        shaped = predictions.reshape(len(candidates), 2, n)
        x = np.vstack(ref_blocks)
        refs = {}
        for name, model in self.references.items():
            ref = np.asarray(model.predict(x), dtype=object).reshape(len(candidates), 2, n)
            refs[name] = np.stack([ref[:, 0, :], ref[:, 1, :]])
        return shaped[:, 0, :], shaped[:, 1, :], refs

    def support(self, cand: _Candidate, label: str) -> dict[str, Any]:
        """What the trusted rows holding the candidate's values (each column at or beyond its value) say of
        ``label``: how many there are, how many carry it, and the most the share carrying it could be
        (``None`` when fewer than ``MIN_SUPPORT`` rows hold the values: too few to say anything)."""
        region = np.ones(len(self.ref_labels), dtype=bool)
        for c, side, v in cand.conditions:
            region &= self.ref[c] >= v if side == "high" else self.ref[c] <= v
        rows = int(region.sum())
        with_label = int((self.ref_labels[region] == label).sum())
        upper = share_upper_bound(with_label, rows) if rows >= MIN_SUPPORT else None
        return {"trusted_rows": rows, "trusted_rows_with_label": with_label, "trusted_share_upper": upper}


def honest_learner(estimator: Any) -> bool:
    """Whether a clone of ``estimator`` is a learner the ward can trust as a reference: scikit-learn's own
    classes all the way down, with no function among their settings and nothing that keeps its fitted
    state through ``clone``. The trainer chose the estimator: a class of their own could carry the
    backdoor in its code, a ``FrozenEstimator`` (or any ``__sklearn_clone__``) hands back the fitted
    model itself, a ``FunctionTransformer`` runs their function; each would then "explain" its own
    backdoor."""
    from sklearn.base import BaseEstimator

    seen = [estimator]
    while seen:
        item = seen.pop()
        if not isinstance(item, BaseEstimator) or not type(item).__module__.startswith("sklearn."):
            return False
        if type(item).__module__.startswith("sklearn.frozen") or "__sklearn_clone__" in type(item).__dict__:
            return False
        values = list(item.get_params(deep=False).values())
        while values:
            v = values.pop()
            if isinstance(v, list | tuple):  # steps and transformers: (name, estimator[, columns])
                values.extend(v)
            elif isinstance(v, BaseEstimator):
                seen.append(v)
            elif callable(v) and not isinstance(v, type):
                return False
    return True


def search_tabular(
    validation: pa.Table,
    schema: Schema,
    predict: Predict,
    reference: pa.Table,
    *,
    clean: Sequence[str] | None = None,
    seed: int = 0,
    architecture: Any | None = None,
) -> SearchResult:
    """Search ``predict``'s model for a tabular trigger (see the module docstring). ``reference`` is the
    trusted baseline (raw records with the label column); ``clean`` the predictions on ``validation``
    when already made (they are recomputed when the validation set is sampled); ``architecture`` the model
    itself when it is a scikit-learn estimator, refitted on the trusted rows as one more reference."""
    s = _Search(validation, schema, predict, reference, seed, architecture)
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
    stamped, control = (np.concatenate([a, b]) for a, b in zip(single_runs[:2], pair_runs[:2], strict=True))
    refs = {name: np.concatenate([single_runs[2][name], pair_runs[2][name]], axis=1) for name in s.references}
    ref_clean = {name: np.asarray(model.predict(s.x_val), dtype=object) for name, model in s.references.items()}
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
            ref_excesses = {
                name: _reference_excess(refs[name][:, k], ref_clean[name], s.truth, label) for name in s.references
            }
            tests.append(
                {
                    "k": k,
                    "label": label,
                    "eligible": m,
                    "flipped": int(t.sum()),
                    "control": int(c.sum()),
                    "excess": (int(t.sum()) - int(c.sum())) / m,
                    "reference_excess": max(ref_excesses.values()),
                    "reference_excesses": ref_excesses,
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
            "reference_excesses": test["reference_excesses"],
            **s.support(cand, label),
        }
        results.append(result)
    results.sort(key=lambda r: (r.evidence["adjusted_p"], -r.excess))
    significant = [r for r in results if r.evidence["significant"]]
    rest = sorted((r for r in results if not r.evidence["significant"]), key=lambda r: -r.excess)[:REPORTED]
    return SearchResult(significant + rest, len(tests), len(s.tails), len(pairs), n)
