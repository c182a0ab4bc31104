"""Fixtures shared by every test: real wards on SQLite and, when a server can run, PostgreSQL."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from benchmarks.pg_cluster import PostgresUnavailable, create_database, postgres_cluster

# Property and fuzz tests draw the same examples on every run of the suite: `make test` passes or fails
# on the code, never on the draw (a fuzzer that finds a new bug on one CI run in ten blocks whatever
# landed beside it). `make fuzz` runs them with fresh draws (`--hypothesis-profile=explore`) to look
# for what the fixed draws miss; whatever it finds becomes a test of its own.
settings.register_profile("suite", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("suite")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Exempts what collection imported from the test process's later full collections, as a served
    ward does after start-up (``dataward.service.heap``): a worker that imported every test module
    tracks some 650,000 objects, and each automatic full collection walked them all again (about
    0.5 s each) for objects that live as long as the worker. A sample of seven heavy files: 139 -> 131 s
    of CPU. What the tests themselves make is collected as before."""
    gc.collect()
    gc.freeze()


FILE_SECONDS = Path(__file__).with_name("file_seconds.json")
"""Seconds each slow test file took in a whole run of the suite (``--durations=0``, setup, call and
teardown summed; files under 5 s are left out). Read only to order the files, never to judge them."""


SENTENCE_MODEL_GROUP = "sentence_model"
"""The group of test files whose scans embed texts with the sentence model (MiniLM, 10 to 20 ms of CPU a
text), which ``make test`` runs in one process (``pytest_xdist_make_scheduler``). A test process embeds
each distinct text once (``gates.detectors._llm_clusters``), and these files share many of their texts:
three of them embed 2,273 texts run apart and 1,302 after the others in one process; and the model is
loaded by one process, not two. It also fixes which of them run together, where the process they
landed in decided it before."""

SENTENCE_MODEL_FILES = frozenset(
    f"tests/gates/test_llm_{name}.py"
    for name in (
        "drift_twins",
        "embedding_detectors",
        "trigger_explained",
        "new_topics",
        "symbol_triggers",
        "outliers_twins",
        "gates",
    )
)


def _group_of(file: str) -> str:
    """The unit ``make test`` hands to one process: ``SENTENCE_MODEL_GROUP`` for its files, else the file."""
    return SENTENCE_MODEL_GROUP if file in SENTENCE_MODEL_FILES else file


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``--dist loadfile``: a file's tests run in one process, as pytest-xdist's own scheduling does
    (a module's servers, clusters and browser start once), and the files of ``SENTENCE_MODEL_GROUP`` all
    run in the same one. Any other ``--dist`` is left to pytest-xdist; without pytest-xdist (``-p
    no:xdist``) the hook is never called.

    (pytest-xdist's ``--dist loadgroup`` would group by marks, but it renames each test's node id to do
    so, which pytest 9 no longer lets it: its groups fall apart into single tests.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesAndGroups(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group_of(super()._split_scope(nodeid))

    return FilesAndGroups(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest groups first, each group's files slowest first, each file's tests in the order
    they came (pytest-randomly's, when it runs: this hook runs after every other).

    ``make test`` hands whole groups (a file, or the files of ``SENTENCE_MODEL_GROUP``) to its
    processes in this order (``--no-loadscope-reorder``), so a slow one handed out last keeps one
    core busy while the other has nothing left: the tail of the run. Longest first is the classic
    remedy. Files not in ``FILE_SECONDS`` (new or fast) come after the slow ones, in the order they came."""
    seconds: dict[str, float] = json.loads(FILE_SECONDS.read_text("utf-8")) if FILE_SECONDS.exists() else {}
    root = Path(__file__).resolve().parent.parent
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        first.setdefault(_file_of(item, root), i)
    group_seconds: dict[str, float] = {}
    group_first: dict[str, int] = {}
    for file, position in first.items():
        group = _group_of(file)
        group_seconds[group] = group_seconds.get(group, 0.0) + seconds.get(file, 0.0)
        group_first[group] = min(group_first.get(group, position), position)

    def key(item: pytest.Item) -> tuple[float, int, float, int]:
        file = _file_of(item, root)
        group = _group_of(file)
        return (-group_seconds[group], group_first[group], -seconds.get(file, 0.0), first[file])

    items.sort(key=key)


def _file_of(item: pytest.Item, root: Path) -> str:
    """The test file of ``item``, relative to the project (``tests/gates/test_lens.py``)."""
    path = Path(str(item.path)).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


@pytest.fixture(autouse=True)
def _catalogs_closed_after_each_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Closes every catalog a test opened and left open, as the CLI and the server close theirs.

    A SQLite catalog's log is copied into the database file and removed when its last connection
    closes. A test that opens a ward and drops it leaves its pooled connections open for the rest of the
    worker's run, so each kept a log of up to 32 MB on disk (1,000 pages of 32 KB): a whole suite held
    gigabytes of them, and ran a CI machine's disk full. Catalogs opened by longer-lived fixtures
    (a module's served ward) are opened before this one starts and are left alone.
    """
    from dataward.catalog.database import CatalogDatabase

    opened: list[weakref.ref[CatalogDatabase]] = []
    original_init = CatalogDatabase.__init__

    def remembered_init(self: CatalogDatabase, *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]
        opened.append(weakref.ref(self))

    monkeypatch.setattr(CatalogDatabase, "__init__", remembered_init)
    yield
    for ref in opened:
        if (db := ref()) is not None:
            db.dispose()


@pytest.fixture(autouse=True, scope="module")
def _stored_fits_forgotten_between_modules() -> Iterator[None]:
    """Each test module starts with no stored fits (``dataward.gates.fit_memo``), so what its tests see does
    not depend on which modules ran before it in the same worker; its own tests share them, in file order."""
    from dataward.gates.fit_memo import MEMO

    MEMO.clear()
    yield


@pytest.fixture(autouse=True, scope="session")
def _cli_command_built_once_per_app() -> Iterator[None]:
    """``typer.testing.CliRunner.invoke`` turns the Typer app into its click command tree at every call,
    which for dataward's tree costs about as much as a small command's own work; the suite invokes the
    CLI in-process thousands of times. Each test process builds each app's tree once and reuses it (click
    commands keep no state between invocations; every invocation gets a context of its own)."""
    import typer.testing

    built: weakref.WeakKeyDictionary[typer.Typer, Any] = weakref.WeakKeyDictionary()
    build = typer.testing._get_command

    def built_once(app: typer.Typer) -> Any:
        if app not in built:
            built[app] = build(app)
        return built[app]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", built_once)
        yield


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a local socket (``benchmarks/pg_cluster.py``, with syncing
    off); yields a base URL without a database name. Skips when no cluster can run here."""
    try:
        with postgres_cluster(durable=False) as base:
            yield base
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


def _create_database(base: str) -> str:
    return create_database(base)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """``None`` (the embedded SQLite default) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    base = request.getfixturevalue("postgres_server")
    return _create_database(base)


@pytest.fixture
def ward(tmp_path: Path):
    """A fresh embedded ward acting as its first admin."""
    from dataward.service.ward import Ward

    w, _key = Ward.init(tmp_path / "ward")
    yield w
    w.db.dispose()
