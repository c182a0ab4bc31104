"""Datasets whose recorded owner can no longer act: what offboarding leaves without an accountable human.

A dataset's owner is the human who answers for it: it alone writes the clean validation set the gate
trusts (with anyone else granted ``owner`` on it), sets its policy and is one of the two owners or admins
that lift a block. Disabling that owner takes none of this elsewhere: the dataset keeps its recorded
owner, and only someone else holding ``owner`` on it (or on the ward) can still do those things.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dataward.access.authorize import Grant, Principal, PrincipalKind
from dataward.access.roles import Role, ScopeKind


@dataclass(frozen=True)
class OwnedDataset:
    """A dataset (a clean validation set goes with the dataset it guards) and its recorded owner."""

    name: str
    owner_id: str
    in_training: bool = False


def co_owners(dataset: str, owner_id: str, people: Mapping[str, Principal], grants: Iterable[Grant]) -> list[str]:
    """The active humans other than ``owner_id`` who hold ``owner`` on ``dataset`` or on the whole ward,
    by name: those who can still curate it when its recorded owner cannot."""
    names = set()
    for g in grants:
        if g.role is not Role.OWNER or g.principal_id == owner_id:
            continue
        if not (g.scope_kind is ScopeKind.WARD or (g.scope_kind is ScopeKind.DATASET and g.scope_name == dataset)):
            continue
        p = people.get(g.principal_id)
        if p is not None and p.is_active and p.kind is PrincipalKind.HUMAN:
            names.add(p.name)
    return sorted(names)


def owner_grant_holders(
    dataset: str, people: Mapping[str, Principal], grants: Iterable[Grant], *, kind: PrincipalKind | None = None
) -> list[str]:
    """The active principals holding ``owner`` on ``dataset`` itself (a grant on the ward aside), by name;
    of ``kind`` only when given. No human left, nobody answers for the dataset in particular: its recorded
    owner's grant was revoked too, or only a service principal (a bot, which answers to its human, not
    for a dataset) holds one."""
    names = set()
    for g in grants:
        if g.role is not Role.OWNER or g.scope_kind is not ScopeKind.DATASET or g.scope_name != dataset:
            continue
        p = people.get(g.principal_id)
        if p is not None and p.is_active and (kind is None or p.kind is kind):
            names.add(p.name)
    return sorted(names)


def owned_by(principal_id: str, datasets: Iterable[OwnedDataset]) -> list[OwnedDataset]:
    """The datasets whose recorded owner is ``principal_id``, by name."""
    return sorted((d for d in datasets if d.owner_id == principal_id), key=lambda d: d.name)


def owner_fix(dataset: str) -> str:
    """The command that gives ``dataset`` an accountable human again."""
    return f"grant owner on {dataset} to an active human (dataward grant add HUMAN owner --scope dataset:{dataset})"


__all__ = ["OwnedDataset", "co_owners", "owned_by", "owner_fix", "owner_grant_holders"]
