"""Where a served ward's witness may be is the operator's decision when the operator says so; the witness
location and a dataset's policy are held to the free-text rules of everything the ledger keeps.

Attack: an admin key (stolen, or an admin overreaching) points the witness at a folder of the server's
that is not for the ward: another ward's folder, a system folder. The server then writes checkpoint files
there and reads removal copies from there. With ``DATAWARD_WITNESS_ALLOW`` (set by whoever runs the
server) a location outside it is refused, 403, before anything is recorded; without it anything outside
the ward's folder is accepted, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dataward.client import HTTPWard
from dataward.domain.errors import AccessDenied, InputError
from dataward.domain.schema import Schema
from dataward.server.settings import ServerSettings
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_schema_specs
from tests.server.conftest import Served, serve_ward


@pytest.fixture(scope="module")
def allowed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("witnesses")


@pytest.fixture(scope="module")
def served_allowing(tmp_path_factory: pytest.TempPathFactory, allowed_root: Path) -> Iterator[Served]:
    yield from serve_ward(
        tmp_path_factory.mktemp("allow"), witness_allow=(str(allowed_root), "s3://audit-bucket/wards")
    )


def _put(served: Served, location: str | None) -> httpx.Response:
    return httpx.put(
        f"{served.url}/api/v1/witness",
        json={"location": location},
        headers={"Authorization": f"Bearer {served.admin_key}"},
        timeout=30,
    )


def _head(served: Served) -> int:
    return HTTPWard(served.url, key=served.admin_key).ledger_head()["seq"]


def test_a_witness_outside_the_operators_list_is_refused(
    served_allowing: Served, allowed_root: Path, tmp_path: Path
) -> None:
    before = _head(served_allowing)
    elsewhere = tmp_path / "another-wards-folder"
    for location in (
        str(elsewhere),
        f"file://{elsewhere}",
        str(allowed_root) + "-evil",  # a name that merely starts like the allowed folder
        str(allowed_root / ".." / "escaped"),  # resolved before it is compared
        "s3://audit-bucket/other",
        "s3://audit-bucket/wards-evil",
        "s3a://audit-bucket/wards/w1",  # another protocol
    ):
        answer = _put(served_allowing, location)
        assert answer.status_code == 403, (location, answer.text)
        body = answer.json()
        assert body["error"] == "access_denied" and "DATAWARD_WITNESS_ALLOW" in body["message"], body
        assert str(allowed_root) not in answer.text  # the server's folders are not listed to callers
    assert _head(served_allowing) == before
    assert not elsewhere.exists()
    # Inside the list: accepted and recorded, the folder itself or below it.
    admin = HTTPWard(served_allowing.url, key=served_allowing.admin_key)
    with pytest.raises(AccessDenied, match="DATAWARD_WITNESS_ALLOW"):
        admin.set_witness(str(elsewhere))
    assert admin.set_witness(str(allowed_root / "w1"))["witness"] == str((allowed_root / "w1").resolve())
    assert _put(served_allowing, str(allowed_root)).status_code == 200
    # Turning the witness off is not a location: the list does not stop it (as before).
    assert admin.set_witness(None)["witness"] is None


def test_without_the_setting_any_folder_outside_the_ward_is_accepted(served: Served, tmp_path: Path) -> None:
    assert served.settings.witness_allow == ()
    admin = HTTPWard(served.url, key=served.admin_key)
    assert admin.set_witness(str(tmp_path / "anywhere"))["witness"] == str((tmp_path / "anywhere").resolve())
    admin.set_witness(None)


def test_the_setting_reaches_every_worker_and_is_read_from_the_operators_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = ServerSettings(ward=tmp_path, witness_allow=("/srv/witness", "s3://b/w"))
    for name, value in settings.to_environment().items():
        monkeypatch.setenv(name, value)
    assert ServerSettings.from_environment().witness_allow == ("/srv/witness", "s3://b/w")
    monkeypatch.delenv("DATAWARD_SERVER_WITNESS_ALLOW")
    monkeypatch.setenv("DATAWARD_WITNESS_ALLOW", "/srv/witness, s3://b/w")
    assert ServerSettings.from_environment().witness_allow == ("/srv/witness", "s3://b/w")


def test_a_key_in_the_witness_location_or_the_policy_is_refused(served: Served, tmp_path: Path) -> None:
    """Free text the ledger keeps: the witness location (``ward.witness_set``) and a dataset's policy
    (``policy.set`` keeps it whole). A key pasted into either, or a policy past the size limit, is
    refused before anything is recorded, over HTTP as in the folder."""
    admin = HTTPWard(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    live = admin.issue_key(description="the auditor's key")["key"]
    secret = live.rsplit("_", 1)[1]
    before = _head(served)
    with pytest.raises(InputError, match=r"^witness holds an API key"):
        admin.set_witness(str(tmp_path / live))
    with pytest.raises(InputError, match=r"^witness is [0-9,]+ characters long"):
        admin.set_witness(str(tmp_path / ("w" * 200)) * 30)
    with pytest.raises(InputError, match=r"^policy holds an API key"):
        admin.set_policy("wine", NO_APPROVALS_POLICY + f"\n# the gate runs with {live}\n")
    with pytest.raises(InputError, match=r"^policy holds an API key"):
        # Written with YAML escapes, the text holds no key; the policy read from it does.
        escaped = f"{live[:11]}\\x5f{live[12:]}"  # the key's second underscore as a YAML escape
        admin.set_policy("wine", f'approvals:\n  required: 0\ngate:\n  detectors: ["{escaped}"]\n')
    with pytest.raises(InputError, match=r"^policy is [0-9,]+ characters"):
        admin.set_policy("wine", NO_APPROVALS_POLICY + "\n" + "#" * 64_100 + "\n")
    embedded = Ward.open(served.ward, key=served.admin_key)
    with pytest.raises(InputError, match=r"^witness holds an API key"):
        embedded.set_witness(str(tmp_path / live))
    assert _head(served) == before
    assert secret not in str(admin.ledger(limit=50)).lower()
    # An ordinary policy and witness are recorded.
    assert admin.set_policy("wine", NO_APPROVALS_POLICY)["hash"]
    assert admin.set_witness(str(tmp_path / "w"))["witness"]
    admin.set_witness(None)


def test_only_an_admin_learns_anything_from_where_a_witness_may_be(
    served_allowing: Served, allowed_root: Path, tmp_path: Path
) -> None:
    """The caller is judged before the location: a key that may not set the witness gets the same answer
    wherever it points (the ward's folder, the operator's list, elsewhere), and a made-up key gets 401
    and counts as a failed authentication, so that neither learns where the ward lives or what the
    operator allows."""
    admin = HTTPWard(served_allowing.url, key=served_allowing.admin_key)
    admin.create_principal("mallory")
    mallory = admin.issue_key("mallory")["key"]  # a genuine key with no role at all
    probes = (
        str(served_allowing.ward),
        str(served_allowing.ward / "objects"),
        str(allowed_root / "w1"),
        str(tmp_path / "elsewhere"),
        "~",
    )
    answers = set()
    for location in probes:
        refused = _put_as(served_allowing, mallory, location)
        assert refused.status_code == 403, (location, refused.text)
        body = refused.json()
        assert body["message"] == "only a ward admin may change where checkpoints are witnessed", body
        assert str(served_allowing.ward) not in refused.text and str(allowed_root) not in refused.text
        answers.add(refused.text)
        made_up = _put_as(served_allowing, "dw_zzzz2345_" + "q" * 52, location)
        assert made_up.status_code in (401, 429), (location, made_up.text)  # 429 once its id failed too often
        assert made_up.json()["error"] in ("unauthenticated", "rate_limited")
    assert len(answers) == 1
    assert admin.witness()["witness"] is None
    # The refusals are on the record, as any refusal is.
    denied = [e for e in admin.ledger(types=["access.denied"], limit=50) if "witness" in e["payload"]["reason"]]
    assert len(denied) >= len(probes)


def _put_as(served: Served, key: str, location: str) -> httpx.Response:
    return httpx.put(
        f"{served.url}/api/v1/witness",
        json={"location": location},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_without_the_setting_a_key_that_is_no_admins_cannot_locate_the_ward(served: Served) -> None:
    admin = HTTPWard(served.url, key=served.admin_key)
    admin.create_principal("oscar")
    oscar = admin.issue_key("oscar")["key"]
    for location in (str(served.ward), str(served.ward / "objects"), "/tmp/elsewhere"):
        refused = _put_as(served, oscar, location)
        assert refused.status_code == 403, (location, refused.text)
        assert "ward's folder" not in refused.text and str(served.ward) not in refused.text
