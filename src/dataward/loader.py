"""The guarded loader: training code reads only data that passed the policy.

>>> import dataward
>>> df = dataward.load("reviews@training")                    # pandas
>>> table = dataward.load("reviews@v3", format="arrow", stage=None)
>>> ds = dataward.load("reviews@training", format="torch")    # a torch Dataset (torch installed)
>>> hf = dataward.load("reviews@training", format="hf")       # a datasets.Dataset (datasets installed)
>>> for batch in dataward.stream("reviews@training"):         # Arrow record batches, out of core
...     ...

Every read goes through the ward's ``load_version`` / ``stream_version`` (``dataward.api.WardAPI``), so
it is the same against a ward folder and against a server: the version's rows are checked against the
signed ledger, its manifest against its id, every record against its hash, and a version that is not
in the required stage (default ``training``) or that holds quarantined or rejected records is refused
with a ``PolicyViolation`` (exit 6) or an ``IntegrityViolation`` (exit 7) naming the problem. Inside
``dataward.training_run`` each version read is recorded in the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataward.domain.errors import InputError

if TYPE_CHECKING:
    from dataward.api import WardAPI

FORMATS = ("pandas", "arrow", "torch", "hf")
STREAM_FORMATS = ("arrow", "torch")


def split_dataset_ref(ref: str) -> tuple[str, str]:
    """``DATASET@VERSION`` -> (dataset, version); a bare name means its ``training`` version."""
    if not isinstance(ref, str) or not ref.strip():
        raise InputError(f"cannot read dataset reference {ref!r}", hint="write DATASET@training or DATASET@vN")
    name, sep, version = ref.strip().partition("@")
    if not name or (sep and not version):
        raise InputError(f"cannot read dataset reference {ref!r}", hint="write DATASET@training or DATASET@vN")
    return name, version if sep else "training"


def _ward(ward: WardAPI | None) -> WardAPI:
    if ward is not None:
        return ward
    from dataward.training import current_run

    run = current_run()
    if run is not None:
        return run.ward
    import dataward

    return dataward.open()


def _note_read(info: dict[str, Any], client: WardAPI) -> None:
    """Inside a training run, record the version read (when it was read from the run's own ward)."""
    from dataward.training import current_run

    run = current_run()
    if run is not None and client is run.ward:
        run.note_read(info)


def load(
    ref: str,
    *,
    format: str = "pandas",
    stage: str | None = "training",
    ward: WardAPI | None = None,
    transform: Callable[[dict[str, Any]], Any] | None = None,
) -> Any:
    """The records of ``ref`` (``DATASET@training``, ``DATASET@vN``) as ``format``: ``pandas`` (a
    DataFrame), ``arrow`` (a Table), ``torch`` (a map-style ``torch.utils.data.Dataset`` of row dicts,
    passed through ``transform`` when given) or ``hf`` (a ``datasets.Dataset``).

    ``stage`` is the stage the version must be in (``None``: any stage; quarantined and rejected
    records are refused whatever the stage). ``ward`` defaults to the run's ward inside a training
    run, else ``dataward.open()``.
    """
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}", hint=f"use one of: {', '.join(FORMATS)}")
    name, version = split_dataset_ref(ref)
    client = _ward(ward)
    info, table = client.load_version(name, version, stage=stage)
    _note_read(info, client)
    if format == "arrow":
        return table
    if format == "pandas":
        return table.to_pandas()
    if format == "torch":
        return _torch_map_dataset(table, transform)
    return _hf_dataset(table)


def stream(
    ref: str,
    *,
    format: str = "arrow",
    stage: str | None = "training",
    batch_rows: int = 10_000,
    ward: WardAPI | None = None,
    transform: Callable[[dict[str, Any]], Any] | None = None,
) -> Any:
    """The records of ``ref`` for versions larger than memory: ``arrow`` gives an iterator of
    ``pyarrow.RecordBatch`` (at most ``batch_rows`` rows each), ``torch`` a
    ``torch.utils.data.IterableDataset`` of row dicts that splits the batches between DataLoader
    workers. The version is checked before the first batch; each batch's records as they are loaded."""
    if format not in STREAM_FORMATS:
        raise InputError(f"unknown stream format {format!r}", hint=f"use one of: {', '.join(STREAM_FORMATS)}")
    name, version = split_dataset_ref(ref)
    client = _ward(ward)
    info, batches = client.stream_version(name, version, stage=stage, batch_rows=batch_rows)
    _note_read(info, client)
    if format == "arrow":
        return batches
    return _torch_iterable_dataset(client, name, f"v{info['number']}", stage, batch_rows, transform, batches)


def _rows(batch: pa.RecordBatch | pa.Table) -> Iterator[dict[str, Any]]:
    yield from batch.to_pylist()


def _require_torch() -> Any:
    try:
        import torch.utils.data
    except ImportError:
        raise InputError("format 'torch' needs PyTorch", hint="pip install torch, or load as pandas or arrow") from None
    return torch.utils.data


def _torch_map_dataset(table: pa.Table, transform: Callable[[dict[str, Any]], Any] | None) -> Any:
    data = _require_torch()

    class VersionDataset(data.Dataset):  # type: ignore[misc, name-defined]
        """A guarded version as a map-style torch Dataset: item ``i`` is row ``i`` as a dict."""

        def __init__(self) -> None:
            self.table = table

        def __len__(self) -> int:
            return int(self.table.num_rows)

        def __getitem__(self, index: int) -> Any:
            if not -len(self) <= index < len(self):
                raise IndexError(index)
            row = self.table.slice(index % len(self), 1).to_pylist()[0]
            return transform(row) if transform is not None else row

    return VersionDataset()


def _torch_iterable_dataset(
    client: Any,
    name: str,
    version: str,
    stage: str | None,
    batch_rows: int,
    transform: Callable[[dict[str, Any]], Any] | None,
    first: Iterator[pa.RecordBatch],
) -> Any:
    data = _require_torch()

    class VersionStream(data.IterableDataset):  # type: ignore[misc, name-defined]
        """A guarded version as an iterable torch Dataset. The first pass uses the stream opened (and
        checked) by ``dataward.stream``; every later pass, and every DataLoader worker, opens its own
        stream of the same version number, checked again. Worker ``k`` of ``n`` takes batches
        ``k, k+n, ...``."""

        def __init__(self) -> None:
            self._first: Iterator[pa.RecordBatch] | None = first

        def _batches(self) -> Iterator[pa.RecordBatch]:
            if self._first is not None:
                batches, self._first = self._first, None
                return batches
            return client.stream_version(name, version, stage=stage, batch_rows=batch_rows)[1]  # type: ignore[no-any-return]

        def __iter__(self) -> Iterator[Any]:
            info = data.get_worker_info()
            worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
            batches = (
                self._batches()
                if workers == 1
                else client.stream_version(name, version, stage=stage, batch_rows=batch_rows)[1]
            )
            for i, batch in enumerate(batches):
                if i % workers != worker:
                    continue
                for row in _rows(batch):
                    yield transform(row) if transform is not None else row

    return VersionStream()


def _hf_dataset(table: pa.Table) -> Any:
    try:
        import datasets
    except ImportError:
        raise InputError(
            "format 'hf' needs Hugging Face datasets", hint="pip install datasets, or load as pandas or arrow"
        ) from None
    return datasets.Dataset(table)


__all__ = ["FORMATS", "STREAM_FORMATS", "load", "split_dataset_ref", "stream"]
