"""dataward: a governed, tamper-evident registry and poisoning gate for ML training data.

>>> import dataward
>>> ward = dataward.open("path/to/ward")
>>> df = ward.dataset("reviews").version("training").to_pandas()
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dataward.service.ward import Ward


def open(path: str | os.PathLike[str] | None = None, *, key: str | None = None) -> Ward:
    """Open a ward folder and return the service the CLI uses (see ``Ward.open``)."""
    from dataward.service.ward import Ward

    return Ward.open(path, key=key)


def init(path: str | os.PathLike[str], *, admin: str = "admin") -> tuple[Ward, str]:
    """Create a ward folder; returns the ward and the first admin's API key (shown once)."""
    from dataward.service.ward import Ward

    return Ward.init(path, admin=admin)


__all__ = ["__version__", "init", "open"]
