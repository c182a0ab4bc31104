"""The witness location, attacked: an admin (or whoever holds an admin's key) points the witness back into
the ward through an fsspec chained URL or a symlink, or at a URL that makes the server send requests
(cloud metadata, in-memory filesystems). Only a local folder outside the ward or an object store is a
witness, and a refusal sent to an API client never names the server's ward path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dataward.client import HTTPWard
from dataward.domain.errors import InputError
from dataward.service.checkpoints import check_witness_location, witness_root
from dataward.service.ward import Ward
from tests.server.conftest import Served, serve_ward

HOSTILE = (
    "simplecache::file://{ward}/checkpoints",
    "file://{ward}/checkpoints::simplecache",
    "http://169.254.169.254/latest/",
    "https://attacker.example/witness",
    "memory://x",
    "ftp://files.example/w",
)


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_witness_urls_are_refused(tmp_path: Path, template: str) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    with pytest.raises(InputError) as refused:
        ward.set_witness(template.format(ward=ward.folder))
    assert str(ward.folder) not in refused.value.message
    assert ward.witness()["witness"] is None
    ward.checkpoint()
    assert not [p for p in (ward.folder / "checkpoints").iterdir() if p.is_dir()]  # no w_<id>/ copies


def test_a_symlink_or_dotdot_into_the_ward_is_resolved_first(tmp_path: Path) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    (tmp_path / "looks-outside").symlink_to(ward.folder / "checkpoints")
    for location in (
        str(tmp_path / "looks-outside"),
        f"file://{tmp_path}/looks-outside/sub",
        f"{tmp_path}/elsewhere/../ward/checkpoints",
    ):
        with pytest.raises(InputError, match="inside the ward's folder") as refused:
            ward.set_witness(location)
        assert str(ward.folder) not in refused.value.message and str(tmp_path) not in refused.value.message
    outside = ward.set_witness(f"file://{tmp_path}/witness")
    assert outside["witness"] == str((tmp_path / "witness").resolve())


def test_an_object_store_witness_is_accepted_when_its_backend_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    assert check_witness_location("s3://bucket/witness", tmp_path) == "s3://bucket/witness"


def test_a_stored_location_no_longer_allowed_is_not_used(tmp_path: Path) -> None:
    """A ``ward.json`` written before the protocols were limited: its witness is refused when used."""
    with pytest.raises(ValueError, match="not an allowed witness"):
        witness_root("simplecache::file:///tmp/w", "w_1")
    with pytest.raises(ValueError, match="not an allowed witness"):
        witness_root("http://169.254.169.254/latest/", "w_1")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve_ward(tmp_path_factory.mktemp("served-witness"))


def test_over_http_the_refusal_names_no_server_path(served: Served) -> None:
    admin = HTTPWard(served.url, key=served.admin_key)
    ward_path = str(served.ward.resolve())
    for location in (f"{ward_path}/checkpoints", f"file://{ward_path}/checkpoints"):
        with pytest.raises(InputError, match="inside the ward's folder") as refused:
            admin.set_witness(location)
        said = f"{refused.value.message} {refused.value.hint or ''}"
        assert ward_path not in said and str(served.ward) not in said
    for template in HOSTILE:
        with pytest.raises(InputError):
            admin.set_witness(template.format(ward=ward_path))
    assert admin.witness()["witness"] is None
