#!/bin/sh
# Compile every program in p4src/ with p4c-barefoot (Tofino 1, TNA) and write
# p4src/<prog>.p4info.txtpb (the compiler's P4Info) and p4src/resources/<prog>.json (what it uses).
# The compiler: $P4C_BAREFOOT, p4c-barefoot on the PATH, or ../shared/tools/p4c/p4c-barefoot.
#   scripts/p4-compile.sh            # all programs, with resource figures
#   scripts/p4-compile.sh --check    # compare with the committed P4Info, write nothing
set -e
cd "$(dirname "$0")/.."
if [ "$1" = "--check" ]; then
    exec .venv/bin/python -m harness.p4c "$@"
fi
exec .venv/bin/python -m harness.p4c --resources "$@"
