"""The ledger format can be re-checked outside Python: the committed test vector is exactly what the
implementation produces and verifies, and the Node.js verifier in scripts/ agrees with it and with a
real ward's export (skipped where `node` is not installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.domain.schema import Schema
from dataward.ledger.checkpoint import Checkpoint, extension
from dataward.ledger.events import Event, verify_chain
from dataward.ledger.signing import SignatureVerifier, parse_public_key
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.security.attacks import delete_tail
from tests.security.vectors.generate import VECTOR, build_vector, render

ROOT = Path(__file__).resolve().parents[2]
NODE_VERIFIER = ROOT / "scripts" / "verify-ledger.mjs"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: the JavaScript verifier cannot run here")


def test_committed_vector_is_what_the_implementation_produces() -> None:
    assert VECTOR.read_text("utf-8") == render(build_vector()), (
        "regenerate with `python -m tests.security.vectors.generate` and review the diff"
    )


def test_vector_verifies_from_its_json_alone() -> None:
    vector = json.loads(VECTOR.read_text("utf-8"))
    ward = vector["ledger"]["ward"]
    assert parse_public_key(vector["public_key_pem"]) == vector["public_key"]
    verifier = SignatureVerifier(vector["public_key"])
    chain = [Event.from_dict(e) for e in vector["ledger"]["events"]]
    assert [e.format for e in chain] == [1, 1, 2, 2, 2]
    assert verify_chain(chain, verifier, ward) == []
    for event, want in zip(chain, vector["expected"]["events"], strict=True):
        assert event.canonical_body().decode("utf-8") == want["canonical"]
        assert event.computed_hash() == want["hash"] == event.hash
        assert event.signed_message(ward).hex() == want["signed_message_hex"]
    checkpoint = Checkpoint.from_dict(vector["checkpoint"])
    assert checkpoint.verify_signature(verifier)
    assert checkpoint.signed_message().hex() == vector["expected"]["checkpoint"]["signed_message_hex"]
    assert extension(checkpoint, chain).status == "extends"
    assert extension(checkpoint, chain[:-1]).status == "missing"


def _has_fraction(value: object) -> bool:
    if isinstance(value, float):
        return not value.is_integer()
    if isinstance(value, dict):
        return any(_has_fraction(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_fraction(v) for v in value)
    return False


def _node(*args: str) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run([NODE, str(NODE_VERIFIER), *args], capture_output=True, text=True, timeout=120)


@needs_node
def test_node_verifier_checks_the_vector(tmp_path: Path) -> None:
    ok = _node("--vector", str(VECTOR))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    vector = json.loads(VECTOR.read_text("utf-8"))
    vector["ledger"]["events"][3]["payload"]["verdict"] = "pass"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(vector))
    bad = _node("--vector", str(tampered))
    assert bad.returncode == 7 and "altered" in bad.stdout


@needs_node
def test_node_verifier_checks_a_real_ward_export_and_catches_a_deleted_tail(tmp_path: Path) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    # A stricter gate than the default: the policy event carries non-integral numbers.
    ward.set_policy(
        "wine", NO_APPROVALS_POLICY.replace("[duplicates]\n", "[duplicates]\n  alpha: 0.005\n  block_p: 2.5e-7\n")
    )
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 40)), source="a")["id"])
    ward.promote("wine@v1", reason="baseline ✓")
    runner = CliRunner()

    def cli(*args: str) -> None:
        result = runner.invoke(app, ["--ward", str(ward.folder), *args], env={"DATAWARD_KEY": ""})
        assert result.exit_code == 0, result.output

    export, key, checkpoint = tmp_path / "ledger.json", tmp_path / "ward.pem", tmp_path / "cp.json"
    cli("ledger", "public-key", "-o", str(key))
    cli("checkpoint", "-o", str(checkpoint))
    cli("ledger", "export", "-o", str(export))
    events = json.loads(export.read_text("utf-8"))["events"]
    assert any(_has_fraction(e["payload"]) for e in events), "the gate's events carry non-integral numbers"
    ok = _node("--export", str(export), "--public-key", str(key), "--checkpoint", str(checkpoint))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{len(events)} events verified, 1 checkpoint(s) extended" in ok.stdout
    deleted = delete_tail(ward, 2, with_rows=True)
    cli("ledger", "export", "-o", str(export))
    bad = _node("--export", str(export), "--public-key", str(key), "--checkpoint", str(checkpoint))
    assert bad.returncode == 7
    assert f"first missing or rewritten event: #{deleted[0].seq}" in bad.stdout
