"""scikit-learn's IsolationForest as the plain outlier baseline: fitted on the trusted baseline."""

from __future__ import annotations

import pandas as pd
from sklearn.ensemble import IsolationForest

from benchmarks.features import dense_features
from benchmarks.peers.base import MethodResult, modality_of, peer_verdict
from dataward.domain.schema import Schema


class IsolationForestPeer:
    """Suspicion = negated IsolationForest score; flags = its own ``contamination="auto"`` threshold."""

    name = "isolation_forest"

    def score(
        self, baseline: pd.DataFrame, contribution: pd.DataFrame, schema: Schema, *, seed: int = 0, **_: object
    ) -> MethodResult:
        modality = modality_of(schema)
        xb, xc = dense_features(baseline, [baseline, contribution], modality, schema)
        forest = IsolationForest(n_estimators=200, random_state=seed, n_jobs=1).fit(xb)
        flags = forest.predict(xc) == -1
        verdict, reasons = peer_verdict(flags, forest.predict(xb) == -1)
        return MethodResult(-forest.score_samples(xc), flags, verdict, reasons)
