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
from dataward.store.fsspec_store import FsspecObjectStore
from dataward.store.local import LocalObjectStore

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def open_store(location: str | PathLike[str], **storage_options: Any) -> ObjectStore:
    """A plain path gives a :class:`LocalObjectStore`; a URL with a scheme (``file://``,
    ``memory://``, ``s3://``...) gives a :class:`FsspecObjectStore` on that URL."""
    text = str(location)
    if isinstance(location, str) and _URL.match(text):
        return FsspecObjectStore(text, **storage_options)
    return LocalObjectStore(location)


__all__ = [
    "FsspecObjectStore",
    "LocalObjectStore",
    "ObjectStore",
    "ProblemKind",
    "StoreProblem",
    "digest_hex",
    "open_store",
]
