"""What a fresh `dataward` process imports: help and cheap commands must not pay for the libraries of
the commands that compute (the gates, tables, the catalog), since every command is a new process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs the CLI as the console script does, then writes its exit code and the names of the imported
# modules to a file.
CHILD = """
import json, sys
modules_file, *args = sys.argv[1:]
sys.argv = ["dataward", *args]
from dataward.cli.app import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
with open(modules_file, "w") as out:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, out)
"""

NOT_FOR_HELP = (
    "numpy",
    "pandas",
    "pyarrow",
    "sklearn",
    "scipy",
    "cleanlab",
    "sqlalchemy",
    "cryptography",
    "torch",
    "datasets",
    "PIL",
    "dataward.service",
    "dataward.catalog",
    "dataward.gates",
    "dataward.release",
)
"""Help is text: no table, catalog, signing or gate code."""

NOT_FOR_A_READ = (
    "numpy",
    "pyarrow",
    "pandas",
    "sklearn",
    "scipy",
    "cleanlab",
    "torch",
    "datasets",
    "PIL",
    "dataward.gates",
    "dataward.release",
)
"""A command that reads the catalog and serves no record opens the ward (SQLAlchemy, the signing key, the
service core) but no table code, gate or release gate."""


def imported(tmp_path: Path, *args: str, ward: Path | None = None) -> tuple[int, set[str]]:
    """The exit code of a fresh process that ran ``dataward ARGS``, and the modules it imported."""
    modules_file = tmp_path / "modules.json"
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("DATAWARD_URL", None)
    env.pop("DATAWARD_KEY", None)
    if ward is not None:
        env["DATAWARD_WARD"] = str(ward)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(modules_file), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert modules_file.exists(), done.stdout + done.stderr
    found = json.loads(modules_file.read_text())
    return found["exit"], set(found["modules"])


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The ``packages`` of which ``modules`` holds the package itself or any of its modules."""
    return [p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)]


@pytest.mark.parametrize(
    ("args", "also_not"),
    [
        (["--help"], ("pydantic",)),
        ([], ("pydantic",)),
        (["--version"], ()),
        # Typer coerces the parameters of the group callbacks on the way to a subcommand (with pydantic).
        (["ledger", "--help"], ()),
        (["gate", "run", "--help"], ()),
    ],
)
def test_help_imports_no_library_of_the_commands(tmp_path: Path, args: list[str], also_not: tuple[str, ...]) -> None:
    _, modules = imported(tmp_path, *args)
    assert "dataward.cli.app" in modules
    assert loaded(modules, NOT_FOR_HELP + also_not) == []


def test_reading_commands_do_not_import_the_gates(tmp_path: Path) -> None:
    ward = tmp_path / "ward"
    init = subprocess.run(
        [sys.executable, "-m", "dataward", "--ward", str(ward), "init", "--json"], capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    for args in (["whoami"], ["ledger", "head", "--json"], ["ledger", "-n", "5"], ["principal", "list"]):
        code, modules = imported(tmp_path, *args, ward=ward)
        assert code == 0, args
        assert "dataward.service.core" in modules, args  # the command did open the ward
        assert loaded(modules, NOT_FOR_A_READ) == [], args


SHOW_STORED_REPORT = """
import json, sys
from dataward.cli.gate_commands import show_report
show_report({
    "verdict": "block", "contribution": "wine#2", "counts": {"flagged": 1, "records": 3}, "mode": "baseline",
    "reasons": ["label_consistency: 1 flip"], "groups": {}, "records": [], "findings": [],
    "detectors": {
        "label_consistency": {"version": "7", "flagged": 1, "p_value": 0.001, "summary": {}},
        "llm_drift": {"summary": {"skipped": "applies to instruction, chat; not to a tabular dataset"}},
    },
})
print(json.dumps(sorted(sys.modules)))
"""


def test_printing_a_stored_gate_report_does_not_import_the_gates() -> None:
    """`gate report` prints a report the ward stored: before, telling the detectors for another kind of
    data apart imported the gates package (scikit-learn, every detector), 3 of its 4.4 seconds."""
    done = subprocess.run([sys.executable, "-c", SHOW_STORED_REPORT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shown, modules = done.stdout.rsplit("\n", 2)[0], set(json.loads(done.stdout.rsplit("\n", 2)[1]))
    assert "label_consistency v7: flagged 1" in shown
    assert "1 detector for another kind of data not listed" in shown
    assert loaded(modules, ("dataward.gates", "sklearn", "scipy")) == []


def test_the_access_review_of_a_ward_with_datasets_does_not_import_the_detectors(tmp_path: Path) -> None:
    """Reading each dataset's policy for the access review loaded every detector (scikit-learn included)
    to check a policy that names none: 3 of the review's 4 seconds."""
    ward = tmp_path / "ward"
    for args in (["init", "--json"], ["dataset", "create", "wine", "--label", "label", "--input", "alcohol:numeric"]):
        done = subprocess.run(
            [sys.executable, "-m", "dataward", "--ward", str(ward), *args], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    code, modules = imported(tmp_path, "access", "review", "--json", ward=ward)
    assert code == 0
    assert "dataward.gates.policy" in modules  # the policies were read
    assert loaded(modules, ("sklearn", "scipy", "dataward.gates.detectors", "dataward.gates.scanning")) == []


def test_the_packages_scan_is_the_function_whichever_module_loaded_first() -> None:
    """`from dataward.gates import scan` loads on first use. While the function's module was also called
    `scan`, loading that module first (as the self-test does) bound the package's `scan` to the module,
    and the next gate run failed with "'module' object is not callable"."""
    child = (
        "import dataward.gates.scanning, dataward.gates.selftest\n"
        "from dataward.gates import scan\n"
        "print(callable(scan), scan.__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "dataward.gates.scanning"]


@pytest.mark.parametrize("package", ["dataward.gates", "dataward.domain"])
def test_no_name_a_package_loads_on_first_use_is_also_one_of_its_modules(package: str) -> None:
    """A lazily loaded name that is also a submodule's name is the submodule once that module is loaded
    first, whatever the package's ``__getattr__`` would return (the `scan` failure above)."""
    import importlib
    import pkgutil

    loaded_package = importlib.import_module(package)
    submodules = {info.name for info in pkgutil.iter_modules(loaded_package.__path__)}
    assert set(loaded_package._HOMES) & submodules == set()


def test_a_refused_model_withdrawal_does_not_import_the_release_gate(tmp_path: Path) -> None:
    """`model withdraw` imported the release gate (scikit-learn and SciPy, about two of its CPU seconds)
    when it loaded, before telling a user that a reason is needed or that there is no such model."""
    ward = tmp_path / "ward"
    init = subprocess.run(
        [sys.executable, "-m", "dataward", "--ward", str(ward), "init", "--json"], capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    code, modules = imported(tmp_path, "model", "withdraw", "no-such-model@v1", "--reason", "leaked", ward=ward)
    assert code not in (0, None)
    assert "dataward.service.withdrawals" in modules  # the withdrawal was attempted
    assert loaded(modules, ("sklearn", "scipy", "dataward.service.releases")) == []
