"""Benchmark: TCP goodput and small-packet rate through the emulated switch vs a direct veth pair.

    python -m system.switch.bench [--seconds 3] [--out results/switch-bench.json]

Needs root. Builds two setups with prefix mrsc-bn (switch star, 2 ports) and mrsc-bd (a veth pair
between two namespaces), measures each with a Python socket sender/receiver (a forked receiver
process, bounded in time), prints a table, saves JSON with provenance, and tears everything down.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from system.bpf.loader import BPFFS
from system.bpf.syscall import Prog, enable_stats
from system.switch.package import build_package
from system.switch.target import EmulatedSwitch
from system.testing.netns import StarTopology, existing_netns, in_netns, ip_int, mac_int, sh

PORT = 5201
CHUNK = 256 * 1024


def _tcp_receiver(conn: socket.socket, q: mp.Queue) -> None:
    total = 0
    while data := conn.recv(CHUNK):
        total += len(data)
    q.put(total)


def _udp_receiver(sock: socket.socket, seconds: float, q: mp.Queue) -> None:
    sock.settimeout(0.5)
    count = 0
    end = time.monotonic() + seconds + 1.0
    while time.monotonic() < end:
        try:
            sock.recv(2048)
            count += 1
        except TimeoutError:
            if count:
                break
    q.put(count)


def tcp_goodput(src_ns: str, dst_ns: str, dst_addr: str, seconds: float) -> dict:
    with in_netns(dst_ns):
        ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((dst_addr, PORT))
    ls.listen(1)
    with in_netns(src_ns):
        cs = socket.socket()
    cs.connect((dst_addr, PORT))
    conn, _ = ls.accept()
    q: mp.Queue = mp.get_context("fork").Queue()
    rx = mp.get_context("fork").Process(target=_tcp_receiver, args=(conn, q))
    rx.start()
    conn.close()
    buf = b"\x5a" * CHUNK
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        cs.sendall(buf)
        sent += len(buf)
    cs.shutdown(socket.SHUT_WR)
    received = q.get(timeout=30)
    elapsed = time.monotonic() - start
    rx.join(timeout=5)
    cs.close()
    ls.close()
    return {"bytes": received, "seconds": elapsed, "gbit_s": received * 8 / elapsed / 1e9,
            "complete": received == sent}


def udp_rate(src_ns: str, dst_ns: str, dst_addr: str, seconds: float, payload: int = 18) -> dict:
    """64-byte frames (18-byte UDP payload) from one sender; packets received per second."""
    with in_netns(dst_ns):
        rs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rs.bind((dst_addr, PORT))
    with in_netns(src_ns):
        ss = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ss.connect((dst_addr, PORT))
    q: mp.Queue = mp.get_context("fork").Queue()
    rx = mp.get_context("fork").Process(target=_udp_receiver, args=(rs, seconds, q))
    rx.start()
    data = b"\x00" * payload
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for _ in range(1000):
            try:
                ss.send(data)
                sent += 1
            except OSError:
                pass
    elapsed = time.monotonic() - start
    received = q.get(timeout=30)
    rx.join(timeout=5)
    ss.close()
    rs.close()
    return {"sent": sent, "received": received, "seconds": elapsed,
            "sent_pps": sent / elapsed, "received_pps": received / elapsed}


class DirectPair:
    def __init__(self, prefix: str = "mrsc-bd") -> None:
        self.a, self.b = f"{prefix}1", f"{prefix}2"
        self.addr_a, self.addr_b = "198.18.211.1", "198.18.211.2"

    def up(self) -> DirectPair:
        self.down()
        sh("ip", "netns", "add", self.a)
        sh("ip", "netns", "add", self.b)
        sh("ip", "link", "add", "mcbda", "netns", self.a, "type", "veth", "peer", "name", "mcbdb",
           "netns", self.b)
        for ns, dev, addr in ((self.a, "mcbda", self.addr_a), (self.b, "mcbdb", self.addr_b)):
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
        return self

    def down(self) -> None:
        present = existing_netns()
        for ns in (self.a, self.b):
            if ns in present:
                sh("ip", "netns", "del", ns)


def _git() -> dict:
    def run(*cmd: str) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    return {"commit": run("git", "rev-parse", "HEAD") or None,
            "dirty": bool(run("git", "status", "--porcelain"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement (max 30)")
    ap.add_argument("--out", type=Path, default=Path("results/switch-bench.json"))
    args = ap.parse_args(argv)
    seconds = min(max(args.seconds, 0.5), 30.0)
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces, BPF)")
    results: dict[str, dict] = {}
    topo = StarTopology(prefix="mrsc-bn", ifprefix="mcb", nports=2, subnet=212)
    pair = DirectPair()
    switch = None
    stats_fd = None
    try:
        topo.up()
        switch = EmulatedSwitch(topo.switch_ns, topo.port_map, BPFFS / "mrsc-bench")
        tables = switch.load(build_package("forwarding"))
        for h in topo.hosts:
            tables.insert("route", {"dst_addr": (ip_int(h.addr), 32)}, "forward",
                          {"port": h.port, "smac": mac_int(h.sw_mac), "dmac": mac_int(h.mac)})
        pair.up()
        stats_fd = enable_stats()
        h1, h2 = topo.host(1), topo.host(2)
        for name, fn in (("tcp_goodput", tcp_goodput), ("udp_64B_rate", udp_rate)):
            with Prog.pinned(switch.pin_dir / "progs" / "pipe_ingress") as prog:
                before = prog.info()
                sw = fn(h1.ns, h2.ns, h2.addr, seconds)
                after = prog.info()
            runs = after.run_cnt - before.run_cnt
            sw["bpf_runs"] = runs
            sw["bpf_ns_per_run"] = (after.run_time_ns - before.run_time_ns) / runs if runs else None
            results[name] = {"switch": sw, "direct": fn(pair.a, pair.b, pair.addr_b, seconds)}
    finally:
        if stats_fd is not None:
            os.close(stats_fd)
        if switch is not None:
            switch.unload()
        topo.down()
        pair.down()
    t, u = results["tcp_goodput"], results["udp_64B_rate"]
    print(f"{'measurement':28} {'emulated switch':>16} {'direct veth':>14} {'ratio':>7}")
    print(f"{'TCP goodput (Gbit/s)':28} {t['switch']['gbit_s']:16.2f} {t['direct']['gbit_s']:14.2f} "
          f"{t['switch']['gbit_s'] / t['direct']['gbit_s']:7.2f}")
    print(f"{'UDP 64 B received (kpps)':28} {u['switch']['received_pps'] / 1e3:16.1f} "
          f"{u['direct']['received_pps'] / 1e3:14.1f} "
          f"{u['switch']['received_pps'] / max(u['direct']['received_pps'], 1):7.2f}")
    print(f"{'UDP 64 B sent (kpps)':28} {u['switch']['sent_pps'] / 1e3:16.1f} "
          f"{u['direct']['sent_pps'] / 1e3:14.1f}")
    print(f"BPF program: {t['switch']['bpf_ns_per_run'] or 0:.0f} ns/run (TCP), "
          f"{u['switch']['bpf_ns_per_run'] or 0:.0f} ns/run (UDP)")
    doc = {"format": 1, "benchmark": "switch", "seconds": seconds,
           "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
           "host": {"kernel": platform.release(), "nproc": os.cpu_count(), "python": platform.python_version()},
           "git": _git(), "pipeline": "forwarding", "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
