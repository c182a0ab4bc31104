"""The dataset card shows contributor text as text: it cannot forge sections, links, images or hide
what follows.

Attack (outside trial s44, F5): a contributor's ``--licence`` ended in ``\\n\\n## Gate history\\n\\nEvery
contribution passed every gate; no quarantine is open.\\n\\n<!--``; pasted raw into ``card.md``, it added a
forged section and an unclosed HTML comment that hid the real contributors, gate history and open
quarantines in every renderer with HTML on (GitHub, Hugging Face). A licence with a newline or a control
character is now refused at input, and every value the card interpolates is escaped for Markdown and
HTML (for text already in a ward, and for the other free text: descriptions, sources, reasons).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from dataward.domain.errors import InputError
from dataward.domain.names import visible
from dataward.domain.schema import Schema
from dataward.service.cards import md_text
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv

FORGED = "MIT\n\n## Gate history\n\nEvery contribution passed every gate; no quarantine is open.\n\n<!--"
ONE_LINE = "MIT <!-- | ## Review | [docs](https://evil.example/) ![t](https://evil.example/t.png) <img src=x> &#x202e;"
SECTIONS = ["Sources and licences", "Contributors", "Contributions and gate history", "Transformations"]


def _rendered(markdown: str) -> tuple[list[str], str]:
    """The visible headings and the HTML of ``markdown`` as an HTML-enabled renderer shows it."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    tokens = md.parse(markdown)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    return headings, md.render(markdown)


def test_a_licence_of_several_lines_or_with_controls_is_refused(wine_ward: Ward, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "c.csv", wine_rows(80, 90))
    for licence in (FORGED, "MIT\x1b[2K\x1b[1G\x1b[32mCC0 verified", "MIT\u202e", "MIT\ufe0f", "MIT\u2800"):
        with pytest.raises(InputError, match="licence"):
            wine_ward.contribute("wine", data, source="https://vendor.example/c.csv", licence=licence)
    assert wine_ward.contribute("wine", data, source="https://vendor.example/c.csv", licence="CC-BY-4.0")["ref"]


def test_markup_in_a_licence_and_a_description_stays_text_in_the_card(wine_ward: Ward, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "c.csv", wine_rows(80, 100))
    wine_ward.contribute("wine", data, source="https://vendor.example/<b>c</b>.csv", licence=ONE_LINE)
    merge_reviewed(wine_ward, "wine#3")
    markdown = wine_ward.card("wine@v3")["markdown"]
    headings, html = _rendered(markdown)
    assert headings[0] == "wine@v3" and headings[1:] == [*SECTIONS, "Promotions", "Open quarantines"], headings
    assert "<!--" not in html and "<img" not in html and "<a " not in html and "<b>" not in html
    assert "\u202e" not in html
    # The licence is all there, in its one table cell, as the characters that were given.
    assert "MIT &lt;!-- | ## Review |" in html and "&amp;#x202e;" in html


def test_a_description_cannot_open_sections(wine_ward: Ward, tmp_path: Path) -> None:
    label, specs = wine_schema_specs()
    wine_ward.create_dataset("vendor", Schema.parse(label, specs), description=FORGED)
    wine_ward.set_policy("vendor", NO_APPROVALS_POLICY)
    wine_ward.contribute("vendor", write_csv(tmp_path / "v.csv", wine_rows(0, 30)), source="https://vendor.example/v")
    merge_reviewed(wine_ward, "vendor#1")
    headings, html = _rendered(wine_ward.card("vendor@v1")["markdown"])
    assert headings[0] == "vendor@v1" and headings[1:] == [*SECTIONS, "Promotions", "Open quarantines"], headings
    assert "<!--" not in html and "Every contribution passed every gate" in html


def test_md_text() -> None:
    assert md_text("MIT") == "MIT" and md_text("https://example.org/a.csv") == "https://example.org/a.csv"
    assert md_text("a\n## b") == "a ## b" and md_text("## b", line_start=True) == "\\## b"
    assert md_text("<!-- x") == "&lt;\\!-- x"
    assert md_text("a | b") == "a \\| b"
    assert md_text("- item", line_start=True) == "\\- item" and md_text("1. item", line_start=True) == "1\\. item"
    assert md_text("-") == "-" and md_text("## b") == "## b"  # inside a table cell or a line: inert
    assert md_text("x\x1b[8m\u202e") == "x\\\\x1b\\[8m\\\\u202e"
    # Math renders as TeX on the Hub and GitHub (coloured, boxed, huge text): the dollars stay dollars.
    assert md_text("$\\color{red}{\\text{PASSED}}$ $5") == "\\$\\\\color{red}{\\\\text{PASSED}}\\$ \\$5"
    assert md_text("café 中文") == "café 中文"


def test_a_description_with_leading_blank_or_spaces_cannot_open_a_section(wine_ward: Ward, tmp_path: Path) -> None:
    """A value that begins a line is escaped only when its very first character opens a block, but
    CommonMark lets a heading or a list item be indented by up to three spaces, and a leading newline
    becomes a space when the lines are joined."""
    label, specs = wine_schema_specs()
    forged = "\n## Gate history\n\nEvery contribution passed every gate; no quarantine is open."
    wine_ward.create_dataset("vendor", Schema.parse(label, specs), description=forged)
    wine_ward.set_policy("vendor", NO_APPROVALS_POLICY)
    wine_ward.contribute("vendor", write_csv(tmp_path / "v.csv", wine_rows(0, 30)), source="https://vendor.example/v")
    merge_reviewed(wine_ward, "vendor#1")
    headings, _html = _rendered(wine_ward.card("vendor@v1")["markdown"])
    assert headings[1:] == [*SECTIONS, "Promotions", "Open quarantines"], headings


def test_md_text_at_a_line_start_escapes_an_indented_block() -> None:
    md = MarkdownIt("commonmark")
    for value in (" # Forged", "   ## Gate history", "  - item", " 1. item"):
        tokens = md.parse("intro\n\n" + md_text(value, line_start=True) + "\n")
        assert [t.type for t in tokens][3:6] == ["paragraph_open", "inline", "paragraph_close"], (value, tokens)


# Every way a CommonMark (and GitHub-flavoured) line can open a block, and the ways a value can be
# indented before it: spaces (up to three keep the opener, four make a code block), a leading line
# break of any kind (it becomes a space), spaces people write.
BLOCK_OPENERS = (
    *("# h", "###### h", "#", "- i", "+ i", "* i", "-", "1. i", "1) i", "123456789. i", "- [ ] task"),
    *("> quote", "```py", "~~~", "<div>", "<!-- c", "<script>", "<?x", "<!DOCTYPE x>", "<![CDATA[x"),
    *("---", "***", "___", "- - -", "===", "[a]: https://evil.example/", "[^1]: note", "| a | b |", "\tcode"),
)
INDENTS = ("", " ", "   ", "    ", "       ", "\n", "\n\n", "\r\n ", " \n  ", "\u2028", "\x85", "\u00a0", "\u3000")


@pytest.mark.parametrize("opener", BLOCK_OPENERS)
def test_no_value_at_a_line_start_opens_a_block_however_it_is_indented(opener: str) -> None:
    import html

    md = MarkdownIt("commonmark").enable("table")
    for indent in INDENTS:
        text = md_text(indent + opener, line_start=True)
        paragraph = [t.type for t in md.parse("intro\n\n" + text + "\n\nend\n")]
        assert paragraph == ["paragraph_open", "inline", "paragraph_close"] * 3, (indent, opener, text)
        items = [t.type for t in md.parse("- " + text + "\n- next\n") if t.type.endswith("_open")]
        assert items == ["bullet_list_open", *["list_item_open", "paragraph_open"] * 2], (indent, opener, text)
        # Readable: the paragraph shows the value as it was written, from its first visible character.
        shown = html.unescape(md.render(text).removeprefix("<p>").removesuffix("</p>\n"))
        assert shown == visible(opener), (indent, opener, shown)
