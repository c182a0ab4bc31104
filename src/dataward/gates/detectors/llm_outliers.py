"""Per-record outliers of language-model data: a prompt, an answer, or an answer to its prompt unlike
anything trusted, with conformal p-values on MiniLM sentence embeddings.

Each record's prompt and response are embedded with the offline MiniLM model (``_llm_space``). Three
views, each a mean cosine distance to ``k`` trusted neighbours:

* ``prompt``: the prompt to the nearest trusted prompts (a question unlike any trusted question);
* ``response``: the response to the nearest trusted responses (an answer unlike any trusted answer);
* ``answer_to_prompt``: the response to the trusted *responses of the nearest trusted prompts* (an
  answer unlike what trusted data answers to such a question: a link, a product pitch, a refusal or a
  snippet after an ordinary question).

The record's nonconformity score is the largest of the three, each divided by its 90th percentile on the
fit half of the trusted sample (so no view dominates by scale); one score, so no correction over views.

Calibration (split conformal, exactly valid): the trusted sample is split in two halves. Topics are
k-means clusters (``topics``) of the fit half's prompts. The calibration half's records are scored
against the whole sample leaving themselves out, a contribution record against the whole sample; its
p-value is ``(1 + #{calibration scores >= its score}) / (n + 1)`` (``conformal_p_values``: no
extrapolated tail, so no p-value is below ``1 / (n + 1)``). Mondrian: a record is calibrated against
the calibration records of its own prompt topic when that topic holds at least ``1 / alpha`` of them (so
the topic's resolution can reach ``alpha``), else against all of them. Per-topic calibration keeps the
flag rate at ``alpha`` within every topic, not only on average: a dense topic's odd record is not hidden
by sparse topics' naturally large distances.

Flags: records with ``p <= alpha``, except members of an unusual *group*: a record unlike the baseline
(``p <= 0.05``) whose nearest batch peers are mostly unlike it too and as near to it as trusted records
are to one another (a new topic or a new answer style) is not flagged one by one; the group is one
contribution-level finding for review, with its topic and an example. Being unlike the baseline is a
difference, not evidence of poisoning: this detector never blocks. Its contribution-level p-value is the
shared count test (``excess_flags_p_value``: more lone outliers than calibration explains), for review;
``summary["count_test"]`` names the p-value level whose count drove it (often wider than ``alpha``: many
records each only somewhat unusual), so that the review reason says which count is meant.

Cost: the batch-peer search runs only for records unlike the baseline (``p <= 0.05``), against the
whole batch, so a contribution of 20,000 costs a few hundred searches, not 20,000 x 20,000 products.

Finding evidence: ``view`` (the view that drove the score), ``view_scores``, ``topic``, ``prompt``,
``response``, ``nearest_trusted`` (prompt and response of the nearest trusted record by prompt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from dataward.gates.base import DetectorResult, Evidence, Finding, GateContext, GateData, register
from dataward.gates.calibration import (
    conformal_p_values,
    excess_flags_count,
    excess_flags_p_value,
    mondrian_p_values,
)
from dataward.gates.detectors._common import MAX_FINDINGS
from dataward.gates.detectors._llm import LLMDetector, baseline_texts, excerpt, texts
from dataward.gates.detectors._llm_clusters import embed
from dataward.gates.detectors._llm_space import (
    TWIN_RANK_FACTOR,
    embedded_baseline,
    joint,
    knn,
    topic_names,
    topics,
    trusted_twins,
)

VIEWS = ("prompt", "response", "answer_to_prompt")
WHAT = {
    "prompt": "a prompt unlike every trusted prompt",
    "response": "an answer unlike every trusted answer",
    "answer_to_prompt": "an answer unlike the trusted answers to similar prompts",
}
UNLIKE_BASELINE = 0.05
"""A batch peer counts as equally out of place when its own p-value is at most this."""
_STEP = 2048
"""Records scored at a time (bounds the similarity blocks' memory)."""
PEER_SLACK = 1.5
"""A peer is near when closer than this times the trusted sample's 95th percentile of neighbour distances."""


@dataclass(frozen=True)
class LLMOutlierOptions:
    """``k`` trusted neighbours per view; ``topics`` prompt clusters for Mondrian calibration;
    ``max_reference`` trusted records embedded; ``population_k`` batch peers looked at to tell a lone
    outlier from a new group."""

    k: int = 5
    topics: int = 8
    max_reference: int = 2000
    population_k: int = 5

    def __post_init__(self) -> None:
        if not (1 <= self.k <= 50 and 1 <= self.population_k <= 50):
            raise ValueError("k and population_k must be between 1 and 50")
        if self.topics < 1 or self.max_reference < 100:
            raise ValueError("topics must be at least 1 and max_reference at least 100")


@register
class LLMOutlierDetector(LLMDetector):
    """Prompts, answers and answers-to-their-prompt unlike the trusted ones, in MiniLM space."""

    name = "llm_outliers"
    version = "2"
    evidence = Evidence.DIFFERENCE
    flags_records = True
    Options = LLMOutlierOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Embed the trusted sample, fit the prompt topics on one half, score the other half."""
        opts = self.setup(context)
        space = embedded_baseline(
            self.name, baseline_texts(self.name, baseline, context), opts.max_reference, context.seed
        )
        self.space_ = space
        rows = space.index.shape[0]
        skip = np.arange(rows)
        raw = self._raw_scores(space.prompts, space.responses, skip)
        # Scales from the fit half only, so the calibration half's scores stay exchangeable with new ones.
        self.scales_ = np.maximum(np.quantile(raw[space.fit], 0.9, axis=0), 1e-6)
        self.topics_ = topics(space.prompts[space.fit], opts.topics, context.seed)
        self.topic_of_ = self._topic(space.prompts)
        k_topics = self.topics_.n_clusters if self.topics_ is not None else 1
        self.topic_names_ = topic_names(
            [space.texts.prompts[i] for i in space.index[space.fit]], self.topic_of_[space.fit], k_topics
        )
        cal = space.calibration
        self.cal_scores_ = (raw[cal] / self.scales_).max(axis=1)
        self.cal_topics_ = self.topic_of_[cal]
        together = joint(space.prompts, space.responses)
        dist, _ = knn(together[cal], together, opts.population_k, skip=cal)
        self.near_ = PEER_SLACK * float(np.quantile(dist.mean(axis=1), 0.95))
        return self

    def _topic(self, prompts: np.ndarray) -> np.ndarray:
        if self.topics_ is None:
            return np.zeros(prompts.shape[0], dtype=np.int64)
        return self.topics_.predict(prompts.astype(self.topics_.cluster_centers_.dtype)).astype(np.int64)

    def _raw_scores(self, prompts: np.ndarray, responses: np.ndarray, own: np.ndarray | None) -> np.ndarray:
        """(records x views) mean distances to the trusted sample, leaving out each record's near-twins
        (``near_twins``) and, for a trusted record (``own[i]``: its row in the sample, or None for new
        records), itself."""
        k, space = self.opts_.k, self.space_
        n, m = prompts.shape[0], space.prompts.shape[0]
        out = np.empty((n, len(VIEWS)), dtype=np.float64)
        for start in range(0, n, _STEP):
            part = slice(start, start + _STEP)
            mine = None if own is None else own[part]
            left_out = trusted_twins(prompts[part], responses[part], space, TWIN_RANK_FACTOR * k, mine)
            kk = max(1, min(k, m - int(left_out.sum(axis=1).max())))
            views = []
            for queries, index in ((prompts[part], space.prompts), (responses[part], space.responses)):
                sims = (queries @ index.T).astype(np.float64)
                sims[left_out] = -np.inf
                near = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
                views.append((near, 1.0 - np.take_along_axis(sims, near, axis=1)))
            (near_prompts, d_prompt), (_, d_response) = views
            # The answers trusted data gives to the nearest prompts, against this record's answer.
            sims = np.einsum("id,ikd->ik", responses[part], space.responses[near_prompts])
            out[part] = np.column_stack([d_prompt.mean(axis=1), d_response.mean(axis=1), (1.0 - sims).mean(axis=1)])
        return out

    def baseline_scores(self) -> np.ndarray:
        return 1.0 - conformal_p_values(self.cal_scores_, self.cal_scores_)

    def score(self, contribution: GateData) -> DetectorResult:
        if (empty := self.empty_result(contribution)) is not None:
            return empty
        ctx, space = self.context_, self.space_
        new = texts(contribution.table, ctx.schema)
        n = len(new)
        prompts, responses = embed(new.prompts), embed(new.responses)
        raw = self._raw_scores(prompts, responses, None) / self.scales_
        scores = raw.max(axis=1)
        topic = self._topic(prompts)
        p, sizes = self._mondrian(scores, topic)
        group = self._in_unusual_group(joint(prompts, responses), p)
        flagged = (p <= ctx.alpha) & ~group
        n_cal = int(sizes.min()) if n else int(self.cal_scores_.shape[0])
        # The count test is about lone outliers; members of a group are reported once, as that group.
        lone = np.where(group, 1.0, p)
        _, p_count = excess_flags_p_value(lone, ctx.alpha, n_cal)
        rows = contribution.groups.get("row", np.arange(1, n + 1))
        _, nearest = knn(prompts, space.prompts, 1)
        findings = []
        for i in np.argsort(p, kind="stable")[:MAX_FINDINGS]:
            if not flagged[i]:
                continue
            view = VIEWS[int(np.argmax(raw[i]))]
            j = int(space.index[int(nearest[i, 0])])
            findings.append(
                Finding(
                    self.name,
                    float(1.0 - p[i]),
                    f"{WHAT[view]} (topic: {self.topic_names_[topic[i]]}); p={p[i]:.2g}",
                    int(i),
                    {
                        "view": view,
                        "view_scores": {v: round(float(raw[i, c]), 3) for c, v in enumerate(VIEWS)},
                        "topic": self.topic_names_[topic[i]],
                        "prompt": excerpt(new.prompts[i]),
                        "response": excerpt(new.responses[i]),
                        "nearest_trusted": {
                            "prompt": excerpt(space.texts.prompts[j]),
                            "response": excerpt(space.texts.responses[j]),
                        },
                        "p_value": float(p[i]),
                    },
                )
            )
        strongest = raw.argmax(axis=1)
        return DetectorResult(
            self.name,
            self.version,
            p,
            flagged,
            findings,
            statistic=float(flagged.sum()),
            p_value=float(p_count),
            summary={
                "views": list(VIEWS),
                "flagged_by_view": {v: int(np.sum(flagged & (strongest == c))) for c, v in enumerate(VIEWS)},
                "topics": self.topic_names_,
                "mondrian_topics": sorted(
                    {int(t) for t, s in zip(topic, sizes, strict=True) if s < len(self.cal_scores_)}
                ),
                "calibration_records": int(self.cal_scores_.shape[0]),
                "in_unusual_groups": int(group.sum()),
                "count_test": excess_flags_count(lone, ctx.alpha, n_cal),
                "rows_flagged": [int(r) for r in rows[flagged][:200]],
            },
            n_calibration=n_cal,
            alpha=ctx.alpha,
            contribution_findings=self._group_findings(group, topic, new, rows),
        )

    def _mondrian(self, scores: np.ndarray, topic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Conformal p-values against the calibration records of the record's topic where that topic has
        enough of them to resolve ``alpha``, else against all; and the calibration size behind each."""
        return mondrian_p_values(
            self.cal_scores_,
            self.cal_topics_,
            scores,
            topic,
            min_class=math.ceil(1.0 / self.context_.alpha),
            p_values=conformal_p_values,
        )

    def _in_unusual_group(self, joint: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Records unlike the baseline whose nearest batch peers are mostly unlike it too, and as near to
        them as trusted records are to one another: members of a new group, not lone outliers."""
        n, k = joint.shape[0], min(self.opts_.population_k, joint.shape[0] - 1)
        group = np.zeros(n, dtype=bool)
        # Only records unlike the baseline can be members: only they look for their peers (among all records),
        # so a batch of 20,000 costs a search of its few hundred unusual records, not 20,000 x 20,000.
        unlike = np.flatnonzero(p <= UNLIKE_BASELINE)
        if k < 1 or unlike.size == 0:
            return group
        dist, idx = knn(joint[unlike], joint, k, skip=unlike)
        peers = (p[idx] <= UNLIKE_BASELINE) & (dist <= self.near_)
        group[unlike] = peers.sum(axis=1) >= math.ceil(k / 2)
        return group

    def _group_findings(self, group: np.ndarray, topic: np.ndarray, new: Any, rows: np.ndarray) -> list[Finding]:
        """One population-level finding when more records sit in unusual groups than chance explains."""
        n, members = group.shape[0], int(group.sum())
        if members < 5 or members <= 2 * UNLIKE_BASELINE * n:
            return []
        where = np.flatnonzero(group)
        counts = np.bincount(topic[where], minlength=len(self.topic_names_))
        top = [self.topic_names_[t] for t in np.argsort(-counts)[:3] if counts[t]]
        example = int(where[0])
        return [
            Finding(
                self.name,
                float(members / n),
                f"{members} of {n} records are unlike the trusted data together (groups of similar prompts or "
                f"answers none of which resembles a trusted one: a new topic, answer style or source; nearest "
                f"trusted topics: {'; '.join(top)}); e.g. {excerpt(new.prompts[example], 80)!r}. They are not "
                f"flagged one by one",
                evidence={
                    "records": members,
                    "rows_sample": [int(r) for r in rows[where][:20]],
                    "nearest_topics": top,
                    "example": {"prompt": excerpt(new.prompts[example]), "response": excerpt(new.responses[example])},
                },
            )
        ]
