"""Sentence embeddings kept between processes, for a caller that has somewhere safe to keep them.

A language-model gate embeds its trusted sample on every run, and a CLI runs each gate in a fresh
process: a 1,000-record training version is 2,000 texts, re-embedded for every contribution judged
against it (tens of seconds on a shared CPU). A ward keeps what it embedded (``service.embedding_cache``)
and hands the store to the scan with ``keeping(store)``; the gate itself stays pure computation.

What is kept is the result of one call of the sentence model on one list of texts, keyed by that exact
list (and the model and library versions), never one text's vector on its own: the model's vector of a
text moves in its last bits with the other texts of its batch, so only the same list gives the same
bits. A stored result therefore equals what the model would compute again, and a gate's report is the
same with or without the store. A text list the store does not hold is encoded as before."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

import blake3
import numpy as np


class EmbeddingStore(Protocol):
    """Where embeddings of whole text lists are kept: ``get`` returns None for anything it cannot vouch for."""

    def get(self, key: str) -> np.ndarray | None:
        """The vectors stored under ``key``, or None."""
        ...

    def put(self, key: str, vectors: np.ndarray) -> None:
        """Keep ``vectors`` under ``key`` (best effort: a store that cannot write keeps nothing)."""
        ...


_store: ContextVar[EmbeddingStore | None] = ContextVar("dataward_embedding_store", default=None)


def current() -> EmbeddingStore | None:
    """The store installed for the calling context, or None."""
    return _store.get()


@contextmanager
def keeping(store: EmbeddingStore | None) -> Iterator[None]:
    """Use ``store`` for the sentence embeddings computed in the block (None: none is kept)."""
    token = _store.set(store)
    try:
        yield
    finally:
        _store.reset(token)


def list_key(model: str, texts: Sequence[str]) -> str:
    """The key of one encoding call: BLAKE3 of the model's identity and the exact, ordered text list
    (each text length-prefixed, so no two lists share a key)."""
    h = blake3.blake3()
    for part in (model, *texts):
        # surrogatepass: a text is hashed as given, even one holding a lone surrogate.
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()
