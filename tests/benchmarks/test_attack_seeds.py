"""``python -m benchmarks.attack_seeds``: the tuning attacks drawn at other seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import attack_seeds


def test_each_attack_and_seed_is_judged_and_written(tmp_path: Path) -> None:
    out = tmp_path / "seeds.json"
    attack_seeds.main(["--seeds", "1,2", "--attacks", "outliers_wine", "--out", str(out)])
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert set(figures) == {"outliers_wine@1", "outliers_wine@2"}
    for row in figures.values():
        assert row["verdict"] in {"pass", "review", "block"}
        assert 0 <= row["queued_poison"] <= row["queued"]
        assert set(row["blockers"]) <= {"label_consistency", "duplicates", "triggers", "backdoor", "clean_validation"}


def test_an_unknown_attack_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        attack_seeds.main(["--attacks", "outliers_wine,no_such_attack"])
    assert exit_info.value.code == 2
    assert "no_such_attack" in capsys.readouterr().err
