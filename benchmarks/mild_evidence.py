"""``python -m benchmarks.mild_evidence``: clean batches whose records read mildly against their label.

Two correctly labelled contributions that ``label_consistency`` used to block on its coarser counts or
Fisher's sum with no record flagged: (1) active learning, the quarter of a breast-cancer pool that a
logistic regression trained on the baseline is least sure of (``hard_examples``); (2) digits captured
by a lower-resolution scanner, 6x6 scaled back to 8x8 (``low_res_digits``). Each is split from
scikit-learn's bundled data into baseline (40%), clean validation (10%) and pool (30%), stratified, at
each seed, and scanned with the default policy at that seed. Per scan: the verdict, the detectors that
asked for a block, ``label_consistency``'s contribution-level p-value and whether its mild evidence was
held for review. ``tests/gates/test_label_consistency_mild_evidence.py`` builds the same batches.

    python -m benchmarks.mild_evidence --seeds 0,1,2,3,4,5,6,7,8,9 --out FILE.json
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dataward.gates import scan


def split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified baseline (40%), clean validation (10%) and pool (30%) of ``frame``."""
    rest, _ = train_test_split(frame, test_size=0.2, random_state=1000 + seed, stratify=frame["label"])
    rest, pool = train_test_split(rest, test_size=0.3 / 0.8, random_state=2000 + seed, stratify=rest["label"])
    base, val = train_test_split(rest, test_size=0.1 / 0.5, random_state=3000 + seed, stratify=rest["label"])
    return tuple(p.reset_index(drop=True) for p in (base, val, pool))


def breast_cancer() -> tuple[pd.DataFrame, dict]:
    data = load_breast_cancer()
    cols = [f"f{i}" for i in range(data.data.shape[1])]
    frame = pd.DataFrame(np.asarray(data.data, float), columns=cols)
    frame["label"] = [str(data.target_names[t]) for t in data.target]
    return frame, {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in cols]}


def hard_examples(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Active learning: the quarter of the pool a model trained on the baseline is least sure of, labelled
    with the true diagnosis."""
    frame, schema = breast_cancer()
    base, val, pool = split(frame, seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(base.drop(columns=["label"]).to_numpy(), base["label"])
    proba = np.sort(model.predict_proba(pool.drop(columns=["label"]).to_numpy()), axis=1)
    hardest = np.sort(np.argsort(proba[:, -1] - proba[:, -2])[: int(0.25 * len(pool))])
    return base, val, pool.iloc[hardest].reset_index(drop=True), schema


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def low_res(pixels: np.ndarray, side: int = 6) -> np.ndarray:
    """An 8x8 digit captured at ``side`` x ``side`` and scaled back to 8x8 (bilinear both ways)."""
    image = Image.fromarray(np.uint8(np.rint(pixels * 255)))
    image = image.resize((side, side), Image.BILINEAR).resize((8, 8), Image.BILINEAR)
    return np.asarray(image, float) / 255


def digits(seed: int, transform=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    data = load_digits()
    images = data.images / 16.0
    frame = pd.DataFrame({"index": np.arange(len(images)), "label": [str(t) for t in data.target]})
    base, val, pool = split(frame, seed)

    def encode(part: pd.DataFrame, f=None) -> pd.DataFrame:
        pixels = [images[i] if f is None else f(images[i]) for i in part["index"]]
        return pd.DataFrame({"image": [_png(p) for p in pixels], "label": part["label"].to_numpy()})

    schema = {"label": "label", "inputs": [{"name": "image", "kind": "image"}]}
    return encode(base), encode(val), encode(pool, transform), schema


CASES = {
    "hard_examples": hard_examples,
    "low_res_digits": lambda seed: digits(seed, low_res),
}


def run_case(name: str, seed: int) -> dict[str, Any]:
    base, val, batch, schema = CASES[name](seed)
    report = scan(base, batch, schema, validation=val, policy={"seed": seed})
    result = report.results["label_consistency"]
    return {
        "verdict": report.verdict,
        "blockers": sorted(d for d, r in report.results.items() if r.block),
        "label_consistency_p": float(result.p_value),
        "held_for_review": result.summary.get("held_for_review"),
        "flagged": int(result.flagged.sum()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mild_evidence", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7", help="comma-separated seeds")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    rows = {}
    for name in args.cases.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            rows[f"{name}@{seed}"] = run_case(name, seed)
            print(name, seed, rows[f"{name}@{seed}"], flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
