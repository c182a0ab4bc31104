"""Model artifacts: their files hashed into a manifest with OpenSSF ``model-signing``, their format, and
a scan for files that would run code when loaded.

The manifest is ``model-signing``'s own in-toto payload (predicate ``https://model_signing/signature/v1.0``:
every file with its SHA-256, and as subject the model's name with a SHA-256 over those digests), made by
``model_signing.hashing`` with file serialization. The ward signs that statement with its Ed25519 key in a
DSSE envelope (``dataward.provenance.attestation.sign_statement``): ``model-signing``'s own offline signer
takes elliptic-curve (NIST P-curve) keys only, and a ward has exactly one signing key, under which its
ledger, checkpoints and attestations are checked. The statement is the same one ``model-signing`` signs.

Pickle-based files run code when loaded: pickles of any protocol, joblib's compressed files, PyTorch's zip
archives, numpy files holding objects (:func:`_pickle_streams` says which streams are read). Each pickle
stream in them is analysed with ``fickling`` (which imports it calls, how suspicious); such files are
flagged, and a policy may refuse them.
safetensors and ONNX hold only tensors and a graph, and are the recommended formats.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataward.domain.errors import InputError, IntegrityViolation

PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".bin", ".npy", ".npz"})
SAFE_FORMATS = {".safetensors": "safetensors", ".onnx": "onnx", ".skops": "skops"}
MAX_FILES = 10_000


@dataclass
class ArtifactFile:
    """One file of an artifact: its path inside the artifact and on disk, SHA-256 and size."""

    name: str
    path: Path
    sha256: str
    size: int


@dataclass
class Artifact:
    """A hashed artifact: the model-signing statement, its root digest and the files it names."""

    statement: dict[str, Any]
    digest: str
    files: list[ArtifactFile]
    format: str
    scan: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unsafe(self) -> bool:
        """True when some file would run code when loaded (a pickle-based file)."""
        return any(item["pickle"] for item in self.scan)


def _manifest(path: Path) -> Any:
    try:
        from model_signing import hashing
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise InputError(
            f"model-signing cannot be imported: {exc}", hint="pip install 'model-signing' pyopenssl"
        ) from None
    config = hashing.Config().use_file_serialization(hashing_algorithm="sha256", allow_symlinks=False)
    return config.set_ignored_paths(paths=[], ignore_git_paths=True).hash(path)


def hash_artifact(path: str | os.PathLike[str], *, name: str) -> Artifact:
    """Hash the file or folder ``path`` into model-signing's in-toto statement named ``name``, detect its
    format and scan it for pickles. Refuses (``InputError``) a missing path, an empty folder, symlinks."""
    from google.protobuf import json_format
    from model_signing._signing.signing import Payload  # the payload model-signing itself signs

    root = Path(path)
    if not root.exists():
        raise InputError(f"model artifact {str(path)!r} does not exist", hint="give the model file or folder")
    if root.is_symlink():
        raise InputError(f"model artifact {str(path)!r} is a symlink", hint="give the file or folder itself")
    try:
        manifest = _manifest(root)
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot hash model artifact {str(path)!r}: {exc}") from None
    statement = json_format.MessageToDict(Payload(manifest).statement.pb)
    statement["subject"][0]["name"] = name
    resources = statement["predicate"]["resources"]
    if not resources:
        raise InputError(f"model artifact {str(path)!r} holds no files")
    if len(resources) > MAX_FILES:
        raise InputError(f"model artifact {str(path)!r} holds {len(resources)} files, more than {MAX_FILES}")
    files = []
    for r in resources:
        # A single-file artifact's one resource is named "." by model-signing: keep the file's own name.
        on_disk, shown = (root, root.name) if root.is_file() else (root / r["name"], r["name"])
        files.append(ArtifactFile(shown, on_disk, r["digest"], on_disk.stat().st_size))
    artifact = Artifact(statement, statement["subject"][0]["digest"]["sha256"], files, _format(files))
    artifact.scan = [scan_file(f.name, f.path) for f in files]
    return artifact


def _format(files: list[ArtifactFile]) -> str:
    kinds = set()
    for f in files:
        suffix = Path(f.path).suffix.lower()
        if suffix in SAFE_FORMATS:
            kinds.add(SAFE_FORMATS[suffix])
        elif suffix in PICKLE_SUFFIXES:
            kinds.add("pickle")
    if not kinds:
        return "other"
    return kinds.pop() if len(kinds) == 1 else "mixed"


MAX_PICKLE_MEMBER_BYTES = 256 << 20
"""The most a pickle stream inside a zip archive (PyTorch's ``data.pkl``) may unpack to before it is
analysed; a larger one (or a zip bomb declaring a small size) is not unpacked and counts as malicious."""

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_PICKLE_NAMED = frozenset({".pkl", ".pickle", ".joblib"})
"""Suffixes of files that exist to be unpickled: whatever their bytes, they count as pickle-based (one
fickling cannot read is treated as malicious), because the program that loads them calls ``pickle.load``."""

# Compressed streams ``joblib.dump(..., compress=...)`` writes (zlib, gzip, bz2, xz, lzma), by their first
# bytes: what joblib.load unpickles is the stream inside.
_COMPRESSED_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x78\x01", "zlib"),
    (b"\x78\x5e", "zlib"),
    (b"\x78\x9c", "zlib"),
    (b"\x78\xda", "zlib"),
)


def _zip_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes | None:
    """The bytes of ``member``, or None when it declares or unpacks to more than the limit (read no further)."""
    if member.file_size > MAX_PICKLE_MEMBER_BYTES:
        return None
    with zf.open(member) as stream:
        data = stream.read(MAX_PICKLE_MEMBER_BYTES + 1)
    return None if len(data) > MAX_PICKLE_MEMBER_BYTES else data


def _bounded(data: bytes) -> bytes | None:
    """``data``, or None when it is longer than :data:`MAX_PICKLE_MEMBER_BYTES` (read one byte beyond it)."""
    return None if len(data) > MAX_PICKLE_MEMBER_BYTES else data


def _inflated(path: Path, kind: str) -> bytes | None:
    """A compressed file's content, read within :data:`MAX_PICKLE_MEMBER_BYTES` (None: over it, or not a
    stream of that kind after all)."""
    import bz2
    import gzip
    import lzma
    import zlib

    try:
        if kind == "zlib":
            inflater = zlib.decompressobj()
            with open(path, "rb") as f:
                data = inflater.decompress(f.read(MAX_PICKLE_MEMBER_BYTES + 1), MAX_PICKLE_MEMBER_BYTES + 1)
        else:
            opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open, "lzma": lzma.open}[kind]
            with opener(path, "rb") as stream:
                data = stream.read(MAX_PICKLE_MEMBER_BYTES + 1)
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return None
    return _bounded(data)


def _npy_pickle(stream: Any) -> int | None:
    """Where the pickle stream starts in the numpy file read from ``stream`` (positioned at its start) when
    the file holds Python objects, which ``numpy.load(allow_pickle=True)`` unpickles; None when it holds
    plain numbers or is no numpy file. Only the header is read."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(stream)
        reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        _, _, dtype = reader(stream)
    except (ValueError, OSError, SyntaxError):
        return None
    return int(stream.tell()) if dtype.hasobject else None


def _pickle_ops(data: bytes) -> tuple[int, int] | None:
    """``(opcodes, end)`` of the pickle stream at the start of ``data`` (``end``: one past its STOP), or
    None when no pickle stream starts there. Read by ``pickletools``, which parses and never builds."""
    import pickletools

    ops = 0
    # pickletools warns of escapes in the text opcodes that random bytes make up: not the ward's to show.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for op, _, pos in pickletools.genops(data):
                ops += 1
                if op.name == "STOP":
                    return ops, int(pos) + 1
        except Exception:  # pickletools raises ValueError and others on what is not a pickle
            return None
    return None


def _starts_as_pickle(data: bytes) -> bool:
    """Whether a pickle stream of more than a bare STOP starts ``data`` (legacy PyTorch files hold several,
    then raw storage bytes)."""
    found = _pickle_ops(data)
    return found is not None and found[0] >= 2


def _whole_pickle(data: bytes) -> bool:
    """Whether ``data`` is exactly one pickle stream of any protocol (0 and 1 carry no magic bytes).
    Raw numbers rarely are: a buffer that merely starts with ``.`` or ``N.`` parses as a pickle, but
    one that ends where the bytes do is no accident."""
    found = _pickle_ops(data)
    return found is not None and found[0] >= 2 and found[1] == len(data)


_ARCHIVE_ERRORS = (zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError)
"""What reading a damaged or encrypted zip member raises (``zlib.error`` is an OSError's sibling: caught by
name where it can occur). A member of a compression method Python cannot read is told apart before it is
opened (:data:`_READABLE_METHODS`)."""

_READABLE_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})


def _zip_streams(path: Path) -> list[tuple[str, bytes | None]]:
    """The ``*.pkl`` members of a zip archive and its ``.npy`` members that hold objects; a member that
    cannot be read is a stream that cannot be analysed (None: treated as malicious)."""
    import zlib

    streams: list[tuple[str, bytes | None]] = []
    with zipfile.ZipFile(path) as zf:
        for m in zf.infolist():
            if m.compress_type not in _READABLE_METHODS and m.filename.endswith((".pkl", ".pickle", ".npy")):
                streams.append((f"{m.filename} (compressed by a method that cannot be read)", None))
                continue
            try:
                if m.filename.endswith((".pkl", ".pickle")):
                    streams.append((m.filename, _zip_member(zf, m)))
                elif m.filename.endswith(".npy"):
                    with zf.open(m) as member:
                        if _npy_pickle(member) is not None:
                            streams.append((m.filename, _bounded(member.read(MAX_PICKLE_MEMBER_BYTES + 1))))
            except (*_ARCHIVE_ERRORS, zlib.error):
                streams.append((f"{m.filename} (cannot be read)", None))
    return streams


def _pickle_streams(path: Path) -> list[tuple[str, bytes | None]]:
    """The pickle streams inside a file, each read within :data:`MAX_PICKLE_MEMBER_BYTES` (None: over it,
    or unreadable):

    * none in ``.safetensors``, ``.onnx`` and ``.skops`` files: their loaders never unpickle;
    * the file itself when it starts as a pickle of protocol 2 or later does (for a suffix that is no
      pickle format, only when a pickle stream really starts there), or is exactly one pickle of protocol
      0 or 1 (for the suffixes of pickle-based formats: other files are not read by pickle), or is named as
      a pickle (``.pkl``, ``.pickle``, ``.joblib``) whatever its bytes;
    * a compressed file's content (joblib's ``compress=``);
    * the ``*.pkl`` members of a zip archive (PyTorch's format), and a numpy file, or a numpy member of an
      ``.npz``, only when it holds objects."""
    suffix = path.suffix.lower()
    if suffix in SAFE_FORMATS:
        return []
    with open(path, "rb") as f:
        head = f.read(1 << 20)

    def whole() -> bytes | None:
        # Read only once a stream is found or must be parsed: a README or a file of numbers is never read
        # whole, and a file over the limit never.
        return path.read_bytes() if path.stat().st_size <= MAX_PICKLE_MEMBER_BYTES else None

    if head[:2] in _PICKLE_MAGIC and (suffix in PICKLE_SUFFIXES or _starts_as_pickle(head)):
        return [("", whole())]
    if suffix == ".npy":
        with open(path, "rb") as f:
            start = _npy_pickle(f)
            return [] if start is None else [("", _bounded(f.read(MAX_PICKLE_MEMBER_BYTES + 1)))]
    if zipfile.is_zipfile(path):
        try:
            return _zip_streams(path)
        except _ARCHIVE_ERRORS:
            return [("(an archive that cannot be read)", None)]
    if suffix not in PICKLE_SUFFIXES:
        return []
    kind = next((k for magic, k in _COMPRESSED_MAGIC if head.startswith(magic)), None)
    if kind is not None:
        inflated = _inflated(path, kind)
        if inflated is not None and (inflated[:2] in _PICKLE_MAGIC or _whole_pickle(inflated)):
            return [(f"({kind})", inflated)]
        if suffix in _PICKLE_NAMED:
            return [(f"({kind})", inflated)]
    data = whole()
    if data is not None and _whole_pickle(data):
        return [("", data)]
    # A file named as a pickle is loaded as one, whatever fickling makes of its bytes.
    return [("", data)] if suffix in _PICKLE_NAMED else []


def scan_file(name: str, path: Path) -> dict[str, Any]:
    """What loading ``path`` could do: ``pickle`` (it holds pickle streams, which run code when loaded),
    ``severity`` (fickling's worst verdict over them) and ``analysis`` (what fickling saw)."""
    suffix = path.suffix.lower()
    streams = _pickle_streams(path)
    if not streams:
        return {"file": name, "pickle": False, "format": SAFE_FORMATS.get(suffix, suffix.lstrip(".") or "file")}
    from fickling.analysis import Severity, check_safety
    from fickling.fickle import Pickled

    worst = Severity.LIKELY_SAFE
    analysis: list[str] = []
    for member, data in streams:
        if data is None:
            analysis.append(
                f"{member}: unpacks to more than {MAX_PICKLE_MEMBER_BYTES >> 20} MiB, not analysed: "
                "treated as malicious"
            )
            worst = Severity.OVERTLY_MALICIOUS
            continue
        try:
            result = check_safety(Pickled.load(data))
        except Exception as exc:  # a pickle fickling cannot parse is treated as the worst kind
            analysis.append(f"{member or name}: fickling cannot parse it ({type(exc).__name__}): treated as malicious")
            worst = Severity.OVERTLY_MALICIOUS
            continue
        if result.severity.value[0] > worst.value[0]:
            worst = result.severity
        text = result.to_string().strip()
        if text:
            analysis.append(f"{member + ': ' if member else ''}{text}"[:2000])
    return {
        "file": name,
        "pickle": True,
        "format": "pickle",
        "severity": worst.name,
        "analysis": analysis[:20],
        "scanner": "fickling",
    }


def unsafe_summary(scan: list[dict[str, Any]]) -> str:
    """The pickle-based files of a scan, in words."""
    return "; ".join(f"{s['file']} is pickle-based ({s['severity']})" for s in scan if s["pickle"])


def check_files(statement: dict[str, Any], folder: Path) -> None:
    """Re-hash the files under ``folder`` with model-signing and refuse (``IntegrityViolation``) any file
    whose SHA-256 differs from ``statement``, or that is missing or extra."""
    manifest = _manifest(folder if len(statement["predicate"]["resources"]) > 1 else _single(folder))
    found = {d.identifier: d.digest.digest_hex for d in manifest.resource_descriptors()}
    expected = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    if len(expected) == 1 and len(found) == 1:
        found = {next(iter(expected)): next(iter(found.values()))}
    bad = sorted(n for n in set(expected) | set(found) if expected.get(n) != found.get(n))
    if bad:
        raise IntegrityViolation(
            f"the model's files do not match its signed manifest: {', '.join(bad[:5])}",
            hint="run `dataward verify`; the stored model was altered",
        )


def _single(folder: Path) -> Path:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return files[0] if len(files) == 1 else folder
