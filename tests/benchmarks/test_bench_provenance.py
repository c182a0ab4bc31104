"""The provenance benchmark's ward shape at the issue's full size, its growth fit and its report."""

from __future__ import annotations

from benchmarks import bench_provenance as bench


def test_the_full_size_is_the_one_the_issue_asks_for() -> None:
    plan = bench.shape(1_000_000)
    assert plan["records"] == 1_000_000 and plan["contributions"] == 1_000
    assert plan["transformations"] == 100 and plan["merges"] == 100
    assert plan["leaked_key_contributions"] == 100
    small = bench.shape(10_000)
    assert small["contributions"] == 10 and small["merges"] == 10


def test_growth_exponent_is_fitted_on_logs() -> None:
    assert bench._fit([(10_000, 2.0), (100_000, 20.0), (1_000_000, 200.0)]) == 1.0
    assert bench._fit([(10_000, 5.0), (100_000, 5.0)]) == 0.0
    assert bench._fit([(10_000, 5.0)]) is None


def test_report_lists_every_run_and_the_fitted_growth() -> None:
    trace = {k: {"n": 5, "p50_ms": 3.0, "p99_ms": 9.0, "max_ms": 9.0} for k in bench.SAMPLES}
    verify = {
        "events": 100,
        "events_per_s": 5000,
        "ed25519_per_s": 6000,
        "object_mb": 1.0,
        "object_mb_per_s": 100.0,
        "blake3_mb_per_s": 400.0,
        "total_s": 1.0,
        "chain_s": 0.02,
        "objects_s": 0.01,
    }
    runs = [
        {
            "catalog": "sqlite",
            "records": n,
            "contributions": n // 1000,
            "versions": 10,
            "transformations": 10,
            "trace": trace,
            "trace_cold": trace,
            "quarantine": {"seconds": 0.5, "contributions": 1, "rollbacks": 1},
            "verify": verify,
        }
        for n in (10_000, 100_000)
    ]
    rates = {"spaced": 50_000, "all_signatures": 9_000, "before": 4_000, "ed25519": 10_000, "blake3": 900_000}
    chain = {"events": 20_000, "per_s": rates, "spaced_over_before": 12.5, "spaced_over_ed25519": 5.0}
    runs[1]["verify"] = {**verify, "chain": chain}
    text = bench.render({"command": "cmd", "machine": "m", "date": "d", "runs": runs})
    assert "| sqlite | 100,000 | 20,000 | 50,000 | 9,000 | 4,000 | 10,000 | 900,000 | 12.5x | 5.0x |" in text
    assert "| sqlite | 10,000 | 20,000 |" not in text
    assert text.startswith(bench.BEGIN) and text.rstrip().endswith(bench.END)
    assert (
        "| sqlite | d2c76b2 | 100,000 | 100 |" in text and "| sqlite | d2c76b2 | trace record warm p50 | 0.0 |" in text
    )
