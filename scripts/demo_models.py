"""The demo's training scripts: a model trained through ``dataward.training_run`` on the promoted version,
and a backdoored one trained in a sandbox ward on the contribution the gate blocked.

Usage:
  python scripts/demo_models.py clean MODEL_FILE
      trains on manpages@training of the ward in $DATAWARD_WARD, as $DATAWARD_KEY, inside a training run
  python scripts/demo_models.py sandbox SANDBOX_DIR TRAINING.parquet VALIDATION.csv BLOCKED.csv MODEL_FILE
      a throwaway ward of its own: the training records plus the blocked batch, merged with a light gate,
      and a model trained there through a training run (what an attacker with a scratch ward would do)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import skops.io as sio
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import LinearSVC

import dataward
from dataward.domain.schema import Schema


def fit(frame: pd.DataFrame) -> Pipeline:
    """The section classifier: a linear SVM on TF-IDF of the NAME line."""
    return make_pipeline(TfidfVectorizer(), LinearSVC(C=1.0)).fit(frame["text"], frame["label"])


def clean(model_file: Path) -> None:
    with dataward.training_run("manpages@training", model="sections", params={"C": 1.0, "features": "tfidf"}) as run:
        frame = run.load()
        sio.dump(fit(frame), model_file)
        run.log_metrics(train_records=len(frame))
        run.log_artifact(model_file)
    mv = run.model_version or {}
    print(f"{mv['ref']}: trained on {', '.join(mv['datasets'])}, sha256 {mv['digest'][:16]}…, run {mv['run']['id']}")


def sandbox(folder: Path, training: Path, validation: Path, blocked: Path, model_file: Path) -> None:
    ward, _ = dataward.init(folder, admin="mallory")
    schema = Schema.parse("label", ["text:text"])
    ward.create_dataset("manpages", schema)
    ward.create_dataset("manpages-validation", schema, validation_for="manpages")
    ward.set_policy(
        "manpages", "approvals:\n  required: 0\ngate:\n  detectors: [duplicates]\nfirst_import: self-reference\n"
    )
    ward.merge(ward.contribute("manpages-validation", validation, source="copy")["id"])
    frame = pd.read_parquet(training)[["text", "label"]]
    merged = pd.concat([frame, pd.read_csv(blocked, dtype=str)[["text", "label"]]])
    merged.to_csv(folder.parent / "sandbox-data.csv", index=False)
    c = ward.contribute("manpages", folder.parent / "sandbox-data.csv", source="training copy + blocked batch")
    ward.create_principal("mallory-2")
    ward.grant("mallory-2", "reviewer", "dataset:manpages")
    helper = ward.as_key(ward.issue_key("mallory-2")["key"])
    pending = [item["id"] for item in ward.review_list(contribution=c["ref"])]
    if pending:
        helper.review_decide(pending, "accept", reason="sandbox")
    ward.merge(c["ref"])
    ward.promote("manpages@v1")
    with dataward.training_run("manpages@training", model="sections", ward=ward) as run:
        sio.dump(fit(run.load()), model_file)
        run.log_artifact(model_file)
    print(
        f"sandbox {run.model_version['ref']}: trained on the training copy plus the blocked batch -> {model_file.name}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["clean"]:
        clean(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["sandbox"]:
        sandbox(*(Path(a) for a in sys.argv[2:7]))
    else:
        raise SystemExit(__doc__)
