"""The caller's own view: who am I, with which key and which roles."""

from __future__ import annotations

from typing import Any

from dataward.access.roles import Action, Scope
from dataward.ledger.events import format_time
from dataward.service import rows
from dataward.service.core import Service


class SessionService(Service):
    """``whoami``: what a client checks first, against an embedded or a served ward alike."""

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
            }
