"""A clean validation set must hold its dataset's columns: one that does not is refused when it is
made, and one made before that check (an older ward) refuses the gate as bad input, storing nothing,
never as an integrity failure that sends the user to `dataward verify`."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.service import datasets as dataset_service
from dataward.service.ward import Ward
from tests.helpers import WINE_FEATURES, wine_rows, wine_schema_specs, write_csv

LIGHT = "gate:\n  detectors: [duplicates]\n"


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    w, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    w.create_dataset("wine", Schema.parse(label, specs))
    w.set_policy("wine", LIGHT)
    return w


def _misspelt_specs() -> list[str]:
    """The wine inputs with 'alcohol' misspelt 'alcohl'."""
    return [f"{'alcohl' if name == 'alcohol' else name}:numeric" for name in WINE_FEATURES]


def test_validation_for_refuses_other_columns_naming_them(ward: Ward) -> None:
    with pytest.raises(InputError) as refused:
        ward.create_dataset("wine-val", Schema.parse("cultivar", _misspelt_specs()), validation_for="wine")
    assert "alcohl:numeric" in refused.value.message and "alcohol:numeric" in refused.value.message
    assert "--label cultivar" in (refused.value.hint or "")
    kinds = [f"{n}:{'text' if n == 'ash' else 'numeric'}" for n in WINE_FEATURES]
    with pytest.raises(InputError, match="column 'ash' is ash:text where the dataset has ash:numeric"):
        ward.create_dataset("wine-val", Schema.parse("cultivar", kinds), validation_for="wine")
    with pytest.raises(InputError, match="label column 'y'"):
        ward.create_dataset("wine-val", Schema.parse("y", wine_schema_specs()[1]), validation_for="wine")
    assert [d["name"] for d in ward.datasets()] == ["wine"]
    # The same columns in another order are the same schema.
    ward.create_dataset("wine-val", Schema.parse("cultivar", wine_schema_specs()[1][::-1]), validation_for="wine")


def test_an_older_mismatched_validation_set_is_bad_input_and_stores_nothing(
    ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ward made before the check: the validation set was accepted with a misspelt column.
    monkeypatch.setattr(dataset_service, "check_validation_schema", lambda *_a, **_k: None)
    ward.create_dataset("wine-val", Schema.parse("cultivar", _misspelt_specs()), validation_for="wine")
    monkeypatch.undo()
    rows = wine_rows(shuffled=True)
    val = [{("alcohl" if k == "alcohol" else k): v for k, v in r.items()} for r in rows[:110]]
    ward.merge(ward.contribute("wine-val", write_csv(tmp_path / "v.csv", val), source="curated")["ref"])
    with pytest.raises(InputError) as refused:
        ward.contribute("wine", write_csv(tmp_path / "a.csv", rows[110:]), source="s")
    assert "'wine-val'" in refused.value.message and "alcohl:numeric" in refused.value.message
    assert "verify" not in (refused.value.hint or "")
    assert ward.contributions("wine") == []  # refused before anything was stored
    with pytest.raises(InputError, match="must have the same columns as 'wine'"):
        ward.contribute("wine", removes=["b3:" + "0" * 64], source="s")  # a removal alike
    assert ward.contributions("wine") == []
    # One stored without its gate cannot be gated either, and says why as bad input.
    c = ward.contribute("wine", write_csv(tmp_path / "a.csv", rows[110:]), source="s", gate=False)
    with pytest.raises(InputError, match="must have the same columns as 'wine'"):
        ward.run_gate(c["ref"])
