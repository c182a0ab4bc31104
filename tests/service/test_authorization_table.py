"""Every service use case is authorized against the action the access table names for it.

One table ties each ``Ward`` method to its ``Action``; for every role granted on the dataset, the
use case must be refused (``AccessDenied``, not some later error) exactly when the access table says
so. A new use case without a row here is not checked, so add one with every new method.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataward.access.roles import PERMISSIONS, Action, Role
from dataward.domain.errors import AccessDenied, DatawardError
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import LIGHT_GATE_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv

UseCase = Callable[[Ward, Path], Any]

USE_CASES: list[tuple[str, Action, UseCase]] = [
    ("versions", Action.DATASET_READ, lambda w, d: w.versions("ds")),
    ("review list", Action.DATASET_READ, lambda w, d: w.review_list("ds")),
    ("policy show", Action.DATASET_READ, lambda w, d: w.policy("ds")),
    ("dataset info", Action.DATASET_READ, lambda w, d: w.dataset_info("ds")),
    ("export", Action.DATASET_EXPORT, lambda w, d: w.export("ds@v1", d / "out.parquet")),
    ("contribute", Action.CONTRIBUTION_SUBMIT, lambda w, d: w.contribute("ds", d / "b.csv", source="s")),
    ("gate run", Action.GATE_RUN, lambda w, d: w.run_gate("ds#2")),
    ("gate override", Action.GATE_OVERRIDE, lambda w, d: w.override_block("ds#2", reason="r")),
    (
        "review decide",
        Action.REVIEW_DECIDE,
        lambda w, d: w.review_decide([(d / "item").read_text()], "accept", reason="r"),
    ),
    ("approve", Action.CONTRIBUTION_APPROVE, lambda w, d: w.approve("ds#2", reason="r")),
    ("reject", Action.CONTRIBUTION_REJECT, lambda w, d: w.reject("ds#2", reason="r")),
    ("merge", Action.CONTRIBUTION_MERGE, lambda w, d: w.merge("ds#2")),
    ("promote", Action.VERSION_PROMOTE, lambda w, d: w.promote("ds@v1")),
    ("retire", Action.VERSION_RETIRE, lambda w, d: w.promote("ds@v1", stage="retired")),
    ("policy set", Action.POLICY_SET, lambda w, d: w.set_policy("ds", LIGHT_GATE_POLICY)),
    ("validation write", Action.VALIDATION_WRITE, lambda w, d: w.contribute("ds-val", d / "b.csv", source="s")),
    ("quarantine", Action.QUARANTINE, lambda w, d: w.quarantine_contribution("ds#2", reason="r")),
    ("trace", Action.TRACE, lambda w, d: w.trace("ds@v1")),
    ("enable principal", Action.PRINCIPAL_ENABLE, lambda w, d: w.enable_principal("approver")),
    ("create dataset", Action.DATASET_CREATE, lambda w, d: w.create_dataset("new", Schema.parse("y", ["x:text"]))),
]

ROLES = [r for r in Role if r is not Role.ADMIN]


@pytest.fixture(scope="module")
def wards(tmp_path_factory: pytest.TempPathFactory) -> dict[Role, tuple[Ward, Path]]:
    """One ward per role, where principal `p` holds exactly that role on dataset `ds`."""
    out = {}
    label, specs = wine_schema_specs()
    for role in ROLES:
        root = tmp_path_factory.mktemp(role.value)
        admin, _ = Ward.init(root / "ward")
        admin.create_dataset("ds", Schema.parse(label, specs))
        admin.create_dataset("ds-val", Schema.parse(label, specs), validation_for="ds")
        # The first import is judged against the clean validation set. A trusted record's inputs under
        # another label, at a permissive alpha (78 trusted records cannot resolve 1%), give the queue an item.
        admin.set_policy("ds", "gate:\n  detectors: [duplicates]\n  alpha: 0.2\n  flag_fdr: null\n")
        trusted = wine_rows(100, 178, shuffled=True)
        admin.merge(admin.contribute("ds-val", write_csv(root / "v.csv", trusted), source="curated")["ref"])
        batch = wine_rows(0, 30, shuffled=True)
        batch.append({**trusted[0], "cultivar": (int(trusted[0]["cultivar"]) + 1) % 3})
        first = admin.contribute("ds", write_csv(root / "a.csv", batch), source="a")
        admin.create_principal("approver")
        admin.grant("approver", "approver", "dataset:ds")
        admin.as_key(admin.issue_key("approver")["key"]).approve(first["ref"], reason="checked")
        merge_reviewed(admin, first["ref"])
        items = admin.review_list("ds", status="all")
        assert items, "the fixture needs one decided review item"
        (root / "item").write_text(items[0]["id"])
        admin.contribute("ds", write_csv(root / "b.csv", wine_rows(30, 60, shuffled=True)), source="b", gate=False)
        admin.create_principal("p")
        admin.grant("p", role.value, "dataset:ds")
        out[role] = (admin.as_key(admin.issue_key("p")["key"]), root)
    return out


def test_every_use_case_is_in_the_table() -> None:
    assert {action for _, action, _ in USE_CASES} <= set(PERMISSIONS)


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
@pytest.mark.parametrize(("name", "action", "call"), USE_CASES, ids=[u[0] for u in USE_CASES])
def test_use_case_is_allowed_exactly_when_the_table_says(
    wards: dict[Role, tuple[Ward, Path]], role: Role, name: str, action: Action, call: UseCase
) -> None:
    ward, root = wards[role]
    permission = PERMISSIONS[action]
    expected = role in permission.roles and "dataset" in {k.value for k in permission.scope_kinds}
    try:
        call(ward, root)
        refused = False
    except DatawardError as exc:
        # Only a refusal for want of a role counts; policy and state errors come after authorization.
        refused = type(exc) is AccessDenied
    assert refused != expected, f"{role.value} {name}: refused={refused}, the table allows={expected}"
