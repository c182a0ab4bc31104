"""Commands about the gates: run a contribution's gate, self-test a dataset's gate, the review queue."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.panel import Panel
from rich.tree import Tree

from dataward.cli.errors import reports_errors
from dataward.cli.output import (
    SENTENCE_MIN,
    VERDICT_EXIT,
    VERDICT_STYLE,
    answer,
    console,
    emit_json,
    safe,
    short,
    styled,
    table,
    visible,
    working,
)
from dataward.cli.state import JSON_HELP, open_ward, refuse_ward_output, state
from dataward.domain.errors import InputError
from dataward.domain.report_entries import for_another_kind, review_findings_note

if TYPE_CHECKING:
    from dataward.api import WardAPI

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def highlight(text: str, triggers: list[str]) -> str:
    """Rich markup of ``text`` with each suspected trigger marked."""
    out = safe(text)
    for trig in sorted(set(triggers), key=len, reverse=True):
        out = re.sub(re.escape(safe(trig)), lambda m: f"[bold black on yellow]{m.group(0)}[/]", out, flags=re.I)
    return out


def _at_alpha(counts: dict[str, Any]) -> str:
    """``; N flagged at alpha`` when the detectors flagged another number of records than the review queue
    holds (fewer pass its false-discovery check; a block's members or new labels wait beside the flags)."""
    at_alpha = counts.get("flagged_at_alpha")
    return f"; {at_alpha} flagged at alpha" if at_alpha is not None and at_alpha != counts["flagged"] else ""


def _held_note(item: dict[str, Any]) -> str:
    """The line a review item whose record a quarantine holds back starts its reason with."""
    held = item.get("held_back")
    if not held:
        return ""
    by = (
        f"quarantine of {safe(held['contribution'])}" if held.get("contribution") else "a quarantine in another dataset"
    )
    return f"[yellow]held back by {by}: deciding it changes nothing[/yellow]\n"


def show_report(report: dict[str, Any], *, top: int = 10) -> None:
    """Print a gate report: verdict, reasons, detectors, triggers, groups, top records."""
    verdict = report["verdict"]
    head = (
        f"[{VERDICT_STYLE[verdict]}]{verdict.upper()}[/]  {report['contribution']}  "
        f"({report['counts']['flagged']} of {report['counts']['records']} records to review"
        f"{_at_alpha(report['counts'])}, {report['mode']} mode)"
    )
    tree = Tree(head)
    if report.get("verdict_note"):
        # A pass is about the batch; records flagged one by one still wait for a reviewer before a merge.
        tree.add(f"[yellow]{safe(report['verdict_note'])}[/yellow]: a merge waits for them (dataward review list)")
    if report.get("detection_limit"):
        # A pass (or a review) is about what the detectors found: say what they are measured to miss here.
        tree.add(f"[yellow]{safe(report['detection_limit']['note'])}[/yellow]")
    if report.get("closed_held_back"):
        # "12 of 52 records to review" with nothing in the queue: say where they went.
        n = report["closed_held_back"]
        tree.add(
            f"[cyan]{n} flagged record{'s are' if n != 1 else ' is'} held back by a quarantine already: "
            "closed without review (dataward review list --status rejected)[/cyan]"
        )
    if report.get("records_withheld"):
        tree.add(f"[yellow]{safe(report['records_withheld'])}[/yellow]")
    trusted = report.get("trusted") or {}
    if trusted.get("kind") in ("validation-set", "self-reference", "removal"):
        # Say what this run trusted when it is not the training version (a first import, a removal).
        colour = "yellow" if trusted["kind"] == "self-reference" else "cyan"
        tree.add(f"[{colour}]{safe(trusted['note'])}[/{colour}]")
    elif report["mode"] == "self-reference":
        tree.add(
            "[yellow]self-reference mode: no trusted baseline yet, so this batch was judged only against "
            "itself; a first import must be curated by hand (and a clean validation set helps)[/yellow]"
        )
    removals = report.get("removals")
    if removals:
        node = tree.add(f"removal: {styled(removals['verdict'], VERDICT_STYLE)}, {safe(removals['summary'])}")
        for change in removals.get("validation", [])[:1]:
            node.add(
                f"clean-validation accuracy {change['accuracy_with']:.3f} with the removed records, "
                f"{change['accuracy_without']:.3f} without (McNemar p={change['p_value']:.2g})"
            )
    reasons = tree.add("reasons")
    for reason in report["reasons"] or ["no detector found evidence of poisoning"]:
        reasons.add(safe(reason))
    if report.get("limits"):
        limits = tree.add("[yellow]not checked[/yellow]")
        for limit in report["limits"]:
            limits.add(f"[yellow]{safe(limit)}[/yellow]")
    dets = tree.add("detectors") if report["detectors"] else Tree("")  # a removal has no detector to list

    other_kind = 0
    for name, d in report["detectors"].items():
        if for_another_kind(d):
            other_kind += 1  # made for another kind of data: listed in --json only
            continue
        skipped = (d.get("summary") or {}).get("skipped")
        if skipped or d.get("p_value") is None:
            dets.add(f"[dim]{name}: skipped ({safe(str(skipped or 'not applicable'))})[/dim]")
            continue
        # A block's members that the detector did not flag wait in the queue too: say so, or "flagged 0"
        # beside a block reads as a block that names nothing.
        with_block = f", {d['queued']} more queued with its block" if d.get("queued") else ""
        # Its findings are reasons above with their own tests: "p=1" alone read as a detector that found
        # nothing while the reasons cited it.
        findings = review_findings_note(d)
        findings = f"; {findings}" if findings else ""
        dets.add(f"{name} v{d['version']}: flagged {d['flagged']}{with_block}, p={d['p_value']:.3g}{findings}")
    if other_kind:
        many = "detectors for other kinds of data" if other_kind > 1 else "detector for another kind of data"
        dets.add(f"[dim]{other_kind} {many} not listed (see --json)[/dim]")
    triggers = [f for f in report["findings"] if f["detector"] == "triggers" and f.get("row") is None]
    if triggers:
        trig = tree.add("[bold red]suspected triggers[/bold red]")
        for f in triggers:
            ev = f["evidence"]
            trig.add(
                f"[bold]{safe(str(ev.get('trigger')))}[/bold] → label {safe(str(ev.get('label')))} "
                f"in {len(ev.get('rows', []))} records"
            )
    groups = tree.add("by group") if report.get("groups") else Tree("")
    for kind, items in report.get("groups", {}).items():
        for g in items:
            groups.add(
                # A group's verdict reads its flags alone; the batch's may rest on contribution-level evidence.
                f"{kind} {safe(str(g['key']))}: {g['flagged']}/{g['records']} flagged at alpha, by its flags alone "
                f"{styled(g.get('verdict'), VERDICT_STYLE)}"
            )
    console.print(tree)
    flagged = sorted((r for r in report["records"] if r["flagged"]), key=lambda r: -r["score"])[:top]
    if flagged:
        table(
            f"Most suspicious records (top {len(flagged)})",
            ["row", "record", "score", "flagged by"],
            [(r["row"], short(r["record_id"], 16), f"{r['score']:.3f}", ", ".join(r["flagged_by"])) for r in flagged],
        )


def register(app: typer.Typer) -> None:
    """Add the gate and review commands to ``app``."""
    gate_app = typer.Typer(help="Run poisoning-aware validation gates.", no_args_is_help=True)
    review_app = typer.Typer(help="The human review queue of quarantined records.", no_args_is_help=True)
    app.add_typer(gate_app, name="gate")
    app.add_typer(review_app, name="review")

    @gate_app.command("run")
    @reports_errors
    def gate_run(
        contribution: Annotated[str, typer.Argument(help="Contribution id or DATASET#N.")],
        html: Annotated[Path | None, typer.Option(help="Also write a readable HTML report here.")] = None,
        engine: Annotated[
            str | None,
            typer.Option(help="Where to score the contribution: local (this process) or dask (needs a scheduler)."),
        ] = None,
        scheduler: Annotated[
            str | None,
            typer.Option(
                help="Dask scheduler address (tls://HOST:8786): score the contribution's partitions on its workers. "
                "Default: $DATAWARD_SCHEDULER."
            ),
        ] = None,
        allow_insecure_scheduler: Annotated[
            bool,
            typer.Option(
                help="Accept a plain tcp:// scheduler on another host: whoever reaches it can forge the verdict "
                "and run code in this process. Default: $DATAWARD_ALLOW_INSECURE_SCHEDULER."
            ),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Scan a contribution against the trusted baseline; flagged records go to the review queue.

        Exit code 0 for pass, 8 for review, 9 for block."""
        _choose_engine(engine, scheduler, allow_insecure_scheduler)
        if html is not None:
            from dataward.io.writers import check_destination  # pyarrow: only when a report is written

            check_destination(html, "HTML report")  # before the run is recorded
            refuse_ward_output(html)
        with working(f"Running the gate on {contribution}", enabled=not as_json) as update:
            ward = open_ward()
            report = ward.run_gate(contribution, progress=update)
            if html and report["mode"] != "removal":
                write_gate_html(ward, report["contribution"], html)
        if as_json:
            emit_json(report)
        else:
            show_report(report)
            if html and report["mode"] == "removal":
                console.print("no HTML report: the contribution only removes records")
            elif html:
                console.print(f"HTML report written to {safe(str(html))}")
        raise typer.Exit(VERDICT_EXIT[report["verdict"]])

    @gate_app.command("report")
    @reports_errors
    def gate_report(
        contribution: Annotated[str, typer.Argument(help="Contribution id or DATASET#N.")],
        html: Annotated[Path | None, typer.Option(help="Also write the readable HTML report here.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Show the latest gate report of a contribution."""
        if html is not None:
            from dataward.io.writers import check_destination  # pyarrow: only when a report is written

            check_destination(html, "HTML report")
            refuse_ward_output(html)
        ward = open_ward()
        report = ward.gate_report(contribution)
        if html is not None and report["mode"] != "removal":
            write_gate_html(ward, report["contribution"], html)
        report.pop("extras", None)
        answer(report, as_json, show_report)

    @gate_app.command("override")
    @reports_errors
    def gate_override(
        contribution: Annotated[str, typer.Argument(help="The blocked contribution (id or DATASET#N).")],
        reason: Annotated[str, typer.Option(help="Why the blocked data is legitimate.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Lift a gate's block: the first owner or admin requests, a second, distinct one confirms.

        Neither may be the submitter or the owner of the submitting bot. Once confirmed the contribution
        is treated as `review`: its flagged records still need a reviewer, and approvals still apply."""
        info = open_ward().override_block(contribution, reason=reason)
        if as_json:
            emit_json(info)
            return
        if info["status"] == "requested":
            console.print(
                f"[yellow]override requested[/yellow] for {info['contribution']} by {safe(info['by'])}; "
                "a second owner or admin (not the submitter, not its bot's owner) must confirm it"
            )
        else:
            console.print(
                f"[bold]block overridden[/bold] on {info['contribution']}: requested by "
                f"{safe(info['requested_by'] or '-')}, confirmed by {safe(info['by'])}. It is now treated as "
                f"[yellow]review[/yellow]: decide its flagged records (dataward review list --contribution "
                f"{info['contribution']}), "
                "then approve and merge as usual"
            )

    @gate_app.command("selftest")
    @reports_errors
    def gate_selftest(
        dataset: Annotated[str, typer.Argument(help="Dataset whose gate to test.")],
        contribution: Annotated[
            str | None,
            typer.Option(help="A clean contribution to plant canaries in (default: held-out training records)."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Random seed of the planted poisons.")] = 0,
        as_json: JsonOpt = False,
    ) -> None:
        """Plant known poisons (label flips, a trigger) in a clean copy and report what the gate catches."""
        with working(f"Self-testing the gate of {dataset}", enabled=not as_json):
            result = open_ward().selftest(dataset, contribution, seed=seed)
        if as_json:
            emit_json(result)
            return
        rows = []
        for c in result.get("canaries", []):
            floor = c.get("detection_floor")
            # What found the canary at the fewest planted records it was caught at.
            seen = next((a.get("seen_by", []) for a in c.get("attempts", []) if a.get("detected")), [])
            rows.append(
                (
                    c.get("name"),
                    c.get("planted"),
                    f"{c.get('recall', 0):.2f}",
                    styled(c.get("verdict"), VERDICT_STYLE),
                    "yes" if c.get("detected") else "NO",
                    "-" if floor is None else f"{floor} of {result.get('records')}",
                    safe(", ".join(seen)) or "-",
                )
            )
        table(
            f"Gate self-test of {dataset}",
            ["canary", "planted", "record recall", "verdict", "detected", "caught from", "seen by"],
            rows,
        )
        for c in result.get("canaries", []):
            if not c.get("detected") and len(c.get("attempts", [])) > 1:
                tried = ", ".join(f"{a['planted']} ({a['verdict']})" for a in c["attempts"])
                console.print(f"{c.get('name')}: missed at {c.get('planted')} records; planted again: {tried}")
        clean = result.get("clean", {})
        if clean:
            found = ", ".join(clean.get("sources", []))
            console.print(
                f"clean copy: verdict {styled(clean.get('verdict'), VERDICT_STYLE)}"
                + (f" (for {safe(found)}; a canary reviewed only for that too is not counted as seen)" if found else "")
                + f", false-positive rate {clean.get('false_positive_rate', 0):.3f}"
            )

    @review_app.command("list")
    @reports_errors
    def review_list(
        dataset: Annotated[str | None, typer.Argument(help="Only this dataset.")] = None,
        status: Annotated[str, typer.Option(help="pending, accepted, rejected or all.")] = "pending",
        contribution: Annotated[
            str | None, typer.Option("--contribution", help="Only this contribution's records (DATASET#N or c_…).")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List quarantined records awaiting review, most suspicious first."""
        items = open_ward().review_list(dataset, status=status, contribution=contribution)
        if as_json:
            emit_json(items)
            return
        table(
            f"Review queue ({status})",
            ["item", "contribution", "row", "score", "detectors", "reason"],
            [
                (
                    i["id"],
                    i["contribution"],
                    i["row"],
                    f"{i['score']:.3f}",
                    # One detector a line: names are kept whole. The reason is prose: it wraps, whole
                    # (a reviewer decides on it; cut, it lost its p-value or its "near duplicate of").
                    "\n".join(i["detectors"]),
                    _held_note(i) + safe(i["reason"]),
                )
                for i in items
            ],
            # Narrower than a few words a line, the rows print as records: the reason on lines of its own.
            readable={"reason": SENTENCE_MIN},
        )
        held = [i for i in items if i.get("held_back")]
        if held:
            # Items left from before a quarantine closed them: say that deciding them changes nothing.
            console.print(
                f"[yellow]{len(held)} of these {len(items)} items hold records a quarantine holds back: no decision "
                "on them changes what a merge adds; reject them to clear them (accepting is refused)[/yellow]"
            )

    @review_app.command("show")
    @reports_errors
    def review_show(
        item: Annotated[str, typer.Argument(help="Review item id (or record id).")],
        as_json: JsonOpt = False,
    ) -> None:
        """Show a quarantined record with its evidence: suspected trigger, nearest trusted neighbours."""
        info = open_ward().review_show(item)
        if as_json:
            emit_json(info)
            return
        lines = []
        for key, value in info["record"].items():
            if isinstance(value, str):
                lines.append(f"[bold]{safe(key)}[/bold]: {highlight(value, info['triggers'])}")
            elif isinstance(value, dict) and "image_base64" in value:
                lines.append(f"[bold]{safe(key)}[/bold]: image, {value['bytes']} bytes (see the HTML report or --json)")
            else:
                lines.append(f"[bold]{safe(key)}[/bold]: {safe(str(value))}")
        console.print(
            Panel(
                "\n".join(lines),
                title=f"{info['id']} {info['contribution']} row {info['row']}",
                subtitle=f"score {info['score']:.3f}, {info['status']}",
            )
        )
        hidden = [key for key, value in info["record"].items() if isinstance(value, str) and visible(value) != value]
        if hidden:
            # Characters a terminal would act on or not draw are shown as escapes above; that a record
            # carries them at all is evidence (an erased trigger, a forged line, a look-alike label).
            console.print(
                f"  [red]control or invisible characters[/red] in {safe(', '.join(hidden))}, shown as escapes (\\x1b)"
            )
        if info["triggers"]:
            # Highlighted in text above; a pixel patch or a value on an image or numeric record is
            # nowhere else in this view.
            console.print(f"  [red]suspected trigger[/red]: {safe('; '.join(info['triggers']))}")
        for f in info["findings"]:
            console.print(f"  [red]{f['detector']}[/red] ({f['score']:.3f}): {safe(f['reason'])}")
        if info["neighbours"] and any("prompt" in n for n in info["neighbours"]):
            _llm_neighbours(info["neighbours"])
        elif info["neighbours"]:
            # A text column only where a neighbour has text (numeric and image records have none).
            texts = any(n.get("text") for n in info["neighbours"])
            table(
                "Nearest trusted neighbours",
                ["label", "distance", *(["text"] if texts else [])],
                [
                    (safe(str(n.get("label"))), f"{n.get('distance', 0):.3f}")
                    + ((safe(str(n.get("text") or "")[:70]),) if texts else ())
                    for n in info["neighbours"]
                ],
            )

    def _llm_neighbours(neighbours: list[dict[str, Any]]) -> None:
        """A language-model record's trusted neighbours: each one's prompt and the start of its answer (a
        pair's chosen and rejected answers). No label column: the label slot holds the kind's name."""
        answers = [k for k in ("response", "chosen", "rejected") if any(k in n for n in neighbours)]
        table(
            "Nearest trusted neighbours",
            ["distance", "prompt", *answers],
            [
                (f"{n.get('distance', 0):.3f}", *(safe(str(n.get(k) or "-")) for k in ("prompt", *answers)))
                for n in neighbours
            ],
        )

    def _decide(items: list[str], contribution: str | None, decision: str, reason: str, as_json: bool) -> None:
        done = open_ward().review_decide(items, decision, reason=reason, contribution=contribution)
        if not done and contribution is not None:
            console.print(f"nothing awaits review in {safe(contribution)}")
            return
        if as_json:
            emit_json(done)
            return
        for d in done:
            console.print(
                f"{styled(d['status'], {'accepted': 'green', 'rejected': 'red'})} {d['id']} "
                f"({short(d['record_id'], 16)})"
            )

    @review_app.command("accept")
    @reports_errors
    def review_accept(
        items: Annotated[list[str] | None, typer.Argument(help="Review item ids.")] = None,
        contribution: Annotated[str | None, typer.Option(help="Every pending item of this contribution.")] = None,
        reason: Annotated[str, typer.Option(help="Why the record is legitimate.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Accept quarantined records: they may enter the next merge."""
        _decide(items or [], contribution, "accept", reason, as_json)

    @review_app.command("reject")
    @reports_errors
    def review_reject(
        items: Annotated[list[str] | None, typer.Argument(help="Review item ids.")] = None,
        contribution: Annotated[str | None, typer.Option(help="Every pending item of this contribution.")] = None,
        reason: Annotated[str, typer.Option(help="Why the record is rejected.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Reject quarantined records: they never enter a version."""
        _decide(items or [], contribution, "reject", reason, as_json)


def write_gate_html(ward: WardAPI, contribution: str, path: Path) -> None:
    """Draw a contribution's stored gate report, as the caller may see it, into one HTML page at
    ``path`` (the same page the console shows). Presentation lives here, not in the service: an
    embedded and a served ward give the same report, and the page is drawn on the caller's side."""
    from dataward.gates.html import render_html
    from dataward.io.staged import staged_file

    report = ward.gate_report(contribution)
    page = render_html(report, title=f"Gate report: {report['contribution']}")
    try:
        # Through a fresh temporary file renamed into place: a link planted at the name is replaced, not
        # followed into another of the user's files.
        with staged_file(path) as fh:
            fh.write(page.encode("utf-8"))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None


SCHEDULER_ENV = "DATAWARD_SCHEDULER"
"""Where the service's gate runs find their Dask scheduler (``dataward.service.gating.SCHEDULER_ENV``)."""


def _choose_engine(engine: str | None, scheduler: str | None, allow_insecure: bool = False) -> None:
    """Set where this process's gate runs score contributions (``$DATAWARD_SCHEDULER``), refusing a
    scheduler reached without authentication from another host unless ``allow_insecure``."""
    from dataward.gates.engine import INSECURE_SCHEDULER_ENV, check_scheduler_address, insecure_scheduler_allowed

    if engine not in (None, "local", "dask"):
        raise InputError(f"unknown engine {engine!r}", hint="engines: local, dask")
    if allow_insecure:
        if state.url:
            raise InputError("a served ward runs its gates where the server says", hint="see `dataward serve --help`")
        os.environ[INSECURE_SCHEDULER_ENV] = "1"  # read by the gate run's engine
    if engine is None and scheduler is None:
        address = os.environ.get(SCHEDULER_ENV, "").strip()
        if address and not state.url:
            # Refused before anything runs, readably, rather than by the engine once the run started.
            check_scheduler_address(address, allow_insecure=insecure_scheduler_allowed())
        return
    if state.url:
        raise InputError(
            "a served ward runs its gates where the server says",
            hint="start the server with `dataward serve --scheduler tls://HOST:8786`",
        )
    if engine == "local":
        if scheduler is not None:
            raise InputError("--scheduler goes with --engine dask")
        os.environ.pop(SCHEDULER_ENV, None)
        return
    address = scheduler or os.environ.get(SCHEDULER_ENV)
    if not address:
        raise InputError("--engine dask needs a scheduler", hint=f"--scheduler tls://HOST:8786 or ${SCHEDULER_ENV}")
    check_scheduler_address(address, allow_insecure=insecure_scheduler_allowed())
    os.environ[SCHEDULER_ENV] = address
