"""Dataset policy: how many approvals a contribution needs, from whom, and who may promote.

A policy is a small YAML document kept in the catalog; every change is a ledger event carrying its
:meth:`DatasetPolicy.hash`. Example (every key is optional; these are the defaults)::

    approvals:
      required: 1
      roles: [approver, owner]
    separation_of_duties: true
    promotion:
      roles: [promoter, owner]
      require_gate: review      # pass or review; a review verdict's flagged records were all
                                # decided by a reviewer before its merge. `pass` is stricter.
      require_approvals: true
    gate: {}                    # passed unchanged to the gate engine, which owns its schema
    keys: {}                    # tighter key rules for this dataset, e.g. {max_ttl_days: 30}
    first_import: validation    # or self-reference: how a contribution is judged before any
                                # version is in training (see FirstImport)

The evaluation functions take plain facts and return a
:class:`~dataward.access.authorize.Decision`; none of them touch storage.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from dataward.access.authorize import Decision, Principal, require_aware
from dataward.access.keys import KeyPolicy
from dataward.access.roles import Role
from dataward.access.sides import distinct_people, side_of
from dataward.domain.errors import InputError
from dataward.domain.hashing import json_hash
from dataward.domain.limits import MAX_JSON_DEPTH, signable
from dataward.domain.weakening import Weakening
from dataward.ledger.events import format_time


class GateRequirement(StrEnum):
    """The worst gate verdict a merged contribution may have for its version to be promoted."""

    PASS = "pass"
    REVIEW = "review"

    @property
    def accepted_verdicts(self) -> frozenset[str]:
        return frozenset({"pass"}) if self is GateRequirement.PASS else frozenset({"pass", "review"})


class FirstImport(StrEnum):
    """How the gate judges a contribution while the dataset has no ``training`` version.

    ``validation`` (the default): against the dataset's clean validation set, which stands in as the
    trusted baseline; with no validation set the gate refuses to run. ``self-reference``: the batch is
    judged only against itself (K-fold), which a heavily poisoned first batch passes; an explicit,
    recorded opt-in by the dataset's owner.
    """

    VALIDATION = "validation"
    SELF_REFERENCE = "self-reference"


def _where(path: str) -> str:
    return f"policy field {path!r}"


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{_where(path)} must be a mapping, got {type(value).__name__}")
    return value


def _only_keys(data: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    allowed = list(allowed)
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        where = "the policy" if not path else _where(path)
        raise InputError(f"unknown key(s) in {where}: {', '.join(unknown)}", hint=f"known keys: {', '.join(allowed)}")


_MAX_COUNT = 2**53 - 1
"""The largest count a policy holds: the ledger signs the policy as RFC 8785 JSON (``hashing.jcs``)."""


def _count(value: Any, path: str) -> int:
    # bool is an int in Python; `required: true` is a mistake, not the number 1.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise InputError(f"{_where(path)} must be a whole number from 0 to {_MAX_COUNT}, got {value!r}")
    return value


def _signable(section: dict[str, Any], path: str) -> dict[str, Any]:
    """``section`` when the ledger can sign it, as the ``policy.set`` event is (``limits.signable``)."""
    return signable(section, _where(path), verb="must hold")


def _plain_yaml(text: str) -> None:
    """Refuse (``InputError``, naming the line) a policy text holding a YAML anchor or alias, or nested
    deeper than ``MAX_JSON_DEPTH``, read from its event stream before anything is built from it.

    A policy has no use for aliases, and they make a few hundred bytes expand into billions of values
    (an "alias bomb") once loaded, hashed and signed; building the document also recurses once per level
    of nesting. The event stream is read by a state machine, in time linear in the text, so this check
    costs no more than the text's length whatever it holds."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark
            raise InputError(
                f"the policy holds a YAML anchor or alias (line {mark.line + 1}, column {mark.column + 1}): "
                "a policy may not use them",
                hint="write each setting out in full (no &anchor, *alias or << merge key)",
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                mark = event.start_mark
                raise InputError(
                    f"the policy is nested more than {MAX_JSON_DEPTH} levels deep at line {mark.line + 1}; "
                    f"the limit is {MAX_JSON_DEPTH} levels",
                    hint="a policy's settings need only a few levels of mappings and lists",
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


@functools.cache
def _unique_keys_loader() -> type:
    """yaml's safe loader refusing (``InputError``, naming the key and its lines) a mapping that gives a
    key twice, which ``safe_load`` takes silently, the last value winning: ``approvals: {required: 2}``
    then ``required: 1`` set one approval. Keys are compared as loaded (``1`` and ``true`` are one
    key in Python as they would be in the policy built)."""
    import yaml

    class UniqueKeysLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.setdefault(key, key_node)
                    except TypeError:  # not hashable: safe_load's own error names it
                        continue
                    if first is not key_node:
                        lines = sorted({first.start_mark.line + 1, key_node.start_mark.line + 1})
                        at = f"line {lines[0]}" if len(lines) == 1 else f"lines {lines[0]} and {lines[1]}"
                        raise InputError(
                            f"the policy gives {key!r} twice in one mapping ({at}): YAML readers keep one "
                            "of the values silently",
                            hint="give each setting once",
                        )
            return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]

    return UniqueKeysLoader


@functools.cache
def _no_alias_dumper() -> type:
    """yaml's safe dumper writing every value out in full (built on first use: yaml is imported only by
    what reads or writes policy text)."""
    import yaml

    class NoAliasDumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return NoAliasDumper


def _flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{_where(path)} must be true or false, got {value!r}")
    return value


def _roles(value: Any, path: str) -> tuple[Role, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise InputError(f"{_where(path)} must be a non-empty list of roles, got {value!r}")
    roles: list[Role] = []
    for item in value:
        try:
            role = Role(item)
        except ValueError:
            raise InputError(
                f"{_where(path)} names an unknown role {item!r}",
                hint=f"roles: {', '.join(r.value for r in Role)}",
            ) from None
        if role not in roles:
            roles.append(role)
    return tuple(roles)


@dataclass(frozen=True)
class ApprovalRule:
    required: int = 1
    roles: tuple[Role, ...] = (Role.APPROVER, Role.OWNER)

    def eligible_role(self, held: Iterable[Role]) -> Role | None:
        """The first policy role among ``held`` (admin counts as every role), or None."""
        held = set(held)
        if Role.ADMIN in held:
            return self.roles[0]
        return next((r for r in self.roles if r in held), None)

    def to_dict(self) -> dict[str, Any]:
        return {"required": self.required, "roles": [r.value for r in self.roles]}


@dataclass(frozen=True)
class PromotionRule:
    roles: tuple[Role, ...] = (Role.PROMOTER, Role.OWNER)
    # A review verdict is promotable by default: a merge needs every flagged record decided first.
    require_gate: GateRequirement = GateRequirement.REVIEW
    require_approvals: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "roles": [r.value for r in self.roles],
            "require_gate": self.require_gate.value,
            "require_approvals": self.require_approvals,
        }


@dataclass(frozen=True)
class DatasetPolicy:
    """A dataset's policy. Build it with :meth:`from_yaml` or :meth:`from_dict`; defaults are safe."""

    approvals: ApprovalRule = field(default_factory=ApprovalRule)
    separation_of_duties: bool = True
    promotion: PromotionRule = field(default_factory=PromotionRule)
    gate: Mapping[str, Any] = field(default_factory=dict)
    keys: Mapping[str, Any] = field(default_factory=dict)
    first_import: FirstImport = FirstImport.VALIDATION
    # The release policy of models trained on the dataset (``dataward.release.policy.ReleasePolicy``),
    # kept as written; it is left out of ``to_dict`` when empty, so policies written before it existed
    # keep their hash.
    release: Mapping[str, Any] = field(default_factory=dict)

    TOP_KEYS = ("approvals", "separation_of_duties", "promotion", "gate", "keys", "first_import", "release")

    @classmethod
    def from_yaml(cls, text: str, *, stored: bool = False) -> DatasetPolicy:
        """Parse a policy document with ``yaml.safe_load``; an empty document gives the defaults.

        A policy given by a caller is refused before it is built (``InputError``) when it holds YAML
        anchors or aliases, or nests deeper than ``MAX_JSON_DEPTH`` (see ``_plain_yaml``), and when a
        mapping of it gives a key twice (``_unique_keys_loader``). A ``stored``
        policy (the catalog's, written by :meth:`to_yaml`) is read as it is: one stored before that rule
        may hold an alias (a setting written once and referred to again), and must still be read."""
        import yaml  # here, not at import: a command that reads no policy text need not load it

        try:
            if not stored:
                _plain_yaml(text)
                data = yaml.load(text, Loader=_unique_keys_loader())
            else:
                data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise InputError(f"the policy is not valid YAML{where}: {problem}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> DatasetPolicy:
        """Validate a parsed policy, naming the field and the expected type on any mistake."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InputError(f"a policy must be a mapping of settings, got {type(data).__name__}")
        _only_keys(data, cls.TOP_KEYS, "")

        approvals_data = _mapping(data.get("approvals"), "approvals")
        _only_keys(approvals_data, ("required", "roles"), "approvals")
        default_approvals = ApprovalRule()
        approvals = ApprovalRule(
            required=_count(approvals_data.get("required", default_approvals.required), "approvals.required"),
            roles=_roles(approvals_data.get("roles", [r.value for r in default_approvals.roles]), "approvals.roles"),
        )

        promotion_data = _mapping(data.get("promotion"), "promotion")
        _only_keys(promotion_data, ("roles", "require_gate", "require_approvals"), "promotion")
        default_promotion = PromotionRule()
        gate_text = promotion_data.get("require_gate", default_promotion.require_gate.value)
        try:
            require_gate = GateRequirement(gate_text)
        except ValueError:
            raise InputError(
                f"{_where('promotion.require_gate')} must be 'pass' or 'review', got {gate_text!r}",
                hint="a blocked contribution can never be promoted",
            ) from None
        promotion = PromotionRule(
            roles=_roles(promotion_data.get("roles", [r.value for r in default_promotion.roles]), "promotion.roles"),
            require_gate=require_gate,
            require_approvals=_flag(
                promotion_data.get("require_approvals", default_promotion.require_approvals),
                "promotion.require_approvals",
            ),
        )

        gate = _signable(dict(_mapping(data.get("gate"), "gate")), "gate")

        keys = _signable(dict(_mapping(data.get("keys"), "keys")), "keys")
        KeyPolicy.from_dict(keys)  # validates names and values; kept as overrides

        first_text = data.get("first_import", FirstImport.VALIDATION.value)
        try:
            first_import = FirstImport(first_text)
        except ValueError:
            raise InputError(
                f"{_where('first_import')} must be 'validation' or 'self-reference', got {first_text!r}",
                hint="'validation' judges a first import against the clean validation set",
            ) from None

        from dataward.release.policy import ReleasePolicy

        release = _signable(dict(_mapping(data.get("release"), "release")), "release")
        ReleasePolicy.from_dict(release)  # validates names and values; kept as written

        return cls(
            approvals=approvals,
            separation_of_duties=_flag(data.get("separation_of_duties", True), "separation_of_duties"),
            promotion=promotion,
            gate=gate,
            keys=keys,
            first_import=first_import,
            release=release,
        )

    def to_dict(self) -> dict[str, Any]:
        """The complete, normalized policy (defaults filled in)."""
        return {
            "approvals": self.approvals.to_dict(),
            "separation_of_duties": self.separation_of_duties,
            "promotion": self.promotion.to_dict(),
            "gate": dict(self.gate),
            "keys": dict(self.keys),
            "first_import": self.first_import.value,
            **({"release": dict(self.release)} if self.release else {}),
        }

    def to_yaml(self) -> str:
        import yaml

        # Every setting written out in full: the dumper would otherwise write a list met twice as an
        # anchor and an alias, which a policy given back as input may not hold.
        return yaml.dump(self.to_dict(), Dumper=_no_alias_dumper(), sort_keys=False)

    def hash(self) -> str:
        """Content hash of the normalized policy: equal policies hash equal whatever their spelling."""
        return json_hash(self.to_dict())

    def weakenings_from(self, before: DatasetPolicy) -> list[Weakening]:
        """Every way this policy, outside its ``gate`` section, lets more through than ``before``.

        Fewer approvals or approvals from more roles, separation of duties off, promotion by more roles,
        on a weaker gate verdict or without approvals, a first import judged against itself, and key
        rules looser than before (the ward's defaults count as "before" for a dataset with no policy).
        The ``gate`` section is compared by :meth:`dataward.gates.policy.GatePolicy.weakenings_from`.
        """
        found: list[Weakening] = []
        if self.approvals.required < before.approvals.required:
            found.append(
                Weakening(
                    "approvals.required",
                    before.approvals.required,
                    self.approvals.required,
                    f"needs {self.approvals.required} approval(s) instead of {before.approvals.required}",
                )
            )
        for path, old_roles, new_roles, verb in (
            ("approvals.roles", before.approvals.roles, self.approvals.roles, "approve"),
            ("promotion.roles", before.promotion.roles, self.promotion.roles, "promote"),
        ):
            added = [r.value for r in new_roles if r not in old_roles]
            if added:
                found.append(
                    Weakening(
                        path,
                        [r.value for r in old_roles],
                        [r.value for r in new_roles],
                        f"lets {', '.join(added)} {verb}",
                    )
                )
        if before.separation_of_duties and not self.separation_of_duties:
            found.append(Weakening("separation_of_duties", True, False, "turns off separation of duties"))
        was_pass = before.promotion.require_gate is GateRequirement.PASS
        if was_pass and self.promotion.require_gate is not GateRequirement.PASS:
            found.append(
                Weakening(
                    "promotion.require_gate",
                    before.promotion.require_gate.value,
                    self.promotion.require_gate.value,
                    "promotes versions holding contributions the gate sent to review",
                )
            )
        if before.promotion.require_approvals and not self.promotion.require_approvals:
            found.append(Weakening("promotion.require_approvals", True, False, "promotes without approvals"))
        if before.first_import is FirstImport.VALIDATION and self.first_import is not FirstImport.VALIDATION:
            found.append(
                Weakening(
                    "first_import",
                    before.first_import.value,
                    self.first_import.value,
                    "judges a first import only against itself, which a heavily poisoned first batch passes",
                )
            )
        found += _key_weakenings(KeyPolicy.from_dict(before.keys), KeyPolicy.from_dict(self.keys))
        from dataward.release.policy import ReleasePolicy

        old_release, new_release = ReleasePolicy.from_dict(before.release), ReleasePolicy.from_dict(self.release)
        found += [
            Weakening("release", old_release.to_dict(), new_release.to_dict(), what)
            for what in new_release.weakenings_from(old_release)
        ]
        return found

    def key_policy(self, ward: KeyPolicy) -> KeyPolicy:
        """The ward's key policy tightened by this policy's ``keys`` overrides.

        A dataset can make keys shorter-lived or rotated sooner, never the reverse. Its
        ``allow_self_issued_keys``, when set, decides for keys scoped to this dataset (setting it
        to true is a weakening only an admin may make).
        """
        own = KeyPolicy.from_dict(self.keys, base=ward)
        return replace(ward.tightened_by(own), allow_self_issued_keys=own.allow_self_issued_keys)


def _key_weakenings(before: KeyPolicy, after: KeyPolicy) -> list[Weakening]:
    """Key rules of ``after`` looser than ``before``: wherever the stricter of the two is not ``after``'s."""
    found: list[Weakening] = []
    stricter = before.tightened_by(after)
    for name, value in after.to_dict().items():
        if name == "allow_self_issued_keys":
            if value and not before.allow_self_issued_keys:
                found.append(
                    Weakening("keys.allow_self_issued_keys", False, True, "lets service principals mint their own keys")
                )
        elif getattr(stricter, name) != value:
            found.append(Weakening(f"keys.{name}", getattr(before, name), value, f"key rule {name} loosened"))
    return found


@dataclass(frozen=True)
class Approval:
    """One approval, bound to the content hash it was given for: of a contribution (its content hash)
    or, with ``on="version"``, of a whole version (its manifest digest)."""

    approver_id: str
    content_hash: str
    role: Role
    reason: str
    decided_at: datetime
    on: str = "contribution"
    void: str | None = None
    """Why it no longer counts whatever else holds, from the signed ledger: its approver was disabled
    or its key revoked since it was given (``dataward.access.standing``). None while both stand."""
    answered_by: frozenset[str] = frozenset()
    """Other humans who answer for it besides its approver's owner now: when a bot approved and was handed
    on since, or approved with a key issued before it was, its owners while that key was live (up to the
    approval). A bot and its owner are one approver: what it approved for one owner does not become a
    second person's word once it answers to another."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise InputError("an approval needs a reason", hint="say what was checked, e.g. --reason '...'")
        require_aware(self.decided_at, "decided_at")

    def to_dict(self) -> dict[str, Any]:
        return {
            "approver_id": self.approver_id,
            "content_hash": self.content_hash,
            "role": self.role.value,
            "reason": self.reason,
            "decided_at": format_time(self.decided_at),
            "on": self.on,
            **({"void": self.void} if self.void is not None else {}),
        }


_NOT_COUNTED = {
    "voided": "approve again with a key that still stands, or have another approver approve",
    "stale": "it was given for other content than the current one: approve again",
    "ineligible": "it came from a role the policy does not accept",
    "conflicted": "separation of duties: the approver is on the side of whoever submitted the contribution or "
    "made the version",
    "repeated": "that approver (or their bot or human) already counts once for this contribution, and each person "
    "counts once: another person must approve",
}
"""Why an approval of each kind does not count, as ``ApprovalStatus.summary`` says it."""


@dataclass(frozen=True)
class ApprovalStatus:
    """How a contribution's approvals count against the policy.

    ``counted``: valid approvals (current content, eligible role, distinct approvers, no conflict).
    ``voided``: given by an approver disabled since, or with a key revoked since (``Approval.void``).
    ``stale``: given for an earlier content hash. ``ineligible``: from a role the policy does not
    accept. ``conflicted``: refused by separation of duties. ``repeated``: a second approval by
    someone already counted.
    """

    required: int
    content_hash: str
    counted: tuple[Approval, ...]
    stale: tuple[Approval, ...]
    ineligible: tuple[Approval, ...]
    conflicted: tuple[Approval, ...]
    repeated: tuple[Approval, ...]
    names: Mapping[str, str] = field(default_factory=dict)
    """Principal id -> name, for the summary (ids are shown for approvers not in it)."""
    voided: tuple[Approval, ...] = ()

    @property
    def satisfied(self) -> bool:
        return len(self.counted) >= self.required

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.counted))

    def summary(self) -> str:
        """``"1 of 2 valid approval(s), 1 repeated (not counted: ...)"``: each approval that does not count
        is named, with its approver, what it approved and why it does not count."""
        parts = [f"{len(self.counted)} of {self.required} valid approval(s)"]
        if self.voided:
            # Each says its own reason: which approver was disabled, or which key was revoked.
            named = ", ".join(f"{self._named(a)}: {a.void}" for a in self.voided)
            parts.append(f"{len(self.voided)} voided (not counted: {named}; {_NOT_COUNTED['voided']})")
        for name in ("stale", "ineligible", "conflicted", "repeated"):
            found: tuple[Approval, ...] = getattr(self, name)
            if found:
                named = ", ".join(self._named(a) for a in found)
                parts.append(f"{len(found)} {name} (not counted: {named}; {_NOT_COUNTED[name]})")
        return ", ".join(parts)

    def _named(self, approval: Approval) -> str:
        who = self.names.get(approval.approver_id, approval.approver_id)
        return f"{who}'s approval of the {'version' if approval.on == 'version' else 'contribution'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "required": self.required,
            "content_hash": self.content_hash,
            "satisfied": self.satisfied,
            "missing": self.missing,
            **{
                name: [a.to_dict() for a in getattr(self, name)]
                for name in ("counted", "voided", "stale", "ineligible", "conflicted", "repeated")
            },
        }


def separation_problem(
    approver: Principal,
    submitter_id: str,
    submitter_owner_id: str | None,
    *,
    verb: str = "approve it",
    work: str = "this contribution",
    made: str = "submitted",
    current_owner_id: str | None = None,
    earlier_owners: Collection[str] = (),
    acting_owners: Collection[str] = (),
) -> str | None:
    """Why ``approver`` may not approve (or review, or override) work by ``submitter_id`` (whose
    accountable owner is ``submitter_owner_id``), or None: their own work, their bot's, or their own
    human's. ``verb`` names the act in the message, ``work`` the work and ``made`` how it was made.

    ``current_owner_id`` is the bot's owner now, when it was handed to someone else since: the owner
    then and the owner now are both the bot's side (a bot handed to a colleague must not let the
    colleague approve what it submitted before). ``earlier_owners`` are the owners it had while the key
    it acted with was live, before the act (``OwnerHistory.owners_while``): a key issued for the bot keeps
    working when it is handed on, and whoever owned it then may hold that key and act as the bot.
    ``acting_owners`` is the same for the approver, when it is a bot acting with such a key: the humans
    who owned it while that key was live, besides its owner now (``bot_owners.acting_earlier_owners``)."""
    owners = {o for o in (submitter_owner_id, current_owner_id) if o is not None}
    if approver.id == submitter_id:
        return f"{approver.name!r} {made} {work} and may not {verb}"
    if approver.id == (current_owner_id or submitter_owner_id):
        return f"{approver.name!r} owns the service principal that {made} {work}"
    if approver.id in owners:
        return f"{approver.name!r} owned the service principal that {made} {work} when it was {made}"
    if approver.id in earlier_owners:
        return (
            f"{approver.name!r} owned the service principal that {made} {work} while the key it {made} with was "
            "live (a key issued for it before it was handed on, which its former owner may hold)"
        )
    if approver.owner_id is not None and approver.owner_id in {submitter_id, *owners, *earlier_owners}:
        return f"{approver.name!r} is a service principal of the same human who is accountable for {work}"
    if set(acting_owners) & {submitter_id, *owners, *earlier_owners}:
        return (
            f"{approver.name!r} acts with a key issued before it was handed on, while it was owned by the human "
            f"accountable for {work} (who may still hold that key)"
        )
    return None


def check_approval(
    policy: DatasetPolicy,
    approver: Principal,
    submitter_id: str,
    submitter_owner_id: str | None,
    approver_roles: Iterable[Role],
    current_owner_id: str | None = None,
    earlier_owners: Collection[str] = (),
    acting_owners: Collection[str] = (),
) -> Decision:
    """May ``approver`` approve a contribution submitted by ``submitter_id``?

    ``submitter_owner_id`` is the owner when the submitter is a service principal (as it was at
    submission), ``current_owner_id`` its owner now, ``earlier_owners`` its owners while the submitting key
    was live (:func:`separation_problem`): none may approve.
    ``approver_roles`` are the approver's roles on the dataset
    (:func:`~dataward.access.authorize.roles_on`). With separation of duties on, nobody approves
    their own contribution, one from a bot they own, or (as a bot) one its own human is
    accountable for.
    """
    base = {"action": "contribution.approve", "principal_id": approver.id}
    if not approver.is_active:
        return Decision(False, f"principal {approver.name!r} is {approver.status.value}", **base)
    if policy.separation_of_duties:
        problem = separation_problem(
            approver,
            submitter_id,
            submitter_owner_id,
            current_owner_id=current_owner_id,
            earlier_owners=earlier_owners,
            acting_owners=acting_owners,
        )
        if problem is not None:
            return Decision(
                False,
                f"separation of duties: {problem}",
                hint="another approver must approve it",
                problems=(problem,),
                **base,
            )
    role = policy.approvals.eligible_role(approver_roles)
    if role is None:
        needed = ", ".join(r.value for r in policy.approvals.roles)
        return Decision(
            False,
            f"{approver.name!r} cannot approve: the policy accepts approvals from {needed}",
            hint=f"ask an owner of the dataset to grant one of: {needed}",
            **base,
        )
    return Decision(True, f"{approver.name!r} may approve as {role.value}", **base)


def check_version_approval(
    policy: DatasetPolicy,
    approver: Principal,
    contributions: Iterable[ContributionFacts],
    approver_roles: Iterable[Role],
    *,
    made_by: str | None = None,
    made_by_owner: str | None = None,
    acting_owners: Collection[str] = (),
    made_by_current_owner: str | None = None,
    made_by_earlier: Collection[str] = (),
) -> Decision:
    """May ``approver`` approve a version holding ``contributions`` as a whole?

    As :func:`check_approval` for each contribution the version holds: with separation of duties on,
    nobody approves a version holding their own contribution, their bot's, or (as a bot) one its own
    human is accountable for; every such contribution is named. Nor the version they made (merged):
    ``made_by``, whose accountable owner is ``made_by_owner`` when a service principal made it (its owner
    then), ``made_by_current_owner`` its owner now when it was handed on since, and ``made_by_earlier`` its
    owners while the key it made the version with was live (:func:`separation_problem`).
    """
    base = {"action": "contribution.approve", "principal_id": approver.id}
    if not approver.is_active:
        return Decision(False, f"principal {approver.name!r} is {approver.status.value}", **base)
    held = list(approver_roles)
    problems: list[str] = []
    if policy.separation_of_duties and made_by is not None:
        own = separation_problem(
            approver,
            made_by,
            made_by_owner,
            work="this version",
            made="made",
            current_owner_id=made_by_current_owner,
            earlier_owners=made_by_earlier,
            acting_owners=acting_owners,
        )
        if own is not None:
            problems.append(own)
    for c in contributions:
        decision = check_contribution_approval(policy, approver, c, held, acting_owners)
        if decision.allowed:
            continue
        if not decision.problems:  # not about separation of duties: the same for every contribution
            return decision
        problems.append(f"{c.contribution_id}: {decision.problems[0]}")
    if problems:
        return Decision(
            False,
            "separation of duties: the version holds work of the approver's own side (" + "; ".join(problems) + ")",
            hint="another approver must approve the version, or approve its other contributions one by one",
            problems=tuple(problems),
            **base,
        )
    role = policy.approvals.eligible_role(held)
    if role is None:
        needed = ", ".join(r.value for r in policy.approvals.roles)
        return Decision(
            False,
            f"{approver.name!r} cannot approve: the policy accepts approvals from {needed}",
            hint=f"ask an owner of the dataset to grant one of: {needed}",
            **base,
        )
    return Decision(True, f"{approver.name!r} may approve the version as {role.value}", **base)


def approvals_status(
    policy: DatasetPolicy,
    content_hash: str,
    approvals: Iterable[Approval],
    *,
    submitter_id: str | None = None,
    submitter_owner_id: str | None = None,
    principals: Mapping[str, Principal] | None = None,
    version_hash: str | None = None,
    version_approvals: Iterable[Approval] = (),
    version_made_by: str | None = None,
    version_made_by_owner: str | None = None,
    submitter_current_owner_id: str | None = None,
    submitter_earlier_owners: Collection[str] = (),
    version_made_by_current_owner: str | None = None,
    version_made_by_earlier: Collection[str] = (),
) -> ApprovalStatus:
    """Count the approvals that hold for the contribution's *current* ``content_hash``.

    An approval whose ``void`` is set (its approver disabled or its key revoked since) never counts.
    Otherwise only approvals for that hash, from a role the policy accepts, by distinct approvers count; given
    ``principals``, a service principal and its owning human are one approver.
    When ``submitter_id`` is given and separation of duties is on, approvals by the submitter or
    its owner (and, given ``principals``, by bots of the same owner) are listed as conflicted, so a
    record written before the rule existed still cannot count; so are approvals by the bot's owner now
    (``submitter_current_owner_id``), when it was handed to someone else since the submission, and by its
    owners while the submitting key was live (``submitter_earlier_owners``).

    ``version_approvals`` are approvals of the version holding the contribution: each counts for it
    as one more approval when it was given for ``version_hash`` (the manifest digest of the version
    being promoted), under the same rules; one given for another version is stale, and one by the
    side that made the version (``version_made_by``, its owner then and now, and its owners while the key
    it made the version with was live) is conflicted.
    """
    eligible: list[Approval] = []
    voided: list[Approval] = []
    stale: list[Approval] = []
    ineligible: list[Approval] = []
    conflicted: list[Approval] = []
    accepted = set(policy.approvals.roles) | {Role.ADMIN}
    bound = [(a, content_hash) for a in approvals] + [(a, version_hash) for a in version_approvals]
    for approval, expected in sorted(bound, key=lambda pair: pair[0].decided_at):
        if approval.void is not None:
            # First: whatever else holds, nobody answers for it any more (docs/access.md, "Approvals").
            voided.append(approval)
        elif expected is None or approval.content_hash != expected:
            stale.append(approval)
        elif approval.role not in accepted:
            ineligible.append(approval)
        elif policy.separation_of_duties and (
            (
                submitter_id is not None
                and _conflicts(
                    approval.approver_id,
                    submitter_id,
                    submitter_owner_id,
                    principals,
                    submitter_current_owner_id,
                    submitter_earlier_owners,
                    approval.answered_by,
                )
            )
            or (
                approval.on == "version"
                and version_made_by is not None
                and _conflicts(
                    approval.approver_id,
                    version_made_by,
                    version_made_by_owner,
                    principals,
                    version_made_by_current_owner,
                    version_made_by_earlier,
                    approval.answered_by,
                )
            )
        ):
            conflicted.append(approval)
        else:
            eligible.append(approval)
    # Each person counts once; a bot handed on answers for every owner it had while its key was live.
    answering = [{_answerer(a.approver_id, principals), *a.answered_by} for a in eligible]
    chosen = distinct_people(answering)
    counted = [a for i, a in enumerate(eligible) if i in chosen]
    repeated = [a for i, a in enumerate(eligible) if i not in chosen]
    return ApprovalStatus(
        required=policy.approvals.required,
        content_hash=content_hash,
        counted=tuple(counted),
        stale=tuple(stale),
        ineligible=tuple(ineligible),
        conflicted=tuple(conflicted),
        repeated=tuple(repeated),
        names={pid: p.name for pid, p in (principals or {}).items()},
        voided=tuple(voided),
    )


def _answerer(approver_id: str, principals: Mapping[str, Principal] | None) -> str:
    """The human who answers for an approval: a bot and its owner are one approver, so that a policy
    asking for two approvals gets two people, not one person and their bot."""
    approver = None if principals is None else principals.get(approver_id)
    return approver_id if approver is None else (approver.owner_id or approver.id)


def _conflicts(
    approver_id: str,
    submitter_id: str,
    submitter_owner_id: str | None,
    principals: Mapping[str, Principal] | None,
    current_owner_id: str | None = None,
    earlier_owners: Collection[str] = (),
    answered_by: Collection[str] = (),
) -> bool:
    side = side_of(submitter_id, submitter_owner_id, current_owner_id, earlier_owners)
    # A bot handed on answers for its owners while the key it approved with was live (``answered_by``).
    if approver_id in side or side & set(answered_by):
        return True
    approver = None if principals is None else principals.get(approver_id)
    return approver is not None and approver.owner_id is not None and approver.owner_id in side


@dataclass(frozen=True)
class ContributionFacts:
    """What promotion needs to know about one contribution merged into the version."""

    contribution_id: str
    content_hash: str
    submitter_id: str
    submitter_owner_id: str | None
    approvals: tuple[Approval, ...]
    gate_verdict: str | None  # pass, review, block; None when no gate ran
    submitter_current_owner_id: str | None = None
    """The submitting bot's owner now, when it was handed to someone else since the submission."""
    submitter_earlier_owners: frozenset[str] = frozenset()
    """The submitting bot's owners while the key it submitted with was live, before the submission."""


def check_contribution_approval(
    policy: DatasetPolicy,
    approver: Principal,
    c: ContributionFacts,
    approver_roles: Iterable[Role],
    acting_owners: Collection[str] = (),
) -> Decision:
    """:func:`check_approval` of the contribution ``c`` (its submitter's whole side, as its facts hold it)."""
    return check_approval(
        policy,
        approver,
        c.submitter_id,
        c.submitter_owner_id,
        approver_roles,
        c.submitter_current_owner_id,
        c.submitter_earlier_owners,
        acting_owners,
    )


@dataclass(frozen=True)
class PromotionFacts:
    """A request to promote ``version_id`` of ``dataset`` to ``training``."""

    dataset: str
    version_id: str
    promoter: Principal
    promoter_roles: frozenset[Role]
    contributions: tuple[ContributionFacts, ...]
    principals: Mapping[str, Principal] | None = None
    version_hash: str | None = None
    """The manifest digest of the version: what approvals of the version as a whole are bound to."""
    version_approvals: tuple[Approval, ...] = ()
    version_made_by: str | None = None
    """Who made (merged) the version, and its accountable owner: their approvals of it never count."""
    version_made_by_owner: str | None = None
    version_made_by_current_owner: str | None = None
    """The maker's owner now, when it was handed on since the version was made."""
    version_made_by_earlier: frozenset[str] = frozenset()
    """The maker's owners while the key it made the version with was live, besides the two above."""


def can_promote(policy: DatasetPolicy, facts: PromotionFacts) -> Decision:
    """May this version move to ``training``? Every problem is listed, not just the first.

    Requires a promoter role from the policy, a gate verdict the policy accepts on every merged
    contribution, and (when the policy asks) enough valid approvals on each: approvals of the
    contribution bound to its current content hash, plus approvals of this version as a whole bound
    to its manifest digest (``facts.version_hash``), by distinct approvers, neither from the
    contribution's own side (separation of duties).
    """
    base = {"action": "version.promote", "principal_id": facts.promoter.id}
    problems: list[str] = []
    if not facts.promoter.is_active:
        problems.append(f"principal {facts.promoter.name!r} is {facts.promoter.status.value}")
    held = set(facts.promoter_roles)
    if Role.ADMIN not in held and not held & set(policy.promotion.roles):
        needed = ", ".join(r.value for r in policy.promotion.roles)
        problems.append(f"{facts.promoter.name!r} needs one of the roles {needed} to promote {facts.dataset}")
    accepted = policy.promotion.require_gate.accepted_verdicts
    for c in facts.contributions:
        if c.gate_verdict is None:
            problems.append(f"contribution {c.contribution_id} has no gate verdict")
        elif c.gate_verdict not in accepted:
            problems.append(
                f"contribution {c.contribution_id} has gate verdict {c.gate_verdict!r}; the policy "
                f"accepts {' or '.join(sorted(accepted))}"
            )
        if policy.promotion.require_approvals:
            status = approvals_status(
                policy,
                c.content_hash,
                c.approvals,
                submitter_id=c.submitter_id,
                submitter_owner_id=c.submitter_owner_id,
                principals=facts.principals,
                version_hash=facts.version_hash,
                version_approvals=facts.version_approvals,
                version_made_by=facts.version_made_by,
                version_made_by_owner=facts.version_made_by_owner,
                version_made_by_current_owner=facts.version_made_by_current_owner,
                version_made_by_earlier=facts.version_made_by_earlier,
                submitter_current_owner_id=c.submitter_current_owner_id,
                submitter_earlier_owners=c.submitter_earlier_owners,
            )
            if not status.satisfied:
                problems.append(f"contribution {c.contribution_id} has {status.summary()}")
    if problems:
        return Decision(
            False,
            f"version {facts.version_id} of {facts.dataset} cannot be promoted: " + "; ".join(problems),
            hint="resolve each problem listed, then promote again",
            problems=tuple(problems),
            **base,
        )
    return Decision(True, f"version {facts.version_id} of {facts.dataset} meets the policy", **base)
