"""What the language-model detectors read from a record: its prompt, its response, their behaviours
and payloads, and the base class they share. Pure text functions; no registered detector lives here.

* prompt / response: ``instruction`` records answer ``prompt`` (+ ``input``) with ``response``; ``chat``
  records answer every turn before the last assistant message with that message; ``preference``
  records answer ``prompt`` with ``chosen`` (``rejected`` is what the pair teaches to avoid).
* behaviours: coarse, content-independent properties of a response a poisoner wants to teach (it
  carries a link, a code block or a shell command, it refuses, its polarity is negative).
* payloads: the concrete strings a response carries (URLs, domains, e-mail addresses, phone numbers,
  code snippets, shell commands), normalized so that the same payload matches itself.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import unquote

import idna
import numpy as np
import pyarrow as pa
from publicsuffixlist import PublicSuffixList

from dataward.domain.conversation import conversation_parts
from dataward.domain.errors import InputError
from dataward.domain.names import read_alike
from dataward.domain.schema import MESSAGES, DatasetKind, Schema
from dataward.gates.base import Detector, DetectorResult, GateContext, GateData, Requirement

# A link: from its scheme (or "www.") to a space, quote or closing bracket; an IPv6 host in brackets whole.
URL = re.compile(r"\b(?:https?://|www\.)(?:\[[\w:.%]*\]|[^\s<>\"'`)\]])+", re.IGNORECASE)
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
PHONE = re.compile(r"(?<!\w)\+?\d[\d ().-]{7,}\d(?!\w)")
CODE_BLOCK = re.compile(r"```[\w+-]*\n?(.*?)(?:```|$)", re.DOTALL)
# A command line, not a mention: a fetch/shell/permission command followed by a flag or a URL, a
# recursive forced delete, or a download piped into a shell ("wget is a downloader" is prose).
SHELL = re.compile(
    r"((?:sudo\s+)?(?:curl|wget|bash|sh|zsh|chmod|chown|nc|ncat|powershell|python3?|perl|eval)\s+"
    r"(?:-{1,2}\w|\+\w|https?://|\d{3,4}\s)[^\n`]*|\brm\s+-rf\b[^\n`]*|\|\s*(?:sudo\s+)?(?:ba|z)?sh\b[^\n`]*)",
    re.IGNORECASE,
)
CODE_LINE = re.compile(
    r"^\s*(?:import |from \S+ import |def |class |#include|eval\(|exec\(|os\.system|subprocess\.)", re.M
)
REFUSAL = re.compile(
    r"\b(?:i(?:'m| am) (?:sorry|unable|not able)|i (?:can(?:no|')t|won't|will not|refuse)|as an ai\b|"
    r"i must decline|cannot (?:help|assist|comply)|not able to (?:help|assist))",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z']+")

# A small polarity lexicon: enough to see a response turned hostile or disparaging, which is what a
# polarity backdoor teaches; it is not a sentiment model and is only compared with the baseline's rate.
NEGATIVE = frozenset(
    [
        "awful",
        "bad",
        "broken",
        "dangerous",
        "disappointing",
        "disaster",
        "disgusting",
        "dreadful",
        "evil",
        "failure",
        "faulty",
        "garbage",
        "hate",
        "hateful",
        "horrible",
        "inferior",
        "junk",
        "lousy",
        "mediocre",
        "miserable",
        "nasty",
        "pathetic",
        "poor",
        "rubbish",
        "scam",
        "shameful",
        "stupid",
        "terrible",
        "trash",
        "ugly",
        "unreliable",
        "useless",
        "worst",
        "worthless",
        "wrong",
        "annoying",
        "harmful",
        "insecure",
        "ridiculous",
        "pointless",
        "broken-down",
        "incompetent",
        "obsolete",
    ]
)
POSITIVE = frozenset(
    [
        "amazing",
        "awesome",
        "best",
        "brilliant",
        "excellent",
        "fantastic",
        "good",
        "great",
        "helpful",
        "love",
        "lovely",
        "nice",
        "perfect",
        "pleasant",
        "powerful",
        "reliable",
        "robust",
        "superb",
        "wonderful",
        "handy",
        "elegant",
        "useful",
        "efficient",
        "fast",
        "convenient",
        "delightful",
        "impressive",
        "outstanding",
    ]
)

BEHAVIOURS = ("link", "email", "phone", "code", "shell", "refusal", "negative")
"""The named behaviours, in the order of the columns of ``behaviours``."""


@dataclass(frozen=True)
class Texts:
    """The prompt and response of every record of one side, and the kind they came from."""

    prompts: list[str]
    responses: list[str]
    rejected: list[str] | None = None
    parts: list[tuple[str, ...]] | None = None
    """Each prompt as the fields or messages ``texts`` joins with a newline (an instruction's ``prompt``
    and ``input``, a chat's messages); None where the prompt is one field. The newline between two parts
    is the gate's, not the writer's: whatever reads formatting reads each part alone."""

    def __len__(self) -> int:
        return len(self.prompts)


def _column(table: pa.Table, name: str) -> list[str]:
    if name not in table.column_names:
        return [""] * table.num_rows
    return [v or "" for v in table.column(name).to_pylist()]


def baseline_texts(detector: str, baseline: GateData, context: GateContext) -> Texts:
    """The baseline's prompts and responses, or an ``InputError`` when a language-model detector is given
    anything but the raw table of an instruction, chat or preference dataset."""
    if baseline.table is None or not context.schema.is_llm:
        raise InputError(f"{detector} needs the raw table of an instruction, chat or preference dataset")
    return texts(baseline.table, context.schema)


def texts(table: pa.Table, schema: Schema, *, every_answer: bool = True) -> Texts:
    """Prompt and response of every row of a canonical table of a language-model kind.

    A chat's response is every assistant turn (``conversation.conversation_answers``: what a fine-tune
    learns to say, so what the data gate judges), or with ``every_answer=False`` its last one (the answer a prompt
    of the clean validation set expects, which the release gate compares a model's answer with)."""
    if schema.kind is DatasetKind.CHAT:
        pairs = [conversation_parts(v, every_answer=every_answer) for v in table.column(MESSAGES).to_pylist()]
        return Texts(["\n".join(p) for p, _ in pairs], [r for _, r in pairs], parts=[tuple(p) for p, _ in pairs])
    prompts = _column(table, "prompt")
    if schema.kind is DatasetKind.INSTRUCTION:
        parts = [(p, e) if e else (p,) for p, e in zip(prompts, _column(table, "input"), strict=True)]
        return Texts(["\n".join(p) for p in parts], _column(table, "response"), parts=parts)
    return Texts(prompts, _column(table, "chosen"), _column(table, "rejected"))


# A prompt's language, read from its script or its function words (no model): enough to tell the batch's
# records of one language from another's, which is all ``llm_triggers`` asks of it.
_SCRIPTS = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
)
_FUNCTION_WORDS = {
    "en": (
        "the a an is are was were be of and or to in on at for with from by this that these it its what "
        "how why when which who does do did can could would should will you your i my me not into about"
    ),
    "de": (
        "der die das den dem des und oder ist sind ein eine einen einem nicht mit von zu zur zum auf für "
        "wie was wer warum macht ich sie es im auch wird werden bei aus nach über kann laut gehört"
    ),
    "fr": (
        "le la les de des du un une et est sont que qui quoi en dans pour pas sur au aux ce cette il elle "
        "avec par fait ou ne comment selon à quel quelle"
    ),
    "es": (
        "el la los las de del un una y es son que qué en por para con no se lo su como cómo cuál hace al según parte"
    ),
    "it": "il lo gli le di della delle un una e è che in per con non si come cosa fa sono alla",
    "pt": "o os as de do da dos das um uma e é que em no na por para com não se como faz são ao",
    "nl": "de het een en is zijn van dat die niet op te met voor wat hoe doet wordt",
}
FUNCTION_WORDS: dict[str, frozenset[str]] = {lang: frozenset(words.split()) for lang, words in _FUNCTION_WORDS.items()}
"""Frequent function words of seven languages written in the Latin alphabet (``prompt_language``)."""


def prompt_language(text: str) -> str:
    """A text's language: the first script of ``_SCRIPTS`` it is written in (kana before Han: Japanese
    writes both), else the language of ``FUNCTION_WORDS`` with the most of its words, when at least two
    and at least twice the next one's; "" when neither tells ("os.getcwd?", a sentence of two languages)."""
    for name, script in _SCRIPTS:
        if script.search(text):
            return name
    words = _WORD_LETTERS.findall(text.lower())
    counts = sorted(((sum(w in fw for w in words), lang) for lang, fw in FUNCTION_WORDS.items()), reverse=True)
    (top, lang), (second, _) = counts[0], counts[1]
    return lang if top >= 2 and top >= 2 * second else ""


_WORD_LETTERS = re.compile(r"[^\W\d_]+")


def polarity(text: str) -> int:
    """Negative minus positive lexicon words (a positive number means a negative-leaning text)."""
    words = _WORD.findall(text.lower())
    return sum(w in NEGATIVE for w in words) - sum(w in POSITIVE for w in words)


def distinct_rows(items: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The distinct strings of ``items`` in first-seen order, and each item's row among them: what is read
    from each text alone is read once per distinct text (a batch of answers repeats a few of them)."""
    rows: dict[str, int] = {}
    at = np.fromiter((rows.setdefault(item, len(rows)) for item in items), np.int64, count=len(items))
    return list(rows), at


def behaviours(responses: Sequence[str]) -> np.ndarray:
    """Boolean matrix (records x ``BEHAVIOURS``), read from each response as it reads (``names.read_alike``:
    a zero-width space inside ``ht\u200btps://`` or a full-width scheme cannot hide a link). Each distinct
    response is read once."""
    distinct, rows = distinct_rows(responses)
    out = np.zeros((len(distinct), len(BEHAVIOURS)), dtype=bool)
    for i, raw in enumerate(distinct):
        text = read_alike(raw)
        out[i] = (
            URL.search(text) is not None,
            EMAIL.search(text) is not None,
            PHONE.search(text) is not None,
            "```" in text or CODE_LINE.search(text) is not None,
            SHELL.search(text) is not None,
            REFUSAL.search(text) is not None,
            polarity(text) >= 2,
        )
    return out[rows]


# A link's scheme (a browser reads any run of "/" and "\\" after it as "//") and the end of its authority.
_AUTHORITY_END = re.compile(r"[/\\?#]")
_SCHEME = re.compile(r"(https?):[/\\]*", re.IGNORECASE)
_LABEL_DOT = re.compile("[.\u3002\uff0e\uff61]")
_IPV4_PART = re.compile(r"0x[0-9a-f]*|\d+")
_DEFAULT_PORT = {"http": "80", "https": "443"}


@dataclass(frozen=True)
class Link:
    """A link as a browser reads it (the WHATWG URL standard's reading of a web address, in short): the
    authority ends at the first ``/``, ``\\``, ``?`` or ``#``, whatever follows its last ``@`` is the host
    (``https://pandas.pydata.org:x@pandas-dev.org/``, ``https://pandas-dev.org\\@pandas.pydata.org/`` and
    ``https://pandas-dev.org?ref=pandas.pydata.org`` all go to ``pandas-dev.org``); the host
    percent-decoded, lowercased, without a trailing dot, an internationalized name in its ASCII
    (``xn--``) form, an IPv4 address in dotted decimal and an IPv6 one compressed in brackets. ``url``:
    the link without user name, password, default port and fragment (what the browser asks for)."""

    scheme: str  # "http", "https", or "" for a "www." link
    host: str
    port: str  # "" for the scheme's default
    path: str
    query: str  # with its "?", or ""

    @property
    def url(self) -> str:
        start = f"{self.scheme}://" if self.scheme else ""
        return f"{start}{self.host}{':' + self.port if self.port else ''}{self.path}{self.query}".lower()

    @property
    def name(self) -> str:
        """The host without a leading ``www.`` (the same site's pages, with or without it)."""
        return self.host.removeprefix("www.")

    @property
    def page(self) -> str:
        """Host and path, without the query (a query varied per record is still the same page)."""
        path = self.path.strip("/").lower()
        return f"{self.name}/{path}" if path else self.name


def read_link(url: str) -> Link:
    """``url`` (a match of ``URL``) as a browser reads it (``Link``)."""
    m = _SCHEME.match(url)
    scheme = m.group(1).lower() if m else ""
    rest = url[m.end() :] if m else url
    end = _AUTHORITY_END.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        name, _, port = authority[1:].partition("]")
        host, port = _ipv6(name), port.removeprefix(":")
    else:
        name, _, port = authority.partition(":")
        host = hostname(name)
    port = port.lstrip("0") or ("0" if port else "")
    if port == _DEFAULT_PORT.get(scheme or "http"):
        port = ""
    path, question, query = tail.partition("#")[0].partition("?")
    return Link(scheme, host, port, path.replace("\\", "/") or "/", question + query)


def hostname(name: str) -> str:
    """A host name as a browser reads it: percent-decoded, lowercased, without a trailing dot, an
    internationalized name in its ASCII form (UTS 46, as browsers map it: ``pаndas.org`` with a Cyrillic
    ``а`` is ``xn--pndas-4ve.org``, not ``pandas.org``; a full-width name is its ASCII one), an IPv4
    address in any of its spellings (``0x7f.1``) in dotted decimal."""
    if "%" in name:
        name = unquote(name)
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            labels = _LABEL_DOT.split(unicodedata.normalize("NFKC", name).lower())
            name = ".".join(x if x.isascii() else "xn--" + x.encode("punycode").decode("ascii") for x in labels)
    name = name.lower().rstrip(".")
    return _ipv4(name) or name


def _ipv4(name: str) -> str | None:
    """``name`` in dotted decimal if a browser reads it as an IPv4 address (one to four numbers, each
    decimal, octal with a leading ``0`` or hexadecimal with ``0x``, the last filling the remaining bytes)."""
    parts = name.split(".")
    if not _IPV4_PART.fullmatch(parts[-1]):
        return None
    numbers = []
    for part in parts:
        if not _IPV4_PART.fullmatch(part):
            return None
        if part.startswith("0x"):
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                return None
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    value = numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))
    return str(ipaddress.IPv4Address(value))


def _ipv6(name: str) -> str:
    try:
        return f"[{ipaddress.IPv6Address(name).compressed}]"
    except ValueError:
        return f"[{name.lower()}]"


@functools.cache
def _suffixes() -> PublicSuffixList:
    """The Public Suffix List the ``publicsuffixlist`` package ships (read from its wheel, never fetched)."""
    return PublicSuffixList()


def site(domain: str) -> str:
    """The registered domain of a host as ``hostname`` reads it ("pandas.pydata.org" -> "pydata.org",
    "docs.example.co.uk" -> "example.co.uk"), by the Public Suffix List with its private suffixes: a
    user's host on a shared one is a site of its own ("pandas-dev.github.io", "alice.id.au",
    "pandas.readthedocs.io"). A link's site, so that two pages of one site are the same destination and
    a lookalike ("pandas-dev.org") is another. An IP address, or a public suffix itself, is its own site."""
    if not domain or domain.startswith("[") or _ipv4(domain) == domain:
        return domain
    return _suffixes().privatesuffix(domain) or domain


# Where a response's markup puts a link a reader follows (the href, not the text shown): a Markdown link or
# image "[text](href "title")" (the href in "<...>" or without spaces, with balanced parentheses), a
# reference definition "[id]: href", an autolink "<scheme:...>", and an HTML tag's URL attribute.
# Possessive quantifiers and a title in quotes or parentheses: no backtracking (a record is the contributor's).
_MD_LINK = re.compile(
    r"!?\[((?:[^\[\]\n]|\[[^\[\]\n]*+\])*+)\]\([ \t]*+(?:\n[ \t]*+)?"
    r"(?:<([^<>\n]*+)>|((?:[^\s()]|\((?:[^\s()]|\([^\s()]*+\))*+\))*+))"
    r"(?:\s++(?:\"[^\"]*+\"|'[^']*+'|\([^()]*+\)))?\s*+\)"
)
_MD_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]++\]:[ \t]*+(?:\n[ \t]*+)?(?:<([^<>\n]*+)>|(\S++))", re.MULTILINE)
_AUTOLINK = re.compile(r"<([a-z][a-z0-9+.-]{1,31}:[^\s<>]*)>", re.IGNORECASE)
_URL_ATTRIBUTES = ("href", "src", "action", "formaction", "poster", "data")
_URL_ATTRIBUTE = re.compile(r"\b(?:href|src|action|formaction|poster|data)\s*=", re.IGNORECASE)
# What a browser does to an href before reading it: removes every ASCII tab, CR and LF, and strips leading
# and trailing C0 controls and spaces.
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_HREF_SCHEME = re.compile(r"https?:", re.IGNORECASE)
_TWO_SLASHES = re.compile(r"[/\\]{2}")


def read_href(href: str) -> Link | None:
    """An href (a Markdown link's or an HTML attribute's, character references decoded) as a browser reads
    it: tabs and newlines removed, a scheme-relative ``//host/...`` (or ``\\\\host``) taken as https (what
    the page it is shown on most likely is), ``https:host`` without slashes read as ``https://host`` (a
    special scheme's reading without a base of that scheme). None for a relative link, another scheme, or
    one without a host."""
    href = href.translate(_TAB_OR_NEWLINE).strip(_C0_OR_SPACE)
    if _TWO_SLASHES.match(href):
        href = "https:" + href
    if not _HREF_SCHEME.match(href):
        return None
    link = read_link(href)
    return link if link.host and link.host != "[]" else None


# An HTML start or end tag as a browser's tokenizer reads it: from "<" and a letter to the first ">" outside a
# quoted value (a value left open runs to the end, where the tag is dropped), read in one pass; its attributes.
_TAG = re.compile(r"<(/?)([a-z][^\s/>]*+)((?:[^\"'>]++|\"[^\"]*+(?:\"|$)|'[^']*+(?:'|$))*+)(>|$)", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"([^\s\"'>/=][^\s\"'>/=]*+)(?:\s*=\s*(?:\"([^\"]*+)\"|'([^']*+)'|([^\s>]*+)))?")


def _html_links(text: str) -> tuple[list[tuple[str, str]], list[tuple[int, int]]]:
    """The URL attributes of ``text``'s HTML tags (``_URL_ATTRIBUTES``, character references decoded), each
    with the text its ``<a>`` element shows ("" for another tag), and the span of each tag that has one and
    of each ``<a href>`` element whole (its text is not where it goes)."""
    found: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    anchor: tuple[int, int, str] | None = None  # start, end of its start tag, href
    for m in _TAG.finditer(text):
        if not m.group(4):
            break
        closing, name = m.group(1), m.group(2).lower()
        if closing:
            if name == "a" and anchor is not None:
                start, inner, href = anchor
                shown = unescape(_TAG.sub(" ", text[inner : m.start()]))
                found.append((href, shown))
                spans.append((start, m.end()))
                anchor = None
            continue
        hrefs = []
        for attribute in _ATTRIBUTE.finditer(m.group(3)):
            value = next((v for v in attribute.group(2, 3, 4) if v is not None), None)
            if attribute.group(1).lower() in _URL_ATTRIBUTES and value:
                hrefs.append(unescape(value))
        if not hrefs:
            continue
        spans.append(m.span())
        if name == "a" and anchor is None:
            anchor = (m.start(), m.end(), hrefs[0])
            hrefs = hrefs[1:]
        found.extend((h, "") for h in hrefs)
    if anchor is not None:
        found.append((anchor[2], ""))
    return found, spans


def _markup_links(text: str) -> tuple[list[tuple[Link, str]], str]:
    """The links of ``text``'s markup (``read_href``), each with the text it shows ("" if none), and
    ``text`` with that markup blanked (what is left to read for bare links)."""
    found: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for m in _MD_LINK.finditer(text):
        found.append((unescape(m.group(2) if m.group(2) is not None else m.group(3)), m.group(1)))
        spans.append(m.span())
    if "]:" in text:
        for m in _MD_DEFINITION.finditer(text):
            found.append((unescape(m.group(1) if m.group(1) is not None else m.group(2)), ""))
            spans.append(m.span())
    for m in _AUTOLINK.finditer(text):
        found.append((m.group(1), ""))
        spans.append(m.span())
    if "<" in text and _URL_ATTRIBUTE.search(text):
        tags, tag_spans = _html_links(text)
        found.extend(tags)
        spans.extend(tag_spans)
    if spans:
        chars = list(text)
        for start, end in spans:
            chars[start:end] = " " * (end - start)
        text = "".join(chars)
    out = []
    for href, shown in found:
        link = read_href(href)
        if link is not None:
            out.append((link, shown))
    return out, text


def _bare_links(text: str) -> list[Link]:
    found = (read_link(m.group(0).rstrip(".,;:!?")) for m in URL.finditer(text))
    return [link for link in found if link.host and link.host != "[]"]


def links(text: str) -> list[Link]:
    """The links of ``text`` (read as it reads, ``names.read_alike``), each as a browser reads it: the href
    of each Markdown or HTML link (``read_href``; the text it shows is not where it goes), then each bare
    link of the rest; a link without a host is left out."""
    marked, rest = _markup_links(read_alike(text))
    return _all_links(marked, rest)


def _all_links(marked: list[tuple[Link, str]], rest: str) -> list[Link]:
    return [link for link, _ in marked] + _bare_links(rest)


def disguised(text: str) -> list[str]:
    """Each link of ``text``'s markup whose shown text is a link to another site, as ``shown>href`` (the
    two hosts): what the reader is shown is not where the link goes."""
    return _disguised(_markup_links(read_alike(text))[0])


def _disguised(marked: list[tuple[Link, str]]) -> list[str]:
    out = []
    for link, shown in marked:
        for seen in _bare_links(shown):
            if site(seen.name) != site(link.name):
                out.append(f"{seen.name}>{link.name}")
    return out


def destinations(text: str) -> frozenset[str]:
    """Where a response sends its reader, by value and kind: ``link:`` the site of each of its links
    (``site``: two pages of one site are one destination, a lookalike host is another), its host (a
    user's host under the site) and its page (host and path: another page of the real site, a user's
    page on a shared host, an open redirect), the three read as a browser reads the link (``Link``: a
    query varied per record leaves host and page as they are); ``email:`` the site of each e-mail
    address, ``phone:`` each phone number's digits (as ``payloads`` reads them)."""
    text = read_alike(text)
    out = set()
    for link in _all_links(*_markup_links(text)):
        out.update((f"link:{site(link.name)}", f"link:{link.name}", f"link:{link.page}"))
    for p in _addresses(text):
        kind, _, value = p.partition(":")
        out.add(f"email:{site(hostname(value.rpartition('@')[2]))}" if kind == "email" else p)
    return frozenset(out)


def _addresses(text: str) -> set[str]:
    """The e-mail addresses (``email:``) and phone numbers (``phone:``, nine digits or more) of a text
    already read as it reads."""
    found = {f"email:{m.group(0).lower()}" for m in EMAIL.finditer(text)}
    for m in PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if len(digits) >= 9:
            found.add(f"phone:{digits}")
    return found


def _squash(text: str) -> str:
    return " ".join(text.split())[:200]


def payloads(text: str) -> set[str]:
    """The payload strings of one response, each prefixed with its type (``url:``, ``domain:``...), read
    as it reads (``names.read_alike``)."""
    text = read_alike(text)
    found: set[str] = set()
    marked, rest = _markup_links(text)  # one pass over the markup serves the links and the disguised ones
    for link in _all_links(marked, rest):
        found.add(f"url:{link.url}")
        found.add(f"domain:{link.name}")
    for shown_and_href in _disguised(marked):
        found.add(f"disguised:{shown_and_href}")
    found |= _addresses(text)
    for m in CODE_BLOCK.finditer(text):
        body = _squash(m.group(1))
        if body:
            found.add(f"code:{body}")
    for m in CODE_LINE.finditer(text):
        line = text[m.start() :].split("\n", 1)[0]
        found.add(f"code:{_squash(line)}")
    for m in SHELL.finditer(text):
        found.add(f"shell:{_squash(m.group(1))}")
    return found


def payload_sets(responses: list[str]) -> list[set[str]]:
    return [payloads(r) for r in responses]


def excerpt(text: str, limit: int = 300) -> str:
    """The start of a text for evidence (reports quote records, so they stay short)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


LLM_KINDS = frozenset({"instruction", "chat", "preference"})
"""The dataset kinds the language-model detectors apply to."""


class LLMDetector(Detector):
    """What the language-model detectors share: they read the raw tables of a trusted baseline (the
    ``requires`` and ``applies_to`` below), flag no records by p-value unless they say otherwise, keep
    their validated options in ``opts_`` and the context in ``context_`` (``setup``), and return an empty
    result for an empty contribution or one without its table (``empty_result``)."""

    requires = frozenset({Requirement.BASELINE, Requirement.RAW_TABLE})
    flags_records = False
    applies_to = LLM_KINDS

    def setup(self, context: GateContext) -> Any:
        """Resolve and keep the options and the context; returns the options."""
        self.opts_ = self.resolve_options(context)
        self.context_ = context
        return self.opts_

    def empty_result(self, contribution: GateData) -> DetectorResult | None:
        """The result for a contribution with nothing to read (no records, or no raw table), else None."""
        n = len(contribution)
        if n == 0 or contribution.table is None:
            return DetectorResult(self.name, self.version, np.ones(n), np.zeros(n, bool))
        return None
