"""A gate policy with a value of the wrong type or range is refused with an ``InputError`` naming the
key, whether it comes as a dict (``scan(policy=...)``, a dataset policy's ``gate`` section) or is built
directly; a value it keeps is the value it runs and hashes."""

from __future__ import annotations

import numpy as np
import pytest

from dataward.domain.errors import InputError
from dataward.gates import GatePolicy, scan


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"reference_size": "big"}, "policy reference_size must be a whole number of at least 50, got 'big'"),
        ({"reference_size": None}, "policy reference_size must be a whole number"),
        ({"reference_size": 50.5}, "policy reference_size must be a whole number"),
        ({"self_reference_folds": 2.5}, "policy self_reference_folds must be a whole number of at least 2, got 2.5"),
        ({"self_reference_folds": "5"}, "policy self_reference_folds must be a whole number"),
        ({"max_validation_drop": "x"}, "policy max_validation_drop must be a number in [0, 1], got 'x'"),
        ({"max_validation_drop": None}, "policy max_validation_drop must be a number"),
        ({"detectors": 5}, "policy detectors must be a list of detector names, got 5"),
        ({"featurizers": ["text"]}, "policy featurizers must be a mapping of column names to featurizers"),
        ({"options": ["outliers"]}, "policy options must be a mapping of detector names to options"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_input_error_naming_the_key(given, message) -> None:
    with pytest.raises(InputError) as caught:
        GatePolicy.from_dict(given)
    assert message in str(caught.value)


def test_a_built_policy_is_checked_as_its_dict_is(wine) -> None:
    with pytest.raises(InputError, match="policy reference_size must be a whole number"):
        GatePolicy(reference_size=None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="policy max_validation_drop must be a number"):
        GatePolicy(max_validation_drop=None)  # type: ignore[arg-type]
    _baseline, contribution, schema = wine
    with pytest.raises(InputError, match="policy self_reference_folds must be a whole number"):
        scan(None, contribution, schema, policy={"self_reference_folds": 2.5})


def test_numpy_and_whole_float_values_are_the_numbers_they_hold() -> None:
    policy = GatePolicy.from_dict(
        {"alpha": np.float32(0.05), "reference_size": 500.0, "self_reference_folds": np.int64(3)}
    )
    assert float(policy.alpha) == pytest.approx(0.05)
    assert policy.reference_size == 500 and type(policy.reference_size) is int
    assert policy.self_reference_folds == 3 and type(policy.self_reference_folds) is int
    assert GatePolicy.from_dict(policy.to_dict()) == GatePolicy.from_dict(policy.to_dict())
    assert GatePolicy(detectors="outliers").detectors == ("outliers",)
