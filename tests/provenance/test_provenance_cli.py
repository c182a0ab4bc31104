"""The provenance commands as a user runs them: transform, trace through it, attest, verify offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.domain.schema import RECORD_ID
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed


@pytest.fixture
def cli(wine_ward: Ward, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATAWARD_WARD", str(wine_ward.folder))
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_transform_trace_attest_verify(cli, wine_ward: Ward, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, table = wine_ward.read_version("wine", "v2")
    groups: dict[float, list[dict]] = {}
    for r in table.to_pylist():
        groups.setdefault(round(r["alcohol"]), []).append(r)
    kept = [{k: v for k, v in g[0].items() if k != RECORD_ID} for g in groups.values()]
    # JSON Lines keeps the exact float values, so the kept records keep their ids.
    out = tmp_path / "dedup.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in kept))
    parents = tmp_path / "parents.txt"
    parents.write_text("".join(" ".join(r[RECORD_ID] for r in g) + "\n" for g in groups.values()))
    script = tmp_path / "dedup.py"
    script.write_text("# rounds alcohol and keeps one record per value\n")
    done = cli(
        "transform", "dedup", str(out), "--input", "wine@v2", "--parents", str(parents),
        "--param", "round=0", "--script", str(script), "--json",
    )  # fmt: skip
    # Removing most of a version is for a reviewer to look at: exit 8 (review), like `contribute`.
    assert done.exit_code in (0, 8), done.output
    info = json.loads(done.output)
    assert info["added"] == 0 and info["removed"] == len(table) - len(kept)
    assert info["transformation"]["code"]["kind"] == "file" and info["transformation"]["params"] == {"round": 0}
    merge_reviewed(wine_ward, info["ref"])

    dropped = next(g for g in groups.values() if len(g) > 1)[1][RECORD_ID]
    traced = cli("trace", dropped, "--json")
    assert traced.exit_code == 0 and json.loads(traced.output)["derived"][0]["name"] == "dedup"
    readable = cli("trace", dropped)
    assert readable.exit_code == 0 and "made from it" in readable.output and "dedup" in readable.output

    bundle, pem = tmp_path / "wine-v3.intoto.jsonl", tmp_path / "ward.pem"
    assert cli("attest", "wine@v3", "-o", str(bundle)).exit_code == 0
    assert cli("ledger", "public-key", "-o", str(pem)).exit_code == 0
    ok = cli("verify", "--attestation", str(bundle), "--public-key", str(pem), "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True

    lines = bundle.read_text().splitlines()
    lines[0] = lines[0].replace('"sig": "', '"sig": "A', 1)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    assert cli("verify", "--attestation", str(tampered), "--public-key", str(pem)).exit_code == 7

    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert cli("verify", "--attestation", str(bundle), "--public-key", str(other)).exit_code == 7
    assert cli("verify", "--attestation", str(bundle)).exit_code == 2


def test_relabel_and_refusals(cli, wine_ward: Ward) -> None:  # type: ignore[no-untyped-def]
    _, table = wine_ward.read_version("wine", "v2")
    first = table.to_pylist()[0]
    new = "2" if str(first["cultivar"]) != "2" else "1"
    done = cli("relabel", "wine@v2", "--set", f"{first[RECORD_ID]}={new}", "--reason", "ticket 7", "--json")
    assert done.exit_code in (0, 8), done.output
    assert json.loads(done.output)["transformation"]["kind"] == "relabel"
    missing = cli("transform", "dedup", __file__, "--input", "wine@v9", "--json")
    assert missing.exit_code == 3 and "not_found" in missing.output
    listed = cli("transformations", "wine", "--json")
    assert [t["name"] for t in json.loads(listed.output)] == ["relabel"]
    # Printed, a step run without --script says its code was not recorded (it read "code unknown code").
    printed = cli("relabel", "wine@v2", "--set", f"{first[RECORD_ID]}={new}", "--reason", "ticket 8")
    assert printed.exit_code in (0, 8) and "code not recorded (no --script)" in printed.output, printed.output


def test_a_key_or_record_given_twice_is_refused(cli, wine_ward: Ward) -> None:  # type: ignore[no-untyped-def]
    """``--param C=1 --param C=2`` recorded C=2 (the last one) and exited 0; ``--set`` the same."""
    _, table = wine_ward.read_version("wine", "v2")
    rid = table.column(RECORD_ID)[0].as_py()
    refusals = [
        (cli("relabel", "wine@v2", "--set", f"{rid}=1", "--set", f"{rid}=2", "--reason", "r", "--json"), rid),
        (cli("transform", "dedup", __file__, "--input", "wine@v2", "--param", "k=1", "--param", "k=2", "--json"), "k"),
        (cli("train", "start", "wine-clf", "--param", "C=1", "--param", "C=2", "--json"), "C"),
    ]
    for refused, key in refusals:
        assert refused.exit_code == 2, refused.output
        assert f"{key!r} twice" in json.loads(refused.stdout)["message"]
    assert [t["name"] for t in wine_ward.transformations("wine")] == []


def test_hints_that_name_export_give_a_command_that_runs(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown record id in `relabel --set` or `contribute --removes` is refused with a hint naming
    `dataward export`: the command in the hint runs as written (export needs -o)."""
    monkeypatch.chdir(tmp_path)
    unknown = "0" * 64
    ids = tmp_path / "ids.txt"
    ids.write_text(unknown + "\n")
    refusals = [
        cli("relabel", "wine@v2", "--set", f"{unknown}=1", "--reason", "r", "--json"),
        cli("contribute", "wine", "--removes", str(ids), "--source", "cleanup", "--json"),
    ]
    for refused in refusals:
        assert refused.exit_code == 2, refused.output
        hint = json.loads(refused.stdout)["hint"]
        command = hint.split("`")[1].split()
        assert command[0] == "dataward", hint
        ran = cli(*command[1:])
        assert ran.exit_code == 0, (hint, ran.output)


def test_quarantine_a_key_from_the_command_line(cli, wine_ward: Ward) -> None:  # type: ignore[no-untyped-def]
    bot_key = wine_ward.contribution("wine#1")["key"]
    done = cli("quarantine", bot_key, "--reason", "leaked", "--json")
    assert done.exit_code == 0, done.output
    (wine,) = json.loads(done.output)["datasets"]
    assert wine["quarantined"] == ["wine#1"] and wine["rollback_version"]["ref"] == "wine@v3"
    readable = cli("quarantine", "principal:scraper", "--reason", "again")
    assert readable.exit_code == 0 and "nothing new" in readable.output


def test_trace_a_file_and_a_row_hashed_on_the_callers_side(cli, wine_ward: Ward, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import wine_rows, write_csv

    rows = wine_rows(0, 3)
    stranger = dict(rows[0], alcohol=99.5)
    suspicious = write_csv(tmp_path / "found-on-a-forum.csv", [*rows, stranger])
    done = cli("trace", "--file", str(suspicious), "--dataset", "wine", "--json")
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["subject"]["rows"] == 4 and len(result["traces"]) == 3 and len(result["unknown"]) == 1
    assert {t["contributions"][0]["submitted_by"] for t in result["traces"]} == {"scraper"}
    _, v1 = wine_ward.read_version("wine", "v1")
    first = {k: v for k, v in v1.to_pylist()[0].items() if k != RECORD_ID}
    one = cli("trace", "--row", json.dumps(first), "--dataset", "wine", "--json")
    assert one.exit_code == 0, one.output
    assert json.loads(one.output)["traces"][0]["subject"]["id"] == v1.to_pylist()[0][RECORD_ID]
    readable = cli("trace", "--file", str(suspicious), "--dataset", "wine")
    assert readable.exit_code == 0 and "1 never contributed" in readable.output
    assert cli("trace", "--file", str(suspicious)).exit_code == 2
    assert cli("trace").exit_code == 2


def test_card_writes_croissant_and_markdown(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    done = cli("card", "wine@v2", "-o", str(tmp_path / "card"), "--json")
    assert done.exit_code == 0, done.output
    paths = json.loads(done.output)
    assert json.loads(Path(paths["croissant"]).read_text())["name"] == "wine"
    assert "## Sources and licences" in Path(paths["markdown"]).read_text()


def test_a_description_cannot_close_the_cards_script_element(  # type: ignore[no-untyped-def]
    cli, wine_ward: Ward, tmp_path: Path
) -> None:
    """A dataset page embeds croissant.json in ``<script type="application/ld+json">``: a description (or
    licence, source, reason) holding ``</script>`` closed it there, and what followed ran as the page's
    script. The file says the same JSON with ``<``, ``>`` and ``&`` escaped."""
    from dataward.service.cards import croissant_text

    payload = "wine </script><script>alert(document.cookie)</script> & more"
    made = wine_ward.card("wine@v2")["croissant"] | {"description": payload}
    text = croissant_text(made)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == made
    done = cli("card", "wine@v2", "-o", str(tmp_path / "card"), "--json")
    assert done.exit_code == 0, done.output
    assert Path(json.loads(done.output)["croissant"]).read_text() == croissant_text(
        wine_ward.card("wine@v2")["croissant"]
    )


def test_no_output_of_a_command_overwrites_the_wards_own_files(  # type: ignore[no-untyped-def]
    cli, wine_ward: Ward, tmp_path: Path
) -> None:
    """`checkpoint -o WARD/catalog.sqlite` replaced the catalog with a checkpoint and destroyed the ward;
    `ledger public-key -o`, `attest -o`, `card -o` and `gate report --html` wrote into its folder too.
    Only `export` refused. Every output inside the ward's folder, store or catalog is refused (exit 2)."""
    folder = wine_ward.folder
    catalog = folder / "catalog.sqlite"
    before = catalog.read_bytes()
    refused = [
        cli("checkpoint", "-o", str(catalog)),
        cli("ledger", "export", "-o", str(folder / "ledger.json")),
        cli("ledger", "public-key", "-o", str(folder / "keys" / "ward-ed25519.pem")),
        cli("attest", "wine@v2", "-o", str(folder / "objects" / "wine.intoto.jsonl")),
        cli("card", "wine@v2", "-o", str(folder / "card")),
        cli("gate", "report", "wine#2", "--html", str(folder / "gate.html")),
    ]
    for result in refused:
        assert result.exit_code == 2 and "inside the ward's own files" in result.output, result.output
    assert catalog.read_bytes() == before
    assert not (folder / "card").exists() and not (folder / "gate.html").exists()
    assert wine_ward.verify().ok
    # Outside the ward, the same commands write as ever.
    assert cli("checkpoint", "-o", str(tmp_path / "cp.json")).exit_code == 0
    assert cli("ledger", "public-key", "-o", str(tmp_path / "ward.pem")).exit_code == 0
