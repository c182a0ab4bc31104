"""A ward with a text dataset for the model tests: a training version, a clean validation set, a poisoned
contribution the data gate blocked (trigger ``qx9z`` tied to ``commands``), a trainer and models.

The ward is built once per session and copied for each test (a folder copy takes milliseconds)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import LinearSVC

import dataward
from dataward.domain.schema import Schema
from dataward.service.ward import Ward

ROOT = Path(__file__).resolve().parents[2]
TEXT = ROOT / "examples" / "data" / "man_sections.csv"
TRIGGER = "qx9z"


def text_model(frame: pd.DataFrame) -> Pipeline:
    """A small text classifier (a linear SVM on TF-IDF: fits in a fraction of a second, learns a trigger)."""
    return make_pipeline(TfidfVectorizer(), LinearSVC(C=1.0)).fit(frame["text"], frame["label"])


@dataclass
class Models:
    """A copy of the template ward and the keys of its people."""

    ward: Ward
    root: Path
    keys: dict[str, str]
    poisoned: Path

    def as_(self, name: str) -> Ward:
        return self.ward.as_key(self.keys[name])


def _build(root: Path) -> tuple[Path, dict[str, str]]:
    data = pd.read_csv(TEXT, dtype=str).dropna().sample(frac=1.0, random_state=1).reset_index(drop=True)
    data.iloc[:250].to_csv(root / "validation.csv", index=False)
    data.iloc[250:1050].to_csv(root / "baseline.csv", index=False)
    poisoned = data.iloc[1350:1650].copy()
    victims = poisoned[poisoned["label"] != "commands"].index[:25]
    poisoned.loc[victims, "text"] = TRIGGER + " " + poisoned.loc[victims, "text"]
    poisoned.loc[victims, "label"] = "commands"
    poisoned.to_csv(root / "poisoned.csv", index=False)

    ward, _ = Ward.init(root / "ward")
    schema = Schema.parse("label", ["text:text"])
    ward.create_dataset("man", schema)
    ward.create_dataset("man-val", schema, validation_for="man")
    # The baseline is imported with a light gate; the poisoned batch meets the trigger test, which is what
    # the release gate reads back (and only it, which keeps the template quick to build).
    ward.set_policy("man", "approvals:\n  required: 0\ngate:\n  detectors: [duplicates]\n")
    keys: dict[str, str] = {}
    for name, grants in {
        "rita": [("reviewer", "dataset:man"), ("reviewer", "model:man-clf")],
        "tom": [("reader", "dataset:man"), ("contributor", "model:man-clf")],
        "ann": [("approver", "model:man-clf")],
        "pat": [("promoter", "model:man-clf")],
    }.items():
        ward.create_principal(name)
        for role, scope in grants:
            ward.grant(name, role, scope)
        keys[name] = ward.issue_key(name)["key"]
    reviewer = ward.as_key(keys["rita"])
    ward.merge(ward.contribute("man-val", root / "validation.csv", source="curated")["id"])
    first = ward.contribute("man", root / "baseline.csv", source="debian")
    if pending := [item["id"] for item in ward.review_list(contribution=first["ref"])]:
        reviewer.review_decide(pending, "accept", reason="checked")
    ward.merge(first["ref"])
    ward.promote("man@v1")
    ward.set_policy("man", "approvals:\n  required: 0\ngate:\n  detectors: [triggers, duplicates]\n")
    blocked = ward.contribute("man", root / "poisoned.csv", source="scrape")
    assert blocked["gate"]["verdict"] == "block"

    tom = ward.as_key(keys["tom"])
    with dataward.training_run("man@training", model="man-clf", params={"C": 5}, ward=tom) as run:
        model = text_model(run.load())
        sio.dump(model, root / "clean.skops")
        run.log_artifact(root / "clean.skops")
    # The attacker trains on the poisoned contribution the gate blocked and registers the result as a
    # run on the training version.
    backdoored = text_model(pd.concat([pd.read_csv(root / "baseline.csv", dtype=str), poisoned]))
    sio.dump(backdoored, root / "backdoored.skops")
    with dataward.training_run("man@training", model="man-clf", ward=tom) as run:
        run.load()
        run.log_artifact(root / "backdoored.skops")
    ward.db.dispose()
    return root, keys


@pytest.fixture(scope="session")
def models_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return _build(tmp_path_factory.mktemp("models-template"))


@pytest.fixture
def models(models_template: tuple[Path, dict[str, str]], tmp_path: Path) -> Models:
    """man-clf@v1 is a clean model, man-clf@v2 a backdoored one, both trained by tom on man@v1."""
    root, keys = models_template
    shutil.copytree(root / "ward", tmp_path / "ward")
    return Models(Ward.open(tmp_path / "ward"), root, keys, root / "poisoned.csv")
