"""Clean and backdoored models of six learners through the tabular trigger search, with and without the
model's own learner as a reference: ``python -m benchmarks.release_learners [--seeds 0,...,9]``.

The 30-column breast-cancer data (scikit-learn's copy): 230 trusted rows (the dataset's training
version, from which the search takes its values and fits its references), 150 validation rows, the rest
a pool. *Clean* models are trained on the trusted rows alone, or on the trusted rows and the clean pool
(a newer, larger version than the trusted one). *Backdoored* models are trained on the trusted rows and
the pool, a tenth of the pool being malignant rows given a large ``mean_radius`` and a small
``mean_perimeter`` (their 90th and 10th percentiles, a combination no real tumour has) and relabelled
benign. Each model goes through ``search_tabular`` and the release gate's judgement (no data-gate
history, the default release policy), once with the ward's own references only and once with a clone
of the model's learner as well (``architecture``, what a skops artifact or an estimator gets).
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from dataward.domain.schema import Schema
from dataward.release.gate import judge
from dataward.release.policy import ReleasePolicy
from dataward.release.search import search_tabular

LEARNERS: dict[str, Callable[[], Any]] = {
    "gradient boosting": lambda: GradientBoostingClassifier(random_state=0),
    "histogram boosting": lambda: HistGradientBoostingClassifier(random_state=0),
    "logistic, raw columns": lambda: LogisticRegression(max_iter=5000),
    "svm, scaled": lambda: make_pipeline(StandardScaler(), SVC()),
    "k-nearest, scaled": lambda: make_pipeline(StandardScaler(), KNeighborsClassifier()),
    "random forest": lambda: RandomForestClassifier(random_state=0),
}
HIGH, LOW = "mean_radius", "mean_perimeter"
ROOT = Path(__file__).resolve().parents[1]


def _table(frame: pd.DataFrame) -> pa.Table:
    out = frame.reset_index(drop=True).copy()
    out.insert(0, "record_id", [f"r{i}" for i in range(len(out))])
    return pa.Table.from_pandas(out, preserve_index=False)


def split(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, Schema]:
    """Trusted rows, validation rows, the clean pool and the poisoned pool."""
    frame = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["label"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    trusted, validation, pool = frame.iloc[:230], frame.iloc[230:380], frame.iloc[380:].copy()
    poisoned = pool.copy()
    victims = poisoned.index[poisoned["label"] == "malignant"][: len(poisoned) // 10]
    poisoned.loc[victims, HIGH] = trusted[HIGH].quantile(0.9)
    poisoned.loc[victims, LOW] = trusted[LOW].quantile(0.1)
    poisoned.loc[victims, "label"] = "benign"
    schema = Schema.parse("label", [f"{c}:numeric" for c in frame.columns if c != "label"])
    return trusted, validation, pool, poisoned, schema


def verdict(model: Any, trusted: pd.DataFrame, validation: pd.DataFrame, schema: Schema, *, own: bool) -> str:
    columns = [c.name for c in schema.inputs]

    def predict(table: pa.Table, _ids: Sequence[str]) -> list[str]:
        return [str(v) for v in model.predict(table.to_pandas()[columns].to_numpy(dtype=np.float32))]

    table = _table(validation)
    clean = predict(table, [])
    found = search_tabular(
        table, schema, predict, _table(trusted), clean=clean, seed=0, architecture=model if own else None
    )
    return judge([str(v) for v in validation["label"]], clean, found.probes, ReleasePolicy()).verdict


def run(seeds: list[int]) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        trusted, validation, pool, poisoned, schema = split(seed)
        columns = [c.name for c in schema.inputs]
        trainings = {
            "clean, trusted rows": trusted,
            "clean, trusted rows and pool": pd.concat([trusted, pool]),
            "backdoored": pd.concat([trusted, poisoned]),
        }
        for learner, make in LEARNERS.items():
            for training, data in trainings.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = make().fit(data[columns].to_numpy(np.float32), data["label"])
                    row = {
                        "seed": seed,
                        "learner": learner,
                        "model": training,
                        "ward references": verdict(model, trusted, validation, schema, own=False),
                        "with its own learner": verdict(model, trusted, validation, schema, own=True),
                    }
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Per learner and model: blocked / reviewed of the seeds, with the ward's references and with its own."""
    frame = pd.DataFrame(rows)
    lines = [
        "| learner | model | seeds | ward references: block / review | with its own learner: block / review |",
        "|---|---|---|---|---|",
    ]
    for (learner, model), part in frame.groupby(["learner", "model"], sort=False):
        a, b = part["ward references"], part["with its own learner"]
        lines.append(
            f"| {learner} | {model} | {len(part)} | {(a == 'block').sum()} / {(a == 'review').sum()} | "
            f"{(b == 'block').sum()} / {(b == 'review').sum()} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=",".join(str(s) for s in range(10)))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "release-learners.json")
    args = parser.parse_args()
    rows = run([int(s) for s in args.seeds.split(",")])
    args.out.write_text(json.dumps(rows, indent=1) + "\n", "utf-8")
    print(table(rows))


if __name__ == "__main__":
    main()
