"""DigestSet answers every membership question a Python set of the same hex ids answers, the same way,
without a string per member: what the training loader asks of a version before serving it."""

from __future__ import annotations

import numpy as np
import pytest

from dataward.domain.idarrays import binary_to_ids
from dataward.domain.idset import DigestSet


def _digests(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


@pytest.mark.parametrize("n", [0, 1, 2, 500])
def test_a_digest_set_agrees_with_a_set_of_its_hex_ids(n: int) -> None:
    members = _digests(n, 1)
    outsiders = _digests(50, 2)
    # Ids differing from a member in their last byte only, or in their first: never confused with it.
    near = members[: min(n, 20)].copy()
    near[:, -1] ^= 1
    far = members[: min(n, 20)].copy()
    far[:, 0] ^= 0x80
    plain = set(binary_to_ids(members).to_pylist())
    shuffled = members[np.random.default_rng(3).permutation(n)]
    digest_set = DigestSet(np.concatenate([shuffled, shuffled[: n // 2]]))  # unsorted, with repeats
    asked = (
        binary_to_ids(members).to_pylist()
        + binary_to_ids(outsiders).to_pylist()
        + binary_to_ids(near).to_pylist()
        + binary_to_ids(far).to_pylist()
    )
    asked += [a.upper() for a in asked[:5]] + ["", "zz" * 32, "0" * 63, "0" * 65]
    assert len(digest_set) == len(plain) == n
    assert sorted(digest_set) == sorted(plain)
    assert [a in digest_set for a in asked] == [a in plain for a in asked]
    assert digest_set.among(asked) == [a for a in asked if a in plain]
    assert set(asked) & digest_set == set(asked) & plain == digest_set & asked
    assert 7 not in digest_set and None not in digest_set and b"\x00" * 32 not in digest_set
