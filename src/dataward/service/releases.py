"""Use cases before a model's release: the release gate, approvals of a model version, and the release.

* ``model_gate``: restore the artifact (every file re-hashed against the signed manifest), evaluate it on
  the clean validation set of the dataset it was trained on, against the released version, and probe it
  with the triggers the data gates found in that dataset's history plus the generic set
  (``dataward.release``); the report is stored and a ``model.gated`` event records the verdict.
* ``approve_model``: an approval bound to the model version's digest, never by the side that trained it
  (the trainer, a service principal of theirs, or their human when a bot trained it).
* ``release_model``: the ``promoter`` role, a release gate on this digest with the verdict the policy
  needs, the policy's approvals counted afresh, training data still clean; it writes a signed in-toto
  attestation linking the model to its dataset versions, gates and approvals (``model.released``).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, select

from dataward.access.authorize import roles_on
from dataward.access.overrides import accountable_human
from dataward.access.policy import separation_problem
from dataward.access.roles import Action, Role, Scope
from dataward.access.sides import OwnerHistory, distinct_people
from dataward.access.standing import Standing
from dataward.catalog.projection import insert_row, update_row
from dataward.catalog.tables import (
    contributions,
    datasets,
    gate_runs,
    model_gates,
    model_versions,
    principals,
)
from dataward.domain.errors import Conflict, InputError, IntegrityViolation, NotFound, PolicyViolation
from dataward.domain.hashing import canonical_json
from dataward.domain.schema import ColumnKind
from dataward.ledger.events import format_time
from dataward.provenance.attestation import STATEMENT_TYPE, sign_statement, ssl_key
from dataward.release import llm_search
from dataward.release.artifacts import unsafe_summary
from dataward.release.gate import ReleaseReport, judge
from dataward.release.llm_gate import judge_llm
from dataward.release.llm_phrases import generic_phrases, history_phrases
from dataward.release.llm_probe import measure_all as llm_measure_all
from dataward.release.llm_probe import probe_rows as llm_probe_rows
from dataward.release.llm_search import search_phrases
from dataward.release.policy import ReleasePolicy
from dataward.release.predictors import (
    CallablePredictor,
    EstimatorPredictor,
    FilePredictor,
    Predictor,
    artifact_predictor,
    is_model_file,
    model_kind,
)
from dataward.release.probe import Trigger, generic_triggers, probe_rows, read_history, run_probe
from dataward.release.search import search_tabular
from dataward.service import auth, rows
from dataward.service.approval_standing import checked_events, read_standing
from dataward.service.bot_owners import act_seq, acting_earlier_owners, owner_then, read_owner_history
from dataward.service.core import Service, new_id
from dataward.service.guard import (
    SignedCheck,
    checked_signed_rows,
    export_target,
    guarded_read,
    guarded_sample,
    own_paths,
    signed_rows,
)
from dataward.service.models import (
    affected_by,
    approvals_of,
    model_ref,
    model_version_row,
    release_policy,
    restore_files,
    run_row,
    separation_on,
    trained_on,
)
from dataward.service.withdrawn import refuse_withdrawn

RELEASE_PREDICATE = "https://dataward.dev/attestation/model-release/v1"
"""The predicate of a model's release attestation: datasets, run, gates, approvals (docs/models.md)."""
SEED_MAX = 2**32 - 1
"""The largest seed of a release gate run, as of a self-test (the probes' generator takes no negative one)."""


_trained = {"work": "this model", "made": "trained"}


def _principal(conn: Connection, pid: str) -> Any:
    return auth.principal_from_row(conn.execute(select(principals).where(principals.c.id == pid)).one())


@dataclasses.dataclass(frozen=True)
class _TrainerSide:
    """Who trained a model version, and the humans who answer for it (see :func:`_trainer`)."""

    trainer: str
    owner_then: str | None
    owner_now: str | None
    earlier: frozenset[str]
    history: OwnerHistory | None = dataclasses.field(default=None, compare=False)

    def members(self) -> frozenset[str]:
        """The trainer and every human who answers for what it trained."""
        return frozenset({self.trainer, *self.earlier} | {o for o in (self.owner_then, self.owner_now) if o})

    def problem(self, who: Any, verb: str = "approve it", caller: Any = None) -> str | None:
        """Why ``who`` may not ``verb`` the model as the trainer's side (``separation_problem``), or None.
        Given the acting ``caller``, a bot acting with a key issued before it was handed on answers for its
        owners while that key was live too (``acting_earlier_owners``)."""
        acting = acting_earlier_owners(self.history, caller) if caller is not None and self.history else frozenset()
        return separation_problem(
            who,
            self.trainer,
            self.owner_then,
            verb=verb,
            **_trained,
            current_owner_id=self.owner_now,
            earlier_owners=self.earlier,
            acting_owners=acting,
        )


def _trainer(conn: Connection, mv: Any, public_key_b64: str) -> _TrainerSide:
    """Who trained a model version, the human accountable for that bot when its run started, the one
    accountable now when another (the bot was handed on since; else None), and every other human who owned
    it while the key that started the run was live, up to the model's registration. All are the trainer's
    side, as a contribution's bot's owners are (``separation_problem``): handing the bot to a colleague
    must not let its former owner approve, gate or release what it trained for them, nor a former owner who
    still holds a key an admin issued for the bot (it keeps working after the hand-over) train with it and
    then approve.

    The hand-overs and the keys' origins are read from the signed ledger (``read_owner_history``)."""
    now = conn.execute(select(principals.c.owner_id).where(principals.c.id == mv.created_by)).scalar()
    run = run_row(conn, mv.run_id)
    history = read_owner_history(conn, public_key_b64)
    then = owner_then(history, mv.created_by, "training_runs", run.id) or now
    until = act_seq(history, mv.created_by, "model_versions", mv.id)
    earlier = history.owners_while(mv.created_by, run.key_id, until) - {then, now}
    return _TrainerSide(mv.created_by, then, now if now != then else None, earlier, history)


def counted_approvals(
    conn: Connection, mv: Any, standing: Standing, public_key_b64: str
) -> tuple[list[Any], list[str]]:
    """The approvals that count for a model version now, and why each other one does not: bound to this
    digest, by distinct active principals (a bot and its owner are one) holding an approver role of the
    release policy, none of the trainer's side, and still standing in the signed ledger's ``standing``
    (``dataward.access.standing``: not given with a key revoked since, nor by a principal disabled or
    suspended since, even one enabled again), as a dataset's approvals are counted at merge."""
    policy = release_policy(conn, mv)
    side = _trainer(conn, mv, public_key_b64)
    sod = separation_on(conn, mv)
    eligible, answering, refused = [], [], []
    for a in approvals_of(conn, mv.id):
        who = _principal(conn, a.principal_id)
        problem = None
        answered = _answered_by(side.history, standing, mv, a)
        void = standing.void_given("model", mv.id, a.principal_id, a.digest, a.created_at)
        if a.digest != mv.digest:
            problem = "given for other files"
        elif void is not None:
            problem = f"{who.name!r}'s approval: {void}"
        elif not who.is_active:
            problem = f"{who.name!r} is {who.status.value}"
        elif a.role is None or (Role(a.role) not in policy.approver_roles and a.role != Role.ADMIN.value):
            problem = f"role {a.role} is not one the release policy accepts"
        elif sod and (own := side.problem(who)):
            problem = own
        elif sod and (theirs := answered & side.members()):
            # A bot handed on answers for its owners while the key it approved with was live: one of them
            # on the trainer's side approved through it (before the rule held, or before the hand-over).
            named = ", ".join(sorted(_principal(conn, p).name for p in theirs))
            problem = f"{who.name!r} answers for the trainer's side ({named}) with its key"
        if problem:
            refused.append(problem)
        else:
            eligible.append((a, who))
            answering.append({accountable_human(who), *answered})
    # A bot and its owner are one approver: two approvals take two people. A bot handed on answers for every
    # owner it had while its key was live, so as many are counted as distinct people can answer for.
    chosen = distinct_people(answering)
    counted = [a for i, (a, _) in enumerate(eligible) if i in chosen]
    refused += [
        f"{who.name!r} approved already, or the human it answers to did"
        for i, (_, who) in enumerate(eligible)
        if i not in chosen
    ]
    return counted, refused


def _answered_by(history: OwnerHistory | None, standing: Standing, mv: Any, approval: Any) -> frozenset[str]:
    """The owners the approving bot had while the key it gave ``approval`` (a ``model_approvals`` row) with
    was live, up to the approval's signed event: a bot handed on since still answers for them, so its
    approval is not a second person's beside theirs. Empty for a human, or a bot never handed on."""
    if history is None or approval.principal_id not in history.moves:
        return frozenset()
    act = standing.acts.get(("model", mv.id, approval.principal_id, approval.digest, approval.created_at))
    return frozenset() if act is None else history.owners_while(approval.principal_id, act.key_id, act.seq)


def _history(
    conn: Connection, store: Any, dataset_ids: Sequence[str], detectors: Sequence[str] = ("triggers",)
) -> list[tuple[str, dict[str, Any]]]:
    """(``DATASET#N``, evidence) of every trigger the data gates' ``detectors`` reported on these datasets'
    contributions: ``triggers`` for labelled data, ``llm_triggers`` and ``llm_validation`` for language
    models."""
    out = []
    query = (
        select(gate_runs.c.report_object, contributions.c.number, datasets.c.name)
        .join(contributions, contributions.c.id == gate_runs.c.contribution_id)
        .join(datasets, datasets.c.id == contributions.c.dataset_id)
        .where(contributions.c.dataset_id.in_(list(dataset_ids)))
        .order_by(gate_runs.c.created_at)
    )
    for report_object, number, name in conn.execute(query):
        report = json.loads(store.get(report_object))
        found: list[Any] = []
        for detector in detectors:
            summary = (report.get("detectors", {}).get(detector) or {}).get("summary") or {}
            found += list(summary.get("triggers") or [])
            found += [f.get("evidence", {}) for f in report.get("findings", []) if f.get("detector") == detector]
        out += [
            (f"{name}#{number}", ev) for ev in found if isinstance(ev, dict) and (ev.get("trigger") or ev.get("probe"))
        ]
    return out


@dataclasses.dataclass
class _GateInputs:
    mv: Any
    validation_name: str | None
    validation: pa.Table | None
    schema: Any
    triggers: list[Trigger]
    baseline: Any | None
    reference: pa.Table | None = None
    reference_name: str | None = None
    reference_note: str | None = None
    not_replayed: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """The data gate's findings the probe cannot replay, with why (``dataward.release.probe.read_history``)."""


class ReleaseService(Service):
    """The release gate, model approvals and the release."""

    def _checked(self, conn: Connection, mv: Any, doing: str) -> None:
        """Refuse a model version row, its training run's row, or a row of the datasets it was trained on
        (their policies), that is not what the signed ledger made it: the trainer's side and the policy
        are decided on them, and the run's code identity and parameters are signed into the release."""
        checked_signed_rows(self, conn, "model_versions", [mv], doing=doing)
        checked_signed_rows(self, conn, "training_runs", [run_row(conn, mv.run_id)], doing=doing)
        checked_signed_rows(self, conn, "datasets", [ds for ds, _ in trained_on(conn, mv)], doing=doing)

    def _release_inputs(self, conn: Connection, ref: str) -> _GateInputs:
        mv = model_version_row(conn, ref)
        self._checked(conn, mv, "gate")
        pairs = trained_on(conn, mv)
        validation_name, validation, schema = None, None, None
        for ds, _ in pairs:
            vs = conn.execute(select(datasets).where(datasets.c.validation_for == ds.name)).first()
            if vs is not None and rows.latest_version(conn, vs.id) is not None:
                ver, validation = guarded_read(self, conn, vs.name, None)
                validation_name = f"{vs.name}@v{ver.number}"
                schema = rows.dataset_schema(vs)
                break
        if schema is None:
            schema = rows.dataset_schema(pairs[0][0])
        triggers: list[Trigger] = []
        not_replayed: list[dict[str, Any]] = []
        if validation is not None and schema.is_llm:
            triggers = self._llm_triggers(conn, pairs, schema)
        elif validation is not None:
            triggers, not_replayed = read_history(_history(conn, self.store, [ds.id for ds, _ in pairs]), schema)
            triggers += generic_triggers(schema, validation)
        baseline = conn.execute(
            select(model_versions)
            .where(
                model_versions.c.model == mv.model, model_versions.c.stage == "released", model_versions.c.id != mv.id
            )
            .order_by(model_versions.c.number.desc())
            .limit(1)
        ).first()
        inputs = _GateInputs(mv, validation_name, validation, schema, triggers, baseline, not_replayed=not_replayed)
        if validation is not None and schema.of_kind(ColumnKind.NUMERIC):
            self._trusted_reference(conn, pairs, inputs)
        return inputs

    def _llm_triggers(self, conn: Connection, pairs: Sequence[tuple[Any, Any]], schema: Any) -> list[Trigger]:
        """The phrases to probe a language model with: the data gates' findings on its datasets, the
        phrases of the versions it read tied to a behaviour (``llm_search``), and the generic ones."""
        found = _history(conn, self.store, [ds.id for ds, _ in pairs], ("llm_triggers", "llm_validation"))
        triggers = history_phrases(found)
        for ds, ver in pairs:
            try:
                # The search reads a sample of a large version: only the sample is loaded.
                _, table = guarded_sample(self, conn, ds.name, f"v{ver.number}", llm_search.MAX_ROWS, 0)
            except PolicyViolation:
                continue  # a version holding barred records: its findings are in the history already
            for candidate in search_phrases(table, rows.dataset_schema(ds), f"{ds.name}@v{ver.number}"):
                if all(candidate.spec[0].lower() != t.spec[0].lower() for t in triggers):
                    triggers.append(candidate)
        return triggers + generic_phrases(triggers)

    def _trusted_reference(self, conn: Connection, pairs: Sequence[tuple[Any, Any]], inputs: _GateInputs) -> None:
        """The trusted baseline the tabular trigger search draws its values from: the current training
        version of the first dataset the model was trained on that has one (not the version the model
        read, which may hold what the search looks for)."""
        for ds, _ in pairs:
            try:
                ver, table = guarded_read(self, conn, ds.name, "training")
            except NotFound:
                continue
            except PolicyViolation as exc:
                inputs.reference_note = f"{ds.name}@training cannot serve as the trusted baseline: {exc.message}"
                return
            inputs.reference, inputs.reference_name = table, f"{ds.name}@v{ver.number}"
            return
        inputs.reference_note = "no dataset the model was trained on has a training version to take values from"

    def probe_inputs(self, ref: str, path: str | Path) -> dict[str, Any]:
        """Write the release gate's probe set of a model version to a Parquet file: a ``probe_id`` and the
        raw record for every clean validation row and every triggered and control copy. A model run
        elsewhere predicts each row; ``model_gate(..., predictions=FILE)`` reads them back. Records leave
        the ward: needs ``dataset.export`` on the dataset the model was trained on."""
        import pyarrow.parquet as pq

        name, _ = model_ref(ref)
        with self.use_case(Action.MODEL_GATE, Scope.model(name)) as uc:
            inputs = self._release_inputs(uc.conn, ref)
            for ds, _ in trained_on(uc.conn, inputs.mv):
                auth.authorize(uc.conn, uc.caller, Action.DATASET_EXPORT, Scope.dataset(ds.name), uc.now)
            if inputs.validation is None:
                raise NotFound("the datasets this model was trained on have no clean validation set")
            if inputs.schema.is_llm:
                table, probe_ids, _ = llm_probe_rows(inputs.triggers, inputs.validation, inputs.schema)
            else:
                table, probe_ids, _ = probe_rows(inputs.triggers, inputs.validation, inputs.schema)
                table = table.drop_columns([inputs.schema.label])
            table = table.add_column(0, "probe_id", pa.array(probe_ids, pa.string()))
            pq.write_table(table, str(export_target(path, own_paths(self.folder, self.store, self.db))))
            return {"model": f"{inputs.mv.model}@v{inputs.mv.number}", "rows": table.num_rows, "path": str(path)}

    def model_gate(
        self,
        ref: str,
        *,
        predict: Callable[[pa.Table], Sequence[Any]] | Any | None = None,
        predictions: str | Path | None = None,
        trusted: Sequence[str] = (),
        seed: int = 0,
    ) -> dict[str, Any]:
        """Run the release gate on ``MODEL@VERSION``. Predictions come from ``predictions`` (a file for the
        probe set, see ``probe_inputs``), ``predict`` (a callable on raw records, or an estimator with
        ``predict``), or else the stored artifact (one ``.onnx`` or ``.skops`` file; a skops file naming
        types outside skops' trusted set needs them in ``trusted``). Pickle-based files are never loaded."""
        name, _ = model_ref(ref)
        if not 0 <= seed <= SEED_MAX:
            # The probes are drawn with numpy's generator, which takes no negative seed.
            raise InputError(f"seed must be between 0 and {SEED_MAX}, got {seed}")
        with self.use_case(Action.MODEL_GATE, Scope.model(name), write=False) as uc:
            inputs = self._release_inputs(uc.conn, ref)
            mv, schema = inputs.mv, inputs.schema
            # The verdict rests on the predictions the caller supplies (a file, a callable): the side
            # that trained the model could answer the probes with another model's and earn a pass.
            _refuse_trainer_side(uc, mv, "run its release gate")
            policy = release_policy(uc.conn, mv)
            scan = json.loads(mv.scan)
            with tempfile.TemporaryDirectory(prefix="dataward-gate-") as tmp:
                # The files are checked against the signed manifest even when predictions come from
                # elsewhere: the gate's verdict is bound to these exact bytes.
                restore_files(self.store, mv, Path(tmp))
                self._check_signature(mv)
                # A version registered before every file was scanned whatever its name (a pickle named
                # model.onnx passed as ONNX) is scanned again: what it holds counts, not what it says.
                pickled = pickled_files(mv.scan)
                missed = rescan_files(Path(tmp), pickled)
                scan = [s for s in scan if s.get("file") not in {m["file"] for m in missed}] + missed
                pickled |= {m["file"] for m in missed}
                # Without a clean validation set there is nothing to ask the model: its files need not be
                # runnable for the gate to say so (a review).
                predictor = (
                    None
                    if inputs.validation is None
                    else self._predictor(
                        predict,
                        predictions,
                        Path(tmp),
                        schema,
                        trusted,
                        ref=f"{mv.model}@v{mv.number}",
                        pickled=pickled,
                    )
                )
                unsafe = unsafe_summary(scan) if mv.unsafe or missed else None
                if schema.is_llm:
                    report, search, baseline_note = self._judge_llm(inputs, predictor, policy, unsafe)
                else:
                    report, search, baseline_note = self._judge_labelled(
                        inputs, predictor, policy, unsafe, trusted, seed
                    )
            if inputs.validation is None:
                report.reasons.insert(0, "the datasets it was trained on have no clean validation set")
            data = report.to_dict()
            data.update(
                {
                    "model": f"{mv.model}@v{mv.number}",
                    "digest": mv.digest,
                    "datasets": [f"{ds.name}@v{v.number}" for ds, v in trained_on(uc.conn, mv)],
                    "validation": inputs.validation_name,
                    "policy": policy.to_dict(),
                    "scan": scan,
                    "baseline_note": baseline_note,
                    "trigger_search": search,
                    "predictions": None if predictor is None else predictor.source,
                }
            )
            report_object = self.store.put(canonical_json(data))
            gate_id = new_id("mg")
            named = _named_triggers([p["trigger"] for p in data["probes"]], report.reasons)
            uc.emit(
                "model.gated",
                {"model": mv.model, "model_version": mv.id},
                {
                    "verdict": report.verdict,
                    "reasons": report.reasons,
                    "digest": mv.digest,
                    "report": report_object,
                    "triggers": named,
                    "baseline": None if inputs.baseline is None else inputs.baseline.id,
                    "predictions": data["predictions"],
                },
                [
                    insert_row(
                        "model_gates",
                        id=gate_id,
                        model_version_id=mv.id,
                        verdict=report.verdict,
                        report_object=report_object,
                        baseline_id=None if inputs.baseline is None else inputs.baseline.id,
                        digest=mv.digest,
                        created_by=uc.caller.principal_id,
                        created_at=format_time(uc.now),
                    )
                ],
            )
        data["gate"] = gate_id
        return data

    def _judge_llm(
        self, inputs: _GateInputs, predictor: Predictor | None, policy: ReleasePolicy, unsafe: str | None
    ) -> tuple[ReleaseReport, None, str | None]:
        """A language model's clean answers and phrase probe, judged (``release.llm_gate``): the report,
        no trigger search, and a note when a released version exists (it is not run)."""
        note = None if inputs.baseline is None else "a language model's released version is not run by the gate"
        if inputs.validation is None or predictor is None:
            return judge_llm([], [], [], policy, unsafe=unsafe), None, note
        table, probe_ids, layout = llm_probe_rows(inputs.triggers, inputs.validation, inputs.schema)
        answers = predictor.predict(table, probe_ids)
        if len(answers) != table.num_rows:
            raise InputError(f"the model gave {len(answers)} answers for {table.num_rows} probe prompts")
        clean, probes = llm_measure_all(inputs.triggers, inputs.validation, inputs.schema, answers, layout)
        # Imported here: loading the gates package (scikit-learn and every detector, about 1.4 s) is for
        # a release gate, not for the access review and incident commands that import this module.
        from dataward.gates.detectors._llm import texts as llm_texts

        expected = llm_texts(inputs.validation, inputs.schema, every_answer=False).responses
        return judge_llm(expected, clean, probes, policy, unsafe=unsafe), None, note

    def _judge_labelled(
        self,
        inputs: _GateInputs,
        predictor: Predictor | None,
        policy: ReleasePolicy,
        unsafe: str | None,
        trusted: Sequence[str],
        seed: int,
    ) -> tuple[ReleaseReport, dict[str, Any] | None, str | None]:
        """A classifier's accuracy, probe and trigger search, against the released version where it can
        be run: the report, the search's summary and a note when the released version could not run."""
        mv, schema = inputs.mv, inputs.schema
        search: dict[str, Any] | None = None
        if inputs.validation is None or predictor is None:
            truth, clean, probes = [], [], []
        else:
            clean, probes = run_probe(inputs.triggers, inputs.validation, schema, predictor.predict, seed=seed)
            truth = [str(v) for v in inputs.validation.column(schema.label).to_pylist()]
            search = self._search(inputs, predictor, clean, seed)
            if search is not None:
                probes += search.pop("probes")
        baseline_clean, baseline_probes, baseline_note = None, None, None
        if inputs.baseline is not None and inputs.validation is not None:
            with tempfile.TemporaryDirectory(prefix="dataward-gate-") as tmp:
                try:
                    restore_files(self.store, inputs.baseline, Path(tmp))
                    base = artifact_predictor(Path(tmp), schema, trusted, pickled=pickled_files(inputs.baseline.scan))
                    baseline_clean, baseline_probes = run_probe(
                        inputs.triggers, inputs.validation, schema, base.predict, seed=seed
                    )
                except InputError as exc:
                    baseline_note = f"the released version could not be run: {exc.message}"
        baseline_ref = None if inputs.baseline is None else f"{mv.model}@v{inputs.baseline.number}"
        report = judge(
            truth,
            clean,
            probes,
            policy,
            baseline_predicted=baseline_clean,
            baseline_probes=baseline_probes,
            baseline_ref=baseline_ref,
            unsafe=unsafe,
            not_replayed=inputs.not_replayed if inputs.validation is not None else (),
        )
        return report, search, baseline_note

    def _search(
        self, inputs: _GateInputs, predictor: Predictor, clean: Sequence[str], seed: int
    ) -> dict[str, Any] | None:
        """The tabular trigger search (``dataward.release.search``) on a model with numeric inputs: its
        summary, with the candidates it reports under ``probes``; None when the schema has no numeric input."""
        if inputs.validation is None or not inputs.schema.of_kind(ColumnKind.NUMERIC):
            return None
        if isinstance(predictor, FilePredictor):
            return {"skipped": "predictions came from a file: the search needs the model itself", "probes": []}
        if inputs.reference is None:
            return {"skipped": inputs.reference_note, "probes": []}
        architecture = predictor.estimator if isinstance(predictor, EstimatorPredictor) else None
        found = search_tabular(
            inputs.validation,
            inputs.schema,
            predictor.predict,
            inputs.reference,
            clean=clean,
            seed=seed,
            architecture=architecture,
        )
        return {**found.summary(), "trusted": inputs.reference_name, "probes": found.probes}

    def _predictor(
        self,
        predict: Any,
        predictions: str | Path | None,
        folder: Path,
        schema: Any,
        trusted: Sequence[str],
        *,
        ref: str = "MODEL@VERSION",
        pickled: frozenset[str] | None = None,
    ) -> Predictor:
        if predict is not None and predictions is not None:
            raise InputError("give predictions or a predict callable, not both")
        if predictions is not None:
            return FilePredictor(predictions, ref)
        if predict is not None:
            if hasattr(predict, "predict"):
                return EstimatorPredictor(predict, schema)
            if callable(predict):
                return CallablePredictor(predict)
            raise InputError(f"predict must be a callable or an estimator, got {type(predict).__name__}")
        if schema.is_llm:
            raise InputError(
                "the release gate does not run a language model's files: it needs the model's answers",
                hint="answer every prompt of `dataward model probe-inputs MODEL@vN -o probes.parquet` with the model "
                "and give them with --predictions FILE (probe_id, prediction); in Python, model_gate(ref, predict=fn)",
            )
        return artifact_predictor(folder, schema, trusted, pickled=pickled)

    def _signed_versions(self, conn: Connection) -> dict[str, dict[str, Any]]:
        """Every model version of the ward as the signed ledger made it, by id."""
        return {str(r["id"]): r for r in signed_rows(self, conn, "model_versions")}

    def _check_signature(self, mv: Any) -> None:
        """The stored manifest must be the statement the ward signed (DSSE, ward key)."""
        from securesystemslib.dsse import Envelope
        from securesystemslib.exceptions import VerificationError

        envelope = Envelope.from_dict(json.loads(self.store.get(mv.signature_object)))
        try:
            envelope.verify([ssl_key(self.signer.crypto_key().public_key())], 1)
        except VerificationError as exc:
            raise IntegrityViolation(f"the signature of {mv.model}@v{mv.number}'s manifest fails: {exc}") from None
        if json.loads(envelope.payload) != json.loads(self.store.get(mv.manifest_object)):
            raise IntegrityViolation(f"{mv.model}@v{mv.number}'s manifest is not the one the ward signed")

    def model_gate_report(self, ref: str) -> dict[str, Any]:
        """The latest stored release gate report of a model version."""
        name, _ = model_ref(ref)
        with self.use_case(Action.MODEL_READ, Scope.model(name)) as uc:
            mv = model_version_row(uc.conn, ref)
            gate = _latest_gate(self, uc.conn, mv, doing="serve")
            if gate is None:
                raise NotFound(f"no release gate has run on {mv.model}@v{mv.number}", hint=f"dataward model gate {ref}")
            checked_signed_rows(self, uc.conn, "model_gates", [gate], doing="serve")
            return {**json.loads(self.store.get(gate.report_object)), "gate": gate.id}

    def approve_model(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Approve a model version for release, bound to its digest. Never by the principal that trained
        it, a service principal of theirs, or (for a model a bot trained) the bot's human."""
        if not reason.strip():
            raise InputError("an approval needs a reason", hint="pass --reason '...'")
        name, _ = model_ref(ref)
        with self.use_case(Action.MODEL_APPROVE, Scope.model(name), detail={"model": ref}) as uc:
            mv = model_version_row(uc.conn, ref)
            if mv.stage != "candidate":
                raise Conflict(f"{mv.model}@v{mv.number} is {mv.stage}; only a candidate can be approved")
            self._checked(uc.conn, mv, "approve")
            # A withdrawal is final on the files' bytes: the withdrawn file registered again is not approved.
            refuse_withdrawn(self, uc.conn, mv, doing="approve")
            policy = release_policy(uc.conn, mv)
            if separation_on(uc.conn, mv):
                problem = _trainer(uc.conn, mv, uc.signer.public_key_b64).problem(uc.caller.principal, caller=uc.caller)
                if problem:
                    raise PolicyViolation(f"separation of duties: {problem}", hint="another approver must approve it")
            role = policy.eligible_role(roles_on(uc.caller.principal_id, uc.caller.grants, Scope.model(name)))
            if role is None:
                needed = ", ".join(r.value for r in policy.approver_roles)
                raise PolicyViolation(
                    f"{uc.caller.principal_name!r} cannot approve: the release policy accepts approvals from {needed}",
                    hint=f"ask an owner to grant one of {needed} on model:{name}",
                )
            uc.emit(
                "model.approved",
                {"model": mv.model, "model_version": mv.id},
                {"digest": mv.digest, "reason": reason, "role": role.value},
                [
                    insert_row(
                        "model_approvals",
                        id=new_id("ma"),
                        model_version_id=mv.id,
                        principal_id=uc.caller.principal_id,
                        digest=mv.digest,
                        role=role.value,
                        reason=reason,
                        created_at=format_time(uc.now),
                    )
                ],
            )
            counted, _ = counted_approvals(
                uc.conn, mv, read_standing(uc.conn, uc.signer.public_key_b64), uc.signer.public_key_b64
            )
            return {
                "model": f"{mv.model}@v{mv.number}",
                "by": uc.caller.principal_name,
                "approvals": len(counted),
                "required": policy.approvals,
                "satisfied": len(counted) >= policy.approvals,
            }

    def release_model(self, ref: str, *, reason: str = "") -> dict[str, Any]:
        """Release ``MODEL@VERSION``: needs the ``promoter`` role (or owner), a release gate on its digest
        with the verdict the policy needs, the policy's approvals (never the trainer's side), and training
        data that is still clean. Writes a signed in-toto attestation; the previous release is retired."""
        name, _ = model_ref(ref)
        with self.use_case(Action.MODEL_RELEASE, Scope.model(name), detail={"model": ref}) as uc:
            mv = model_version_row(uc.conn, ref)
            if mv.stage != "candidate":
                raise Conflict(f"{mv.model}@v{mv.number} is {mv.stage}; only a candidate can be released")
            refuse_withdrawn(self, uc.conn, mv, doing="release")
            policy = release_policy(uc.conn, mv)
            # Each problem with what would clear it: the hint names only what is missing.
            problems: list[str] = []
            hints: list[str] = []
            if separation_on(uc.conn, mv):
                own = _trainer(uc.conn, mv, uc.signer.public_key_b64).problem(
                    uc.caller.principal, "release it", uc.caller
                )
                if own:
                    problems.append(own)
                    hints.append("a promoter outside the trainer's side releases it")
            gate = _latest_gate(self, uc.conn, mv, doing="release")
            accepted = ("pass",) if policy.require_gate == "pass" else ("pass", "review")
            run_gate = f"run its release gate: dataward model gate {mv.model}@v{mv.number}"
            if gate is None:
                problems.append("no release gate has run on it")
                hints.append(run_gate)
            elif gate.digest != mv.digest:
                problems.append("its release gate ran on other files")
                hints.append(run_gate)
            elif gate.verdict not in accepted:
                report = json.loads(self.store.get(gate.report_object))
                problems.append(f"its release gate verdict is {gate.verdict}: " + "; ".join(report["reasons"][:3]))
                hints.append(
                    "train a new version without what the gate found"
                    if gate.verdict == "block"
                    else f"the policy needs a pass (release.require_gate: {policy.require_gate})"
                )
            elif blocks := _blocks_on(
                signed_rows(self, uc.conn, "model_gates"), (signed := self._signed_versions(uc.conn)), mv, self.store
            ):
                said = _described_blocks(uc.conn, blocks, signed, self.store)
                problems.append(f"a release gate blocked files it holds ({said}): a block is final, whatever followed")
                hints.append("train a new version without what the gate found")
            # What the release is decided on, as signed: a row added or edited in the catalog alone (an
            # approval nobody gave, a passing gate, a relaxed policy) must not be signed into a release.
            self._checked(uc.conn, mv, "release")
            checked_signed_rows(self, uc.conn, "model_gates", [gate] if gate is not None else [], doing="release")
            checked_signed_rows(self, uc.conn, "model_approvals", approvals_of(uc.conn, mv.id), doing="release")
            standing = read_standing(uc.conn, uc.signer.public_key_b64)
            counted, refused = counted_approvals(uc.conn, mv, standing, uc.signer.public_key_b64)
            if len(counted) < policy.approvals:
                why = f" (not counted: {'; '.join(refused)})" if refused else ""
                problems.append(f"it has {len(counted)} of {policy.approvals} approval(s) the policy asks for{why}")
                hints.append(
                    f"an approver outside the trainer's side: dataward model approve {mv.model}@v{mv.number} "
                    "--reason ..."
                )
            unpromoted = _never_in_training(uc.conn, uc.signer.public_key_b64, mv)
            if unpromoted:
                problems.append(
                    "it was trained on data that never met its dataset's promotion policy: " + "; ".join(unpromoted)
                )
                hints.append("train a new version on DATASET@training, or promote the version it read first")
            affected = affected_by(uc.conn, self.store, mv, (self.signer.public_key_b64, self.ward_id))
            if affected:
                problems.append(
                    "its training data holds records that must never reach training: " + "; ".join(affected)
                )
                hints.append(
                    "train a new version on a dataset version without them (`dataward versions DATASET` lists "
                    "the rollback version `dataward quarantine` made)"
                )
            if problems:
                raise PolicyViolation(
                    f"{mv.model}@v{mv.number} cannot be released: " + "; ".join(problems), hint="; ".join(hints)
                )
            self._check_signature(mv)
            with tempfile.TemporaryDirectory(prefix="dataward-release-") as tmp:
                # The files themselves, not only the signed manifest: weights swapped in the store since the
                # gate ran must not be released under the digest the gate judged (each object re-hashed,
                # then checked against the manifest with model-signing).
                restore_files(self.store, mv, Path(tmp))
            statement = self._release_statement(uc.conn, mv, gate, counted, uc.caller.principal_name, reason)
            envelope = sign_statement(statement, self.signer.crypto_key())
            attestation_object = self.store.put(canonical_json(envelope))
            now = format_time(uc.now)
            changes = [
                update_row(
                    "model_versions",
                    {"id": mv.id},
                    stage="released",
                    released_by=uc.caller.principal_id,
                    released_at=now,
                    attestation_object=attestation_object,
                )
            ]
            previous = (
                uc.conn.execute(
                    select(model_versions.c.id).where(
                        model_versions.c.model == mv.model, model_versions.c.stage == "released"
                    )
                )
                .scalars()
                .all()
            )
            changes += [update_row("model_versions", {"id": p}, stage="retired") for p in previous]
            uc.emit(
                "model.released",
                {"model": mv.model, "model_version": mv.id},
                {
                    "digest": mv.digest,
                    "gate": gate.id,
                    "attestation": attestation_object,
                    "reason": reason,
                    "approvals": [a.id for a in counted],
                    "retired": list(previous),
                },
                changes,
            )
            return {
                "model": f"{mv.model}@v{mv.number}",
                "stage": "released",
                "digest": mv.digest,
                "gate": gate.verdict,
                "approvals": len(counted),
                "attestation": attestation_object,
                "retired": list(previous),
            }

    def _release_statement(
        self, conn: Connection, mv: Any, gate: Any, counted: list[Any], by: str, reason: str
    ) -> dict[str, Any]:
        run = run_row(conn, mv.run_id)
        # Checked again where it is signed: the statement must carry the run the ledger recorded.
        checked_signed_rows(self, conn, "training_runs", [run], doing="release")
        report = json.loads(self.store.get(gate.report_object))
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": mv.model, "digest": {"sha256": mv.digest}}],
            "predicateType": RELEASE_PREDICATE,
            "predicate": {
                "ward": self.ward_id,
                "model": {
                    "name": mv.model,
                    "version": mv.number,
                    "id": mv.id,
                    "format": mv.format,
                    "manifest": mv.manifest_object,
                    "manifest_signature": mv.signature_object,
                },
                "training_run": {
                    "id": run.id,
                    "code": json.loads(run.code),
                    "params": json.loads(run.params),
                    "trained_by": rows.principal_name(conn, mv.created_by),
                },
                "datasets": [
                    {"ref": f"{ds.name}@v{v.number}", "version": v.id, "manifest": v.manifest_object}
                    for ds, v in trained_on(conn, mv)
                ],
                "release_gate": {
                    "id": gate.id,
                    "verdict": gate.verdict,
                    "report": gate.report_object,
                    "reasons": report["reasons"],
                    "validation": report.get("validation"),
                    "probes": [p["trigger"] for p in report.get("probes", [])],
                    # Where the judged predictions came from: the artifact's file the gate ran, or what the
                    # gate's runner supplied (a predictions file by its SHA-256, a callable by its name).
                    "predictions": report.get("predictions"),
                },
                "approvals": [
                    {"by": rows.principal_name(conn, a.principal_id), "role": a.role, "at": a.created_at}
                    for a in counted
                ],
                "released_by": by,
                "reason": reason,
            },
        }

    def model_attestation(self, ref: str) -> list[dict[str, Any]]:
        """The DSSE envelopes about a model version: model-signing's manifest, and its release attestation
        once released. Both name the model and its SHA-256 digest as subject."""
        name, _ = model_ref(ref)
        with self.use_case(Action.MODEL_READ, Scope.model(name)) as uc:
            mv = model_version_row(uc.conn, ref)
            # Withdrawn is the signed ledger's word; and the envelopes served are the row's: the ledger's.
            refuse_withdrawn(self, uc.conn, mv, doing="attest")
            SignedCheck(self, uc.conn, doing="attest").row(
                "model_versions", mv, f"model_versions {mv.id} ({mv.model}@v{mv.number})"
            )
            out = [json.loads(self.store.get(mv.signature_object))]
            if mv.attestation_object:
                out.append(json.loads(self.store.get(mv.attestation_object)))
            return out


def _named_triggers(names: Sequence[str], reasons: Sequence[str]) -> list[str]:
    """The probed triggers the gate's reasons rest on: a classifier's reasons quote a trigger's name
    (``trigger "token 'cf'" turns ...``), a language model's begin with it (``phrase 'cf' put in 150
    clean prompts gives ...``)."""
    return [name for name in names if any(repr(name) in r or r.startswith(f"{name} put in ") for r in reasons)]


def _refuse_trainer_side(uc: Any, mv: Any, verb: str) -> None:
    """Refuse (``PolicyViolation``, recorded as ``access.denied``) the caller when it is of the side that
    trained ``mv``: the trainer, a service principal of theirs, or the human accountable for the bot
    that trained it; unless every dataset the model was trained on turned separation of duties off."""
    if not separation_on(uc.conn, mv):
        return
    problem = _trainer(uc.conn, mv, uc.signer.public_key_b64).problem(uc.caller.principal, verb, uc.caller)
    if problem:
        raise PolicyViolation(f"separation of duties: {problem}", hint="a reviewer outside the trainer's side runs it")


def _never_in_training(conn: Connection, public_key_b64: str, mv: Any) -> list[str]:
    """Why each dataset version ``mv`` was trained on that was never promoted to ``training`` (no signed
    ``version.promoted`` event names it) keeps it from release.

    The loader reads a candidate when asked (``stage=None``), but the promotion policy (approvals that
    still stand, accepted gate verdicts) is what says a version may be trained on: a model trained on one
    that never met it, e.g. one whose approval was voided by revoking a leaked approver key, is not
    released. A clean validation set is never promoted: a model trained on it would be judged on what it
    learnt by heart. A version retired since it was in training still counts."""
    promoted = {
        str(e.subject.get("version"))
        for e in checked_events(
            conn, public_key_b64, ("version.promoted",), consequence="what reached training is unknown"
        )
    }
    return [
        f"{ds.name}@v{ver.number} is a clean validation set, which the release gate judges models on"
        if ds.role == "validation"
        else f"{ds.name}@v{ver.number} never reached training"
        for ds, ver in trained_on(conn, mv)
        if ver.id not in promoted
    ]


@dataclasses.dataclass(frozen=True)
class HeldFiles:
    """Every file of a model version, whatever its name: by SHA-256 (its signed manifest's), each with its
    name (``files``) and its object in the store (``objects``); ``named``: the SHA-256 of those named as a
    model (``predictors.is_model_file``) or found pickle-based by the registration scan; ``digest``: the
    artifact's own digest."""

    digest: str
    files: dict[str, str]
    objects: dict[str, str | None]
    named: frozenset[str]

    def holding(self, digests: Collection[str]) -> list[str]:
        """The names of the files whose SHA-256 is one of ``digests`` (every file's, when the artifact's
        own digest is one)."""
        if self.digest in digests:
            return sorted(self.files.values()) or ["its files"]
        return sorted({name for digest, name in self.files.items() if digest in digests})


def held_files(store: Any, mv: Any) -> HeldFiles:
    """:class:`HeldFiles` of model version ``mv`` (a row or its signed dict), from its manifest, its map of
    stored files and its registration scan."""
    get = (lambda k: mv.get(k)) if isinstance(mv, dict) else (lambda k: getattr(mv, k))
    statement = json.loads(store.get(get("manifest_object")))
    scan = json.loads(get("scan") or "[]")
    resources = statement["predicate"]["resources"]
    # A single-file artifact's one resource is named "." by model-signing: its scan names the file.
    names = [scan[0]["file"]] if len(resources) == 1 and scan else [r["name"] for r in resources]
    stored = json.loads(store.get(get("files_object"))) if get("files_object") else {}
    pickled = pickled_files(get("scan"))
    files: dict[str, str] = {}
    objects: dict[str, str | None] = {}
    named: set[str] = set()
    for r, name in zip(resources, names, strict=True):
        digest = r["digest"]
        files.setdefault(digest, name)
        objects.setdefault(digest, stored.get(name) if isinstance(stored, dict) else None)
        if is_model_file(name) or name in pickled:
            named.add(digest)
    return HeldFiles(str(get("digest") or ""), files, objects, frozenset(named))


_MODEL_CONTENT: dict[str, bool] = {}
"""Whether a stored object's bytes are a model (``predictors.model_kind``), by the object's digest: the
object store's digest is of the bytes, so the answer never changes."""


def _model_content(store: Any, obj: str | None) -> bool:
    """Whether the stored object ``obj`` is a model by its bytes, whatever the file's name. A file whose
    object is unknown counts as one: what it holds cannot be said."""
    if not obj:
        return True
    known = _MODEL_CONTENT.get(obj)
    if known is None:
        with tempfile.TemporaryDirectory(prefix="dataward-kind-") as tmp:
            path = Path(tmp) / "file"
            path.write_bytes(store.get(obj))
            known = model_kind(path) is not None
        if len(_MODEL_CONTENT) > 10_000:
            _MODEL_CONTENT.clear()
        _MODEL_CONTENT[obj] = known
    return known


def model_file_digests(store: Any, mv: Any) -> dict[str, str]:
    """The SHA-256 of each file of model version ``mv`` (a row or its signed dict) that a consumer could load
    as the model, by digest, with the file's name: named as one (``predictors.is_model_file``: a runnable
    ``.onnx`` or ``.skops``, weights of another format), found pickle-based by the scan, or a model by its
    bytes whatever its name (``predictors.model_kind``: a ``.skops`` saved as ``serving/model``)."""
    held = held_files(store, mv)
    return {
        digest: name
        for digest, name in held.files.items()
        if digest in held.named or _model_content(store, held.objects[digest])
    }


def shared_files(store: Any, mine: HeldFiles, theirs: HeldFiles) -> list[str]:
    """The names of ``mine``'s files, whatever they are named, whose bytes (SHA-256) are a model file of
    ``theirs``: the same artifact, or a file either names as a model or its scan found pickle-based, or
    one that is a model by its bytes (``predictors.model_kind``). Files that are no model on either side
    (the same README) are not counted: they carry nothing."""
    if mine.digest and mine.digest == theirs.digest:
        return sorted(mine.files.values()) or ["its files"]
    return sorted(
        {
            mine.files[digest]
            for digest in mine.files.keys() & theirs.files.keys()
            if digest in mine.named
            or digest in theirs.named
            or _model_content(store, theirs.objects.get(digest) or mine.objects.get(digest))
        }
    )


def _blocks_on(
    gates: Sequence[dict[str, Any]], versions: dict[str, dict[str, Any]], mv: Any, store: Any
) -> list[tuple[dict[str, Any], list[str]]]:
    """The signed release gates of the ward that blocked files ``mv`` holds, each with the names of those
    files: the same artifact (its digest), or any file of ``mv``, whatever its name, holding the bytes
    (SHA-256) of a model file of a blocked version, in any model (:func:`shared_files`: a block is on the
    bytes, not on a version, so a README added beside them, a renamed file, a name without a model's
    suffix or another model's name does not clear it). Read from the signed ledger (``versions``: the
    model versions it recorded, by id), not the catalog: a block row deleted from the catalog still
    counts."""
    mine = held_files(store, mv)
    theirs: dict[str, HeldFiles] = {}
    found = []
    for g in gates:
        blocked = versions.get(str(g.get("model_version_id")))
        if g.get("verdict") != "block" or blocked is None:
            continue
        if g.get("digest") == mv.digest:
            found.append((g, sorted(mine.files.values()) or ["its files"]))
            continue
        key = str(g.get("model_version_id"))
        if key not in theirs:
            theirs[key] = held_files(store, blocked)
        if shared := shared_files(store, mine, theirs[key]):
            found.append((g, shared))
    return found


def _described_blocks(
    conn: Connection, blocks: Sequence[tuple[dict[str, Any], list[str]]], versions: dict[str, Any], store: Any
) -> str:
    """Each block in words: the files of this version it blocked, the gate's id, the model version it ran
    on, who ran it, when, and where its predictions came from."""
    out = []
    for g, files in sorted(blocks, key=lambda b: str(b[0].get("created_at")))[:3]:
        source = json.loads(store.get(g["report_object"])).get("predictions") or {}
        came = source.get("file") or source.get("name") or source.get("kind") or "unrecorded predictions"
        blocked = versions[str(g["model_version_id"])]
        out.append(
            f"{', '.join(files)} blocked by gate {g['id']} on {blocked['model']}@v{blocked['number']}, run by "
            f"{rows.principal_name(conn, g['created_by'])} at {g['created_at']} on {came}"
        )
    return "; ".join(out)


def rescan_files(folder: Path, pickled: frozenset[str]) -> list[dict[str, Any]]:
    """The scan entries of the files restored into ``folder`` that are pickle-based though their
    registration scan (``pickled``) did not say so: versions registered before every file was scanned
    whatever its suffix."""
    from dataward.release.artifacts import scan_file

    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        if name not in pickled:
            entry = scan_file(name, path)
            if entry["pickle"]:
                entries.append(entry)
    return entries


def pickled_files(scan: str | None) -> frozenset[str]:
    """The pickle-based files of a model version as its registration ``scan`` (the row's JSON) found them;
    the row is checked against the signed ledger before a gate reads it, and its files against the
    manifest."""
    return frozenset(str(entry["file"]) for entry in json.loads(scan or "[]") if entry.get("pickle"))


def _latest_gate(ward: Any, conn: Connection, mv: Any, *, doing: str) -> Any:
    """The newest release gate of model version row ``mv``, as the signed ledger orders its gates: every
    gate row of the model version in the catalog and every one the ledger recorded are checked
    (``SignedCheck.matching``), so a later ``review`` deleted from the catalog cannot let an earlier
    ``pass`` count, nor a row edited or added behind the ward's back be read. None when none ran."""
    check = SignedCheck(ward, conn, doing=doing)
    signed = [r["id"] for r in check.signed("model_gates") if r.get("model_version_id") == mv.id]
    catalog = conn.execute(select(model_gates.c.id).where(model_gates.c.model_version_id == mv.id)).scalars()
    found = check.matching("model_gates", catalog, signed, f"the release gates of {mv.model}@v{mv.number}")
    order = {gate_id: n for n, gate_id in enumerate(signed)}  # the ledger's order: the rows as its events made them
    return max(found, key=lambda g: order[g.id], default=None)
