"""Fits that depend on the trusted records alone, done once per process for the same records.

A ward gates contribution after contribution against the same promoted baseline, and the costliest
fits of a scan never see the contribution: the isolation forests of ``outliers`` and the
cross-validated probes of ``label_consistency`` depend on the trusted records, the seed and the
options alone. A process that scans more than once (the server, a benchmark, a notebook, a test run)
fits each of them once and reuses it.

* **Exact.** A key is the BLAKE3 digest of every input of the fit: each array's dtype, shape and
  bytes, and every parameter. A memoized fit is the fit those inputs give, bit for bit; a different
  record, label, seed or option is a different key.
* **Never changed after the fit.** The arrays of a stored fit (down to its models' coefficients) are
  made read-only, so code that wrote into one would fail loudly instead of changing what the next scan
  reads.
* **Bounded.** The least recently used fits are dropped once the stored ones weigh more than
  ``BUDGET_BYTES`` (each call site says what its fit weighs).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import blake3
import numpy as np

T = TypeVar("T")

BUDGET_BYTES = 256 * 2**20
"""What the stored fits may weigh together before the least recently used are dropped."""


class FitMemo:
    """A bounded, thread-safe store of fits, keyed by the digest of their inputs."""

    def __init__(self, budget_bytes: int = BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._fits: OrderedDict[bytes, tuple[Any, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_fit(self, key: bytes, fit: Callable[[], T], weigh: Callable[[T], int]) -> T:
        """The fit stored under ``key``, or ``fit()`` stored under it (weighing ``weigh(result)`` bytes).

        Two threads asking for the same missing key may both fit; both get a correct fit, one is kept.
        """
        with self._lock:
            stored = self._fits.get(key)
            if stored is not None:
                self._fits.move_to_end(key)
                self.hits += 1
                return stored[0]
            self.misses += 1
        value = fit()
        weight = max(int(weigh(value)), 1)
        if weight > self.budget_bytes:
            return value
        _freeze(value)
        with self._lock:
            if key not in self._fits:
                self._fits[key] = (value, weight)
                self._weight += weight
            while self._weight > self.budget_bytes and self._fits:
                _, (_, dropped) = self._fits.popitem(last=False)
                self._weight -= dropped
        return value

    def clear(self) -> None:
        """Forget every stored fit."""
        with self._lock:
            self._fits.clear()
            self._weight = 0

    def __len__(self) -> int:
        return len(self._fits)


def fit_key(kind: str, *parts: Any) -> bytes:
    """The digest of ``kind`` and every part: numeric arrays by dtype, shape and bytes; ``None``, booleans,
    numbers and strings by type and ``repr``. Any other part is refused (``TypeError``).

    Parts are framed by their length, so no two different sequences of parts give the same bytes.
    """
    hasher = blake3.blake3()

    def put(tag: bytes, payload: bytes | memoryview) -> None:
        hasher.update(tag + len(payload).to_bytes(8, "little"))
        hasher.update(payload)

    put(b"k", kind.encode())
    for part in parts:
        if isinstance(part, np.ndarray):
            if part.dtype.kind not in _ARRAY_KINDS:
                raise TypeError(f"fit_key: arrays of {part.dtype} have no bytes of their own to hash")
            contiguous = np.ascontiguousarray(part)
            put(b"a", f"{contiguous.dtype.str}{contiguous.shape}".encode())
            put(b"b", memoryview(contiguous).cast("B") if contiguous.size else b"")
        elif isinstance(part, np.generic) and part.dtype.kind in _ARRAY_KINDS:
            put(b"r", f"{type(part.item()).__name__}:{part.item()!r}".encode())
        elif part is None or isinstance(part, bool | int | float | str):
            put(b"r", f"{type(part).__name__}:{part!r}".encode())
        else:
            # A list, a sparse matrix or a data frame has a repr that leaves out most of its values.
            raise TypeError(f"fit_key: a {type(part).__name__} cannot be part of a key; pass its arrays")
    return hasher.digest()


_ARRAY_KINDS = frozenset("biuf")
"""Array dtypes (bool, integers, floats) whose bytes are their values; an object array's are pointers."""


def _freeze(value: Any, depth: int = 0) -> None:
    """Makes the numpy arrays of ``value`` read-only: through tuples, lists, dicts, dataclasses and the
    attributes of fitted models (a few levels down; a tree's own node arrays live in compiled code)."""
    if depth > _FREEZE_DEPTH:
        return
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple | list):
        for item in value:
            _freeze(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _freeze(item, depth + 1)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        for item in vars(value).values():
            _freeze(item, depth + 1)


_FREEZE_DEPTH = 4
"""Levels ``_freeze`` goes down: a probe fit's models' coefficients are three levels below it."""


MEMO = FitMemo()
"""The process's store, shared by every scan."""
