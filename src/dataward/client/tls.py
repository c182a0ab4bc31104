"""One certificate store per process for every client of a served ward.

httpx reads the whole CA bundle into a new ``SSLContext`` for every client it makes, even one that
only ever speaks plain http:// to a ward on loopback: about 25 ms of CPU a client, more than the
request it then sends. A context verifies the same way for every client of the process, and Python's
``SSLContext`` may be shared between clients and threads, so it is built once for each setting that
changes what it trusts (``trust_env`` and the ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` it then reads) and
handed to each client: verification is exactly httpx's own default.
"""

from __future__ import annotations

import os
import ssl
import threading

import httpx

_contexts: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}
_lock = threading.Lock()


def verifying_context(trust_env: bool) -> ssl.SSLContext:
    """httpx's default verifying context for ``trust_env``, built once per process for each setting."""
    key = (
        (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if trust_env
        else (False, None, None)
    )
    with _lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = httpx.create_ssl_context(trust_env=trust_env)
        return context
