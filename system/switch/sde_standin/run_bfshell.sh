#!/usr/bin/env bash
# STAND-IN for the SDE's run_bfshell.sh (Miresga's local testbed; system/switch/sde_standin/README.md).
# NOT THE SDE. Runs a ucli script's port manager commands (port-add, an-set, port-enb, show) against
# the stand-in bf_switchd's platform ports.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install/bin/_standin_env.sh"
export PYTHONPATH="$standin_repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$(standin_python)" -m system.switch.sde_standin.bfshell "$@"
