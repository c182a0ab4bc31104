#!/usr/bin/env bash
# The README's screenshots of the review console (review queue, lineage graph), taken by the
# browser tests in Debian's Chromium and written to docs/img/.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
DATAWARD_SCREENSHOTS="$PWD/docs/img" "$PYTHON" -m pytest -q -p no:cacheprovider tests/server/test_console_browser.py
