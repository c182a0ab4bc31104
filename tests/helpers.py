"""Real data for tests: scikit-learn's bundled sets written out as the files users would bring."""

from __future__ import annotations

import csv
from pathlib import Path

from sklearn.datasets import load_wine

WINE_FEATURES = ["alcohol", "malic_acid", "ash", "magnesium", "proline"]


def wine_rows(start: int = 0, stop: int | None = None) -> list[dict[str, object]]:
    data = load_wine(as_frame=True).frame
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
