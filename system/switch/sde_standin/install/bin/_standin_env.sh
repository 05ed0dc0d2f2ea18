# STAND-IN SDE (Miresga's local testbed, system/switch/sde_standin/README.md): NOT THE INTEL TOFINO SDE.
# Sourced by the stand-in's commands: where the stand-in and the repository holding it are.
standin_bin=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
standin_sde=$(cd "$standin_bin/../.." && pwd)
standin_repo=$(cd "$standin_sde/../../.." && pwd)
standin_python() {
    if [ -n "${MIRESGA_STANDIN_PYTHON:-}" ]; then echo "$MIRESGA_STANDIN_PYTHON"
    elif [ -x "$standin_repo/.venv/bin/python" ]; then echo "$standin_repo/.venv/bin/python"
    else echo python3; fi
}
