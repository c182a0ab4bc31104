"""A torn last line of the list of access removals is a write cut short, not tampering.

``append`` writes its lines in one write, and the disk can fill or the machine stop half way. What is
left is a last line without its end that does not parse. Before, that refused every request as
"tampered", and the only way on without a backup (move the file aside) dropped every listed removal.
Now it is reported as a torn write naming the file and byte offset, read past, and cut off by the next
removal. As an attacker plays it: nothing else reads as torn, and tearing a line does not make the
removal it holds disappear unseen.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dataward.domain.errors import IntegrityViolation, KeyRevoked
from dataward.ledger.removal_line import RemovalLine
from dataward.ledger.signing import SignatureVerifier
from dataward.service.ward import Ward
from tests.security.test_restore_removals import LIST, _assert_tampering_refused


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_principal("carol")
    ward.grant("carol", "reader")
    return ward


def _keys(ward: Ward) -> tuple[str, str, str]:
    """A good key of carol's and two revoked ones (two lines on the list)."""
    first = str(ward.issue_key("carol", ttl_days=5)["key"])
    second = str(ward.issue_key("carol", ttl_days=5)["key"])
    good = str(ward.issue_key("carol", ttl_days=5)["key"])
    ward.revoke_key(first[:11], reason="one")
    ward.revoke_key(second[:11], reason="two")
    return good, first, second


def _whole_chain(path: Path, ward: Ward) -> list[dict]:
    """The file's lines, each ended, each signed by the ward and chained to the one before."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = [RemovalLine.from_json(t) for t in data.split(b"\n") if t.strip()]
    verifier = SignatureVerifier(ward.signer.public_key_b64)
    for i, line in enumerate(lines):
        assert line.n == i and line.verify_signature(verifier)
        assert i == 0 or line.prev == lines[i - 1].digest
    return [json.loads(t) for t in data.split(b"\n") if t.strip()]


def test_a_write_cut_short_is_reported_read_past_and_cut_off(
    ward: Ward, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, first, second = _keys(ward)
    path = ward.folder / LIST
    whole = path.read_bytes()
    # A crash half way through the next write: part of a line, no line end.
    with path.open("ab") as fh:
        fh.write(whole.splitlines()[-1][:57])
    with caplog.at_level(logging.WARNING, logger="dataward.removals"):
        fresh = Ward.open(ward.folder)
        assert fresh.as_key(good).whoami()["principal"] == "carol"  # not refused as tampered
    assert any("torn" in r.getMessage() and f"byte {len(whole)}" in r.getMessage() for r in caplog.records)
    # The whole lines still count.
    for revoked in (first, second):
        with pytest.raises(KeyRevoked):
            Ward.open(ward.folder).as_key(revoked).whoami()
    report = Ward.open(ward.folder).verify()
    assert not [p for p in report.problems if p.area == "removals"], report.problems
    torn = [w for w in report.warnings if "torn write" in w]
    assert len(torn) == 1 and LIST in torn[0] and f"from byte {len(whole)} on" in torn[0], report.warnings
    # The next removal cuts the torn bytes off before its own line: the file is whole again.
    third = str(ward.issue_key("carol", ttl_days=5)["key"])
    Ward.open(ward.folder).revoke_key(third[:11], reason="three")
    assert [line["keys"] for line in _whole_chain(path, ward)] == [[first[3:11]], [second[3:11]], [third[3:11]]]
    report = Ward.open(ward.folder).verify()
    assert report.ok and not [w for w in report.warnings if "torn" in w], (report.problems, report.warnings)


def test_a_first_write_cut_short_leaves_an_empty_list(ward: Ward) -> None:
    """The very first removal's write torn: nothing listed yet, and the next one is line 0."""
    path = ward.folder / LIST
    assert not path.exists()
    path.write_bytes(b'{"type":"dataward.removal","ward":"')
    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    assert Ward.open(ward.folder).as_key(key).whoami()["principal"] == "carol"
    Ward.open(ward.folder).revoke_key(key[:11], reason="stolen")
    assert [line["n"] for line in _whole_chain(path, ward)] == [0]


def test_a_whole_last_line_without_its_end_still_counts(ward: Ward) -> None:
    """An attacker takes the line end off the last line, hoping it reads as torn: it parses, so it is a
    line, and its removal stays in force; the next removal ends it before writing its own."""
    good, _, second = _keys(ward)
    path = ward.folder / LIST
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    with pytest.raises(KeyRevoked):
        Ward.open(ward.folder).as_key(second).whoami()
    assert Ward.open(ward.folder).as_key(good).whoami()["principal"] == "carol"
    report = Ward.open(ward.folder).verify()
    assert report.ok and not [w for w in report.warnings if "torn" in w], (report.problems, report.warnings)
    Ward.open(ward.folder).revoke_key(good[:11], reason="three")
    assert len(_whole_chain(path, ward)) == 3


def test_a_last_line_torn_on_purpose_is_still_seen_gone(ward: Ward) -> None:
    """An attacker cuts the last line short to pass its removal off as a write that never finished. A
    process that read it still holds it and refuses every request; ``verify`` in a new one reports the
    ledger's removal missing from the list (a problem, not only the torn write's warning)."""
    good, _, second = _keys(ward)
    ward.as_key(good).whoami()  # this process read both lines
    path = ward.folder / LIST
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last + 40])
    with pytest.raises(IntegrityViolation, match=r"gone from removals\.jsonl"):
        ward.as_key(good).whoami()
    report = Ward.open(ward.folder).verify()
    assert [p.kind for p in report.problems] == ["unlisted"], report.problems
    assert any("torn write" in w for w in report.warnings)
    # The catalog still holds the revocation: the key stays refused.
    with pytest.raises(KeyRevoked):
        Ward.open(ward.folder).as_key(second).whoami()


def test_a_last_line_without_its_end_that_is_not_the_wards_is_tampering(ward: Ward) -> None:
    """A whole line without a line end that does not verify (edited) is not torn: it parses."""
    good, _, _ = _keys(ward)
    path = ward.folder / LIST
    lines = path.read_text().splitlines()
    edited = json.loads(lines[-1])
    edited["keys"] = ["someoneelse"]
    path.write_text("\n".join([*lines[:-1], json.dumps(edited)]))
    _assert_tampering_refused(ward.folder, good)


@pytest.mark.parametrize("where", ["last, ended", "middle"])
def test_a_line_that_does_not_parse_anywhere_else_is_tampering(ward: Ward, where: str) -> None:
    good, _, _ = _keys(ward)
    path = ward.folder / LIST
    lines = path.read_text().splitlines()
    cut = lines[-1][:57]
    changed = [*lines, cut] if where == "last, ended" else [lines[0], cut, lines[1]]
    path.write_text("\n".join(changed) + "\n")
    _assert_tampering_refused(ward.folder, good)


def test_the_only_line_torn_on_purpose_is_still_seen_gone(ward: Ward) -> None:
    """As above with a list of one line (a ward with one removal, or a list cut inside its first line
    after several): before the torn rule ``verify`` failed it as tampered; the ledger's event says it was
    listed (``listed: true``), so it must still fail, as ``unlisted``."""
    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    ward.revoke_key(key[:11], reason="stolen")
    path = ward.folder / LIST
    path.write_bytes(path.read_bytes()[:57])
    report = Ward.open(ward.folder).verify()
    assert any("torn write" in w for w in report.warnings)
    assert [p.kind for p in report.problems if p.area == "removals"] == ["unlisted"], (report.problems, report.warnings)
