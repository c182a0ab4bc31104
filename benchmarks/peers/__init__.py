"""The defences under test: dataward's gate and the tools a user would pick instead.

``method(name)`` makes one; ``PEERS`` lists the peers in the order tables show them.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.peers.base import DETECTION_P, Method, MethodResult, modality_of, peer_verdict
from benchmarks.peers.cleanlab_peers import CleanlabLabelIssues, CleanlabNearDuplicate, CleanlabOutlier
from benchmarks.peers.dataward_gate import DatawardGate, available
from benchmarks.peers.isolation_forest import IsolationForestPeer
from dataward.domain.errors import InputError


def _art(kind: str) -> Callable[[], Method]:
    def make() -> Method:
        # Imported on use: ART and PyTorch are optional (the ``bench`` extra) and slow to import.
        from benchmarks.peers.art_peers import ArtActivation, ArtSpectral

        return ArtSpectral() if kind == "spectral" else ArtActivation()

    return make


FACTORIES: dict[str, Callable[[], Method]] = {
    "dataward": DatawardGate,
    "isolation_forest": IsolationForestPeer,
    "cleanlab_label_issues": CleanlabLabelIssues,
    "cleanlab_outlier": CleanlabOutlier,
    "cleanlab_near_duplicate": CleanlabNearDuplicate,
    "art_spectral": _art("spectral"),
    "art_activation": _art("activation"),
}
PEERS = [name for name in FACTORIES if name != "dataward"]


def method(name: str) -> Method:
    """A method under test by name (a key of ``FACTORIES``)."""
    try:
        return FACTORIES[name]()
    except KeyError as exc:
        raise InputError(f"unknown method {name!r}", hint=f"use one of: {', '.join(FACTORIES)}") from exc


__all__ = [
    "DETECTION_P",
    "FACTORIES",
    "PEERS",
    "Method",
    "MethodResult",
    "available",
    "method",
    "modality_of",
    "peer_verdict",
]
