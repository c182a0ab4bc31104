"""Commands about access: principals, keys, grants, policies, approvals and the access review."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataward.cli.errors import reports_errors
from dataward.cli.output import console, emit_json, safe, styled, table
from dataward.cli.state import JSON_HELP, open_ward
from dataward.domain.errors import InputError, not_a_file

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
KEY_STATE_STYLE = {"active": "green", "revoked": "red", "expired": "red", "rotated": "yellow"}
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _show_new_key(info: dict, as_json: bool) -> None:
    if as_json:
        emit_json(info)
        return
    console.print(
        f"API key for [bold]{safe(info['principal'])}[/bold], expires {info['expires_at'][:10]} "
        "(shown once; store it in a secret manager):"
    )
    console.print(f"  [bold yellow]{info['key']}[/bold yellow]")


def register(app: typer.Typer) -> None:
    """Add the access commands to ``app``."""
    principal_app = typer.Typer(help="Humans and service principals (pipelines, bots, CI jobs).", no_args_is_help=True)
    key_app = typer.Typer(help="API keys: issue, rotate, revoke, list.", no_args_is_help=True)
    grant_app = typer.Typer(help="Roles on the ward, a dataset or a model.", no_args_is_help=True)
    policy_app = typer.Typer(
        help="A dataset's policy (approvals, separation of duties, promotion, gate).", no_args_is_help=True
    )
    access_app = typer.Typer(help="Audit who can do what.", no_args_is_help=True)
    for name, sub in (
        ("principal", principal_app),
        ("key", key_app),
        ("grant", grant_app),
        ("policy", policy_app),
        ("access", access_app),
    ):
        app.add_typer(sub, name=name)

    @principal_app.command("create")
    @reports_errors
    def principal_create(
        name: Annotated[str, typer.Argument()],
        kind: Annotated[str, typer.Option(help="human or service.")] = "human",
        owner: Annotated[str | None, typer.Option(help="The accountable human of a service principal.")] = None,
        description: Annotated[str, typer.Option()] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Register a principal. A service principal must name its accountable human --owner."""
        info = open_ward().create_principal(name, kind=kind, owner=owner, description=description)
        if as_json:
            emit_json(info)
        else:
            owned = f" owned by {info['owner']}" if info["owner"] else ""
            console.print(f"[bold green]Registered[/bold green] {info['kind']} {safe(name)} ({info['id']}){owned}")

    @principal_app.command("list")
    @reports_errors
    def principal_list(as_json: JsonOpt = False) -> None:
        """List principals with their kind, owner and status."""
        items = open_ward().principals()
        if as_json:
            emit_json(items)
            return
        table(
            "Principals",
            ["name", "kind", "owner", "status", "id"],
            [
                (
                    p["name"],
                    p["kind"],
                    p["owner"],
                    styled(p["status"], {"active": "green", "disabled": "red", "suspended": "yellow"}),
                    p["id"],
                )
                for p in items
            ],
        )

    @principal_app.command("disable")
    @reports_errors
    def principal_disable(
        name: Annotated[str, typer.Argument()],
        transfer_to: Annotated[
            str | None, typer.Option(help="Active human who takes over the service principals this human owns.")
        ] = None,
        reason: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Offboard a human (their bots are suspended unless --transfer-to), or suspend a service principal."""
        info = open_ward().disable_principal(name, transfer_to=transfer_to, reason=reason)
        if as_json:
            emit_json(info)
            return
        if info.get("already"):
            console.print(f"{safe(name)} is already {info['status']}; nothing changed")
            return
        console.print(
            f"[bold red]{info['status']}[/bold red] {safe(name)}; revoked keys: "
            f"{', '.join(info['revoked_keys']) or 'none'}"
        )
        if info.get("suspended"):
            console.print(f"suspended service principals: {', '.join(info['suspended'])}")
        if info.get("transferred"):
            console.print(f"transferred to {info['transfer_to']}: {', '.join(info['transferred'])}")
        for owned in info.get("owned_datasets") or []:
            # Datasets keep their recorded owner: say who still answers for each, or how to name someone.
            others = owned["co_owners"]
            console.print(
                f"[yellow]warning[/yellow]: {safe(name)} owns dataset {safe(owned['dataset'])}; "
                + (
                    f"{safe(', '.join(others))} also hold(s) owner on it"
                    if others
                    else f"no other active human holds owner on it: {safe(owned['fix'])}"
                )
            )

    @principal_app.command("transfer")
    @reports_errors
    def principal_transfer(
        service: Annotated[str, typer.Argument()], to: Annotated[str, typer.Option("--to")], as_json: JsonOpt = False
    ) -> None:
        """Hand a service principal to another active human; the keys its previous owner issued for it
        are revoked."""
        info = open_ward().transfer_principal(service, to)
        if as_json:
            emit_json(info)
        else:
            console.print(f"{safe(service)} is now owned by {safe(to)}")
            if info.get("revoked_keys"):
                console.print(f"revoked the keys its previous owner issued: {', '.join(info['revoked_keys'])}")
            if info["status"] != "active":
                # A transfer never changes a status: say so, or a suspended bot looks ready to run.
                console.print(
                    f"it is still [yellow]{info['status']}[/yellow]: an admin can enable it with "
                    f"`dataward principal enable {safe(service)}`"
                )

    @principal_app.command("enable")
    @reports_errors
    def principal_enable(
        name: Annotated[str, typer.Argument()],
        reason: Annotated[str, typer.Option(help="Why it may act again (kept in the ledger).")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Let a disabled human, or a suspended service principal whose owner is active, act again.

        Admin only. No old key works again: issue it a new one. Its grants apply again."""
        info = open_ward().enable_principal(name, reason=reason)
        if as_json:
            emit_json(info)
            return
        owned = f", owned by {safe(info['owner'])}" if info["owner"] else ""
        console.print(f"[bold green]enabled[/bold green] {safe(name)} (was {info['was']}{owned})")
        held = ", ".join(f"{g['role']} on {g['scope']}" for g in info["grants"]) or "none"
        console.print(f"its grants apply again: {safe(held)}")
        if info["revoked_keys"]:
            console.print(f"revoked keys issued while it was {info['was']}: {', '.join(info['revoked_keys'])}")
        console.print(f"it has no usable key: `dataward key issue {safe(name)}`")
        if info["still_suspended"]:
            console.print(f"its service principals are still suspended: {safe(', '.join(info['still_suspended']))}")

    @key_app.command("issue")
    @reports_errors
    def key_issue(
        principal: Annotated[str | None, typer.Argument(help="Whose key (default: yours).")] = None,
        ttl_days: Annotated[
            int | None, typer.Option(help="Lifetime in days (default and maximum: ward policy).")
        ] = None,
        scope: Annotated[
            list[str] | None, typer.Option(help="Narrow the key: a role, an action or dataset:NAME. Repeatable.")
        ] = None,
        description: Annotated[str, typer.Option()] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Issue an API key (shown once, stored only as a hash).

        A key for yourself or your own service principal is minted with your key: never wider, never
        longer-lived (an explicit --ttl-days past your key's expiry is refused), revoked with it. So is a
        key for anyone else when your key is narrowed (--scope): it must lie within your key's scopes.
        An admin's unrestricted key issues keys for others on the admin grant."""
        _show_new_key(
            open_ward().issue_key(principal, ttl_days=ttl_days, scopes=scope, description=description), as_json
        )

    @key_app.command("rotate")
    @reports_errors
    def key_rotate(
        key: Annotated[str, typer.Argument(help="Key id or prefix, e.g. dw_ab12cd34.")],
        overlap_hours: Annotated[float, typer.Option(help="How long the old key keeps working.")] = 24.0,
        as_json: JsonOpt = False,
    ) -> None:
        """Issue a key's successor; the old key stops working after the overlap window."""
        info = open_ward().rotate_key(key, overlap_hours=overlap_hours)
        _show_new_key(info, as_json)
        if not as_json:
            console.print(f"{info['rotated_from']}… keeps working until {info['old_key_works_until']}")

    @key_app.command("revoke")
    @reports_errors
    def key_revoke(
        key: Annotated[str, typer.Argument(help="Key id or prefix, e.g. dw_ab12cd34.")],
        reason: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Revoke a key and every key minted through it: refused from the very next request."""
        info = open_ward().revoke_key(key, reason=reason)
        if as_json:
            emit_json(info)
        else:
            console.print(f"[bold red]revoked[/bold red] {info['prefix']}… of {safe(info['principal'])}")
            for k in info.get("revoked_with_it", []):
                console.print(f"  and {k['key']}… of {safe(str(k['principal']))}, minted through it")

    @key_app.command("list")
    @reports_errors
    def key_list(principal: Annotated[str | None, typer.Argument()] = None, as_json: JsonOpt = False) -> None:
        """List keys (never their secrets) with expiry, last use and state."""
        items = open_ward().keys(principal)
        if as_json:
            emit_json(items)
            return
        table(
            "API keys",
            ["key", "principal", "state", "scopes", "expires", "last used"],
            [
                (
                    k["prefix"],  # whole: what `key revoke` and `key rotate` take
                    k["principal"],
                    styled(k["state"], KEY_STATE_STYLE),
                    ", ".join(k["scopes"]) if k["scopes"] else "all roles",
                    k["expires_at"][:10],
                    (k["last_used_at"] or "never")[:19],
                )
                for k in items
            ],
        )

    @grant_app.command("add")
    @reports_errors
    def grant_add(
        principal: Annotated[str, typer.Argument()],
        role: Annotated[str, typer.Argument(help="reader, contributor, reviewer, approver, promoter, owner, admin.")],
        scope: Annotated[str, typer.Option(help="ward, dataset:NAME or model:NAME.")] = "ward",
        as_json: JsonOpt = False,
    ) -> None:
        """Grant a role."""
        info = open_ward().grant(principal, role, scope)
        if as_json:
            emit_json(info)
        else:
            console.print(f"[green]granted[/green] {role} on {info['scope']} to {safe(principal)}")

    @grant_app.command("revoke")
    @reports_errors
    def grant_revoke(
        principal: Annotated[str, typer.Argument()],
        role: Annotated[str, typer.Argument()],
        scope: Annotated[str, typer.Option(help="ward, dataset:NAME or model:NAME.")] = "ward",
        as_json: JsonOpt = False,
    ) -> None:
        """Revoke a role."""
        info = open_ward().revoke_grant(principal, role, scope)
        if as_json:
            emit_json(info)
        else:
            console.print(f"[red]revoked[/red] {role} on {info['scope']} from {safe(principal)}")

    @grant_app.command("list")
    @reports_errors
    def grant_list(principal: Annotated[str | None, typer.Argument()] = None, as_json: JsonOpt = False) -> None:
        """List active grants."""
        items = open_ward().grants(principal)
        if as_json:
            emit_json(items)
            return
        table(
            "Grants",
            ["principal", "role", "scope", "granted by", "when"],
            [(g["principal"], g["role"], g["scope"], g["granted_by"], g["granted_at"][:19]) for g in items],
        )

    @policy_app.command("set")
    @reports_errors
    def policy_set(
        dataset: Annotated[str, typer.Argument()],
        file: Annotated[Path, typer.Argument(help="Policy YAML file.")],
        as_json: JsonOpt = False,
    ) -> None:
        """Replace a dataset's policy (a versioned ledger event)."""
        if not file.is_file():
            raise not_a_file(file, what="policy file")
        try:
            text = file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read policy file {file}: {exc}") from exc
        info = open_ward().set_policy(dataset, text)
        if as_json:
            emit_json(info)
        else:
            console.print(f"[green]policy of {dataset} set[/green] {info['hash']}")
            # An admin's weakening is recorded as an event of its own: say what got weaker.
            for weaker in info.get("weakened") or []:
                console.print(f"  [yellow]weaker[/yellow] {safe(weaker['field'])}: {safe(weaker['what'])}")

    @policy_app.command("show")
    @reports_errors
    def policy_show(dataset: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
        """Show a dataset's policy (defaults filled in)."""
        import yaml

        info = open_ward().policy(dataset)
        if as_json:
            emit_json(info)
        else:
            console.print(yaml.safe_dump(info["policy"], sort_keys=False))

    @app.command()
    @reports_errors
    def approve(
        contribution: Annotated[
            str, typer.Argument(help="Contribution id or DATASET#N, or a whole version DATASET@vN.")
        ],
        reason: Annotated[str, typer.Option(help="What was checked.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Approve a contribution (bound to its content hash), merged or not, or a whole version (bound to
        its manifest digest); never your own work or your bot's."""
        info = open_ward().approve(contribution, reason=reason)
        if as_json:
            emit_json(info)
        else:
            what = info.get("contribution") or info.get("version")
            console.print(f"[green]approved[/green] {what} by {safe(info['by'])}: {info['approvals']}")

    @app.command()
    @reports_errors
    def reject(
        contribution: Annotated[str, typer.Argument(help="Contribution id or DATASET#N.")],
        reason: Annotated[str, typer.Option(help="Why.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Reject a contribution: it can never be merged."""
        info = open_ward().reject(contribution, reason=reason)
        if as_json:
            emit_json(info)
        else:
            console.print(f"[red]rejected[/red] {info['contribution']} by {safe(info['by'])}")

    @access_app.command("review")
    @reports_errors
    def access_review(
        unused_days: Annotated[int | None, typer.Option(help="Flag keys unused for this many days.")] = None,
        recent_days: Annotated[int, typer.Option(help="List grants made in the last N days.")] = 30,
        as_json: JsonOpt = False,
    ) -> None:
        """The auditor's report: stale, old or expiring keys, orphaned bots, who can change training data."""
        items = open_ward().access_review(unused_days=unused_days, recent_days=recent_days)
        if as_json:
            emit_json(items)
            return
        table(
            "Access review",
            ["severity", "finding", "principal", "owner", "dataset", "detail", "do"],
            [
                (
                    styled(f["severity"], SEVERITY_STYLE),
                    f["kind"],
                    f["principal"],
                    f.get("owner"),
                    f.get("dataset"),
                    safe(f["detail"]),
                    safe(f["action"]),
                )
                for f in items
            ],
        )
