"""The ward's Ed25519 signing key: generated once, kept in the ward folder, used to sign ledger events
and checkpoints. Its public half is what a verifier pins (PEM, or the raw 32 bytes in base64)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dataward.domain.errors import InputError


class WardSigner:
    """Signs event hashes with the ward key; ``public_key_b64`` is what verifiers need."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def generate(cls) -> WardSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> WardSigner:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the ward signing key {path}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise InputError(f"{path} is not an Ed25519 private key")
        return cls(key)

    def save(self, path: Path) -> None:
        """Write the private key as PEM, readable by the owner only."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)

    @property
    def public_key_b64(self) -> str:
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    @property
    def public_key_pem(self) -> str:
        """The public key as a PEM ``PUBLIC KEY`` block (SubjectPublicKeyInfo): what verifiers pin."""
        return public_key_pem(self.public_key_b64)

    def crypto_key(self) -> Ed25519PrivateKey:
        """The private key itself, for signing through a standard library (DSSE envelopes of
        attestations, whose PAE encoding keeps them apart from ledger signatures). Never written out."""
        return self._key

    def derive_key(self, context: str) -> bytes:
        """A 32-byte secret for one purpose, derived from the private key with BLAKE3's key derivation
        (``context`` names the purpose and keeps each derived key apart from every other use of the
        key). One-way: a derived key says nothing about the private key or about other derived keys,
        and nothing is written: it exists wherever, and only where, the signing key does."""
        import blake3

        raw = self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return blake3.blake3(raw, derive_key_context=context).digest()

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self._key.sign(message)).decode("ascii")


def public_key_pem(public_key_b64: str) -> str:
    """PEM (SubjectPublicKeyInfo) of a raw Ed25519 public key given in base64."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def key_fingerprint(public_key_b64: str) -> str:
    """A short, comparable name of a public key: ``ed25519:`` and the first 16 hex of its BLAKE3 hash."""
    import blake3

    return "ed25519:" + blake3.blake3(base64.b64decode(public_key_b64)).hexdigest()[:16]


def parse_public_key(text: str, *, source: str = "public key") -> str:
    """A pinned public key from text: a PEM ``PUBLIC KEY`` block or the raw 32 bytes in base64.

    Returns the base64 of the raw key; raises ``InputError`` for anything else.
    """
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 public key")
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = base64.b64decode(text, validate=True)
            Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnicodeError, TypeError) as exc:
        raise InputError(
            f"{source} is not an Ed25519 public key: {exc}",
            hint="export it with `dataward ledger public-key -o FILE` (PEM), or give the raw key in base64",
        ) from exc
    return base64.b64encode(raw).decode("ascii")


class SignatureVerifier:
    """Checks signatures against a ward public key (base64 raw Ed25519)."""

    def __init__(self, public_key_b64: str) -> None:
        self.public_key_b64 = public_key_b64
        self._key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))

    def verify(self, message: bytes, signature_b64: str) -> bool:
        try:
            self._key.verify(base64.b64decode(signature_b64), message)
        except (InvalidSignature, ValueError):
            return False
        return True
