"""``python -m benchmarks.label_flip_seeds``: label flips against cleanlab at several seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import label_flip_seeds


def test_each_case_and_seed_is_scanned_beside_cleanlab_and_resumed(tmp_path: Path) -> None:
    out = tmp_path / "flips.json"
    label_flip_seeds.main(["--seeds", "0,1", "--cases", "wine_targeted_flips", "--out", str(out)])
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert set(rows) == {"wine_targeted_flips@0", "wine_targeted_flips@1"}
    for row in rows.values():
        assert row["poisoned"] > 0 and row["verdict"] in {"pass", "review", "block"}
        for score in ("gate", "label_consistency", "cleanlab"):
            assert 0.0 <= row[score]["recall_at_1pct_fpr"] <= 1.0 and 0.0 <= row[score]["auroc"] <= 1.0
    # The seeds draw different batches: the same case at two seeds is not one scan written twice.
    assert rows["wine_targeted_flips@0"] != rows["wine_targeted_flips@1"]
    # A rerun keeps what the file holds and scans only what is missing.
    marked = rows | {"wine_targeted_flips@0": rows["wine_targeted_flips@0"] | {"verdict": "kept"}}
    out.write_text(json.dumps(marked), encoding="utf-8")
    label_flip_seeds.main(["--seeds", "0", "--cases", "wine_targeted_flips", "--out", str(out)])
    assert json.loads(out.read_text(encoding="utf-8"))["wine_targeted_flips@0"]["verdict"] == "kept"


def _row(gate: float, cleanlab: float, verdict: str = "block") -> dict:
    return {
        "poisoned": 10,
        "records": 100,
        "verdict": verdict,
        "gate": {"recall_at_1pct_fpr": gate, "auroc": gate},
        "cleanlab": {"recall_at_1pct_fpr": cleanlab, "auroc": cleanlab},
    }


def test_the_summary_pairs_seeds_and_tests_the_signs() -> None:
    rows = {
        "c@0": _row(1.0, 0.9),
        "c@1": _row(0.9, 0.9, "review"),
        "c@2": _row(0.8, 1.0),
        "c@3": _row(1.0, 0.5),
    }
    (summary,) = label_flip_seeds.summarise(rows, ["c"], [0, 1, 2, 3, 4])
    assert summary["seeds"] == 4  # seed 4 was not run: it is left out, not counted as a tie
    assert summary["recall_at_1pct_fpr_above_level_below"] == [2, 1, 1]
    assert summary["gate_recall_at_1pct_fpr"] == pytest.approx(0.925)
    assert summary["label_consistency_recall_at_1pct_fpr"] is None
    assert summary["recall_at_1pct_fpr_sign_p"] == pytest.approx(1.0)  # 2 above, 1 below: no evidence
    assert label_flip_seeds.sign_test(0, 0) == 1.0
    assert label_flip_seeds.sign_test(10, 0) == pytest.approx(2 * 0.5**10)
    table = label_flip_seeds.markdown([summary])
    assert "| c (10) | 4 | 0.925 / 0.9250 | - | 0.825 / 0.8250 | 2/1/1, 1 |" in table
    assert "3 block, 1 review" in table


def test_an_unknown_case_is_refused_by_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        label_flip_seeds.main(["--cases", "wine_targeted_flips,no_such_case", "--out", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2
    assert "no_such_case" in capsys.readouterr().err
