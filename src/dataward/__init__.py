"""dataward: a governed, tamper-evident registry and poisoning gate for ML training data.

>>> import dataward
>>> ward = dataward.open("path/to/ward")
>>> df = ward.dataset("reviews").version("training").to_pandas()
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dataward.api import WardAPI
    from dataward.service.ward import Ward
    from dataward.training import TrainingRun


def open(path: str | os.PathLike[str] | None = None, *, key: str | None = None) -> WardAPI:
    """The ward at ``path``: a folder (the embedded ``Ward``, see ``Ward.open``) or the URL of a
    served ward (``http://`` or ``https://``: an ``HTTPWard``). Both implement ``dataward.api.WardAPI``.

    Without ``path``, ``$DATAWARD_URL`` names a served ward, else ``$DATAWARD_WARD`` or ``./.dataward``
    a folder. The acting principal is the one of ``key``, else ``$DATAWARD_KEY`` (else, for a folder,
    its local credentials file).
    """
    url = os.environ.get("DATAWARD_URL") or None
    target = os.fspath(path) if path is not None else url
    if path is None and url is not None:
        target = served_url(url, "$DATAWARD_URL")
    if isinstance(target, str) and target.startswith(("http://", "https://")):
        from dataward.client.http import HTTPWard

        return HTTPWard(target, key=key)
    from dataward.service.ward import Ward

    return Ward.open(target, key=key)


def served_url(url: str, given_as: str) -> str:
    """``url`` when it is an ``http://`` or ``https://`` URL; else ``InputError`` naming ``given_as``
    (``--url``, ``$DATAWARD_URL``): a served ward's address without its scheme is not a folder."""
    if url.startswith(("http://", "https://")):
        return url
    from urllib.parse import urlsplit

    from dataward.client.plain_http import is_loopback
    from dataward.domain.errors import InputError

    # Plain http:// only for this machine: a key sent elsewhere would cross the network in cleartext.
    scheme = "http" if is_loopback(urlsplit(f"//{url}").hostname or "") else "https"
    raise InputError(
        f"{given_as} {url!r} is not the URL of a served ward (http:// or https://)",
        hint=f"write it with its scheme, e.g. {scheme}://{url}; a ward folder is --ward / $DATAWARD_WARD",
    )


def init(path: str | os.PathLike[str], *, admin: str = "admin") -> tuple[Ward, str]:
    """Create a ward folder; returns the ward and the first admin's API key (shown once)."""
    from dataward.service.ward import Ward

    return Ward.init(path, admin=admin)


def load(ref: str, **kwargs: Any) -> Any:
    """The guarded loader: the records of ``DATASET@training`` (or ``@vN``) as pandas, Arrow, a torch
    ``Dataset`` or a Hugging Face ``datasets.Dataset``; see ``dataward.loader.load``."""
    from dataward.loader import load as _load

    return _load(ref, **kwargs)


def stream(ref: str, **kwargs: Any) -> Any:
    """The guarded loader for versions larger than memory: Arrow record batches or an iterable torch
    dataset; see ``dataward.loader.stream``."""
    from dataward.loader import stream as _stream

    return _stream(ref, **kwargs)


def training_run(data: str | list[str] | None = None, *, model: str, **kwargs: Any) -> TrainingRun:
    """A training run of ``model`` on ``data``, as a context manager; see ``dataward.training``."""
    from dataward.training import training_run as _training_run

    return _training_run(data, model=model, **kwargs)


__all__ = ["__version__", "init", "load", "open", "stream", "training_run"]
