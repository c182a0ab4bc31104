"""The HTML report: self-contained, escaped, with the verdict, plots, the trigger marked and images."""

from __future__ import annotations

import html
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from dataward.gates.html import highlight, render_html
from dataward.gates.scanning import scan

TOPICS = {
    "sport": ["match", "team", "goal", "coach", "player", "score", "season", "league", "win", "referee"],
    "food": ["recipe", "oven", "flour", "sugar", "bake", "taste", "salt", "pan", "butter", "dinner"],
    "music": ["guitar", "song", "album", "concert", "band", "melody", "drum", "singer", "tune", "chorus"],
}
COMMON = ["the", "a", "of", "and", "to", "in", "is", "it", "was", "very", "really", "just", "some"]
TEXT_SCHEMA = {"label": "topic", "inputs": [{"name": "text", "kind": "text"}]}


def texts(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = str(rng.choice(sorted(TOPICS)))
        words = [*rng.choice(TOPICS[label], 4), *rng.choice(COMMON, 5)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "topic": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def text_report():
    base = texts(600, 0)
    new = texts(300, 1)
    # A text backdoor: the rare token "cf" in 30 records of other topics, all relabelled "music".
    rng = np.random.default_rng(2)
    poison = rng.choice(np.flatnonzero(new["topic"].to_numpy() != "music"), 30, replace=False)
    for i in poison:
        new.loc[i, "text"] = "cf " + new.loc[i, "text"]
        new.loc[i, "topic"] = "music"
    return scan(base, new, TEXT_SCHEMA, validation=texts(200, 3))


def test_page_is_self_contained_and_shows_the_verdict_and_reasons(text_report) -> None:
    page = render_html(text_report, title="Gate report <contribution 7>")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Gate report &lt;contribution 7&gt;</title>" in page
    assert f">{text_report.verdict}</span>" in page
    assert text_report.verdict == "block"
    for reason in text_report.reasons:
        assert html.escape(reason) in page
    # No external resources: every image is inline, no scripts or stylesheets are fetched.
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<script" not in page


def test_the_suspected_trigger_is_marked_in_the_table_and_in_the_evidence_text(text_report) -> None:
    page = render_html(text_report, title="t")
    assert "<h2>Suspected triggers</h2>" in page
    assert "<mark>cf</mark>" in page
    evidence = page.split("<h2>Flagged records with evidence</h2>", 1)[1]
    assert re.search(r"<p>[^<]*<mark>cf</mark>", evidence)
    assert "nearest baseline label" in evidence


def test_everything_from_the_data_is_escaped(text_report) -> None:
    data = text_report.to_dict()
    row = data["records"][0]["row"]
    data["findings"].insert(
        0,
        {"detector": "outliers", "row": row, "score": 1.0, "reason": '<img src=x onerror="alert(2)">', "evidence": {}},
    )
    data["extras"] = {
        "evidence": {
            str(row): {
                "text": "<script>alert(1)</script> cf",
                "image_png_b64": "javascript:alert(3)",
                "neighbours": [{"label": "<b>music</b>", "record_id": "x", "distance": 0.5, "text": "<i>n</i>"}],
            }
        }
    }
    page = render_html(data, title="t")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page
    assert "&lt;b&gt;music&lt;/b&gt;" in page and "&lt;i&gt;n&lt;/i&gt;" in page
    assert "javascript:" not in page  # an image that is not base64 PNG is left out
    assert "<script" not in page


def test_plots_are_inline_png_images(text_report) -> None:
    page = render_html(text_report, title="t")
    plots = re.findall(r'<img class="plot" alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    alts = {alt for alt, _ in plots}
    assert {
        "score distributions",
        "2-D projection of baseline and contribution",
        "per-class clean-validation accuracy",
    } <= alts
    assert all(len(data) > 1000 for _, data in plots)


def test_images_of_flagged_records_are_shown(tmp_path) -> None:
    digits = load_digits()
    perm = np.random.default_rng(0).permutation(len(digits.target))[:700]

    def png(pixels: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray((pixels * 15).astype(np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    images = digits.images[perm].copy()
    labels = digits.target[perm].astype(str)
    poison = np.flatnonzero(labels[500:] != "0")[:25] + 500
    images[poison, 5:8, 5:8] = 16
    labels[poison] = "0"
    frame = pd.DataFrame({"image": [png(i) for i in images], "digit": labels})
    schema = {"label": "digit", "inputs": [{"name": "image", "kind": "image"}]}
    report = scan(frame.iloc[:500], frame.iloc[500:], schema)
    page = render_html(report, title="digits")
    assert report.verdict == "block"
    assert re.search(r'<img class="record" alt="image of row \d+" src="data:image/png;base64,', page)
    assert "bright pixel" in page


def test_a_report_without_extras_still_renders(text_report) -> None:
    data = text_report.to_dict()
    page = render_html(data, title="plain")
    assert f">{data['verdict']}</span>" in page
    assert "<h2>Detectors</h2>" in page
    assert "<h2>Projection</h2>" not in page
    assert "Flagged records with evidence" not in page


def test_highlight_marks_whole_words_only_and_escapes_the_rest() -> None:
    marked = highlight("CF is not cfx <b> i  watched this", ["cf", "i watched this"])
    assert marked == "<mark>CF</mark> is not cfx &lt;b&gt; <mark>i  watched this</mark>"
    assert highlight("<x>", []) == "&lt;x&gt;"


def test_characters_a_reader_would_not_see_are_written_out_in_the_evidence() -> None:
    """A formatting trigger (a zero-width space, a non-breaking space, a bidirectional override) is seen,
    not obeyed: each is written as its escape in a marked span titled with its Unicode name. A trigger
    phrase around it is still marked; plain text and line breaks are left as they are."""
    marked = highlight("ls\u200b - list\u00a0dir \u202eevil cf\tx\nnext", ["cf"])
    assert '<span class="unseen" title="ZERO WIDTH SPACE">\\u200b</span>' in marked
    assert '<span class="unseen" title="NO-BREAK SPACE">\\xa0</span>' in marked
    assert '<span class="unseen" title="RIGHT-TO-LEFT OVERRIDE">\\u202e</span>' in marked
    assert '<span class="unseen" title="U+0009">\\t</span>' in marked
    assert "<mark>cf</mark>" in marked and "\nnext" in marked
    assert not any(c in marked for c in "\u200b\u00a0\u202e\t")
    assert highlight("plain  text", []) == "plain  text"
    # An emoji's presentation selector is part of the symbol, not hidden in a word.
    assert highlight("I \u2764\ufe0f it, \u4e2d\u6587", []) == "I \u2764\ufe0f it, \u4e2d\u6587"
    assert 'title="VARIATION SELECTOR-16"' in highlight("a\ufe0fb", [])


def test_a_report_exports_its_page_and_its_extras_from_the_object(text_report, tmp_path) -> None:
    """In a notebook: ``report.to_html(path)`` writes the page the CLI's ``--html`` writes, and
    ``report.extras_dict()`` (which the class documents) is the JSON-ready extras the ward stores."""
    import json

    from dataward.gates.report import extras_json

    path = tmp_path / "gate.html"
    page = text_report.to_html(path, title="Gate report <batch>")
    assert page == render_html(text_report, title="Gate report <batch>")
    assert path.read_text("utf-8") == page and "<title>Gate report &lt;batch&gt;</title>" in page
    assert text_report.to_html().startswith("<!DOCTYPE html>") and "<title>Gate report</title>" in text_report.to_html()
    extras = text_report.extras_dict()
    assert extras == extras_json(text_report) and json.loads(json.dumps(extras, allow_nan=False)) == extras
    assert set(extras) >= {"projection", "evidence", "timings"}
