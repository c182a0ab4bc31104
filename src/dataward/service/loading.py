"""Use cases of the guarded loader: a version's records for training, whole or in record batches.

Both go through ``guard.loadable_version`` (the version's rows against the signed ledger, its manifest
against the version id, the stage the caller requires, no quarantined or rejected record) and serve
records through ``manifests.load_version`` (every record re-hashed against its id). A stream checks
the version once, up front, then loads and checks its records batch by batch, so a version larger
than memory can be read: only its manifest and the chunk being read are held. A stream follows the
order the records are stored in (chunk by chunk, each in its own row order), so that each chunk is read
once; ``load`` gives the version's id order. A record quarantined or rejected while a stream runs is
never sent: each batch is checked again once the ledger has moved since the last check, or the process
learnt a quarantine from the witness (``_what_bars``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataward.access.roles import Action
from dataward.catalog import ledger_store
from dataward.domain.errors import PolicyViolation
from dataward.domain.idset import DigestSet
from dataward.service import rows
from dataward.service.batch_rows import DEFAULT_BATCH_ROWS, check_batch_rows
from dataward.service.core import Service, WardContext
from dataward.service.datasets import version_info
from dataward.service.guard import barred_records, barred_summary, loadable_version, serving
from dataward.service.manifests import load_version, storage_plan
from dataward.service.recordstore import ChunkCursor
from dataward.service.removal_list import listed_removals

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
            with serving(f"{dataset}@v{ver.number}"):
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
            checked_at = _what_bars(uc.conn)  # before the check: what is learnt after it counts as a change
            ds, ver, manifest = loadable_version(self, uc.conn, dataset, ref, stage)
            schema = rows.dataset_schema(ds)
            info = version_info(ver, dataset)
            plan = storage_plan(uc.conn, manifest)
        del manifest  # the plan holds the ids, in storage order

        def batches() -> Iterator[pa.RecordBatch]:
            # Records are content-addressed and immutable: each batch may be read in its own short
            # read transaction, and is checked against its ids as it is loaded. Each is its own use case,
            # so a key revoked (or a grant taken away) while the stream runs gets no further batch.
            seen = checked_at
            cursor = ChunkCursor(self.store, plan.digests, schema, located_by=plan.located_by)
            for start in range(0, len(plan), batch_rows):
                with self.use_case(Action.DATASET_EXPORT, self.datasets.read_scope(dataset)) as uc:
                    ids, chunk_of, row_of = plan.part(start, start + batch_rows)
                    seen = self._still_unbarred(uc.conn, ds, ver, dataset, ids, seen)
                    with serving(f"{dataset}@v{ver.number}"):
                        table = cursor.serve(ids, chunk_of, row_of)
                yield from table.combine_chunks().to_batches(max_chunksize=batch_rows)

        return info, batches()

    def _still_unbarred(
        self, conn: Any, ds: Any, ver: Any, dataset: str, ids: Any, seen: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        """What a stream's next batch was checked against (``_what_bars``): when it changed since ``seen``
        (a quarantine, a review's rejection; a quarantine this process learnt from the witness), the batch's
        records ``ids`` are checked as the stream's start checked the version, and ``PolicyViolation`` ends
        the stream before any barred one is sent."""
        now = _what_bars(conn)
        if now == seen:
            return seen
        barred = barred_records(conn, self.store, ds, ver, DigestSet(ids), (self.signer.public_key_b64, self.ward_id))
        if barred:
            raise PolicyViolation(
                f"{dataset}@v{ver.number} now holds records that must never reach training: "
                f"{barred_summary(barred)} (since this stream began)",
                hint=f"what arrived must not be used for training; `dataward versions {dataset}` lists the "
                "version made without them",
            )
        return now


def _what_bars(conn: Any) -> tuple[Any, ...]:
    """What decides which records are barred from training, as far as a running stream must notice a
    change: the ledger head (``(seq, hash)``: a quarantine or a rejection appends an event) and how many
    quarantines the ward's list of removals holds in this process. The list can grow without the ledger
    moving: a process that could not read the witness learns its quarantines on a later request
    (``RemovalList.read_witness_once``), and nothing lifts a quarantine, so the count only grows."""
    return (*ledger_store.head(conn), len(listed_removals(conn).quarantined))
