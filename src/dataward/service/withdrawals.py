"""Use case: withdraw a released model version.

A model found to be trained on poisoned data (an affected model, docs/models.md) or otherwise unsafe
is withdrawn: a ``model.withdrawn`` event with the reason, signed under the acting key, sets its stage
to ``withdrawn``, and from then on its files and attestation are never served
(``dataward.service.withdrawn``). Whoever may release the model may withdraw it (``model.release``:
promoter or owner). Withdrawing only takes a model out of use, so it needs no second approver, but it
needs a reason. A withdrawal is final: the version is never released again, nor are its files under another
version number or name (``withdrawn.same_bytes_withdrawn``); train and release another.
"""

from __future__ import annotations

from typing import Any

from dataward.access.removals import LISTED
from dataward.access.roles import Action, Scope
from dataward.catalog.projection import update_row
from dataward.domain.errors import Conflict, InputError
from dataward.ledger.events import format_time
from dataward.service.core import Service
from dataward.service.guard import checked_signed_rows
from dataward.service.models import model_ref, model_version_row
from dataward.service.withdrawn import WITHDRAWN, described, withdrawal_of


class WithdrawalService(Service):
    """Withdrawing released model versions."""

    def withdraw_model(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Withdraw ``MODEL@VERSION``, a released (or retired) model version: needs the ``promoter`` role
        or owner on the model, as a release does, and a reason. Refused (``Conflict``) for a version
        that was never released or is withdrawn already."""
        if not isinstance(reason, str) or not reason.strip():
            raise InputError("withdrawing a model needs a reason", hint="pass --reason '...'")
        name, _ = model_ref(ref)
        with self.use_case(Action.MODEL_RELEASE, Scope.model(name), detail={"model": ref, "withdraw": True}) as uc:
            mv = model_version_row(uc.conn, ref)
            label = f"{mv.model}@v{mv.number}"
            # Whether it may be withdrawn is decided on its stage: that must be the stage the ledger made.
            checked_signed_rows(self, uc.conn, "model_versions", [mv], doing="withdraw")
            if mv.stage == "withdrawn":
                raise Conflict(
                    f"{label} is already {described(withdrawal_of(self, uc.conn, mv.id))}",
                    hint=f"nothing to do; `dataward model show {label}` shows the withdrawal",
                )
            if mv.stage not in ("released", "retired"):
                raise Conflict(
                    f"{label} is {mv.stage} and was never released; only a released model is withdrawn",
                    hint=f"nothing to withdraw; `dataward model list {mv.model}` shows which version is released",
                )
            # Imported here: the release gate's module brings scikit-learn and SciPy, two CPU seconds of
            # imports that a refused `model withdraw` (no reason given, already withdrawn) does not need.
            from dataward.service.releases import model_file_digests

            now = format_time(uc.now)
            uc.emit(
                WITHDRAWN,
                {"model": mv.model, "model_version": mv.id},
                # LISTED: on the ward's list of removals, which verify holds it to. ``files``: the SHA-256 of
                # each model file, which the list's line carries, so that the same bytes registered again as
                # another version are refused even by a catalog restored from before this one.
                {
                    "digest": mv.digest,
                    "files": sorted(model_file_digests(self.store, mv)),
                    "reason": reason,
                    "was": mv.stage,
                    LISTED: True,
                },
                [update_row("model_versions", {"id": mv.id}, stage="withdrawn")],
            )
            return {
                "model": label,
                "stage": "withdrawn",
                "was": mv.stage,
                "digest": mv.digest,
                "by": uc.caller.principal_name,
                "at": now,
                "reason": reason,
            }


__all__ = ["WithdrawalService"]
