"""How the release gate gets a model's predictions: a predictions file, a Python callable, a scikit-learn
estimator (in memory, or a ``.skops`` file) or an ONNX model.

A stored model file is never unpickled. A ``.skops`` file is loaded by ``skops.io``, which rebuilds only
types it trusts (scikit-learn's, numpy's); a file naming any other type is refused with the types
named, unless the caller lists them in ``trusted`` (which a CLI user must type out). An ONNX model is
run by ``onnxruntime`` (the ``onnx`` extra): a graph of operators, no code. Anything pickle-based is
refused here whatever its scan said: train it again and save it as skops or ONNX, or give predictions.

Model inputs (``model_inputs``): a dataset with a single text column gives its texts (a 1-D array of
strings); otherwise the numeric columns, the images' grayscale pixels (0..1, flattened at their stored
size) and the embeddings, side by side as one float32 matrix, in schema order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from dataward.domain.errors import InputError, missing_file
from dataward.domain.schema import ColumnKind, Schema


class Predictor(Protocol):
    """Labels for the rows of ``table`` (raw records), one per row; ``probe_ids`` name the rows.

    ``source`` says where the predictions come from (the artifact's file that was run, a predictions file
    and its SHA-256, a callable or an estimator given in Python): a gate's verdict is worth what its
    predictions are, so the gate records it and the release attestation carries it."""

    source: dict[str, str]

    def predict(self, table: pa.Table, probe_ids: Sequence[str]) -> list[str]: ...


def label_text(value: Any) -> str:
    """A prediction as a label string (``1.0`` and ``1`` are both ``"1"``; a missing one is ``""``), or a
    language model's answer as text."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def model_inputs(table: pa.Table, schema: Schema) -> np.ndarray:
    """The inputs a scikit-learn or ONNX model of this dataset takes (see the module docstring)."""
    from dataward.gates.features.image import gray_pixels

    if len(schema.inputs) == 1 and schema.inputs[0].kind is ColumnKind.TEXT:
        return np.asarray([v or "" for v in table.column(schema.inputs[0].name).to_pylist()], dtype=object)
    parts = []
    for col in schema.inputs:
        values = table.column(col.name).to_pylist()
        if col.kind is ColumnKind.NUMERIC:
            parts.append(np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)[:, None])
        elif col.kind is ColumnKind.IMAGE:
            parts.append(np.stack([gray_pixels(v).ravel() / 255.0 for v in values]))
        elif col.kind is ColumnKind.EMBEDDING:
            parts.append(np.asarray(values, dtype=np.float64))
        else:
            raise InputError(
                f"column {col.name!r} ({col.kind.value}) has no standard model input",
                hint="give the gate a Python callable or a predictions file instead",
            )
    if not parts:
        raise InputError("the dataset has no input columns a model can take")
    return np.hstack(parts).astype(np.float32)


class CallablePredictor:
    """A Python callable taking the raw records (an Arrow table) and returning one label per row."""

    def __init__(self, fn: Callable[[pa.Table], Sequence[Any]]) -> None:
        self.fn = fn
        self.source = {"kind": "callable", "name": _qualified_name(fn)}

    def predict(self, table: pa.Table, probe_ids: Sequence[str]) -> list[str]:
        out = [label_text(v) for v in list(self.fn(table))]
        if len(out) != table.num_rows:
            raise InputError(f"the model callable returned {len(out)} predictions for {table.num_rows} rows")
        return out


class EstimatorPredictor:
    """A scikit-learn estimator (or anything with ``predict``) fed ``model_inputs``."""

    def __init__(self, estimator: Any, schema: Schema, source: dict[str, str] | None = None) -> None:
        if not hasattr(estimator, "predict"):
            raise InputError(f"{type(estimator).__name__} has no predict method")
        self.estimator = estimator
        self.schema = schema
        self.source = source or {"kind": "estimator", "name": _qualified_name(type(estimator))}

    def predict(self, table: pa.Table, probe_ids: Sequence[str]) -> list[str]:
        return [label_text(v) for v in self.estimator.predict(model_inputs(table, self.schema))]


def load_skops(path: Path, schema: Schema, trusted: Sequence[str] = ()) -> EstimatorPredictor:
    """A ``.skops`` estimator, rebuilt only from types skops trusts and those listed in ``trusted``."""
    import skops.io as sio

    _refuse_skops_bomb(path)
    untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in set(trusted)]
    if untrusted:
        raise InputError(
            f"the skops file {path.name} names types skops does not trust: {', '.join(untrusted[:10])}",
            hint="loading them could run their code: review them, then pass each with --trust TYPE",
        )
    source = {"kind": "artifact", "file": path.name, "format": "skops"}
    return EstimatorPredictor(sio.load(path, trusted=list(trusted) or None), schema, source)


MAX_SKOPS_UNPACKED_BYTES = 2 << 30
"""The most a ``.skops`` file's members may unpack to together: what skops loads is held in memory."""

MAX_SKOPS_RATIO = 100
"""Beyond 64 MiB unpacked, the most a ``.skops`` file may unpack to per byte stored (a zip bomb of a few
hundred kilobytes declares gigabytes)."""


def _refuse_skops_bomb(path: Path) -> None:
    """Refuse a ``.skops`` file whose members declare more than the limits, before skops unpacks any.

    Declared sizes bound what is unpacked: Python's ``zipfile`` (which skops reads with) stops at a member's
    declared size and refuses its checksum when more would follow."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            unpacked = sum(m.file_size for m in zf.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"the skops file {path.name} is not a readable zip archive: {exc}") from None
    stored = max(path.stat().st_size, 1)
    if unpacked > MAX_SKOPS_UNPACKED_BYTES or (unpacked > 64 << 20 and unpacked > MAX_SKOPS_RATIO * stored):
        raise InputError(
            f"the skops file {path.name} unpacks to {unpacked:,} bytes from {stored:,} "
            f"(at most {MAX_SKOPS_UNPACKED_BYTES:,} bytes, and {MAX_SKOPS_RATIO} times its size beyond 64 MiB)",
            hint="a file that unpacks this far is refused unread; give the gate its predictions instead",
        )


class OnnxPredictor:
    """An ONNX model run by onnxruntime: its first input fed ``model_inputs``, its first output the labels."""

    def __init__(self, path: Path, schema: Schema) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError("ONNX models need onnxruntime", hint="pip install 'dataward[onnx]'") from None
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise InputError(f"{path.name} is not an ONNX model onnxruntime can run: {exc}") from None
        self.schema = schema
        self.source = {"kind": "artifact", "file": path.name, "format": "onnx"}

    def predict(self, table: pa.Table, probe_ids: Sequence[str]) -> list[str]:
        x = model_inputs(table, self.schema)
        first = self.session.get_inputs()[0]
        feed = x.reshape(-1, 1) if x.dtype == object else x
        labels = self.session.run([self.session.get_outputs()[0].name], {first.name: feed})[0]
        return [label_text(v) for v in np.asarray(labels).ravel()]


class FilePredictor:
    """Predictions made elsewhere: a CSV, JSON Lines or Parquet file of ``probe_id`` and ``prediction``
    for every row of the probe set (``dataward model probe-inputs`` writes it)."""

    def __init__(self, path: str | Path, ref: str = "MODEL@VERSION") -> None:
        path = Path(path)
        self.ref = ref
        if not path.is_file():
            raise missing_file(path)
        suffix = path.suffix.lower()
        try:
            if suffix == ".parquet":
                import pyarrow.parquet as pq

                # ParquetFile.read on the calling thread: pq.read_table would start Arrow's I/O
                # thread pool (see dataward.store.tables.read_parquet_bytes).
                rows = pq.ParquetFile(path).read(use_threads=False).to_pylist()
            elif suffix in (".jsonl", ".ndjson"):
                rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
            else:
                import csv

                with path.open(newline="", encoding="utf-8") as fh:
                    rows = list(csv.DictReader(fh))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read predictions file {path.name}: {exc}") from None
        if not rows or not {"probe_id", "prediction"} <= set(rows[0]):
            raise InputError(
                f"predictions file {path.name} needs the columns probe_id and prediction",
                hint="write one row per row of `dataward model probe-inputs`",
            )
        self.by_id = _one_prediction_each(rows, path.name)
        self.source = {"kind": "predictions file", "name": path.name, "sha256": _sha256(path)}

    def predict(self, table: pa.Table, probe_ids: Sequence[str]) -> list[str]:
        """The file's prediction for each of ``probe_ids``; answers to probes not asked are left unread.

        Probes are matched by id: a probe id is a digest of what was asked (``dataward.release.probe_ids``),
        so a file made for an older probe set (other triggers or phrases, another validation version)
        answers only the rows still asked, and the rest are refused here rather than read as answers to
        other rows."""
        missing = [p for p in probe_ids if p not in self.by_id]
        if missing:
            asked = set(probe_ids)
            stale = sum(1 for p in self.by_id if p not in asked)
            why = (
                f"; {stale} of its predictions are for probes no longer asked: the probe set changed since "
                "the file was made (a merged contribution, new findings of the data gate, a new validation version)"
                if stale
                else ""
            )
            raise InputError(
                f"the predictions file has no prediction for {len(missing)} of {len(probe_ids)} probe rows, "
                f"e.g. {missing[0]}{why}",
                hint=f"write the probe set again with `dataward model probe-inputs {self.ref} -o probes.parquet` "
                "and predict every row of it",
            )
        return [self.by_id[p] for p in probe_ids]


def _one_prediction_each(rows: Sequence[dict[str, Any]], name: str) -> dict[str, str]:
    """``probe_id`` -> prediction; a probe given two different predictions is refused: which one is the
    model's is not the gate's to guess, and taking the last would judge other answers than a reader of
    the file sees first."""
    by_id: dict[str, str] = {}
    for r in rows:
        probe_id, prediction = str(r["probe_id"]), label_text(r["prediction"])
        if by_id.setdefault(probe_id, prediction) != prediction:
            raise InputError(
                f"predictions file {name} gives probe {probe_id} more than once, with different predictions",
                hint="write one row per row of `dataward model probe-inputs`",
            )
    return by_id


def _qualified_name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _sha256(path: Path) -> str:
    import hashlib

    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


RUNNABLE_SUFFIXES = frozenset({".onnx", ".skops"})
"""Model files the gate can run itself."""

OTHER_MODEL_SUFFIXES = frozenset(
    {
        ".safetensors",
        ".h5",
        ".hdf5",
        ".keras",
        ".tflite",
        ".gguf",
        ".ggml",
        ".pb",
        ".mlmodel",
        ".msgpack",
        ".ort",
        ".ubj",
        ".cbm",
        ".pte",
        ".params",
        ".engine",
        ".plan",
        # PyTorch's and others' checkpoints: pickle-capable formats, a model whatever their scan found in them.
        # Not ``.bin``: ONNX external data is often named so. A pickle-based ``.bin`` (an old
        # ``pytorch_model.bin``, or a zip of pickles) is found by the artifact scan, whatever its name.
        ".pt",
        ".pth",
        ".ckpt",
    }
)
"""Model files of formats the gate cannot run, which other programs load as the model."""


def is_model_file(name: str) -> bool:
    """Whether a file of this name is named as a model a consumer could load: a runnable ``.onnx`` or
    ``.skops``, or weights of another format. A name is not the last word: a model renamed without its
    suffix is found by its bytes (:func:`model_kind`), a pickle-based file by the artifact scan."""
    return Path(name).suffix.lower() in RUNNABLE_SUFFIXES | OTHER_MODEL_SUFFIXES


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_GGML_MAGICS = (b"GGUF", b"lmgg", b"fmgg", b"tjgg")  # GGUF, and the older GGML, GGMF and GGJT files


def model_kind(path: Path) -> str | None:
    """The model format ``path``'s bytes are, whatever its name (None: none this knows). What it reads is
    the file's structure only, nothing loaded or run: a skops archive (a zip holding a ``schema.json`` of
    the skops protocol), safetensors and ONNX as registration checks them (``artifacts.check_content``),
    HDF5 (Keras), GGUF/GGML and TFLite by their magic bytes, and a zip archive holding a file named as a
    model (a Keras ``.keras`` saved under another name). Plain data (text, ``.npy`` or ``.npz`` numbers,
    Parquet, ONNX external data) is none. Pickle-based files are the artifact scan's to find."""
    import zipfile

    from dataward.release.artifacts import _onnx_problem, _safetensors_problem, _skops_problem

    try:
        with path.open("rb") as f:
            head = f.read(16)
        if not head:
            return None
        if head.startswith(_HDF5_MAGIC):
            return "hdf5"
        if head.startswith(_GGML_MAGICS):
            return "gguf"
        if head[4:8] == b"TFL3":
            return "tflite"
        if zipfile.is_zipfile(path):
            if _skops_problem(path) is None:
                return "skops"
            try:
                with zipfile.ZipFile(path) as zf:
                    if any(is_model_file(member) for member in zf.namelist()):
                        return "zip archive holding a model"
            except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError):
                pass
            return None
        if _safetensors_problem(path) is None:
            return "safetensors"
        if _onnx_problem(path) is None:
            return "onnx"
    except OSError:
        return None
    return None


def _model_files(files: Sequence[Path], folder: Path, pickled: Collection[str] | None) -> list[Path]:
    """The files of an artifact that a consumer could load as its model: runnable ones, other model
    formats, anything pickle-based, and a model under a name that does not say so (:func:`model_kind`:
    ``serving/model`` holding a skops archive), whatever its name: pickle-based ones as ``pickled``
    names them (the scan made at registration, by path in the artifact), or by scanning each file now
    when it is None. The files are the ones restored from the store and checked against the signed
    manifest: their bytes are the registered ones."""
    from dataward.release.artifacts import scan_file

    def pickle_based(p: Path) -> bool:
        return scan_file(p.name, p)["pickle"] if pickled is None else str(p.relative_to(folder)) in pickled

    return [p for p in files if is_model_file(p.name) or pickle_based(p) or model_kind(p) is not None]


def artifact_predictor(
    folder: Path, schema: Schema, trusted: Sequence[str] = (), *, pickled: Collection[str] | None = None
) -> Predictor:
    """A predictor for a stored artifact restored into ``folder``: its one ``.onnx`` or ``.skops`` file.

    The artifact must hold no other model file (another ``.onnx`` or ``.skops``, weights of another format,
    anything pickle-based, a model under a name that does not say so): the release signs every file of
    the artifact, and a gate that ran a clean decoy would vouch for a backdoored model a consumer loads
    from the file beside it. ``pickled``: the
    artifact's pickle-based files as its registration scan found them (else every file is scanned here)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    models = _model_files(files, folder, pickled)
    runnable = [p for p in models if p.suffix.lower() in RUNNABLE_SUFFIXES]
    if len(runnable) == 1 and len(models) == 1:
        model = runnable[0]
        return OnnxPredictor(model, schema) if model.suffix.lower() == ".onnx" else load_skops(model, schema, trusted)
    if len(runnable) >= 1:
        raise InputError(
            "the gate runs an artifact's one model file, and this one holds "
            f"{len(models)} files a consumer could load as the model: "
            + ", ".join(str(p.relative_to(folder)) for p in models[:5]),
            hint="register the model as one .onnx or .skops file (with only data files beside it), or give "
            "the gate predictions of the model as it will be used (--predictions FILE)",
        )
    raise InputError(
        "the gate can run a model stored as one .onnx or one .skops file; this one holds "
        + ", ".join(p.name for p in files[:5]),
        hint="give its predictions (--predictions FILE) or, in Python, a callable (model_gate(..., predict=fn)); "
        "pickle-based files are never loaded",
    )
