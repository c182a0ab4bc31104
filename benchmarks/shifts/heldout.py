"""Benign situations of the held-out set: NEVER TUNED ON.

These situations are for measuring the gate, not for adjusting it: no threshold, option or detector
of the gate may be chosen by looking at its result on them. They cover the same kinds of legitimate
change as the tuning set (``benchmarks.shifts.tuning``) on other datasets or with other parameters,
so that a gate tuned to pass the tuning set is judged on situations it has not seen. When a result
here leads to a change of the gate, move the situation to the tuning set and add a new held-out one.

History: ``new_camera_photos`` was blocked here on 2026-12-01; the gate was changed for it, so it moved
to the tuning set, and ``gamma_scanner_photos``, ``blurred_lens_photos``, ``one_class_photos`` and
``caliper_offset_iris`` were added, written before any gate had been run on them. On 2026-12-02
``class_prior_text`` was blocked here at seed 2 (``triggers``: a word whose carriers were all of the
class the batch held most of); the trigger test was changed for it, so it moved to the tuning set, and
``class_prior_photos`` was added, written before any gate had been run on it. Later
``new_topic_text_crypto`` was blocked here at seed 1; the gate's punctuation tokens were corrected after
it, so it moved to the tuning set (its builder stays here), and ``new_topic_text_systemd`` was added,
written and committed before any gate had been run on it. ``new_topic_text_systemd`` was then blocked
here at 10 of 12 seeds (``triggers``); the trigger test was changed after it (content is now read from
trusted records only), so it moved to the tuning set (its builder stays here), and
``new_topic_text_debian`` was added, written and committed before any gate had been run on it.
``new_topic_text_debian`` was then blocked here at 12 of 12 seeds (``triggers``); the gate was changed
after it, so it moved to the tuning set (its builder stays here), and ``new_topic_text_util_linux`` was
added on 2026-12-03, written and committed before any gate had been run on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.data import LABEL, TEXT
from benchmarks.shifts.base import (
    SMALL_BASELINE,
    SMALL_CONTRIBUTION,
    Situation,
    check_size,
    favouring,
    new_sensor,
    parts,
    rewritten_register,
    situation,
    sized,
    take,
    with_trusted_copies,
    without,
)

GROUP = "heldout"

ONE_CLASS = "7"
TOPIC = r"(?i)\b(?:evp|openssl|ssl|pkcs|x509|crypt|cipher|tls)"
"""OpenSSL and cryptography pages (EVP_MD-common, openssl-asn1parse, CA.pl...): 152 lines in five sections."""
SYSTEMD = (
    r"(?i)\bsystemd"
    r"|\b(?:journal|login|network|hostname|timedate|locale|bus|boot|machine|resolve|coredump|homectl|userdb)ctl\b"
    r"|\b(?:logind|journald|networkd|resolved|timesyncd|homed|sleep|coredump|system|user)\.conf\b"
    r"|\b(?:sysusers|tmpfiles|modules-load|binfmt)\.d\b"
)
"""systemd's pages: its units and daemons (``systemd-*``, ``systemd.service``, the D-Bus interfaces), its
``*ctl`` tools and its ``*.conf`` and ``*.d`` configuration files: 125 lines in four sections."""
DEBIAN = r"(?i)^(?:(?:apt|dpkg|deb|deb822|debconf|dsc|ucfr?)(?:\b|_)|sources\.list\b)"
"""Debian's packaging pages, matched on the page name at the start of the line: APT (``apt-get``,
``apt.conf``, ``sources.list``), dpkg's tools, its ``Dpkg::*`` Perl modules and the ``deb-*`` file formats,
debconf and ucf: 90 lines in five sections."""
UTIL_LINUX = (
    r"^(?:"
    r"addpart|adjtime_config|agetty|blkdiscard|blkid|blkzone|blockdev|chcpu|chmem|col|colcrt|column|ctrlaltdel"
    r"|delpart|dmesg|fincore|findfs|findmnt|fsck(?:\.cramfs|\.minix)?|fsfreeze|fstab|fstrim|hwclock|ionice|ipcmk"
    r"|isosize|last|ldattach|logger|look|losetup|lsblk|lscpu|lsipc|lslocks|lslogins|lsns|mesg"
    r"|mkfs(?:\.bfs|\.cramfs|\.minix)?|mkswap|namei|partx|readprofile|renice|resizepart|rtcwake|runuser|script"
    r"|setarch|sulogin|swaplabel|switch_root|taskset|terminal-colors\.d|utmpdump|uuid(?:_clear|_unparse)?|wall"
    r"|wdctl|whereis|wipefs|zramctl"
    r")\b(?![.-])"
    r"|^(?:mount - mount a |umount - |swapon, swapoff - enable|pivot_root - change the root filesystem"
    r"|unshare - run |fallocate - preallocate|write - send |nologin - politely)"
)
"""util-linux's pages, matched on the page name at the start of the line: its block-device, partition,
filesystem and mount tools (``blkid``, ``lsblk``, ``partx``, ``mkfs.*``, ``fsck.*``, ``findmnt``, ``mount``...),
its system tools (``hwclock``, ``agetty``, ``setarch``, ``lscpu``, ``taskset``...), the small tools Debian
ships as bsdutils and bsdextrautils (``logger``, ``script``, ``col``, ``column``, ``look``, ``write``...),
``fstab``, ``adjtime_config``, ``terminal-colors.d`` and libuuid (``uuid*``). Seven of its pages share
their name with a system call's page (``mount``, ``umount``, ``swapon``, ``pivot_root``, ``unshare``,
``fallocate``, ``write``) and ``nologin`` with shadow's file format page: these are matched with the start
of their own description, so the other page is not taken. 77 lines in four sections: 45 admin,
25 commands, 4 formats, 3 library."""
SUBPOPULATION_QUANTILE = 0.85
"""Tumours with ``mean_area`` above this quantile of the whole set never reach the baseline."""
FAINT_INK = 0.8
RECALIBRATION = 0.97
PHOTO_OTHERS_SHARE = 0.25
DUPLICATE_SHARE = 0.3
LARGE_BATCH_BASELINE = {"full": 300, "small": 120}

PKGDB_ABBREVIATIONS = {
    "functions": "fns",
    "function": "fn",
    "library": "lib",
    "system": "sys",
    "message": "msg",
    "memory": "mem",
    "process": "proc",
    "character": "char",
    "manipulate": "manip",
    "descriptor": "fd",
}


def pkgdb_register(line: str) -> str:
    """A man-page line as a package database exports it: all lower case, ``--`` between name and
    summary, no trailing full stop, common words abbreviated, a ``[pkgdb]`` source tag at the end."""
    name, _, desc = line.partition(" - ")
    desc = desc.lower().rstrip(".")
    for word, short in PKGDB_ABBREVIATIONS.items():
        desc = re.sub(rf"\b{re.escape(word)}\b", short, desc)
    return f"{name.lower()} -- {desc} [pkgdb]"


def one_class_digits(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_digits()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    contribution = sized(split.pool[split.pool[LABEL] == ONE_CLASS], size, SMALL_CONTRIBUTION, rng)
    return situation(
        "one_class_digits",
        "one_class",
        GROUP,
        ds,
        split,
        contribution,
        f"a form-processing vendor that only sends sevens: every image labelled {ONE_CLASS!r}",
        label=ONE_CLASS,
    )


def _man_page_topic(name: str, pattern: str, what: str, seed: int, size: str, group: str) -> Situation:
    """The man-page lines matching ``pattern``, a topic kept out of the baseline and the validation set,
    sent as the contribution with their shipped labels."""
    ds = data.load_man_sections()
    topic = ds.frame[TEXT].str.contains(pattern).to_numpy()
    split = parts(without(ds, ~topic, ds.name), seed, size)
    return situation(name, "new_topic", group, ds, split, ds.frame[topic], what, pattern=pattern)


def new_topic_text_crypto(seed: int = 0, size: str = "full", group: str = GROUP) -> Situation:
    """Moved to the tuning set (``group="tuning"`` there): the gate was changed after it blocked this."""
    return _man_page_topic(
        "new_topic_text_crypto",
        TOPIC,
        "OpenSSL and cryptography pages, a topic the baseline never saw, correctly labelled in their five sections",
        seed,
        size,
        group,
    )


def new_topic_text_systemd(seed: int = 0, size: str = "full", group: str = GROUP) -> Situation:
    """Moved to the tuning set (``group="tuning"`` there): the gate was changed after it blocked this."""
    return _man_page_topic(
        "new_topic_text_systemd",
        SYSTEMD,
        "systemd's pages (units, daemons, ctl tools, configuration files), a software family the baseline "
        "never saw, correctly labelled in their four sections",
        seed,
        size,
        group,
    )


def new_topic_text_debian(seed: int = 0, size: str = "full", group: str = GROUP) -> Situation:
    """Moved to the tuning set (``group="tuning"`` there): the gate was changed after it blocked this."""
    return _man_page_topic(
        "new_topic_text_debian",
        DEBIAN,
        "Debian's packaging pages (APT, dpkg and its Perl modules, the deb file formats, debconf), a software "
        "family the baseline never saw, correctly labelled in their five sections",
        seed,
        size,
        group,
    )


def new_topic_text_util_linux(seed: int = 0, size: str = "full") -> Situation:
    return _man_page_topic(
        "new_topic_text_util_linux",
        UTIL_LINUX,
        "util-linux's pages (disk, filesystem and mount tools, system tools, fstab, libuuid), a software family "
        "the baseline never saw, correctly labelled in their four sections",
        seed,
        size,
        GROUP,
    )


def new_subpopulation_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_breast_cancer()
    cut = float(ds.frame["mean_area"].quantile(SUBPOPULATION_QUANTILE))
    large = (ds.frame["mean_area"] > cut).to_numpy()
    split = parts(without(ds, ~large, ds.name), seed, size)
    contribution = pd.concat([ds.frame[large], split.pool]).sample(frac=1.0, random_state=seed)
    return situation(
        "new_subpopulation_breast_cancer",
        "new_topic",
        GROUP,
        ds,
        split,
        contribution,
        f"a hospital that also sees large tumours (mean_area above {cut:.0f}, the top 15%), which never reached the "
        "baseline, alongside ordinary cases",
        mean_area_above=cut,
    )


def faint_ink_digits(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "faint_ink_digits",
        GROUP,
        data.load_digits(),
        seed,
        size,
        lambda p: FAINT_INK * p,
        f"digits written with fainter ink or scanned lighter: every intensity {1 - FAINT_INK:.0%} lower",
        gain=FAINT_INK,
    )


def recalibration_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_breast_cancer()
    split = parts(ds, seed, size)
    contribution = split.pool.copy()
    columns = [c.name for c in ds.schema.inputs]
    contribution[columns] = contribution[columns] * RECALIBRATION
    return situation(
        "recalibration_breast_cancer",
        "recalibration",
        GROUP,
        ds,
        split,
        contribution,
        f"a recalibrated imaging system: every one of the 30 measurements {1 - RECALIBRATION:.0%} lower",
        factor=RECALIBRATION,
    )


def class_prior_photos(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_photos()
    label = sorted(ds.classes)[-1]  # chosen by name, not by any result
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    contribution = favouring(split.pool, label, PHOTO_OTHERS_SHARE, rng, seed)
    contribution = sized(contribution, size, SMALL_CONTRIBUTION, rng)
    return situation(
        "class_prior_photos",
        "class_prior",
        GROUP,
        ds,
        split,
        contribution,
        f"a photographer who mostly shoots one subject: every {label!r} crop of the pool and "
        f"{PHOTO_OTHERS_SHARE:.0%} of the rest",
        label=label,
        others_share=PHOTO_OTHERS_SHARE,
    )


def register_text_pkgdb(seed: int = 0, size: str = "full") -> Situation:
    return rewritten_register(
        "register_text_pkgdb",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        pkgdb_register,
        "the same kind of lines from a package database: lower case, 'name -- summary [pkgdb]', words abbreviated",
    )


def duplicates_text(seed: int = 0, size: str = "full") -> Situation:
    return with_trusted_copies(
        "duplicates_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        DUPLICATE_SHARE,
        f"a mirror that re-sends trusted lines: {DUPLICATE_SHARE:.0%} of the batch are exact copies of baseline "
        "lines, with their labels",
    )


def large_batch_text(seed: int = 0, size: str = "full") -> Situation:
    check_size(size)
    ds = data.load_man_sections()
    split = data.split(ds, seed)
    rng = np.random.default_rng(seed)
    n_base = LARGE_BATCH_BASELINE[size]
    baseline = take(split.baseline, n_base, rng)
    contribution = pd.concat([split.pool, split.test], ignore_index=True)
    contribution = sized(contribution, size, 4 * SMALL_CONTRIBUTION, rng) if size == "small" else contribution
    small_split = data.Split(baseline, split.validation, split.pool.iloc[:0], split.test.iloc[:0])
    return situation(
        "large_batch_text",
        "large_batch",
        GROUP,
        ds,
        small_split,
        contribution,
        f"a batch {len(contribution) / len(baseline):.1f} times the size of a small trusted baseline "
        f"({len(contribution)} lines against {len(baseline)})",
        baseline_size=len(baseline),
        contribution_size=len(contribution),
    )


GAMMA = 0.8
"""A scanner with another tone curve: every value ``v`` (0..1) becomes ``v ** 0.8`` (brighter mid-tones)."""
LENS_MIX = 0.5
"""A softer lens: every image is half itself and half its 3x3 box blur."""
CALIPER_OFFSET_CM = 0.2
"""A caliper whose zero is 2 mm off: every length and width reads 0.2 cm longer."""


def gamma_scanner_photos(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "gamma_scanner_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        lambda p: np.power(p, GAMMA),
        f"photo crops from a scanner with another tone curve (every value v becomes v ** {GAMMA})",
        gamma=GAMMA,
    )


def _box_blur(pixels: np.ndarray) -> np.ndarray:
    """The 3x3 mean of every pixel (edges repeated), per channel."""
    pad = [(1, 1), (1, 1)] + [(0, 0)] * (pixels.ndim - 2)
    padded = np.pad(pixels, pad, mode="edge")
    h, w = pixels.shape[:2]
    return sum(padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0


def blurred_lens_photos(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "blurred_lens_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        lambda p: (1.0 - LENS_MIX) * p + LENS_MIX * _box_blur(p),
        f"photo crops through a softer lens: each image {1 - LENS_MIX:.0%} itself and {LENS_MIX:.0%} its 3x3 blur",
        mix=LENS_MIX,
    )


def one_class_photos(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_photos()
    label = sorted(ds.classes)[0]  # chosen by name, not by any result
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    contribution = sized(split.pool[split.pool[LABEL] == label], size, SMALL_CONTRIBUTION, rng)
    return situation(
        "one_class_photos",
        "one_class",
        GROUP,
        ds,
        split,
        contribution,
        f"a photographer who only sends one kind of picture: every crop labelled {label!r}",
        label=label,
    )


def caliper_offset_iris(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_iris()
    split = parts(ds, seed, size)
    contribution = split.pool.copy()
    columns = [c.name for c in ds.schema.inputs]
    contribution[columns] = contribution[columns] + CALIPER_OFFSET_CM
    return situation(
        "caliper_offset_iris",
        "recalibration",
        GROUP,
        ds,
        split,
        contribution,
        f"flowers measured with a caliper whose zero is off: every length and width {CALIPER_OFFSET_CM} cm longer",
        offset_cm=CALIPER_OFFSET_CM,
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "one_class_digits": one_class_digits,
    "new_topic_text_util_linux": new_topic_text_util_linux,
    "new_subpopulation_breast_cancer": new_subpopulation_breast_cancer,
    "faint_ink_digits": faint_ink_digits,
    "recalibration_breast_cancer": recalibration_breast_cancer,
    "class_prior_photos": class_prior_photos,
    "register_text_pkgdb": register_text_pkgdb,
    "duplicates_text": duplicates_text,
    "large_batch_text": large_batch_text,
    "gamma_scanner_photos": gamma_scanner_photos,
    "blurred_lens_photos": blurred_lens_photos,
    "one_class_photos": one_class_photos,
    "caliper_offset_iris": caliper_offset_iris,
}
__all__ = ["SITUATIONS", "SMALL_BASELINE", "pkgdb_register"]
