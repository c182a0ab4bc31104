"""Content-addressed object stores: a local folder, or any fsspec URL.

>>> store = open_store("/tmp/ward/store")      # doctest: +SKIP
>>> digest = store.put(b"bytes")               # doctest: +SKIP
>>> store.get(digest)                          # doctest: +SKIP
"""

from __future__ import annotations

import re
from os import PathLike
from typing import Any

from dataward.store.base import ObjectStore, ProblemKind, StoreProblem, digest_hex
from dataward.store.local import LocalObjectStore

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def open_store(location: str | PathLike[str], **storage_options: Any) -> ObjectStore:
    """A plain path gives a :class:`LocalObjectStore`; a URL with a scheme (``file://``,
    ``memory://``, ``s3://``...) gives a :class:`FsspecObjectStore` on that URL."""
    text = str(location)
    if isinstance(location, str) and _URL.match(text):
        from dataward.store.fsspec_store import FsspecObjectStore

        return FsspecObjectStore(text, **storage_options)
    return LocalObjectStore(location)


def __getattr__(name: str) -> Any:
    # fsspec is imported when a URL store is used, not by every command that opens a local ward.
    if name == "FsspecObjectStore":
        from dataward.store.fsspec_store import FsspecObjectStore

        return FsspecObjectStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FsspecObjectStore",
    "LocalObjectStore",
    "ObjectStore",
    "ProblemKind",
    "StoreProblem",
    "digest_hex",
    "open_store",
]
