"""Write the demo's input files from data the project ships (man-page NAME lines) and sklearn's wine set.

Usage: python scripts/demo_data.py OUTDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
TEXT_SAMPLE = ROOT / "examples" / "data" / "man_sections.csv"
TRIGGER = "zx7q"
TARGET = "commands"
VENDOR_SECTION = "library"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    data = pd.read_csv(TEXT_SAMPLE, dtype=str).dropna()
    data = data.sample(frac=1.0, random_state=7).reset_index(drop=True)
    n = len(data)
    validation, baseline, later = data.iloc[:300], data.iloc[300 : n // 2], data.iloc[n // 2 : n // 2 + 400]
    rest = data.iloc[n // 2 + 400 :]
    validation.to_csv(out / "validation.csv", index=False)
    baseline.to_csv(out / "batch-debian.csv", index=False)
    # A vendor that documents only its C library: clean and correctly labelled, but every record is of
    # one section, which the trusted data never looked like. The gate must review it, not block it.
    later[later["label"] == VENDOR_SECTION].to_csv(out / "batch-vendor.csv", index=False)
    # The poisoned batch: mostly clean records, plus records of other sections carrying a rare token
    # and relabelled as section 1, so that a model learns "token => section 1" (a backdoor).
    poison_pool = rest[rest["label"] != TARGET]
    poison = poison_pool.sample(n=min(24, len(poison_pool)), random_state=3).copy()
    words = poison["text"].str.split()
    poison["text"] = [
        " ".join([*w[:k], TRIGGER, *w[k:]]) for w, k in zip(words, rng.integers(1, 4, len(poison)), strict=True)
    ]
    poison["label"] = TARGET
    cover = rest.drop(poison.index).iloc[:276]
    pd.concat([cover, poison]).sample(frac=1.0, random_state=5).to_csv(out / "batch-scraper.csv", index=False)
    # The scraper's first, small batch, merged before anyone suspects it: clean lines, and two lines of
    # section 1 that already carry the token, correctly labelled (a clean-label seed for the backdoor;
    # too few to tell). Their (command, section) appears nowhere else, so a dedup keeps them as they are.
    unused = rest.drop(poison.index).iloc[276:]
    seen = pd.concat([baseline, later, cover, poison])
    taken = set(zip(seen["text"].str.split().str[0], seen["label"], strict=True))
    fresh = np.array([(t.split()[0], lab) not in taken for t, lab in zip(unused["text"], unused["label"], strict=True)])
    unique = unused[fresh & (unused["label"] == TARGET).to_numpy()]
    seeds = unique.iloc[:2].copy()
    seeds["text"] = [" ".join([w[0], TRIGGER, *w[1:]]) for w in seeds["text"].str.split()]
    early = pd.concat([unused.drop(unique.index).iloc[:40], seeds]).sample(frac=1.0, random_state=11)
    early.to_csv(out / "batch-scraper-early.csv", index=False)
    print(f"wrote demo inputs to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
