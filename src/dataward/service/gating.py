"""Use cases of the gates: run a contribution's gate, hold flagged records in quarantine, and the
human review queue that decides them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import Connection, func, select

from dataward.access.policy import separation_problem
from dataward.access.roles import Action, Scope
from dataward.catalog import ledger_store
from dataward.catalog.projection import insert_row, update_row
from dataward.catalog.tables import contributions, datasets, gate_runs, quarantine, sources, versions
from dataward.domain.errors import (
    AccessDenied,
    Conflict,
    InputError,
    IntegrityViolation,
    NotFound,
    PolicyViolation,
)
from dataward.domain.hashing import canonical_json
from dataward.domain.idarrays import without_records
from dataward.domain.schema import RECORD_ID, ColumnKind, Schema
from dataward.gates.policy import EARLIER_BATCHES_DAYS
from dataward.ledger.events import format_time
from dataward.service import auth, rows
from dataward.service.approval_standing import read_standing, voided_decision
from dataward.service.bot_owners import acting_earlier_owners, read_owner_history, submitter_earlier_owners
from dataward.service.config import WardConfig
from dataward.service.core import Service, Stale, new_id, retry_stale
from dataward.service.datasets import dataset_read_scope
from dataward.service.earlier_batches import MIN_BASELINE, earlier_batches, joint_inputs
from dataward.service.first_import import first_import_refusal, trusted_for_first_import, validation_skip_reason
from dataward.service.gate_limits import detection_limit
from dataward.service.gate_seed import GateSeed, gate_seed
from dataward.service.guard import (
    SignedCheck,
    barred_records,
    checked_for_signing,
    checked_manifest,
    checked_signed_rows,
    manifest_members,
    may,
    serving,
    signed_training,
)
from dataward.service.manifests import load_version
from dataward.service.overrides import is_overridden
from dataward.service.quarantine_holds import (
    HELD_BACK,
    closing_reason,
    held_items,
    quarantined_holders,
    refuse_accepting_held,
)
from dataward.service.recordstore import load_records, locate_records, read_ids_and_rows
from dataward.service.removal_gate import judge_removal, removal_inputs, removal_only_report, with_removal
from dataward.service.removal_list import listed_removals, quarantine_listed
from dataward.service.review_evidence import carrier_findings, item_reason, neighbour_texts
from dataward.service.review_listing import checked_review_rows
from dataward.service.rows import current_owner
from dataward.service.validation_schema import validation_schema_refusal
from dataward.service.visibility import (
    authorize_found,
    authorize_on_dataset,
    dataset_name,
    find_contribution,
    named_contribution,
)
from dataward.service.withheld import withhold_records

if TYPE_CHECKING:
    from dataward.gates.policy import GatePolicy

REVIEW_DECISIONS = ("accept", "reject")
REVIEW_STATUSES = ("pending", "accepted", "rejected", "all")
"""What ``review list --status`` takes: an item's status, or every item."""


def check_review_items(items: Any) -> None:
    """Refuse one id given where a list of ids is asked: read character by character, ``"q_3f..."``
    was refused as "no review item 'q'", which names nothing the caller wrote."""
    if isinstance(items, str):
        raise InputError("items must be a list of review item ids, not one string", hint=f"pass [{items!r}]")


VERDICT_ORDER = ("pass", "review", "block")
SELFTEST_MIN_TRUSTED = 100
"""The fewest trusted records of a training version a self-test holds a clean slice out of."""


def _gateable(c: Any, ds: Any) -> Any:
    """The contribution, if a gate may (re-)run on it."""
    if c.status not in ("submitted", "gated"):
        raise Conflict(f"contribution {ds.name}#{c.number} is {c.status}; the gate runs before a merge")
    if c.gate_verdict == "block":
        raise Conflict(
            f"contribution {ds.name}#{c.number} was blocked by its gate; re-running the gate cannot lift a block",
            hint="reject it, re-submit the data without the flagged records, or have two owners or admins "
            f"override the block (dataward gate override {ds.name}#{c.number} --reason '...')",
        )
    return c


def signed_baselines(ward: Any, conn: Any, ds: Any) -> tuple[Any, Any, Any]:
    """``(training, validation_set, validation)``: the version row of dataset row ``ds`` at stage
    ``training``, its clean validation set's dataset row and that set's newest version row (each None
    when there is none), as the signed ledger says, not as the catalog's columns alone say.

    What a gate judges against decides its verdict: a training version hidden from the catalog (its
    ``stage`` set to ``candidate`` while the gate runs) turned a block into a signed pass judged against
    half the validation set, and a validation set or its newest version deleted would let the gate skip
    clean validation. So each is looked up twice, among the catalog's rows and among the rows the signed
    ledger's changes made (``SignedCheck.matching``): a row edited into or out of the lookup, or deleted,
    is refused (``IntegrityViolation``, naming the row), never judged by."""
    check = SignedCheck(ward, conn, doing="gate")
    signed_versions = check.state.tables["versions"]

    def signed_of(dataset_id: str) -> list[dict[str, Any]]:
        return [signed_versions[(i,)] for i in check.ids_where("versions", "dataset_id", {dataset_id})]

    found = signed_training(ward, conn, ds, doing="gate")
    if len(found) > 1:
        shown = ", ".join(f"{ds.name}@v{v.number}" for v in found)
        raise IntegrityViolation(
            f"refusing to gate: {len(found)} versions of {ds.name!r} are at stage training in the signed ledger "
            f"({shown})",
            hint=f"an owner retires the older one, signed (dataward promote {ds.name}@v{found[0].number} "
            "--stage retired --reason '...'), or promotes the one to keep again; `dataward verify` reports it as "
            "two_training",
            row=f"versions {found[0].id}",
        )
    training = found[0] if found else None
    what = f"the clean validation set of {ds.name!r}"
    catalog = conn.execute(
        select(datasets.c.id).where(datasets.c.validation_for == ds.name, datasets.c.role == "validation")
    ).scalars()
    signed = [
        r["id"]
        for r in check.signed("datasets")
        if r.get("validation_for") == ds.name and r.get("role") == "validation"
    ]
    sets = sorted(check.matching("datasets", catalog, signed, what), key=lambda r: r.id)
    val_ds = sets[0] if sets else None
    val_version = None
    if val_ds is not None:
        latest = rows.latest_version(conn, val_ds.id)
        newest = max(signed_of(val_ds.id), key=lambda r: int(r["number"]), default=None)
        found = check.matching(
            "versions",
            [] if latest is None else [latest.id],
            [] if newest is None else [newest["id"]],
            f"the newest version of {what}",
        )
        val_version = max(found, key=lambda r: r.number, default=None)
    return training, val_ds, val_version


def _judged_against(ward: Any, conn: Any, ds: Any) -> tuple[Any, ...]:
    """What a gate run's verdict depends on besides the contribution: the dataset's policy, its
    training version, and its clean validation set's newest version, as the signed ledger says
    (``signed_baselines``). Read when the gate's inputs are read and again when its result is recorded;
    a difference means the run judged stale inputs."""
    training, _, validation = signed_baselines(ward, conn, ds)
    signed_ds = SignedCheck(ward, conn, doing="gate").state.tables["datasets"].get((ds.id,)) or {}
    return (
        signed_ds.get("policy_hash"),
        None if training is None else training.id,
        None if validation is None else validation.id,
    )


def _gate_policy(ds: Any) -> dict[str, Any]:
    """The ``gate`` section of the dataset policy (empty: the gate's defaults)."""
    if not ds.policy:
        return {}
    from dataward.access.policy import DatasetPolicy

    return dict(DatasetPolicy.from_yaml(ds.policy, stored=True).gate or {})


def _seeded(gate: dict[str, Any], seed: GateSeed) -> GatePolicy:
    """The ``GatePolicy`` a gate run uses: the dataset's, with the run's seed."""
    from dataward.gates import GatePolicy

    return GatePolicy.from_dict({**gate, "seed": seed.value})


class GateService(Service):
    """Use cases of the gates: run a contribution's gate, its report, the self-test."""

    def _version_records(self, conn: Any, version: Any, schema: Schema) -> pa.Table:
        return self._checked_records(conn, version, schema)[2]

    def _checked_records(self, conn: Any, version: Any, schema: Schema) -> tuple[Any, Any, pa.Table]:
        """The dataset row, the manifest and the records of ``version``. What a gate trusts is read like
        any other read: checked against the signed ledger first."""
        ds = conn.execute(select(datasets).where(datasets.c.id == version.dataset_id)).one()
        manifest = checked_manifest(self, conn, ds, version)
        return ds, manifest, load_version(conn, self.store, manifest, schema)

    def _trusted_records(self, conn: Any, version: Any, schema: Schema) -> tuple[pa.Table, int]:
        """A version's records a gate may trust, and how many were left out: none that must never reach
        training (quarantined or rejected since it was promoted, ``guard.barred_records``). Poison matching
        a quarantined baseline would otherwise look normal to every detector."""
        ds, manifest, table = self._checked_records(conn, version, schema)
        barred = barred_records(
            conn, self.store, ds, version, manifest_members(manifest), (self.signer.public_key_b64, self.ward_id)
        )
        if not barred:
            return table, 0
        return without_records(table, barred), len(barred)

    def _trusted_inputs(self, conn: Any, ds: Any) -> dict[str, Any]:
        """What a gate compares against: the training version (the trusted baseline), the first version
        ever promoted (so slow drift is judged against it too), and the clean validation set."""
        schema = rows.dataset_schema(ds)
        # Which versions are trusted is the signed ledger's word, not the catalog's stage column alone.
        training, val_ds, val_version = signed_baselines(self, conn, ds)
        first_baseline = None
        first_id = next(
            (
                e.subject["version"]
                for e in ledger_store.read_events(conn, types=["version.promoted"])
                if e.subject.get("dataset") == ds.id
            ),
            None,
        )
        if first_id is not None and training is not None and first_id != training.id:
            first = conn.execute(select(versions).where(versions.c.id == first_id)).one()
            first_baseline, _ = self._trusted_records(conn, first, schema)
        validation = None
        if val_ds is not None and (refusal := validation_schema_refusal(conn, ds)) is not None:
            # A bad-input error, not an integrity one: its chunks do not hold this schema's columns.
            raise refusal
        if val_version is not None:
            validation = self._version_records(conn, val_version, schema)
        baseline, left_out = self._trusted_records(conn, training, schema) if training else (None, 0)
        if baseline is not None and baseline.num_rows == 0:
            raise PolicyViolation(
                f"every record of {ds.name}@v{training.number}, the training version the gate trusts, must "
                "never reach training (quarantined or rejected): there is nothing to judge against",
                hint=f"promote a clean version first (`dataward versions {ds.name}` lists the rollback "
                "that `dataward quarantine` made)",
            )
        return {
            "schema": schema,
            "baseline": baseline,
            "first_baseline": first_baseline,
            "validation": validation,
            "baseline_version": training.id if training else None,
            "left_out": left_out,
        }

    def _gate_inputs(self, conn: Any, ds: Any, contribution: Any, *, earlier: bool = True) -> dict[str, Any]:
        """The trusted inputs plus the contribution's added records (with their file rows and grouping)
        and its removal (``removal``, None when it removes nothing).

        ``trusted`` says what the additions are judged against: the training version, or before there
        is one the clean validation set (see ``first_import``). ``clean_validation`` is the whole
        validation set, which the removal's accuracy check uses. ``earlier`` (with ``earlier=True``) holds
        the sender's earlier batches the additions are judged with again (``service.earlier_batches``).
        """
        inputs = self._trusted_inputs(conn, ds)
        schema = inputs["schema"]
        inputs["clean_validation"] = inputs["validation"]
        inputs["removal"] = removal_inputs(self, conn, contribution, schema)
        ids, file_rows = read_ids_and_rows(self.store, contribution.added_object)
        if not ids:
            if inputs["removal"] is None:
                raise InputError("this contribution neither adds nor removes records: there is nothing to judge")
            inputs["contribution"] = inputs["groups"] = None
            inputs["trusted"] = {
                "kind": "removal",
                "version": inputs["removal"]["base_version"],
                "records": inputs["removal"]["baseline"].num_rows,
                "held_out": 0 if inputs["validation"] is None else inputs["validation"].num_rows,
                "note": "a removal is judged against the version it removes records from",
            }
            return inputs
        if inputs["baseline"] is None:
            refusal = first_import_refusal(conn, ds)
            if refusal is not None:
                raise refusal
            # The halves of the trusted validation set follow the policy's seed, not the run's: every
            # first-import batch is judged against the same half (a contributor cannot read the set,
            # so knowing its split tells him nothing about where a sample falls in his own file).
            seed = int(_gate_policy(ds).get("seed", 0))
            inputs["baseline"], inputs["validation"], inputs["trusted"] = trusted_for_first_import(
                inputs["validation"], schema.label, seed, ref=f"{ds.name}#{contribution.number}"
            )
        else:
            inputs["trusted"] = {
                "kind": "training",
                "version": inputs["baseline_version"],
                "records": inputs["baseline"].num_rows,
                "held_out": 0 if inputs["validation"] is None else inputs["validation"].num_rows,
                "note": "judged against the training version"
                + (" and the clean validation set" if inputs["validation"] is not None else ""),
            }
            if inputs["left_out"]:
                inputs["trusted"]["left_out"] = inputs["left_out"]
                inputs["trusted"]["note"] += (
                    f", without its {inputs['left_out']} records quarantined or rejected since it was promoted"
                )
        table = load_records(conn, self.store, ids, schema)
        table = table.append_column("row", pa.array(file_rows, type=pa.int64()))
        source = conn.execute(select(sources.c.uri).where(sources.c.id == contribution.source_id)).scalar()
        submitter = rows.principal_name(conn, contribution.submitted_by)
        n = table.num_rows
        inputs["contribution"] = table
        inputs["earlier"] = None
        if earlier and inputs["trusted"]["kind"] == "training":
            days = _gate_policy(ds).get("earlier_batches_days", EARLIER_BATCHES_DAYS)
            inputs["earlier"] = earlier_batches(
                self, conn, ds, contribution, int(days), table, schema, baseline=inputs["baseline"]
            )
        inputs["groups"] = {
            "contribution": [f"{ds.name}#{contribution.number}"] * n,
            "source": [source or "-"] * n,
            "principal": [submitter or "-"] * n,
        }
        return inputs

    def run_gate(self, contribution_ref: str, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Run the dataset's gate on a contribution against the trusted baseline.

        Flagged records go to quarantine and the review queue; the run is a ``gate.completed`` event.
        Returns the gate report (see docs/gates.md) with ``gate_run`` and ``contribution`` added.
        ``progress`` is told the scan's steps (``dataward.gates.progress``).
        """
        return self.run_gate_as(contribution_ref, action=Action.GATE_RUN, progress=progress)

    def run_gate_as(
        self, contribution_ref: str, *, action: Action, progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """``run_gate`` under ``action``: reviewers run gates; a submission runs its own gate as part of
        ``contribution.submit``, so every contribution is judged without anyone having to ask.

        Run again (up to ``STALE_ATTEMPTS`` times) when its baseline changed while it ran. ``progress`` is
        told the scan's steps (``dataward.gates.progress``)."""
        return retry_stale(lambda: self._run_gate_once(contribution_ref, action=action, progress=progress))

    def _run_gate_once(
        self, contribution_ref: str, *, action: Action, progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        from dataward.gates import scan
        from dataward.gates.embedding_store import keeping
        from dataward.gates.report import extras_json
        from dataward.service.embedding_cache import WardEmbeddingCache

        with self.db.reading() as conn:
            c = named_contribution(conn, contribution_ref)
            ds = conn.execute(select(datasets).where(datasets.c.id == c.dataset_id)).one()
        if ds.role != "dataset":
            raise InputError(f"{ds.name!r} is a clean validation set; its owner curates it, no gate runs on it")
        # Inputs are read in a read transaction, and the scan computed, outside any write transaction:
        # a gate can run for minutes and must not hold the catalog's write lock meanwhile. The write
        # that records it then checks that what it judged against is still what it read.
        step = progress or (lambda _text: None)
        step("reading the trusted baseline and the contribution")
        with self.use_case(action, Scope.dataset(ds.name), write=False) as uc:
            c = _gateable(rows.contribution_row(uc.conn, c.id), ds)
            ds = rows.dataset_row(uc.conn, ds.name)
            # The id list judged, the verdict a re-run never lowers and the policy, as the ledger made them.
            checked_for_signing(self, uc.conn, ds, c, doing="gate")
            inputs = self._gate_inputs(uc.conn, ds, c)
            judged = _judged_against(self, uc.conn, ds)
        # The scan's random choices (the detectors' samples of the contribution, folds, forests) follow a
        # seed the contributor cannot know beforehand, unless the policy pins one.
        seed = gate_seed(self.signer, _gate_policy(ds), c)
        gate_policy = _seeded(_gate_policy(ds), seed)
        report, extras, data = None, {}, {}
        if inputs["contribution"] is not None:
            # What the sentence model computed for a text list in an earlier run is read back, bit for
            # bit, instead of being computed again (the trusted sample, for every contribution judged
            # against the same training version); the report is the same either way.
            with keeping(WardEmbeddingCache(self.folder, self.signer)):
                report = scan(
                    inputs["baseline"],
                    inputs["contribution"],
                    inputs["schema"],
                    inputs["validation"],
                    gate_policy,
                    first_baseline=inputs["first_baseline"],
                    groups=inputs["groups"],
                    # The contribution is held to the ward's limits (rows, image pixels), as at import.
                    limits=WardConfig.load(self.folder).limits(),
                    # With a Dask scheduler set for this process, the contribution is scored in partitions
                    # on its workers; the report is the same, and nothing is stored if the scan fails.
                    scheduler=gate_scheduler(),
                    no_validation=validation_skip_reason(inputs["trusted"]),
                    progress=progress,
                )
                data, extras = report.to_dict(), extras_json(report)
                if inputs["earlier"] is not None:
                    data = self._judged_with_earlier(inputs, data, gate_policy, ref=f"{ds.name}#{c.number}", step=step)
        if inputs["removal"] is not None:
            # Removing records is judged too; with additions, the worse verdict wins.
            # What the same contribution adds replaces what it removes (a rewrite of records is no loss).
            removal = judge_removal(
                inputs["removal"], inputs["schema"], inputs["clean_validation"], gate_policy, inputs["contribution"]
            )
            data = with_removal(data, removal) if report is not None else removal_only_report(removal, gate_policy)
        data["trusted"] = inputs["trusted"]
        # The seed is recorded so that an admin can re-run the scan exactly (``policy.seed`` is it too).
        data["seed"] = seed.to_dict()
        step("storing the report and recording the verdict")
        # The stored report keeps the evidence (neighbours, projections) that reviewers look at.
        report_object = self.store.put(canonical_json({**data, "extras": extras}))
        with self.use_case(action, Scope.dataset(ds.name)) as uc:
            before = c.gate_verdict
            c = _gateable(rows.contribution_row(uc.conn, c.id), ds)
            checked_for_signing(self, uc.conn, ds, c, doing="gate")
            if c.gate_verdict != before:
                raise Conflict(f"another gate run on {ds.name}#{c.number} finished first", hint="run it again")
            if _judged_against(self, uc.conn, ds) != judged:
                raise Stale(
                    f"the training version, clean validation set or policy of {ds.name!r} changed while the gate "
                    f"of {ds.name}#{c.number} ran",
                    hint="run the gate again",
                )
            # A re-run never lowers a verdict: the worst one a contribution ever had stands. A block that
            # two principals overrode stays overridden for this content: a re-run adds flags, not a block.
            verdict = max(data["verdict"], c.gate_verdict or "pass", key=VERDICT_ORDER.index)
            if verdict == "block" and is_overridden(uc.conn, c):
                verdict = "review"
            run_id = new_id("gr")
            now = format_time(uc.now)
            changes = [
                insert_row(
                    "gate_runs",
                    id=run_id,
                    contribution_id=c.id,
                    verdict=data["verdict"],
                    config_hash=data["config_hash"],
                    report_object=report_object,
                    baseline_version=inputs["baseline_version"],
                    flagged=int(data["counts"]["flagged"]),
                    created_at=now,
                ),
                update_row("contributions", {"id": c.id}, status="gated", gate_verdict=verdict, gate_run=run_id),
            ]
            already = {
                r.record_id
                for r in uc.conn.execute(select(quarantine.c.record_id).where(quarantine.c.contribution_id == c.id))
            }
            # A flagged record a quarantine holds already is out of every merge whatever a reviewer says:
            # its item is opened closed, naming the quarantine, not left in the queue (``quarantine_holds``).
            flagged = {rec["record_id"] for rec in data["records"] if rec["flagged"]} - already
            holders = {
                r: h for r, h in quarantined_holders(self, uc.conn, flagged).items() if h.contribution_id != c.id
            }
            for rec in data["records"]:
                if not rec["flagged"] or rec["record_id"] in already:
                    continue
                already.add(rec["record_id"])
                holder = holders.get(rec["record_id"])
                closed = {} if holder is None else {"status": "rejected", "decided_at": now}
                changes.append(
                    insert_row(
                        "quarantine",
                        id=new_id("q"),
                        contribution_id=c.id,
                        record_id=rec["record_id"],
                        row=int(rec["row"]),
                        score=round(float(rec["score"]), 6),
                        detectors=json.dumps(rec["flagged_by"]),
                        reason=item_reason(data["findings"], rec["row"], rec["flagged_by"]),
                        **{"status": "pending", **closed},
                        **({} if holder is None else {"decision_reason": closing_reason(holder, ds.id)}),
                    )
                )
            uc.emit(
                "gate.completed",
                {"dataset": ds.id, "contribution": c.id, "gate_run": run_id},
                {
                    "verdict": data["verdict"],
                    "contribution_verdict": verdict,
                    "reasons": data["reasons"],
                    "mode": data["mode"],
                    "config_hash": data["config_hash"],
                    "detectors": {
                        name: {"version": d["version"], "p_value": d["p_value"], "flagged": d["flagged"]}
                        for name, d in data["detectors"].items()
                    },
                    "counts": data["counts"],
                    "baseline_version": inputs["baseline_version"],
                    "trusted": {k: v for k, v in inputs["trusted"].items() if k != "note"},
                    "seed": seed.to_dict(),
                    "earlier_batches": data.get("earlier_batches"),
                    "removals": None
                    if "removals" not in data
                    else {k: data["removals"][k] for k in ("verdict", "reasons", "removed", "total", "summary")},
                    "report": report_object,
                },
                changes,
            )
            queued = _queued_for_review(uc.conn, c)
            closed = _closed_held_back(uc.conn, c)
            floors = may(uc, Action.GATE_RUN, Scope.dataset(ds.name))
            limit = detection_limit(uc.conn, ds, data, baseline_version=inputs["baseline_version"], sees_floors=floors)
            # What the run answers is the report as ``gate_report`` shows it to this caller: a submitter
            # without dataset.export sees its own records, never the trusted ones quoted beside them.
            sees_records = may(uc, Action.DATASET_EXPORT, Scope.dataset(ds.name))
            own = uc.caller.principal_id in (c.submitted_by, c.submitter_owner)
        if not sees_records:
            data = withhold_records(data, own=own, dataset=ds.name)
        data["gate_run"] = run_id
        data["contribution"] = f"{ds.name}#{c.number}"
        if limit is not None:
            data["detection_limit"] = limit
        return with_queue(data, queued, closed)

    def _judged_with_earlier(
        self, inputs: dict[str, Any], data: dict[str, Any], policy: GatePolicy, *, ref: str, step: Callable[[str], None]
    ) -> dict[str, Any]:
        """``data`` (the batch's report) with the verdict of the joint scan of the batch and its sender's
        earlier batches folded in (``dataward.gates.earlier_batches``)."""
        from dataward.gates import scan
        from dataward.gates.earlier_batches import joined, summary

        earlier = inputs["earlier"]
        if earlier.table is None:
            data["earlier_batches"] = summary(
                None, earlier.refs, skipped=f"fewer than {MIN_BASELINE} trusted records are not the sender's own"
            )
            return data
        baseline, contribution, groups = joint_inputs(inputs["contribution"], earlier, ref)
        step(f"judging the batch with the sender's {len(earlier.refs)} records of earlier batches")
        # No input limits here: the batch was held to them by the first scan and each earlier batch at its
        # own import; together they may exceed a per-batch row limit, which must not fail the gate.
        joint = scan(
            baseline,
            contribution,
            inputs["schema"],
            inputs["validation"],
            policy,
            first_baseline=inputs["first_baseline"],
            groups=groups,
            scheduler=gate_scheduler(),
            no_validation=validation_skip_reason(inputs["trusted"]),
        )
        batch_ids = inputs["contribution"].column(RECORD_ID).to_pylist()
        return joined(data, joint.to_dict(), batch_ids, earlier.refs, settled=earlier.settled)

    def gate_report(self, contribution_ref: str) -> dict[str, Any]:
        """The latest stored gate report of a contribution."""
        with self.use_case(Action.DATASET_READ, Scope.ward(), check=False, detail={"ref": contribution_ref}) as uc:
            c = find_contribution(uc.conn, contribution_ref)
            ds_name = None if c is None else dataset_name(uc.conn, c.dataset_id)
            authorize_found(uc, Action.DATASET_READ, ds_name, NotFound(f"no contribution {contribution_ref!r}"))
            if c.gate_run is None:
                raise NotFound(
                    f"no gate has run on {ds_name}#{c.number}", hint=f"dataward gate run {ds_name}#{c.number}"
                )
            run = uc.conn.execute(select(gate_runs).where(gate_runs.c.id == c.gate_run)).one()
            # Which report is the contribution's is the ledger's word: a run or a report object swapped
            # in the catalog would show reviewers, and owners asked to lift a block, another gate's result.
            checked_signed_rows(self, uc.conn, "contributions", [c], doing="serve")
            checked_signed_rows(self, uc.conn, "gate_runs", [run], doing="serve")
            with serving(f"the gate report of {ds_name}#{c.number}"):
                data = json.loads(self.store.get(run.report_object))
            if not may(uc, Action.DATASET_EXPORT, Scope.dataset(ds_name)):
                # Records need dataset.export on every path: a contributor keeps its own contribution's
                # records, never the trusted ones; anyone else sees what the gate measured, not what it quoted.
                own = uc.caller.principal_id in (c.submitted_by, c.submitter_owner)
                data = withhold_records(data, own=own, dataset=ds_name)
            data["gate_run"] = run.id
            data["contribution"] = f"{ds_name}#{c.number}"
            ds = rows.dataset_row(uc.conn, ds_name)
            floors = may(uc, Action.GATE_RUN, Scope.dataset(ds_name))
            limit = detection_limit(uc.conn, ds, data, baseline_version=run.baseline_version, sees_floors=floors)
            if limit is not None:
                data["detection_limit"] = limit
            return with_queue(data, _queued_for_review(uc.conn, c), _closed_held_back(uc.conn, c))

    def selftest(self, dataset: str, contribution_ref: str | None = None, *, seed: int = 0) -> dict[str, Any]:
        """Plant known poisons into a copy of a clean contribution (default: a seeded random slice of
        the training version) and report the recall this dataset's gate achieves. Stores nothing but
        the event."""
        from dataward.gates.selftest import held_out_split, selftest

        # A reading use case: the self-test can take a while and changes nothing but its event, which
        # is appended afterwards in a short write.
        with self.use_case(Action.GATE_RUN, Scope.dataset(dataset), write=False) as uc:
            ds = rows.dataset_row(uc.conn, dataset)
            if contribution_ref is not None:
                # Only this dataset's contributions are looked at: the gate.run right covers no other.
                c = find_contribution(uc.conn, contribution_ref)
                if c is None or c.dataset_id != ds.id:
                    raise NotFound(f"no contribution {contribution_ref!r} in {dataset!r}")
                inputs = self._gate_inputs(uc.conn, ds, c, earlier=False)
                if inputs["contribution"] is None:
                    raise InputError(f"contribution {contribution_ref} adds no records to plant canaries in")
                clean, baseline = inputs["contribution"].drop_columns(["row"]), inputs["baseline"]
            else:
                inputs = self._trusted_inputs(uc.conn, ds)
                if inputs["baseline"] is None:
                    raise InputError(
                        f"{dataset!r} has no training version to self-test against",
                        hint="promote a version to training, or name a clean contribution (--contribution C)",
                    )
                if inputs["baseline"].num_rows < SELFTEST_MIN_TRUSTED:
                    raise InputError(
                        f"{dataset!r}'s training version holds {inputs['baseline'].num_rows} trusted records; a "
                        f"self-test needs at least {SELFTEST_MIN_TRUSTED} to hold out a clean slice from",
                        hint="promote a larger version to training, or name a clean contribution (--contribution C)",
                    )
                # Hold out a random (seeded) slice of the trusted data as the clean contribution. Not the
                # newest records: they often came from one source (a vendor's one-class batch), which
                # is unlike the rest, so the clean run would measure that source's novelty instead of
                # the gate's false-positive rate, and the canaries would hide behind its review.
                table = inputs["baseline"]
                held_out, trusted = held_out_split(table.num_rows, seed)
                clean, baseline = table.take(held_out), table.take(trusted)
            result = selftest(
                baseline, clean, inputs["schema"], inputs["validation"], _gate_policy(ds), seed=seed
            ).to_dict()
            summary = _selftest_summary(result, training=inputs.get("baseline_version"), policy_hash=ds.policy_hash)
            uc.emit("gate.selftest", {"dataset": ds.id}, {"summary": summary, "seed": seed})
            return result


class ReviewService(Service):
    """The review queue: records a gate held, shown with their evidence, and the decisions on them."""

    def review_list(
        self, dataset: str | None = None, *, status: str = "pending", contribution: str | None = None
    ) -> list[dict[str, Any]]:
        """Quarantined records awaiting (or past) review, most suspicious first; optionally of one
        dataset or one contribution."""
        if status not in REVIEW_STATUSES:
            # An unknown status matched nothing: a mistyped 'pendng' showed an empty queue.
            raise InputError(f"unknown review status {status!r}", hint=f"use one of: {', '.join(REVIEW_STATUSES)}")
        action = Action.LEDGER_READ if dataset is None and contribution is None else Action.DATASET_READ
        scope = Scope.ward() if dataset is None else Scope.dataset(dataset)
        with self.use_case(action, scope, check=False, detail={"ref": contribution} if contribution else None) as uc:
            contribution_id = None
            if contribution is not None:
                # Authorize on the contribution's dataset before saying whether it exists.
                c = find_contribution(uc.conn, contribution)
                found = None if c is None else dataset_name(uc.conn, c.dataset_id)
                authorize_found(uc, action, found, NotFound(f"no contribution {contribution!r}"))
                if dataset is not None and dataset != found:
                    raise InputError(f"contribution {contribution} does not belong to {dataset!r}")
                contribution_id, dataset = c.id, found
            readable: list[str] | None = None
            if contribution is None and dataset is None and not may(uc, action, scope):
                # Without the whole ward's ledger, the queues of the datasets the caller may read (a
                # reviewer of one dataset opening the review queue), as ``datasets`` lists them; a
                # caller whose grants reach none is refused as before.
                readable = [
                    row.name
                    for row in uc.conn.execute(select(datasets))
                    if may(uc, Action.DATASET_READ, dataset_read_scope(row))
                ]
            if contribution is None and not readable:
                auth.authorize(uc.conn, uc.caller, action, scope, uc.now)
            query = (
                select(
                    quarantine,
                    contributions.c.number,
                    contributions.c.status.label("contribution_status"),
                    datasets.c.name.label("dataset"),
                )
                .join(contributions, contributions.c.id == quarantine.c.contribution_id)
                .join(datasets, datasets.c.id == contributions.c.dataset_id)
            )
            if dataset is not None:
                query = query.where(datasets.c.name == dataset)
            if readable:
                query = query.where(datasets.c.name.in_(readable))
            if contribution_id is not None:
                query = query.where(quarantine.c.contribution_id == contribution_id)
            # A decision whose reviewer or key was taken away since is void: its item is pending again, so
            # the decided items are read too and each placed by the status it has now.
            undecided_too = status in ("pending", "accepted", "rejected")
            if status != "all" and not undecided_too:
                query = query.where(quarantine.c.status == status)
            names = [dataset] if dataset is not None else readable
            dataset_ids = (
                None
                if names is None
                else [r.id for r in uc.conn.execute(select(datasets.c.id).where(datasets.c.name.in_(names)))]
            )
            # Checked as ``review show`` checks one item: what a reviewer triages from is the ledger's word.
            found = checked_review_rows(
                self,
                uc.conn,
                uc.conn.execute(query.order_by(quarantine.c.score.desc())).all(),
                dataset_ids=dataset_ids,
                contribution_id=contribution_id,
                status="all" if undecided_too else status,
            )
            standing = read_standing(uc.conn, uc.signer.public_key_b64)
            voids = {
                r.id: v
                for r in found
                if (v := voided_decision(uc.conn, standing, r, r.contribution_status)) is not None
            }
            listed = _open_to_review(found, listed_removals(uc.conn), status)
            # A pending item whose record a quarantine of another contribution holds back (one left from
            # before such items were closed with the quarantine) is marked: no decision on it changes a
            # merge, and accepting it is refused (``quarantine_holds``).
            held = held_items(self, uc.conn, found) if status in ("pending", "all") else {}
            for item in listed:
                if item["id"] in voids:
                    item.update(status="pending", voided=voids[item["id"]])
                if item["id"] in held:
                    item["held_back"] = held[item["id"]]
            return [item for item in listed if status == "all" or item["status"] == status]

    def review_show(self, item: str) -> dict[str, Any]:
        """One quarantined record with its content and the gate's evidence about it."""
        with self.use_case(Action.DATASET_READ, Scope.ward(), check=False, detail={"ref": item}) as uc:
            q, c, ds = _visible_item(uc, item, Action.DATASET_READ)
            # Record contents need the right to read the dataset's records, as on every other path; a
            # contributor sees the records of its own contributions, never the trusted neighbours.
            sees_records = may(uc, Action.DATASET_EXPORT, Scope.dataset(ds.name))
            if not sees_records and uc.caller.principal_id not in (c.submitted_by, c.submitter_owner):
                raise AccessDenied(
                    f"{uc.caller.principal_name!r} may not see the records of {ds.name}#{c.number}: reading a "
                    f"dataset's records needs dataset.export (reader, reviewer, approver, promoter or owner)",
                    hint=f"contributors see only their own contributions; ask for a reader role on {ds.name}",
                )
            # Which record the item holds is the ledger's word, not the catalog's (see ``review_decide``).
            checked_signed_rows(self, uc.conn, "quarantine", [q], doing="serve")
            schema = rows.dataset_schema(ds)
            record = load_records(uc.conn, self.store, [q.record_id], schema).to_pylist()[0]
            findings: list[dict[str, Any]] = []
            evidence: dict[str, Any] = {}
            triggers: list[str] = []
            if c.gate_run:
                run = uc.conn.execute(select(gate_runs).where(gate_runs.c.id == c.gate_run)).one()
                report = json.loads(self.store.get(run.report_object))
                findings = [f for f in report["findings"] if f.get("row") == q.row]
                # A carrier the detector wrote no finding of its own for: what it found that the record carries.
                findings += carrier_findings(report["findings"], q.row, json.loads(q.detectors or "[]"))
                triggers = [
                    str(f["evidence"]["trigger"])
                    for f in report["findings"]
                    if f["detector"] == "triggers" and q.row in f.get("evidence", {}).get("rows", [])
                ]
                # Language-model records: the prompt trigger and the answer's payload are marked too.
                from dataward.gates.llm_evidence import record_highlights

                triggers += record_highlights(findings)
                evidence = report.get("extras", {}).get("evidence", {}).get(str(q.row), {})
            item_info = _review_item(q, dataset=ds.name, number=c.number)
            if (listed := quarantine_listed(listed_removals(uc.conn), c.id, c.status)) is not None:
                item_info["quarantine_listed"] = listed
            item_info["record"] = _displayable(record, schema)
            item_info["findings"] = findings
            item_info["triggers"] = triggers
            item_info["neighbours"] = evidence.get("neighbours", []) if sees_records else []
            if schema.is_llm and item_info["neighbours"]:
                # A neighbour erased since is shown as the gate stored it (its prompt).
                ids = sorted({str(n["record_id"]) for n in item_info["neighbours"] if n.get("record_id")})
                stored = sorted(locate_records(uc.conn, ids))
                texts = {r[RECORD_ID]: r for r in load_records(uc.conn, self.store, stored, schema).to_pylist()}
                item_info["neighbours"] = neighbour_texts(item_info["neighbours"], texts)
            return item_info

    def review_decide(
        self, items: list[str], decision: str, *, reason: str, contribution: str | None = None
    ) -> list[dict[str, Any]]:
        """Accept (let into the next merge) or reject (never enters a version) quarantined records.

        With ``contribution`` (``c_...`` or ``DATASET#N``), every item of that contribution still pending
        is decided too, in the same transaction as ``items``: an item that arrives meanwhile is either
        decided with the others or not at all. Returns the decided items (none when the contribution
        has nothing pending and no items were named)."""
        check_review_items(items)
        if decision not in REVIEW_DECISIONS:
            raise InputError(f"unknown decision {decision!r}", hint="accept or reject")
        if not reason.strip():
            raise InputError("a review decision needs a reason", hint="pass --reason '...'")
        if not items and contribution is None:
            raise InputError("name at least one review item, or a contribution")
        detail = {"ref": contribution if contribution is not None else items[0]}
        with self.use_case(Action.REVIEW_DECIDE, Scope.ward(), check=False, detail=detail) as uc:
            items = list(items)
            if contribution is not None:
                # Authorized on the contribution's dataset before saying whether it exists.
                found = find_contribution(uc.conn, contribution)
                name = None if found is None else dataset_name(uc.conn, found.dataset_id)
                authorize_found(uc, Action.REVIEW_DECIDE, name, NotFound(f"no contribution {contribution!r}"))
                assert found is not None  # authorize_found refused otherwise
                refuse_listed_quarantine(listed_removals(uc.conn), found, f"{name}#{found.number}")
                # Pending, and decided by a reviewer or key taken away since: back in the queue.
                of_it = quarantine.c.contribution_id == found.id
                undecided = uc.conn.execute(select(quarantine).where(of_it).order_by(quarantine.c.score.desc())).all()
                standing = read_standing(uc.conn, uc.signer.public_key_b64)
                items += [
                    q.id
                    for q in undecided
                    if q.id not in items
                    and (q.status == "pending" or voided_decision(uc.conn, standing, q, found.status))
                ]
                if not items:
                    return []
            _, c, _ = _visible_item(uc, items[0], Action.REVIEW_DECIDE)
            if decision == "accept":
                # An acceptance of a record a quarantine holds back would read as letting it in.
                named = [_visible_item(uc, ref, Action.REVIEW_DECIDE)[0] for ref in items]
                refuse_accepting_held(held_items(self, uc.conn, named), named)
            history = read_owner_history(uc.conn, uc.signer.public_key_b64)
            standing = read_standing(uc.conn, uc.signer.public_key_b64)
            decided = []
            for ref in items:
                q, qc, qds = _visible_item(uc, ref, Action.REVIEW_DECIDE)
                ds_name = qds.name
                if qc.dataset_id != c.dataset_id:
                    raise InputError("review items of one decision must belong to one dataset")
                # Separation of duties is decided on the submitter the ledger recorded, not the catalog's.
                checked_signed_rows(self, uc.conn, "contributions", [qc], doing="decide")
                problem = separation_problem(
                    uc.caller.principal,
                    qc.submitted_by,
                    qc.submitter_owner,
                    verb="decide its records",
                    current_owner_id=current_owner(uc.conn, qc),
                    earlier_owners=submitter_earlier_owners(history, qc),
                    acting_owners=acting_earlier_owners(history, uc.caller),
                )
                if problem is not None:
                    raise PolicyViolation(f"separation of duties: {problem}", hint="another reviewer must decide it")
                refuse_listed_quarantine(listed_removals(uc.conn), qc, f"{ds_name}#{qc.number}", item=q.id)
                if q.status != "pending" and voided_decision(uc.conn, standing, q, qc.status) is None:
                    raise Conflict(f"review item {q.id} was already decided: it is {q.status}")
                # An item pointed at another record in the catalog alone would have the reviewer judge that
                # record while the signed decision lets the held one in.
                checked_signed_rows(self, uc.conn, "quarantine", [q], doing="decide")
                status = "accepted" if decision == "accept" else "rejected"
                uc.emit(
                    f"review.{status}",
                    {"contribution": q.contribution_id, "record": q.record_id, "review_item": q.id},
                    {"reason": reason},
                    [
                        update_row(
                            "quarantine",
                            {"id": q.id},
                            status=status,
                            decided_by=uc.caller.principal_id,
                            decided_at=format_time(uc.now),
                            decision_reason=reason,
                        )
                    ],
                )
                decided.append({"id": q.id, "record_id": q.record_id, "status": status})
            return decided


def refuse_listed_quarantine(listed: Any, c: Any, ref: str, *, item: str | None = None) -> None:
    """Refuse (``Conflict``) a review decision on contribution ``c`` (its row; ``ref``: ``DATASET#N``) when
    the ward's list of removals (``listed``) holds it quarantined and its catalog row does not (restored
    from a backup older than the quarantine). A quarantine recorded in the catalog closed the
    contribution's pending items (``close_pending_reviews``), so nothing of it was left to decide; the
    list's quarantine holds its records out of every version all the same, and an accepted item would
    read as if the contribution were live."""
    shown = quarantine_listed(listed, c.id, c.status)
    if shown is None:
        return
    what = f"review item {item} of {ref}" if item is not None else f"the review items of {ref}"
    raise Conflict(
        f"{what} cannot be decided: {ref} was quarantined by event #{shown['event']} ({shown['at']}), which the "
        f"ward's list of removals holds; the catalog says {c.status}: it predates the quarantine (a restored "
        "backup), and the quarantine holds every record of the contribution out of every version",
        hint=f"run `dataward verify`, then `dataward quarantine {ref}` to record the quarantine again (it closes "
        "these items)",
    )


def _open_to_review(found: list[Any], listed: Any, status: str) -> list[dict[str, Any]]:
    """The listing of review items ``found`` (rows with their contribution's status): an item of a
    contribution the ward's list of removals holds quarantined, whose catalog row does not, is not
    pending review (a quarantine recorded in the catalog closes its pending items), so it is left out of
    the pending queue and, where shown, carries ``quarantine_listed`` (``review_decide`` refuses it)."""
    out = []
    for r in found:
        shown = quarantine_listed(listed, r.contribution_id, r.contribution_status)
        if shown is not None and status == "pending":
            continue
        item = _review_item(r)
        if shown is not None:
            item["quarantine_listed"] = shown
        out.append(item)
    return out


def _visible_item(uc: Any, ref: str, action: Action) -> tuple[Any, Any, Any]:
    """A review item by its id, or by record id when exactly one item the caller may act on holds that
    record: ``(item, contribution, dataset)``. Authorized on the item's dataset before anything is said
    about whether it exists (see ``service/visibility.py``)."""
    named = (quarantine.c.id == ref) | (quarantine.c.record_id == ref)
    matches = uc.conn.execute(select(quarantine).where(named)).all()
    by_prefix = False
    if not matches and (prefix := rows.id_prefix(ref)) is not None:
        # A unique start of an item id will do; ambiguity is judged among the items the caller may act on.
        by_prefix = True
        matches = uc.conn.execute(
            select(quarantine).where(quarantine.c.id.startswith(prefix, autoescape=True)).limit(200)
        ).all()
    found = []
    for q in matches:
        c = uc.conn.execute(select(contributions).where(contributions.c.id == q.contribution_id)).one()
        ds = uc.conn.execute(select(datasets).where(datasets.c.id == c.dataset_id)).one()
        found.append((q, c, ds))
    visible = [f for f in found if authorize_on_dataset(uc, action, f[2].name).allowed]
    if not visible:
        short = rows.id_prefix(ref) is None and not matches
        hint = "list them with `dataward review list`"
        if short:
            # Too short to be read as the start of an id: say so, rather than only that nothing matched.
            hint = f"give at least {rows.PREFIX_MIN} characters of the item's id (`dataward review list` shows them)"
        missing = NotFound(f"no review item {ref!r}", hint=hint)
        authorize_found(uc, action, found[0][2].name if found else None, missing)
    if len(visible) > 1 and by_prefix:
        raise rows.ambiguous_prefix("review item", ref, [f[0].id for f in visible])
    if len(visible) > 1:
        raise InputError(
            f"record {ref} is held by {len(visible)} review items",
            hint="name the item (q_…) from `dataward review list`",
        )
    return visible[0]


def _review_item(r: Any, *, dataset: str | None = None, number: int | None = None) -> dict[str, Any]:
    m = r._mapping
    ds = dataset or m.get("dataset")
    num = number if number is not None else m.get("number")
    return {
        "id": m["id"],
        "contribution": f"{ds}#{num}",
        "record_id": m["record_id"],
        "row": m["row"],
        "score": m["score"],
        "detectors": json.loads(m["detectors"] or "[]"),
        "reason": m["reason"],
        "status": m["status"],
        "decided_by": m["decided_by"],
        "decision_reason": m["decision_reason"],
    }


def _displayable(record: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Record values ready for JSON: images as base64 PNG/JPEG bytes, embeddings shortened."""
    import base64

    out: dict[str, Any] = {}
    for key, value in record.items():
        kind = schema.column(key).kind if key in [c.name for c in schema.inputs] else None
        if kind is ColumnKind.IMAGE and value is not None:
            out[key] = {"image_base64": base64.b64encode(value).decode("ascii"), "bytes": len(value)}
        elif kind is ColumnKind.EMBEDDING and value is not None:
            out[key] = {"dim": len(value), "head": [round(v, 4) for v in value[:8]]}
        else:
            out[key] = value
    return out


def _selftest_summary(result: dict[str, Any], *, training: str | None, policy_hash: str | None) -> dict[str, Any]:
    """What a ``gate.selftest`` event keeps: the canaries and the clean run, the slice's size (``records``),
    and what it measured (the training version and the policy), by which a gate report tells whether the
    floors it quotes still describe its gate (``gate_limits``)."""
    keep = ("canaries", "clean", "recall", "detected", "records")
    return {
        **{k: v for k, v in result.items() if k in keep},
        "training": training,
        "policy_hash": policy_hash,
    }


SCHEDULER_ENV = "DATAWARD_SCHEDULER"
"""Environment variable naming the Dask scheduler (``tls://HOST:8786``) gates run on; unset: in process."""


def gate_scheduler() -> str | None:
    """The Dask scheduler address gate runs of this process use, or None to scan in the process."""
    return os.environ.get(SCHEDULER_ENV, "").strip() or None


def _queued_for_review(conn: Connection, c: Any) -> tuple[int, dict[str, Any] | None]:
    """How many of contribution ``c``'s (its row) records wait in the review queue, as ``review list``
    counts them, and ``quarantine_listed`` when the ward's list of removals holds it quarantined and its
    row does not: then none waits (the queue leaves its pending items out and ``review_decide`` refuses
    them), whatever the restored catalog says."""
    shown = quarantine_listed(listed_removals(conn), c.id, c.status)
    if shown is not None:
        return 0, shown
    pending = (quarantine.c.contribution_id == c.id) & (quarantine.c.status == "pending")
    query = select(func.count()).select_from(quarantine).where(pending)
    return int(conn.execute(query).scalar() or 0), None


def _closed_held_back(conn: Connection, c: Any) -> int:
    """How many of contribution ``c``'s flagged records were closed without review because a quarantine
    holds them back already (``quarantine_holds``): counted beside the queue, so that "12 of 52 records
    to review" with nothing queued says why."""
    closed = (
        (quarantine.c.contribution_id == c.id)
        & (quarantine.c.status == "rejected")
        & quarantine.c.decision_reason.startswith(HELD_BACK, autoescape=True)
    )
    return int(conn.execute(select(func.count()).select_from(quarantine).where(closed)).scalar() or 0)


def with_queue(report: dict[str, Any], queued: tuple[int, dict[str, Any] | None], closed: int = 0) -> dict[str, Any]:
    """``report`` with ``queued_for_review`` (records of the contribution waiting in the review queue,
    and ``quarantine_listed`` when none does because the ward's list holds the contribution quarantined;
    see ``_queued_for_review``) and, when the verdict is ``pass`` yet records wait, a ``verdict_note``
    saying so: a pass is about the batch, while a record flagged on its own (an in-batch exact
    conflict...) still needs a reviewer before a merge. The verdict itself is left as the gate gave it.
    ``closed_held_back`` (when any) counts the flagged records closed without review because a quarantine
    holds them back already (``_closed_held_back``)."""
    queued, listed = queued
    report["queued_for_review"] = queued
    if closed:
        report["closed_held_back"] = closed
    if listed is not None:
        report["quarantine_listed"] = listed
    if report.get("verdict") == "pass" and queued:
        report["verdict_note"] = f"pass, {queued} record{'s' if queued != 1 else ''} queued for review"
    return report
