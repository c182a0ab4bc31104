"""A dataset policy's key rules bind every key that writes to the dataset, not only keys scoped to it.

A dataset's policy may shorten key lifetimes (``keys: {max_ttl_days: 30}``). Issuing a key scoped to
the dataset already keeps to it; a key that is not scoped (it carries all its principal's roles) was
issued under the ward's rules alone and could approve, contribute or promote on the dataset for up to
the ward's maximum. Every write use case on a dataset therefore checks the caller's key against the
dataset's ``max_ttl_days``: a key issued to live longer is refused there, with the command that issues
one that fits. Reads are not held to it (a read changes nothing the policy protects).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, select

from dataward.access.policy import DatasetPolicy
from dataward.access.roles import Scope, ScopeKind
from dataward.catalog.tables import datasets
from dataward.domain.errors import AccessDenied
from dataward.service.auth import Caller


def check_key_fits_dataset(conn: Connection, caller: Caller, scope: Scope) -> None:
    """Refuse (``AccessDenied``) a write on a dataset whose policy's ``keys.max_ttl_days`` the caller's key
    outlives (its lifetime from issue to expiry). No policy, no such rule, or another scope: nothing to check."""
    if scope.kind is not ScopeKind.DATASET or scope.name is None:
        return
    policy_text = conn.execute(select(datasets.c.policy).where(datasets.c.name == scope.name)).scalar()
    # Every write on a dataset passes here: a policy that sets no key rules is not parsed.
    if not policy_text or "keys" not in policy_text:
        return
    limit = (DatasetPolicy.from_yaml(policy_text, stored=True).keys or {}).get("max_ttl_days")
    if limit is None:
        return
    key = caller.key
    lifetime = key.expires_at - key.created_at
    if lifetime <= timedelta(days=int(limit)):
        return
    raise AccessDenied(
        f"key {key.prefix} was issued to live {lifetime.days} days; dataset {scope.name}'s policy lets keys "
        f"that write to it live at most {limit} days",
        hint=f"issue a key for at most {limit} days (dataward key issue --ttl-days {limit}), or one scoped to "
        f"the dataset (--scope dataset:{scope.name})",
    )
