"""``python -m benchmarks.attack_seeds``: the attacks drawn at other seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import attack_seeds


def test_each_attack_and_seed_is_judged_and_written(tmp_path: Path) -> None:
    out = tmp_path / "seeds.json"
    attack_seeds.main(["--seeds", "1,2", "--attacks", "outliers_wine", "--out", str(out)])
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert set(figures) == {"tuning:outliers_wine@1", "tuning:outliers_wine@2"}
    for row in figures.values():
        assert row["verdict"] in {"pass", "review", "block"}
        assert 0 <= row["queued_poison"] <= row["queued"]
        assert set(row["blockers"]) <= {"label_consistency", "duplicates", "triggers", "backdoor", "clean_validation"}
        assert 0.0 <= row["recall_at_1pct_fpr"] <= 1.0 and 0.0 <= row["auroc"] <= 1.0


def test_a_held_out_attack_is_judged_under_its_set(tmp_path: Path) -> None:
    out = tmp_path / "seeds.json"
    attack_seeds.main(["--seeds", "0", "--sets", "heldout", "--attacks", "wine_targeted_flips", "--out", str(out)])
    row = json.loads(out.read_text(encoding="utf-8"))["heldout:wine_targeted_flips@0"]
    assert row["verdict"] == "block" and row["queued_poison"] > 0


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--attacks", "outliers_wine,no_such_attack"], "no_such_attack"),
        (["--sets", "tuning,no_such_set"], "no_such_set"),
        (["--sets", "tuning,heldout", "--attacks", "outliers_wine"], "exactly one set"),
    ],
)
def test_an_unknown_attack_or_set_is_refused_by_name(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        attack_seeds.main(argv)
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err
