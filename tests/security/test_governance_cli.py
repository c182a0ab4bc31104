"""A policy weakening as a user meets it on the command line: refused with exit 6 naming the weaker
setting for an owner, recorded and shown setting by setting for an admin."""

from __future__ import annotations

import json
from pathlib import Path

from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.cli.test_cli import run
from tests.helpers import wine_schema_specs


def test_policy_weakening_on_the_command_line(tmp_path: Path) -> None:
    ward = tmp_path / "ward"
    # Set up through the Python API (the CLI acts as the same local admin); only the checks run the CLI.
    admin, _ = Ward.init(ward)
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    admin.create_principal("olga")
    admin.grant("olga", "owner", "dataset:wine")
    key = admin.issue_key("olga")["key"]
    weak = tmp_path / "weak.yaml"
    weak.write_text("gate:\n  detectors: [drift]\n  block_p: 1.0e-300\n  review_p: 1.0e-300\n")
    refused = run(ward, "policy", "set", "wine", str(weak), "--json", key=key)
    assert refused.returncode == 6
    error = json.loads(refused.stdout or refused.stderr)
    assert error["error"] == "policy_violation" and "gate.block_p" in error["message"]
    allowed = run(ward, "policy", "set", "wine", str(weak))
    assert allowed.returncode == 0 and "weaker gate.block_p" in allowed.stdout
