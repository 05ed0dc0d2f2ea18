"""Run the back-end agent as a service.

    python -m system.agent --netns NS --interface eth0 --pin-dir /sys/fs/bpf/agent [--interval 10]

Loads and attaches the agent, prints one JSON line of counters (and program run statistics) every
`--interval` seconds and a last one at exit, and on SIGTERM or SIGINT detaches and unloads.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from system.agent.loader import Agent


def _report(agent: Agent, event: str) -> None:
    stats = {name: {"run_cnt": s.run_cnt, "run_time_ns": s.run_time_ns}
             for name, s in agent.prog_stats().items()}
    line = {"time": round(time.time(), 3), "event": event, "entries": len(agent.entries()),
            "counters": agent.counters(), "prog_stats": stats}
    print(json.dumps(line, sort_keys=True), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m system.agent", description=__doc__.splitlines()[1])
    ap.add_argument("--netns", default=None, help="network namespace (default: the current one)")
    ap.add_argument("--interface", required=True, help="the back-end's data interface")
    ap.add_argument("--pin-dir", required=True, type=Path, help="under /sys/fs/bpf")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between counter lines")
    ap.add_argument("--flows-size", type=int, default=None, help="flows map capacity")
    ap.add_argument("--no-stats", action="store_true", help="do not enable BPF run-time statistics")
    args = ap.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent = Agent(args.netns, args.interface, args.pin_dir, flows_size=args.flows_size)
    try:
        agent.load()
        if not args.no_stats:
            agent.enable_stats()
        agent.attach()
        print(json.dumps({"event": "attached", "netns": args.netns, "interface": args.interface,
                          "pin_dir": str(args.pin_dir), "object_sha256": agent.object_sha256}),
              flush=True)
        while not stop.wait(args.interval):
            _report(agent, "periodic")
        _report(agent, "exit")
    finally:
        agent.unload()
    print(json.dumps({"event": "unloaded"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
