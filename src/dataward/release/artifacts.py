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
flagged, and a policy may refuse them. Every file is scanned whatever its name: a pickle renamed
``model.onnx`` is still a pickle.
safetensors and ONNX hold only tensors and a graph, and are the recommended formats. A file named as one of
them (or as ``.skops``) must be one: its structure is read (never loaded, nothing run) at registration and a
file that is not what its name says is refused (:func:`check_content`), so neither the recorded format nor a
reader trusting the name can be misled.
"""

from __future__ import annotations

import io
import json
import lzma
import os
import re
import warnings
import zipfile
import zlib
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
    format and scan it for pickles. Refuses (``InputError``) a missing path, an empty folder, symlinks, and
    a file named as safetensors, ONNX or skops that is not one (:func:`check_content`)."""
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
    scan = [scan_file(f.name, f.path) for f in files]
    for f, entry in zip(files, scan, strict=True):
        check_content(f.name, f.path, entry)
    return Artifact(statement, statement["subject"][0]["digest"]["sha256"], files, _format(files, scan), scan)


def _format(files: list[ArtifactFile], scan: list[dict[str, Any]]) -> str:
    kinds = set()
    for f, entry in zip(files, scan, strict=True):
        suffix = Path(f.path).suffix.lower()
        if entry["pickle"] or suffix in PICKLE_SUFFIXES:
            kinds.add("pickle")
        elif suffix in SAFE_FORMATS:
            kinds.add(SAFE_FORMATS[suffix])
    if not kinds:
        return "other"
    return kinds.pop() if len(kinds) == 1 else "mixed"


MAX_PICKLE_MEMBER_BYTES = 256 << 20
"""The most a pickle stream inside a zip archive (PyTorch's ``data.pkl``) may unpack to before it is
analysed; a larger one (or a zip bomb declaring a small size) is not unpacked and counts as malicious."""

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_NPY_MAGIC = b"\x93NUMPY"
_PICKLE_NAMED = frozenset({".pkl", ".pickle", ".joblib"})
"""Suffixes of files that exist to be unpickled: whatever their bytes, they count as pickle-based (one
fickling cannot read is treated as malicious), because the program that loads them calls ``pickle.load``."""

# Compressed streams ``joblib.dump(..., compress=...)`` writes (zlib, gzip, bz2, xz, lzma), by their first
# bytes: what joblib.load unpickles is the stream inside.
_COMPRESSED_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00", "lzma"),  # joblib's own test: the dictionary size that follows may be small
    (b"ZF", "zfile"),  # joblib's format before 0.9.3: b"ZF", the length in hexadecimal (19 bytes), zlib
    (b"\x78\x01", "zlib"),
    (b"\x78\x5e", "zlib"),
    (b"\x78\x9c", "zlib"),
    (b"\x78\xda", "zlib"),
)


_LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"
"""An LZ4 frame, which ``joblib.dump(..., compress="lz4")`` writes and ``joblib.load`` unpickles whatever the
file's name. The scan has no LZ4 reader: such a stream is not analysed, and counts as malicious."""
_LZ4_UNREAD = "lz4-compressed: not analysed, and joblib.load unpickles what it holds"


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
        if kind in ("zlib", "zfile"):
            inflater = zlib.decompressobj()
            with open(path, "rb") as f:
                _skip_zfile_header(f, kind)
                data = inflater.decompress(f.read(MAX_PICKLE_MEMBER_BYTES + 1), MAX_PICKLE_MEMBER_BYTES + 1)
        else:
            opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open, "lzma": lzma.open}[kind]
            with opener(path, "rb") as stream:
                data = stream.read(MAX_PICKLE_MEMBER_BYTES + 1)
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return None
    return _bounded(data)


_ZFILE_HEADER = 21
"""joblib's legacy ``ZF`` header: b"ZF" and the length in hexadecimal, padded to 19 bytes (then, written
by older versions, one more space)."""


def _skip_zfile_header(f: Any, kind: str) -> bytes:
    """Read past a ``zfile``'s header in ``f`` (at its start) as joblib's ``read_zfile`` does; the first
    byte of the zlib stream when it had to be read to tell (b"" otherwise)."""
    if kind != "zfile":
        return b""
    f.read(_ZFILE_HEADER)
    byte = f.read(1)
    return b"" if byte == b" " else byte


def _npy_pickle(stream: Any, size: int = MAX_PICKLE_MEMBER_BYTES) -> int | None:
    """Where the pickle stream starts in the numpy file read from ``stream`` (positioned at its start) when
    the file holds Python objects, which ``numpy.load(allow_pickle=True)`` unpickles; None when it holds
    plain numbers or is no numpy file. Only the header is read, however long (``allow_pickle`` lifts numpy's
    limit on its size): within ``size``, the file's."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(stream)
        reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        _, _, dtype = reader(stream, max_header_size=max(size, 10_000))
    except (ValueError, OSError, SyntaxError):
        return None
    return int(stream.tell()) if dtype.hasobject else None


_IMPORTING_OPS = frozenset({"GLOBAL", "INST", "STACK_GLOBAL", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"})
"""Opcodes through which a pickle reaches a callable (an import, the extension registry, the loader's
persistent ids): a pickle without them builds plain containers and calls nothing."""


def _pickle_ops(data: bytes | Any) -> tuple[int, int, bool] | None:
    """``(opcodes, end, imports)`` of the pickle stream at the start of ``data`` (bytes, or a binary file
    read as it goes; ``end``: one past its STOP; ``imports``: it holds an opcode of
    :data:`_IMPORTING_OPS`), or None when no pickle stream starts there. Read by ``pickletools``, which
    parses and never builds."""
    import pickletools

    ops, imports = 0, False
    # pickletools warns of escapes in the text opcodes that random bytes make up: not the ward's to show.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for op, _, pos in pickletools.genops(data):
                ops += 1
                imports = imports or op.name in _IMPORTING_OPS
                if op.name == "STOP":
                    return ops, int(pos) + 1, imports
        except Exception:  # pickletools raises ValueError and others on what is not a pickle
            return None
    return None


def _starts_as_pickle(data: bytes) -> bool:
    """Whether a pickle stream of more than a bare STOP starts ``data`` (legacy PyTorch files hold several,
    then raw storage bytes), or one longer than ``data`` (the first bytes of a file): at least
    :data:`_CUT_SHORT_OPS` opcodes parse and only the end of ``data`` stops them, not a byte that is no
    opcode."""
    import io
    import pickletools

    stream, ops = io.BytesIO(data), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for op, _, _ in pickletools.genops(stream):
                ops += 1
                if op.name == "STOP":
                    return ops >= 2
        except Exception:  # pickletools raises ValueError and others on what is not a pickle
            return ops >= _CUT_SHORT_OPS and stream.tell() == len(data)
    return False


_CUT_SHORT_OPS = 16
"""How many opcodes must parse before the end of the bytes read for a pickle stream cut short there to
count as one (raw numbers that happen to start with a protocol opcode fail well before)."""


def _whole_pickle(data: bytes | Path, *, importing: bool = False) -> bool:
    """Whether ``data`` (bytes, or a file parsed as it is read) is exactly one pickle stream of any
    protocol (0 and 1 carry no magic bytes). Raw numbers rarely are: a buffer that merely starts with
    ``.`` or ``N.`` parses as a pickle, but one that ends where the bytes do is no accident. Text can
    be one (``hello.`` parses), so where nothing but the bytes says pickle, ``importing`` asks for one
    that reaches a callable."""
    if isinstance(data, Path):
        with open(data, "rb") as f:
            found, size = _pickle_ops(f), data.stat().st_size
    else:
        found, size = _pickle_ops(data), len(data)
    return found is not None and found[0] >= 2 and found[1] == size and (found[2] or not importing)


# --- A pickle stream at byte 0, whatever follows it -------------------------------------------------------

_CALLING_OPS = frozenset({"INST", "OBJ"})
"""Opcodes that call whatever they are given (INST imports it too)."""

_IMPORT_OPS = frozenset({"GLOBAL", "STACK_GLOBAL", "EXT1", "EXT2", "EXT4"})
_CALL_OPS = frozenset({"REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"})
"""An import (:data:`_IMPORT_OPS`) followed, later in the same stream, by one of these is a call: a stream
runs code when it reaches one (text such as ``click\nnumpy\n...`` reads as a bare GLOBAL, then junk)."""

_WALK_MAX_OPS = 1 << 16
"""The most opcodes walked at the start of one file or member: a stream still valid after them (or after
:data:`MAX_PICKLE_MEMBER_BYTES`) counts as a pickle that is not analysed, treated as malicious (no other kind
of file holds that many; fickling is not asked to read it)."""

_LINE_MAX = 1 << 16
"""The longest text argument (protocol 0's newline-ended ones) read whole; a longer one is read past unseen
and counts as valid (an import named by one counts as an import)."""

MAX_NESTING = 3
"""How many archives or compressed streams deep the scan reads (a member of a zip is one deep, the content of
a gzip inside it two); a container found deeper counts as malicious, not analysed."""

MAX_INFLATED_BYTES = 2 << 30
"""The most bytes one file's scan may inflate (compressed zip members, compressed streams, nested archives
read whole); past it the file counts as malicious, not analysed."""

MAX_MEMBERS = 100_000
"""The most members of one archive the scan reads; an archive holding more counts as malicious."""

_NESTED_ZIP_MAX = 64 << 20
"""The largest archive member holding a zip archive that is read (into memory, within
:data:`MAX_INFLATED_BYTES`) to be scanned; a larger one counts as malicious, not analysed."""


class _WalkEnd(Exception):
    """The walk reached a byte the unpickler would stop at (no opcode, a bad argument, the stack)."""


class _WalkCut(Exception):
    """The walk read more than it may: the stream is long and still valid."""


class _OverBudget(Exception):
    """The scan of one file inflated more than :data:`MAX_INFLATED_BYTES`."""


@dataclass
class _Budget:
    """What is left of :data:`MAX_INFLATED_BYTES` for one file's scan."""

    left: int

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise _OverBudget


class _Counted(io.RawIOBase):
    """A readable stream over ``read`` (a decompressor's, a compressed member's) whose bytes count against
    the scan's :class:`_Budget`."""

    def __init__(self, read: Any, budget: _Budget, close: Any = None) -> None:
        super().__init__()
        self._read, self._budget, self._close = read, budget, close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._read(len(buffer))
        self._budget.take(len(data))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._close is not None:
            self._close()
        super().close()


def _zlib_reader(source: Any, first: bytes = b"") -> Any:
    """A ``read(n)`` of what the zlib stream read from ``source`` (after ``first``, its first bytes already
    read) inflates to, ``n`` bytes at most at once."""
    inflater = zlib.decompressobj()
    pending = [first] if first else []

    def read(n: int) -> bytes:
        while not inflater.eof:
            if inflater.unconsumed_tail:
                out = inflater.decompress(inflater.unconsumed_tail, n)
            else:
                chunk = pending.pop() + source.read(1 << 16) if pending else source.read(1 << 16)
                if not chunk:
                    return b""
                out = inflater.decompress(chunk, n)
            if out:
                return out
        return b""

    return read


def _inflating(source: Any, kind: str, budget: _Budget) -> io.BufferedReader:
    """What the ``kind``-compressed stream ``source`` inflates to, read as it goes within ``budget``."""
    import bz2
    import gzip
    import lzma

    if kind in ("zlib", "zfile"):
        return io.BufferedReader(_Counted(_zlib_reader(source, _skip_zfile_header(source, kind)), budget))
    opened = {"gzip": gzip.GzipFile, "bz2": bz2.BZ2File, "xz": lzma.LZMAFile, "lzma": lzma.LZMAFile}[kind]
    inner = opened(fileobj=source) if kind == "gzip" else opened(source)
    return io.BufferedReader(_Counted(inner.read, budget, inner.close))


class _Tape:
    """One member's bytes, read once from ``stream``: those read while it is looked at are kept (up to
    :data:`MAX_PICKLE_MEMBER_BYTES`), so that it can be read again from its start without reading the
    stream twice; once :meth:`rewind` is called no more are kept."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.kept, self.pos, self.keeping, self.overflow = stream, bytearray(), 0, True, False

    def _pull(self, data: bytes) -> bytes:
        if self.keeping:
            if len(self.kept) + len(data) > MAX_PICKLE_MEMBER_BYTES:
                self.keeping, self.overflow = False, True
            else:
                self.kept += data
        self.pos += len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        out = b""
        if self.pos < len(self.kept):
            out = bytes(self.kept[self.pos :] if n < 0 else self.kept[self.pos : self.pos + n])
            self.pos += len(out)
            if n >= 0 and len(out) == n:
                return out
            n = -1 if n < 0 else n - len(out)
        return out + self._pull(self.stream.read(n))

    def readline(self, limit: int = -1) -> bytes:
        out = b""
        if self.pos < len(self.kept):
            stop = len(self.kept) if limit < 0 else min(len(self.kept), self.pos + limit)
            end = self.kept.find(b"\n", self.pos, stop)
            out = bytes(self.kept[self.pos : stop if end < 0 else end + 1])
            self.pos += len(out)
            if out.endswith(b"\n") or len(out) == limit:
                return out
            limit = -1 if limit < 0 else limit - len(out)
        return out + self._pull(self.stream.readline(limit))

    def peek(self, n: int) -> bytes:
        at = self.pos
        data = self.read(n)
        self.pos = at
        return data

    def tell(self) -> int:
        return self.pos

    def rewind(self) -> _Tape:
        """Back to the start, keeping nothing more (to be read once through, by an inflater or tarfile)."""
        if self.overflow or self.pos > len(self.kept):
            raise _WalkCut  # the start is no longer kept: cannot happen within the walk's own limits
        self.pos, self.keeping = 0, False
        return self

    def whole(self) -> bytes | None:
        """All the member's bytes from its start (before :meth:`rewind`: all read so far were kept), or
        None when they are more than the limit."""
        if self.overflow:
            return None
        self.keeping = False
        return _bounded(bytes(self.kept) + self.stream.read(MAX_PICKLE_MEMBER_BYTES + 1 - len(self.kept)))


class _FileReader:
    """A file on disk walked from its start: long arguments are skipped by seeking."""

    def __init__(self, f: Any, size: int) -> None:
        self.f, self.size = f, size

    def read(self, n: int) -> bytes:
        return self.f.read(n)

    def readline(self, limit: int) -> bytes:
        return self.f.readline(limit)

    def skip(self, n: int) -> None:
        if self.f.tell() + n > self.size:
            raise _WalkEnd
        self.f.seek(n, os.SEEK_CUR)


class _TapeReader:
    """A :class:`_Tape` walked from its start: long arguments are read past (and kept, within the limit)."""

    def __init__(self, tape: _Tape) -> None:
        self.tape = tape

    def read(self, n: int) -> bytes:
        return self.tape.read(n)

    def readline(self, limit: int) -> bytes:
        return self.tape.readline(limit)

    def skip(self, n: int) -> None:
        while n > 0:
            got = len(self.tape.read(min(n, 1 << 20)))
            if not got:
                raise _WalkEnd
            n -= got
            if self.tape.overflow:
                raise _WalkCut


_LONG_ARG = object()
"""A text argument longer than :data:`_LINE_MAX`, read past unseen."""

_LENGTH_PREFIX = {-2: (1, False), -3: (4, True), -4: (4, False), -5: (8, False)}
"""Bytes and signedness of the length before each kind of counted argument (``pickletools``' codes)."""


def _walk_arg(reader: Any, op: Any, counter: list[int]) -> Any:
    """The argument of ``op`` read from ``reader`` (and checked as ``pickletools`` does); counted ones
    (strings, bytes) are skipped, not read."""
    import pickletools

    arg = op.arg
    if arg is None:
        return None
    if arg.n >= 0:
        data = reader.read(arg.n)
        counter[0] += len(data)
        if len(data) < arg.n:
            raise _WalkEnd
        return arg.reader(io.BytesIO(data))
    if arg.n == pickletools.UP_TO_NEWLINE:
        text = b""
        for _ in range(2 if arg.name == "stringnl_noescape_pair" else 1):
            line = reader.readline(_LINE_MAX)
            counter[0] += len(line)
            while line and not line.endswith(b"\n") and len(line) == _LINE_MAX:  # a long line: read past it
                text = None  # type: ignore[assignment]
                line = reader.readline(_LINE_MAX)
                counter[0] += len(line)
                if counter[0] > MAX_PICKLE_MEMBER_BYTES:
                    raise _WalkCut
            if not line.endswith(b"\n"):
                raise _WalkEnd
            if text is not None:
                text += line
        if text is None:
            return _LONG_ARG
        if op.name in ("INT", "LONG"):  # the unpickler reads them as C does (strtol: 010, 0x10), not pickletools
            return _c_int(text) if op.name == "INT" else _c_long(text)
        if op.name == "STRING":  # any bytes between the quotes: torch and numpy decode them as utf-8 or latin-1
            return _c_string(text)
        if op.name in ("GLOBAL", "INST"):  # raw utf-8 lines, no escapes undone
            return " ".join(part.decode("utf-8") for part in text.split(b"\n")[:2])
        if op.name == "PERSID":  # raw ASCII
            return text[:-1].decode("ascii")
        return arg.reader(io.BytesIO(text))
    width, signed = _LENGTH_PREFIX[arg.n]
    raw = reader.read(width)
    counter[0] += len(raw)
    if len(raw) < width:
        raise _WalkEnd
    length = int.from_bytes(raw, "little", signed=signed)
    if length < 0:
        raise _WalkEnd
    reader.skip(length)
    return None


_C_SPACE = b" \t\n\v\f\r"
_HEX = "0123456789abcdef"


def _c_long(line: bytes) -> int:
    """The number the C unpickler reads from a LONG line (``PyLong_FromString(s, NULL, 0)`` of the line up to
    a NUL, a trailing ``L`` dropped); ValueError where it stops."""
    if len(line) < 2:
        raise ValueError("short line")
    if line[-2:-1] == b"L":
        line = line[:-2]
    return _py_long(line)


def _py_long(text: bytes) -> int:
    """``PyLong_FromString(text, NULL, 0)``: the C string (up to a NUL) in base 0, blanks around it."""
    return int(text.split(b"\0", 1)[0], 0)


def _c_int(line: bytes) -> int:
    """The number the C unpickler reads from an INT line: ``strtol(s, &end, 0)`` (leading blanks, a sign,
    ``0x`` hexadecimal, ``0`` octal) accepted when it stops at the newline or a NUL, else what
    :func:`_c_long` reads (larger numbers); ValueError where it stops."""
    if len(line) < 2:
        raise ValueError("short line")
    i = 0
    while i < len(line) and line[i] in _C_SPACE:
        i += 1
    sign = 1
    if line[i : i + 1] in (b"+", b"-"):
        sign = -1 if line[i : i + 1] == b"-" else 1
        i += 1
    digits, base = "0123456789", 10
    if line[i : i + 2].lower() == b"0x" and len(line) > i + 2 and chr(line[i + 2]).lower() in _HEX:
        base, digits, i = 16, _HEX, i + 2
    elif line[i : i + 1] == b"0":
        base, digits = 8, "01234567"
    start = i
    while i < len(line) and chr(line[i]).lower() in digits:
        i += 1
    end = i if i > start else 0  # no digits: strtol leaves its end pointer at the line's start
    value = sign * int(line[start:i], base) if i > start else 0
    if line[end : end + 1] in (b"\n", b"\0") and -(1 << 63) <= value < (1 << 63):
        return value
    return _py_long(line)


def _c_string(line: bytes) -> bytes:
    """The bytes the C unpickler reads from a STRING line: quoted alike at both ends, escapes undone
    (``PyBytes_DecodeEscape``); never refused for the bytes' encoding. ValueError where it stops."""
    import codecs

    text = line[:-1]
    if len(text) < 2 or text[:1] not in (b"'", b'"') or text[-1:] != text[:1]:
        raise ValueError("no string quotes")
    return codecs.escape_decode(text[1:-1])[0]


def _importable(text: Any) -> bool:
    """Whether a GLOBAL or INST argument ``module name`` names something the unpickler could import."""
    if text is _LONG_ARG:
        return True
    module, _, name = str(text).partition(" ")
    return all(p.isidentifier() for p in module.split(".")) and all(p.isidentifier() for p in name.split("."))


def _step(op: Any, arg: Any, frames: list[int], memo: set[Any]) -> bool:
    """Play ``op`` on the unpickler's stack (``frames``: how many objects above each MARK) and memo as
    ``pickle`` does, without building anything; False where the unpickler would stop (an empty stack, no
    MARK, a memo entry never stored, an import of no module)."""
    from pickletools import markobject, stackslice

    name = op.name
    if name == "POP":  # pops the last MARK when nothing is above it
        if frames[-1]:
            frames[-1] -= 1
        elif len(frames) > 1:
            frames.pop()
        else:
            return False
        return True
    if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
        if not frames[-1] or (arg is not _LONG_ARG and arg is not None and arg < 0):
            return False
        memo.add(len(memo) if name == "MEMOIZE" else arg)
        return True
    if name in ("GET", "BINGET", "LONG_BINGET") and arg is not _LONG_ARG and arg not in memo:
        return False
    if name == "PROTO" and not 0 <= arg <= 5:
        return False
    if name in ("GLOBAL", "INST") and not _importable(arg):
        return False
    if name == "PERSID" and arg is not _LONG_ARG and not str(arg).isascii():
        return False
    before = op.stack_before
    if markobject in before:
        at = before.index(markobject)
        inside = sum(1 for x in before[at + 1 :] if x is not stackslice)
        if len(frames) < 2 or frames[-1] < inside:
            return False
        frames.pop()
        if frames[-1] < at:
            return False
        frames[-1] -= at
    else:
        if frames[-1] < len(before):
            return False
        frames[-1] -= len(before)
    if name == "MARK":
        frames.append(0)
    else:
        frames[-1] += len(op.stack_after)
    return True


def _runs_code(reader: Any) -> bool | str:
    """Whether the bytes ``reader`` gives from the start of a file or member are a pickle stream the
    unpickler would run: at least two opcodes it would act on, reaching a call (INST or OBJ, or an import
    followed by :data:`_CALL_OPS`), whatever follows (``pickle.load`` stops at STOP and reads no further; a loader may
    then load the next stream, as legacy PyTorch files do: the streams that follow are walked too). Text
    that happens to parse (``hello.``: BINGET of a memo entry never stored) stops at once. A stream still
    valid after :data:`_WALK_MAX_OPS` opcodes or :data:`MAX_PICKLE_MEMBER_BYTES` bytes counts as one too,
    not analysed: what it is instead of True, in words. Read by ``pickletools``' opcode table; nothing is
    built."""
    import pickletools

    ops, read = 0, [0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            while True:  # one stream after another
                frames, memo, imported, code = [0], set(), False, False
                while True:
                    byte = reader.read(1)
                    read[0] += 1
                    op = pickletools.code2op.get(byte.decode("latin-1")) if byte else None
                    if op is None:
                        raise _WalkEnd
                    try:
                        arg = _walk_arg(reader, op, read)
                    except (_WalkEnd, _WalkCut):
                        raise
                    except Exception:  # pickletools' readers raise ValueError and others on bad arguments
                        raise _WalkEnd from None
                    if not _step(op, arg, frames, memo):
                        raise _WalkEnd
                    ops += 1
                    code = code or op.name in _CALLING_OPS or (imported and op.name in _CALL_OPS)
                    imported = imported or op.name in _IMPORT_OPS
                    if ops >= 2 and code:
                        return True
                    if ops >= _WALK_MAX_OPS or read[0] > MAX_PICKLE_MEMBER_BYTES:
                        raise _WalkCut
                    if op.name == "STOP":
                        break
        except _WalkCut:
            return f"a pickle stream still unfinished after {ops:,} opcodes, {read[0]:,} bytes read" if ops else False
        except _OverBudget:
            raise
        except Exception:  # _WalkEnd, or a damaged stream ends (what came before it would have run)
            return False


def _file_runs_code(path: Path, size: int) -> bool | str:
    """:func:`_runs_code` of a file on disk."""
    with open(path, "rb") as f:
        return _runs_code(_FileReader(f, size))


def _is_tar_header(block: bytes) -> bool:
    """Whether ``block`` is a tar header (its checksum holds): the first 512 bytes of a tar archive."""
    import tarfile

    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _content_streams(label: str, stream: Any, depth: int, budget: _Budget) -> list[tuple[str, bytes | None]]:
    """The pickle streams in one member of an archive, or in what a compressed stream inflates to
    (``stream``, read once from its start, ``depth`` containers deep): the member itself when a pickle
    stream that runs code starts it (:func:`_runs_code`), when it is a numpy file holding objects, and
    those of the archive or compressed stream it is (read within :data:`MAX_NESTING`)."""
    tape = _Tape(stream)
    head = tape.peek(512)
    if head.startswith(_NPY_MAGIC):
        if _npy_pickle(tape) is None:
            return []
        tape.keeping = False
        return [(label, _bounded(tape.read(MAX_PICKLE_MEMBER_BYTES + 1)))]
    found = _runs_code(_TapeReader(tape))
    if isinstance(found, str):
        return [(f"{label} ({found})", None)]
    if found:
        try:
            return [(label, tape.whole())]
        except _READ_ERRORS:
            return [(f"{label} (cannot be read)", None)]
    if head.startswith(_LZ4_FRAME_MAGIC):
        return [(f"{label} ({_LZ4_UNREAD})", None)]
    kind = next((k for magic, k in _COMPRESSED_MAGIC if head.startswith(magic)), None)
    container = "zip" if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) else kind
    container = container or ("tar" if _is_tar_header(head) else None)
    if container is None:
        return []
    if depth >= MAX_NESTING:
        return [(f"{label} (archives or compressed streams nested more than {MAX_NESTING} deep)", None)]
    tape.rewind()
    if container == "zip":
        data = tape.read(_NESTED_ZIP_MAX + 1)
        budget.take(len(data))
        if len(data) > _NESTED_ZIP_MAX:
            return [(f"{label} (a zip archive larger than {_NESTED_ZIP_MAX >> 20} MiB)", None)]
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            ambiguous = _zip_ambiguity(io.BytesIO(data), zf, len(data))
            if ambiguous is not None:
                return [(f"{label} ({ambiguous}: two readers see different files)", None)]
            return _zip_streams(zf, depth + 1, budget, prefix=f"{label}/")
    if container == "tar":
        return _tar_streams(tape, "r|", depth + 1, budget, prefix=f"{label}/")
    with _inflating(tape, container, budget) as inflated:
        return _content_streams(f"{label} ({container})", inflated, depth + 1, budget)


_ARCHIVE_ERRORS = (zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError)
"""What reading a damaged or encrypted zip member raises (``zlib.error`` is an OSError's sibling: caught by
name where it can occur). A member of a compression method Python cannot read is told apart before it is
opened (:data:`_READABLE_METHODS`)."""

_READABLE_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})

_READ_ERRORS = (*_ARCHIVE_ERRORS, zlib.error, lzma.LZMAError)
"""What reading a damaged archive member or compressed stream raises."""


def _zip_streams(
    zf: zipfile.ZipFile, depth: int, budget: _Budget, *, prefix: str = ""
) -> list[tuple[str, bytes | None]]:
    """The pickle streams in the members of a zip archive (``depth`` containers deep): its ``*.pkl``
    members whole, and in every member, whatever its name, those :func:`_content_streams` finds. A member
    that cannot be read is a stream that cannot be analysed (None: treated as malicious)."""
    streams: list[tuple[str, bytes | None]] = []
    members = zf.infolist()
    if len(members) > MAX_MEMBERS:
        return [(f"{prefix}(an archive of more than {MAX_MEMBERS:,} members)", None)]
    for m in members:
        label = prefix + m.filename
        if m.is_dir():
            continue
        if m.compress_type not in _READABLE_METHODS:
            streams.append((f"{label} (compressed by a method that cannot be read)", None))
            continue
        try:
            if m.filename.endswith((".pkl", ".pickle")):
                streams.append((label, _zip_member(zf, m)))
                continue
            with zf.open(m) as member:
                if m.compress_type == zipfile.ZIP_STORED:
                    streams += _content_streams(label, member, depth, budget)
                else:
                    with io.BufferedReader(_Counted(member.read, budget)) as counted:
                        streams += _content_streams(label, counted, depth, budget)
        except _READ_ERRORS:
            streams.append((f"{label} (cannot be read)", None))
    return streams


def _zip_ambiguity(f: Any, zf: zipfile.ZipFile, size: int) -> str | None:
    """What makes the zip archive read from ``f`` (``zf``, as Python reads it; ``size`` bytes) read
    differently by another reader (PyTorch's miniz, a reader walking local headers), in words; None when
    nothing does: the end record's central-directory offset is not where Python finds the directory (data
    before it), another end record also ends the file, members overlap, or a local header walked from byte
    0 is not listed."""
    import struct

    end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    if end is None:
        return "no end record"
    stated, location = end[zipfile._ECD_OFFSET], end[zipfile._ECD_LOCATION]  # type: ignore[attr-defined]
    listed = end[zipfile._ECD_ENTRIES_TOTAL] or end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if stated != zf.start_dir and listed:  # an empty directory (weights holding a record by chance) is none
        return f"the end record places the central directory at byte {stated:,}, read at {zf.start_dir:,}"
    tail_at = max(0, size - (1 << 16) - 22)
    f.seek(tail_at)
    tail = f.read()
    at = tail.find(b"PK\x05\x06")
    while at >= 0:
        if tail_at + at != location and len(tail) >= at + 22:
            (comment,) = struct.unpack("<H", tail[at + 20 : at + 22])
            if at + 22 + comment == len(tail):
                return "two end records"
        at = tail.find(b"PK\x05\x06", at + 1)
    starts: dict[int, int] = {}
    for info in sorted(zf.infolist(), key=lambda i: i.header_offset):
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04" or info.header_offset in starts:
            return f"member {info.filename!r} has no local header of its own"
        n, m = struct.unpack("<HH", local[26:30])
        starts[info.header_offset] = info.header_offset + 30 + n + m + info.compress_size
    last = 0
    for start in sorted(starts):
        if start < last:
            return "members overlap"
        last = starts[start]
    if last > zf.start_dir:
        return "members overlap the central directory"
    pos = 0
    while pos < zf.start_dir:  # walk the local headers from byte 0
        f.seek(pos)
        local = f.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            break
        if pos not in starts:
            return f"a local header at byte {pos:,} the central directory does not list"
        flags, csize, n, m = struct.unpack("<H10xI4xHH", local[6:30])
        if flags & 0x08 or csize == 0xFFFFFFFF:  # sizes in a data descriptor or zip64 extra: stop
            break
        pos = pos + 30 + n + m + csize
    return None


def _tar_streams(
    source: Any, mode: str, depth: int, budget: _Budget, *, prefix: str = ""
) -> list[tuple[str, bytes | None]]:
    """The pickle streams in the regular members of the tar archive ``source`` (a path, read with seeks, or
    a stream read once through: ``mode`` says which), found by :func:`_content_streams`: a legacy PyTorch
    checkpoint is a tar whose members are pickles. An archive that cannot be read to its end is one that
    cannot be analysed (None: treated as malicious)."""
    import tarfile

    streams: list[tuple[str, bytes | None]] = []
    try:
        where = {"name": source} if isinstance(source, Path) else {"fileobj": source}
        with tarfile.open(**where, mode=mode) as tar:
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    return [*streams, (f"{prefix}(an archive of more than {MAX_MEMBERS:,} members)", None)]
                if not member.isfile():
                    continue
                data = tar.extractfile(member)
                if data is not None:
                    with data:
                        streams += _content_streams(prefix + member.name, data, depth, budget)
    except (tarfile.TarError, *_READ_ERRORS):
        streams.append((f"{prefix}(a tar archive that cannot be read)", None))
    return streams


def _inflates_to_pickle(path: Path, kind: str) -> bool:
    """Whether the first bytes a compressed file inflates to start a pickle of protocol 2 or later (only
    a few kilobytes are inflated: a compressed data file is not unpacked whole to be told apart)."""
    import bz2
    import gzip
    import lzma
    import zlib

    try:
        if kind in ("zlib", "zfile"):
            with open(path, "rb") as f:
                first = _skip_zfile_header(f, kind)
                head = zlib.decompressobj().decompress(first + f.read(1 << 16), 1 << 12)
        else:
            opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open, "lzma": lzma.open}[kind]
            with opener(path, "rb") as stream:
                head = stream.read(1 << 12)
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return False
    return head[:2] in _PICKLE_MAGIC and _starts_as_pickle(head)


def _pickle_streams(path: Path) -> list[tuple[str, bytes | None]]:
    """The pickle streams inside a file, each read within :data:`MAX_PICKLE_MEMBER_BYTES` (None: over it,
    or unreadable). Every file is looked at whatever its name (a pickle named ``model.onnx`` is one):

    * the file itself when it starts as a pickle of protocol 2 or later does (for a suffix that is no
      pickle format, only when a pickle stream really starts there), or is exactly one pickle of protocol
      0 or 1, or is named as a pickle (``.pkl``, ``.pickle``, ``.joblib``) whatever its bytes;
    * a numpy file (by its magic bytes), or a numpy member of a zip archive, only when it holds objects;
    * a compressed file's content (joblib's ``compress=``): for a suffix that is no pickle format, only
      when what it inflates to starts as a pickle;
    * the ``*.pkl`` members of a zip archive (PyTorch's format);
    * whatever the file's name and kind, the file itself when a pickle stream that runs code starts it,
      whatever follows that stream (:func:`_runs_code`: ``pickle.load`` reads no further than its STOP,
      and needs no PROTO header); and the same for every member of a zip or tar archive (a legacy PyTorch
      checkpoint is a tar) and what a compressed file or member inflates to, read as it goes, archives
      within archives up to :data:`MAX_NESTING` deep and within :data:`MAX_INFLATED_BYTES` in all (past
      either, the file counts as malicious: not analysed)."""
    budget = _Budget(MAX_INFLATED_BYTES)
    try:
        return _file_streams(path, budget)
    except _OverBudget:
        return [(f"(inflates to more than {MAX_INFLATED_BYTES >> 20} MiB when scanned)", None)]


def _file_streams(path: Path, budget: _Budget) -> list[tuple[str, bytes | None]]:
    """:func:`_pickle_streams`, within ``budget``."""
    suffix = path.suffix.lower()
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1 << 20)

    def whole() -> bytes | None:
        # Read only once a stream is found or must be parsed: a README or a file of numbers is never read
        # whole, and a file over the limit never.
        return path.read_bytes() if size <= MAX_PICKLE_MEMBER_BYTES else None

    if head[:2] in _PICKLE_MAGIC and (suffix in PICKLE_SUFFIXES or _starts_as_pickle(head)):
        return [("", whole())]
    # Before anything else the file may also be (an archive's end record, a compressed stream's content):
    # what pickle.load reads is its first bytes.
    found = _file_runs_code(path, size)
    if isinstance(found, str):
        return [(f"({found})", None)]
    if found:
        return [("", whole())]
    if head.startswith(_NPY_MAGIC):
        with open(path, "rb") as f:
            start = _npy_pickle(f, size)
            return [] if start is None else [("", _bounded(f.read(MAX_PICKLE_MEMBER_BYTES + 1)))]
    # ``is_zipfile`` looks for an end-of-archive record anywhere in the last 64 KiB: high-entropy weights
    # hold its four bytes about once in 65,000 files. An archive that cannot be read is malicious where a
    # loader could still unpickle it (a pickle format, whose loader may fall back to reading the bytes as
    # a pickle) or where the file starts as an archive; elsewhere no loader opens it as one, and the
    # checks below read the file for what else it is.
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                with open(path, "rb") as raw:
                    ambiguous = _zip_ambiguity(raw, zf, size)
                if ambiguous is not None:
                    return [(f"({ambiguous}: two readers see different files)", None)]
                return _zip_streams(zf, 1, budget)
        except _ARCHIVE_ERRORS:
            if suffix in PICKLE_SUFFIXES or head.startswith(b"PK"):
                return [("(an archive that cannot be read)", None)]
    if head.startswith(_LZ4_FRAME_MAGIC):
        return [(f"({_LZ4_UNREAD})", None)]
    kind = next((k for magic, k in _COMPRESSED_MAGIC if head.startswith(magic)), None)
    if kind is not None and (suffix in PICKLE_SUFFIXES or _inflates_to_pickle(path, kind)):
        inflated = _inflated(path, kind)
        if inflated is not None and (inflated[:2] in _PICKLE_MAGIC or _whole_pickle(inflated)):
            return [(f"({kind})", inflated)]
        if suffix in _PICKLE_NAMED or suffix not in PICKLE_SUFFIXES:
            # Named as a pickle, or seen to inflate to one: what fickling cannot read is malicious.
            return [(f"({kind})", inflated)]
    if kind is not None:
        try:
            with open(path, "rb") as f, _inflating(f, kind, budget) as stream:
                found = _content_streams(f"({kind})", stream, 1, budget)
        except _READ_ERRORS:  # no compressed stream after all, or a damaged one holding no pickle
            found = []
        if found:
            return found
    if _is_tar_header(head):
        found = _tar_streams(path, "r:", 1, budget)
        if found:
            return found
    # A pickle of protocol 0 or 1 carries no magic bytes but ends with STOP ("."): a file that does not
    # end so is not parsed, and a large one that does is parsed as it is read, not held whole. Under a
    # name no pickle loader reads, one that calls nothing is no threat (and may be text: "hello.").
    importing = suffix not in PICKLE_SUFFIXES
    if size == len(head):
        if _whole_pickle(head, importing=importing):
            return [("", head)]
    else:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"." and _whole_pickle(path, importing=importing):
                return [("", whole())]
    # A file named as a pickle is loaded as one, whatever fickling makes of its bytes.
    return [("", whole())] if suffix in _PICKLE_NAMED else []


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
                f"{member}: not analysed: treated as malicious"
                if member.endswith(")")
                else f"{member}: unpacks to more than {MAX_PICKLE_MEMBER_BYTES >> 20} MiB, not analysed: "
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


SAFETENSORS_MAX_HEADER = 100_000_000
"""The largest safetensors header the ``safetensors`` library reads (its own limit)."""

# Bits per element of each safetensors dtype (the format's own list).
_SAFETENSORS_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}

# ModelProto's fields (onnx.proto) and their protobuf wire types: 0 varint, 2 length-delimited.
_ONNX_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_ONNX_GRAPH_FIELDS = {1: 2, 2: 2, 5: 2, 10: 2, 11: 2, 12: 2, 13: 2, 14: 2, 15: 2, 16: 2}  # 16: metadata_props (1.16)
_ONNX_MAX_FIELDS = 10_000_000
"""The most fields read of a model or its graph (nodes, initializers, inputs...): far more than any model
holds, and a bound on the time a file of tiny fields takes to walk."""
_ONNX_MAX_UNKNOWN = 1_000
"""The most fields of numbers ONNX does not define (a later version's) a model or its graph may hold."""


def check_content(name: str, path: Path, scan: dict[str, Any]) -> None:
    """Refuse (``InputError``) a file named as safetensors, ONNX or skops whose bytes are not one, saying
    what it looks like; ``scan`` is :func:`scan_file`'s entry for it (a pickle under a safe format's name
    is refused as such). Only the file's structure is read: nothing in it is loaded or run."""
    suffix = path.suffix.lower()
    if suffix not in SAFE_FORMATS:
        return
    kind = SAFE_FORMATS[suffix]
    if scan["pickle"]:
        why = "it is pickle-based (it holds pickle streams, which run code when loaded)"
    else:
        check = {"safetensors": _safetensors_problem, "onnx": _onnx_problem, "skops": _skops_problem}[kind]
        try:
            problem = check(path)
        except OSError as exc:
            problem = f"it cannot be read ({exc.strerror or exc})"
        if problem is None:
            return
        why = problem
    looks = _looks_like(path)
    raise InputError(
        f"model artifact file {name} is named as {kind} but is not one: {why}"
        + ("" if looks == "an empty file" else f"; it looks like {looks}"),
        hint=f"save the model as {kind} (or give the file the name of what it is: pickle-based files are "
        "registered as such, flagged as running code when loaded)",
    )


def _looks_like(path: Path) -> str:
    """What a file's first bytes say it is, in words."""
    size = path.stat().st_size
    if size == 0:
        return "an empty file"
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:2] in _PICKLE_MAGIC:
        return f"a pickle (protocol {head[1]})"
    if size <= len(head) and _whole_pickle(head):
        return "a pickle (protocol 0 or 1)"
    if _file_runs_code(path, size):
        return "a pickle stream that imports or calls, followed by other bytes or with no protocol header"
    if head.startswith(_NPY_MAGIC):
        return "a numpy array file"
    if zipfile.is_zipfile(path):
        return "a zip archive"
    compressed = next((k for magic, k in _COMPRESSED_MAGIC if head.startswith(magic)), None)
    compressed = "lz4" if head.startswith(_LZ4_FRAME_MAGIC) else compressed
    if compressed is not None:
        return f"{compressed}-compressed data"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file"
    n = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    if 0 < n <= size - 8 and head[8:9] == b"{":
        return "a safetensors file"
    text = head.decode("utf-8", errors="replace")
    if "\ufffd" not in text[:-4] and all(c.isprintable() or c.isspace() for c in text[:-4]):
        return "JSON" if text.lstrip()[:1] in ("{", "[") else "text"
    if _onnx_problem(path) is None:
        return "an ONNX model"
    return f"no known model format (it starts {head[:8].hex(' ')})"


def _safetensors_problem(path: Path) -> str | None:
    """What makes ``path`` no safetensors file (None: it is one). The layout: an 8-byte little-endian
    header length N, N bytes of JSON naming each tensor's dtype, shape and byte range in the data that
    follows; the ranges must tile that data exactly (the ``safetensors`` library's own rules)."""
    size = path.stat().st_size
    if size < 8:
        return f"it holds {size} bytes, fewer than the 8 of its header's length"
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if 8 + n > size:
            return f"its header claims {n:,} bytes and the file holds {size:,}"
        if n > SAFETENSORS_MAX_HEADER:
            return f"its header claims {n:,} bytes, more than safetensors reads ({SAFETENSORS_MAX_HEADER:,})"
        raw = f.read(n)
    if raw[:1] != b"{":
        return "its header is no JSON object"

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("a name is given twice")
        return dict(pairs)

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=unique)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"its header is not valid JSON ({str(exc)[:100]})"
    if not isinstance(header, dict):
        return "its header is no JSON object"
    body = size - 8 - n
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                return "its __metadata__ is not a map of strings"
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            return f"its tensor {key[:80]!r} is not described by dtype, shape and data_offsets"
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _SAFETENSORS_BITS:
            return f"its tensor {key[:80]!r} has no known dtype ({str(dtype)[:20]!r})"
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            return f"its tensor {key[:80]!r} has no valid shape"
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= body
        ):
            return f"its tensor {key[:80]!r} lies outside the file's {body:,} bytes of data"
        bits = _SAFETENSORS_BITS[dtype]
        for d in shape:
            bits *= d
        if bits % 8 or bits // 8 != offsets[1] - offsets[0]:
            return f"its tensor {key[:80]!r} takes {offsets[1] - offsets[0]:,} bytes, not what its dtype and shape need"
        spans.append((offsets[0], offsets[1]))
    at = 0
    for begin, end in sorted(spans):
        if begin != at:
            return "its tensors' byte ranges overlap or leave gaps"
        at = end
    if at != body:
        return f"its tensors take {at:,} bytes of the {body:,} after the header"
    return None


def _varint(f: Any) -> int | None:
    """A protobuf varint read from ``f`` (None: the file ends or the varint runs over 10 bytes)."""
    value = 0
    for shift in range(0, 70, 7):
        byte = f.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
    return None


def _protobuf_fields(f: Any, end: int, known: dict[int, int]) -> tuple[dict[int, tuple[int, int]], str | None]:
    """Walk the fields of a protobuf message from ``f``'s position to ``end`` without reading the
    contents of length-delimited ones: for each field number its first value (a varint's value, or a
    length-delimited field's offset and length), and what is wrong (None: the message is well formed,
    the fields in ``known`` of the wire type it gives)."""
    first: dict[int, tuple[int, int]] = {}
    fields = unknown = 0
    while f.tell() < end:
        at = f.tell()
        fields += 1
        if fields > _ONNX_MAX_FIELDS:
            return first, f"it holds more than {_ONNX_MAX_FIELDS:,} fields"
        tag = _varint(f)
        if tag is None:
            return first, f"a field at byte {at} is cut short"
        number, wire = tag >> 3, tag & 7
        if number == 0 or (number in known and known[number] != wire):
            return first, f"byte {at} starts no field it can hold (field {number}, wire type {wire})"
        unknown += number not in known
        if unknown > _ONNX_MAX_UNKNOWN:
            return first, f"it holds more than {_ONNX_MAX_UNKNOWN:,} fields ONNX does not define"
        if wire == 0:
            value = _varint(f)
            if value is None:
                return first, f"field {number} at byte {at} is cut short"
            first.setdefault(number, (value, 0))
        elif wire == 2:
            length = _varint(f)
            if length is None or f.tell() + length > end:
                return first, f"field {number} at byte {at} runs past the end"
            first.setdefault(number, (f.tell(), length))
            f.seek(length, os.SEEK_CUR)
        elif wire in (1, 5):
            f.seek(8 if wire == 1 else 4, os.SEEK_CUR)
        else:
            return first, f"byte {at} starts a field of wire type {wire}, which an ONNX model does not use"
    if f.tell() != end:
        return first, "its last field runs past the end"
    return first, None


def _onnx_problem(path: Path) -> str | None:
    """What makes ``path`` no ONNX model (None: it is one, as far as its top-level fields and its
    graph's go). Read as protobuf wire format: a ModelProto with an IR version and a graph whose fields
    are well formed; no tensor data is read and nothing is loaded."""
    size = path.stat().st_size
    if size == 0:
        return "it is empty"
    with open(path, "rb") as f:
        fields, problem = _protobuf_fields(f, size, _ONNX_MODEL_FIELDS)
        if problem is not None:
            return f"it is no protobuf ModelProto: {problem}"
        if 1 not in fields or fields[1][0] <= 0:
            return "it names no IR version"
        if 7 not in fields:
            return "it holds no graph"
        start, length = fields[7]
        f.seek(start)
        _, problem = _protobuf_fields(f, start + length, _ONNX_GRAPH_FIELDS)
        if problem is not None:
            return f"its graph is malformed: {problem}"
    return None


_SKOPS_MEMBER = re.compile(r"(?:[0-9]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(?:npy|npz|bin)")
"""The members skops writes beside ``schema.json`` (skops/io/_numpy.py, _scipy.py, _general.py): a numpy
array saved without pickles as ``<id>.npy``, a sparse matrix as ``<id>.npz``, bytes as ``<uuid4>.bin``."""


def _skops_problem(path: Path) -> str | None:
    """What makes ``path`` no skops file (None: it is one): a zip archive holding ``schema.json``, a JSON
    object naming the skops protocol, and beside it only members of the kinds skops writes
    (:data:`_SKOPS_MEMBER`; their contents are scanned like any file's). The schema is read within the
    archive limits; nothing is loaded."""
    if not zipfile.is_zipfile(path):
        return "it is no zip archive"
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                member = zf.getinfo("schema.json")
            except KeyError:
                return "the archive holds no schema.json"
            names = zf.namelist()
            extra = [n for n in names if n != "schema.json" and not _SKOPS_MEMBER.fullmatch(n)]
            if extra:
                return f"the archive holds {extra[0][:100]!r}, a member skops does not write"
            if len(set(names)) != len(names):
                return "the archive holds two members of the same name"
            if member.compress_type not in _READABLE_METHODS:
                return "its schema.json is compressed by a method that cannot be read"
            data = _zip_member(zf, member)
    except (*_ARCHIVE_ERRORS, zlib.error) as exc:
        return f"the archive cannot be read ({str(exc)[:100]})"
    if data is None:
        return f"its schema.json unpacks to more than {MAX_PICKLE_MEMBER_BYTES >> 20} MiB"
    try:
        schema = json.loads(data)
    except ValueError:
        return "its schema.json is not valid JSON"
    if not isinstance(schema, dict) or "protocol" not in schema:
        return "its schema.json names no skops protocol"
    return None


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
