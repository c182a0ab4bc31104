"""What a running gate is doing, told to whoever shows it (a CLI progress line, a server job's status).

A language-model gate can run for tens of seconds (sentence embeddings on a CPU), and a person waiting
on it should see which step is running. The gate only *tells*: ``report(text)`` hands a short plain
sentence to the hook the caller installed with ``reporting(hook)``, or does nothing. It knows nothing of
terminals, Rich or HTTP, and a hook changes no result.

The hook is a context variable, so two scans in two threads each tell their own caller; the scan's
worker threads run in a copy of the caller's context (``scan._each``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Hook = Callable[[str], None]
"""Told each step as a short sentence ("llm_outliers: embedding 2,000 texts with MiniLM")."""

_hook: ContextVar[Hook | None] = ContextVar("dataward_gate_progress", default=None)


def report(text: str) -> None:
    """Tell the installed hook which step is running; nothing when no hook is installed."""
    hook = _hook.get()
    if hook is not None:
        hook(text)


@contextmanager
def reporting(hook: Hook | None) -> Iterator[None]:
    """Install ``hook`` for the calling context (None: keep whatever is installed) until the block ends."""
    if hook is None:
        yield
        return
    token = _hook.set(hook)
    try:
        yield
    finally:
        _hook.reset(token)
