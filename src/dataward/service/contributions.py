"""Use cases on contributions: submit (records added and/or removed, from a declared source), list."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, select

from dataward.access import authorize_withdraw
from dataward.access.removals import Removals
from dataward.access.roles import Action, Scope
from dataward.catalog import holder_index
from dataward.catalog.batched import rows_in
from dataward.catalog.projection import insert_row, update_row
from dataward.catalog.tables import contributions, datasets, quarantine, sources
from dataward.domain.conversation import llm_record_problem
from dataward.domain.errors import Conflict, DatawardError, InputError, Interrupted
from dataward.domain.hashing import content_hash, json_hash
from dataward.domain.idarrays import ids_to_binary, member_of, sorted_distinct
from dataward.domain.limits import InputLimits
from dataward.domain.names import text_problem
from dataward.domain.normalized import normalized_digest_array, text_columns
from dataward.domain.records import canonical_table
from dataward.domain.schema import RECORD_ID, Schema
from dataward.io import read_record_ids, read_table
from dataward.io.columns import refuse_hidden_labels
from dataward.io.header import check_columns, frame_holder
from dataward.io.parquet_reader import PANDAS_INDEX
from dataward.ledger.events import format_time
from dataward.service import holders, rows
from dataward.service.concealment import missing_contribution
from dataward.service.config import WardConfig
from dataward.service.core import Service, UseCase, WardContext, close_pending_reviews, new_id
from dataward.service.first_import import first_import_refusal
from dataward.service.guard import SignedCheck, dataset_scope, may, refuse_unheld_quarantines
from dataward.service.near_copies import Quarantined, empty_digests, near_copies, quarantined_normalized, schema_of
from dataward.service.overrides import lifted_blocks
from dataward.service.recordstore import (
    ChunkAhead,
    ids_table,
    joined_ids_hash,
    manifest_ids,
    read_id_digests,
    stage_new_records,
    store_new_records,
    table_to_parquet,
)
from dataward.service.removal_list import listed_removals, quarantine_listed
from dataward.service.same_content import same_content_as
from dataward.service.transformations import SOURCE_SCHEME
from dataward.service.validation_schema import validation_schema_refusal
from dataward.service.visibility import authorize_found, dataset_name, find_contribution, named_contribution
from dataward.store.tables import binary_id_array

if TYPE_CHECKING:
    from dataward.service.datasets import DatasetService
    from dataward.service.gating import GateService


FETCHED_AT_SKEW = timedelta(days=1)
CONTRIBUTION_STATUSES = ("submitted", "gated", "merged", "rejected", "withdrawn", "quarantined")
"""Every status a contribution can have (``contributions --status``)."""
"""How far past the ward's clock a source's ``fetched_at`` may lie (clocks and time zones disagree)."""


def contribution_info(
    row: Any, dataset_name: str, submitter: str | None = None, listed: Removals | None = None
) -> dict[str, Any]:
    """The JSON view of a contribution row (see docs/cli.md). With ``listed`` (the ward's list of
    removals), a contribution the list holds quarantined reads ``quarantined`` whatever its row says,
    with ``quarantine_listed`` naming the event (the catalog predates it: a restored backup)."""
    info = _row_info(row, dataset_name, submitter)
    shown = quarantine_listed(listed, row.id, row.status) if listed is not None else None
    if shown is not None:
        info["status"] = "quarantined"
        info["quarantine_listed"] = shown
    return info


def _row_info(row: Any, dataset_name: str, submitter: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "ref": f"{dataset_name}#{row.number}",
        "dataset": dataset_name,
        "number": row.number,
        "submitted_by": submitter or row.submitted_by,
        "key": f"dw_{row.key_id}" if row.key_id else None,
        "source": row.source_id,
        "content_hash": row.content_hash,
        "added": row.added_count,
        "removed": row.removed_count,
        "status": row.status,
        "gate_verdict": row.gate_verdict,
        "base_version": row.base_version,
        "created_at": row.created_at,
        "message": row.message or "",
    }


def quarantined_contributions(conn: Connection, *, exclude: str | None = None, listed: Iterable[str] = ()) -> list[Any]:
    """Every quarantined contribution of the ward that added records, of any dataset, oldest first:
    ``id, dataset_id, dataset_name, number, added_object, created_at`` (``exclude``: a contribution left out;
    ``listed``: contributions quarantined whatever their row says, as the ward's list of removals holds).

    A quarantine holds its records out of every version of every dataset: ids are content hashes, so
    the same records contributed again, to the same dataset or another, are held back all the same."""
    query = (
        select(
            contributions.c.id,
            contributions.c.dataset_id,
            datasets.c.name.label("dataset_name"),
            contributions.c.number,
            contributions.c.added_object,
            contributions.c.created_at,
        )
        .join(datasets, datasets.c.id == contributions.c.dataset_id)
        .where(contributions.c.added_object.is_not(None))
    )
    if exclude is not None:
        query = query.where(contributions.c.id != exclude)
    # The list only grows: its quarantines are looked up in batches, then put in order.
    found = rows_in(conn, query, contributions.c.id, listed, otherwise=contributions.c.status == "quarantined")
    return sorted(found, key=lambda r: (r.created_at, r.id))


class _NewRecords:
    """A contribution's new records (a canonical table of ``schema``) and, worked out on first need,
    their normalized identities (``domain.normalized``), in the table's order."""

    def __init__(self, schema: Schema, table: pa.Table) -> None:
        self.schema, self._table = schema, table
        self._normalized: np.ndarray | None = None

    def normalized(self) -> np.ndarray:
        if self._normalized is None:
            found = normalized_digest_array(self.schema, self._table)
            self._normalized = found if found is not None else empty_digests()
        return self._normalized


@dataclass(frozen=True)
class _Unlisted:
    """A quarantined contribution known only from the ward's list of removals: the catalog, restored from
    before it, has no row of it (so no dataset or number to name)."""

    id: str
    added_object: str
    records_of: str | None = None
    """Its dataset, as the list's quarantine event names it: the schema its records have (not named in
    reasons: the catalog does not know the dataset as it stood)."""
    dataset_id: None = None
    dataset_name: None = None
    number: None = None


def _table_from_frame(data: Any, schema: Schema) -> tuple[pa.Table, list[int]]:
    """A pandas DataFrame or Arrow table given through the Python API, canonicalized.

    Its columns are held to a file's rules (``io.header.check_columns``): no name twice, every column
    of the schema present, none it does not declare; so a column left out or misspelt is refused, not
    read as missing values in every record, and a frame imports as the same file would."""
    holder = frame_holder(data)
    names = [str(n) for n in (data.column_names if isinstance(data, pa.Table) else data.columns)]
    # An Arrow table made from a sliced or shuffled DataFrame carries its index; it is not data (as in Parquet).
    names = [n for n in names if not PANDAS_INDEX.match(n)]
    check_columns(f"the {holder}", names, schema, holder=holder)
    records = data.to_pylist() if isinstance(data, pa.Table) else data.to_dict(orient="records")
    table = canonical_table(schema, records)
    refuse_hidden_labels(schema, table)  # as a file's labels are (io.columns.checked_label)
    # The same rule as for a file (``io.readers``): a language-model record with nothing to learn is refused.
    problem = llm_record_problem(schema, table)
    if problem is not None:
        index, column, what = problem
        raise InputError(f"row {index + 1}, column {column!r}: {what}", row=index + 1, column=column)
    return table, list(range(1, table.num_rows + 1))


def _refuse_reserved_source(source: str, *, step_output: bool) -> None:
    """Refuse (``InputError``) a ``transformation:`` source on a contribution that is not a recorded
    step's output. The scheme is the ward's own name for a step's output: a contributor claiming it would
    pass their data off as derived from records already in the ward, with no raw file of its own. URI
    schemes are case-insensitive, so ``Transformation:`` is reserved too."""
    if not step_output and source.lower().startswith(SOURCE_SCHEME):
        raise InputError(
            f"source {source!r} is reserved: {SOURCE_SCHEME}NAME names the output of a recorded transformation",
            hint="declare where the records came from (their URI); record a step with `dataward transform`",
        )


class ContributionService(Service):
    """Use cases on contributions: submit, withdraw, list, show."""

    def __init__(self, context: WardContext, datasets: DatasetService, gates: GateService) -> None:
        super().__init__(context)
        self.datasets = datasets
        self.gates = gates

    def contribute(
        self,
        dataset: str,
        data: str | Path | Any | None = None,
        *,
        source: str,
        fetched_at: datetime | None = None,
        licence: str | None = None,
        removes: str | Path | list[str] | None = None,
        message: str = "",
        format: str | None = None,
        gate: bool = True,
        progress: Callable[[str], None] | None = None,
        limits: InputLimits | Mapping[str, Any] | None = None,
        on_submitted: Callable[[UseCase, str], None] | None = None,
    ) -> dict[str, Any]:
        """Submit a contribution: records added from ``data`` (a file, folder, DataFrame or Arrow
        table) and/or record ids removed (``removes``: a file of ids or a list), from ``source``.

        The file is read and validated before anything is stored; a malformed file stores nothing.
        With ``gate``, the dataset's gate then runs on it, on the added and the removed records alike
        (result under ``"gate"``; ``gate_report`` returns it with its evidence later, which is what the
        CLI's and the console's HTML pages are drawn from). Before the
        dataset has a training version, additions are judged against its clean validation set; with
        neither, the submission is refused (``PolicyViolation``) unless the policy opts in to
        ``first_import: self-reference``. ``progress`` is told which step is running.

        The files are read within the ward's input limits (``input_limits`` in ``ward.json``),
        with ``limits`` (names to sizes, e.g. ``{"max_record_bytes": "64MiB"}``) laid over them for
        this call; an input over a limit is refused (``InputError`` naming it) before anything is stored.

        ``on_submitted(use_case, contribution_id)`` runs inside the transaction that records the
        submission, before the gate: a transformation records itself there, so its output contribution
        never exists without it. Only such a step's output may declare a ``transformation:`` source:
        an ordinary contribution claiming one is refused (``InputError``).
        """
        step = progress or (lambda _text: None)
        if not source or not source.strip():
            raise InputError("a contribution needs a declared source", hint="pass --source URI")
        _refuse_reserved_source(source, step_output=on_submitted is not None)
        if (problem := text_problem(source, "source")) is not None:
            # A source is named in traces, reports and quarantines: it is trimmed, printable text.
            raise InputError(problem, hint="pass --source URI as the URI itself, without spaces around it")
        if licence is not None and (problem := text_problem(licence, "licence")) is not None:
            # A licence is printed in traces and pasted into the dataset card: one line of printable text
            # (a newline forged card sections, an ESC drove the reviewer's terminal).
            raise InputError(problem, hint="pass --licence as an SPDX identifier (MIT, CC-BY-4.0) or a URL")
        if data is None and removes is None:
            raise InputError("a contribution must add records, remove records, or both")
        if fetched_at is not None:
            try:
                format_time(fetched_at)
            except (OverflowError, ValueError):
                # A moment near year 1 or 9999 with an offset has no UTC time in Python's range; found
                # when it was recorded, with the records already stored.
                raise InputError(
                    f"fetched_at {fetched_at.isoformat()} is out of range once converted to UTC",
                    hint="give a moment between the years 1 and 9999 in UTC",
                ) from None
            if fetched_at.tzinfo is not None and fetched_at > self.now() + FETCHED_AT_SKEW:
                # A source fetched in the future is a typo or a lie: provenance would record it as fact.
                raise InputError(
                    f"fetched_at {fetched_at.isoformat()} is in the future",
                    hint="give the moment the source was fetched (ISO-8601, with its UTC offset)",
                )
        bounds = InputLimits.coerce(limits, base=WardConfig.load(self.folder).limits())
        action, scope = self.datasets.validation_scope(dataset)
        # Authorized before the file is read against the dataset's schema: a caller who may not submit
        # learns nothing of the schema from its errors, nor of a dataset it may not see (not found).
        with self.use_case(action, scope, write=False):
            pass
        with self.db.reading() as conn:
            schema = rows.dataset_schema(rows.dataset_row(conn, dataset))
        # The id list and the new records' chunk are encoded and stored on threads of their own (mostly
        # Parquet encoding and object writes, which run without the GIL) while this one works out the
        # distinct ids, the record index's blocks, then the content hash; a file's chunk is begun as
        # soon as the file is read. Both are waited for before the write lock is taken: an upload to a
        # remote store can take long, and no other writer of the ward may wait for it.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dataward-objects") as pool:
            ahead: ChunkAhead | None = None
            try:
                digests = None  # the added ids as 32-byte digests, when the reader worked them out
                if data is None:
                    table, file_rows, raw_hash, fmt = (
                        schema.arrow_schema().empty_table(),
                        [],
                        content_hash(b""),
                        "none",
                    )
                elif isinstance(data, str | Path):
                    step(f"reading and hashing {data}")
                    imported = read_table(Path(data), schema, format=format, limits=bounds)
                    if len(imported):
                        # The chunk of every record is begun now, on the bet that all of them are new (see
                        # ``ChunkAhead``): each row group is encoded as soon as its ids are worked out, while
                        # the reader still hashes the later rows. Nothing is stored unless the staging wins it.
                        ahead = ChunkAhead.of_records(pool, self.store, imported.content, imported.record_digests.rows)
                    # Stored with the ids as digests (how chunks and id lists hold them): no hex column is built.
                    digests = imported.digests
                    table, file_rows, raw_hash, fmt = (
                        imported.content.add_column(0, RECORD_ID, binary_id_array(digests)),
                        imported.rows,
                        imported.raw_hash,
                        imported.format,
                    )
                else:
                    table, file_rows = _table_from_frame(data, schema)
                    raw_hash, fmt = content_hash(table_to_parquet(table)), "arrow"
                removed: list[str] = []
                if removes is not None:
                    removed = list(removes) if isinstance(removes, list) else read_record_ids(Path(removes), bounds)
                # The added ids stay an Arrow column: a million of them as Python strings cost more than storing them.
                added = table.column(RECORD_ID)
                if not len(added) and not removed:
                    what = (
                        data
                        if isinstance(data, str | Path)
                        else f"the {frame_holder(data)}"
                        if data is not None
                        else "it"
                    )
                    raise InputError(f"{what} holds no records", hint="an empty contribution changes nothing")

                step(f"storing {len(added)} records and signing the contribution")
                # The slow part, checking and writing objects, runs in a read transaction without the write
                # lock (objects are content-addressed, so one written for a submission then refused is
                # harmless); the short write below re-checks what it relied on and records the submission.
                with self.use_case(action, scope, write=False) as uc:
                    ds = rows.dataset_row(uc.conn, dataset)
                    if gate and action is Action.CONTRIBUTION_SUBMIT:
                        # Refuse before storing anything when the gate would have nothing trusted to judge by,
                        # or could not read the clean validation set (an addition and a removal alike).
                        first = first_import_refusal(uc.conn, ds) if len(added) else None
                        refusal = first or validation_schema_refusal(uc.conn, ds)
                        if refusal is not None:
                            raise refusal
                    checked_base = rows.latest_version(uc.conn, ds.id)
                    self._check_removable(checked_base, removed, dataset)
                    id_list = pool.submit(self._put_id_list, added, file_rows, digests) if len(added) else None
                    staged = stage_new_records(uc.conn, self.store, table, digests, pool=pool, ahead=ahead)
                    # Near copies of quarantined records are looked for now, without the write lock (and
                    # not at all when the ward holds no quarantine or the dataset no text column).
                    near = _NewRecords(schema, table)
                    if len(added):
                        self._near_copy_work(uc.conn, near, self._suspects(uc.conn, ds.id, None))
                added_hash = joined_ids_hash(added)  # while the chunk and the id list may still be written
                # The holder index's blocks of the added ids, cut now rather than under the write lock.
                added_cut = holder_index.cut_blocks(staged.distinct) if id_list is not None else None
                added_object = id_list.result() if id_list is not None else None
                staged.wait()  # the chunk's error, if any, is raised here
            finally:
                if ahead is not None:
                    # Lost unless the staging won it: refused, or failed before it, nothing is stored.
                    ahead.settle(False)
        if added_object is not None and added_cut is not None:
            holders.remember_list(added_object, added_cut)
        removed_object = self.store.put(table_to_parquet(ids_table(removed))) if removed else None
        with self.use_case(action, scope) as uc:
            ds = rows.dataset_row(uc.conn, dataset)
            base = rows.latest_version(uc.conn, ds.id)
            if (base.id if base else None) != (checked_base.id if checked_base else None):
                # A merge landed meanwhile: the ids to remove are checked against the new latest version.
                self._check_removable(base, removed, dataset)
            chunk, new_count = store_new_records(uc.conn, self.store, table, staged=staged)
            now = format_time(uc.now)
            src = {
                "uri": source,
                "fetched_at": format_time(fetched_at) if fetched_at else now,
                "licence": licence,
                "raw_hash": raw_hash,
                "format": fmt,
            }
            source_id = json_hash({"uri": source, "raw_hash": raw_hash})
            changes = []
            if uc.conn.execute(select(sources.c.id).where(sources.c.id == source_id)).first() is None:
                changes.append(insert_row("sources", id=source_id, first_seen_at=now, **src))
            chash = json_hash(
                {
                    "dataset": ds.id,
                    "added": added_hash,
                    "removed": content_hash("\n".join(sorted(removed)).encode()),
                }
            )
            cid = new_id("c")
            number = rows.next_number(uc.conn, contributions, ds.id)
            changes.append(
                insert_row(
                    "contributions",
                    id=cid,
                    dataset_id=ds.id,
                    number=number,
                    submitted_by=uc.caller.principal_id,
                    submitter_owner=uc.caller.principal.owner_id,
                    key_id=uc.caller.key_id,
                    source_id=source_id,
                    content_hash=chash,
                    base_version=base.id if base else None,
                    added_count=len(added),
                    removed_count=len(removed),
                    added_object=added_object,
                    removed_object=removed_object,
                    chunk_object=chunk,
                    status="submitted",
                    created_at=now,
                    message=message,
                )
            )
            uc.emit(
                "contribution.submitted",
                {"dataset": ds.id, "contribution": cid, "source": source_id},
                {
                    "content_hash": chash,
                    "source": src,
                    "added": len(added),
                    "removed": len(removed),
                    "new_records": new_count,
                    "chunk": chunk,
                    "added_object": added_object,
                    "removed_object": removed_object,
                },
                changes,
            )
            if on_submitted is not None:
                on_submitted(uc, cid)
            row = uc.conn.execute(select(contributions).where(contributions.c.id == cid)).one()
            info = contribution_info(row, dataset, uc.caller.principal_name)
            info["new_records"] = new_count
            info["source_uri"] = source
            # A re-submission names what it repeats; a key narrowed to submitting alone learns only that
            # the same change is on file, not which contribution or where it stands.
            same = same_content_as(uc.conn, ds.id, dataset, chash, exclude=cid)
            if same and not may(uc, Action.DATASET_READ, scope):
                same = [{"contribution": None, "status": None, "gate_verdict": None} for _ in same]
            info["same_content_as"] = same
            if added_object is not None:
                # Said now, not only at merge: re-submitting held-back records adds nothing to any version.
                info["held_back"], info["held_back_by"] = self._held_back(uc, ds.id, cid, added_object, near)
        if gate and action is Action.CONTRIBUTION_SUBMIT:
            step(f"running the gate of {dataset} on {info['ref']}")
            ref = info["ref"]
            try:
                info["gate"] = self.gates.run_gate_as(
                    cid, action=Action.CONTRIBUTION_SUBMIT, progress=lambda text: step(f"gate of {ref}: {text}")
                )
            except DatawardError as exc:
                # The contribution is stored and signed; say so, so nobody re-submits it blindly.
                raise type(exc)(
                    f"{info['ref']} was stored, but its gate could not run: {exc.message}",
                    hint=exc.hint or f"fix the cause, then run: dataward gate run {info['ref']}",
                    contribution=info["ref"],
                ) from exc
            except KeyboardInterrupt:
                # Ctrl-C during the scan: nothing of the gate was recorded (its result is written in one
                # transaction after the scan), and the contribution stays submitted, ungated.
                raise Interrupted(
                    f"{info['ref']} was stored, but its gate was interrupted before it judged it",
                    hint=f"run it: dataward gate run {info['ref']}",
                    contribution=info["ref"],
                ) from None
            info["status"], info["gate_verdict"] = "gated", info["gate"]["verdict"]
        return info

    def _suspects(self, conn: Connection, dataset_id: str, contribution_id: str | None) -> list[Any]:
        """Every quarantined contribution of the ward that added records but ``contribution_id``: as the
        catalog or the ward's list of removals holds it (``quarantined_contributions``), and those the
        list holds that the catalog does not know at all (restored from before them). One of those whose
        id list the store lacks refuses a contribution to dataset ``dataset_id`` that its records could
        be records of (``guard.refuse_unheld_quarantines``): it never holds nothing back."""
        listed = listed_removals(conn)
        suspects = quarantined_contributions(conn, exclude=contribution_id, listed=listed.quarantined)
        # A contribution the list holds quarantined that the catalog does not hold at all (restored from
        # before it): its records are held back all the same, by the id list the list kept.
        known = {q.id for q in suspects} | ({contribution_id} if contribution_id else set())
        name = conn.execute(select(datasets.c.name).where(datasets.c.id == dataset_id)).scalar()
        refuse_unheld_quarantines(conn, self.store, listed, dataset_id, f"take records into {name}", known=known)
        suspects += [
            _Unlisted(cid, added, records_of=listed.quarantined_in.get(cid))
            for cid, added in sorted(listed.quarantined_lists.items())
            if cid not in known and self.store.exists(added)  # one lacking it is refused above, or of another encoding
        ]
        return suspects

    def _near_copy_work(self, conn: Connection, near: _NewRecords, suspects: list[Any]) -> list[np.ndarray]:
        """The normalized identities of each of ``suspects``' records (``service.near_copies``; none for
        a suspect of another encoding), and of the new records (kept in ``near``), when there is any
        suspect and the dataset has text columns; nothing is worked out otherwise."""
        if not suspects or not text_columns(near.schema):
            return [empty_digests() for _ in suspects]
        found = []
        for q in suspects:
            of = q.records_of if isinstance(q, _Unlisted) else q.dataset_id
            found.append(
                quarantined_normalized(
                    conn, self, Quarantined(q.added_object, schema_of(conn, of)), near.schema, of_all=len(suspects)
                )
            )
        if any(len(f) for f in found):
            near.normalized()
        return found

    def _held_back(
        self, uc: UseCase, dataset_id: str, contribution_id: str, added_object: str, near: _NewRecords
    ) -> tuple[int, list[dict[str, Any]]]:
        """How many of a contribution's added records are already held back, so that a merge leaves
        them out, and why: records of a quarantined contribution of any dataset of the ward (a
        quarantine holds its records out of every version, not only its own dataset's), and records
        rejected in review in this dataset (ids are content hashes, so the same content from another
        source or principal is held back all the same).

        Near copies of a quarantined contribution's records (the same once their text's spacing and
        Unicode form are normalized, ``domain.normalized``) are held back too, and said so in an entry
        of their own (``"match": "normalized"``): a re-scrape with other line ends is the same poison.

        The reasons name each quarantined contribution the caller may read (``dataset.read`` on its
        dataset); one of a dataset the caller may not read is said to be in another dataset, unnamed."""
        conn = uc.conn
        rejected = (
            select(quarantine.c.record_id)
            .join(contributions, contributions.c.id == quarantine.c.contribution_id)
            .where(contributions.c.dataset_id == dataset_id, quarantine.c.status == "rejected")
        )
        rejected_ids, valid = ids_to_binary(pa.array(sorted(set(conn.execute(rejected).scalars())), pa.string()))
        parts = [np.compress(valid, rejected_ids, axis=0)]
        suspects = self._suspects(conn, dataset_id, contribution_id)
        if not len(parts[0]) and not suspects:
            # Nothing is held back anywhere: the contribution's id list (a tenth of a second a million
            # records, read back from the store) need not be read.
            return 0, []
        added = read_id_digests(self.store, added_object)
        reasons: list[dict[str, Any]] = []
        if len(parts[0]) and (n := int(member_of(added, sorted_distinct(parts[0])).sum())):
            reasons.append({"why": "rejected in review", "records": n})
        normalized = self._near_copy_work(conn, near, suspects)
        near_held = np.zeros(len(added), dtype=bool)
        for q, quarantined_normalized_ids in zip(suspects, normalized, strict=True):
            ids = read_id_digests(self.store, q.added_object)
            exact = member_of(added, sorted_distinct(ids)) if len(ids) else np.zeros(len(added), dtype=bool)
            close = np.zeros(len(added), dtype=bool)
            if len(quarantined_normalized_ids):
                close = near_copies(near.normalized(), quarantined_normalized_ids) & ~exact
            if not exact.any() and not close.any():
                continue
            parts.append(ids)
            near_held |= close
            readable = q.dataset_id is not None and may(uc, Action.DATASET_READ, dataset_scope(conn, q.dataset_id))
            named = f"{q.dataset_name}#{q.number}" if readable else None
            reason = {"why": "quarantined", "contribution": named, "same_dataset": q.dataset_id == dataset_id}
            if exact.any():
                reasons.append({**reason, "records": int(exact.sum())})
            if close.any():
                reasons.append({**reason, "records": int(close.sum()), "match": "normalized"})
        held = sorted_distinct(np.concatenate(parts))
        return int((member_of(added, held) | near_held).sum()), reasons

    def _put_id_list(
        self, added: pa.ChunkedArray, file_rows: Sequence[int] | np.ndarray, digests: np.ndarray | None
    ) -> str:
        """Store a contribution's added ids and their file rows (from the digests, when the reader
        worked them out); returns the object's digest."""
        return self.store.put(table_to_parquet(ids_table(added, file_rows), digests))

    def _check_removable(self, base: Any, removed: list[str], dataset: str) -> None:
        """Every id a contribution removes must be in the latest version (``base``)."""
        if not removed:
            return
        present = set(manifest_ids(self.store, base.manifest_object)) if base else set()
        unknown = [r for r in removed if r not in present]
        if unknown:
            raise InputError(
                f"{len(unknown)} record id(s) to remove are not in the latest version, e.g. {unknown[0]}",
                hint=f"check the ids against `dataward export {dataset}@latest -o latest.csv`",
            )

    def withdraw(self, contribution: str, *, reason: str = "") -> dict[str, Any]:
        """Withdraw a contribution that is not merged yet. Contributors withdraw their own (or their
        bots'); owners and admins any on their dataset. It can never be merged afterwards."""
        # Before the contribution is looked up: whether it exists is not for a key that does not authenticate.
        self.admit(Action.CONTRIBUTION_WITHDRAW, detail={"contribution": contribution})
        with self.db.reading() as conn:
            c = named_contribution(conn, contribution)
            ds_name = conn.execute(select(datasets.c.name).where(datasets.c.id == c.dataset_id)).scalar_one()
        scope = Scope.dataset(ds_name)
        with self.use_case(Action.CONTRIBUTION_WITHDRAW, scope, check=False) as uc:
            c = rows.contribution_row(uc.conn, c.id)
            authorize_withdraw(
                uc.caller.principal, uc.caller.key, uc.caller.grants, scope, c.submitted_by, c.submitter_owner, uc.now
            ).raise_if_denied()
            if c.status not in ("submitted", "gated"):
                raise Conflict(f"{ds_name}#{c.number} is {c.status} and can no longer be withdrawn")
            changes = [update_row("contributions", {"id": c.id}, status="withdrawn")]
            changes += close_pending_reviews(uc, c.id, "contribution withdrawn")
            uc.emit(
                "contribution.withdrawn", {"dataset": c.dataset_id, "contribution": c.id}, {"reason": reason}, changes
            )
            return {"contribution": f"{ds_name}#{c.number}", "status": "withdrawn", "by": uc.caller.principal_name}

    def contributions(self, dataset: str, *, status: str | None = None) -> list[dict[str, Any]]:
        """A dataset's contributions, oldest first, optionally of one status."""
        if status and status not in CONTRIBUTION_STATUSES:
            # An unknown status matched nothing and listed no contribution, as if there were none.
            raise InputError(
                f"unknown contribution status {status!r}", hint=f"use one of: {', '.join(CONTRIBUTION_STATUSES)}"
            )
        with self.use_case(Action.DATASET_READ, self.datasets.read_scope(dataset)) as uc:
            ds = rows.dataset_row(uc.conn, dataset)
            # What is listed (who submitted, with which key, from which source, its status) is checked
            # against the signed ledger: every row listed, and every row the ledger says the listing
            # should hold, so that a row edited into, out of or within it is refused (exit 7), not shown.
            check = SignedCheck(self, uc.conn, doing="list")
            check.row("datasets", ds, f"dataset {dataset!r}")
            # A status is the row's, or "quarantined" for one the ward's list of removals holds so.
            removals = listed_removals(uc.conn)
            held = set(removals.quarantined)

            def status_of(cid: Any, row_status: Any) -> Any:
                return "quarantined" if cid in held else row_status

            query = select(contributions.c.id, contributions.c.status).where(contributions.c.dataset_id == ds.id)
            signed = [
                r["id"]
                for r in check.signed("contributions")
                if r.get("dataset_id") == ds.id and (not status or status_of(r["id"], r.get("status")) == status)
            ]
            listed = [r.id for r in uc.conn.execute(query) if not status or status_of(r.id, r.status) == status]
            found = check.matching("contributions", listed, signed, f"the contributions of {dataset!r}")
            srcs = check.by_id("sources", [r.source_id for r in found if r.source_id])
            check.people([r.submitted_by for r in found])
            lifted = lifted_blocks(uc.conn, found)
            out = []
            for row in sorted(found, key=lambda r: r.number):
                submitter = rows.principal_name(uc.conn, row.submitted_by)
                info = contribution_info(row, dataset, submitter, removals)
                src = srcs.get(row.source_id)
                info["source_uri"] = src.uri if src else None
                info["block_overridden"] = lifted.get(row.id)
                out.append(info)
            return out

    def contribution(self, ref: str) -> dict[str, Any]:
        """One contribution with its source's details."""
        # Authorized on the contribution's dataset before saying whether it exists: one of a dataset the
        # caller may not see is not found, as one that does not exist (see ``service/visibility.py``).
        with self.use_case(Action.DATASET_READ, Scope.ward(), check=False, detail={"ref": ref}) as uc:
            found = find_contribution(uc.conn, ref)
            scope = None if found is None else dataset_scope(uc.conn, found.dataset_id)
            missing = missing_contribution(ref)
            authorize_found(uc, Action.DATASET_READ, None if scope is None else scope.name, missing)
            row = found
            ds_name = dataset_name(uc.conn, row.dataset_id)
            check = SignedCheck(self, uc.conn)
            check.row("contributions", row, f"contribution {ref}")
            check.people([row.submitted_by])
            submitter = rows.principal_name(uc.conn, row.submitted_by)
            info = contribution_info(row, ds_name, submitter, listed_removals(uc.conn))
            src = check.by_id("sources", [row.source_id])[row.source_id] if row.source_id else None
            info["source_detail"] = dict(src._mapping) if src else None
            info["source_uri"] = src.uri if src else None
            info["block_overridden"] = lifted_blocks(uc.conn, [row]).get(row.id)
            return info


__all__ = ["ContributionService", "contribution_info", "quarantined_contributions"]
