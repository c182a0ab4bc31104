"""The ward is composed of services over one context, not mixed together: a service reaches another
only through the reference it was handed, and every copy of a ward acting as another key has its own
services over its own context."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import dataward.service as service_package
from dataward.service.core import Service
from dataward.service.ward import Services, Ward

SERVICE_DIR = Path(service_package.__file__).parent
BASE = {name for name in dir(Service) if not name.startswith("__")} | {"context"}


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _service_classes() -> list[tuple[str, ast.ClassDef]]:
    found = []
    for path in sorted(SERVICE_DIR.glob("*.py")):
        text = path.read_text("utf-8")
        if "(Service):" not in text:
            continue
        for node in ast.parse(text).body:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id == "Service" for b in node.bases
            ):
                found.append((path.name, node))
    return found


def test_a_service_reaches_only_its_own_members_and_the_services_it_was_handed() -> None:
    classes = _service_classes()
    named = {"IdentityService", "ContributionService", "GateService", "ReviewService", "VersionService", "AuditService"}
    assert named <= {c.name for _, c in classes}
    strays = {}
    for filename, cls in classes:
        own = set(BASE)
        for member in cls.body:
            if isinstance(member, ast.FunctionDef):
                own.add(member.name)
            elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                own.add(member.target.id)
        for node in ast.walk(cls):
            # What a service sets on itself: in ``__init__``, the services it was handed.
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                own |= {t.attr for t in targets if isinstance(t, ast.Attribute) and _is_self(t.value)}
        used = {node.attr for node in ast.walk(cls) if isinstance(node, ast.Attribute) and _is_self(node.value)}
        if used - own:
            strays[f"{filename}:{cls.name}"] = sorted(used - own)
    assert strays == {}
    for path in SERVICE_DIR.glob("*.py"):
        assert "type: ignore[attr-defined]" not in path.read_text("utf-8"), path.name


def test_each_keyed_copy_has_its_own_services_over_its_own_context(tmp_path: Path) -> None:
    ward, key = Ward.init(tmp_path / "ward")
    services = ward.services
    assert isinstance(services, Services)
    # Wired once: the gate service a submission runs is the ward's own gate service.
    assert services.contributions.gates is services.gates
    assert services.contributions.datasets is services.datasets is services.versions.datasets
    assert services.gates.context is ward.context
    other = ward.as_key(key)
    assert other.services is not services and other.context is not ward.context
    assert other.services.gates is not services.gates and other.services.gates.context is other.context
    # The clock is the context's: changing the ward's changes what every one of its services records.
    later = ward.now() + timedelta(minutes=30)  # within the skew the other copy tolerates
    ward.clock = lambda: later
    assert services.identity.now() == later and other.now() != later
    ward.create_principal("alice")
    created = ward.ledger(limit=1, types=["principal.created"])[0]
    assert created["payload"]["name"] == "alice" and created["time"].startswith(later.strftime("%Y-%m-%d"))
    assert other.whoami()["principal"] == "admin"
