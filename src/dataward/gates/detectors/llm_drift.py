"""Embedding drift of language-model data: did the contribution's topics or kinds of answer move away
from the trusted baseline's (and the first trusted baseline's), and which ones?

Prompts and responses are embedded with the offline MiniLM model (``_llm_space``; the same trusted
sample and split as ``llm_outliers``, so texts are embedded once). On the fit half of the trusted
sample, k-means finds ``topics`` clusters of prompts (topics) and of responses (kinds of answer), each
named by the words its texts use far more than the others. For each view, against the calibration half
(and against a sample of the first trusted baseline, when given), two tests on a sample of at most
``max_sample`` contribution records:

* **topic shares**: the chi-square test of homogeneity of the cluster counts; it counts only when the
  total variation distance between the shares is at least ``min_effect`` (with large batches any tiny
  difference is significant);
* **new region**: records farther from every fit-half record than 99% of calibration records are
  (a topic or an answer style the trusted data has no cluster for); Fisher's exact test of that share
  against the calibration half's, counting only when it is ``min_new_share`` above it. Every record,
  trusted or new, is measured without its near-twins among the trusted records (``_llm_space.near_twins``,
  the rule ``llm_outliers`` uses): a trusted sample that asks about each item in two wordings would
  otherwise put a calibration record's twin in the fit half half the time, while a new item's record has
  none, and a clean batch of new items would read as a new region. Twins are looked for among trusted
  records only, so records a contribution plants beside its own cannot move the threshold or any
  distance.

p-values are Bonferroni-corrected over the tests. Every test below ``review_p`` becomes a
contribution-level finding in plain words: which topics grew or shrank (their share in the trusted data
and in the contribution, with an example prompt or answer of the contribution), or how many records sit
where no trusted record is. Drift is a difference, never evidence of poisoning: a new topic, a new answer
style or a one-kind source all move the batch. This detector flags no record and never blocks; a shift is
a reason to review.

Summary: ``tests`` (reference, view, test, p-value, effect) and ``shares`` per view (topic name, trusted
share, contribution share).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy import stats

from dataward.gates.base import DetectorResult, Evidence, Finding, GateContext, GateData, register
from dataward.gates.detectors._llm import LLMDetector, baseline_texts, excerpt, texts
from dataward.gates.detectors._llm_clusters import embed
from dataward.gates.detectors._llm_space import (
    TOPIC_RECORDS,
    TWIN_RANK_FACTOR,
    embedded_baseline,
    topic_names,
    topics,
    trusted_twins,
)

VIEWS = {"prompt": ("prompts", "topics of the prompts"), "response": ("answers", "kinds of answer")}
NEW_REGION_QUANTILE = 0.99
"""A record is in a new region when farther from the fit half than this share of calibration records are."""
MOVED = 0.05
"""A topic is named as grown or shrunk when its share moved by at least this much."""
TWIN_RANK = TWIN_RANK_FACTOR * 5
"""The rank that sets a record's scale for its near-twins: ``llm_outliers``' by default (``2 k``, k = 5)."""
_STEP = 2048
"""Records measured at a time (bounds the similarity blocks' memory)."""


@dataclass(frozen=True)
class LLMDriftOptions:
    """Options of ``llm_drift`` (see the module docstring)."""

    topics: int = 8
    max_reference: int = 2000
    max_sample: int = 2000
    min_effect: float = 0.1
    min_new_share: float = 0.05
    review_p: float = 1e-3
    min_records: int = 20

    def __post_init__(self) -> None:
        if self.topics < 2 or self.max_reference < 100 or self.max_sample < 20 or self.min_records < 2:
            raise ValueError("topics >= 2, max_reference >= 100, max_sample >= 20 and min_records >= 2 are required")
        if not (0.0 <= self.min_effect <= 1.0 and 0.0 <= self.min_new_share <= 1.0 and 0.0 < self.review_p < 1.0):
            raise ValueError("min_effect and min_new_share must be in [0, 1], review_p in (0, 1)")


@dataclass
class _View:
    model: Any
    names: list[str]
    threshold: float
    references: dict[str, tuple[np.ndarray, int]]
    """reference name -> (topic counts, records in a new region) and its size via counts.sum()."""


@register
class LLMDriftDetector(LLMDetector):
    """Topics of prompts and kinds of answers, in MiniLM space, against the trusted baselines."""

    name = "llm_drift"
    version = "2"
    evidence = Evidence.DIFFERENCE
    Options = LLMDriftOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Fit the topics on one half of the trusted sample and count the other half (and the first baseline)."""
        opts = self.setup(context)
        trusted = baseline_texts(self.name, baseline, context)
        space = embedded_baseline(self.name, trusted, opts.max_reference, context.seed, opts.min_records)
        first = None
        if context.first_baseline is not None and context.first_baseline.table is not None:
            t = texts(context.first_baseline.table, context.schema)
            if len(t) >= opts.min_records:
                rows = _sample(len(t), opts.max_reference, context.seed)
                first = (embed([t.prompts[i] for i in rows]), embed([t.responses[i] for i in rows]))
        self.views_: dict[str, _View] = {}
        self.fit_records_ = len(space.fit)
        self.space_ = space
        cal_nearest = self._nearest(
            space.prompts[space.calibration], space.responses[space.calibration], space.calibration
        )
        first_nearest = None if first is None else self._nearest(*first)
        for v, (view, _) in enumerate(VIEWS.items()):
            vectors = space.prompts if view == "prompt" else space.responses
            source = space.texts.prompts if view == "prompt" else space.texts.responses
            model = topics(vectors[space.fit], opts.topics, context.seed)
            if model is None:
                continue
            k = model.n_clusters
            names = topic_names([source[i] for i in space.index[space.fit]], model.labels_, k)
            cal = vectors[space.calibration]
            d_cal = cal_nearest[view]
            threshold = float(np.quantile(d_cal, NEW_REGION_QUANTILE))
            refs = {"baseline": (_counts(model, cal, k), int(np.sum(d_cal > threshold)))}
            if first is not None and first_nearest is not None:
                refs["first_baseline"] = (_counts(model, first[v], k), int(np.sum(first_nearest[view] > threshold)))
            self.views_[view] = _View(model, names, threshold, refs)
        return self

    def _nearest(
        self, prompts: np.ndarray, responses: np.ndarray, own: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Per view, each record's cosine distance to its nearest fit-half record, leaving out its near-twins
        among the trusted records and, for a trusted record (``own[i]``: its row in the sample), itself."""
        space = self.space_
        n = prompts.shape[0]
        out = {view: np.empty(n, dtype=np.float64) for view in VIEWS}
        for start in range(0, n, _STEP):
            part = slice(start, start + _STEP)
            mine = None if own is None else own[part]
            left_out = trusted_twins(prompts[part], responses[part], space, TWIN_RANK, mine)[:, space.fit]
            for view, queries, index in (("prompt", prompts, space.prompts), ("response", responses, space.responses)):
                sims = (queries[part] @ index[space.fit].T).astype(np.float64)
                sims[left_out] = -np.inf
                out[view][part] = 1.0 - sims.max(axis=1)
        return out

    def score(self, contribution: GateData) -> DetectorResult:
        if (empty := self.empty_result(contribution)) is not None:
            return empty
        opts, ctx = self.opts_, self.context_
        n = len(contribution)
        nothing = {"p_values": np.ones(n), "flagged": np.zeros(n, dtype=bool)}
        if n < opts.min_records:
            return DetectorResult(
                self.name,
                self.version,
                **nothing,
                summary={"skipped": f"needs at least {opts.min_records} contribution records, got {n}"},
            )
        if not self.views_:
            # The trusted sample is split in halves; topics are fitted on one, at least TOPIC_RECORDS each.
            why = (
                f"the trusted records' fit half ({self.fit_records_}) is too few for two topics of "
                f"{TOPIC_RECORDS} records: needs at least {4 * TOPIC_RECORDS} trusted records"
            )
            return DetectorResult(self.name, self.version, **nothing, summary={"skipped": why})
        new = texts(contribution.table, ctx.schema)
        rows = _sample(n, opts.max_sample, ctx.seed)
        tests: list[dict[str, Any]] = []
        shares: dict[str, list[dict[str, Any]]] = {}
        examples: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
        chosen = {"prompt": [new.prompts[i] for i in rows], "response": [new.responses[i] for i in rows]}
        embedded = {view: embed(chosen[view]) for view in VIEWS}
        nearest = self._nearest(embedded["prompt"], embedded["response"])
        for view, state in self.views_.items():
            vectors = embedded[view]
            k = state.model.n_clusters
            assigned = state.model.predict(vectors.astype(state.model.cluster_centers_.dtype))
            counts = np.bincount(assigned, minlength=k)
            distance = nearest[view]
            beyond = distance > state.threshold
            examples[view] = (assigned, distance, chosen[view])
            base_counts = state.references["baseline"][0]
            shares[view] = [
                {"topic": state.names[t], "trusted": _share(base_counts, t), "contribution": _share(counts, t)}
                for t in range(k)
            ]
            for ref, (ref_counts, ref_beyond) in state.references.items():
                tests.append(_topic_test(view, ref, counts, ref_counts, state.names, opts.min_effect))
                tests.append(
                    _region_test(
                        view, ref, int(beyond.sum()), len(rows), ref_beyond, int(ref_counts.sum()), opts.min_new_share
                    )
                )
        counted = [t for t in tests if t["effect_ok"]]
        for t in tests:
            t["p_value"] = min(1.0, t.pop("p") * len(tests))
        findings = [
            Finding(self.name, 1.0 - t["p_value"], self._explain(t, examples), None, _public(t))
            for t in sorted(counted, key=lambda t: t["p_value"])
            if t["p_value"] < opts.review_p
        ]
        return DetectorResult(
            self.name,
            self.version,
            **nothing,
            findings=findings,
            statistic=float(len(findings)),
            p_value=min((t["p_value"] for t in counted), default=1.0),
            summary={"tests": [_public(t) for t in tests], "shares": shares, "sampled": len(rows)},
            alpha=None,
            contribution_findings=findings,
        )

    def _explain(self, test: dict[str, Any], examples: dict[str, tuple[np.ndarray, np.ndarray, list[str]]]) -> str:
        view, ref = test["view"], test["reference"].replace("_", " ")
        what, _ = VIEWS[view]
        assigned, distance, chosen = examples[view]
        if test["test"] == "new region":
            far = int(np.argmax(distance))
            return (
                f"{test['contribution_share']:.0%} of the contribution's {what} are farther from every trusted one "
                f"than {NEW_REGION_QUANTILE:.0%} of the {ref}'s are ({test['reference_share']:.1%} there): something "
                f"the trusted data has no cluster for, e.g. {excerpt(chosen[far], 100)!r} (p={test['p_value']:.2g})"
            )
        moved = []
        for g in test["grew"][:3]:
            member = np.flatnonzero(assigned == g["cluster"])
            example = f", e.g. {excerpt(chosen[int(member[0])], 80)!r}" if member.size else ""
            moved.append(f"'{g['topic']}' grew from {g['trusted']:.0%} to {g['contribution']:.0%}{example}")
        moved += [
            f"'{s['topic']}' shrank from {s['trusted']:.0%} to {s['contribution']:.0%}" for s in test["shrank"][:2]
        ]
        return (
            f"the {VIEWS[view][1]} moved against the {ref} (total variation {test['effect']:.2f}, "
            f"p={test['p_value']:.2g}): {'; '.join(moved) or 'many small moves'}"
        )


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _counts(model: Any, vectors: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(model.predict(vectors.astype(model.cluster_centers_.dtype)), minlength=k)


def _share(counts: np.ndarray, t: int) -> float:
    return float(counts[t] / max(int(counts.sum()), 1))


def _topic_test(
    view: str, ref: str, counts: np.ndarray, ref_counts: np.ndarray, names: list[str], floor: float
) -> dict[str, Any]:
    a, b = counts / max(counts.sum(), 1), ref_counts / max(ref_counts.sum(), 1)
    used = (counts + ref_counts) > 0
    table = np.vstack([counts[used], ref_counts[used]])
    p = float(stats.chi2_contingency(table)[1]) if table.shape[1] >= 2 else 1.0
    effect = float(0.5 * np.abs(a - b).sum())

    def moved(sign: int) -> list[dict[str, Any]]:
        order = np.argsort(-sign * (a - b))
        return [
            {"cluster": int(t), "topic": names[t], "trusted": float(b[t]), "contribution": float(a[t])}
            for t in order
            if sign * (a[t] - b[t]) >= MOVED
        ]

    return {
        "view": view,
        "reference": ref,
        "test": "topic shares",
        "p": p,
        "effect": effect,
        "effect_ok": effect >= floor,
        "grew": moved(1),
        "shrank": moved(-1),
    }


def _region_test(view: str, ref: str, beyond: int, n: int, ref_beyond: int, ref_n: int, floor: float) -> dict[str, Any]:
    p = float(stats.fisher_exact([[beyond, n - beyond], [ref_beyond, ref_n - ref_beyond]], alternative="greater")[1])
    share, ref_share = beyond / max(n, 1), ref_beyond / max(ref_n, 1)
    return {
        "view": view,
        "reference": ref,
        "test": "new region",
        "p": p,
        "effect": share - ref_share,
        "effect_ok": share - ref_share >= floor,
        "contribution_share": share,
        "reference_share": ref_share,
    }


def _public(test: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in test.items() if k not in ("effect_ok",)}
