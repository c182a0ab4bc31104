"""The language-model benchmark's peers: the n-gram perplexity filter and the blocklist."""

from __future__ import annotations

import numpy as np

from benchmarks import llm_data as d
from benchmarks.llm_peers import TrigramLM, blocklist_scores, perplexity_filter


def test_trigram_model_finds_text_unlike_its_training_text_less_likely() -> None:
    trusted = [f"The {w} command lists files in a directory." for w in ("ls", "dir", "vdir", "tree")] * 20
    lm = TrigramLM().fit(trusted)
    seen, odd = lm.scores(["The ls command lists files in a directory.", "Buy cheap watches at our shop now!"])
    assert np.isfinite([seen, odd]).all() and odd > seen + 2.0


def test_perplexity_filter_flags_planted_answers_and_about_one_percent_of_like_answers() -> None:
    pool = d.entries()
    baseline = list(d.instruction_frame(1000, 1, pool=pool)["response"])
    contribution = d.instruction_frame(1000, 2, pool=pool)
    poisoned, rows = d.poison_instructions(contribution, 20, "negative", seed=3)
    scores, flagged = perplexity_filter(baseline, list(poisoned["response"]))
    clean = np.ones(len(poisoned), dtype=bool)
    clean[rows] = False
    assert flagged[rows].all()
    assert flagged[clean].mean() < 0.05
    assert scores[rows].min() > np.median(scores[clean])


def test_blocklist_counts_listed_strings_only() -> None:
    assert blocklist_scores(["see https://x.example and avoid it", "ls lists files"]).tolist() == [2.0, 0.0]
