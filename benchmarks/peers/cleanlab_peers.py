"""cleanlab as a peer: confident learning on cross-validated probabilities, and Datalab's outlier and
near-duplicate issue checks. cleanlab looks at a dataset as a whole, so it runs on the baseline and
the contribution together, as a user would run it on the data about to be trained on."""

from __future__ import annotations

import numpy as np
import pandas as pd
from cleanlab import Datalab
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from benchmarks.data import LABEL
from benchmarks.features import dense_features, model_inputs, probe_classifier
from benchmarks.peers.base import MethodResult, label_codes, modality_of, peer_verdict
from dataward.domain.schema import Schema

CV_FOLDS = 5


class CleanlabLabelIssues:
    """``cleanlab.filter.find_label_issues`` on 5-fold cross-validated predicted probabilities.

    Suspicion = 1 - cleanlab's label quality score (self-confidence); flags = ``find_label_issues``.
    """

    name = "cleanlab_label_issues"

    def score(
        self, baseline: pd.DataFrame, contribution: pd.DataFrame, schema: Schema, *, seed: int = 0, **_: object
    ) -> MethodResult:
        modality = modality_of(schema)
        union = pd.concat([baseline, contribution], ignore_index=True)
        labels, _ = label_codes(union, label=LABEL)
        folds = min(CV_FOLDS, int(np.bincount(labels).min()))
        cv = StratifiedKFold(n_splits=max(2, folds), shuffle=True, random_state=seed)
        probs = cross_val_predict(
            clone(probe_classifier(modality, seed)),
            model_inputs(union, modality, schema),
            labels,
            cv=cv,
            method="predict_proba",
            n_jobs=1,
        )
        issues = find_label_issues(labels, probs, n_jobs=1)
        quality = get_label_quality_scores(labels, probs)
        nb = len(baseline)
        verdict, reasons = peer_verdict(issues[nb:], issues[:nb])
        return MethodResult(1.0 - quality[nb:], issues[nb:], verdict, reasons)


class _DatalabIssue:
    """One Datalab issue type over dense features of baseline + contribution."""

    name = ""
    issue = ""

    def score(
        self, baseline: pd.DataFrame, contribution: pd.DataFrame, schema: Schema, *, seed: int = 0, **_: object
    ) -> MethodResult:
        modality = modality_of(schema)
        union = pd.concat([baseline, contribution], ignore_index=True)
        (features,) = dense_features(union, [union], modality, schema)
        lab = Datalab(data=pd.DataFrame({LABEL: union[LABEL].astype(str)}), label_name=LABEL, verbosity=0)
        lab.find_issues(features=features, issue_types={self.issue: {}})
        table = lab.get_issues(self.issue)
        flags = table[f"is_{self.issue}_issue"].to_numpy(dtype=bool)
        suspicion = 1.0 - table[f"{self.issue}_score"].to_numpy(dtype=np.float64)
        nb = len(baseline)
        verdict, reasons = peer_verdict(flags[nb:], flags[:nb])
        return MethodResult(suspicion[nb:], flags[nb:], verdict, reasons)


class CleanlabOutlier(_DatalabIssue):
    """Datalab's ``outlier`` issue: suspicion = 1 - outlier score; flags = ``is_outlier_issue``."""

    name = "cleanlab_outlier"
    issue = "outlier"


class CleanlabNearDuplicate(_DatalabIssue):
    """Datalab's ``near_duplicate`` issue: suspicion = 1 - near-duplicate score; flags = its own."""

    name = "cleanlab_near_duplicate"
    issue = "near_duplicate"
