"""What an API key looks like as text, for the layers that must recognise one where it does not belong
(a URL, a log line, free text the ledger keeps). Issuing and checking keys is ``dataward.access.keys``."""

from __future__ import annotations

import re

KEY_PREFIX = "dw_"
KEY_ID_LENGTH = 8  # 5 random bytes in base32: 40 bits, enough to look keys up, not to guess them
SECRET_LENGTH = 52  # 32 bytes in unpadded base32

FULL_KEY_SHAPE = re.compile(rf"{KEY_PREFIX}([a-z2-7]{{{KEY_ID_LENGTH}}})_[a-z2-7]{{16,}}", re.IGNORECASE)
"""Anything shaped like a whole key (an id and at least part of a secret), in any case: what must
never go where keys leak (a URL, a log line, an error message, the ledger)."""

_SECRET_END = "[aq]"
"""The last character of every secret: 32 bytes are 256 bits, 52 base32 characters carry 260, so the last
one holds a single bit followed by four zero bits (``a`` or ``q``)."""

WRITTEN_KEY = re.compile(
    rf"{KEY_PREFIX}([a-z2-7]{{{KEY_ID_LENGTH}}})_[a-z2-7]{{{SECRET_LENGTH - 1}}}{_SECRET_END}", re.IGNORECASE
)
"""A whole key as issued, written out in free text, even run into the text around it (pasted twice, or
into the next word): a key's id and a secret of a secret's length and ending, so that a name that merely
starts like one (``dw_customer_ordershistory``, a warehouse table in a source URI) is not taken for a key."""

WRITTEN_SECRET = re.compile(rf"(?<![a-z0-9])[a-z2-7]{{{SECRET_LENGTH - 1}}}{_SECRET_END}(?![a-z0-9])", re.IGNORECASE)
"""A key's secret written out alone (apart from its id, or after a space): a key's id is no secret (the
ledger names keys by it), so the secret is the whole key. A word of exactly a secret's length in its
alphabet and ending, which no prose or hex digest is."""
