"""Small real datasets (scikit-learn's bundled ones) split into baseline and contribution."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits, load_wine


def tabular(loader, seed: int = 0, baseline_share: float = 0.6):
    data = loader()
    cols = [f"f{i}" for i in range(data.data.shape[1])]
    frame = pd.DataFrame(data.data, columns=cols)
    frame["label"] = data.target
    perm = np.random.default_rng(seed).permutation(len(frame))
    cut = int(len(frame) * baseline_share)
    schema = {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in cols]}
    return frame.iloc[perm[:cut]].reset_index(drop=True), frame.iloc[perm[cut:]].reset_index(drop=True), schema


@pytest.fixture(scope="session")
def digits():
    return tabular(load_digits)


@pytest.fixture(scope="session")
def wine():
    return tabular(load_wine)


@pytest.fixture(scope="session")
def cancer():
    return tabular(load_breast_cancer)


def flip_labels(frame: pd.DataFrame, share: float, n_classes: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    out = frame.copy()
    rows = rng.choice(len(out), max(3, int(share * len(out))), replace=False)
    out.loc[rows, "label"] = (out.loc[rows, "label"] + rng.integers(1, n_classes, rows.shape[0])) % n_classes
    return out, np.sort(rows)


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels * 16, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def digit_images():
    data = load_digits()
    frame = pd.DataFrame({"image": [png(img) for img in data.images], "label": data.target})
    perm = np.random.default_rng(0).permutation(len(frame))
    schema = {"label": "label", "inputs": [{"name": "image", "kind": "image"}]}
    return frame.iloc[perm[:1000]].reset_index(drop=True), frame.iloc[perm[1000:1400]].reset_index(drop=True), schema


TOPICS = {
    "sport": ["match", "goal", "team", "coach", "league", "score", "player", "season", "stadium", "referee"],
    "finance": ["market", "stock", "bank", "price", "interest", "inflation", "bond", "trader", "profit", "loan"],
    "science": ["cell", "protein", "physics", "experiment", "lab", "theory", "molecule", "energy", "gene", "data"],
}


def texts(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    names = sorted(TOPICS)
    for i in range(n):
        topic = names[i % len(names)]
        words = list(rng.choice(TOPICS[topic], 6)) + list(rng.choice(["the", "a", "new", "today", "report"], 3))
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": topic})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def text_sets():
    schema = {"label": "label", "inputs": [{"name": "text", "kind": "text"}]}
    return texts(450, 0), texts(150, 1), schema


def scan_situation(name: str, seed: int):
    """The whole gate's report on the benchmark's benign situation ``name`` drawn at ``seed``, scanned with
    its validation set at the same seed (as ``benchmarks.benign_seeds`` does)."""
    from benchmarks.shifts import build
    from dataward.gates import scan

    situation = build(name, seed, "full")
    return scan(situation.baseline, situation.contribution, situation.schema, situation.validation, {"seed": seed})


FOUR_COLUMN_SCHEMA = {"label": "label", "inputs": {"a": "numeric", "b": "numeric", "c": "numeric", "e": "numeric"}}
"""The schema of ``four_column_cancer()``."""


@cache
def four_column_cancer():
    """scikit-learn's breast-cancer records, four of their columns (a, b, c, e) and the label spelled out,
    shuffled once (seed 0): a small tabular set for the gate's tests on small baselines."""
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 30]]
    frame.columns = ["a", "b", "c", "e", "label"]
    frame = frame.sample(frac=1, random_state=0).reset_index(drop=True)
    frame["label"] = frame["label"].map({0: "malignant", 1: "benign"})
    return frame
