#!/usr/bin/env bash
# Quick start, command 2: install what is missing, then run the linter and the whole test suite
# (unit tests, packet tests, and integration tests on the local testbed; root is required for those).
# Safe to run again. Extra arguments go to pytest (e.g. -k haproxy).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
