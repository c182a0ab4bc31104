"""Build the man-page text classification sample shipped as ``examples/data/man_sections.csv``.

Each row is the NAME line of one manual page found on this machine ("ls - list directory
contents"), labelled by the manual section it was installed in. The sample is built once from the
machine and committed, so that tests and the demo never depend on which packages are installed.

Usage::

    python -m benchmarks.make_text_sample [--out examples/data/man_sections.csv] [--per-class 500]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import re
from collections import defaultdict
from pathlib import Path

MAN_ROOT = Path("/usr/share/man")

SECTION_LABELS = {
    "1": "commands",
    "2": "syscalls",
    "3": "library",
    "5": "formats",
    "7": "overview",
    "8": "admin",
}
"""Manual sections kept (each has a few hundred pages or more on a Debian machine) and their labels."""

MAX_SHARE_OF_FIRST_WORD = 0.03
"""At most this share of a label may start with the same word: one tool suite (e.g. ``gcloud``,
with thousands of generated pages) must not turn a section into that tool's name."""

MIN_PER_CLASS = 150
"""A section with fewer NAME lines than this is left out: too few examples to learn from."""

_FONT = re.compile(r"\\f(\[[^\]]*\]|\(..|.)")
_ESCAPES = {r"\-": "-", r"\(em": "-", r"\(en": "-", r"\(aq": "'", r"\(dq": '"', r"\ ": " ", r"\&": "", r"\e": "\\"}
_SPACES = re.compile(r"\s+")


def clean_troff(line: str) -> str:
    """Strip the troff font changes and escapes a NAME line carries, leaving plain text."""
    text = _FONT.sub("", line)
    for escape, plain in _ESCAPES.items():
        text = text.replace(escape, plain)
    text = re.sub(r"\\[*(]\S{0,2}", "", text)  # any other named character or string: drop it
    text = text.replace("\\", "")
    return _SPACES.sub(" ", text).strip().strip('"').strip()


def name_line(source: str) -> str | None:
    """The NAME line of a man page in man(7) or mdoc(7) markup, or None when it has none."""
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(".Sh NAME"):
            names, desc = [], ""
            for nxt in lines[i + 1 :]:
                if nxt.startswith(".Sh"):
                    break
                if nxt.startswith(".Nm "):
                    names.append(clean_troff(nxt[4:]).rstrip(" ,"))
                elif nxt.startswith(".Nd "):
                    desc = clean_troff(nxt[4:])
            return f"{', '.join(names)} - {desc}" if names and desc else None
        head = line.strip().upper().replace('"', "")
        if head in (".SH NAME", ".SH  NAME"):
            body = []
            for nxt in lines[i + 1 :]:
                if nxt.startswith((".SH", ".Sh")):
                    break
                if nxt.startswith(('.\\"', "'\\\"")) or nxt.strip() in (".PP", ".LP", ".P", ".br", ".ad", ".nh"):
                    continue
                if nxt.startswith(".") and not nxt.startswith((".B ", ".BR ", ".I ", ".IR ")):
                    continue
                body.append(re.sub(r"^\.(BR|B|IR|I) ", "", nxt))
            text = clean_troff(" ".join(body))
            return text if " - " in text else None
    return None


def collect(root: Path = MAN_ROOT) -> dict[str, list[str]]:
    """NAME lines per label, deduplicated, from every English man page under ``root``; lines found
    under more than one section are dropped."""
    found: dict[str, set[str]] = defaultdict(set)
    for section, label in SECTION_LABELS.items():
        for path in sorted((root / f"man{section}").glob("*.gz")):
            if path.is_symlink():
                continue
            try:
                with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
                    source = fh.read(200_000)
            except (OSError, EOFError):
                continue
            if source.lstrip().startswith(".so "):
                continue  # a redirect to another page, already counted there
            text = name_line(source)
            if text and 10 <= len(text) <= 300:
                found[label].add(text)
    # A NAME line installed in two sections (e.g. a command also documented for admins) has no single
    # true label: leave it out rather than ship a record that contradicts itself.
    seen: dict[str, int] = defaultdict(int)
    for texts in found.values():
        for text in texts:
            seen[text] += 1
    unique = {label: sorted(t for t in texts if seen[t] == 1) for label, texts in found.items()}
    return {label: texts for label, texts in unique.items() if len(texts) >= MIN_PER_CLASS}


def sample(found: dict[str, list[str]], per_class: int, seed: int) -> list[tuple[str, str]]:
    """At most ``per_class`` texts of each label, drawn at random, shuffled together."""
    rng = random.Random(seed)
    rows = []
    for label in sorted(found):
        texts = list(found[label])
        rng.shuffle(texts)
        cap = max(3, int(MAX_SHARE_OF_FIRST_WORD * per_class))
        per_word: dict[str, int] = defaultdict(int)
        kept = []
        for text in texts:
            word = text.split(" ", 1)[0].rstrip(",").lower()
            if per_word[word] < cap:
                per_word[word] += 1
                kept.append(text)
        rows.extend((t, label) for t in kept[:per_class])
    rng.shuffle(rows)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="examples/data/man_sections.csv")
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=str(MAN_ROOT))
    args = parser.parse_args(argv)
    rows = sample(collect(Path(args.root)), args.per_class, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    counts: dict[str, int] = defaultdict(int)
    for _, label in rows:
        counts[label] += 1
    print(f"wrote {len(rows)} rows to {out}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
