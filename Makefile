# Two commands a new user needs: `make demo` and `make test`. Each sets up .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo demo-server test fuzz lint format bench bench-quick bench-scale clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The tests exercise the benchmark peers and the sentence-embedding featurizer too. torch is
# installed on its own first so that the pinned CPU build is used, never a newer CUDA one.
$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-dev
	$(BIN)/pip install --quiet 'torch==2.13.0'
	$(BIN)/pip install --quiet -e '.[dev,bench,embeddings]'
	touch $@

install: $(VENV)/.installed-dev

demo: $(VENV)/.installed-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

# The same story against `dataward serve` started in the background, people acting through their keys.
demo-server: $(VENV)/.installed-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo_server.sh

# One test process per core (`-n auto`); a test file stays on one process (`--dist loadfile`), so a
# module's servers, clusters and browser start once, and the files that embed texts with the sentence model
# share one process and its embeddings (tests/conftest.py, SENTENCE_MODEL_GROUP). PYTEST_WORKERS=0 runs
# everything in one process. Files are handed out slowest first (tests/conftest.py, tests/file_seconds.json),
# so that no slow file is left for the end of the run while the other processes have nothing to do;
# `--no-loadscope-reorder` keeps that order (pytest-xdist otherwise hands out the files with the most tests
# first, whatever they cost).
# Disk syncs are skipped while the tests run, through Debian's `eatmydata` when it is installed
# (.ci/run installs it), as the tests' own PostgreSQL cluster runs with fsync off: a test never loses
# power, and waiting on fsync was about a fifth of an I/O-heavy file's wall time on a VM disk. The
# code still makes every sync call; a deployed ward's durability is untouched. NOSYNC= runs with them.
# Each test process runs its numeric libraries (OpenBLAS, OpenMP, torch) on one thread: the
# processes already take every core, and a second thread per process only contends for them (a
# sample of the heaviest gate files: 162 -> 152 s wall, 280 -> 261 s CPU). The gate runs its own
# neighbour searches and probe fits on one thread anyway (gates/blas_threads.py). For the same reason each
# scan runs its detectors one after another (DATAWARD_GATE_WORKERS=1): on three heavy gate files, 104 ->
# 94 CPU s. tests/gates/test_scan.py holds scans on two threads to the serial report on text, images and
# tables (a language-model scan always runs its detectors one after another).
NOSYNC ?= $(shell command -v eatmydata 2>/dev/null)
PYTEST_WORKERS ?= auto
ONE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 DATAWARD_GATE_WORKERS=1
# The project's own modules are compiled to bytecode once, first (about 2 s): each test process, and
# every CLI and server process a test starts, then loads them from it rather than compiling them again,
# which a clean clone would otherwise do in every process when PYTHONDONTWRITEBYTECODE is set.
test: $(VENV)/.installed-bench
	$(BIN)/python -m compileall -q -j 0 src tests benchmarks
	$(ONE_THREAD) $(NOSYNC) $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The property and API fuzz tests with fresh draws: `make test` draws the same examples every run
# (tests/conftest.py), so that it passes or fails on the code alone. Run this to look for what those
# draws miss; FUZZ_RUNS rounds, each with new seeds.
FUZZ_RUNS ?= 3
fuzz: $(VENV)/.installed-bench
	for run in $$(seq $(FUZZ_RUNS)); do \
	  $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -p no:randomly --hypothesis-profile=explore \
	    -m hypothesis tests || exit 1; \
	done

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

format: $(VENV)/.installed-dev
	$(BIN)/ruff format src tests benchmarks

bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks run --suite full
	$(BIN)/python -m benchmarks.llm --sizes 2000,20000
	$(BIN)/python -m benchmarks.llm --sizes 2000 --heldout
	$(BIN)/python -m benchmarks.release_gate --seeds 0,1,2

bench-quick: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks run --suite quick
	$(BIN)/python -m benchmarks.llm --sizes 2000 --quick --out benchmarks/results/llm-quick.json

bench-scale: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks run --suite scale
	$(BIN)/python -m benchmarks.bench_provenance --sizes 10000,100000,1000000 --catalogs sqlite,postgresql
	$(BIN)/python -m benchmarks.bench_import --records 1000000 --images 0 --out benchmarks/results/import-1m.json
	$(BIN)/python -m benchmarks.bench_import --records 10000000 --images 0 --repeat 1 --out benchmarks/results/import-10m.json
	$(BIN)/python -m benchmarks.bench_stream --records 1000000 --chunks 4 --out benchmarks/results/stream-1m.json
	# Partitioned gate scans: one-shot, local engine, Dask with 1 and 2 workers (SCHEDULER=tcp://... for a real cluster).
	$(BIN)/python -m benchmarks.bench_gate_dask --baseline 1000000 --contribution 100000 --workers 1,2 \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER)) --out benchmarks/results/gate-dask-1m-100k.json
	# A 10M-record baseline against a 1M contribution on Dask, 1 and 2 workers (about 20 minutes here).
	$(BIN)/python -m benchmarks.bench_gate_dask --baseline 10000000 --contribution 1000000 --partition-rows 100000 \
		--workers 1,2 --no-one-shot --no-local --stages --max-memory-gb 14 \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER)) --out benchmarks/results/gate-dask-10m-1m.json
	# Out of core in one process: 10M against 10M (about 1 h of CPU, 17 GB peak) and a 100M baseline
	# (about 26 GB of Parquet written to the temporary directory first).
	$(BIN)/python -m benchmarks.bench_gate_dask --baseline 10000000 --contribution 10000000 --partition-rows 500000 \
		--workers "" --no-one-shot --stages --max-memory-gb 21 --out benchmarks/results/gate-out-of-core-10m-10m.json
	$(BIN)/python -m benchmarks.bench_gate_dask --baseline 100000000 --contribution 100000 --partition-rows 25000 \
		--workers "" --no-one-shot --stages --max-memory-gb 12 --out benchmarks/results/gate-out-of-core-100m-100k.json
	# 100M baseline against a 10M contribution: about an hour of a core, 20 GB peak resident (14 GB anonymous).
	$(BIN)/python -m benchmarks.bench_gate_dask --baseline 100000000 --contribution 10000000 --partition-rows 500000 \
		--workers "" --no-one-shot --stages --max-memory-gb 21 --out benchmarks/results/gate-out-of-core-100m-10m.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
