"""Where a client may send its key in cleartext: only to its own machine, unless told otherwise.

A key sent over plain ``http://`` can be read by anyone on the path to the server. The client therefore
refuses an ``http://`` URL whose host is not a loopback address (``localhost``, ``127.0.0.0/8``,
``[::1]``) before it sends anything, unless ``DATAWARD_ALLOW_INSECURE_HTTP=1`` (or
``allow_insecure_http=True`` in Python) says the network in between is trusted.

The path to the server is the route the request takes, not only the host in the URL: with
``HTTP_PROXY`` (or ``ALL_PROXY``) set, as many workstations and CI runners have it, an HTTP client sends a
plain ``http://`` request, ``Authorization`` header included, in cleartext to the proxy, which may be on
another machine (and a loopback URL sent there reaches the proxy's own machine, not this one). A plain
``http://`` URL is therefore always reached directly (``uses_environment_proxies``); ``https://`` may go
through a proxy, which then only tunnels the encrypted connection.

A URL carrying a user name or password (``https://alice:pw@host``) is refused too: the HTTP client would
send it as ``Basic`` credentials in place of the key, and every error message naming the server would
print the password.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit, urlunsplit

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


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` taken out of its authority, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def check_no_userinfo(url: str) -> None:
    """Refuse (InputError) a server URL that carries a user name or password; the message shows the
    URL without them."""
    if "@" not in urlsplit(url).netloc:
        return
    raise InputError(
        f"refusing the server URL {without_userinfo(url)!r} written with a user name or password in it: "
        "it would be sent in place of your API key, and shown in messages",
        hint="give the URL without `user:password@`; your key goes in DATAWARD_KEY only",
    )


def uses_environment_proxies(url: str) -> bool:
    """Whether a request to ``url`` may go through a proxy named by the environment (``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``ALL_PROXY``): only for ``https://``, whose proxy sees an encrypted tunnel. A plain
    ``http://`` request is sent directly, so that its key is never handed in cleartext to a proxy."""
    return urlsplit(url).scheme.lower() != "http"


def check_cleartext(url: str, *, allow_insecure_http: bool | None = None) -> None:
    """Refuse (InputError) sending a key to ``url`` over plain HTTP when its host is not loopback."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return
    host = parts.hostname or ""
    if is_loopback(host) or insecure_allowed(allow_insecure_http):
        return
    raise InputError(
        f"refusing to send your API key over plain http:// to {host or without_userinfo(url)!r}: anyone on the "
        "network between here and the server could read it and act as you",
        hint=f"use https:// (put TLS in front of `dataward serve`, see docs/server.md); plain http:// is "
        f"accepted for localhost, 127.0.0.1 and [::1] only, or when {ALLOW_ENV}=1 says the network is trusted",
    )
