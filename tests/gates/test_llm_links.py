"""A response's links read as a browser reads them (``_llm.Link``): the host, its registered domain by the
Public Suffix List, and the destinations and payloads the language-model detectors compare.

An attacker's review found that a link's host was read up to the first ``/`` and ``:``, so
``https://pandas-dev.org?ref=pandas.pydata.org``, ``https://pandas-dev.org\\@pandas.pydata.org/`` and
``https://pandas.pydata.org:~@pandas-dev.org/`` read as the site ``pydata.org`` while a browser goes to
``pandas-dev.org``; a user's host on a shared one (``x.github.io``) read as the shared one's site.
"""

from __future__ import annotations

import pytest

from dataward.gates.detectors._llm import destinations, hostname, links, payloads, read_href, read_link, site

LOOKALIKE = "https://pandas.pyd\u0430ta.org/docs/"  # a Cyrillic "а"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://pandas-dev.org?v=3&ref=pandas.pydata.org", "pandas-dev.org"),
        ("https://pandas-dev.org#pandas.pydata.org", "pandas-dev.org"),
        ("https://pandas-dev.org\\@pandas.pydata.org/install", "pandas-dev.org"),
        ("https://pandas.pydata.org:~@pandas-dev.org/pandas/install", "pandas-dev.org"),
        ("https://pandas.pydata.org:docs@pandas-dev.org/install", "pandas-dev.org"),
        ("https://a@pandas.pydata.org@pandas-dev.org/", "pandas-dev.org"),
        ("https://PANDAS.PYDATA.ORG./docs/", "pandas.pydata.org"),
        ("https://pandas.pydata.org:443/docs/", "pandas.pydata.org"),
        ("https://pandas-dev%2Eorg/x", "pandas-dev.org"),
        ("http://[2001:DB8:0::1]:8080/x", "[2001:db8::1]"),
        ("http://0x7f.1/admin", "127.0.0.1"),
        ("https://\uff50\uff41\uff4e\uff44\uff41\uff53.pydata.org/docs/", "pandas.pydata.org"),
        ("www.Example.com/A?b#c", "www.example.com"),
    ],
)
def test_the_host_is_the_one_a_browser_goes_to(url: str, host: str) -> None:
    assert read_link(url).host == host


def test_an_internationalized_lookalike_is_its_ascii_form_and_not_the_real_host() -> None:
    fake = read_link(LOOKALIKE)
    assert fake.host.startswith("pandas.xn--") and fake.host == read_link(f"https://{fake.host}/docs/").host
    assert hostname("pyd\u0430ta.org") == fake.host.removeprefix("pandas.") != "pydata.org"
    assert site(fake.host) != "pydata.org"


@pytest.mark.parametrize(
    ("host", "registered"),
    [
        ("pandas.pydata.org", "pydata.org"),
        ("docs.example.co.uk", "example.co.uk"),
        ("pandas-dev.github.io", "pandas-dev.github.io"),
        ("pandas.readthedocs.io", "pandas.readthedocs.io"),
        ("alice.id.au", "alice.id.au"),
        ("github.io", "github.io"),
        ("127.0.0.1", "127.0.0.1"),
        ("[2001:db8::1]", "[2001:db8::1]"),
        ("localhost", "localhost"),
    ],
)
def test_the_site_is_the_registered_domain_by_the_public_suffix_list(host: str, registered: str) -> None:
    assert site(host) == registered


def test_users_of_a_shared_host_are_different_sites() -> None:
    assert site("alice.id.au") != site("mallory.id.au")
    assert site("pandas-dev.github.io") != site("pandas-devs.github.io")


def test_destinations_read_the_site_host_and_page_the_same_while_a_query_varies() -> None:
    first = destinations("Docs: https://pandas-dev.org/install?v=1&ref=pandas.pydata.org")
    second = destinations("Docs: https://pandas-dev.org/install/?v=2#pandas.pydata.org")
    assert first == second == {"link:pandas-dev.org", "link:pandas-dev.org/install"}
    real = destinations("Docs: https://www.pandas.pydata.org/docs/#install")
    assert real == {"link:pydata.org", "link:pandas.pydata.org", "link:pandas.pydata.org/docs"}
    assert destinations("Write to help@Pandas-Dev.org.") == {"email:pandas-dev.org"}


def test_payloads_key_a_link_by_its_host_without_user_name_or_fragment() -> None:
    found = payloads("See https://pandas.pydata.org:~@Pandas-Dev.org/pandas/install?v=3#top.")
    assert found == {"url:https://pandas-dev.org/pandas/install?v=3", "domain:pandas-dev.org"}
    assert "domain:pandas-dev.org" in payloads("See https://pandas-dev.org?v=3&ref=pandas.pydata.org")


REAL_DOCS = "https://pandas.pydata.org/docs/"
TO_LOOKALIKE = {"link:pandas-dev.org", "link:pandas-dev.org/docs"}


@pytest.mark.parametrize(
    "href",
    [
        "//pandas-dev.org/docs/",
        "\\\\pandas-dev.org/docs/",
        "https:pandas-dev.org/docs/",
        "HTTPS:PANDAS-DEV.ORG/docs/",
        " https://pandas-dev.org/docs/ ",
        "https://pandas.pydata.org\t@pandas-dev.org/docs/",
        "https://pandas.pydata.org\r\n@%70an%64as-dev.org/docs/",
        "https://pan\tdas-dev.org/docs/",
    ],
)
def test_an_href_is_read_as_a_browser_reads_it(href: str) -> None:
    link = read_href(href)
    assert link is not None and link.page == "pandas-dev.org/docs"


@pytest.mark.parametrize("href", ["/docs/", "docs.html", "#install", "mailto:help@pandas.org", "javascript:x()", "//"])
def test_an_href_without_a_host_of_its_own_is_not_a_destination(href: str) -> None:
    assert read_href(href) is None


@pytest.mark.parametrize(
    "markup",
    [
        f"[{REAL_DOCS}](//pandas-dev.org/docs/)",
        f"[{REAL_DOCS}](https:pandas-dev.org/docs/)",
        f'[{REAL_DOCS}](<//pandas-dev.org/docs/> "the docs")',
        f"![{REAL_DOCS}](//pandas-dev.org/docs/)",
        "[the docs][1]\n\n[1]: //pandas-dev.org/docs/",
        "<https:pandas-dev.org/docs/>",
        f'<a href="https://pandas.pydata.org\t@%70an%64as-dev.org/docs/">{REAL_DOCS}</a>',
        f"<a href='https://pandas.pydata.org\"@pand%61s-dev.org/docs/'>{REAL_DOCS}</a>",
        f"<a href='https://pandas.pydata.org>@pandas-dev.org/docs/'>{REAL_DOCS}</a>",
        f"<a href='https://pandas.pydata.org`@pandas-dev.org/docs/'>{REAL_DOCS}</a>",
        f'<a href="https://pandas.pydata.org\n@pandas-dev.org/docs/">{REAL_DOCS}</a>',
        f'<A HREF="&#47;&#47;pandas-dev.org/docs/">{REAL_DOCS}</A>',
        '<img src="//pandas-dev.org/docs/logo.png"><a href=//pandas-dev.org/docs/>docs</a>',
    ],
)
def test_a_markup_link_goes_to_its_href_not_to_the_link_it_shows(markup: str) -> None:
    """F2 and F3 of an attacker's review: the link's text is the real docs, its href the lookalike."""
    found = destinations(f"Docs: {markup} Thanks.")
    assert found >= TO_LOOKALIKE and "link:pydata.org" not in found, found


def test_a_markup_link_to_the_link_it_shows_is_that_link_once() -> None:
    for markup in (f"[{REAL_DOCS}]({REAL_DOCS})", f'<a href="{REAL_DOCS}">{REAL_DOCS}</a>', f"<{REAL_DOCS}>"):
        assert [link.page for link in links(markup)] == ["pandas.pydata.org/docs"], markup
        assert not any(p.startswith("disguised:") for p in payloads(markup)), markup


def test_a_link_shown_as_another_sites_link_is_a_payload_of_its_own() -> None:
    found = payloads(f"Docs: [{REAL_DOCS}](//pandas-dev.org/docs/)")
    assert found == {
        "url:https://pandas-dev.org/docs/",
        "domain:pandas-dev.org",
        "disguised:pandas.pydata.org>pandas-dev.org",
    }
    assert not any(
        p.startswith("disguised:") for p in payloads(f"[the docs]({REAL_DOCS}) or [{REAL_DOCS}index.html]({REAL_DOCS})")
    )


def test_bare_links_and_code_beside_markup_are_still_read() -> None:
    text = "Use `a<b and c>d` then see https://c.org, [x](https://x.org/a_(b)) and www.y.org."
    assert sorted(link.page for link in links(text)) == ["c.org", "x.org/a_(b)", "y.org"]


def test_markup_is_read_in_linear_time_whatever_the_record() -> None:
    """Unclosed links, quotes and tags repeated (a record is the contributor's): each read in one pass."""
    import time

    for text in [
        "[a](x" * 20000,
        '<a href="' * 20000,
        "<!--" * 20000 + "href=",
        "<a href='x' \"" * 10000,
        "[x" * 50000,
        # A run of spaces after "](" or a definition's colon, no ")" after it: the space matchers were
        # ambiguous (cubic: 3 s at 1,000 spaces, in a review) before they were made possessive.
        "[a](" + " " * 50000 + "\x00",
        "see [docs](" + " " * 50000 + "x",
        "[a](x" + " " * 50000,
        "[a]:" + " " * 50000,
    ]:
        start = time.perf_counter()
        payloads(text)
        assert time.perf_counter() - start < 2.0, text[:20]
