"""The built-in detectors: importing this package registers every one of them.

Each detector lives in its own module. Modules are imported by name from a fixed list; a module
that is not present in this installation is simply not registered, while any error raised while
importing a present module propagates (a broken detector must never be silently skipped).
"""

from __future__ import annotations

import importlib
import importlib.util

from dataward.gates.base import Detector, registered

BUILTIN_MODULES = (
    "label_consistency",
    "duplicates",
    "outliers",
    "drift",
    "backdoor",
    "triggers",
    "clean_validation",
    "llm_triggers",
    "llm_validation",
    "llm_payloads",
    "llm_behaviour_shift",
    "llm_floods",
    "preference_flips",
    "llm_outliers",
    "llm_drift",
)


def _load() -> None:
    for module in BUILTIN_MODULES:
        qualified = f"{__name__}.{module}"
        if importlib.util.find_spec(qualified) is not None:
            importlib.import_module(qualified)


def available() -> dict[str, type[Detector]]:
    """Every registered detector by name, built-ins included."""
    return registered()


_load()

__all__ = ["BUILTIN_MODULES", "available"]
