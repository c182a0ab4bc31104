"""Usability of the `dataward` command line: global options after the subcommand, ids given by a
prefix, pipes closed early, and errors that suggest what was meant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from dataward.cli.global_options import hoist_global_options
from dataward.domain.schema import Schema
from dataward.service.ward import Ward


def run(*args: str, ward: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "80"}
    full.pop("DATAWARD_KEY", None)
    full.pop("DATAWARD_URL", None)
    full.update(env or {})
    if ward is not None:
        full["DATAWARD_WARD"] = str(ward)
    else:
        full.pop("DATAWARD_WARD", None)
    return subprocess.run(
        [sys.executable, "-m", "dataward", *args], env=full, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new ward without datasets, made in this process (a `dataward` process costs seconds)."""
    ward = tmp_path_factory.mktemp("ux") / "ward"
    Ward.init(ward)[0].close()
    return ward


def test_global_options_after_the_subcommand_move_in_front_of_it() -> None:
    assert hoist_global_options(["verify", "--ward", "w"]) == ["--ward", "w", "verify"]
    assert hoist_global_options(["dataset", "create", "x", "--ward=w", "--json"]) == [
        "--ward",
        "w",
        "dataset",
        "create",
        "x",
        "--json",
    ]
    assert hoist_global_options(["--ward", "w", "verify", "--ward", "w"]) == ["--ward", "w", "verify"]
    # `serve --ward` is serve's own option; a value after `--` is an argument.
    assert hoist_global_options(["serve", "--ward", "w"]) == ["serve", "--ward", "w"]
    assert hoist_global_options(["trace", "--", "--ward"]) == ["trace", "--", "--ward"]
    with pytest.raises(typer.BadParameter, match="different values: a, b"):
        hoist_global_options(["--ward", "a", "verify", "--ward", "b"])


def test_ward_is_accepted_after_the_subcommand(folder: Path, tmp_path: Path) -> None:
    after = run("verify", "--ward", str(folder))
    assert after.returncode == 0, after.stderr
    listed = run("datasets", "--json", f"--ward={folder}")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    twice = run("--ward", str(folder), "datasets", "--ward", str(tmp_path / "other"))
    assert twice.returncode == 2 and "given twice with different values" in twice.stderr


def _closed_reader(*args: str, ward: Path) -> tuple[int, str]:
    """Run the command with its stdout's reader gone before it writes (`| head` that stopped early)."""
    env = {**os.environ, "DATAWARD_WARD": str(ward)}
    env.pop("DATAWARD_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataward", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=300), err


@pytest.mark.parametrize("args", [("--help",), ("verify",), ("whoami", "--json")])
def test_a_reader_that_stops_early_ends_the_command_quietly(folder: Path, args: tuple[str, ...]) -> None:
    code, err = _closed_reader(*args, ward=folder)
    assert code == 141 and err == ""


def test_a_wrong_dataset_name_suggests_one_the_caller_may_read(tmp_path: Path) -> None:
    # A ward of its own: the shared one must stay without datasets (test_ward_is_accepted_... lists none).
    folder = tmp_path / "ward"
    with Ward.init(folder)[0] as admin:
        for name in ("reviews", "secret-reviews"):
            admin.create_dataset(name, Schema.parse("label", ["text:text"]))
        # A principal who may read only 'reviews'.
        admin.create_principal("rita")
        admin.grant("rita", "reviewer", "dataset:reviews")
        key = admin.issue_key("rita")["key"]
    wrong = run("contributions", "reveiws", ward=folder)
    assert wrong.returncode == 3 and "did you mean 'reviews'?" in wrong.stderr
    as_json = json.loads(run("versions", "Reviewz", "--json", ward=folder).stdout)
    assert as_json["details"]["did_you_mean"] == ["reviews"]
    # rita, who may read only 'reviews', is never told that 'secret-reviews' exists.
    hidden = run("versions", "secret-reveiws", ward=folder, env={"DATAWARD_KEY": key})
    assert hidden.returncode in (3, 6) and "secret-reviews" not in hidden.stderr
    assert run("versions", "secret-reveiws", ward=folder).stderr.count("'secret-reviews'") == 1


def test_tables_keep_ids_whole_and_wrap_prose_within_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataward.cli import output

    monkeypatch.setattr(output.console, "_width", 80)
    reason = "the record's label disagrees with 9 of its 10 nearest trusted neighbours, which all say benign"
    rows = [
        ("q_f0b5a69664f01234", "reviews#12", "label_consistency, backdoor", reason),
        ("training_version_stale", "contribution=c_0123456789abcdef\nprincipal=p_0123456789abcdef", "x", reason),
    ]
    with output.console.capture() as captured:
        output.table("t", ["item", "subject", "detectors", "reason"], rows)
    shown = captured.get()
    for word in ("q_f0b5a69664f01234", "training_version_stale", "contribution=c_0123456789abcdef"):
        assert word in shown
    assert max(len(line) for line in shown.splitlines()) <= 80


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["contribute", "reviews", "b.csv", "--sorce", "x", "--json"], "No such option: --sorce"),
        (["review", "lsit", "--json"], "No such command 'lsit'"),
        (["key", "issue", "bob", "--ttl-days", "abc", "--json"], "--ttl-days"),
        (["contribute", "--json"], "Missing argument"),
    ],
)
def test_a_command_line_that_does_not_parse_answers_json_when_json_was_asked(args: list[str], says: str) -> None:
    from typer.testing import CliRunner

    from dataward.cli.app import app

    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2
    answer = json.loads(refused.stdout)
    assert answer["error"] == "bad_input" and says in answer["message"] and "--help" in answer["hint"]
    # Without --json, stdout stays empty: the usage goes to stderr only.
    plain = CliRunner().invoke(app, [a for a in args if a != "--json"])
    assert plain.exit_code == 2 and plain.stdout == ""
