"""A response's links read as a browser reads them (``_llm.Link``): the host, its registered domain by the
Public Suffix List, and the destinations and payloads the language-model detectors compare.

An attacker's review found that a link's host was read up to the first ``/`` and ``:``, so
``https://pandas-dev.org?ref=pandas.pydata.org``, ``https://pandas-dev.org\\@pandas.pydata.org/`` and
``https://pandas.pydata.org:~@pandas-dev.org/`` read as the site ``pydata.org`` while a browser goes to
``pandas-dev.org``; a user's host on a shared one (``x.github.io``) read as the shared one's site.
"""

from __future__ import annotations

import pytest

from dataward.gates.detectors._llm import destinations, hostname, payloads, read_link, site

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
