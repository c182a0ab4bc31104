"""Access control and identity lifecycle: who may do what, with which key, under which policy.

Pure domain logic: no database, no HTTP, no clock. The service loads principals, keys, grants and
policies from the catalog, passes them in with ``now`` (a timezone-aware UTC datetime), and acts
on what comes back; it records every refusal as an ``access.denied`` ledger event using
:meth:`Decision.to_dict`.

Authorization (:mod:`.roles`, :mod:`.authorize`)
    ``authorize(principal, key, grants, action, scope, now) -> Decision``: deny by default. One
    table, :data:`PERMISSIONS`, maps every :class:`Action` to the :class:`Role` s that allow it and
    the :class:`ScopeKind` s it applies to. ``admin`` (a ward-only role) allows everything; a grant
    on the ward covers every dataset and model; a grant on one dataset covers only that dataset.
    A key's scopes (roles, actions, resources) can only narrow. ``authorize_grant`` adds that only
    an admin hands out ``admin``; ``validate_key_scopes`` refuses key scopes wider than the
    principal's roles; ``authorize_key_action`` lets principals manage their own and their
    services' keys (a narrowed key never mints a wider one); ``authorize_withdraw`` limits
    contributors to withdrawing their own contributions; ``roles_on`` lists a principal's roles
    on a scope.

Keys (:mod:`.keys`)
    ``generate_key(principal_id, now=, ttl=, policy=, scopes=) -> (plaintext, ApiKey)``: keys read
    ``dw_<8-char id>_<52-char secret>`` and are stored as a salted HMAC-SHA256. ``parse_key``,
    ``check_key(record, plaintext, principal, now)`` (raises AuthenticationError, KeyRevoked,
    KeyExpired or PrincipalSuspended), ``touch``, ``revoke``, and
    ``rotate(old, now, overlap) -> (plaintext, new, updated_old)``. :class:`KeyPolicy` sets the
    maximum and default lifetimes, the rotation age, the review thresholds and whether service
    principals may mint their own keys. Lineage: a key minted with another (``generate_key(...,
    parent=)``) is never wider (``check_within``), never outlives it (``bound_expiry``) and is
    revoked with it (``descendants`` lists every key minted through a key, transitively).

Dataset policy (:mod:`.policy`)
    :class:`DatasetPolicy` (``from_yaml``, ``to_yaml``, ``hash``, ``weakenings_from``);
    ``check_approval`` and ``check_version_approval`` (separation of
    duties and approver roles), ``approvals_status`` (only approvals bound to the current content
    hash count), ``can_promote`` (roles, gate verdicts and approvals of every merged contribution).

Lifecycle (:mod:`.lifecycle`)
    ``offboard(human, principals, keys, transfer_to=None, now=) -> OffboardPlan``: disable a human,
    suspend (or hand over) the service principals they own and revoke the keys that must die.

Access review (:mod:`.review`)
    ``access_review(principals, keys, grants, datasets_in_training, key_policy, now, ...)`` lists
    expiring, old and unused keys, orphaned service principals, write access to training datasets
    and recent grants, every block override and every dataset whose gate is weaker than the ward's
    defaults (``weak_gates``), each with the action to take.
"""

from dataward.access.authorize import (
    ApiKey,
    Decision,
    Grant,
    KeyScopes,
    Principal,
    PrincipalKind,
    PrincipalStatus,
    authorize,
    authorize_grant,
    authorize_hand_over,
    authorize_key_action,
    authorize_withdraw,
    grants_of,
    roles_on,
    validate_key_scopes,
)
from dataward.access.keys import (
    DEFAULT_KEY_POLICY,
    FULL_KEY_SHAPE,
    KEY_PREFIX,
    KeyPolicy,
    ParsedKey,
    bound_expiry,
    check_key,
    check_secret,
    check_usable,
    check_within,
    descendants,
    ended_with,
    generate_key,
    hash_secret,
    parse_key,
    revoke,
    rotate,
    touch,
    verify_secret,
    without_secret,
)
from dataward.access.lifecycle import (
    OffboardPlan,
    check_can_receive,
    check_new_owner,
    offboard,
    reinstate,
    transfer_ownership,
)
from dataward.access.overrides import BlockOverride, accountable_human, check_override
from dataward.access.policy import (
    Approval,
    ApprovalRule,
    ApprovalStatus,
    ContributionFacts,
    DatasetPolicy,
    FirstImport,
    GateRequirement,
    PromotionFacts,
    PromotionRule,
    approvals_status,
    can_promote,
    check_approval,
    check_version_approval,
)
from dataward.access.review import (
    Enabling,
    FindingKind,
    ReviewFinding,
    Severity,
    ValidationChange,
    WeakGate,
    access_review,
)
from dataward.access.roles import (
    PERMISSIONS,
    WRITE_ACTIONS,
    Action,
    Permission,
    Role,
    Scope,
    ScopeKind,
    parse_action,
    parse_role,
    permission_rows,
    role_actions,
    role_covers,
    roles_allowing,
)

__all__ = [
    "DEFAULT_KEY_POLICY",
    "FULL_KEY_SHAPE",
    "KEY_PREFIX",
    "PERMISSIONS",
    "WRITE_ACTIONS",
    "Action",
    "ApiKey",
    "Approval",
    "ApprovalRule",
    "ApprovalStatus",
    "BlockOverride",
    "ContributionFacts",
    "DatasetPolicy",
    "Decision",
    "Enabling",
    "FindingKind",
    "FirstImport",
    "GateRequirement",
    "Grant",
    "KeyPolicy",
    "KeyScopes",
    "OffboardPlan",
    "ParsedKey",
    "Permission",
    "Principal",
    "PrincipalKind",
    "PrincipalStatus",
    "PromotionFacts",
    "PromotionRule",
    "ReviewFinding",
    "Role",
    "Scope",
    "ScopeKind",
    "Severity",
    "ValidationChange",
    "WeakGate",
    "access_review",
    "accountable_human",
    "approvals_status",
    "authorize",
    "authorize_grant",
    "authorize_hand_over",
    "authorize_key_action",
    "authorize_withdraw",
    "bound_expiry",
    "can_promote",
    "check_approval",
    "check_can_receive",
    "check_key",
    "check_new_owner",
    "check_override",
    "check_secret",
    "check_usable",
    "check_version_approval",
    "check_within",
    "descendants",
    "ended_with",
    "generate_key",
    "grants_of",
    "hash_secret",
    "offboard",
    "parse_action",
    "parse_key",
    "parse_role",
    "permission_rows",
    "reinstate",
    "revoke",
    "role_actions",
    "role_covers",
    "roles_allowing",
    "roles_on",
    "rotate",
    "touch",
    "transfer_ownership",
    "validate_key_scopes",
    "verify_secret",
    "without_secret",
]
