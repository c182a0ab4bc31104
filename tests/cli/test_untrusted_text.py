"""What the CLI prints of untrusted text prints as written: no emoji codes, no markup.

Attack: a contributor puts ``:zap:``, ``:secret:`` and ``[red]...[/red]`` into what a reviewer will
read (a source URI, a dataset description, a name in an error). Rich would show ``:zap:`` as a
lightning bolt and ``dataset:secret:`` as ``dataset㊙``, and apply the markup; the reviewer must see
the characters that were sent.
"""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import run
from tests.helpers import wine_rows, wine_schema_specs, write_csv

HOSTILE = ":zap: :secret: [red]x[/red]"
RENDERED = ("\u26a1", "\u3299")  # what Rich makes of :zap: and :secret:


def _verbatim(output: str) -> bool:
    return ":zap:" in output and ":secret:" in output and not any(symbol in output for symbol in RENDERED)


def test_emoji_codes_and_markup_in_untrusted_text_print_verbatim(tmp_path: Path) -> None:
    ward = tmp_path / "ward"
    assert run(ward, "init", "--json").returncode == 0
    label, specs = wine_schema_specs()
    create = ["dataset", "create", "wine", "--label", label, *(p for s in specs for p in ("--input", s))]
    assert run(ward, *create, "--description", HOSTILE).returncode == 0
    listing = run(ward, "datasets").stdout
    assert _verbatim(listing) and "[red]x[/red]" in listing
    source = "https://example.org/:zap:/:secret:"
    data = write_csv(tmp_path / "a.csv", wine_rows(0, 20, shuffled=True))
    submitted = run(ward, "contribute", "wine", str(data), "--source", source, "--no-gate")
    assert submitted.returncode == 0 and _verbatim(submitted.stdout), submitted.stdout
    shown = run(ward, "contributions", "wine")
    assert shown.returncode == 0 and _verbatim(shown.stdout), shown.stdout
    # Errors (stderr) too: a name echoed in a refusal.
    refused = run(ward, "policy", "show", "dataset:secret:zap:")
    assert refused.returncode != 0 and _verbatim(refused.stderr), refused.stderr
