"""What is read from each text alone is read once per distinct text, and gives each record what reading it
alone gives; the hashed featurizer's projection is drawn once per seed and cannot be written to."""

from __future__ import annotations

import numpy as np
import pytest

from dataward.gates.detectors._llm import behaviours, distinct_rows
from dataward.gates.detectors.llm_behaviour_shift import _metrics
from dataward.gates.features.hashed import _projection

ANSWERS = [
    "See https://example.org/docs for more.",
    "I cannot help with that.",
    "Run `rm -rf /tmp/x` in a shell:\n$ rm -rf /tmp/x",
    "Это ответ на русском языке.",
    "Great, wonderful, excellent work!",
    "",
]


def test_repeated_answers_get_what_each_gets_alone() -> None:
    rng = np.random.default_rng(0)
    batch = [ANSWERS[i] for i in rng.integers(0, len(ANSWERS), 200)]
    alone = np.vstack([behaviours([a]) for a in batch])
    assert np.array_equal(behaviours(batch), alone)
    rates, lengths = _metrics(batch)
    one_by_one = [_metrics([a]) for a in batch]
    assert np.array_equal(rates, np.vstack([r for r, _ in one_by_one]))
    assert np.array_equal(lengths, np.concatenate([n for _, n in one_by_one]))


def test_distinct_rows_keep_first_seen_order() -> None:
    distinct, rows = distinct_rows(["b", "a", "b", "c", "a"])
    assert distinct == ["b", "a", "c"]
    assert rows.tolist() == [0, 1, 0, 2, 1]
    assert distinct_rows([])[1].shape == (0,)


def test_the_projection_is_drawn_once_per_seed_and_read_only() -> None:
    first, again, other = _projection(3), _projection(3), _projection(4)
    assert first is again and not np.array_equal(first, other)
    with pytest.raises(ValueError):
        first[0, 0] = 2.0
