#!/usr/bin/env bash
# Set up a virtual environment with ptycho, its study plugins and Ptychodus (for the export
# round-trip tests), then run the fast test suite. Extra arguments go to pytest
# (e.g. `bash scripts/test.sh -m slow` for the realistic-size tests).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
plugins=()
for dir in plugins/*/; do [ -f "$dir/pyproject.toml" ] && plugins+=(-e "$dir"); done
.venv/bin/pip install -q -e ".[test]" "${plugins[@]}"
.venv/bin/pip install -q --no-deps ptychodus==1.7.0
.venv/bin/pytest -q "$@"
