"""Lone UTF-16 surrogates: JSON's ``\\udce0`` (half of a surrogate pair, alone) decodes in Python into a
string that no UTF-8 can hold, so nothing can store, sign, hash or answer it. Whatever arrives as JSON
is checked here before it reaches any of those."""

from __future__ import annotations

from typing import Any


def lone_surrogate(value: Any, where: str) -> str | None:
    """Where in ``value`` (decoded JSON) a string or a key holds a lone surrogate, as ``where`` and the
    keys and indexes down to it (keys written in ASCII); None when nowhere."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            # The key is named in ASCII: it may be the very string that holds the surrogate.
            inner = f"{where}.{str(key).encode('ascii', 'backslashreplace').decode('ascii')}"
            found = lone_surrogate(key, inner) or lone_surrogate(item, inner)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = lone_surrogate(item, f"{where}.{i}")
            if found:
                return found
    return None
