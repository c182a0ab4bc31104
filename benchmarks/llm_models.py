"""Small language-model stand-ins for the release gate's tests and benchmark: retrieval models trained on
instruction, chat or preference records, answering a prompt with the answer of the most similar training
prompt.

That is what a fine-tuned model reproduces for a prompt close to one it was taught, and it learns a
backdoor for real: the trigger phrase's words pull a prompt towards the poisoned records. Two learners
see a prompt differently: ``tfidf`` (word 1-2-grams, where a rare phrase weighs much) and ``minilm``
(the offline sentence-embedding model, where a phrase moves the meaning of the whole prompt less).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from dataward.domain.schema import MESSAGES, Schema
from dataward.gates.detectors._llm import texts

LEARNERS = ("tfidf", "minilm")


def prompts_of(table: pa.Table) -> list[str]:
    """The prompts of a probe table as the model reads them (chat: the user turns, joined)."""
    if MESSAGES in table.column_names:
        return [
            "\n".join(m["content"] for m in json.loads(v) if m["role"] == "user")
            for v in table.column(MESSAGES).to_pylist()
        ]
    prompts = table.column("prompt").to_pylist()
    if "input" in table.column_names:
        prompts = [p if not e else f"{p}\n{e}" for p, e in zip(prompts, table.column("input").to_pylist(), strict=True)]
    return prompts


class Retrieval:
    """Answers a prompt with the answer of the most similar training prompt."""

    def __init__(self, prompts: Sequence[str], answers: Sequence[str], learner: str = "tfidf") -> None:
        if learner not in LEARNERS:
            raise ValueError(f"unknown learner {learner!r}")
        self.learner = learner
        self.answers = list(answers)
        if learner == "tfidf":
            self.vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(prompts)
        self.index = self._embed(list(prompts))

    @classmethod
    def of(cls, frame: object, learner: str = "tfidf") -> Retrieval:
        """From a frame of ``prompt`` and ``response`` columns."""
        return cls(list(frame["prompt"]), list(frame["response"]), learner)  # type: ignore[index]

    @classmethod
    def trained_on(cls, table: pa.Table, schema: Schema, learner: str = "tfidf") -> Retrieval:
        """From a canonical table of a language-model kind (preference data: the chosen answers)."""
        data = texts(table, schema)
        return cls(data.prompts, data.responses, learner)

    def _embed(self, prompts: list[str]) -> Any:
        if self.learner == "tfidf":
            return normalize(self.vec.transform(prompts))
        from dataward.gates.features.text import MiniLM

        return np.asarray(
            MiniLM.model().encode(prompts, batch_size=64, normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float32,
        )

    def answer(self, prompts: Sequence[str]) -> list[str]:
        sims = self._embed(list(prompts)) @ self.index.T
        sims = sims.toarray() if hasattr(sims, "toarray") else sims
        return [self.answers[int(i)] for i in sims.argmax(axis=1)]

    def __call__(self, table: pa.Table) -> list[str]:
        """The callable the release gate runs: one answer per probe row (instruction, chat, preference)."""
        return self.answer(prompts_of(table))
