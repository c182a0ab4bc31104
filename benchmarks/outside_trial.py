"""An outside trial's clean, correctly labelled changes, run through the gate as a new user would.

An outside session (2026-12-05) tried the gate on changes no benchmark situation holds: a second lab's
noisier instrument, a column a site does not measure exported as 0, digits from a low-resolution scanner,
active-learning picks at the class boundary, a screening programme's small tumours, page names only,
transcription typos and more, on scikit-learn's bundled sets and the shipped man-page lines. Its figures
are in docs/benchmarks.md ("Clean data that is new, tried from outside"); the gate was changed after
them, so these cases are a tuning set. Each case draws its own disjoint stratified split (baseline 40%,
validation 10%, pool 30%) at the seed and changes only the contribution.

    python -m benchmarks.outside_trial [--cases a,b] [--seeds 0,1,2] --out FILE.jsonl
"""

from __future__ import annotations

import argparse
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from sklearn import datasets as skd
from sklearn.model_selection import train_test_split

from benchmarks.data import MAN_SECTIONS_CSV

MAN_CSV = MAN_SECTIONS_CSV


def png(arr01):
    a = np.clip(np.rint(np.asarray(arr01) * 255.0), 0, 255).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(a, mode="L").save(b, format="PNG")
    return b.getvalue()


def unpng(b):
    with Image.open(io.BytesIO(b)) as im:
        return np.asarray(im.convert("L"), dtype=np.float64) / 255.0


def digits():
    raw = skd.load_digits()
    imgs = raw.images / 16.0
    df = pd.DataFrame({"image": [png(i) for i in imgs], "label": [str(t) for t in raw.target]})
    return df, {"label": "label", "inputs": [{"name": "image", "kind": "image"}]}


def tabular(loader):
    raw = loader()
    cols = [c.replace(" ", "_").replace("/", "_").replace("(", "").replace(")", "") for c in raw.feature_names]
    df = pd.DataFrame(np.asarray(raw.data, float), columns=cols)
    df["label"] = [str(raw.target_names[t]) for t in raw.target]
    return df, {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in cols]}


def man():
    df = pd.read_csv(MAN_CSV, dtype=str, keep_default_na=False)
    return df, {"label": "label", "inputs": [{"name": "text", "kind": "text"}]}


def split(df, seed, fr=(0.4, 0.1, 0.3, 0.2)):
    """baseline / validation / pool / (unused test), stratified and disjoint."""
    df = df.reset_index(drop=True)
    rest, test = train_test_split(df, test_size=fr[3], random_state=1000 + seed, stratify=df["label"])
    rest, pool = train_test_split(rest, test_size=fr[2] / (1 - fr[3]), random_state=2000 + seed, stratify=rest["label"])
    base, val = train_test_split(
        rest, test_size=fr[1] / (fr[0] + fr[1]), random_state=3000 + seed, stratify=rest["label"]
    )
    return [p.reset_index(drop=True) for p in (base, val, pool, test)]


def _map_images(frame, fn):
    out = frame.copy()
    out["image"] = [png(np.clip(fn(unpng(b)), 0, 1)) for b in frame["image"]]
    return out


# ---- images (digits 8x8) ----
def digits_thick_pen(seed):
    """a form-filling site whose pens are felt-tip: strokes one step thicker (grey dilation, blended 50%)"""
    df, s = digits()
    b, v, p, _ = split(df, seed)
    return b, v, _map_images(p, lambda x: np.maximum(x, 0.6 * ndimage.grey_dilation(x, size=(2, 2)))), s


def digits_thin_pen(seed):
    """fine-tip pens: strokes thinner (grey erosion 2x2 blended: 0.5*x + 0.5*eroded)"""
    df, s = digits()
    b, v, p, _ = split(df, seed)
    return b, v, _map_images(p, lambda x: 0.5 * x + 0.5 * ndimage.grey_erosion(x, size=(2, 2))), s


def digits_salt_pepper(seed):
    """dusty scanner glass: 2% of pixels stuck white or black"""
    df, s = digits()
    b, v, p, _ = split(df, seed)
    rng = np.random.default_rng(500 + seed)

    def f(x):
        x = x.copy()
        m = rng.random(x.shape) < 0.02
        x[m] = rng.integers(0, 2, m.sum())
        return x

    return b, v, _map_images(p, f), s


def digits_contrast_curve(seed):
    """a scanner driver with an S-shaped contrast curve (logistic, gain 6 around 0.5)"""
    df, s = digits()
    b, v, p, _ = split(df, seed)

    def f(x):
        y = 1 / (1 + np.exp(-6 * (x - 0.5)))
        lo, hi = 1 / (1 + np.exp(3)), 1 / (1 + np.exp(-3))
        return (y - lo) / (hi - lo)

    return b, v, _map_images(p, f), s


def digits_small_batch(seed):
    """a single clerk's batch: 30 clean digits drawn at random, unchanged"""
    df, s = digits()
    b, v, p, _ = split(df, seed)
    rng = np.random.default_rng(600 + seed)
    return b, v, p.iloc[np.sort(rng.choice(len(p), 30, replace=False))].reset_index(drop=True), s


# ---- tabular ----
BC_NOISY = ["mean_texture", "mean_smoothness", "mean_symmetry", "worst_texture", "texture_error"]


def bc_noisy_lab(seed):
    """a second lab whose image-analysis software is noisier on 5 texture/shape features: Gaussian noise with sd = 0.25
    x the feature's sd"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, _ = split(df, seed)
    rng = np.random.default_rng(700 + seed)
    p = p.copy()
    for c in BC_NOISY:
        p[c] = np.abs(p[c] + rng.normal(0, 0.25 * df[c].std(), len(p)))
    return b, v, p, s


def bc_resample_jitter(seed):
    """re-measurement of trusted cases: 60 random trusted rows, every value x (1 + N(0, 0.01))"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, _p, _ = split(df, seed)
    rng = np.random.default_rng(800 + seed)
    c = b.iloc[np.sort(rng.choice(len(b), 60, replace=False))].copy()
    cols = [x for x in c.columns if x != "label"]
    c[cols] = c[cols].to_numpy() * (1 + rng.normal(0, 0.01, (len(c), len(cols))))
    return b, v, c.reset_index(drop=True), s


def bc_fewer_decimals(seed):
    """an export that writes every value with 2 decimals (fixed, not significant digits): small error features become
    0.00-0.05"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, _ = split(df, seed)
    p = p.copy()
    cols = [x for x in p.columns if x != "label"]
    p[cols] = p[cols].round(2)
    return b, v, p, s


def wine_alcohol_gpl(seed):
    """a lab reporting alcohol in g/L (ABV% x 7.89) instead of % vol; all other columns unchanged"""
    df, s = tabular(skd.load_wine)
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["alcohol"] = (p["alcohol"] * 7.89).round(1)
    return b, v, p, s


def diabetes_older_clinic(seed):
    """a clinic with older patients: label = disease progression above the full data's median; contribution = pool
    patients with age above the baseline's 60th percentile"""
    raw = skd.load_diabetes()
    df = pd.DataFrame(raw.data, columns=raw.feature_names)
    df["label"] = np.where(raw.target > np.median(raw.target), "progressed", "stable")
    s = {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in raw.feature_names]}
    b, v, p, t = split(df, seed)
    p = pd.concat([p, t])
    p = p[p["age"] > b["age"].quantile(0.6)].reset_index(drop=True)
    return b, v, p, s


# ---- text (man-page NAME lines) ----
def man_lowercase(seed):
    """a scraper that takes lines from a search index which lowercases everything"""
    df, s = man()
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["text"] = p["text"].str.lower()
    return b, v, p, s


def man_prefix(seed):
    """a new scraper that prefixes every line with its source boilerplate 'Manual page: '"""
    df, s = man()
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["text"] = "Manual page: " + p["text"]
    return b, v, p, s


def man_truncated(seed):
    """a UI export that truncates every line to 32 characters"""
    df, s = man()
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["text"] = p["text"].str.slice(0, 32)
    return b, v, p, s


KEYS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def _typo(text, rng, rate=0.02):
    out = []
    for ch in text:
        if ch.isalpha() and rng.random() < rate:
            k = rng.integers(3)
            if k == 0:
                continue  # dropped letter
            if k == 1:
                out.append(ch)
                out.append(ch)
                continue  # doubled
            row = next((r for r in KEYS if ch.lower() in r), None)
            i = row.index(ch.lower())
            out.append(row[min(len(row) - 1, i + 1)] if i == 0 else row[i - 1])
            continue
        out.append(ch)
    return "".join(out)


def man_typos(seed):
    """hand-transcribed lines: 2% of letters dropped, doubled or hit on the neighbouring key"""
    df, s = man()
    b, v, p, _ = split(df, seed)
    rng = np.random.default_rng(900 + seed)
    p = p.copy()
    p["text"] = [_typo(t, rng) for t in p["text"]]
    return b, v, p, s


def man_small_batch(seed):
    """a volunteer's 40 lines, drawn at random from the clean pool, unchanged"""
    df, s = man()
    b, v, p, _ = split(df, seed)
    rng = np.random.default_rng(1000 + seed)
    return b, v, p.iloc[np.sort(rng.choice(len(p), 40, replace=False))].reset_index(drop=True), s


def man_dash_style(seed):
    """a converter that writes the NAME line separator as an em dash and drops the trailing period: 'ls — list
    directory contents'"""
    df, s = man()
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["text"] = [re.sub(r"\s+-\s+", " \u2014 ", t, count=1).rstrip(".") for t in p["text"]]
    return b, v, p, s


# ---- round 2 ----
def digits_plain(seed):
    """control: the clean pool unchanged"""
    df, s = digits()
    b, v, p, _ = split(df, seed)
    return b, v, p, s


def man_plain(seed):
    """control: the clean pool unchanged"""
    df, s = man()
    b, v, p, _ = split(df, seed)
    return b, v, p, s


def bc_plain(seed):
    """control: the clean pool unchanged"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, _ = split(df, seed)
    return b, v, p, s


def digits_bold_marker(seed):
    """forms filled in with a bold marker: full grey dilation 2x2 of every stroke"""
    df, s = digits()
    b, v, p, _ = split(df, seed)
    return b, v, _map_images(p, lambda x: ndimage.grey_dilation(x, size=(2, 2))), s


def _scanned_at(side, seed):
    """digits captured at ``side`` x ``side`` and upsampled (bilinear) back to 8x8"""
    df, s = digits()
    b, v, p, _ = split(df, seed)

    def f(x):
        im = Image.fromarray(np.uint8(np.rint(x * 255)))
        im = im.resize((side, side), Image.BILINEAR).resize((8, 8), Image.BILINEAR)
        return np.asarray(im, float) / 255

    return b, v, _map_images(p, f), s


def digits_low_res(seed):
    """an old scanner: digits captured at 4x4 and upsampled (bilinear) to 8x8"""
    return _scanned_at(4, seed)


def _hard(frame_b, frame_p, featurize, share=0.25):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(featurize(frame_b), frame_b["label"])
    pr = m.predict_proba(featurize(frame_p))
    srt = np.sort(pr, 1)
    margin = srt[:, -1] - srt[:, -2]
    keep = np.argsort(margin)[: int(share * len(frame_p))]
    return frame_p.iloc[np.sort(keep)].reset_index(drop=True)


def _img_feats(f):
    return np.stack([unpng(x).ravel() for x in f["image"]])


def _num_feats(f):
    return f.drop(columns=["label"]).to_numpy()


def digits_hard_examples(seed):
    """active learning: the 25% of the pool the team's own model (logreg on the baseline) is least sure about, labelled
    correctly by humans"""
    df, s = digits()
    b, v, p, _ = split(df, seed)
    return b, v, _hard(b, p, _img_feats), s


def bc_hard_examples(seed):
    """active learning on tumours: the 25% of pool cases a logreg trained on the baseline is least sure about, with
    their true diagnosis"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, _ = split(df, seed)
    return b, v, _hard(b, p, _num_feats), s


def man_hard_examples(seed):
    """active learning on text: the 25% of pool lines a TF-IDF logreg trained on the baseline is least sure about, with
    their true section"""
    from sklearn.feature_extraction.text import TfidfVectorizer

    df, s = man()
    b, v, p, _ = split(df, seed)
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1).fit(b["text"])
    return b, v, _hard(b, p, lambda f: vec.transform(f["text"]).toarray()), s


def bc_screening(seed):
    """a screening programme: only tumours with mean_radius below the baseline's 40th percentile (mostly benign; the
    malignant ones are small, hard cases)"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, t = split(df, seed)
    p = pd.concat([p, t])
    cut = b["mean_radius"].quantile(0.4)
    return b, v, p[p["mean_radius"] < cut].reset_index(drop=True), s


def bc_large_tumours(seed):
    """a referral centre that only sees tumours with mean_radius above the baseline's 60th percentile (mostly
    malignant; the benign ones are large, hard cases)"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, t = split(df, seed)
    p = pd.concat([p, t])
    cut = b["mean_radius"].quantile(0.6)
    return b, v, p[p["mean_radius"] > cut].reset_index(drop=True), s


def wine_magnesium_zero(seed):
    """a lab that did not measure magnesium and exports the missing assay as 0 in every row"""
    df, s = tabular(skd.load_wine)
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["magnesium"] = 0.0
    return b, v, p, s


def wine_proline_saturated(seed):
    """an instrument whose range tops out: proline clipped at 900"""
    df, s = tabular(skd.load_wine)
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["proline"] = p["proline"].clip(upper=900)
    return b, v, p, s


def man_truncated20(seed):
    """a narrow-column export that keeps only the first 20 characters of each line"""
    df, s = man()
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["text"] = p["text"].str.slice(0, 20)
    return b, v, p, s


def man_names_only(seed):
    """a scraper that keeps only the page name (the part before ' - '), e.g. 'ls' or 'getaddrinfo'"""
    df, s = man()
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["text"] = [t.split(" - ")[0] for t in p["text"]]
    return b, v, p, s


def digits_thick_small(seed):
    """one clerk's 25 felt-tip digits (the thick-pen change on a tiny batch)"""
    b, v, p, s = digits_thick_pen(seed)
    rng = np.random.default_rng(1100 + seed)
    return b, v, p.iloc[np.sort(rng.choice(len(p), 25, replace=False))].reset_index(drop=True), s


def digits_low_res6(seed):
    """a milder old scanner: digits captured at 6x6 and upsampled (bilinear) to 8x8"""
    return _scanned_at(6, seed)


def bc_column_zero(seed):
    """a hospital whose software does not compute fractal dimension and exports mean_fractal_dimension as 0"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["mean_fractal_dimension"] = 0.0
    return b, v, p, s


def bc_area_cm2(seed):
    """a lab whose software reports mean_area in cm^2 at 0.01 mm^2... i.e. the column divided by 100; all else
    unchanged"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["mean_area"] = p["mean_area"] / 100
    return b, v, p, s


def bc_column_default(seed):
    """software that does not compute fractal dimension and writes a fixed default (the trusted median, 0.0615) in
    mean_fractal_dimension"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["mean_fractal_dimension"] = 0.0615
    return b, v, p, s


def bc_column_empty(seed):
    """the same missing fractal dimension exported as an empty cell (NaN) instead of 0"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, _ = split(df, seed)
    p = p.copy()
    p["mean_fractal_dimension"] = np.nan
    return b, v, p, s


def bc_other_column_zero(seed):
    """a lab that does not compute the symmetry measures: mean_symmetry, symmetry_error and worst_symmetry exported as
    0"""
    df, s = tabular(skd.load_breast_cancer)
    b, v, p, _ = split(df, seed)
    p = p.copy()
    for c in ("mean_symmetry", "symmetry_error", "worst_symmetry"):
        p[c] = 0.0
    return b, v, p, s


CASES = {
    k: v
    for k, v in list(globals().items())
    if callable(v)
    and v.__doc__
    and k.split("_")[0] in ("digits", "bc", "wine", "diabetes", "man")
    and k not in ("digits",)
}


def run(name: str, seed: int) -> dict[str, Any]:
    """Scan case ``name`` at ``seed`` (the default policy at that seed, with the case's validation set):
    verdict, reasons, counts and what queued the records."""
    from dataward.gates import scan

    base, val, contrib, schema = CASES[name](seed)
    started = time.time()
    report = scan(base, contrib, schema, validation=val, policy={"seed": seed}).to_dict()
    queued_by: dict[str, int] = {}
    for r in report["records"]:
        if r["flagged"]:
            for k in r["flagged_by"]:
                queued_by[k] = queued_by.get(k, 0) + 1
    return {
        "case": name,
        "seed": seed,
        "n_base": len(base),
        "n_contrib": len(contrib),
        "n_val": len(val),
        "verdict": report["verdict"],
        "reasons": report["reasons"],
        "counts": report["counts"],
        "queued_by": queued_by,
        "secs": round(time.time() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated cases (default: every one)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--out", type=Path, required=True, help="JSON Lines file to append the rows to")
    args = parser.parse_args(argv)
    names = args.cases.split(",") if args.cases else list(CASES)
    with args.out.open("a") as out:
        for name in names:
            for seed in (int(s) for s in args.seeds.split(",")):
                row = run(name, seed)
                out.write(json.dumps(row, default=str) + "\n")
                print(f"{name} seed={seed} -> {row['verdict']} queued={row['counts']['flagged']}", flush=True)


if __name__ == "__main__":
    main()
