"""The release policy: the ``release`` section of a dataset's policy, applied to models trained on it.

```yaml
release:
  approvals: 1                 # approvals of the model version, never by its trainer's side
  approver_roles: [approver, owner]
  require_gate: pass           # the release gate verdict a release needs: pass, or review
  unsafe_artifacts: flag       # flag | refuse pickle-based model files at registration
  max_accuracy_drop: 0.02      # overall accuracy below the released version by more: review
  block_accuracy_drop: 0.10    # ... by more than this: block
  max_class_drop: 0.10         # one class's accuracy below the released version by more: review
  probe_review: 0.25           # a trigger turning this share of clean inputs to one label: review
  probe_block: 0.5             # ... a trigger the data gates found in this dataset's history: block
```

A model trained on several datasets is held to the strictest of their release policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from dataward.access.roles import Role, parse_role
from dataward.domain.errors import InputError

UNSAFE_CHOICES = ("flag", "refuse")
GATE_CHOICES = ("pass", "review")


def _share(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= float(value) <= 1:
        raise InputError(f"policy field release.{key} must be a number between 0 and 1, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ReleasePolicy:
    """What releasing a model trained on a dataset takes (see the module docstring)."""

    approvals: int = 1
    approver_roles: tuple[Role, ...] = (Role.APPROVER, Role.OWNER)
    require_gate: str = "pass"
    unsafe_artifacts: str = "flag"
    max_accuracy_drop: float = 0.02
    block_accuracy_drop: float = 0.10
    max_class_drop: float = 0.10
    probe_review: float = 0.25
    probe_block: float = 0.5

    KEYS = (
        "approvals",
        "approver_roles",
        "require_gate",
        "unsafe_artifacts",
        "max_accuracy_drop",
        "block_accuracy_drop",
        "max_class_drop",
        "probe_review",
        "probe_block",
    )

    @classmethod
    def from_dict(cls, data: Any) -> ReleasePolicy:
        """Validate a policy's ``release`` section (``None``: the defaults), naming the field at fault."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InputError(f"policy field release must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.KEYS))
        if unknown:
            raise InputError(f"unknown policy field release.{unknown[0]}", hint=f"known: {', '.join(cls.KEYS)}")
        d = cls()
        approvals = data.get("approvals", d.approvals)
        if isinstance(approvals, bool) or not isinstance(approvals, int) or not 0 <= approvals <= 10:
            raise InputError(f"policy field release.approvals must be a whole number 0-10, got {approvals!r}")
        roles = data.get("approver_roles", [r.value for r in d.approver_roles])
        if not isinstance(roles, list) or not roles:
            raise InputError("policy field release.approver_roles must be a non-empty list of roles")
        for key, choices, default in (
            ("require_gate", GATE_CHOICES, d.require_gate),
            ("unsafe_artifacts", UNSAFE_CHOICES, d.unsafe_artifacts),
        ):
            if data.get(key, default) not in choices:
                raise InputError(
                    f"policy field release.{key} must be one of {', '.join(choices)}, got {data.get(key)!r}"
                )
        return cls(
            approvals=approvals,
            approver_roles=tuple(dict.fromkeys(parse_role(r) for r in roles)),
            require_gate=data.get("require_gate", d.require_gate),
            unsafe_artifacts=data.get("unsafe_artifacts", d.unsafe_artifacts),
            max_accuracy_drop=_share(data, "max_accuracy_drop", d.max_accuracy_drop),
            block_accuracy_drop=_share(data, "block_accuracy_drop", d.block_accuracy_drop),
            max_class_drop=_share(data, "max_class_drop", d.max_class_drop),
            probe_review=_share(data, "probe_review", d.probe_review),
            probe_block=_share(data, "probe_block", d.probe_block),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["approver_roles"] = [r.value for r in self.approver_roles]
        return out

    def eligible_role(self, held: Iterable[Role]) -> Role | None:
        """The first approver role among ``held`` (admin counts as every role), or None."""
        held = set(held)
        if Role.ADMIN in held:
            return self.approver_roles[0]
        return next((r for r in self.approver_roles if r in held), None)

    @classmethod
    def strictest(cls, policies: Iterable[ReleasePolicy]) -> ReleasePolicy:
        """One policy at least as strict as each of ``policies`` (the defaults when there are none)."""
        policies = list(policies)
        if not policies:
            return cls()
        roles = set(policies[0].approver_roles)
        for p in policies[1:]:
            roles &= set(p.approver_roles)
        return cls(
            approvals=max(p.approvals for p in policies),
            approver_roles=tuple(r for r in policies[0].approver_roles if r in roles) or (Role.OWNER,),
            require_gate="pass" if any(p.require_gate == "pass" for p in policies) else "review",
            unsafe_artifacts="refuse" if any(p.unsafe_artifacts == "refuse" for p in policies) else "flag",
            max_accuracy_drop=min(p.max_accuracy_drop for p in policies),
            block_accuracy_drop=min(p.block_accuracy_drop for p in policies),
            max_class_drop=min(p.max_class_drop for p in policies),
            probe_review=min(p.probe_review for p in policies),
            probe_block=min(p.probe_block for p in policies),
        )

    def weakenings_from(self, before: ReleasePolicy) -> list[str]:
        """Every way this policy lets more models out than ``before`` (in words)."""
        out = []
        if self.approvals < before.approvals:
            out.append(f"release.approvals lowered from {before.approvals} to {self.approvals}")
        if set(self.approver_roles) - set(before.approver_roles):
            out.append("release.approver_roles widened")
        if self.require_gate == "review" and before.require_gate == "pass":
            out.append("release.require_gate lowered from pass to review")
        if self.unsafe_artifacts == "flag" and before.unsafe_artifacts == "refuse":
            out.append("release.unsafe_artifacts lowered from refuse to flag")
        for key in ("max_accuracy_drop", "block_accuracy_drop", "max_class_drop", "probe_review", "probe_block"):
            if getattr(self, key) > getattr(before, key):
                out.append(f"release.{key} raised from {getattr(before, key)} to {getattr(self, key)}")
        return out
