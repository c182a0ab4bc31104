"""``scan``: the whole gate as one library call on pandas or Arrow tables, no ward needed."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextvars import copy_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.decomposition import PCA
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from dataward.domain.errors import InputError
from dataward.domain.limits import InputLimits
from dataward.domain.records import record_ids
from dataward.domain.schema import ColumnKind, Schema
from dataward.gates import detectors as _detectors  # noqa: F401  (registers the built-in detectors)
from dataward.gates import label_spelling, new_labels
from dataward.gates.base import DetectorResult, Finding, GateContext, GateData, Requirement, registered
from dataward.gates.calibration import excess_flags_p_value
from dataward.gates.engine import Engine, engine_for
from dataward.gates.features import FeaturePipeline
from dataward.gates.features.image_memo import decoded_images
from dataward.gates.gate import (
    combine_records,
    flagging_detectors,
    group_summaries,
    leading_detectors,
    queued_flags,
    queued_with_blocks,
    select_detectors,
    too_few_trusted,
    unresolved_alpha,
    verdict,
)
from dataward.gates.hashing import input_hashes
from dataward.gates.inputs import Normalized, group_arrays, normalize, take_rows
from dataward.gates.neighbours import clear_cache, knn, single_threaded_searches
from dataward.gates.overlap import ValidationOverlap, shared_records
from dataward.gates.partitioned import (
    PARTITION_ROWS,
    Gathered,
    Partition,
    PartitionedSide,
    ScoreState,
    Survey,
    check_scored,
    check_whole,
    give_samples,
    is_partitioned,
    partitions_of,
    score_one,
    spill_folder,
    survey,
    take,
)
from dataward.gates.policy import GatePolicy
from dataward.gates.progress import report, reporting
from dataward.gates.report import GateReport, RecordScores

PROJECTION_SAMPLE = 2000
CONTRIBUTION_PROJECTION_MAX = 5000
EVIDENCE_ROWS = 50
NEIGHBOUR_COLUMNS = 12
"""A table's nearest trusted records show at most this many of their columns beside the flagged record."""
GEOMETRY_FIT_MIN = 20_000
"""Contribution records a learnt feature space (TF-IDF vocabulary and SVD) is fitted on beside the
reference: all of them up to this many, and at least as many as the reference holds. With only a
reference-sized sample, a contribution five times the reference had four fifths of its records outside
the fit; their words beyond the fitted vocabulary vanished from their vectors, so clean records read
as unlike their class, and a clean first batch judged against a small hand-curated seed was blocked
(by ``backdoor``, ``triggers`` and ``drift``: docs/benchmarks.md, "Per-record false-positive rate")."""
NONE_LEFT = "every record of the clean validation set is also in the contribution: none is left to measure on"
"""Why a detector that measures on the validation set is skipped when the batch holds all of it."""
WORKERS_ENV = "DATAWARD_GATE_WORKERS"
"""Threads a scan runs its detectors on when ``scan`` is not given ``workers`` (default: the cores this
process may use, at most ``MAX_DEFAULT_WORKERS``)."""
MAX_DEFAULT_WORKERS = 4
MAX_WORKERS = 64


def gate_workers(workers: Any = None) -> int:
    """The number of threads a scan runs its detectors on: ``workers`` when given (1: one detector after
    another), else ``$DATAWARD_GATE_WORKERS``, else the usable cores up to ``MAX_DEFAULT_WORKERS``.

    The report does not depend on it: each detector computes what it computes alone, and the shared
    neighbour searches give the same answer whichever thread computes them."""
    source = "workers"
    if workers is None:
        raw = os.environ.get(WORKERS_ENV)
        if raw is None or not raw.strip():
            try:
                cores = len(os.sched_getaffinity(0))
            except AttributeError:  # pragma: no cover - not on Linux
                cores = os.cpu_count() or 1
            return max(1, min(cores, MAX_DEFAULT_WORKERS))
        source, workers = WORKERS_ENV, raw.strip()
        with contextlib.suppress(ValueError):
            workers = int(workers)
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or not 1 <= workers <= MAX_WORKERS:
        raise InputError(
            f"{source} must be a whole number from 1 to {MAX_WORKERS}, got {workers!r}",
            hint="1 runs the detectors one after another, in the calling thread",
        )
    return int(workers)


def scan(
    baseline: Any,
    contribution: Any,
    schema: Schema | Mapping[str, Any],
    validation: Any = None,
    policy: GatePolicy | Mapping[str, Any] | None = None,
    *,
    first_baseline: Any = None,
    groups: Mapping[str, Any] | None = None,
    featurizer: FeaturePipeline | Mapping[str, str] | None = None,
    limits: InputLimits | Mapping[str, Any] | None = None,
    engine: Engine | str | None = None,
    client: Any = None,
    scheduler: str | None = None,
    partition_rows: int = PARTITION_ROWS,
    storage_options: Mapping[str, Any] | None = None,
    workers: int | None = None,
    no_validation: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> GateReport:
    """Judge ``contribution`` against the trusted ``baseline`` and return a ``GateReport``.

    ``contribution`` is a table (pandas or Arrow), or, read in partitions of about ``partition_rows``
    rows without ever being held whole: Parquet path(s) or fsspec URL(s) (a file, a folder, a glob;
    ``storage_options`` for the filesystem), a pyarrow dataset, or an iterator of Arrow record batches.
    A partitioned contribution, or any contribution with an ``engine``, a Dask ``client`` or a
    ``scheduler`` address, is scored partition by partition on that engine (``dataward.gates.engine``):
    the detectors are fitted once, their fitted state broadcast, each partition featurized and scored
    record by record where it is read, and the contribution judged once from the concatenated results.
    The report is the one the one-shot scan of the same data gives. ``baseline`` may be given in the
    same forms: in partitions it is never held whole (``partitioned.PartitionedSide``): its labels, the
    reference sample's rows and every record's input hash are read a partition at a time.

    ``baseline`` None runs in self-reference mode (K-fold within the contribution); an empty baseline is
    refused (``InputError``), as an empty contribution is.
    ``featurizer`` is an unfitted ``FeaturePipeline`` or a mapping of column -> featurizer name
    (merged over ``policy.featurizers``). Raises ``InputError`` for malformed inputs, and for
    inputs over ``limits`` (an ``InputLimits`` or a mapping of limit names to sizes over the
    defaults) on the contribution: ``max_rows``, ``max_image_pixels`` read from each image's header
    before anything is decoded, so a decompression bomb is refused without being decompressed, and
    ``max_batch_pixels``, the sum of those headers' pixel counts.

    ``workers`` threads run the detectors side by side (``gate_workers``: by default the usable cores, at
    most 4; 1 runs them one after another in the calling thread). The report is the same for any number.

    ``no_validation`` says why ``validation`` is None when the caller has a reason other than "none was
    given" (a ward's first import whose clean validation set is too small to hold half of it out): the
    report's skipped detectors then name it.

    ``progress`` is told each step as a short sentence (featurizing, each detector's fit and scoring, the
    sentence embeddings of the language-model detectors; ``dataward.gates.progress``); it changes nothing.
    """
    n_workers = gate_workers(workers)
    # Small model fits slow down by orders of magnitude when BLAS threads oversubscribe the cores;
    # only the large neighbour searches use more than one thread (see neighbours.py).
    runner = None
    partitioned_baseline = baseline is not None and is_partitioned(baseline)
    if (
        engine is not None
        or client is not None
        or scheduler is not None
        or is_partitioned(contribution)
        or partitioned_baseline
    ):
        runner = engine_for(engine, client=client, scheduler=scheduler)
    try:
        # The memo: each small image decoded once for the featurizer and every detector that reads it.
        with threadpool_limits(limits=1), spill_folder() as spill, reporting(progress), decoded_images():
            parts = base_parts = None
            if runner is not None:
                parts = partitions_of(
                    contribution, partition_rows=partition_rows, storage_options=storage_options, spill=Path(spill)
                )
            if partitioned_baseline:
                (Path(spill) / "baseline").mkdir()
                base_parts = partitions_of(
                    baseline,
                    partition_rows=partition_rows,
                    storage_options=storage_options,
                    spill=Path(spill) / "baseline",
                    what="baseline",
                )
            return _scan(
                baseline,
                contribution,
                schema,
                validation,
                policy,
                first_baseline=first_baseline,
                groups=groups,
                featurizer=featurizer,
                limits=InputLimits.coerce(limits),
                runner=runner,
                parts=parts,
                base_parts=base_parts,
                spill=Path(spill),
                workers=n_workers,
                no_validation=no_validation,
            )
    finally:
        if runner is not None and runner is not engine:
            runner.close()


def _scan(
    baseline: Any,
    contribution: Any,
    schema: Schema | Mapping[str, Any],
    validation: Any,
    policy: GatePolicy | Mapping[str, Any] | None,
    *,
    first_baseline: Any,
    groups: Mapping[str, Any] | None,
    featurizer: FeaturePipeline | Mapping[str, str] | None,
    limits: InputLimits,
    runner: Engine | None = None,
    parts: list[Partition] | None = None,
    base_parts: list[Partition] | None = None,
    spill: Path | None = None,
    workers: int = 1,
    no_validation: str | None = None,
) -> GateReport:
    schema = schema if isinstance(schema, Schema) else Schema.from_dict(schema)
    policy = GatePolicy.coerce(policy)
    if schema.is_llm:
        # The language-model detectors share one embedding cache, and a sentence model's vector moves
        # in its last bits with the other texts of its batch: whichever detector encodes a text first
        # would decide it. One after the other, the report does not depend on thread timing.
        workers = 1
    contrib: Normalized | None = None
    plan: Survey | None = None
    if parts is None:
        contrib = normalize(contribution, schema, "contribution", limits=limits)
        n_contrib, contrib_labels = len(contrib), contrib.labels
    else:
        assert runner is not None
        # With a validation set, the survey also takes every record's input hash: the validation records
        # the batch holds too are left out of the clean-validation check before any detector is fitted.
        plan = survey(runner, parts, schema, limits, hashes=validation is not None)
        n_contrib, contrib_labels = plan.rows, plan.labels
        parts = [p for p, size in zip(parts, plan.sizes, strict=True) if size]
        plan = Survey([size for size in plan.sizes if size], plan.labels, plan.hashes)
    if n_contrib == 0:
        raise InputError("the contribution is empty: there is nothing to scan")

    # The other sides are the caller's trusted data (in a ward, records imported within its limits);
    # checking every baseline image header would cost seconds per gate run for nothing. Decoding
    # still refuses Pillow's decompression bombs there.
    def side(data: Any, what: str) -> Normalized | None:
        return normalize(data, schema, what, with_ids=False) if data is not None else None

    base: Normalized | PartitionedSide | None
    if base_parts is not None:
        assert runner is not None
        base = PartitionedSide(runner, base_parts, schema)
    else:
        base = side(baseline, "baseline")
    if base is not None and len(base) == 0:
        # An empty trusted table is a mistake upstream (a filter that kept nothing), not a request to judge
        # the batch against itself: that mode skips the trigger test, and its pass would read as a pass.
        raise InputError(
            "the baseline holds no records: there is nothing trusted to judge the contribution against",
            hint="give the trusted records; to judge a batch only against itself (self-reference mode, with "
            "the limits docs/gates.md states), pass baseline=None",
        )
    if base is None and contrib is None:
        # Self-reference mode folds the whole contribution: it is read whole.
        assert runner is not None and parts is not None
        assert plan is not None
        tables = runner.map(_read_canonical, parts, schema, describe=lambda p: p.describe())
        tables = [check_whole(p, t, n) for p, t, n in zip(parts, tables, plan.sizes, strict=True)]
        contrib = normalize(pa.concat_tables(tables), schema, "contribution", limits=limits)
        parts = None
    val = side(validation, "validation set")
    first = side(first_baseline, "first baseline")
    group_values = group_arrays(groups, n_contrib)

    trusted_labels = set().union(*(set(side.labels.tolist()) for side in (base, val, first) if side is not None))
    given_labels = set(contrib_labels.tolist())
    # A trusted label written differently ('1.0' for '1') is that label for every detector (see
    # ``label_spelling``): a respelling must not make a class of its own, for a CSV or for an attacker.
    aliases = label_spelling.respelled(trusted_labels, given_labels)
    classes = tuple(sorted((given_labels - set(aliases)) | trusted_labels))
    codes = {c: i for i, c in enumerate(classes)}
    codes.update({new: codes[old] for new, old in aliases.items()})

    def encode(side: Normalized) -> np.ndarray:
        return np.fromiter((codes[v] for v in side.labels), dtype=np.int64, count=len(side))

    contrib_codes = np.fromiter((codes[v] for v in contrib_labels), dtype=np.int64, count=n_contrib)
    overlap: ValidationOverlap | None = None
    if val is not None:
        # Validation records the batch holds too are not held out: the clean-validation check leaves them
        # out, and the report says so (``dataward.gates.overlap``).
        if contrib is not None:
            contrib_hashes = input_hashes(contrib.table, schema)
        else:
            assert plan is not None and plan.hashes is not None  # the survey took them
            contrib_hashes = plan.hashes
        val, overlap = _without_batch_records(val, encode(val), contrib_hashes, contrib_codes, schema)
    pipeline = _pipeline(schema, policy, featurizer)
    pipeline.workers = workers
    run, skipped = select_detectors(
        policy,
        schema,
        has_baseline=base is not None,
        has_validation=val is not None,
        no_validation=NONE_LEFT if overlap is not None else no_validation,
    )
    m = max(flagging_detectors(run), 1)
    options = {k: dict(v) for k, v in policy.options.items()}
    rng = np.random.default_rng(policy.seed)
    timings: dict[str, float] = {}
    # The detectors fitted in this process, and those the engine's workers said do not apply to a
    # partition: a scan that every one of them left unjudged must not pass (``_unjudged_on_workers``).
    applying: list[str] = []
    worker_skips: set[str] = set()
    try:
        if base is not None:
            mode = "baseline"
            ref_index = stratified_sample(encode(base), policy.reference_size, rng)
            ref_table = base.rows(ref_index) if isinstance(base, PartitionedSide) else take_rows(base.table, ref_index)
            unlabelled = [c.name for c in schema.inputs]
            fit_sample = [np.zeros(0, dtype=np.int64)]

            def new_records() -> pa.Table:
                # Up to GEOMETRY_FIT_MIN new records, every record the calibration compares is in the fit,
                # so trusted and new records stay exchangeable; beyond, a sample of that size is (larger
                # batches' vocabulary has settled). Drawn only when asked, so that a space fitted on the
                # reference alone leaves the run's random draws as they were.
                fit_count = min(n_contrib, max(ref_index.shape[0], GEOMETRY_FIT_MIN))
                fit_sample[0] = np.sort(rng.choice(n_contrib, fit_count, replace=False))
                sampled = (
                    take_rows(contrib.table, fit_sample[0])
                    if contrib is not None
                    else take(runner, parts, plan, fit_sample[0], schema)  # type: ignore[arg-type]
                )
                return sampled.select(unlabelled)

            # The fitted rows are featurized once: the reference first, then (when the sample is the
            # whole contribution, in order) the contribution too.
            report(f"featurizing {ref_table.num_rows:,} trusted records")
            if pipeline.learns_geometry:
                # A vocabulary/SVD fitted on the reference alone makes reference rows look unlike any
                # new row (faking drift and outliers). Fitting it, without labels, on reference and
                # contribution together treats both sides alike.
                fitted_rows = pipeline.fit_transform(pa.concat_tables([ref_table.select(unlabelled), new_records()]))
            else:
                # So does a PCA reduction fitted on too few trusted records per component: the pipeline
                # asks for the new records then (``features.pipeline.PCA_RECORDS_PER_DIM``).
                fitted_rows = pipeline.fit_transform(ref_table, new=new_records)
            sample = fit_sample[0]
            n_ref = ref_index.shape[0]
            reference = GateData(fitted_rows[:n_ref], encode(base)[ref_index], ref_table)
            whole = sample.shape[0] == n_contrib
            context = GateContext(
                schema,
                classes,
                policy.alpha / m,
                validation=_gate_data(pipeline, val, encode) if val is not None else None,
                first_baseline=_first(pipeline, first, encode, policy, rng) if first is not None else None,
                seed=policy.seed,
                options=options,
                max_validation_drop=policy.max_validation_drop,
                featurize=pipeline.transform,
                baseline_hashes=(
                    base.hashes() if isinstance(base, PartitionedSide) else input_hashes(base.table, schema),
                    encode(base),
                ),
            )
            stages = _Stages(run, skipped, timings)
            record_seconds: float | None = None

            def fit(name: str) -> Any:
                cls = registered()[name]
                if cls.fits_whole_baseline:
                    # Read whole only here (a baseline in partitions is otherwise never held).
                    return cls().fit(
                        GateData(np.zeros((len(base), 0), dtype=np.float32), encode(base), base.table), context
                    )
                return cls().fit(reference, context)

            def sample(name: str, detector: Any) -> None:
                why: dict[str, str] = {}
                give_samples(
                    {name: detector},
                    n_contrib,
                    contrib_codes,
                    lambda positions: (
                        take_rows(contrib.table, positions)
                        if contrib is not None
                        else take(runner, parts, plan, positions, schema)  # type: ignore[arg-type]
                    ),
                    pipeline,
                    {},
                    why,
                )
                if name in why:
                    stages.skip(name, _SAMPLE, why[name])

            if contrib is not None:
                # One chain per detector (fit, the record stage on the whole contribution, the contribution
                # stage), the chains side by side on the workers.
                features = fitted_rows[n_ref:] if whole else pipeline.transform(contrib.table)
                chunk = GateData(features, encode(contrib), contrib.table)
                detector_groups = {**group_values, "row": np.asarray(contrib.rows, dtype=np.int64)}
                contribution_data = GateData(features, encode(contrib), contrib.table, detector_groups)

                def chain(name: str) -> None:
                    report(f"{name}: fitting on {n_ref:,} trusted records")
                    detector = stages.call(name, _FIT, lambda: fit(name))
                    if detector is None:
                        return
                    report(f"{name}: scoring {n_contrib:,} records")
                    if detector.record_stage:
                        stages.call(name, _SAMPLE, lambda: sample(name, detector))
                        if stages.skipped_at(name) is not None:
                            return
                        found = stages.call(name, _RECORDS, lambda: detector.score_records(chunk))
                        if found is None:
                            return
                        stages.records[name] = found
                    stages.finish(name, detector, contribution_data)

                kinds = tuple(sorted({c.kind.value for c in schema.inputs}))

                def timed_chain(name: str) -> None:
                    started = time.thread_time()
                    chain(name)
                    _CHAIN_CPU[(name, kinds)] = time.thread_time() - started

                _each(timed_chain, run, workers, start=_costliest_first(run, kinds))
            else:
                assert runner is not None and parts is not None and plan is not None

                def fit_stage(name: str) -> None:
                    detector = stages.call(name, _FIT, lambda: fit(name))
                    if detector is not None:
                        stages.detectors[name] = detector

                _each(fit_stage, run, workers)
                # The record stage: every record scored from the fitted state alone, partition by partition
                # on the engine's workers.
                fitted_in_order = [name for name in run if name in stages.detectors]
                staged = {
                    name: stages.detectors[name] for name in fitted_in_order if stages.detectors[name].record_stage
                }
                for name, detector in staged.items():
                    stages.call(name, _SAMPLE, lambda name=name, detector=detector: sample(name, detector))
                started = time.perf_counter()
                items = [
                    (part, offset, fitted_rows[n_ref + offset : n_ref + offset + size] if whole else None)
                    for part, offset, size in zip(parts, plan.offsets, plan.sizes, strict=True)
                ]
                state = ScoreState(schema, limits, codes, pipeline, staged)
                # Each partition's outputs are spilled as they arrive (never all held at once); the
                # contribution stage reads the features and tables memory-mapped.
                assert spill is not None
                gathered = Gathered(spill, n_contrib)
                applying = fitted_in_order
                scores_in = runner.each(score_one, items, state, describe=lambda item: item[0].describe())
                # Closed at once on a refusal: the engine cancels the partitions still running.
                with _closed_after(scores_in):
                    for item, size, scored in zip(items, plan.sizes, scores_in, strict=True):
                        # Checked before anything of it is kept: the workers' results are not taken on trust.
                        labels = plan.labels[item[1] : item[1] + size]
                        gathered.add(check_scored(scored, item, labels, state))
                        worker_skips.update(scored.skipped)
                scored = None
                contrib, features = gathered.contribution()
                stages.records.update(gathered.detector_records(staged))
                for name, why in gathered.skipped.items():
                    stages.skip(name, _RECORDS, why, replace=False)
                del gathered
                record_seconds = time.perf_counter() - started
                # Detectors also see each record's row in the submitted file, so their evidence names file rows.
                detector_groups = {**group_values, "row": np.asarray(contrib.rows, dtype=np.int64)}
                contribution_data = GateData(features, encode(contrib), contrib.table, detector_groups)

                # The contribution stage: each detector judges the whole contribution once.
                _each(
                    lambda name: stages.finish(name, stages.detectors[name], contribution_data),
                    [name for name in fitted_in_order if stages.skipped_at(name) is None],
                    workers,
                )
            results, fitted = stages.merge()
            if record_seconds is not None:
                timings["record_stage"] = record_seconds
            timings = {name: round(seconds, 3) for name, seconds in timings.items()}
        else:
            mode = "self-reference"
            assert contrib is not None
            detector_groups = {**group_values, "row": np.asarray(contrib.rows, dtype=np.int64)}
            report(f"featurizing {len(contrib):,} records")
            pipeline.fit(contrib.table)
            contribution_data = GateData(
                pipeline.transform(contrib.table), encode(contrib), contrib.table, detector_groups
            )
            reference = contribution_data
            context = GateContext(
                schema,
                classes,
                policy.alpha / m,
                validation=_gate_data(pipeline, val, encode) if val is not None else None,
                first_baseline=None,
                seed=policy.seed,
                options=options,
                max_validation_drop=policy.max_validation_drop,
            )
            results, fitted = _self_reference(run, contribution_data, context, policy, skipped)
        overlap_said = True
        if overlap is not None:
            results, overlap_said = _with_overlap(results, overlap)
        scores, flagged_at_alpha = combine_records(results, len(contrib), leading_detectors(results, policy))
        verdict_, reasons, _ = verdict(results, flagged_at_alpha, policy)
        if overlap is not None and not overlap_said:
            # No detector measured on the validation set (none is left, or the policy runs none): the
            # overlap is still a reason to review, as a respelled label is.
            reasons.append(f"clean validation set: {overlap.reason}")
            verdict_ = "review" if verdict_ == "pass" else verdict_
        if aliases:
            reasons.append(label_spelling.describe(aliases, Counter(contrib_labels.tolist())))
            verdict_ = "review" if verdict_ == "pass" else verdict_
        # A gate that could not judge must not say pass. (No baseline is self-reference mode, which judges
        # the batch against its own folds, with the limits docs/gates.md states.)
        unjudged = too_few_trusted(len(base), results) if base is not None else None
        if unjudged is not None:
            reasons.insert(0, unjudged)
            verdict_ = "review" if verdict_ == "pass" else verdict_
        idle = _unjudged_on_workers(applying, results, worker_skips)
        if idle is not None:
            reasons.insert(0, idle)
            verdict_ = "review" if verdict_ == "pass" else verdict_
        flagged = queued_flags(results, len(contrib), policy.flag_fdr)
        # The records a block rests on wait in the queue too, flags or not (``DetectorResult.queued``).
        queued_by = queued_with_blocks(results)
        for named in queued_by.values():
            flagged = flagged | named
        # A record whose label no trusted record carries (a typo, or a new class) is judged by no detector:
        # it waits in the review queue for a reviewer's decision, beside the flags (``new_labels``).
        unknown = (
            new_labels.unknown_label_mask(encode(base), contrib_codes, len(classes))
            if base is not None
            else np.zeros(len(contrib), dtype=bool)
        )
        if unknown.any():
            flagged = flagged | unknown
            queued_by[new_labels.QUEUED_BY] = unknown
            reasons.append(new_labels.describe(unknown, contrib_labels, contrib.rows))
            verdict_ = "review" if verdict_ == "pass" else verdict_
        records = RecordScores(
            rows=contrib.rows,
            # A partitioned contribution's ids stay memory-mapped (``partitioned.RecordIds``), not a list.
            record_ids=contrib.record_ids if contrib.record_ids is not None else [],
            score=scores,
            flagged=flagged,
            detector_scores={n: r.scores for n, r in results.items()},
            detector_flags={n: r.flagged for n, r in results.items()},
            queued_by=queued_by,
        )
        findings = _findings(results, contrib, reference, classes)
        if unknown.any():
            findings += new_labels.record_findings(unknown, contrib_labels, contrib.rows, contrib.record_ids)
            findings = findings[:1000]
        limits = unresolved_alpha(results, records.rows) if base is not None else []
        extras = _extras(
            reference,
            contribution_data,
            flagged,
            scores,
            results,
            fitted,
            contrib,
            base,
            schema,
            classes,
            rng,
            ref_index if base is not None else None,
        )
        extras["timings"] = timings
    finally:
        clear_cache()
    return GateReport(
        verdict=verdict_,
        reasons=reasons,
        mode=mode,
        config_hash=policy.config_hash(),
        policy=policy.to_dict(),
        results=results,
        records=records,
        groups=group_summaries(group_values, flagged_at_alpha, policy, ceiling=verdict_),
        findings=findings,
        skipped=skipped,
        extras=extras,
        limits=limits,
    )


_FIT, _SAMPLE, _RECORDS, _FINISH = range(4)
"""A detector's stages, in the order the serial scan ran them over every detector."""


class _Stages:
    """What each detector's stages produced, kept per detector and merged in a fixed order.

    The detectors' stages may run on several threads in any interleaving; ``merge`` writes the skips,
    timings, results and fitted detectors into the report's dicts in the order one thread running every
    detector's fit, then every sample, record stage and contribution stage would have written them, so
    the report is the same for any number of workers."""

    def __init__(self, run: list[str], skipped: dict[str, str], timings: dict[str, float]) -> None:
        self.run, self.skipped, self.timings = run, skipped, timings
        self.seconds = {name: 0.0 for name in run}
        self.skips: dict[str, tuple[int, str]] = {}
        self.detectors: dict[str, Any] = {}
        self.records: dict[str, dict[str, np.ndarray]] = {}
        self.results: dict[str, DetectorResult] = {}
        self.fitted: dict[str, Any] = {}

    def skip(self, name: str, stage: int, why: str, *, replace: bool = True) -> None:
        """Record that ``name`` was skipped at ``stage``; a detector keeps the position of its first skip,
        and the reason of its last one unless ``replace`` is False."""
        if name in self.skips:
            self.skips[name] = (self.skips[name][0], why if replace else self.skips[name][1])
        else:
            self.skips[name] = (stage, why)

    def skipped_at(self, name: str) -> int | None:
        return self.skips[name][0] if name in self.skips else None

    def call(self, name: str, stage: int, fn: Callable[[], Any]) -> Any:
        """``fn()``, timed into ``name``'s seconds; None, and ``name`` skipped, when it raises ``InputError``
        (a detector that cannot work on this data says so with an InputError; other errors are bugs)."""
        started = time.perf_counter()
        try:
            return fn()
        except InputError as exc:
            self.skip(name, stage, f"not applicable to this data: {exc.message}")
            return None
        finally:
            self.seconds[name] += time.perf_counter() - started

    def finish(self, name: str, detector: Any, contribution: GateData) -> None:
        result = self.call(name, _FINISH, lambda: detector.finish(contribution, self.records.get(name, {})))
        if result is not None:
            self.results[name], self.fitted[name] = result, detector

    def merge(self) -> tuple[dict[str, DetectorResult], dict[str, Any]]:
        order = {name: i for i, name in enumerate(self.run)}
        for name, (_, why) in sorted(self.skips.items(), key=lambda kv: (kv[1][0], order[kv[0]])):
            self.skipped[name] = why
        for name in self.run:
            self.timings[name] = self.seconds[name]
        results = {name: self.results[name] for name in self.run if name in self.results}
        fitted = {name: self.fitted[name] for name in self.run if name in self.fitted}
        return results, fitted


_CHAIN_CPU: dict[tuple[str, tuple[str, ...]], float] = {}
"""CPU seconds of each detector's last chain in this process, by detector and input kinds: only the
order in which a scan with several workers starts its detectors depends on it, never a result."""


def _costliest_first(names: list[str], kinds: tuple[str, ...]) -> list[str]:
    """``names`` with the detectors that took longest in this process's last scan of the same kinds of
    input first (the longest chain started last would hold the scan's end back alone); those never seen
    keep their order, ahead of the others."""
    seen = {name: _CHAIN_CPU.get((name, kinds)) for name in names}
    return sorted(names, key=lambda name: -(seen[name] if seen[name] is not None else float("inf")))


GATE_THREADS = "dataward-gate"
"""The name (a prefix) of the threads a scan runs its detectors on."""

_WAKE_SECONDS = 0.2
"""How often the thread waiting for a scan's detectors looks for a Ctrl-C."""


def _each(fn: Callable[[str], None], names: list[str], workers: int, *, start: list[str] | None = None) -> None:
    """``fn(name)`` for every name: in this thread, in ``names``' order, with one worker; else on ``workers``
    threads (started for this call and ended with it), taken in ``start``'s order (default ``names``'). An
    exception other than ``InputError`` (``fn`` records those) is raised once every call has ended, the
    first in ``names``' order."""
    if workers <= 1 or len(names) <= 1:
        for name in names:
            fn(name)
        return
    pool = ThreadPoolExecutor(
        max_workers=min(workers, len(names)),
        thread_name_prefix=GATE_THREADS,
        initializer=single_threaded_searches,
    )
    try:
        # Each call runs in a copy of the caller's context: the progress hook (``gates.progress``) is a
        # context variable, which a pool's threads would not otherwise see.
        futures = {name: pool.submit(copy_context().run, fn, name) for name in (start or names)}
        # Waited for a moment at a time: a Ctrl-C (KeyboardInterrupt) waited, in a join, until every
        # call had ended, minutes for a large contribution.
        pending = set(futures.values())
        while pending:
            pending = wait(pending, timeout=_WAKE_SECONDS).not_done
    except BaseException:
        # Calls not started are dropped; those running cannot be stopped, and are not waited for (the
        # CLI exits without them: ``dataward.cli.app.main``). Nothing of the scan is stored yet.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    for name in names:
        futures[name].result()


@contextlib.contextmanager
def _closed_after(results: Iterator[Any]) -> Iterator[Iterator[Any]]:
    """``results``, closed when the block ends (a generator's ``finally`` then runs at once, not when
    the garbage collector finds it, perhaps after the engine's client is gone)."""
    try:
        yield results
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _unjudged_on_workers(applying: list[str], results: Mapping[str, Any], worker_skips: set[str]) -> str | None:
    """The verdict's reason when no detector fitted in this process judged the contribution and the
    engine's workers said some did not apply to their partitions (None otherwise): what workers say
    cannot turn a scan that judged nothing into a pass."""
    if not worker_skips or any(name in results for name in applying):
        return None
    names = ", ".join(sorted(worker_skips))
    return f"no detector judged the contribution: the engine's workers said {names} did not apply to their partitions"


def _read_canonical(part: Partition, state: Any) -> pa.Table:
    return part.read()


def stratified_sample(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of at most ``size`` records, every class kept in proportion (at least one each)."""
    n = labels.shape[0]
    if n <= size:
        return np.arange(n)
    chosen = []
    classes, counts = np.unique(labels, return_counts=True)
    for c, count in zip(classes, counts, strict=True):
        take = max(1, round(size * count / n))
        members = np.flatnonzero(labels == c)
        chosen.append(rng.choice(members, min(take, count), replace=False))
    return np.sort(np.concatenate(chosen))


def _without_batch_records(
    val: Normalized, val_codes: np.ndarray, contrib_hashes: np.ndarray, contrib_codes: np.ndarray, schema: Schema
) -> tuple[Normalized | None, ValidationOverlap | None]:
    """The validation set without the records the contribution holds too (None when none is left), and
    the overlap when there is one (``dataward.gates.overlap``)."""
    shared, copies = shared_records(input_hashes(val.table, schema), val_codes, contrib_hashes, contrib_codes)
    if not shared.any():
        return val, None
    overlap = ValidationOverlap(len(val), int(shared.sum()), copies)
    keep = np.flatnonzero(~shared)
    if keep.shape[0] == 0:
        return None, overlap
    ids = [val.record_ids[i] for i in keep] if val.record_ids is not None else None
    return Normalized(take_rows(val.table, keep), val.labels[keep], ids, val.rows[keep]), overlap


def _with_overlap(
    results: dict[str, DetectorResult], overlap: ValidationOverlap
) -> tuple[dict[str, DetectorResult], bool]:
    """``results`` with the overlap's finding added to each detector that measured on the validation
    set, and whether there was one: the finding belongs to the check it changed."""
    measured = [name for name in results if Requirement.VALIDATION in registered()[name].requires]
    out = dict(results)
    for name in measured:
        found = [*results[name].contribution_findings, overlap.finding(name)]
        out[name] = dataclasses.replace(results[name], contribution_findings=found)
    return out, bool(measured)


def _pipeline(schema: Schema, policy: GatePolicy, featurizer: Any) -> FeaturePipeline:
    if isinstance(featurizer, FeaturePipeline):
        return featurizer
    overrides = dict(policy.featurizers)
    if featurizer is not None:
        if not isinstance(featurizer, Mapping):
            raise InputError("featurizer must be a FeaturePipeline or a mapping of column -> featurizer name")
        overrides.update(featurizer)
    return FeaturePipeline(schema, overrides, seed=policy.seed)


def _gate_data(pipeline: FeaturePipeline, side: Normalized, encode: Any) -> GateData:
    return GateData(pipeline.transform(side.table), encode(side), side.table)


def _first(
    pipeline: FeaturePipeline, side: Normalized, encode: Any, policy: GatePolicy, rng: np.random.Generator
) -> GateData:
    index = stratified_sample(encode(side), policy.reference_size, rng)
    table = take_rows(side.table, index)
    return GateData(pipeline.transform(table), encode(side)[index], table)


def _run_one(
    name: str,
    reference: GateData,
    contribution: GateData,
    context: GateContext,
) -> tuple[Any, DetectorResult | None]:
    detector = registered()[name]()
    try:
        detector.fit(reference, context)
        return detector, detector.score(contribution)
    except InputError as exc:
        # A detector that cannot work on this data says so with an InputError; other errors are bugs.
        return f"not applicable to this data: {exc.message}", None


def _self_reference(
    run: list[str], data: GateData, context: GateContext, policy: GatePolicy, skipped: dict[str, str]
) -> tuple[dict[str, DetectorResult], dict[str, Any]]:
    """K-fold: fit every detector on the other folds, score the held-out fold, stitch the results."""
    n = len(data)
    folds = min(policy.self_reference_folds, n)
    if folds < 2:
        raise InputError("self-reference mode needs at least 2 records in the contribution")
    p_values = {name: np.ones(n) for name in run}
    flags = {name: np.zeros(n, dtype=bool) for name in run}
    fold_p: dict[str, list[float]] = {name: [] for name in run}
    findings: dict[str, list[Finding]] = {name: [] for name in run}
    versions: dict[str, str] = {}
    blocks: dict[str, list[str]] = {name: [] for name in run}
    contribution_findings: dict[str, list[Finding]] = {name: [] for name in run}
    alphas: dict[str, float | None] = {}
    by_rule = {name: np.zeros(n, dtype=bool) for name in run}
    queued = {name: np.zeros(n, dtype=bool) for name in run}
    splitter = KFold(folds, shuffle=True, random_state=policy.seed)
    for fold, (train, test) in enumerate(splitter.split(np.zeros(n)), start=1):
        train_data, test_data = data.subset(train), data.subset(test)
        for name in list(run):
            if name in skipped:
                continue
            report(f"{name}: fold {fold} of {folds} (fitting on {len(train):,} records, scoring {len(test):,})")
            detector, result = _run_one(name, train_data, test_data, context)
            clear_cache()
            if result is None:
                skipped[name] = detector
                continue
            versions[name] = result.version
            p_values[name][test] = result.p_values
            flags[name][test] = result.flagged
            if result.flagged_by_rule is not None:
                by_rule[name][test] = result.flagged_by_rule
            fold_p[name].append(result.p_value)
            alphas[name] = result.alpha
            if result.block:
                blocks[name].append(result.block_reason or "")
                if result.queued is not None:
                    queued[name][test] = result.queued
            contribution_findings[name].extend(result.contribution_findings)
            for f in result.findings:
                if f.row is not None:
                    f.row = int(test[f.row])
                findings[name].append(f)
    results = {}
    n_train = n - n // folds
    for name in run:
        if name in skipped:
            continue
        _, p_count = excess_flags_p_value(p_values[name], context.alpha, n_train)
        p_value = min(1.0, 2.0 * min(p_count, folds * min(fold_p[name], default=1.0)))
        findings[name].sort(key=lambda f: -f.score)
        results[name] = DetectorResult(
            name,
            versions[name],
            p_values[name],
            flags[name],
            findings[name][:200],
            float(flags[name].sum()),
            p_value,
            {"folds": folds},
            block=bool(blocks[name]),
            block_reason=blocks[name][0] if blocks[name] else None,
            # Each fold is calibrated on the other folds only: the union-of-flags test must allow for
            # the uncertainty of a flag rate estimated from that many records.
            n_calibration=n_train,
            alpha=alphas.get(name),
            contribution_findings=contribution_findings[name],
            flagged_by_rule=by_rule[name],
            queued=queued[name] if blocks[name] else None,
        )
    return results, {}


def _findings(
    results: dict[str, DetectorResult], contrib: Normalized, reference: GateData, classes: tuple[str, ...]
) -> list[dict[str, Any]]:
    out = []
    ids = contrib.record_ids or []
    for result in results.values():
        for f in result.findings:
            d = f.to_dict()
            if f.row is not None:
                d["row"] = int(contrib.rows[f.row])
                d["record_id"] = ids[f.row] if ids else None
            out.append(d)
    out.sort(key=lambda d: (-d["score"], d["detector"]))
    return out[:1000]


def _first_of_kind(schema: Schema, kind: ColumnKind) -> str | None:
    cols = schema.of_kind(kind)
    return cols[0].name if cols else None


def _extras(
    reference: GateData,
    contribution: GateData,
    flagged: np.ndarray,
    scores: np.ndarray,
    results: dict[str, DetectorResult],
    fitted: dict[str, Any],
    contrib: Normalized,
    base: Normalized | None,
    schema: Schema,
    classes: tuple[str, ...],
    rng: np.random.Generator,
    ref_index: np.ndarray | None,
) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    x_ref, x_new = reference.features, contribution.features
    if x_ref.shape[0] >= 3 and x_ref.shape[1] >= 2:
        pca = PCA(2, random_state=0).fit(x_ref)
        ref_rows = rng.choice(x_ref.shape[0], min(PROJECTION_SAMPLE, x_ref.shape[0]), replace=False)
        new_rows = np.arange(min(CONTRIBUTION_PROJECTION_MAX, x_new.shape[0]))
        extras["projection"] = {
            "baseline": np.round(pca.transform(x_ref[ref_rows]), 4).tolist(),
            "contribution": np.round(pca.transform(x_new[new_rows]), 4).tolist(),
            "flagged": flagged[new_rows].tolist(),
        }
    extras["baseline_scores"] = {
        name: list(map(float, det.baseline_scores()[:PROJECTION_SAMPLE]))
        for name, det in fitted.items()
        if hasattr(det, "baseline_scores")
    }
    # Arrays, not lists of Python floats (8 bytes a record and detector instead of 32); extras_json makes
    # them lists for JSON.
    extras["contribution_scores"] = {name: r.scores for name, r in results.items()}
    judged_on_validation = [n for n in results if Requirement.VALIDATION in registered()[n].requires]
    if judged_on_validation:
        extras["validation_impact"] = results[judged_on_validation[0]].summary
    text_col = _first_of_kind(schema, ColumnKind.TEXT)
    image_col = _first_of_kind(schema, ColumnKind.IMAGE)
    # A table's neighbours are shown by their values, which a reviewer compares with the flagged record's
    # (a text or image record shows its text or picture instead).
    value_cols = (
        [c.name for c in schema.inputs if c.kind in (ColumnKind.NUMERIC, ColumnKind.CATEGORICAL)][:NEIGHBOUR_COLUMNS]
        if text_col is None and image_col is None
        else []
    )
    top = [int(i) for i in np.argsort(-scores, kind="stable")[:EVIDENCE_ROWS] if flagged[i]]
    evidence: dict[str, Any] = {}
    if top:
        dist, idx = knn(x_ref, x_new[top], min(5 + int(base is None), x_ref.shape[0]), labels=reference.labels)
        needed = sorted({int(j) for j in idx.reshape(-1)})
        ref_ids: dict[int, str] = {}
        if base is not None and needed:
            table = reference.table.take(needed) if reference.table is not None else None
            if table is not None:
                ref_ids = dict(zip(needed, record_ids(schema, table), strict=True))
        elif contrib.record_ids:
            ref_ids = {j: contrib.record_ids[j] for j in needed}
        for pos, (d_row, i_row) in zip(top, zip(dist, idx, strict=True), strict=True):
            neighbours = []
            for d, j in zip(d_row, i_row, strict=True):
                if base is None and int(j) == pos:
                    continue  # self-reference: a record is not its own neighbour
                neighbour = {
                    "label": classes[int(reference.labels[j])],
                    "record_id": ref_ids.get(int(j)),
                    "distance": float(d),
                    "text": _cell(reference.table, text_col, int(j)),
                }
                if value_cols:
                    neighbour["values"] = {c: _cell(reference.table, c, int(j)) for c in value_cols}
                neighbours.append(neighbour)
            image = _cell(contrib.table, image_col, pos)
            evidence[str(int(contrib.rows[pos]))] = {
                "text": _cell(contrib.table, text_col, pos),
                "image_png_b64": base64.b64encode(image).decode("ascii") if image is not None else None,
                "neighbours": neighbours,
            }
    extras["evidence"] = evidence
    return extras


def _cell(table: Any, column: str | None, row: int) -> Any:
    if table is None or column is None:
        return None
    return table.column(column)[row].as_py()
