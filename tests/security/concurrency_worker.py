"""One process of the concurrent mix (``test_concurrent_mix.py``): reads, contributions, small gate
runs and exports against a shared ward, through the Python API as a user's script would.

Kept free of test-only imports (no pytest, no scikit-learn) so that each process starts fast.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataward.domain.errors import DatawardError
from dataward.service.ward import Ward

KINDS = ("gated contribution", "contribution then gate run", "exports", "contribution and export")


def run(folder: str, index: int, data: str, out_dir: str, start: Any, results: Any) -> None:
    """Wait for ``start``, do the mix of worker ``index``, put what it did on ``results``.

    A dataward error (a lock error among them) is reported as text, so the test can name it; anything
    else is reported with its traceback.
    """
    report: dict[str, Any] = {"index": index, "contributions": [], "gated": [], "exports": [], "errors": []}
    try:
        ward = Ward.open(folder)
        start.wait(60)

        def attempt(what: str, call: Callable[[], Any]) -> Any:
            try:
                return call()
            except DatawardError as exc:
                report["errors"].append(f"{what}: {type(exc).__name__} ({exc.code}): {exc.message}")
                return None

        def reads() -> None:
            attempt("datasets", ward.datasets)
            attempt("contributions", lambda: ward.contributions("wine"))
            attempt("ledger", lambda: ward.ledger(limit=5))
            attempt("load training", lambda: ward.dataset("wine").version("training").to_pandas())

        reads()
        kind = KINDS[index % len(KINDS)]
        source = f"worker-{index}"
        if kind == "gated contribution":
            info = attempt("contribute", lambda: ward.contribute("wine", data, source=source))
            if info:
                report["contributions"].append(info["id"])
                report["gated"].append(info["id"])
        elif kind == "contribution then gate run":
            info = attempt("contribute", lambda: ward.contribute("wine", data, source=source, gate=False))
            if info:
                report["contributions"].append(info["id"])
                if attempt("gate run", lambda: ward.run_gate(info["ref"])):
                    report["gated"].append(info["id"])
        elif kind == "exports":
            for ref, fmt in (("wine@v1", "parquet"), ("wine@training", "jsonl")):
                path = str(Path(out_dir) / f"w{index}-{fmt}.{fmt}")
                if attempt("export", lambda ref=ref, path=path, fmt=fmt: ward.export(ref, path, format=fmt)):
                    report["exports"].append(path)
        else:
            info = attempt("contribute", lambda: ward.contribute("wine", data, source=source, gate=False))
            if info:
                report["contributions"].append(info["id"])
            path = str(Path(out_dir) / f"w{index}.csv")
            if attempt("export", lambda: ward.export("wine@v1", path, format="csv")):
                report["exports"].append(path)
        reads()
        ward.db.dispose()
    except BaseException:
        report["errors"].append(traceback.format_exc())
    results.put(report)
