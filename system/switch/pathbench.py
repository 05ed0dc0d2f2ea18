"""Per-path cost of the emulated switch's pipelines: nanoseconds per packet with BPF_PROG_TEST_RUN.

Every pipeline is compiled, loaded (not attached: no interfaces) and filled with the entries of
the packet cases (system/testing/*_cases.py); then each path (route, the SYN-ACK, the offload
rewrites in both directions, the front-end buckets, conn_in/conn_out, the slow path) runs with a
small frame and, where the path carries data, an MTU-sized frame (1514 bytes). Each path is first
checked once (verdict and egress port), then run `calls` times; the figure is the median of the
kernel's per-run duration, and BPF stats' run_time_ns / run_cnt over the same runs. Used by
`python -m system.switch.bench` (needs root).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from system.bpf.build import compile_bpf
from system.bpf.loader import BPFFS, load_object, unpin
from system.bpf.syscall import Prog
from system.switch.package import source_of
from system.switch.tables import MAX_PORTS, PipelineTables, pipeline_spec
from system.testing import miresga_cases as mc
from system.testing import switch_only_cases as so
from system.testing.cases import TableEntry
from system.testing.runners import TestRunRunner

TC_ACT_REDIRECT = 7
MTU_FRAME = 1514                      # Ethernet header + 1500-byte IPv4 packet
OTHER = "198.18.210.44"               # a host that is neither client, VIP nor back-end


@dataclass(frozen=True)
class PathCase:
    pipeline: str
    name: str
    in_port: int
    out_port: int
    frame: Callable[[bytes], Packet]    # payload -> frame
    mtu: bool                           # a data path: 1 payload byte, and also an MTU-sized frame


def _routed(payload: bytes, dst: str = mc.CLIENT) -> Packet:
    pkt = (Ether(src="02:cc:00:00:00:44", dst=mc.SW_MAC[4]) / IP(src=OTHER, dst=dst, ttl=64)
           / TCP(sport=5001, dport=5002, flags="PA", seq=1, ack=1, window=1000))
    return pkt / Raw(payload) if payload else pkt


PATHS = (
    PathCase("forwarding", "route", 4, 1, _routed, True),
    PathCase("miresga", "route", 4, 1, _routed, True),
    PathCase("miresga", "vip_synack", 1, 1, lambda p: mc.syn(mc.LINUX_OPTS), False),
    PathCase("miresga", "vip_to_frontend", 1, 2, lambda p: mc.client_seg("PA", p), True),
    PathCase("miresga", "offload_client_to_backend", 1, 3, lambda p: mc.client_seg("A"), False),
    PathCase("miresga", "offload_backend_to_client", 3, 1, lambda p: mc.backend_seg("PA", p), True),
    PathCase("miresga", "backend_to_frontend", 3, 2, lambda p: mc.backend_seg("FA", b""), False),
    PathCase("switch_only", "route", 3, 1, lambda p: _routed(p, so.CLIENT), True),
    PathCase("switch_only", "vip_synack", 1, 1, lambda p: so.syn(mc.LINUX_OPTS), False),
    PathCase("switch_only", "conn_in", 1, 2, lambda p: so.client_seg("PA", p), True),
    PathCase("switch_only", "conn_out", 2, 1, lambda p: so.backend_seg("PA", p), True),
    PathCase("switch_only", "slow_path", 1, so.CPU_PORT, lambda p: so.client_seg("FA"), False),
)


def _entries(pipeline: str) -> list[TableEntry]:
    if pipeline == "forwarding":
        return [mc.ROUTE_CLIENT]
    if pipeline == "miresga":
        return list(mc.OFFLOADED)
    return [*so.INSTALLED]


def _configure(pipeline: str, tables: PipelineTables) -> None:
    if pipeline == "miresga":
        mc.set_secret(tables)
    elif pipeline == "switch_only":
        so.configure(tables)


def _tx_port(before: dict[int, dict[str, int]], after: dict[int, dict[str, int]]) -> int | None:
    ports = [p for p in after if after[p]["tx_packets"] != before.get(p, {}).get("tx_packets", 0)]
    return ports[0] if len(ports) == 1 else None


def _measure(prog: Prog, tables: PipelineTables, path: PathCase, frame: bytes, calls: int) -> dict:
    ctx = TestRunRunner.ctx_for(path.in_port)
    before = tables.port_counters()
    retval, _, _ = prog.test_run(frame, ctx=ctx)
    port = _tx_port(before, tables.port_counters())
    if retval != TC_ACT_REDIRECT or port != path.out_port:
        raise RuntimeError(f"{path.pipeline}/{path.name}: verdict {retval}, out port {port}; "
                           f"expected a redirect to port {path.out_port} (the path is not the one measured)")
    info0 = prog.info()
    durations = [prog.test_run(frame, ctx=ctx)[2] for _ in range(calls)]
    info1 = prog.info()
    runs = info1.run_cnt - info0.run_cnt
    return {"pipeline": path.pipeline, "path": path.name, "frame_bytes": len(frame),
            "calls": calls, "ns_median": statistics.median(durations),
            "ns_p90": statistics.quantiles(durations, n=10)[-1] if calls >= 10 else max(durations),
            "bpf_stats_ns_per_run": (info1.run_time_ns - info0.run_time_ns) / runs if runs else None}


def run_paths(calls: int = 2000, pin_root: Path | None = None, workdir: Path = Path("/tmp"),
              progress: Callable[[str], None] = print) -> list[dict]:
    """ns per packet for every path of every pipeline, small and (data paths) MTU-sized frames.
    BPF stats must be enabled by the caller for bpf_stats_ns_per_run (else it is None/0). Pins
    under `pin_root` (default: a directory of this process), compiles into `workdir`."""
    pin_root = pin_root or BPFFS / f"mrsc-bench-paths-{os.getpid()}"
    out: list[dict] = []
    for pipeline in dict.fromkeys(p.pipeline for p in PATHS):
        spec = pipeline_spec(pipeline)
        pin = pin_root / pipeline
        unpin(pin)
        obj = compile_bpf(source_of(pipeline), workdir / f"mrsc-bench-{os.getpid()}-{pipeline}.o").object_path
        loaded = load_object(obj, pin)
        try:
            with PipelineTables(spec, pin) as tables, Prog.pinned(loaded.prog_path(spec.program)) as prog:
                TestRunRunner.map_fake_ports(tables, MAX_PORTS)
                _configure(pipeline, tables)
                for e in _entries(pipeline):
                    tables.insert(e.table, e.key, e.action, e.params)
                for path in (p for p in PATHS if p.pipeline == pipeline):
                    sizes = [("small", b"x" if path.mtu else b"")]
                    if path.mtu:
                        sizes.append(("mtu", b"\x5a" * (MTU_FRAME - len(bytes(path.frame(b""))))))
                    for label, payload in sizes:
                        frame = bytes(path.frame(payload))
                        r = _measure(prog, tables, path, frame, calls) | {"size": label}
                        progress(f"  {pipeline:12} {path.name:28} {label:5} {len(frame):5} B "
                                 f"{r['ns_median']:8.0f} ns (median)")
                        out.append(r)
        finally:
            unpin(pin)
            obj.unlink(missing_ok=True)
    unpin(pin_root)
    return out
