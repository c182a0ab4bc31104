"""Real data for tests: scikit-learn's bundled sets written out as the files users would bring."""

from __future__ import annotations

import csv
from pathlib import Path

from sklearn.datasets import load_wine

WINE_FEATURES = ["alcohol", "malic_acid", "ash", "magnesium", "proline"]


def wine_rows(start: int = 0, stop: int | None = None, *, shuffled: bool = False) -> list[dict[str, object]]:
    """Rows of the wine set; ``shuffled`` mixes the classes (the file is sorted by class)."""
    data = load_wine(as_frame=True).frame
    if shuffled:
        data = data.sample(frac=1.0, random_state=0)
    data = data.rename(columns={"target": "cultivar"})
    rows = data[[*WINE_FEATURES, "cultivar"]].iloc[start:stop]
    return rows.to_dict(orient="records")


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def wine_schema_specs() -> tuple[str, list[str]]:
    return "cultivar", [f"{name}:numeric" for name in WINE_FEATURES]

# Merges in the data-path tests need no second person; governance tests use the default policy.
NO_APPROVALS_POLICY = "approvals:\n  required: 0\n"
