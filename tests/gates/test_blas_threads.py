"""Thread limits set around every neighbour search and probe fit: the same limits as threadpoolctl's own,
restored after the block, with the libraries found again once a module has been imported."""

from __future__ import annotations

import sys
import types

from threadpoolctl import threadpool_info

from dataward.gates import blas_threads
from dataward.gates.blas_threads import controller, limit_threads


def _threads() -> dict[str, int]:
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}


def test_a_limit_holds_in_its_block_and_is_restored_after_it() -> None:
    before = _threads()
    assert before, "numpy's BLAS is a thread pool threadpoolctl knows"
    with limit_threads(1):
        assert set(_threads().values()) == {1}
        with limit_threads(2):
            assert set(_threads().values()) == {2}
        assert set(_threads().values()) == {1}
    assert _threads() == before


def test_the_libraries_are_found_once_until_a_module_is_imported(monkeypatch) -> None:
    first = controller()
    assert controller() is first  # nothing imported in between: the same libraries, not walked again
    monkeypatch.setitem(sys.modules, "dataward_test_new_module", types.ModuleType("dataward_test_new_module"))
    again = controller()
    assert again is not first
    assert [lib.filepath for lib in again.lib_controllers] == [lib.filepath for lib in first.lib_controllers]
    assert blas_threads.controller() is again
