"""A contribution in partitions: Parquet files or fsspec URLs, Arrow datasets, record-batch iterators, tables.

A partitioned scan reads the contribution four times at most, one partition at a time and on any
engine (``dataward.gates.engine``):

1. **survey**: each partition's row count and labels (the class list and the reference sample need them)
   and, for a baseline in partitions, every record's input hash (exact duplicates), in the same read;
2. **sample** (only for featurizers that learn a geometry, such as the text SVD): the rows the
   featurizer is fitted on together with the reference, the same rows as the one-shot scan;
3. **detector samples** (only for detectors that ask, ``Detector.contribution_sample``: ``outliers``
   above ``EXACT_PEERS_MAX`` records): seeded rows of the whole contribution that the record stage
   compares every record with, the same rows as the one-shot scan;
4. **score**: each partition is normalized (validated, record ids hashed), featurized with the fitted
   pipeline, and every detector's record stage (``Detector.score_records``) runs on it, from the fitted
   state broadcast to the workers.

The scan then judges the whole contribution once from the concatenated outputs
(``Detector.finish``), exactly as a one-shot scan would. Partitions must be readable where the
engine's workers run: with a Dask cluster, give URLs on a shared store (``s3://``, ``gs://``, a shared
file system), not a local folder.

What a worker returns is checked in the scanning process before it is used (``check_scored``): each
partition's record count, labels, record ids and file rows against what was sent (the ward's own
reading of the rows it holds, the survey, the file's columns), the shape of every detector's outputs,
and that no detector whose record stage never skips (``Detector.record_stage_skips``) says it did. The
checks cost no scoring; the scores themselves are the workers' (docs/threat-model.md).
"""

from __future__ import annotations

import dataclasses
import numbers
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from dataward.domain.errors import InputError, IntegrityViolation
from dataward.domain.limits import InputLimits
from dataward.domain.records import record_id_array
from dataward.domain.schema import RECORD_ID, Schema
from dataward.gates.base import POSITION, Detector, GateData
from dataward.gates.engine import Engine
from dataward.gates.features import FeaturePipeline
from dataward.gates.hashing import input_hashes
from dataward.gates.inputs import ROW, Normalized, check_unique_columns, normalize, take_rows
from dataward.gates.neighbours import clear_cache

PARTITION_ROWS = 100_000
"""Rows per partition when the contribution is one table or a stream of small batches."""


class Partition(ABC):
    """One piece of the contribution that any worker can read on its own."""

    @abstractmethod
    def read(self) -> pa.Table:
        """The partition's rows, read where the worker runs."""

    @abstractmethod
    def describe(self) -> str:
        """Where the rows come from, for error messages."""

    def held(self) -> pa.Table | None:
        """The rows themselves when this process holds them (and sends them to a worker), else None:
        what a worker returns of them is then checked against this process's own reading."""
        return None

    def columns(self) -> tuple[str, ...] | None:
        """The partition's column names when known without reading its rows (None: unknown): whether
        its record ids and file rows come with it or are made by the worker that reads it."""
        return None


@dataclass(frozen=True)
class TablePartition(Partition):
    """Rows held in memory (shipped to the worker that scores them)."""

    table: pa.Table
    label: str = "rows"

    def read(self) -> pa.Table:
        return self.table

    def describe(self) -> str:
        return f"partition {self.label}"

    def held(self) -> pa.Table:
        return self.table

    def columns(self) -> tuple[str, ...]:
        return tuple(self.table.column_names)


@dataclass(frozen=True)
class ParquetPartition(Partition):
    """Row groups of one Parquet file, local or at any fsspec URL."""

    url: str
    row_groups: tuple[int, ...] | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    names: tuple[str, ...] | None = None
    """The file's column names, read from its footer when it was listed (None: not known)."""

    def read(self) -> pa.Table:
        try:
            with fsspec.open(self.url, "rb", **dict(self.storage_options)) as f:
                reader = pq.ParquetFile(f)
                if self.row_groups is None:
                    return reader.read()
                return reader.read_row_groups(list(self.row_groups))
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.describe()} could not be read: {exc}") from exc

    def describe(self) -> str:
        groups = "" if self.row_groups is None else f" (row groups {self.row_groups[0]}-{self.row_groups[-1]})"
        return f"partition {self.url}{groups}"

    def columns(self) -> tuple[str, ...] | None:
        return self.names


@dataclass(frozen=True)
class FragmentPartition(Partition):
    """One fragment of a pyarrow dataset (a file of a ``FileSystemDataset``)."""

    fragment: Any

    def read(self) -> pa.Table:
        try:
            return self.fragment.to_table()
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.describe()} could not be read: {exc}") from exc

    def describe(self) -> str:
        return f"partition {getattr(self.fragment, 'path', self.fragment)}"


def is_partitioned(data: Any) -> bool:
    """Whether ``scan`` must read ``data`` in partitions (it is not a table held in memory)."""
    if isinstance(data, list | tuple):
        return bool(data) and all(isinstance(d, str | Path | Partition) for d in data)
    return isinstance(data, str | Path | pads.Dataset | Iterator | Partition)


def partitions_of(
    data: Any,
    *,
    partition_rows: int = PARTITION_ROWS,
    storage_options: Mapping[str, Any] | None = None,
    spill: Path | None = None,
    what: str = "contribution",
) -> list[Partition]:
    """The partitions of a contribution given as a table, Parquet path(s) or URL(s) (a file, a folder or a
    glob), an Arrow dataset, a list of ``Partition``, or an iterator of record batches (written to
    Parquet files under ``spill`` as they come, so a stream is never held whole). ``what`` names the side
    in errors."""
    if isinstance(partition_rows, bool) or not isinstance(partition_rows, numbers.Integral) or partition_rows < 1:
        raise InputError(f"partition_rows must be a whole number of at least 1, got {partition_rows!r}")
    opts = dict(storage_options or {})
    if isinstance(data, pd.DataFrame):
        check_unique_columns(list(data.columns), what)
        data = pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return [
            TablePartition(data.slice(start, partition_rows), f"rows {start + 1}-{min(start + partition_rows, n)}")
            for n in [data.num_rows]
            for start in range(0, max(n, 1), partition_rows)
        ]
    if isinstance(data, Partition):
        return [data]
    if isinstance(data, str | Path):
        return _parquet_partitions([str(data)], partition_rows, opts)
    if isinstance(data, pads.FileSystemDataset):
        return [FragmentPartition(f) for f in data.get_fragments()]
    if isinstance(data, pads.Dataset):
        return partitions_of(iter(data.to_batches()), partition_rows=partition_rows, spill=spill, what=what)
    if isinstance(data, list | tuple):
        if all(isinstance(d, Partition) for d in data):
            return list(data)
        if all(isinstance(d, str | Path) for d in data):
            return _parquet_partitions([str(d) for d in data], partition_rows, opts)
        raise InputError("a list contribution must hold Parquet paths or URLs, or Partition objects")
    if isinstance(data, Iterable):
        if spill is None:
            raise InputError("a stream of record batches needs a folder to spill its partitions to")
        return _spilled(data, partition_rows, spill)
    raise InputError(
        f"the contribution must be a pandas DataFrame or a pyarrow Table, Parquet path(s) or URL(s), an Arrow "
        f"dataset or an iterator of record batches, not {type(data).__name__}"
    )


def _parquet_partitions(urls: list[str], partition_rows: int, opts: dict[str, Any]) -> list[Partition]:
    out: list[Partition] = []
    for url in urls:
        fs, _, paths = fsspec.get_fs_token_paths(url, storage_options=opts)
        files: list[str] = []
        for path in paths:
            if fs.isdir(path):
                files.extend(sorted(p for p in fs.find(path) if p.endswith(".parquet")))
            else:
                files.append(path)
        if not files:
            raise InputError(f"no Parquet file found at {url}")
        protocol = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
        for path in files:
            full = path if protocol in ("file", "local") else f"{protocol}://{path}"
            try:
                with fs.open(path, "rb") as f:
                    meta = pq.ParquetFile(f).metadata
                names = tuple(meta.schema.to_arrow_schema().names)
            except (OSError, pa.ArrowException) as exc:
                raise InputError(f"partition {full} could not be read: {exc}") from exc
            group, rows, start = [], 0, 0
            for i in range(meta.num_row_groups):
                group.append(i)
                rows += meta.row_group(i).num_rows
                if rows >= partition_rows or i == meta.num_row_groups - 1:
                    whole = start == 0 and i == meta.num_row_groups - 1
                    out.append(ParquetPartition(full, None if whole else tuple(group), opts, names))
                    group, rows, start = [], 0, i + 1
            if meta.num_row_groups == 0:
                out.append(ParquetPartition(full, None, opts, names))
    return out


def _spilled(batches: Iterable[Any], partition_rows: int, folder: Path) -> list[Partition]:
    out: list[Partition] = []
    pending: list[pa.RecordBatch] = []
    rows = 0

    def flush() -> None:
        nonlocal pending, rows
        if not pending:
            return
        path = folder / f"part-{len(out):06d}.parquet"
        table = pa.Table.from_batches(pending)
        pq.write_table(table, path)
        out.append(ParquetPartition(str(path), names=tuple(table.column_names)))
        pending, rows = [], 0

    for batch in batches:
        if isinstance(batch, pa.Table):
            pending.extend(batch.to_batches())
        elif isinstance(batch, pa.RecordBatch):
            pending.append(batch)
        else:
            raise InputError(f"a contribution stream must yield Arrow record batches, not {type(batch).__name__}")
        rows += batch.num_rows
        if rows >= partition_rows:
            flush()
    flush()
    return out


def spill_folder() -> tempfile.TemporaryDirectory:
    """The scan's spill folder (``TMPDIR``). The report keeps some of its files memory-mapped (record ids,
    file rows): removed with the folder, they stay readable until the report is dropped (POSIX); where
    an open mapping keeps a file from being removed, the folder is left behind instead of failing."""
    return tempfile.TemporaryDirectory(prefix="dataward-scan-", ignore_cleanup_errors=True)


# --- the work done on each partition --------------------------------------------------------------


@dataclass(frozen=True)
class SurveyState:
    schema: Schema
    limits: InputLimits
    what: str = "contribution"
    hashes: bool = False
    """Also take every record's input hash (``hashing.input_hashes``) while the partition is read."""


@dataclass(frozen=True)
class Survey:
    """Row counts and labels of every partition, in order (and the records' input hashes when asked)."""

    sizes: list[int]
    labels: np.ndarray
    hashes: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return int(sum(self.sizes))

    @property
    def offsets(self) -> list[int]:
        return [int(x) for x in np.concatenate([[0], np.cumsum(self.sizes)[:-1]])] if self.sizes else []


def _unbounded(limits: InputLimits) -> InputLimits:
    # The row limit is for the whole contribution (checked on the survey); image headers per partition.
    return dataclasses.replace(limits, max_rows=2**62)


def shared_labels(labels: np.ndarray) -> np.ndarray:
    """The same labels, every row pointing to one string object per distinct label (8 bytes a row
    instead of a string object each: about 60 MB less per million records)."""
    if labels.shape[0] == 0:
        return labels
    distinct, inverse = np.unique(labels, return_inverse=True)
    return distinct[inverse]


def _side_rows(part: Partition, state: SurveyState, limits: InputLimits | None = None) -> Normalized:
    """One partition of a side, read and normalized (without record ids: only the contribution's
    record stage needs them)."""
    return normalize(part.read(), state.schema, state.what, with_ids=False, limits=limits)


def survey_one(part: Partition, state: SurveyState) -> tuple[int, np.ndarray, np.ndarray | None]:
    norm = _side_rows(part, state, _unbounded(state.limits))
    hashes = input_hashes(norm.table, state.schema) if state.hashes else None
    return len(norm), shared_labels(norm.labels), hashes


def survey(
    engine: Engine,
    parts: list[Partition],
    schema: Schema,
    limits: InputLimits,
    what: str = "contribution",
    *,
    hashes: bool = False,
) -> Survey:
    out = engine.map(survey_one, parts, SurveyState(schema, limits, what, hashes), describe=_describe)
    for part, got in zip(parts, out, strict=True):
        _check_survey(part, got, hashes)
    labels = np.concatenate([labels for _, labels, _ in out]) if out else np.zeros(0, dtype=object)
    hashed = None
    if hashes:
        hashed = np.concatenate([h for _, _, h in out]) if out else np.zeros(0, dtype=np.uint64)
    survey_ = Survey([n for n, _, _ in out], labels, hashed)
    if survey_.rows > limits.max_rows:
        from dataward.domain.limits import limit_error, limit_problem

        raise limit_error(
            "max_rows",
            limit_problem("max_rows", limits.max_rows, survey_.rows, what="the contribution's row count", bytes_=False),
        )
    return survey_


def _check_survey(part: Partition, got: object, hashes: bool) -> None:
    """Refuse a worker's survey of ``part`` whose counts disagree with themselves or with the rows this
    process holds (the class list and the samples are drawn from it)."""
    if not (isinstance(got, tuple) and len(got) == 3 and isinstance(got[0], numbers.Integral)):
        raise _untrusted(part, "its survey is not a row count, labels and hashes")
    n, labels, hashed = got
    if not isinstance(labels, np.ndarray) or labels.shape != (n,):
        raise _untrusted(part, f"its survey counts {n} records and gives other than {n} labels")
    if hashes and (not isinstance(hashed, np.ndarray) or hashed.shape != (n,)):
        raise _untrusted(part, f"its survey counts {n} records and gives other than {n} input hashes")
    held = part.held()
    if held is not None and held.num_rows != n:
        raise _untrusted(part, f"its survey counts {n} records where {held.num_rows} were sent")


def _untrusted(part: Partition, what: str) -> IntegrityViolation:
    """The error for a worker's result that does not match what the scan sent it: the scan stops and
    stores nothing (a worker that lies about one partition is not believed about the others)."""
    return IntegrityViolation(
        f"{part.describe()}: the engine's worker returned a result that does not match what was sent ({what}); "
        "the scan stored nothing",
        hint="the Dask scheduler and its workers are inside the ward's trust boundary: check who can reach "
        "them and run them with TLS (docs/threat-model.md)",
    )


def take_one(item: tuple[Partition, np.ndarray], state: SurveyState) -> pa.Table:
    part, positions = item
    return take_rows(_side_rows(part, state).table, positions)


def take(
    engine: Engine,
    parts: list[Partition],
    survey_: Survey,
    positions: np.ndarray,
    schema: Schema,
    what: str = "contribution",
) -> pa.Table:
    """The canonical rows at sorted global ``positions`` of a side read in partitions, in order."""
    items = []
    for part, start, size in zip(parts, survey_.offsets, survey_.sizes, strict=True):
        lo, hi = np.searchsorted(positions, [start, start + size])
        if hi > lo:
            items.append((part, positions[lo:hi] - start))
    tables = engine.map(take_one, items, SurveyState(schema, InputLimits(), what), describe=lambda it: it[0].describe())
    for (part, wanted), table in zip(items, tables, strict=True):
        check_count(part, table, len(wanted))
    return pa.concat_tables(tables)


def whole_one(part: Partition, state: SurveyState) -> pa.Table:
    return _side_rows(part, state).table


def check_count(part: Partition, table: object, size: int) -> pa.Table:
    """``table``, a worker's rows of ``part``, once it is a table of the ``size`` rows asked for."""
    if not isinstance(table, pa.Table) or table.num_rows != size:
        raise _untrusted(part, f"{size} rows were asked for")
    return table


def check_whole(part: Partition, table: object, size: int) -> pa.Table:
    """``table``, a worker's reading of the whole of ``part``: its surveyed ``size`` rows, and the very
    rows sent when this process holds them."""
    check_count(part, table, size)
    held = part.held()
    if held is not None and not held.equals(table):
        raise _untrusted(part, "the rows read differ from the rows sent")
    return table


class PartitionedSide:
    """A trusted side (the baseline) given as Parquet paths, an Arrow dataset or a stream, never held whole.

    What the gate needs of the whole baseline is its labels (the class list and the stratified reference
    sample), the reference rows and every record's 8-byte input hash (exact duplicates against the whole
    baseline): a survey pass that takes the labels and the hashes together, and a pass that reads only the
    sampled rows, one partition at a time. Only a detector that fits on the whole baseline
    (``Detector.fits_whole_baseline``) makes it read whole (``table``)."""

    def __init__(self, engine: Engine, parts: list[Partition], schema: Schema, what: str = "baseline") -> None:
        self.engine, self.schema, self.what = engine, schema, what
        plan = survey(engine, parts, schema, InputLimits(max_rows=2**62), what, hashes=True)
        self.parts = [p for p, size in zip(parts, plan.sizes, strict=True) if size]
        self.plan = Survey([size for size in plan.sizes if size], plan.labels)
        self._hashes = plan.hashes
        self._table: pa.Table | None = None

    @property
    def labels(self) -> np.ndarray:
        return self.plan.labels

    def __len__(self) -> int:
        return self.plan.rows

    def rows(self, positions: np.ndarray) -> pa.Table:
        return take(self.engine, self.parts, self.plan, positions, self.schema, self.what)

    def hashes(self) -> np.ndarray:
        """Every record's input hash, in order (taken by the survey: the baseline is not read again)."""
        assert self._hashes is not None
        return self._hashes

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            state = SurveyState(self.schema, InputLimits(), self.what)
            tables = self.engine.map(whole_one, self.parts, state, describe=_describe)
            checked = [check_count(p, t, n) for p, t, n in zip(self.parts, tables, self.plan.sizes, strict=True)]
            self._table = pa.concat_tables(checked)
        return self._table


def _describe(part: Partition) -> str:
    return part.describe()


@dataclass(frozen=True)
class ScoreState:
    """What every worker needs to score a partition: broadcast once."""

    schema: Schema
    limits: InputLimits
    codes: dict[str, int]
    pipeline: FeaturePipeline
    detectors: dict[str, Detector]


@dataclass(frozen=True)
class Scored:
    """One partition, normalized, featurized and through every detector's record stage."""

    norm: Normalized
    features: np.ndarray
    codes: np.ndarray
    records: dict[str, dict[str, np.ndarray]]
    skipped: dict[str, str]


def scored_rows(part: Partition, state: ScoreState, offset: int) -> Normalized:
    """``part`` read and normalized as the record stage sees it: record ids hashed (unless the partition
    carries them), and file rows counted from the contribution's start when it carries none."""
    raw = part.read()
    norm = normalize(raw, state.schema, "contribution", limits=_unbounded(state.limits))
    if ROW not in raw.column_names:
        norm = Normalized(norm.table, norm.labels, norm.record_ids, norm.rows + offset)
    return norm


def score_one(item: tuple[Partition, int, np.ndarray | None], state: ScoreState) -> Scored:
    part, offset, features = item
    norm = scored_rows(part, state, offset)
    if features is None:
        features = state.pipeline.transform(norm.table)
    codes = np.fromiter((state.codes[v] for v in norm.labels), dtype=np.int64, count=len(norm))
    chunk = GateData(features, codes, norm.table, {POSITION: offset + np.arange(len(norm), dtype=np.int64)})
    records, skipped = {}, {}
    try:
        for name, detector in state.detectors.items():
            try:
                records[name] = detector.score_records(chunk)
            except InputError as exc:
                if not detector.record_stage_skips:
                    raise  # the scanning process would refuse this skip (``check_scored``): say why instead
                skipped[name] = f"not applicable to this data: {exc.message}"
    finally:
        clear_cache()
    return Scored(norm, features, codes, records, skipped)


def check_scored(
    scored: object, item: tuple[Partition, int, np.ndarray | None], labels: np.ndarray, state: ScoreState
) -> Scored:
    """``scored``, a worker's result for ``item``, once it matches what was sent; else ``IntegrityViolation``.

    ``labels`` are the partition's labels as the survey read them. Checked without scoring anything:
    the record count, labels, record ids and file rows (against this process's own reading of rows it
    holds, else against the survey and the file's columns), features sent back unchanged, and every
    detector's outputs (one row per record, no detector missing, no skip a detector never makes)."""
    part, offset, features = item
    if not isinstance(scored, Scored) or not isinstance(scored.norm, Normalized):
        raise _untrusted(part, f"an object of type {type(scored).__name__}, not the partition's scores")
    _check_rows(scored, part, labels)
    if features is not None and not np.array_equal(scored.features, features):
        raise _untrusted(part, "the features sent were not returned unchanged")
    _check_detectors(scored, part, state)
    held = part.held()
    if held is not None:
        _check_held(scored.norm, part, state, offset)
    else:
        _check_read(scored.norm, part, state, offset)
    return scored


def _check_rows(scored: Scored, part: Partition, labels: np.ndarray) -> None:
    """One record per surveyed record, in every array the worker returned, with the surveyed labels."""
    m, norm = len(labels), scored.norm
    sizes = {
        "records": norm.table.num_rows,
        "labels": len(norm.labels),
        "file rows": len(norm.rows),
        "record ids": -1 if norm.record_ids is None else len(norm.record_ids),
        "feature rows": int(np.shape(scored.features)[0]) if np.ndim(scored.features) else -1,
    }
    wrong = [f"{size} {what}" for what, size in sizes.items() if size != m]
    if wrong:
        raise _untrusted(part, f"the survey counted {m} records, the scores hold {', '.join(wrong)}")
    if not np.array_equal(np.asarray(norm.labels, dtype=object), labels):
        raise _untrusted(part, "the labels differ from the survey's")


def _check_detectors(scored: Scored, part: Partition, state: ScoreState) -> None:
    """Every detector sent either scored every record or, if it may, said it does not apply."""
    m = len(scored.norm)
    records, skipped = scored.records, scored.skipped
    if not (isinstance(records, dict) and isinstance(skipped, dict)):
        raise _untrusted(part, "the detectors' outputs are not named")
    named, sent = set(records) | set(skipped), set(state.detectors)
    if named != sent or set(records) & set(skipped):
        raise _untrusted(part, f"outputs for {sorted(named)} where {sorted(sent)} were sent, each once")
    for name in skipped:
        if not state.detectors[name].record_stage_skips:
            # Computed here from the fitted detector: its record stage never finds itself not applicable.
            raise _untrusted(part, f"{name} said it does not apply, which its record stage never does")
    for name, outputs in records.items():
        for key, values in outputs.items():
            if not isinstance(values, np.ndarray) or values.ndim == 0 or values.shape[0] != m:
                raise _untrusted(part, f"{name}'s {key!r} does not hold one row per record")


def _check_held(norm: Normalized, part: Partition, state: ScoreState, offset: int) -> None:
    """The rows this process sent, read here as the worker reads them (no scoring): same canonical
    table, labels, record ids and file rows."""
    own = scored_rows(part, state, offset)
    if list(norm.record_ids or []) != list(own.record_ids or []):
        raise _untrusted(part, "the record ids differ from those of the rows sent")
    if not np.array_equal(np.asarray(norm.rows, dtype=np.int64), np.asarray(own.rows, dtype=np.int64)):
        raise _untrusted(part, "the file rows differ from those of the rows sent")
    if not norm.table.equals(own.table) or not np.array_equal(norm.labels, own.labels):
        raise _untrusted(part, "the records differ from the rows sent")


def _check_read(norm: Normalized, part: Partition, state: ScoreState, offset: int) -> None:
    """Rows the worker read itself: record ids it made must be those of the records it returned, and
    file rows it counted must follow the partition's place in the contribution."""
    columns = part.columns()
    if columns is None:
        return  # nothing known here of what the worker read (a user's Partition, a dataset fragment)
    if RECORD_ID not in columns:
        made = record_id_array(state.schema, norm.table).to_pylist() if len(norm) else []
        if list(norm.record_ids or []) != made:
            raise _untrusted(part, "the record ids are not those of the records returned")
    if ROW not in columns:
        counted = offset + np.arange(1, len(norm) + 1, dtype=np.int64)
        if not np.array_equal(np.asarray(norm.rows, dtype=np.int64), counted):
            raise _untrusted(part, "the file rows do not follow the partition's place in the contribution")


def give_samples(
    detectors: Mapping[str, Detector],
    n: int,
    labels: np.ndarray,
    rows: Callable[[np.ndarray], pa.Table],
    pipeline: FeaturePipeline,
    timings: dict[str, float],
    skipped: dict[str, str],
) -> None:
    """Hand each detector that asks for one (``Detector.contribution_sample``) its sample of the
    ``n``-record contribution before the record stage: ``rows(positions)`` reads the canonical rows (from
    the table, or a pass over the partitions), featurized here as the partitions are; ``labels`` are
    the whole contribution's label codes."""
    for name, detector in detectors.items():
        started = time.perf_counter()
        try:
            positions = detector.contribution_sample(n)
            if positions is not None:
                table = rows(positions)
                detector.see_sample(GateData(pipeline.transform(table), labels[positions], table), positions, n)
        except InputError as exc:
            skipped[name] = f"not applicable to this data: {exc.message}"
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started


class RecordIds(Sequence[str]):
    """The contribution's record ids, read from Arrow IPC files memory-mapped (64 bytes a record in the
    page cache instead of a Python string object each in the scanning process's own memory)."""

    def __init__(self, ids: pa.ChunkedArray) -> None:
        self.ids = ids
        self._starts = np.cumsum([0, *(len(c) for c in ids.chunks)])

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return list(self)[i]
        i = int(i) + (len(self) if int(i) < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError("record index out of range")
        chunk = int(np.searchsorted(self._starts, i, side="right")) - 1  # by bisection, not a walk over chunks
        return self.ids.chunk(chunk)[i - int(self._starts[chunk])].as_py()

    def __iter__(self) -> Iterator[str]:
        for chunk in self.ids.chunks:
            for start in range(0, len(chunk), 65_536):
                yield from chunk.slice(start, 65_536).to_pylist()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordIds({len(self)} records)"


class Gathered:
    """The record stage's outputs, taken one partition at a time and spilled to ``folder``, then read back
    memory-mapped for the contribution stage: the features into one ``.npy`` file, each partition's
    canonical table and record ids into Arrow IPC files, and every detector's per-record outputs and the
    records' file rows into one ``.npy`` file each. Their pages are the page cache's, not the scanning
    process's own memory, so a contribution larger than memory is still judged as a whole; only the
    labels (one shared string object per distinct label) stay in memory."""

    def __init__(self, folder: Path, n: int) -> None:
        self.folder, self.n, self.filled = folder, n, 0
        self.spills = 0
        self.features: np.ndarray | None = None
        self.tables: list[str] = []
        self.ids: list[str] = []
        self.labels: list[np.ndarray] = []
        self.rows: np.ndarray | None = None
        self.records: dict[str, dict[str, np.ndarray]] = {}
        self.covered: dict[str, list[tuple[int, int]]] = {}
        self.skipped: dict[str, str] = {}

    def _spilled(self, name: str, like: np.ndarray) -> np.ndarray:
        """A new ``.npy`` file of ``n`` rows shaped and typed like ``like``'s rows, mapped for writing."""
        return np.lib.format.open_memmap(
            self.folder / f"{name}.npy", mode="w+", dtype=like.dtype, shape=(self.n, *like.shape[1:])
        )

    def add(self, scored: Scored) -> None:
        m = scored.features.shape[0]
        if self.features is None:
            self.features = self._spilled("features", scored.features)
        if self.filled + m > self.n:
            # A partition grew between the survey and the scoring (a file rewritten in between).
            raise InputError(f"the partitions held more than the {self.n} records the survey counted")
        at = self.filled
        self.features[at : at + m] = scored.features
        rows = np.asarray(scored.norm.rows, dtype=np.int64)
        if self.rows is None:
            self.rows = self._spilled("rows", rows)
        self.rows[at : at + m] = rows
        self.filled += m
        self.tables.append(self._ipc("table", scored.norm.table))
        ids = pa.table({"record_id": pa.array(list(scored.norm.record_ids or []), type=pa.string())})
        self.ids.append(self._ipc("ids", ids))
        self.labels.append(shared_labels(scored.norm.labels))
        for name, outputs in scored.records.items():
            if not outputs:
                continue
            spilled = self.records.setdefault(name, {})
            for key, values in outputs.items():
                if key not in spilled:
                    # A number of its own per file: a key first seen in a later partition must never
                    # reuse (and, mode w+, truncate) another detector's file.
                    self.spills += 1
                    spilled[key] = self._spilled(f"records-{self.spills:04d}", values)
                spilled[key][at : at + m] = values
            self.covered.setdefault(name, []).append((at, m))
        for name, why in scored.skipped.items():
            self.skipped.setdefault(name, why)

    def _ipc(self, what: str, table: pa.Table) -> str:
        path = str(self.folder / f"{what}-{len(self.tables):06d}.arrow")
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        return path

    def contribution(self) -> tuple[Normalized, np.ndarray]:
        """The whole contribution (its table, record ids, file rows and features memory-mapped) and its features."""
        if self.features is None or self.rows is None or self.filled != self.n:
            raise InputError(f"the partitions held {self.filled} records, the survey counted {self.n}")
        self.features.flush()
        # Read-only from here: a detector must not write into the contribution's features in place.
        self.features = np.load(self.features.filename, mmap_mode="r")
        tables = [pa.ipc.open_file(pa.memory_map(path)).read_all() for path in self.tables]
        ids = [pa.ipc.open_file(pa.memory_map(path)).read_all().column(0) for path in self.ids]
        norm = Normalized(
            pa.concat_tables(tables, promote_options="permissive"),
            np.concatenate(self.labels),
            RecordIds(pa.chunked_array([c for column in ids for c in column.chunks], type=pa.string())),
            self.rows,
        )
        return norm, self.features

    def detector_records(self, names: Iterable[str]) -> dict[str, dict[str, np.ndarray]]:
        """Each detector's per-record outputs, memory-mapped: one row per record when every partition gave
        them (else, as before, the partitions that did, one after another)."""
        out = {}
        for name in names:
            spilled, covered = self.records.pop(name, {}), self.covered.pop(name, [])
            if sum(m for _, m in covered) == self.n:
                out[name] = spilled
            else:
                out[name] = concat_records([{k: v[at : at + m] for k, v in spilled.items()} for at, m in covered])
        return out


def concat_records(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per key, the partitions' arrays one after another (partitions without records add none)."""
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
