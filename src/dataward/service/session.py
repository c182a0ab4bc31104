"""The caller's own view: who am I, with which key and which roles."""

from __future__ import annotations

from typing import Any

from dataward.access import PERMISSIONS, accountable_human, authorize
from dataward.access.roles import Action, Scope, ScopeKind
from dataward.domain.errors import AccessDenied
from dataward.ledger.events import format_time
from dataward.service import rows
from dataward.service.core import Service


class SessionService(Service):
    """``whoami``: what a client checks first, against an embedded or a served ward alike; and
    ``check_may_send_files``: whether the caller could use a file anywhere."""

    def whoami(self) -> dict[str, Any]:
        """The acting principal, the key in use (never its secret) and the principal's grants.

        Every authenticated principal may ask this of itself, so nothing is authorized beyond the
        authentication every use case performs (a revoked or expired key is refused here too).
        """
        with self.use_case(Action.LEDGER_READ, Scope.ward(), check=False) as uc:
            principal = uc.caller.principal
            key = uc.caller.key
            owner = rows.principal_name(uc.conn, principal.owner_id) if principal.owner_id else None
            return {
                "ward": self.ward_id,
                "principal": principal.name,
                "principal_id": principal.id,
                "kind": principal.kind.value,
                "owner": owner,
                "key": f"dw_{key.id}",
                "key_expires_at": format_time(key.expires_at),
                "key_scopes": list(key.scopes) if key.scopes is not None else None,
                "grants": [
                    {
                        "role": g.role.value,
                        "scope": g.scope_kind.value if g.scope_name is None else f"{g.scope_kind.value}:{g.scope_name}",
                    }
                    for g in uc.caller.grants
                ],
                # What the ward-wide pages need, so that a console shows a principal only the pages it may open.
                "may": {
                    name: authorize(principal, key, uc.caller.grants, action, Scope.ward(), uc.now).allowed
                    for name, action in (("access_review", Action.ACCESS_REVIEW), ("ledger", Action.LEDGER_READ))
                },
            }

    def verifier_id(self) -> str:
        """The caller's principal id, authenticated and authorized as ``verify`` is: a ledger that went
        backwards or does not verify is not refused here (``auth.DIAGNOSTIC_ACTIONS``), so that a server
        can start a ``verify`` job, and let its starter read it, on a ward whose ledger it must diagnose.
        A key the list of access removals holds is refused all the same."""
        with self.use_case(Action.VERIFY, Scope.ward()) as uc:
            return uc.caller.principal.id

    def accountable_id(self) -> str:
        """The id of the human who answers for the caller: the caller itself, or a service principal's
        owner. Authenticated as ``verifier_id`` is (and authorized for nothing: it says only who the
        caller is), so that a server can count a ``verify`` job on a ward it must diagnose."""
        with self.use_case(Action.VERIFY, Scope.ward(), check=False) as uc:
            return accountable_human(uc.caller.principal)

    def check_may_send_files(self) -> None:
        """Refuse (``AccessDenied``, recorded as any refusal) a caller that, with its key, may do
        nothing anywhere that takes a file: submit a contribution, write a validation set, record a
        training run or gate a model. A server stores an upload only for a caller that may use it (a
        reader, or a principal with no grant, has no use for one)."""
        detail = {"uses": "an uploaded file"}
        with self.use_case(Action.CONTRIBUTION_SUBMIT, Scope.ward(), check=False, write=False, detail=detail) as uc:
            caller = uc.caller
            scopes = [g.scope for g in caller.grants if g.principal_id == caller.principal.id]
            if caller.key is not None and caller.key.scopes is not None:
                scopes += list(caller.key.key_scopes.resources)
            # A grant on the ward covers every dataset and model: any name stands for them.
            candidates = {s for s in scopes if s.kind is not ScopeKind.WARD}
            if any(s.kind is ScopeKind.WARD for s in scopes):
                candidates |= {Scope.dataset("any"), Scope.model("any")}
            allowed = any(
                authorize(caller.principal, caller.key, caller.grants, action, scope, uc.now).allowed
                for scope in candidates
                for action in FILE_ACTIONS
                if scope.kind in PERMISSIONS[action].scope_kinds
            )
            if not allowed:
                raise AccessDenied(
                    f"{caller.principal_name!r} may not upload: with this key it may contribute, write a validation "
                    "set, record a training run or gate a model nowhere",
                    hint="uploads are for contributors and owners, and for a model's reviewers and promoters",
                )


FILE_ACTIONS = (Action.CONTRIBUTION_SUBMIT, Action.VALIDATION_WRITE, Action.TRAINING_RECORD, Action.MODEL_GATE)
"""The actions that take an uploaded file."""
