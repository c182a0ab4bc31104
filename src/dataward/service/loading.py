"""Use cases of the guarded loader: a version's records for training, whole or in record batches.

Both go through ``guard.loadable_version`` (the version's rows against the signed ledger, its manifest
against the version id, the stage the caller requires, no quarantined or rejected record) and serve
records through ``manifests.load_version`` (every record re-hashed against its id). A stream checks
the version once, up front, then loads and checks its records batch by batch, so a version larger
than memory can be read: only its manifest and the chunk being read are held. A stream follows the
order the records are stored in (chunk by chunk, each in its own row order), so that each chunk is read
once; ``load`` gives the version's id order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataward.access.roles import Action
from dataward.service import rows
from dataward.service.batch_rows import DEFAULT_BATCH_ROWS, check_batch_rows
from dataward.service.core import Service, WardContext
from dataward.service.datasets import version_info
from dataward.service.guard import loadable_version
from dataward.service.manifests import load_version, storage_plan
from dataward.service.recordstore import ChunkCursor

if TYPE_CHECKING:
    from dataward.service.datasets import DatasetService

__all__ = ["DEFAULT_BATCH_ROWS", "LoadService", "check_batch_rows"]


class LoadService(Service):
    """The guarded loader's reads (``dataward.load``, ``dataward.stream``)."""

    def __init__(self, context: WardContext, datasets: DatasetService) -> None:
        super().__init__(context)
        self.datasets = datasets

    def load_version(
        self, dataset: str, ref: str | None = None, *, stage: str | None = "training"
    ) -> tuple[dict[str, Any], pa.Table]:
        """A version's document and records for training (needs ``dataset.export``): refused when it is
        not in ``stage`` (``None``: any) or holds quarantined or rejected records."""
        with self.use_case(Action.DATASET_EXPORT, self.datasets.read_scope(dataset)) as uc:
            ds, ver, manifest = loadable_version(self, uc.conn, dataset, ref, stage)
            return version_info(ver, dataset), load_version(uc.conn, self.store, manifest, rows.dataset_schema(ds))

    def stream_version(
        self,
        dataset: str,
        ref: str | None = None,
        *,
        stage: str | None = "training",
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> tuple[dict[str, Any], Iterator[pa.RecordBatch]]:
        """As :meth:`load_version`, the records as Arrow record batches of at most ``batch_rows`` rows,
        loaded (and re-hashed) one batch at a time, in the order they are stored: chunk by chunk, each
        in its own row order. Each chunk is read once per stream, not once per batch (a batch in the
        version's id order would need a few records of every chunk)."""
        check_batch_rows(batch_rows)
        with self.use_case(Action.DATASET_EXPORT, self.datasets.read_scope(dataset)) as uc:
            ds, ver, manifest = loadable_version(self, uc.conn, dataset, ref, stage)
            schema = rows.dataset_schema(ds)
            info = version_info(ver, dataset)
            plan = storage_plan(uc.conn, manifest)
        del manifest  # the plan holds the ids, in storage order

        def batches() -> Iterator[pa.RecordBatch]:
            # Records are content-addressed and immutable: each batch may be read in its own short
            # read transaction, and is checked against its ids as it is loaded. Each is its own use case,
            # so a key revoked (or a grant taken away) while the stream runs gets no further batch.
            cursor = ChunkCursor(self.store, plan.digests, schema, located_by=plan.located_by)
            for start in range(0, len(plan), batch_rows):
                with self.use_case(Action.DATASET_EXPORT, self.datasets.read_scope(dataset)):
                    table = cursor.serve(*plan.part(start, start + batch_rows))
                yield from table.combine_chunks().to_batches(max_chunksize=batch_rows)

        return info, batches()
