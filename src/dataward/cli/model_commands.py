"""Training runs and models from the command line, for training scripts that run outside Python.

``dataward train start|load|finish|fail`` record a run step by step; ``dataward model list|show|gate|
probe-inputs|approve|release|withdraw|attest|files`` act on model versions. The release gate exits 0 on pass, 8 on
review and 9 on block, as the data gates do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.tree import Tree

from dataward.cli.errors import reports_errors
from dataward.cli.output import VERDICT_EXIT, VERDICT_STYLE, answer, console, err_console, safe, short, styled, table
from dataward.cli.provenance_commands import _params
from dataward.cli.state import JSON_HELP, open_ward, refuse_ward_output
from dataward.cli.ward_commands import write_text_atomically
from dataward.domain.errors import not_a_file

if TYPE_CHECKING:
    import pyarrow as pa

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def registry() -> Any:
    """The ward the command acts on (a ward folder, or a server through ``DATAWARD_URL``)."""
    return open_ward()


def _show_model(info: dict[str, Any]) -> None:
    tree = Tree(f"[bold]{safe(info['ref'])}[/bold] {styled(info['stage'])} sha256 {short(info['digest'], 20)}")
    run = info["run"]
    code = run["code"]
    ident = (
        f"git {code.get('commit', '')[:12]}{' (dirty)' if code.get('dirty') else ''} {code.get('path')}"
        if code.get("kind") == "git"
        else f"file {code.get('path')} {short(code.get('file_hash'), 18)}"
        if code.get("kind") == "file"
        else "unknown code"
    )
    tree.add(f"trained by {safe(str(info['trained_by']))} on {safe(', '.join(info['datasets']))}")
    tree.add(f"run {run['id']}: {safe(ident)}; params {safe(json.dumps(run['params'], sort_keys=True))}")
    if run.get("metrics"):
        tree.add("metrics " + safe(", ".join(f"{k}={v}" for k, v in sorted(run["metrics"].items()))))
    scan = [s for s in info["scan"] if s.get("pickle")]
    tree.add(
        f"format {info['format']}"
        + (f"; [bold red]runs code when loaded[/bold red]: {safe(', '.join(s['file'] for s in scan))}" if scan else "")
    )
    if info.get("withdrawal"):
        from dataward.service.withdrawn import described  # here: the catalog's imports cost every --help

        tree.add("[bold red]" + safe(described(info["withdrawal"])) + "[/bold red]")
    if info.get("release_gate"):
        tree.add(f"release gate {styled(info['release_gate']['verdict'])}")
    if info.get("affected"):
        tree.add("[bold red]affected[/bold red]: " + safe("; ".join(info["affected"])))
    console.print(tree)


def _stage(m: dict[str, Any]) -> str:
    """A model version's stage for a listing: a withdrawn one with who withdrew it, when and why."""
    w = m.get("withdrawal")
    if not w:
        return str(m["stage"])
    from dataward.service.withdrawn import described  # here: the catalog's imports cost every --help

    return safe(described(w))


def prediction_source(source: dict[str, str]) -> str:
    """Where a release gate's predictions came from, in words."""
    if source.get("kind") == "artifact":
        return f"the artifact's {source.get('file')} ({source.get('format')}), run by the gate"
    if source.get("kind") == "predictions file":
        return f"the predictions file {source.get('name')} (SHA-256 {str(source.get('sha256'))[:16]}...)"
    return f"a {source.get('kind')} given in Python: {source.get('name')}"


def _show_release_report(report: dict[str, Any]) -> None:
    """A release gate report: verdict, reasons, accuracy against the released version, the probe."""
    tree = Tree(f"release gate {safe(report['model'])}: {styled(report['verdict'], VERDICT_STYLE)}")
    for reason in report["reasons"]:
        tree.add(safe(reason))
    acc = report.get("accuracy")
    base = report.get("baseline") or {}
    answers = report.get("answers")
    if answers:
        relevance = answers.get("relevance")
        tree.add(
            f"{answers['violations']} of {answers['prompts']} clean prompts of "
            f"{safe(str(report.get('validation')))} answered with a behaviour their expected answer lacks; "
            f"relevance {'-' if relevance is None else f'{relevance:.0%}'}"
        )
    else:
        tree.add(
            f"accuracy {acc if acc is None else f'{acc:.3f}'} on {report['validation_rows']} rows of "
            f"{safe(str(report.get('validation')))}"
            + (f"; released {safe(str(base.get('model')))}: {base.get('accuracy')}" if base else "")
        )
    source = report.get("predictions")
    if source:
        tree.add(f"predictions from {safe(prediction_source(source))}")
    search = report.get("trigger_search")
    if search:
        tree.add(
            f"tabular trigger search: {safe(search['skipped'])}"
            if search.get("skipped")
            else f"tabular trigger search: {search['tests']} tests over {search['columns']} columns and "
            f"{search['pairs']} pairs, values from {safe(str(search.get('trusted')))}"
        )
    for item in report.get("not_replayed") or []:
        where = ", ".join(item.get("found_in", [])[:3])
        tree.add(
            f"not replayed: {safe(str(item.get('trigger')))} (found in {safe(where)}): {safe(str(item.get('reason')))}"
        )
    console.print(tree)
    # A probe's note says why its success does not count toward the verdict (not judged without a released
    # version, explained by a model fitted on the trusted data): without it, an 89% row under a pass reads
    # as a backdoor let through.
    table(
        "Backdoor probe",
        ["trigger", "origin", "behaviour" if answers else "label", "attack success", "control", "note"],
        [
            [
                p["trigger"],
                p["origin"],
                p["target"],
                f"{p['attack_success']:.0%}",
                f"{p['control_success']:.0%}",
                "; ".join([*(p.get("notes") or []), *([f"replayed: {p['replayed']}"] if p.get("replayed") else [])]),
            ]
            for p in report["probes"]
        ],
    )


def _as_written(records: pa.Table, format_: str) -> pa.Table:
    """The records as a file of ``format_`` holds them: a chat dataset's conversations as lists of
    messages in JSON Lines and Parquet, as ``export`` writes them (the reserved ``kind`` column names a
    language-model dataset's kind)."""
    from dataward.domain.conversation import with_message_lists
    from dataward.domain.schema import Schema

    kinds = records.column("kind").unique().to_pylist() if "kind" in records.column_names else []
    if format_ == "csv" or kinds != ["chat"]:
        return records
    return with_message_lists(records, Schema.for_kind("chat"))


def register(app: typer.Typer) -> None:
    """Add the ``train`` and ``model`` command groups to ``app``."""
    train_app = typer.Typer(help="Record a training run step by step (for scripts outside Python).")
    model_app = typer.Typer(help="Model versions: list, release gate, approvals, release, withdrawal, attestation.")
    app.add_typer(train_app, name="train")
    app.add_typer(model_app, name="model")

    @train_app.command("start")
    @reports_errors
    def train_start(
        model: Annotated[str, typer.Argument(help="The model's name.")],
        param: Annotated[list[str] | None, typer.Option("--param", help="KEY=VALUE; repeatable.")] = None,
        script: Annotated[
            Path | None, typer.Option(help="The training script (its git commit or file hash is recorded).")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Start a training run; prints its id (pass it to `train load` and `train finish`)."""
        from dataward.provenance.code import code_identity

        if script is not None and not script.is_file():
            raise not_a_file(script, what="script")
        code = code_identity(script) if script is not None else {"kind": "unknown"}
        info = registry().start_training_run(model, params=_params(param or []), code=code)
        answer(info, as_json, lambda i: console.print(i["run"]))

    @train_app.command("load")
    @reports_errors
    def train_load(
        run: Annotated[str, typer.Argument(help="The run id from `train start`.")],
        ref: Annotated[str, typer.Argument(help="DATASET@training or DATASET@vN.")],
        output: Annotated[
            Path,
            typer.Option("--output", "-o", help="File to write: .parquet, .jsonl or .csv (no extension: Parquet)."),
        ],
        stage: Annotated[str, typer.Option(help="The stage the version must be in (training, candidate, any).")] = (
            "training"
        ),
        as_json: JsonOpt = False,
    ) -> None:
        """Load a version through the guarded loader into a file, and record it in the run."""
        from dataward.io.writers import check_destination, output_format, write_table
        from dataward.loader import split_dataset_ref

        # Decided before the version is loaded: a file that cannot be written wastes no load, no read event.
        format_ = output_format(output)
        check_destination(output)
        refuse_ward_output(output)
        ward = registry()
        name, version = split_dataset_ref(ref)
        info, records = ward.load_version(name, version, stage=None if stage == "any" else stage)
        write_table(_as_written(records, format_), output, format_)
        read = ward.record_training_read(run, info["dataset"], f"v{info['number']}")
        answer(
            {**read, "version": info["ref"], "records": records.num_rows, "output": str(output)},
            as_json,
            lambda a: console.print(
                f"{a['version']}: {a['records']} records to {safe(a['output'])}; run {run} read "
                f"{safe(', '.join(a['read']))}"
            ),
        )

    @train_app.command("finish")
    @reports_errors
    def train_finish(
        run: Annotated[str, typer.Argument(help="The run id from `train start`.")],
        artifact: Annotated[Path, typer.Argument(help="The model file or folder.")],
        param: Annotated[list[str] | None, typer.Option("--param", help="KEY=VALUE; repeatable.")] = None,
        metric: Annotated[list[str] | None, typer.Option("--metric", help="KEY=VALUE; repeatable.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """End a run with its artifact: hashed, scanned, signed and registered as the model's next version."""
        params, metrics = _params(param or []), _params(metric or [], "--metric")
        info = registry().finish_training_run(run, artifact, params=params, metrics=metrics)

        def show(i: dict[str, Any]) -> None:
            _show_model(i)
            if i.get("warning"):
                console.print(f"[bold yellow]warning:[/bold yellow] {safe(i['warning'])}")

        answer(info, as_json, show)

    @train_app.command("fail")
    @reports_errors
    def train_fail(
        run: Annotated[str, typer.Argument(help="The run id.")],
        reason: Annotated[str, typer.Option(help="Why the run ended without a model.")] = "failed",
        as_json: JsonOpt = False,
    ) -> None:
        """Record that a run ended without a model."""
        info = registry().fail_training_run(run, reason=reason)
        answer(info, as_json, lambda _: console.print(f"run {run} recorded as failed"))

    @model_app.command("list")
    @reports_errors
    def model_list(
        model: Annotated[str | None, typer.Argument(help="One model's versions (default: every model).")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Model versions with their stage, release gate and whether their training data was held out since."""
        answer(
            registry().models(model),
            as_json,
            lambda found: table(
                "Models",
                ["model", "stage", "trained on", "by", "gate", "format", "affected"],
                [
                    [
                        m["ref"],
                        _stage(m),
                        ", ".join(m["datasets"]),
                        m["trained_by"],
                        (m.get("release_gate") or {}).get("verdict"),
                        m["format"] + (" (runs code)" if m["unsafe"] else ""),
                        "yes" if m.get("affected") else "",
                    ]
                    for m in found
                ],
            ),
        )

    @model_app.command("show")
    @reports_errors
    def model_show(ref: Annotated[str, typer.Argument(help="MODEL@vN.")], as_json: JsonOpt = False) -> None:
        """One model version: run, code, parameters, datasets, scan, release gate, approvals."""
        answer(registry().model(ref), as_json, _show_model)

    @model_app.command("probe-inputs")
    @reports_errors
    def model_probe_inputs(
        ref: Annotated[str, typer.Argument(help="MODEL@vN.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
        as_json: JsonOpt = False,
    ) -> None:
        """Write the release gate's probe set (clean validation rows, triggered and control copies), for a
        model run elsewhere to predict; `model gate --predictions` reads the predictions back."""
        ward = registry()
        refuse_ward_output(output)
        info = ward.probe_inputs(ref, output)
        answer(info, as_json, lambda i: console.print(f"{i['rows']} probe rows to {safe(str(output))}"))

    @model_app.command("gate")
    @reports_errors
    def model_gate(
        ref: Annotated[str, typer.Argument(help="MODEL@vN.")],
        predictions: Annotated[
            Path | None, typer.Option(help="probe_id,prediction for every row of `model probe-inputs`.")
        ] = None,
        trust: Annotated[
            list[str] | None, typer.Option("--trust", help="A type a .skops file may rebuild; repeatable.")
        ] = None,
        html: Annotated[Path | None, typer.Option(help="Write a readable HTML report here.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Run the release gate: accuracy on the clean validation set against the released version, and the
        backdoor probe. Exit 0 pass, 8 review, 9 block."""
        if html is not None:
            from dataward.io.writers import check_destination  # pyarrow: only when a report is written

            check_destination(html, "HTML report")  # before the gate run is recorded
            refuse_ward_output(html)
        report = registry().model_gate(ref, predictions=predictions, trusted=trust or [])
        if html is not None:
            from dataward.release.html import render_release_html

            # Renamed into place: a link planted at the name is replaced, not followed.
            write_text_atomically(html, render_release_html(report, title=f"Release gate: {report['model']}"))
        answer(report, as_json, _show_release_report)
        raise typer.Exit(VERDICT_EXIT[report["verdict"]])

    @model_app.command("report")
    @reports_errors
    def model_report(ref: Annotated[str, typer.Argument(help="MODEL@vN.")], as_json: JsonOpt = False) -> None:
        """Show the latest release gate report of a model version (exit code as `model gate`'s)."""
        report = registry().model_gate_report(ref)
        answer(report, as_json, _show_release_report)
        raise typer.Exit(VERDICT_EXIT[report["verdict"]])

    @model_app.command("approve")
    @reports_errors
    def model_approve(
        ref: Annotated[str, typer.Argument(help="MODEL@vN.")],
        reason: Annotated[str, typer.Option(help="Why.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Approve a model version for release (never one you, your bot or your human trained)."""
        answer(
            registry().approve_model(ref, reason=reason),
            as_json,
            lambda i: console.print(f"{i['model']} approved by {i['by']}: {i['approvals']} of {i['required']}"),
        )

    @model_app.command("release")
    @reports_errors
    def model_release(
        ref: Annotated[str, typer.Argument(help="MODEL@vN.")],
        reason: Annotated[str, typer.Option(help="Why.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Release a model version (promoter): release gate, approvals and clean training data required;
        writes a signed in-toto attestation."""
        answer(
            registry().release_model(ref, reason=reason),
            as_json,
            lambda i: console.print(
                f"{i['model']} [bold green]released[/bold green]; attestation {short(i['attestation'], 20)}"
            ),
        )

    @model_app.command("withdraw")
    @reports_errors
    def model_withdraw(
        ref: Annotated[str, typer.Argument(help="MODEL@vN.")],
        reason: Annotated[str, typer.Option(help="Why (required).")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Withdraw a released model version (promoter or owner): its files and attestation are never
        served again. Needs a reason, no second approver."""
        answer(
            registry().withdraw_model(ref, reason=reason),
            as_json,
            lambda i: console.print(
                f"{i['model']} [bold red]withdrawn[/bold red] (was {i['was']}) by {safe(str(i['by']))}: "
                f"{safe(i['reason'])}"
            ),
        )

    @model_app.command("attest")
    @reports_errors
    def model_attest(
        ref: Annotated[str, typer.Argument(help="MODEL@vN.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Bundle file (JSON Lines) to write.")],
        as_json: JsonOpt = False,
    ) -> None:
        """Write a model version's DSSE envelopes (model-signing manifest, release attestation); check them
        offline with `dataward verify --attestation FILE --public-key KEY.pem`."""
        envelopes = registry().model_attestation(ref)
        write_text_atomically(output, "".join(json.dumps(e, sort_keys=True) + "\n" for e in envelopes))
        answer(
            {"model": ref, "envelopes": len(envelopes), "output": str(output)},
            as_json,
            lambda i: console.print(f"{i['envelopes']} envelope(s) to {safe(i['output'])}"),
        )

    @model_app.command("files")
    @reports_errors
    def model_files(
        ref: Annotated[str, typer.Argument(help="MODEL@vN.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the model's files into.")],
        accept_affected: Annotated[
            bool,
            typer.Option(
                "--accept-affected", help="Serve a released model trained on data held out since (with a warning)."
            ),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Write a model version's files, checked against its signed manifest. A withdrawn model is
        refused; an affected released one too, unless --accept-affected."""
        ward = registry()
        refuse_ward_output(output)
        info = ward.model_files(ref, output, accept_affected=accept_affected)
        if info.get("warning"):
            # On stderr, so that --json's answer on stdout stays one document.
            err_console.print(f"[bold yellow]warning:[/bold yellow] {safe(info['warning'])}")
        answer(info, as_json, lambda i: console.print(f"{i['model']} to {safe(str(output))}"))
