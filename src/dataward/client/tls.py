"""One certificate store per process for every client of a served ward.

httpx reads the whole CA bundle into a new ``SSLContext`` for every client it makes, even one that
only ever speaks plain http:// to a ward on loopback: about 25 ms of CPU a client, more than the
request it then sends. Python's ``SSLContext`` may be shared between clients and threads, so the
context is built once for each state of what it trusts and handed to each client, and verification is
httpx's own default (``httpx.create_ssl_context``):

* the setting: ``trust_env``, and with it ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` (made absolute, so a
  relative name read after a change of folder is another setting);
* the file the context was loaded from (``SSL_CERT_FILE``, else certifi's bundle): its size and time of
  change, so a bundle replaced while the process runs (a CA withdrawn by an upgrade of certifi) is read
  again by the next client. A folder of ``SSL_CERT_DIR`` is read by OpenSSL at each handshake anyway.

The contexts are never changed after they are built; code that needs other trust must build its own,
as changing a shared one would change it for every client of the process.
"""

from __future__ import annotations

import os
import ssl
import threading

import certifi
import httpx

_Key = tuple[bool, str | None, str | None, tuple[int, int] | None]
_contexts: dict[_Key, ssl.SSLContext] = {}
_lock = threading.Lock()


def _stamp(path: str | None) -> tuple[int, int] | None:
    """The size and time of change of the file at ``path`` (None when there is no such file)."""
    if path is None:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def _setting(trust_env: bool) -> _Key:
    """What the context for ``trust_env`` trusts, as httpx would read it now."""
    if not trust_env:
        return (False, None, None, _stamp(certifi.where()))
    cert_file = os.environ.get("SSL_CERT_FILE") or None
    cert_dir = None if cert_file else os.environ.get("SSL_CERT_DIR") or None
    cert_file = os.path.abspath(cert_file) if cert_file else None
    cert_dir = os.path.abspath(cert_dir) if cert_dir else None
    bundle = cert_file or (None if cert_dir else certifi.where())
    return (True, cert_file, cert_dir, _stamp(bundle))


def verifying_context(trust_env: bool) -> ssl.SSLContext:
    """httpx's default verifying context for ``trust_env``, built once per process for each state of
    what it trusts (see the module's docstring). Callers must not change it."""
    key = _setting(trust_env)
    with _lock:
        context = _contexts.get(key)
        if context is None:
            # A bundle that changed replaces its older context: one per setting is ever kept.
            for stale in [k for k in _contexts if k[:3] == key[:3]]:
                del _contexts[stale]
            context = _contexts[key] = httpx.create_ssl_context(trust_env=trust_env)
        return context
