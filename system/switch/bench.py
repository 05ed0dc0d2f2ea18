"""Benchmark: the emulated switch's cost per packet and per path, and TCP goodput and small-packet rate
through it vs a direct veth pair.

    python -m system.switch.bench [--seconds 3] [--calls 2000] [--out results/switch-bench.json]
    python -m system.switch.bench --deployments 5 [--rounds 9] [--seconds 3]


Needs root. Two parts (system/switch/README.md, "Counters" and "Benchmark"):
1. Every pipeline and table path (route; the SYN-ACK; Miresga's front-end buckets and offload
   rewrites in both directions; switch-only's conn_in/conn_out and slow path) with a small and an
   MTU-sized frame: ns per packet from BPF_PROG_TEST_RUN (system/switch/pathbench.py).
2. Real traffic: setups with prefix mrsc-bn (switch star, 2 ports, pipeline forwarding) and mrsc-bd
   (a veth pair between two namespaces); TCP goodput with GSO/TSO on (the switch sees 64 KB
   super-packets) and off (MTU-sized skbs), and 64-byte UDP, each measured with a Python socket
   sender/receiver (a forked receiver process, bounded in time). For the switch: BPF stats' ns per
   run, ns per 1448-byte TCP segment carried, and the share of one core the switch's program used
   at the measured throughput.
Prints tables, saves JSON with provenance, and tears everything down.

`--deployments N` is issue 17's acceptance check instead: N deployments in a row, each a fresh
topology and a fresh load of the forwarding pipeline (where the kernel places map nodes changes per
load: the old split-lock cost was bimodal across loads), and in each `--rounds` alternating
measurements of a bulk TCP stream (GSO on, as nginx sends 10 MB objects) through the switch and
through the direct veth pair, the sender and the receiver pinned to the first and the last CPU for
both paths. A deployment passes when the switch's goodput is within 10% of the
veth pair's: the median over the rounds of each round's ratio of its two back-to-back measurements
(alternating which goes first keeps a shared machine's drift out of the ratio); the check passes
when all N do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from system.bpf.loader import BPFFS
from system.bpf.syscall import Prog, enable_stats
from system.switch.package import build_package
from system.switch.pathbench import run_paths
from system.switch.target import EmulatedSwitch
from system.testing.netns import StarTopology, existing_netns, in_netns, ip_int, mac_int, sh

PORT = 5201
CHUNK = 256 * 1024
MSS = 1448              # TCP payload per 1500-byte packet with timestamps
TARGET_NS = 1000        # per packet, every path (issue 17)
WITHIN = 0.10           # the deployments check: switch goodput >= (1 - WITHIN) x the veth pair's


def _pinned_cpus() -> tuple[int, int] | None:
    """(sender CPU, receiver CPU) for the bulk streams: the first and the last CPU this process may
    use, so that both paths run with the same placement (the scheduler's choice otherwise moves a
    measurement by +-10% from one run to the next); None on a one-CPU machine."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[-1]) if len(cpus) > 1 else None


def _tcp_receiver(conn: socket.socket, q: mp.Queue, cpu: int | None = None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
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


def tcp_goodput(src_ns: str, dst_ns: str, dst_addr: str, seconds: float,
                pin: tuple[int, int] | None = None) -> dict:
    """Bulk TCP from `src_ns` to `dst_ns` for `seconds`; `pin`: (sender CPU, receiver CPU)."""
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
    rx = mp.get_context("fork").Process(target=_tcp_receiver, args=(conn, q, pin[1] if pin else None))
    rx.start()
    conn.close()
    buf = b"\x5a" * CHUNK
    sent = 0
    own = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {pin[0]})
    try:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            cs.sendall(buf)
            sent += len(buf)
        cs.shutdown(socket.SHUT_WR)
        received = q.get(timeout=30)
        elapsed = time.monotonic() - start
    finally:
        os.sched_setaffinity(0, own)
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


def _offload(ns: str, dev: str, on: bool) -> None:
    """GSO/TSO/GRO of `dev` on or off (off: the stack hands the veth MTU-sized skbs)."""
    state = "on" if on else "off"
    sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", state, "gso", state, "gro", state)


def _measured(prog: Prog, fn, args: tuple) -> dict:
    before = prog.info()
    out = fn(*args)
    after = prog.info()
    runs = after.run_cnt - before.run_cnt
    busy = after.run_time_ns - before.run_time_ns
    out["bpf_runs"] = runs
    out["bpf_ns_per_run"] = busy / runs if runs else None
    out["bpf_core_share"] = busy / (out["seconds"] * 1e9)
    if "bytes" in out:
        segments = out["bytes"] / MSS
        out["bpf_ns_per_segment"] = busy / segments if segments else None
    return out


@contextlib.contextmanager
def _deployment() -> Iterator[tuple[StarTopology, DirectPair, EmulatedSwitch, list[tuple[str, str]]]]:
    """A fresh deployment: the switch star with the forwarding pipeline loaded anew and its routes,
    and the direct veth pair; yields them and every host interface (namespace, device); tears all down."""
    topo = StarTopology(prefix="mrsc-bn", ifprefix="mcb", nports=2, subnet=212)
    pair = DirectPair()
    switch = None
    try:
        topo.up()
        switch = EmulatedSwitch(topo.switch_ns, topo.port_map, BPFFS / "mrsc-bench")
        tables = switch.load(build_package("forwarding"))
        for h in topo.hosts:
            tables.insert("route", {"dst_addr": (ip_int(h.addr), 32)}, "forward",
                          {"port": h.port, "smac": mac_int(h.sw_mac), "dmac": mac_int(h.mac)})
        pair.up()
        devs = [(h.ns, h.dev) for h in topo.hosts] + [(pair.a, "mcbda"), (pair.b, "mcbdb")]
        yield topo, pair, switch, devs
    finally:
        if switch is not None:
            switch.unload()
        topo.down()
        pair.down()


def traffic(seconds: float) -> dict[str, dict]:
    """TCP (GSO on and off) and UDP through the forwarding pipeline and through a veth pair."""
    results: dict[str, dict] = {}
    with _deployment() as (topo, pair, switch, devs):
        h1, h2 = topo.host(1), topo.host(2)
        plan = (("tcp_gso", tcp_goodput, True), ("tcp_mtu", tcp_goodput, False), ("udp_64B", udp_rate, True))
        with Prog.pinned(switch.pin_dir / "progs" / "pipe_ingress") as prog:
            for name, fn, gso in plan:
                for ns, dev in devs:
                    _offload(ns, dev, gso)
                print(f"  {name}: switch ...", flush=True)
                sw = _measured(prog, fn, (h1.ns, h2.ns, h2.addr, seconds))
                print(f"  {name}: direct veth ...", flush=True)
                results[name] = {"switch": sw, "direct": fn(pair.a, pair.b, pair.addr_b, seconds)}
    return results


def _median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def deployments(count: int, rounds: int, seconds: float) -> list[dict]:
    """Issue 17's check: `count` fresh deployments, each `rounds` alternating switch / veth-pair
    measurements of a GSO bulk stream; per deployment the median goodputs, their ratio and the
    switch program's ns per run and share of a core."""
    out = []
    pin = _pinned_cpus()
    for d in range(1, count + 1):
        sw_runs: list[dict] = []
        veth_runs: list[dict] = []
        with _deployment() as (topo, pair, switch, devs):
            h1, h2 = topo.host(1), topo.host(2)
            for ns, dev in devs:
                _offload(ns, dev, True)
            with Prog.pinned(switch.pin_dir / "progs" / "pipe_ingress") as prog:
                for r in range(rounds):
                    # alternate which goes first, so that a drift of the machine hits both alike
                    first_switch = r % 2 == 0
                    for through_switch in (first_switch, not first_switch):
                        if through_switch:
                            sw_runs.append(_measured(prog, tcp_goodput, (h1.ns, h2.ns, h2.addr, seconds, pin)))
                        else:
                            veth_runs.append(tcp_goodput(pair.a, pair.b, pair.addr_b, seconds, pin))
        sw = _median([x["gbit_s"] for x in sw_runs])
        veth = _median([x["gbit_s"] for x in veth_runs])
        # each round's two measurements ran back to back: their ratio cancels the machine's drift
        pairs = [a["gbit_s"] / b["gbit_s"] for a, b in zip(sw_runs, veth_runs, strict=True) if b["gbit_s"]]
        row = {"deployment": d, "rounds": rounds, "switch_gbit_s": sw, "veth_gbit_s": veth,
               "cpus": {"sender": pin[0], "receiver": pin[1]} if pin else None,
               "ratio": _median(pairs) if pairs else None, "round_ratios": pairs,
               "switch_runs_gbit_s": [x["gbit_s"] for x in sw_runs],
               "veth_runs_gbit_s": [x["gbit_s"] for x in veth_runs],
               "complete": all(x["complete"] for x in sw_runs + veth_runs),
               "bpf_ns_per_run": _median([x["bpf_ns_per_run"] or 0 for x in sw_runs]),
               "bpf_core_share": _median([x["bpf_core_share"] for x in sw_runs])}
        row["within"] = row["ratio"] is not None and row["ratio"] >= 1 - WITHIN and row["complete"]
        print(f"  deployment {d}/{count}: switch {sw:.2f} Gbit/s, veth pair {veth:.2f} Gbit/s, "
              f"ratio {row['ratio']:.3f} ({'within' if row['within'] else 'NOT within'} {WITHIN:.0%}); "
              f"switch {row['bpf_ns_per_run']:.0f} ns/run, {row['bpf_core_share'] * 100:.1f}% of a core",
              flush=True)
        out.append(row)
    return out


def _print_paths(paths: list[dict]) -> None:
    print(f"\n{'pipeline':12} {'path':28} {'frame':>7} {'ns/pkt (median)':>16} {'p90':>6} {'BPF stats':>10}")
    for r in paths:
        flag = "" if r["ns_median"] <= TARGET_NS else f"  > {TARGET_NS} ns"
        print(f"{r['pipeline']:12} {r['path']:28} {r['frame_bytes']:6d}B {r['ns_median']:16.0f} "
              f"{r['ns_p90']:6.0f} {r['bpf_stats_ns_per_run'] or 0:10.0f}{flag}")
    worst = max(paths, key=lambda r: r["ns_median"])
    print(f"worst path: {worst['pipeline']}/{worst['path']} ({worst['size']}) {worst['ns_median']:.0f} ns "
          f"(target <= {TARGET_NS} ns: {'met' if worst['ns_median'] <= TARGET_NS else 'NOT met'})")


def _print_traffic(results: dict[str, dict]) -> None:
    print(f"\n{'measurement':30} {'emulated switch':>16} {'direct veth':>12} {'ratio':>6} "
          f"{'ns/run':>7} {'ns/seg':>7} {'core':>6}")
    for name in ("tcp_gso", "tcp_mtu"):
        sw, d = results[name]["switch"], results[name]["direct"]
        print(f"{'TCP ' + name[4:].upper() + ' goodput (Gbit/s)':30} {sw['gbit_s']:16.2f} {d['gbit_s']:12.2f} "
              f"{sw['gbit_s'] / d['gbit_s']:6.2f} {sw['bpf_ns_per_run'] or 0:7.0f} "
              f"{sw['bpf_ns_per_segment'] or 0:7.0f} {sw['bpf_core_share'] * 100:5.1f}%")
    u = results["udp_64B"]
    sw, d = u["switch"], u["direct"]
    print(f"{'UDP 64 B received (kpps)':30} {sw['received_pps'] / 1e3:16.1f} {d['received_pps'] / 1e3:12.1f} "
          f"{sw['received_pps'] / max(d['received_pps'], 1):6.2f} {sw['bpf_ns_per_run'] or 0:7.0f} "
          f"{'':>7} {sw['bpf_core_share'] * 100:5.1f}%")
    print("ns/run: BPF stats per program run (a GSO run carries up to 45 segments); ns/seg: per 1448-byte "
          "TCP segment carried (ACK runs included); core: share of one core the switch's program used.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each traffic measurement (max 30)")
    ap.add_argument("--calls", type=int, default=2000, help="test runs per path and frame size (100..100000)")
    ap.add_argument("--skip-traffic", action="store_true", help="only the per-path test runs")
    ap.add_argument("--deployments", type=int, default=0,
                    help="instead of the above: issue 17's check over this many fresh deployments (1..20)")
    ap.add_argument("--rounds", type=int, default=9, help="alternating measurements per deployment (1..20)")
    ap.add_argument("--out", type=Path, default=Path("results/switch-bench.json"))
    args = ap.parse_args(argv)
    seconds = min(max(args.seconds, 0.5), 30.0)
    calls = min(max(args.calls, 100), 100_000)
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces, BPF)")
    if args.deployments:
        return _deployments_main(args, seconds)
    stats_fd = enable_stats()
    try:
        print(f"per-path cost ({calls} test runs each):", flush=True)
        paths = run_paths(calls)
        results = {} if args.skip_traffic else traffic(seconds)
    finally:
        os.close(stats_fd)
    _print_paths(paths)
    if results:
        _print_traffic(results)
    doc = {"format": 2, "benchmark": "switch", "seconds": seconds, "calls": calls,
           "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
           "host": {"kernel": platform.release(), "nproc": os.cpu_count(), "python": platform.python_version()},
           "git": _git(), "emulated": True, "target_ns_per_packet": TARGET_NS,
           "paths": paths, "traffic_pipeline": "forwarding", "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


def _deployments_main(args: argparse.Namespace, seconds: float) -> int:
    count = min(max(args.deployments, 1), 20)
    rounds = min(max(args.rounds, 1), 20)
    print(f"{count} deployments x {rounds} alternating rounds of {seconds:g} s (switch, veth pair); "
          f"pass: switch >= {1 - WITHIN:.0%} of the veth pair (EMULATED switch)", flush=True)
    stats_fd = enable_stats()
    try:
        rows = deployments(count, rounds, seconds)
    finally:
        os.close(stats_fd)
    passed = all(r["within"] for r in rows)
    ratios = [r["ratio"] for r in rows]
    print(f"ratios {', '.join(f'{x:.3f}' for x in ratios)}: {sum(r['within'] for r in rows)} of {count} "
          f"within {WITHIN:.0%} -> {'PASS' if passed else 'FAIL'}")
    doc = {"format": 2, "benchmark": "switch-deployments", "seconds": seconds, "rounds": rounds,
           "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
           "host": {"kernel": platform.release(), "nproc": os.cpu_count(), "python": platform.python_version(),
                    "loadavg": os.getloadavg()},
           "git": _git(), "emulated": True, "within": WITHIN, "pipeline": "forwarding",
           "deployments": rows, "passed": passed}
    out = args.out if args.out != Path("results/switch-bench.json") else Path("results/switch-deployments.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"saved {out}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
