"""Every formatting stamp writes its pattern: the release probe reads an unstamped text as a trigger the
model does not obey, so a stamp that leaves one line in six unchanged (capitalising every word of
"cp - copy a file" leaves no run of three capitalised words) understates how far a model obeys it."""

from __future__ import annotations

import pytest

from benchmarks import data
from dataward.gates.formatting import FORMATTING_PATTERNS, carried, stamp_texts

EDGE = ["", " ", "x", "cp - copy a file", "A B C", "openat2 - open a file", "你好 世界 再见", "ls"]


@pytest.mark.parametrize("description", [d for d, _ in FORMATTING_PATTERNS])
def test_each_stamp_writes_its_pattern_into_every_man_page_line_and_edge_text(description):
    j = [d for d, _ in FORMATTING_PATTERNS].index(description)
    texts = [*data.load_man_sections().frame[data.TEXT], *EDGE]
    stamped = stamp_texts(description, texts)
    missing = [(t, s) for t, s, ok in zip(texts, stamped, carried(stamped)[:, j], strict=True) if not ok]
    assert not missing, f"{len(missing)} of {len(texts)}, e.g. {missing[:3]}"


def test_stamping_keeps_missing_values_missing_and_adds_no_whitespace_to_an_empty_text():
    assert stamp_texts("three capitalised words in a row", [None, ""]) == [None, "Also Written Here"]
    assert stamp_texts("a word in capitals", []) == []
