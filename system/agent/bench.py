"""Benchmark of the back-end agent: per-packet cost and TCP goodput.

    python -m system.agent.bench [--repeat 200000] [--size-mb 32] [--reps 3] [--out results/agent-bench.json]

1. Per-packet cost of each program for typical packets, with BPF_PROG_TEST_RUN (`repeat` runs, the
   kernel's mean duration per run).
2. Goodput of a real kernel TCP download (system/agent/pair.py) with and without the agent, `reps`
   downloads of `size-mb` MiB each (median), and the agent programs' run time per packet during it
   (BPF run-time statistics). Bounded: sizes are capped, every transfer has a timeout.
Prints a table and saves JSON with provenance (git commit and dirty flag, kernel, object sha256).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from system.agent.loader import Agent
from system.agent.pair import TcpPair
from system.agent.tables import PROG_EGRESS, PROG_INGRESS, FlowEntry
from system.bpf.loader import BPFFS
from system.bpf.syscall import Prog

M32 = 0xFFFFFFFF
S, B = 0x5A5A5A80, 0x9E3779B9
LEARNED = FlowEntry(s=S, delta=(B - S) & M32, flags=3, rcv_nxt=2)    # client seq 1, its SYN's next: 2


def _packets() -> list[tuple[str, str, bytes, FlowEntry | None]]:
    def to_b(flags: str, ack: int, options=(), payload: bytes = b"") -> bytes:
        return bytes(Ether() / IP(src="198.18.63.1", dst="198.18.63.2") / TCP(
            sport=40000, dport=80, flags=flags, seq=1, ack=ack, options=list(options)) / Raw(payload))

    def from_b(flags: str, seq: int, payload: bytes = b"") -> bytes:
        return bytes(Ether() / IP(src="198.18.63.2", dst="198.18.63.1") / TCP(
            sport=80, dport=40000, flags=flags, seq=seq, ack=2, options=[]) / Raw(payload))

    sack4 = ("SAck", tuple((S + 1000 * i) & M32 for i in range(8)))
    return [
        ("ingress", "SYN with s (learn, zero ack)", to_b("S", S, [("MSS", 1460), ("SAckOK", b"")]), None),
        ("ingress", "pure ACK (ack += delta)", to_b("A", S + 1), LEARNED),
        ("ingress", "ACK with 4 SACK blocks", to_b("A", S + 1, [("NOP", None), ("NOP", None), sack4]), LEARNED),
        ("ingress", "ACK from an unknown endpoint", to_b("A", S + 1), None),
        ("egress", "SYN-ACK (learn delta, seq := s)", from_b("SA", B), FlowEntry(s=S, rcv_nxt=2)),
        ("egress", "1448-byte data segment", from_b("A", B + 1, b"z" * 1448), LEARNED),
        ("egress", "segment to an unknown endpoint", from_b("A", B + 1, b"z" * 1448), None),
    ]


def per_packet(repeat: int) -> list[dict]:
    agent = Agent(None, "lo", BPFFS / "mrse-bench-tr")
    agent.load()
    rows = []
    try:
        progs = {"ingress": Prog.pinned(agent.prog_path(PROG_INGRESS)),
                 "egress": Prog.pinned(agent.prog_path(PROG_EGRESS))}
        try:
            for hook, what, data, entry in _packets():
                agent.flows.clear()
                if entry is not None:
                    agent.flows.put(("198.18.63.1", 40000), entry)
                _, _, ns = progs[hook].test_run(data, repeat=repeat)
                rows.append({"hook": hook, "packet": what, "bytes": len(data), "ns_per_packet": ns})
        finally:
            for prog in progs.values():
                prog.close()
    finally:
        agent.unload()
    return rows


def goodput(size: int, reps: int) -> dict:
    out: dict[str, dict] = {}
    for with_agent in (True, False):
        pair = TcpPair(prefix="mrse-bn", ifprefix="meb", subnet=63, pin_root=BPFFS / "mrse-bench-pair",
                       with_agent=with_agent)
        try:
            pair.up()
            if pair.agent is not None:
                pair.agent.enable_stats()
            runs = []
            for rep in range(reps):
                t = pair.transfer(size, seed=rep, timeout=60)
                if not t.ok:
                    raise RuntimeError(f"transfer failed: {t}")
                runs.append(t.goodput_mbit_s)
            res = {"mbit_s_median": statistics.median(runs), "mbit_s_runs": runs}
            if pair.agent is not None:
                stats = pair.agent.prog_stats()
                res["bpf"] = {name: {"run_cnt": s.run_cnt, "ns_per_run": s.ns_per_run}
                              for name, s in stats.items()}
                res["counters"] = pair.agent.counters()
                res["object_sha256"] = pair.agent.object_sha256
            out["agent" if with_agent else "no_agent"] = res
        finally:
            pair.down()
    return out


def _git() -> dict:
    def run(*cmd: str) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    return {"commit": run("git", "rev-parse", "HEAD") or None,
            "dirty": bool(run("git", "status", "--porcelain"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200_000, help="BPF_PROG_TEST_RUN runs per packet")
    ap.add_argument("--size-mb", type=int, default=32, help="MiB per download (max 256)")
    ap.add_argument("--reps", type=int, default=3, help="downloads per configuration (max 10)")
    ap.add_argument("--out", type=Path, default=Path("results/agent-bench.json"))
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces, BPF)")
    repeat = min(max(args.repeat, 1), 5_000_000)
    size = min(max(args.size_mb, 1), 256) << 20
    reps = min(max(args.reps, 1), 10)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    rows = per_packet(repeat)
    tcp = goodput(size, reps)
    print(f"{'hook':8} {'packet':36} {'ns/packet':>10}")
    for r in rows:
        print(f"{r['hook']:8} {r['packet']:36} {r['ns_per_packet']:10d}")
    a, n = tcp["agent"], tcp["no_agent"]
    print(f"\nTCP download, {size >> 20} MiB x {reps} (median): with agent {a['mbit_s_median']:.0f} Mbit/s, "
          f"without {n['mbit_s_median']:.0f} Mbit/s, ratio {a['mbit_s_median'] / n['mbit_s_median']:.2f}")
    for name, s in a["bpf"].items():
        print(f"  {name}: {s['run_cnt']} runs, {s['ns_per_run']:.0f} ns/run (GSO packets count once)")
    doc = {"format": 1, "benchmark": "agent", "started_utc": started,
           "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
           "params": {"repeat": repeat, "size_bytes": size, "reps": reps},
           "host": {"kernel": platform.release(), "nproc": os.cpu_count(),
                    "python": platform.python_version(), "hostname": platform.node()},
           "git": _git(), "results": {"per_packet": rows, "tcp_download": tcp}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
