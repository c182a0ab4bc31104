"""`dataset create --schema FILE`: a wide table's schema from one JSON file, not one `--input` a column."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataward.domain.errors import InputError, NotFound
from dataward.domain.schema import ColumnKind, DatasetKind
from dataward.io.schema_file import read_schema_file

COLUMNS = [f"feature_{i}" for i in range(30)]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def test_thirty_numeric_columns_from_one_file(tmp_path: Path) -> None:
    spec = {"label": "diagnosis", "inputs": [{"name": c, "kind": "numeric"} for c in COLUMNS]}
    schema = read_schema_file(_write(tmp_path / "s.json", json.dumps(spec)))
    assert schema.label == "diagnosis" and [c.name for c in schema.inputs] == COLUMNS
    assert {c.kind for c in schema.inputs} == {ColumnKind.NUMERIC}
    assert schema.to_dict() == spec


def test_a_datasets_entry_and_a_language_model_kind_are_read(tmp_path: Path) -> None:
    entry = {"name": "wine", "schema": {"label": "y", "inputs": [{"name": "e", "kind": "embedding", "dim": 4}]}}
    schema = read_schema_file(_write(tmp_path / "e.json", json.dumps(entry)))
    assert schema.inputs[0].dim == 4
    assert read_schema_file(_write(tmp_path / "c.json", '{"kind": "chat"}')).kind is DatasetKind.CHAT


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('{"label": "y", "label": "z", "inputs": []}', "'label' twice"),
        ('{"label": "y", "inputs": [', "not valid JSON at line 1"),
        ('{"label": "y", "inputs": [{"name": "x", "kind": "numbr"}]}', "numbr"),
        ('["label"]', "must be a mapping"),
    ],
)
def test_a_bad_schema_file_is_refused_naming_the_problem(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(InputError, match=names):
        read_schema_file(_write(tmp_path / "bad.json", text))


def test_a_missing_schema_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        read_schema_file(tmp_path / "nope.json")


def _run(*args: str, ward: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATAWARD_KEY", "DATAWARD_URL")}
    env["DATAWARD_WARD"] = str(ward)
    return subprocess.run(
        [sys.executable, "-m", "dataward", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_the_cli_creates_the_dataset_and_refuses_mixed_options(tmp_path: Path) -> None:
    ward = tmp_path / "ward"
    assert _run("init", str(ward), ward=ward).returncode == 0
    spec = {"label": "diagnosis", "inputs": [{"name": c, "kind": "numeric"} for c in COLUMNS]}
    path = _write(tmp_path / "s.json", json.dumps(spec))
    created = _run("dataset", "create", "cancer", "--schema", str(path), "--json", ward=ward)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["schema"] == spec
    mixed = _run("dataset", "create", "other", "--schema", str(path), "--label", "y", ward=ward)
    assert mixed.returncode == 2 and "--schema gives the whole schema" in mixed.stderr
    listed = _run("datasets", "--json", ward=ward)
    entry = _write(tmp_path / "entry.json", json.dumps(json.loads(listed.stdout)[0]))
    copied = _run("dataset", "create", "cancer-copy", "--schema", str(entry), "--json", ward=ward)
    assert copied.returncode == 0 and json.loads(copied.stdout)["schema"] == spec
