"""Where a client may send its key in cleartext: only to its own machine, unless told otherwise.

A key sent over plain ``http://`` can be read by anyone on the path to the server. The client therefore
refuses an ``http://`` URL whose host is not a loopback address (``localhost``, ``127.0.0.0/8``,
``[::1]``) before it sends anything, unless ``DATAWARD_ALLOW_INSECURE_HTTP=1`` (or
``allow_insecure_http=True`` in Python) says the network in between is trusted.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from dataward.domain.errors import InputError

ALLOW_ENV = "DATAWARD_ALLOW_INSECURE_HTTP"
_YES = frozenset({"1", "true", "yes", "on"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as in a URL, brackets removed) names this machine only."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_allowed(explicit: bool | None = None) -> bool:
    """``explicit`` when given, else whether ``$DATAWARD_ALLOW_INSECURE_HTTP`` is set to a yes."""
    if explicit is not None:
        return explicit
    return os.environ.get(ALLOW_ENV, "").strip().lower() in _YES


def check_cleartext(url: str, *, allow_insecure_http: bool | None = None) -> None:
    """Refuse (InputError) sending a key to ``url`` over plain HTTP when its host is not loopback."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return
    host = parts.hostname or ""
    if is_loopback(host) or insecure_allowed(allow_insecure_http):
        return
    raise InputError(
        f"refusing to send your API key over plain http:// to {host or url!r}: anyone on the network "
        "between here and the server could read it and act as you",
        hint=f"use https:// (put TLS in front of `dataward serve`, see docs/server.md); plain http:// is "
        f"accepted for localhost, 127.0.0.1 and [::1] only, or when {ALLOW_ENV}=1 says the network is trusted",
    )
