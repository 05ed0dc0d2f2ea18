"""`python -m system.controlplane.bench`: insertion rate and latency of the emulated switch.

Brings up the test namespaces (mrsi-*), runs the P4Runtime server as a subprocess per profile, and
measures on the `forwarding` pipeline's `route` table (1024 entries; every pass inserts then deletes
`--entries` /32 routes, so both operations are measured):
  single   one update per Write through p4runtime-shell's TableEntry.insert()/delete()
  batched  `--batch` updates per Write through the shell client's gRPC stub
  cp-rtt   the control plane's offload request round trip (one request at a time)
  cp-pipe  the control plane's throughput with every request of a pass in flight
Prints a table and writes JSON with provenance to `--out`/controlplane-bench-<time>.json. Needs root.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p * len(s)))]


def _row(name: str, profile: str, n: int, elapsed: float, lat: list[float], **extra: Any) -> dict[str, Any]:
    return {"case": name, "profile": profile, "updates": n, "seconds": round(elapsed, 4),
            "entries_per_s": round(n / elapsed, 1), "p50_us": round(_pct(lat, 0.5) * 1e6, 1),
            "p99_us": round(_pct(lat, 0.99) * 1e6, 1), "mean_us": round(statistics.fmean(lat) * 1e6, 1),
            **extra}


def _prefixes(n: int) -> list[str]:
    return [f"198.18.{64 + i // 250}.{i % 250 + 1}" for i in range(n)]


def bench_shell(address: str, p4info: Path, pkg: Path, profile: str, n: int, passes: int,
                batch: int) -> list[dict[str, Any]]:
    import p4runtime_sh.shell as sh
    from p4.v1 import p4runtime_pb2

    sh.setup(device_id=1, grpc_addr=address, election_id=(0, 1),
             config=sh.FwdPipeConfig(str(p4info), str(pkg)), verbose=False)
    rows = []
    try:
        def entry(dst: str):
            te = sh.TableEntry("route")(action="forward")
            te.match["dst_addr"] = f"{dst}/32"
            te.action["port"], te.action["smac"], te.action["dmac"] = "1", "02:00:00:00:00:01", "02:00:00:00:00:02"
            return te

        entries = [entry(d) for d in _prefixes(n)]
        lat: list[float] = []
        t0 = time.perf_counter()
        for _ in range(passes):
            for op in ("insert", "delete"):
                for te in entries:
                    s = time.perf_counter()
                    getattr(te, op)()
                    lat.append(time.perf_counter() - s)
        rows.append(_row("single (p4runtime-shell)", profile, len(lat), time.perf_counter() - t0, lat, batch=1))

        stub, client = sh.client.stub, sh.client
        msgs = [te.msg() for te in entries]
        lat = []
        total = 0
        t0 = time.perf_counter()
        for _ in range(passes):
            for typ in (p4runtime_pb2.Update.INSERT, p4runtime_pb2.Update.DELETE):
                for i in range(0, len(msgs), batch):
                    req = p4runtime_pb2.WriteRequest(device_id=1)
                    req.election_id.high, req.election_id.low = client.election_id
                    for m in msgs[i:i + batch]:
                        u = req.updates.add(type=typ)
                        u.entity.table_entry.CopyFrom(m)
                    s = time.perf_counter()
                    stub.Write(req)
                    lat.append(time.perf_counter() - s)
                    total += len(req.updates)
        rows.append(_row(f"batched {batch}/Write (stub)", profile, total, time.perf_counter() - t0, lat,
                         batch=batch))
    finally:
        sh.teardown()
    return rows


def bench_controlplane(address: str, profile: str, n: int, passes: int, window_ms: float,
                       max_batch: int) -> list[dict[str, Any]]:
    from harness.inventory import load as load_inventory
    from system.controlplane import protocol
    from system.controlplane.controller import Controller, ControllerConfig
    from system.controlplane.server import FrontendServer
    from system.switch.package import build_package
    from system.switch.tables import load_p4info

    cfg = ControllerConfig(switch=address, p4info=load_p4info("forwarding"),
                           device_config=build_package("forwarding"), static=[],
                           window_s=window_ms / 1e3, max_batch=max_batch)
    _ = load_inventory  # static routes are not needed for the benchmark
    ctl = Controller(cfg)
    srv = FrontendServer(("127.0.0.1", 0), ctl, "forwarding")
    ctl.start()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    rows = []
    try:
        if not ctl.connected.wait(20):
            raise RuntimeError("control plane did not connect")
        cli = protocol.Client(srv.address, name="bench")
        params = {"port": 1, "smac": "02:00:00:00:00:01", "dmac": "02:00:00:00:00:02"}
        dsts = _prefixes(n)
        lat: list[float] = []
        t0 = time.perf_counter()
        for _ in range(passes):
            for op in ("add", "delete"):
                for d in dsts:
                    msg = {"type": op, "table": "route", "key": {"dst_addr": [d, 32]}}
                    if op == "add":
                        msg |= {"action": "forward", "params": params}
                    s = time.perf_counter()
                    rep = cli.call(msg)
                    lat.append(time.perf_counter() - s)
                    assert rep["code"] == "OK", rep
        rows.append(_row("control plane RTT (1 in flight)", profile, len(lat), time.perf_counter() - t0, lat,
                         window_ms=window_ms))
        lat = []
        total = 0
        t0 = time.perf_counter()
        for _ in range(passes):
            for op in ("add", "delete"):
                sent: dict[int, float] = {}
                for d in dsts:
                    msg = {"type": op, "table": "route", "key": {"dst_addr": [d, 32]}}
                    if op == "add":
                        msg |= {"action": "forward", "params": params}
                    sent[cli.send(msg)] = time.perf_counter()
                for _ in dsts:
                    rep = cli.recv()
                    assert rep["code"] == "OK", rep
                    lat.append(time.perf_counter() - sent[rep["id"]])
                total += len(dsts)
        st = cli.stats()["stats"]
        rows.append(_row(f"control plane pipelined (window {window_ms} ms, max {max_batch})", profile, total,
                         time.perf_counter() - t0, lat, window_ms=window_ms, mean_batch=st["mean_batch"]))
        cli.close()
    finally:
        srv.shutdown()
        srv.server_close()
        ctl.stop()
    return rows


def provenance() -> dict[str, Any]:
    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return r.stdout.strip() if r.returncode == 0 else ""
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_commit": git("rev-parse", "HEAD") or None,
            "git_dirty": bool(git("status", "--porcelain")), "host": platform.node(),
            "kernel": platform.release(), "python": platform.python_version(), "argv": sys.argv,
            "emulated": True}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m system.controlplane.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", default="unlimited,tofino1")
    ap.add_argument("--entries", type=int, default=1000, help="routes per pass (route table: 1024)")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--window-ms", type=float, default=1.0)
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    args = ap.parse_args(argv)
    if not 1 <= args.entries <= 1000:
        ap.error("--entries must be 1..1000 (the route table holds 1024 entries)")

    from system.switch.p4rt.testing import SwitchNamespaces, SwitchProcess, free_port, root_reason
    from system.switch.package import build_package
    from system.switch.tables import P4SRC

    reason = root_reason()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    pkg = args.out / ".forwarding.pkg"
    pkg.write_bytes(build_package("forwarding"))
    ns = SwitchNamespaces().up()
    rows: list[dict[str, Any]] = []
    try:
        for profile in args.profiles.split(","):
            sp = SwitchProcess(ns, free_port(), profile=profile).start()
            try:
                rows += bench_shell(sp.address, P4SRC / "forwarding.p4info.txtpb", pkg, profile, args.entries,
                                    args.passes, args.batch)
                rows += bench_controlplane(sp.address, profile, args.entries, args.passes, args.window_ms,
                                           args.max_batch)
            finally:
                sp.stop()
    finally:
        ns.down()
        pkg.unlink(missing_ok=True)
    print(f"{'case':<52} {'profile':<10} {'updates':>7} {'entries/s':>10} {'p50 us':>9} {'p99 us':>9}")
    for r in rows:
        print(f"{r['case']:<52} {r['profile']:<10} {r['updates']:>7} {r['entries_per_s']:>10.0f} "
              f"{r['p50_us']:>9.0f} {r['p99_us']:>9.0f}")
    out = args.out / f"controlplane-bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"format": 1, "provenance": provenance(), "params": vars(args) | {
        "out": str(args.out)}, "rows": rows}, indent=1) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
