"""A catalog file damaged on disk (cut short, its header overwritten) is an integrity violation that
names the file's state and the way back, never a traceback: `verify` exists for exactly this."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dataward.domain.errors import IntegrityViolation
from dataward.service.ward import Ward
from tests.helpers import wine_rows, wine_ward, write_csv


def _cut_short(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _header_overwritten(data: bytes) -> bytes:
    return b"x" * 16 + data[16:]


DAMAGE: dict[str, Callable[[bytes], bytes]] = {"cut short": _cut_short, "header overwritten": _header_overwritten}


def _damaged_ward(tmp_path: Path, damage: Callable[[bytes], bytes]) -> Path:
    folder = tmp_path / "ward"
    ward = wine_ward(folder)
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a", gate=False)
    ward.close()  # the log copied into the file and removed: the file alone holds the catalog
    catalog = folder / "catalog.sqlite"
    assert not Path(f"{catalog}-wal").exists()
    catalog.write_bytes(damage(catalog.read_bytes()))
    return folder


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_catalog_is_an_integrity_violation_in_python(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    folder = _damaged_ward(tmp_path, damage)
    with pytest.raises(IntegrityViolation, match="catalog file is damaged") as caught:
        Ward.open(folder).verify()
    assert "backup" in (caught.value.hint or "")


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_verify_and_other_commands_exit_7_with_one_json_document(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    folder = _damaged_ward(tmp_path, damage)
    env = {**os.environ, "DATAWARD_WARD": str(folder)}
    env.pop("DATAWARD_KEY", None)
    env.pop("DATAWARD_URL", None)
    for command in (["verify", "--json"], ["datasets", "--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "dataward", *command], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 7, result.stderr
        assert "Traceback" not in result.stderr
        error = json.loads(result.stdout)
        assert error["error"] == "integrity_violation" and "catalog file is damaged" in error["message"]
