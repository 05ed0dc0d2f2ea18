"""An independent client: `wrk` (Debian package) against the same target, to cross-check Locust.

A suite with `wrk_check: true` runs wrk once per system and workload, right after that pair's first
closed-loop cell, on the first client host: the same object path (the workload's first object), the
same number of connections as the cell's users, `Connection: close` for close workloads, for the
cell's measurement duration. The parsed result goes to `cells/<id>/wrk.json` (docs/run-directory.md)
and the report puts wrk's requests/s and latency beside Locust's, so that a Locust artefact cannot
pass for a system's behaviour. wrk is a closed loop too (its open-loop fork wrk2 is not packaged);
it checks throughput and the closed-loop latency, not the open-loop figures.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_DURATION = re.compile(r"^([0-9.]+)(us|ms|s|m|h)$")
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.000)?%\s+([0-9.]+(?:us|ms|s|m|h))\s*$")
_TOTAL = re.compile(r"^\s*(\d+) requests in ([0-9.]+(?:us|ms|s|m|h)), ([0-9.]+)([KMGT]?B) read")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)")
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def command(url: str, connections: int, duration_s: float, close: bool, timeout_s: float = 10.0,
            host_header: str | None = None) -> list[str]:
    """wrk's command line: one thread (the local testbed gives the client one core), ``connections``
    connections, latency percentiles on."""
    if connections < 1 or duration_s <= 0:
        raise ValueError("connections must be >= 1 and duration_s positive")
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(duration_s))}s",
           "--timeout", f"{max(1, round(timeout_s))}s", "--latency"]
    if close:
        cmd += ["-H", "Connection: close"]
    if host_header:
        cmd += ["-H", f"Host: {host_header}"]
    return [*cmd, url]


def duration_us(text: str) -> float:
    """wrk's duration text ("812.00us", "1.25ms", "2.00s", "1.00m") in microseconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS_US[m.group(2)]


def parse(output: str) -> dict[str, Any]:
    """The figures of `wrk --latency` output: requests, seconds, requests/s, bytes read, latency
    percentiles (µs), socket errors and non-2xx/3xx responses. Raises ValueError without a summary."""
    out: dict[str, Any] = {"latency_us": {}, "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
                           "non_2xx_3xx": 0}
    for line in output.splitlines():
        if m := _PERCENTILE.match(line):
            out["latency_us"][f"p{m.group(1)}"] = duration_us(m.group(2))
        elif m := _TOTAL.match(line):
            out["requests"] = int(m.group(1))
            out["seconds"] = duration_us(m.group(2)) / 1e6
            out["bytes_read"] = round(float(m.group(3)) * _BYTES[m.group(4)])
        elif m := _ERRORS.search(line):
            out["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
        elif m := _NON2XX.search(line):
            out["non_2xx_3xx"] = int(m.group(1))
        elif m := _RPS.match(line):
            out["rps"] = float(m.group(1))
    if "requests" not in out or "rps" not in out:
        raise ValueError("no wrk summary (\"N requests in T\" and \"Requests/sec\") in the output:\n"
                         + output[-500:])
    return out


def cross_check(remote: Any, cell: Any, address: str, port: int, cell_dir: Path) -> dict[str, Any]:
    """Runs wrk on `remote` (the first client host) against the cell's target, like the cell: its first
    object, `users` connections, its measurement duration; writes `cell_dir/wrk.json` and returns it.
    Never raises for wrk's or SSH's failures: they are recorded as `error`."""
    wl = cell.workload
    obj = wl["objects"][0]
    close = wl["connection"] == "close"
    cmd = command(f"http://{address}:{port}{obj['path']}", cell.load.users, cell.load.duration_s, close=close)
    rec: dict[str, Any] = {"command": cmd, "object": obj["name"], "connections": cell.load.users,
                           "connection": wl["connection"], "error": None}
    try:
        text = remote.run(shlex.join(cmd) + " 2>&1", check=False, timeout=cell.load.duration_s + 60)
        rec["output"] = text
        rec.update(parse(text))
    except Exception as e:  # the cross-check must never stop a run (SSH errors, wrk missing, no summary)
        rec["error"] = str(e)
    (cell_dir / "wrk.json").write_text(json.dumps(rec, indent=2) + "\n")
    return rec
