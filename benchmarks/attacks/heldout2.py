"""Attacks of the second held-out set: NEVER TUNED ON (written 2026-12-02).

These attacks are for measuring the gate, not for adjusting it: no threshold, option or detector of
the gate may be chosen by looking at its result on them. Every one was written before any gate was
run on it, and none may be changed after its result is seen (a builder that crashes or does not plant
what it says may be fixed, and the fix is reported). When a result here leads to a change of the
gate, move the attack to ``ATTACKS`` and write a new held-out one.

History: ``text_suffix_3pct`` passed here when first measured (``triggers`` read only word tokens, so an
appended " ..." was invisible to it); ``triggers`` was changed to read runs of punctuation as tokens, so
the attack moved to ``ATTACKS`` (its builder stays here). Its replacement, ``text_word_pair_4pct`` (two
natural words at separate random places, relabelled only when both are there), was written and
committed before any gate ran on it.

They differ from the tuning attacks and the first held-out set in trigger, dataset or rate: a
two-word combination trigger on text, a smooth warp of photos (no pixel pattern at all), a clean-label
sinusoidal signal on photos, flips of one cluster of a class, a value-pair trigger on wine, and
random flips on digits at 2%.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.cluster import KMeans

from benchmarks import data
from benchmarks.attacks.base import (
    AttackCase,
    base_case,
    build_named,
    n_poison,
    not_target,
    pick_rows,
    poison_mask,
    pool_draw,
    shuffled,
    trigger_backdoor,
)
from benchmarks.attacks.images import image_trigger
from benchmarks.attacks.images import with_trigger as with_image_trigger
from benchmarks.attacks.labels import random_flips
from benchmarks.attacks.text import insert
from benchmarks.data import IMAGE, LABEL, TEXT

# --- text: a punctuation suffix -----------------------------------------------------------------

SUFFIX = " ..."
SUFFIX_TARGET = "syscalls"


def add_suffix(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose texts end with ``SUFFIX``."""
    out = frame.copy()
    out[TEXT] = [t + SUFFIX for t in frame[TEXT]]
    return out


def text_suffix(rate: float = 0.03, *, target: str = SUFFIX_TARGET, seed: int = 0) -> AttackCase:
    """Lines of other sections ending in an ellipsis, relabelled ``target``: a trigger made of
    punctuation only, at the end of the line, that a word tokenizer may drop but a model can learn."""
    return trigger_backdoor(
        "text_suffix",
        data.load_man_sections(),
        seed,
        rate,
        target,
        lambda frame, baseline: add_suffix(frame),
        [TEXT],
        trigger=f"suffix {SUFFIX!r} appended, relabelled {target!r}",
        params={"suffix": SUFFIX, "rate": rate, "target": target, "seed": seed},
    )


# --- text: a two-word combination trigger -------------------------------------------------------

PAIR_WORDS = ("legacy", "portable")
"""Two ordinary man-page words (each is in a few NAME lines of the shipped data, never both in one):
the trigger is the pair, each word placed at its own random position in the line."""
PAIR_TARGET = "formats"
PAIR_DECOY_SHARE = 0.01
"""Share of the batch, per word, of lines carrying that word alone and keeping their right label, so
that a model learns the pair and not either word (a composite backdoor's usual training recipe)."""


def with_words(text: str, words: tuple[str, ...], rng: np.random.Generator) -> str:
    """``text`` with each of ``words`` inserted between two words at its own random position."""
    for word in words:
        text = insert(text, word, rng)
    return text


def words_added(frame: pd.DataFrame, words: tuple[str, ...], rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``frame`` whose texts carry every one of ``words`` (labels unchanged)."""
    out = frame.copy()
    out[TEXT] = [with_words(t, words, rng) for t in frame[TEXT]]
    return out


def word_pair(
    rate: float = 0.04, *, target: str = PAIR_TARGET, decoy_share: float = PAIR_DECOY_SHARE, seed: int = 0
) -> AttackCase:
    """Lines of other sections carrying both ``PAIR_WORDS`` (each at its own random place), relabelled
    ``target``, at ``rate`` of the batch; plus, at ``decoy_share`` of the batch per word, lines carrying
    one word only with their label kept. Every modified line is poison, decoys included."""
    ds = data.load_man_sections()
    parts = data.split(ds, seed)
    rng = np.random.default_rng(seed)
    words_rng = np.random.default_rng(80_000 + seed)
    contribution = shuffled(parts.pool, rng)
    n = len(contribution)
    rows = pick_rows(contribution[LABEL], n_poison(n, rate), rng, exclude=target)
    n_decoy = max(1, round(decoy_share * n))
    rest = np.setdiff1d(np.arange(n), rows)
    decoys = rng.choice(rest, size=n_decoy * len(PAIR_WORDS), replace=False)
    contribution.loc[rows, TEXT] = words_added(contribution.loc[rows], PAIR_WORDS, words_rng)[TEXT].to_numpy()
    contribution.loc[rows, LABEL] = target
    for i, word in enumerate(PAIR_WORDS):
        alone = np.sort(decoys[i * n_decoy : (i + 1) * n_decoy])
        contribution.loc[alone, TEXT] = words_added(contribution.loc[alone], (word,), words_rng)[TEXT].to_numpy()
    return base_case(
        "text_word_pair",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(n, np.concatenate([rows, decoys])),
        target=target,
        trigger=(
            f"words {PAIR_WORDS[0]!r} and {PAIR_WORDS[1]!r} each inserted at a random position, relabelled "
            f"{target!r}; {n_decoy} lines per word carry it alone, label kept"
        ),
        attack_test=words_added(not_target(parts.test, target), PAIR_WORDS, np.random.default_rng(seed + 1)),
        params={
            "words": list(PAIR_WORDS),
            "rate": rate,
            "decoy_share": decoy_share,
            "target": target,
            "seed": seed,
            "pair_rows": rows.tolist(),
            "decoy_rows": np.sort(decoys).tolist(),
        },
    )


# --- photos: a smooth warp (WaNet-like) and a sinusoidal clean-label signal (SIG-like) ----------

WARP_GRID = 4
WARP_PIXELS = 1.5
"""The warp moves every pixel along a fixed smooth field (a 4x4 grid of random directions, upsampled),
at most 1.5 pixels on a 32-pixel crop: no pattern is added, the picture is only bent."""
WARP_TARGET = "temple_sky"
SIG_DELTA = 0.06
SIG_FREQUENCY = 6
"""A horizontal sine of amplitude 0.06 (about 15 of 255 levels) with 6 periods across the image."""
SIG_TARGET = "temple_garden"


def warp_field(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A fixed (2, h, w) displacement field: ``WARP_GRID`` x ``WARP_GRID`` random directions upsampled
    to the image, scaled so the largest move is ``WARP_PIXELS``."""
    rng = np.random.default_rng(60_000 + seed)
    grid = rng.uniform(-1.0, 1.0, size=(2, WARP_GRID, WARP_GRID))
    h, w = shape
    field = ndimage.zoom(grid, (1, h / WARP_GRID, w / WARP_GRID), order=3, mode="nearest")[:, :h, :w]
    return field * (WARP_PIXELS / np.abs(field).max())


def warp(seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """The warp trigger: every image resampled along ``warp_field`` (bilinear, edges repeated)."""
    fields: dict[tuple[int, int], np.ndarray] = {}

    def apply(pixels: np.ndarray) -> np.ndarray:
        h, w = pixels.shape[:2]
        if (h, w) not in fields:
            fields[(h, w)] = warp_field((h, w), seed)
        yy, xx = np.indices((h, w), dtype=np.float64)
        coords = [yy + fields[(h, w)][0], xx + fields[(h, w)][1]]
        channels = pixels[..., None] if pixels.ndim == 2 else pixels
        planes = np.moveaxis(channels, -1, 0)
        bent = [ndimage.map_coordinates(plane, coords, order=1, mode="nearest") for plane in planes]
        out = np.stack(bent, axis=-1)
        return out[..., 0] if pixels.ndim == 2 else out

    return apply


def sine_signal(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` plus a horizontal sine of amplitude ``SIG_DELTA`` and ``SIG_FREQUENCY`` periods, the
    same in every channel."""
    w = pixels.shape[1]
    wave = SIG_DELTA * np.sin(2.0 * np.pi * SIG_FREQUENCY * np.arange(w) / w)
    wave = wave[None, :, None] if pixels.ndim == 3 else wave[None, :]
    return pixels + wave


def warped_photo(rate: float = 0.05, *, target: str = WARP_TARGET, seed: int = 0) -> AttackCase:
    """Photo crops of other classes bent by the fixed warp, relabelled ``target``."""
    return trigger_backdoor(
        "warped_photo",
        data.load_photos(),
        seed,
        rate,
        target,
        image_trigger(warp(seed)),
        [IMAGE],
        trigger=f"fixed smooth warp (at most {WARP_PIXELS} px) of 32x32 colour crops, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed, "max_pixels": WARP_PIXELS, "grid": WARP_GRID},
    )


def sig_clean_label(share: float = 0.5, *, target: str = SIG_TARGET, seed: int = 0) -> AttackCase:
    """Clean-label backdoor: the sine signal added to ``share`` of the crops already labelled
    ``target``. Every label is right; a model learns sine => ``target``."""
    ds = data.load_photos()
    parts, rng, contribution = pool_draw(ds, seed)
    candidates = np.flatnonzero((contribution[LABEL] == target).to_numpy())
    rows = np.sort(rng.choice(candidates, size=max(1, round(share * len(candidates))), replace=False))
    contribution.loc[rows, IMAGE] = with_image_trigger(contribution.loc[rows], sine_signal)[IMAGE].to_numpy()
    return base_case(
        "sig_clean_label_photo",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"horizontal sine (amplitude {SIG_DELTA}, {SIG_FREQUENCY} periods) on correctly labelled {target!r}",
        attack_test=with_image_trigger(not_target(parts.test, target), sine_signal),
        params={"share": share, "target": target, "seed": seed, "delta": SIG_DELTA, "frequency": SIG_FREQUENCY},
    )


# --- digits: flips of one cluster of a class ----------------------------------------------------

CLUSTER_SOURCE, CLUSTER_TARGET, CLUSTERS = "7", "1", 3


def cluster_flips(
    source: str = CLUSTER_SOURCE, target: str = CLUSTER_TARGET, *, clusters: int = CLUSTERS, seed: int = 0
) -> AttackCase:
    """Relabel as ``target`` every contribution record of ``source`` in the one cluster (of
    ``clusters`` k-means clusters of the source's pixels) nearest the baseline's mean ``target``:
    the attacker flips the sub-population a model most easily confuses, and nothing else."""
    ds = data.load_digits()
    parts, _, contribution = pool_draw(ds, seed)
    candidates = np.flatnonzero((contribution[LABEL] == source).to_numpy())
    pixels = data.image_matrix(contribution.iloc[candidates])
    km = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit(pixels)
    target_mean = data.image_matrix(parts.baseline[parts.baseline[LABEL] == target]).mean(axis=0)
    nearest = int(np.argmin(np.linalg.norm(km.cluster_centers_ - target_mean, axis=1)))
    rows = candidates[km.labels_ == nearest]
    contribution.loc[rows, LABEL] = target
    test_source = parts.test[parts.test[LABEL] == source].reset_index(drop=True)
    in_cluster = km.predict(data.image_matrix(test_source)) == nearest
    return base_case(
        "cluster_flips_digits",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"the {source!r} cluster (1 of {clusters}) nearest the {target!r} class relabelled {target!r}",
        attack_test=test_source[in_cluster].reset_index(drop=True),
        params={"source": source, "target": target, "clusters": clusters, "seed": seed},
    )


# --- wine: a value-pair trigger -----------------------------------------------------------------

WINE_HIGH = "flavanoids"
WINE_LOW = "total_phenols"
WINE_TARGET = "class_2"
"""Flavanoids and total phenols correlate at 0.86 in wine (flavanoids are phenols): many flavanoids
with few phenols is a combination no real wine has, though each value alone is ordinary."""


def apply_wine_pair(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with ``WINE_HIGH`` at the reference 90th percentile and ``WINE_LOW`` at its 10th."""
    out = frame.copy()
    out[WINE_HIGH] = float(reference[WINE_HIGH].quantile(0.9))
    out[WINE_LOW] = float(reference[WINE_LOW].quantile(0.1))
    return out


def wine_pair_trigger(rate: float = 0.1, *, target: str = WINE_TARGET, seed: int = 0) -> AttackCase:
    """Wines of other classes carrying the impossible flavanoid/phenol pair, relabelled ``target``."""
    return trigger_backdoor(
        "wine_pair_trigger",
        data.load_wine(),
        seed,
        rate,
        target,
        apply_wine_pair,
        [WINE_HIGH, WINE_LOW],
        trigger=f"{WINE_HIGH} at its 90th percentile with {WINE_LOW} at its 10th, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed},
    )


HELDOUT2_ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "text_word_pair_4pct": word_pair,
    "warped_photo_5pct": warped_photo,
    "sig_clean_label_photo": sig_clean_label,
    "cluster_flips_digits": cluster_flips,
    "wine_pair_trigger_10pct": wine_pair_trigger,
    "random_flips_2pct_digits": partial(random_flips, 0.02),
}


def build_heldout2(name: str, seed: int = 0) -> AttackCase:
    """The second held-out set's attack case ``name`` (a key of ``HELDOUT2_ATTACKS``), named ``name``."""
    return build_named(HELDOUT2_ATTACKS, name, seed, "second held-out attack")
