"""The service layer: ``Ward``, one method per use case.

``Ward`` is imported from ``dataward.service.ward`` on first use: importing one service module (the
CLI's whoami needs the session service, not the gates) must not compose the whole ward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataward.service.ward import Ward


def __getattr__(name: str) -> Any:
    if name == "Ward":
        from dataward.service.ward import Ward

        return Ward
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Ward"]
