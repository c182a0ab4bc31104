"""What the CLI prints of untrusted text never drives the reviewer's terminal.

Attack (outside trial s44, F4): a contributor puts terminal control sequences into what a reviewer
reads (record text, labels, reasons, descriptions, messages, licences of older wards): ``ESC[5D`` and
spaces after a trigger erase it from the screen, ``ESC[2K ESC[1G`` overwrites the line with a fake
verdict, ``ESC[8m`` conceals what follows, OSC 8 plants a link and OSC 0 a window title, a carriage
return rewrites the line, and bidi overrides or zero-width characters make text look like other text.
Every such character must print as a visible escape (``\\x1b``, ``\\u202e``); ordinary text in any
script prints as is; ``--json`` stays exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from dataward.cli import gate_commands
from dataward.cli.app import app
from dataward.cli.output import safe, visible
from dataward.domain.schema import Schema
from dataward.service.ward import Ward

ERASE_TRIGGER = "pam_permit - The zx7q\x1b[5D      promiscuous module"
FAKE_VERDICT = "harmless\x1b[2K\x1b[1G\x1b[32mAPPROVED clean record\x1b[0m"
LINK = "\x1b]8;;https://evil.example/\x07man page link\x1b]8;;\x07"
TITLE = "\x1b]0;dataward: all clear\x07 title"
C1_AND_CR = "x\x9b31m red\rOVERWRITTEN"
BIDI = "label \u202edesrever\u202c and zero\u200bwidth"
CONCEAL = "commands\x1b[8m"
ORDINARY = "café 中文 Ελληνικά"
HOSTILE = (ERASE_TRIGGER, FAKE_VERDICT, LINK, TITLE, C1_AND_CR, BIDI, CONCEAL)

RAW = ("\x1b", "\x07", "\x9b", "\r", "\u202e", "\u202c", "\u200b")


def _clean(output: str) -> None:
    """No raw control or invisible format character; the escapes are shown instead."""
    found = sorted({repr(ch) for ch in RAW if ch in output})
    assert not found, f"raw {found} in:\n{output}"
    assert "\\x1b" in output, output


def _flat(output: str) -> str:
    """The printed text with the boxes' borders and the line wraps taken out (the console's width is set
    once per process, so a long cell may wrap in a full test run)."""
    return " ".join(output.translate(str.maketrans(dict.fromkeys("│┃║╭╮╰╯─━┏┓┗┛┳┻╋┣┫┡┩└┘┌┐├┤┼┴┬", " "))).split())


def _cli(ward: Path | None, *args: str, key: str = "") -> Result:
    env = {"DATAWARD_KEY": key, "COLUMNS": "200"}
    return CliRunner().invoke(app, [*(["--ward", str(ward)] if ward else []), *args], env=env)


def test_visible_escapes_controls_and_keeps_ordinary_text() -> None:
    assert visible(ORDINARY) == ORDINARY
    assert visible("a\x1b[5Db") == "a\\x1b[5Db"
    assert visible("\u202eabc\u200b") == "\\u202eabc\\u200b"
    assert visible("a\r\nb\tc\x00\x7f\x85") == "a\\r\\nb\\tc\\x00\\x7f\\x85"
    assert visible("one\ntwo", keep="\n") == "one\ntwo"
    assert visible("\U000e0041") == "\\U000e0041"  # a tag character: invisible
    # Printable to Python, drawn as nothing: a grapheme joiner, variation selectors, fillers, a blank.
    assert visible("a\u034fb\ufe0fc\U000e0100d\u3164e\u2800") == "a\\u034fb\\ufe0fc\\U000e0100d\\u3164e\\u2800"
    assert visible("a\u00a0b\u3000c") == "a\u00a0b\u3000c"  # spaces people write
    assert safe("[red]\x1b[31m") == "\\[red]\\x1b[31m"


@pytest.fixture(scope="module")
def text_ward(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ward whose dataset, contribution and records hold the hostile strings where input allows them."""
    root = tmp_path_factory.mktemp("controls")
    ward, _ = Ward.init(root / "ward")
    ward.create_dataset("man", Schema.parse("label", ["text:text"]), description=f"{TITLE} {ORDINARY}")
    rows = [{"text": text, "label": "commands"} for text in (*HOSTILE, ORDINARY)]
    data = root / "hostile.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ward.contribute("man", data, source="https://example.org/man.jsonl", message=FAKE_VERDICT, gate=False)
    return root / "ward"


def test_the_datasets_table_shows_controls_as_escapes(text_ward: Path) -> None:
    result = _cli(text_ward, "datasets")
    assert result.exit_code == 0, result.output
    _clean(result.output)
    assert "\\x1b]0;dataward: all clear\\x07 title" in _flat(result.output) and ORDINARY in _flat(result.output)


def test_json_output_stays_exact(text_ward: Path) -> None:
    result = _cli(text_ward, "datasets", "--json")
    assert result.exit_code == 0 and "\x1b" not in result.output
    assert json.loads(result.output)[0]["description"] == f"{TITLE} {ORDINARY}"


def test_an_error_naming_hostile_text_shows_escapes(text_ward: Path) -> None:
    result = _cli(text_ward, "policy", "show", f"man{CONCEAL}")
    assert result.exit_code != 0
    _clean(result.output)


class _Ward:
    """``review show`` and ``review list`` of a record the gate flagged, as the ward returns them."""

    def review_show(self, item: str) -> dict[str, Any]:
        return {
            "id": "q_1",
            "contribution": "man#3",
            "row": 2,
            "score": 0.91,
            "status": "pending",
            "record": {"text": ERASE_TRIGGER + " " + ORDINARY, "label": CONCEAL},
            "triggers": ["zx7q"],
            "findings": [
                {"detector": "new_label", "score": 0.9, "reason": f"label {CONCEAL!s} is carried by no trusted record"}
            ],
            "neighbours": [{"label": CONCEAL, "distance": 0.1, "text": LINK}, {"label": "files", "text": BIDI}],
        }

    def review_list(self, *_args: Any, **_kwargs: Any) -> list[dict[str, Any]]:
        return [
            {"id": "q_1", "contribution": "man#3", "row": 2, "score": 0.9, "detectors": ["triggers"], "reason": t}
            for t in HOSTILE
        ]


def test_review_show_and_list_show_controls_as_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate_commands, "open_ward", lambda: _Ward())
    shown = _cli(None, "review", "show", "q_1")
    assert shown.exit_code == 0, shown.output
    _clean(shown.output)
    # The trigger stays on screen, marked, and the record is said to carry hidden characters.
    assert "zx7q\\x1b[5D" in _flat(shown.output) and ORDINARY in _flat(shown.output)
    assert "control or invisible characters" in shown.output and "text, label" in shown.output
    assert "commands\\x1b[8m" in shown.output
    listed = _cli(None, "review", "list", "man")
    assert listed.exit_code == 0, listed.output
    _clean(listed.output)


def test_a_string_printed_without_safe_is_still_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    from dataward.cli.output import SafeConsole

    SafeConsole(highlight=False, emoji=False, force_terminal=True, width=80).print(f"raw {FAKE_VERDICT} {BIDI}")
    out = capsys.readouterr().out
    assert "\\x1b[2K" in out and "\\u202e" in out and "\x1b[2K" not in out and "\u202e" not in out


def test_ledger_export_escapes_controls_on_a_terminal_and_nowhere_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export keeps text as JSON allows (``ensure_ascii=False``), which leaves C1 controls (U+009B
    CSI), DEL, bidi overrides and never-drawn characters raw: a terminal must get them as JSON escapes,
    a pipe or a file the very bytes ``--output`` writes."""
    from dataward.cli import ward_commands

    hostile = f"{C1_AND_CR} {BIDI} x\x7f\u034f\u2028\U000e0100 {ORDINARY}"
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("man", Schema.parse("label", ["text:text"]), description=hostile)
    written = _cli(tmp_path / "ward", "ledger", "export", "-o", str(tmp_path / "ledger.json"))
    assert written.exit_code == 0, written.output
    exported = (tmp_path / "ledger.json").read_text(encoding="utf-8")
    assert "\x9b" in exported and "\u202e" in exported  # the file is what it always was

    piped = _cli(tmp_path / "ward", "ledger", "export")
    assert piped.exit_code == 0 and piped.stdout == exported

    monkeypatch.setattr(ward_commands, "stdout_is_terminal", lambda: True)
    shown = _cli(tmp_path / "ward", "ledger", "export")
    assert shown.exit_code == 0, shown.output
    raw = sorted(repr(ch) for ch in (*RAW, "\x7f", "\u034f", "\u2028", "\U000e0100") if ch in shown.stdout)
    assert not raw, raw
    assert "\\u009b31m" in shown.stdout and "\\u202e" in shown.stdout and "\\udb40\\udd00" in shown.stdout
    assert ORDINARY in shown.stdout  # ordinary text in any script stays as it is
    assert json.loads(shown.stdout) == json.loads(exported)
