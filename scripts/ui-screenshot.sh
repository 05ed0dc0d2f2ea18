#!/usr/bin/env bash
# The README's picture of `fab locust-ui` with the Switch tab, from a real run on a testbed that is
# up (`fab testbed-up`): starts the web UI, a T2 keep-alive swarm through Locust's HTTP API, waits
# until the Switch tab moves, takes the page with headless Chromium, stops everything it started.
#   scripts/ui-screenshot.sh --system miresga                 # -> docs/locust-ui-switch.png
#   scripts/ui-screenshot.sh -i my.yaml --objects 1m --out /tmp/ui.png
# Needs the Debian package chromium (apt-get install --no-install-recommends chromium); arguments
# are those of `python -m harness.ui_screenshot --help`.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
if ! command -v chromium >/dev/null; then
    echo "error: chromium is not installed: apt-get install --no-install-recommends chromium" >&2
    exit 2
fi
exec .venv/bin/python -m harness.ui_screenshot "$@"
