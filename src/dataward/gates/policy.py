"""The gate policy: which detectors run, at which false-positive rate, and where the verdict lines are.

A policy is plain data (``from_dict``/``to_dict``) so that it can live in the dataset policy file and
be hashed into the gate run's ledger event (``config_hash``): the same policy always gives the same hash.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from dataward.domain.errors import InputError
from dataward.domain.hashing import json_hash
from dataward.domain.weakening import Weakening

if TYPE_CHECKING:
    from dataward.domain.schema import Schema

MAX_SEED = 2**31
"""Seeds are below this: detectors add small offsets (``seed + class``) to random states that
scikit-learn takes below 2**32."""

# Per-record and contribution-level p-value thresholds: a smaller one flags, reviews or blocks less,
# so lowering any of them lets more through (the attack is `block_p: 1e-300`).
_P_THRESHOLDS = {
    "alpha": "fewer records are flagged",
    "review_p": "fewer contributions are sent to review",
    "block_p": "fewer contributions are blocked",
}


EARLIER_BATCHES_DAYS = 30
"""How far back a ward looks for a sender's earlier batches by default (``dataward.gates.earlier_batches``)."""
MAX_EARLIER_BATCHES_DAYS = 3660


@dataclass(frozen=True)
class GatePolicy:
    """What a gate run does and how it decides.

    ``detectors`` empty means every registered detector that applies to the schema.
    ``alpha`` is the per-record false-positive rate of a flag, shared by the detectors that flag
    records (each gets ``alpha / m``, see docs/gates.md). A detector's contribution-level p-value
    below ``block_p`` blocks, below ``review_p`` sends the contribution to review.
    """

    detectors: tuple[str, ...] = ()
    alpha: float = 0.01
    review_p: float = 1e-2
    block_p: float = 1e-6
    max_validation_drop: float = 0.02
    seed: int = 0
    featurizers: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference_size: int = 10_000
    """Records of the baseline (stratified sample) that detectors fit and calibrate on; exact
    duplicate detection always covers the whole baseline."""
    self_reference_folds: int = 5
    flag_fdr: float | None = 0.2
    """Largest expected share of clean records among a detector's flags in the review queue
    (Benjamini-Hochberg over the contribution, ``calibration.fdr_confirmed``); ``None`` queues every
    record flagged at ``alpha``. The verdict's tests count the flags at ``alpha`` either way."""
    earlier_batches_days: int = EARLIER_BATCHES_DAYS
    """In a ward: a batch is judged a second time together with its sender's batches of the last this many
    days, those taken out of the baseline (``dataward.gates.earlier_batches``); 0 judges each batch alone.
    ``scan`` itself judges the batch it is given."""

    def __post_init__(self) -> None:
        detectors = self.detectors
        if isinstance(detectors, str):
            detectors = (detectors,)
        if not isinstance(detectors, Iterable):
            raise InputError(f"policy detectors must be a list of detector names, got {detectors!r}")
        object.__setattr__(self, "detectors", tuple(str(d) for d in detectors))
        for name in ("alpha", "review_p", "block_p"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 < float(value) < 1.0:
                raise InputError(f"policy {name} must be a number strictly between 0 and 1, got {value!r}")
        if self.block_p > self.review_p:
            raise InputError(
                f"policy block_p ({self.block_p}) must not exceed review_p ({self.review_p})",
                hint="block_p is the stricter (smaller) threshold",
            )
        if not _is_number(self.max_validation_drop) or not 0.0 <= float(self.max_validation_drop) <= 1.0:
            raise InputError(f"policy max_validation_drop must be a number in [0, 1], got {self.max_validation_drop!r}")
        days = self.earlier_batches_days
        if not _is_whole(days) or not 0 <= int(days) <= MAX_EARLIER_BATCHES_DAYS:
            raise InputError(
                f"gate policy earlier_batches_days must be a whole number of days from 0 to "
                f"{MAX_EARLIER_BATCHES_DAYS}, got {days!r}",
                hint="0 judges each batch alone; the default is " + str(EARLIER_BATCHES_DAYS),
            )
        for name, least in (("reference_size", 50), ("self_reference_folds", 2)):
            # Used as given and hashed as ``int()`` of it: a fraction would run one policy and record another.
            value = getattr(self, name)
            if not _is_whole(value) or int(value) < least:
                raise InputError(f"policy {name} must be a whole number of at least {least}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.flag_fdr is not None and (not _is_number(self.flag_fdr) or not 0.0 < float(self.flag_fdr) < 1.0):
            raise InputError(
                f"policy flag_fdr must be a number strictly between 0 and 1, or null, got {self.flag_fdr!r}",
                hint="null sends every record flagged at alpha to the review queue",
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed < MAX_SEED:
            raise InputError(
                f"policy seed must be a whole number from 0 to {MAX_SEED - 1}, got {self.seed!r}",
                hint="detectors add small offsets to it, and scikit-learn takes random states below 2**32",
            )
        if not isinstance(self.featurizers, Mapping):
            raise InputError(
                f"policy featurizers must be a mapping of column names to featurizers, got {self.featurizers!r}"
            )
        if not isinstance(self.options, Mapping):
            raise InputError(f"policy options must be a mapping of detector names to options, got {self.options!r}")
        for key, value in self.options.items():
            if not isinstance(value, Mapping):
                raise InputError(f"policy options for {key!r} must be a mapping of option names to values")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> GatePolicy:
        """Build a policy from its dict form; unknown keys or detector names are refused."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InputError(f"a gate policy must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"unknown gate policy key(s): {', '.join(unknown)}", hint=f"known keys: {', '.join(sorted(known))}"
            )
        kwargs = dict(data)
        kwargs["detectors"] = kwargs.get("detectors") or ()  # a name, or names: see __post_init__
        for key, what in (("featurizers", "column names to featurizers"), ("options", "detector names to options")):
            if not isinstance(kwargs.get(key) or {}, Mapping):
                raise InputError(f"policy {key} must be a mapping of {what}, got {kwargs[key]!r}")
        kwargs["featurizers"] = dict(kwargs.get("featurizers") or {})
        kwargs["options"] = {
            str(k): dict(v) if isinstance(v, Mapping) else v for k, v in dict(kwargs.get("options") or {}).items()
        }
        try:
            policy = cls(**kwargs)
        except TypeError as exc:
            raise InputError(f"gate policy has a value of the wrong type: {exc}") from exc
        policy.check_detectors()
        return policy

    @classmethod
    def coerce(cls, policy: GatePolicy | Mapping[str, Any] | None) -> GatePolicy:
        """Accept a policy, its dict form or None (the defaults)."""
        if isinstance(policy, GatePolicy):
            policy.check_detectors()
            return policy
        return cls.from_dict(policy)

    def check_detectors(self) -> None:
        """Refuse detector names (in ``detectors`` or ``options``) that no module registers, and options
        that the named detector does not take or that have the wrong type or range."""
        if not self.detectors and not self.options:
            return  # nothing named: no detector need be loaded (scikit-learn and all) to say so
        from dataward.gates.base import build_options
        from dataward.gates.detectors import available

        names = available()
        for name in (*self.detectors, *self.options):
            if name not in names:
                raise InputError(
                    f"unknown detector {name!r} in the gate policy", hint=f"known detectors: {', '.join(sorted(names))}"
                )
        for name, values in self.options.items():
            build_options(name, names[name].Options, dict(values))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form; ``from_dict(to_dict())`` gives an equal policy."""
        return {
            "detectors": list(self.detectors),
            "alpha": float(self.alpha),
            "review_p": float(self.review_p),
            "block_p": float(self.block_p),
            "max_validation_drop": float(self.max_validation_drop),
            "seed": int(self.seed),
            "featurizers": dict(sorted(self.featurizers.items())),
            "options": {k: dict(v) for k, v in sorted(self.options.items())},
            "reference_size": int(self.reference_size),
            "self_reference_folds": int(self.self_reference_folds),
            "flag_fdr": None if self.flag_fdr is None else float(self.flag_fdr),
            # Written only when set otherwise: the configurations recorded before the key existed keep their hash.
            **(
                {}
                if int(self.earlier_batches_days) == EARLIER_BATCHES_DAYS
                else {"earlier_batches_days": int(self.earlier_batches_days)}
            ),
        }

    def resolved_detectors(self) -> dict[str, str]:
        """The detectors this policy runs (all registered ones when it names none), name -> version."""
        from dataward.gates.detectors import available

        names = available()
        return {name: names[name].version for name in sorted(self.detectors or names)}

    def config_hash(self) -> str:
        """``json_hash`` of ``to_dict()`` with the resolved detector names and versions folded in:
        identifies this configuration in the ledger, so a gate run with another detector set or another
        detector version never shares a hash with this one."""
        return json_hash({**self.to_dict(), "resolved_detectors": self.resolved_detectors()})

    def weakenings_from(self, before: GatePolicy, *, schema: Schema | None = None) -> list[Weakening]:
        """Every way this policy lets more through than ``before`` (see docs/access.md, "Weakening").

        Fewer detectors run; a lower ``alpha``, ``review_p``, ``block_p`` or ``flag_fdr`` (``None``, every
        flag queued, is the highest); a wider
        ``max_validation_drop``; a smaller ``reference_size`` or fewer ``self_reference_folds``. Detector
        options and featurizers cannot be ranked stricter or looser in general, so any change to them
        counts (an admin may still make it). ``seed`` is neutral here: a ward counts pinning a seed that
        was unset (``service.identity.policy_weakenings``), since its unset seed is derived from a secret.

        Given the dataset's ``schema``, only the detectors that can run on its data count: the labelled
        detectors never run on instruction data (nor the language-model ones on labelled data), so a
        policy that stops naming them lets nothing more through.
        """
        found: list[Weakening] = []
        # The same named set resolves to the same detectors, and the options are read against them: only a
        # change needs them loaded (scikit-learn and all, which the access review, reading every dataset's
        # policy, would otherwise pay for).
        unchanged = set(before.detectors) == set(self.detectors) and dict(before.options) == dict(self.options)
        was, now = ({}, {}) if unchanged else (before.resolved_detectors(), self.resolved_detectors())
        dropped = sorted(set(was) - set(now))
        if dropped and schema is not None:
            from dataward.gates.base import registered
            from dataward.gates.gate import applies_to_schema

            known = registered()
            dropped = [name for name in dropped if name not in known or applies_to_schema(known[name], schema)]
        if dropped:
            found.append(
                Weakening(
                    "gate.detectors",
                    sorted(was),
                    sorted(now),
                    f"runs fewer detectors: {', '.join(dropped)} no longer run",
                )
            )
        for name, effect in _P_THRESHOLDS.items():
            old, new = float(getattr(before, name)), float(getattr(self, name))
            if new < old:
                found.append(Weakening(f"gate.{name}", old, new, f"lowered from {old:g} to {new:g}: {effect}"))
        old_fdr, new_fdr = _queue_share(before.flag_fdr), _queue_share(self.flag_fdr)
        if new_fdr < old_fdr:
            found.append(
                Weakening(
                    "gate.flag_fdr",
                    before.flag_fdr,
                    self.flag_fdr,
                    f"lowered from {_queue_text(before.flag_fdr)} to {_queue_text(self.flag_fdr)}: fewer flagged "
                    "records reach the review queue",
                )
            )
        old_drop, new_drop = float(before.max_validation_drop), float(self.max_validation_drop)
        if new_drop > old_drop:
            found.append(
                Weakening(
                    "gate.max_validation_drop",
                    old_drop,
                    new_drop,
                    f"widened from {old_drop:g} to {new_drop:g}: more harm to the clean validation set is tolerated",
                )
            )
        for name, effect in (
            ("earlier_batches_days", "a batch is judged together with fewer of its sender's earlier batches"),
            ("reference_size", "detectors fit and calibrate on fewer trusted records"),
            ("self_reference_folds", "a self-referenced batch is judged against smaller folds"),
        ):
            old_n, new_n = int(getattr(before, name)), int(getattr(self, name))
            if new_n < old_n:
                found.append(Weakening(f"gate.{name}", old_n, new_n, f"lowered from {old_n} to {new_n}: {effect}"))
        for key in sorted(set(before.featurizers) | set(self.featurizers)):
            if before.featurizers.get(key) != self.featurizers.get(key):
                found.append(
                    Weakening(
                        f"gate.featurizers.{key}",
                        before.featurizers.get(key),
                        self.featurizers.get(key),
                        "the featurizer changed: what the detectors see of this input changed",
                    )
                )
        for name in sorted(set(before.options) | set(self.options)):
            old_opts, new_opts = dict(before.options.get(name) or {}), dict(self.options.get(name) or {})
            if old_opts != new_opts and name in now:
                found.append(
                    Weakening(
                        f"gate.options.{name}",
                        old_opts,
                        new_opts,
                        f"the options of detector {name} changed: detector options are not ranked stricter or "
                        "looser, so any change needs an admin",
                    )
                )
        return found


def _is_number(value: Any) -> bool:
    """A real number (Python's or numpy's), not a boolean nor a string holding one."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    """A whole number (an integer, or a float without a fraction part, as JSON and YAML may give one)."""
    if isinstance(value, numbers.Integral):
        return not isinstance(value, bool)
    return _is_number(value) and math.isfinite(float(value)) and float(value).is_integer()


def _queue_share(flag_fdr: float | None) -> float:
    """``flag_fdr`` ranked for weakening: ``None`` queues every flag, more than any share does."""
    return math.inf if flag_fdr is None else float(flag_fdr)


def _queue_text(flag_fdr: float | None) -> str:
    return "null (every flag queued)" if flag_fdr is None else f"{flag_fdr:g}"
