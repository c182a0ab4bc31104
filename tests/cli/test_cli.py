"""The `dataward` command as a user runs it: real processes, exit codes, readable errors, stable JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_schema_specs, wine_ward, write_csv


def run(ward: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATAWARD_WARD": str(ward), "COLUMNS": "200"}
    env.pop("DATAWARD_KEY", None)
    if key:
        env["DATAWARD_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "dataward", *args], env=env, capture_output=True, text=True, timeout=300
    )


def as_admin(ward: Path) -> Ward:
    """The ward at ``ward`` opened in this process as its first admin, for the setup a test does not assert
    on (a process per step costs seconds: every command imports the whole ward). The commands a test
    asserts on still run as processes."""
    return Ward.open(ward, key=(ward / "credentials").read_text("utf-8").strip())


def newest_seq(ward: Path) -> int:
    """The sequence number of the ward's newest ledger event, read in this process: what `ledger --json -n 1`
    prints as its first event's ``seq`` (the command calls the same ``Ward.ledger``), without a process
    that imports the whole ward for a before/after check that no command was recorded."""
    with as_admin(ward) as admin:
        return admin.ledger(limit=1)[0]["seq"]


@pytest.fixture(scope="module")
def wine_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new ward whose empty ``wine`` dataset takes contributions without approvals (made as `init`,
    `dataset create` and `policy set` make it; test_first_import_... below runs those commands itself)."""
    ward = tmp_path_factory.mktemp("cli-template") / "ward"
    wine_ward(ward, NO_APPROVALS_POLICY).close()
    return ward


@pytest.fixture(scope="module")
def cli_ward(wine_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of ``wine_template`` that the module's tests share, and a folder for their files."""
    root = tmp_path_factory.mktemp("cli")
    return shutil.copytree(wine_template, root / "ward"), root


def test_init_prints_the_key_once_and_refuses_twice(tmp_path: Path) -> None:
    ward = tmp_path / "w"
    first = run(ward, "init", "--json")
    info = json.loads(first.stdout)
    assert first.returncode == 0 and info["key"].startswith("dw_")
    assert (ward / "credentials").stat().st_mode & 0o077 == 0
    again = run(ward, "init")
    assert again.returncode == 4 and "already a ward" in again.stderr


def test_contribute_json_and_exit_codes(wine_template: Path, tmp_path: Path) -> None:
    # A new ward of its own: the version merged here holds these 40 records alone, whichever test merged
    # into the shared ward before (test_small_things_... does).
    ward, root = shutil.copytree(wine_template, tmp_path / "ward"), tmp_path
    path = write_csv(root / "a.csv", wine_rows(0, 40, shuffled=True))
    result = run(ward, "contribute", "wine", str(path), "--source", "https://example.org/wine.csv", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert {"id", "ref", "added", "removed", "status", "content_hash", "source_uri", "key"} <= set(info)
    merged = json.loads(run(ward, "merge", info["ref"], "--json").stdout)
    assert merged["records"] == 40
    versions = json.loads(run(ward, "versions", "wine", "--json").stdout)
    assert versions[-1]["number"] == merged["number"]
    out = root / "export.csv"
    exported = run(ward, "export", f"wine@v{merged['number']}", "--format", "csv", "-o", str(out))
    assert exported.returncode == 0 and len(out.read_text().splitlines()) == 41


def test_bad_input_is_refused_with_file_line_and_column(cli_ward: tuple[Path, Path]) -> None:
    ward, root = cli_ward
    bad = root / "bad.csv"
    bad.write_text("alcohol,malic_acid,ash,magnesium,proline,cultivar\n1,2,3,4,5,0\n1,2,x,4,5,1\n")
    before = newest_seq(ward)
    result = run(ward, "contribute", "wine", str(bad), "--source", "s")
    assert result.returncode == 2
    assert "bad.csv" in result.stderr and "ash" in result.stderr and "3" in result.stderr
    assert newest_seq(ward) == before
    missing = run(ward, "contribute", "wine", str(root / "nope.csv"), "--source", "s")
    assert missing.returncode == 3 and "nope.csv" in missing.stderr  # not_found, as docs/cli.md lists it
    removes = run(ward, "contribute", "wine", "--removes", str(root / "nope.txt"), "--source", "s", "--json")
    assert removes.returncode == 3 and json.loads(removes.stdout)["error"] == "not_found"
    assert newest_seq(ward) == before


def test_an_html_report_that_cannot_be_written_is_refused_before_anything_is_stored(
    cli_ward: tuple[Path, Path],
) -> None:
    """A bad --html used to fail after the contribution was stored and gated: exit 2 ("nothing was
    stored", docs/cli.md) on a contribution that existed, and a retry made a second one."""
    ward, root = cli_ward
    path = write_csv(root / "h.csv", wine_rows(100, 120, shuffled=True))
    before = newest_seq(ward)
    for html in (root / "no" / "such" / "folder" / "g.html", root):
        result = run(ward, "contribute", "wine", str(path), "--source", "s", "--html", str(html), "--json")
        assert result.returncode == 2, result.stderr
        assert json.loads(result.stdout)["error"] == "bad_input" and str(html) in result.stdout
    assert newest_seq(ward) == before
    # The same check before a gate run is recorded, and on a report drawn again.
    with as_admin(ward) as admin:
        stored = admin.contribute("wine", path, source="s")
    after = newest_seq(ward)
    refused = run(ward, "gate", "run", stored["ref"], "--html", str(root / "nope" / "g.html"))
    assert refused.returncode == 2 and "no such folder" in refused.stderr
    assert newest_seq(ward) == after
    page = root / "again.html"
    assert run(ward, "gate", "report", stored["ref"], "--html", str(page)).returncode == 0
    assert "<html" in page.read_text().lower()
    # A link planted at the page's name (a shared folder) is replaced, not written through.
    victim = root / "victim.txt"
    victim.write_text("mine")
    page.unlink()
    page.symlink_to(victim)
    assert run(ward, "gate", "report", stored["ref"], "--html", str(page)).returncode == 0
    assert victim.read_text() == "mine" and not page.is_symlink() and "<html" in page.read_text().lower()


def test_errors_are_json_with_json_flag(cli_ward: tuple[Path, Path]) -> None:
    ward, _ = cli_ward
    result = run(ward, "versions", "nosuch", "--json")
    assert result.returncode == 3
    assert json.loads(result.stdout)["error"] == "not_found"


def test_unknown_key_is_refused(cli_ward: tuple[Path, Path]) -> None:
    ward, _ = cli_ward
    result = run(ward, "versions", "wine", key="dw_aaaaaaaa_" + "b" * 52)
    assert result.returncode == 5 and "not recognised" in result.stderr


def test_human_output_is_tables_not_logs(cli_ward: tuple[Path, Path]) -> None:
    ward, _ = cli_ward
    listing = run(ward, "datasets")
    assert listing.returncode == 0 and "wine" in listing.stdout and "┃" in listing.stdout
    assert "everything checks out" in run(ward, "verify").stdout


def test_no_ward_names_the_fix(tmp_path: Path) -> None:
    result = run(tmp_path / "missing", "versions", "wine")
    assert result.returncode == 3 and "dataward init" in result.stderr


def test_first_import_without_validation_set_is_refused_and_names_the_fix(tmp_path: Path) -> None:
    ward = tmp_path / "w"
    Ward.init(ward)[0].close()
    label, specs = wine_schema_specs()
    assert (
        run(ward, "dataset", "create", "wine", "--label", label, *(p for s in specs for p in ("--input", s))).returncode
        == 0
    )
    path = write_csv(tmp_path / "a.csv", wine_rows(0, 20))
    result = run(ward, "contribute", "wine", str(path), "--source", "s", "--json")
    assert result.returncode == 6
    error = json.loads(result.stdout)
    assert error["error"] == "policy_violation" and "--validation-for wine" in error["hint"]
    override = run(ward, "gate", "override", "wine#1", "--reason", "r")
    assert override.returncode == 3 and "no contribution" in override.stderr


def test_small_things_a_new_user_met(cli_ward: tuple[Path, Path]) -> None:
    """Findings of a new-user trial, each a message or a default that misled."""
    ward, root = cli_ward
    # A semicolon-separated CSV reads as one column: the error names the columns the file holds.
    semi = root / "semi.csv"
    semi.write_text("alcohol;malic_acid;ash;magnesium;proline;cultivar\n1;2;3;4;5;0\n")
    refused = run(ward, "contribute", "wine", str(semi), "--source", "s", "--json")
    assert refused.returncode == 2
    assert "'alcohol;malic_acid;ash;magnesium;proline;cultivar'" in json.loads(refused.stdout)["message"]
    # A source fetched in the future is refused; so is a key that would live less than a day.
    path = write_csv(root / "f.csv", wine_rows(120, 130, shuffled=True))
    future = run(ward, "contribute", "wine", str(path), "--source", "s", "--fetched-at", "2099-01-01", "--json")
    assert future.returncode == 2 and "in the future" in json.loads(future.stdout)["message"]
    short_key = run(ward, "key", "issue", "--ttl-days", "0", "--json")
    assert short_key.returncode == 2 and "at least 1 day" in json.loads(short_key.stdout)["message"]
    # `export -o FILE.jsonl` writes JSON Lines, as `contribute` reads a file by its extension.
    with as_admin(ward) as admin:
        merged = admin.merge(admin.contribute("wine", path, source="s")["ref"])
    out = root / "v.jsonl"
    assert run(ward, "export", f"wine@v{merged['number']}", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text().splitlines()[0])["cultivar"] is not None
    # `.json` is JSON Lines too, as Hugging Face's `to_json` writes it and `contribute` reads it back.
    named_json = root / "v.json"
    assert run(ward, "export", f"wine@v{merged['number']}", "-o", str(named_json)).returncode == 0
    assert named_json.read_text().splitlines() == out.read_text().splitlines()
    # An extension naming no format is refused, as `train load` refuses it, not written as Parquet.
    refused = run(ward, "export", f"wine@v{merged['number']}", "-o", str(root / "v.txt"), "--json")
    assert refused.returncode == 2 and "'.txt'" in json.loads(refused.stdout)["message"]
    assert not (root / "v.txt").exists()


def test_a_ledger_count_that_is_not_positive_names_the_option(cli_ward: tuple[Path, Path]) -> None:
    """`ledger -n -5` used to say "limit must be between 0 and 4.61169e+18", and `-n 0` showed an empty table."""
    ward, _ = cli_ward
    for count in ("-5", "0"):
        refused = run(ward, "ledger", "-n", count)
        assert refused.returncode == 2, refused.stderr
        assert "--limit" in refused.stderr and "positive number of events" in refused.stderr
        assert "e+18" not in refused.stderr
        as_json = run(ward, "ledger", "-n", count, "--json")
        assert as_json.returncode == 2 and json.loads(as_json.stdout)["error"] == "bad_input"
    # A count beyond every event shows them all, whatever its size.
    everything = run(ward, "ledger", "-n", str(10**30), "--json")
    assert everything.returncode == 0, everything.stderr
    with as_admin(ward) as admin:  # every event, counted in this process (`Ward.ledger` without a limit)
        assert len(json.loads(everything.stdout)) == len(admin.ledger())


def test_datasets_lists_what_grants_reach_and_says_so_when_nothing(cli_ward: tuple[Path, Path]) -> None:
    ward, _ = cli_ward
    with as_admin(ward) as admin:
        admin.create_principal("newcomer")
        key = admin.issue_key("newcomer")["key"]
    empty = run(ward, "datasets", key=key)
    assert empty.returncode == 0 and "no dataset you may read" in empty.stdout
    assert json.loads(run(ward, "datasets", "--json", key=key).stdout) == []
    with as_admin(ward) as admin:
        admin.grant("newcomer", "contributor", "dataset:wine")
    listed = json.loads(run(ward, "datasets", "--json", key=key).stdout)
    assert [d["name"] for d in listed] == ["wine"]


def test_disabling_a_principal_that_already_is_records_nothing(tmp_path: Path) -> None:
    ward = tmp_path / "ward"
    with Ward.init(ward)[0] as admin:
        admin.create_principal("olga")
        admin.create_principal("bot", kind="service", owner=admin.whoami()["principal"])
    assert json.loads(run(ward, "principal", "disable", "bot", "--json").stdout)["status"] == "suspended"
    assert run(ward, "principal", "disable", "olga").returncode == 0
    with as_admin(ward) as admin:  # every event, read in this process: not what the test asserts on
        events = len(admin.ledger())
    again = run(ward, "principal", "disable", "bot")
    assert again.returncode == 0 and "bot is already suspended; nothing changed" in again.stdout
    answer = json.loads(run(ward, "principal", "disable", "olga", "--json").stdout)
    assert answer["already"] is True and answer["status"] == "disabled" and answer["revoked_keys"] == []
    with as_admin(ward) as admin:
        assert len(admin.ledger()) == events


def test_whoami_says_when_the_key_acts_within_scopes_narrower_than_the_grants(cli_ward: tuple[Path, Path]) -> None:
    """A key issued with --scope reader listed its principal's owner grant and nothing else: the printed
    whoami names the key's scopes, or a user reads 'owner' and is then refused a contribution."""
    ward, _ = cli_ward
    with as_admin(ward) as admin:
        admin.create_principal("scoped-owner")
        admin.grant("scoped-owner", "owner", "dataset:wine")
        key = admin.issue_key("scoped-owner", scopes=["reader"])["key"]
        full = admin.issue_key("scoped-owner")["key"]
    shown = run(ward, "whoami", key=key)
    assert shown.returncode == 0 and "acts only within its scopes: reader" in shown.stdout
    assert "scopes" not in run(ward, "whoami", key=full).stdout


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--checkpoint", "{missing}"],
        ["verify", "--attestation", "{missing}"],
        ["policy", "set", "wine", "{missing}"],
        ["train", "start", "wine-model", "--script", "{missing}"],
        ["contribute", "wine", "{missing}", "--source", "s"],
    ],
    ids=["checkpoint", "attestation", "policy", "script", "data"],
)
def test_a_missing_input_file_is_not_found_whatever_the_command(cli_ward: tuple[Path, Path], args: list[str]) -> None:
    """A path that does not exist was exit 2 (bad input) for some commands and 3 (not found) for others:
    every command reading a file now says the same, exit 3, and names the path."""
    ward, _ = cli_ward
    missing = str(ward.parent / "no-such-file.txt")
    result = run(ward, *[a.replace("{missing}", missing) for a in args])
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"{missing}: no such file" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["policy", "set", "wine", "{folder}"], "{folder} is a folder, not a policy file"),
        (["train", "start", "wine-model", "--script", "{folder}"], "{folder} is a folder, not a script"),
        (["policy", "set", "wine", "/dev/null"], "/dev/null is not a regular file: it is a character device"),
        (["contribute", "wine", "/dev/zero", "--source", "s"], "/dev/zero: is not a regular file: it is a character"),
    ],
    ids=["policy folder", "script folder", "policy device", "data device"],
)
def test_an_input_path_that_is_no_file_says_what_it_is(cli_ward: tuple[Path, Path], args: list[str], said: str) -> None:
    """A folder given as a policy or a script read "no such file" (exit 3), and /dev/zero or /dev/stdin
    given as data "is a folder, not a file": each now says what is there, as bad input (exit 2)."""
    ward, root = cli_ward
    folder = root / "a-folder"
    folder.mkdir(exist_ok=True)
    result = run(ward, *[a.replace("{folder}", str(folder)) for a in args])
    assert result.returncode == 2, result.stdout + result.stderr
    assert said.replace("{folder}", str(folder)) in result.stderr.replace("\n", " ")


def test_the_ledger_table_says_what_was_refused_and_why(tmp_path: Path) -> None:
    """`ledger --type access.denied` in a terminal shows the refused action and its reason, not only
    who and where (they were in `--json` alone)."""
    ward = tmp_path / "ward"
    with Ward.init(ward)[0] as admin:
        admin.create_principal("carol")
        carol = admin.issue_key("carol")["key"]
    assert run(ward, "principal", "create", "dave", key=carol).returncode != 0
    shown = run(ward, "ledger", "--type", "access.denied")
    assert shown.returncode == 0, shown.stderr
    assert "action=principal.create" in shown.stdout
    assert "reason=" in shown.stdout and "carol" in shown.stdout


def test_init_makes_the_ward_folder_its_owners_alone(tmp_path: Path) -> None:
    """The folder holds the signing key and the admin's credentials: mode 700 whatever the umask."""
    ward = tmp_path / "ward"
    assert run(ward, "init", "--json").returncode == 0
    assert ward.stat().st_mode & 0o777 == 0o700
