"""A screenshot of `fab locust-ui`'s page with the Switch tab, from a real run (the README's picture).

    python -m harness.ui_screenshot -i local --system miresga --objects t2 --connection keepalive \
        --out docs/locust-ui-switch.png        # or scripts/ui-screenshot.sh with the same arguments

Starts the web UI as `fab locust-ui` does (deploying `--system` first if given), starts a swarm with
the workload through Locust's HTTP API, waits until the Switch tab shows offloaded bytes and
insertions and `--settle` more samples arrived (so the charts have some history), takes the page
(``?tab=switch``) with headless Chromium (Debian package `chromium`), stops the swarm and everything
it started, and stores the PNG with a 256-colour palette (small enough to commit).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from harness import deploy as dep
from harness import inventory
from harness import locust_ui as lui

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post(url: str, form: dict[str, str]) -> dict:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def chromium_screenshot(url: str, out: Path, size: str = "1400,760", budget_ms: int = 8000) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("chromium is not installed: apt-get install --no-install-recommends chromium")
    with tempfile.TemporaryDirectory(prefix="ui-shot-") as profile:
        raw = Path(profile) / "shot.png"
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={raw}",
               f"--window-size={size}", f"--virtual-time-budget={budget_ms}", url]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if not raw.exists():
            raise SystemExit(f"chromium wrote no screenshot (exit {p.returncode}): {p.stderr[-1500:]}")
        from PIL import Image
        with Image.open(raw) as img:
            img.convert("RGB").quantize(colors=256).save(out, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-i", "--inventory", default="local")
    ap.add_argument("--system", default=None, help="deploy this system first (default: what is deployed)")
    ap.add_argument("--objects", default="t2")
    ap.add_argument("--connection", default="keepalive")
    ap.add_argument("--client", default="lean")
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--settle", type=int, default=15, help="samples to wait for once values move")
    ap.add_argument("--out", type=Path, default=Path("docs/locust-ui-switch.png"))
    ap.add_argument("--size", default="1400,760", help="window size W,H")
    args = ap.parse_args(argv)
    inv = inventory.load(args.inventory)
    workload = lui.default_workload(inv, args.objects, args.connection, args.client)
    sysd = dep.deploy(inv, args.system) if args.system else lui.deployed_system(inv)
    ui = lui.LocustUI(inv, sysd, workload, users=args.users, spawn_rate=args.users)
    ui.start()
    try:
        lui.log(f"web UI at {ui.url}; {ui.deployed_summary()}")
        got = _post(f"{ui.url}/swarm", {"user_count": str(args.users), "spawn_rate": str(args.users), "host": "",
                                        "objects": args.objects, "connection": args.connection,
                                        "requests_per_connection": str(workload.requests_per_connection),
                                        "client": args.client, "verify": workload.verify})
        if not got.get("success"):
            raise SystemExit(f"the swarm did not start: {got.get('message')}")
        lui.log(f"swarm started ({workload.name}, {args.users} users); waiting for the Switch tab to move")
        deadline = time.monotonic() + 180
        moved_at = None
        while time.monotonic() < deadline:
            tab = _get(f"{ui.url}/switch/stats")
            s = tab.get("sample") or {}
            if not tab["switch_state"] or ((s.get("offloaded_bytes_total") or 0) > 0 and s.get("inserts_total")):
                moved_at = moved_at if moved_at is not None else tab["samples_received"]
                if not tab["switch_state"] or tab["samples_received"] - moved_at >= args.settle:
                    break
            time.sleep(1)
        else:
            raise SystemExit("the Switch tab did not move within 180 s")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        chromium_screenshot(f"{ui.url}/?tab=switch", args.out, args.size)
        lui.log(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
        s = _get(f"{ui.url}/switch/stats")["sample"] or {}
        lui.log("last sample: " + ", ".join(f"{k} {s.get(k)}" for k in (
            "offload_share", "inserts_per_s", "deletes_per_s", "occupancy_peak", "capacity", "cp_latency_p50_ms",
            "cp_latency_p99_ms", "punts_per_s", "took_s")))
        _post(f"{ui.url}/stop", {})
    finally:
        stopped = ui.stop()
        lui.log(f"stopped: {', '.join(stopped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
