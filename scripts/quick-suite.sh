#!/usr/bin/env bash
# Quick start, command 1: install what is missing, bring up the local testbed, deploy every system of
# the quick suite in turn, run it, tear the testbed down, and leave results/<run-id>/ with report.md
# and figures/. Safe to run again (each run gets a new run directory).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bash scripts/setup.sh
exec .venv/bin/fab run-suite --suite "${1:-quick}"
