"""`python -m system.controlplane.bench`: insertion latency and throughput of the control plane.

Brings up its own namespaces (`--ns-prefix`, default mrsb-*), runs the P4Runtime server as a
subprocess per switch profile, and measures:

  switch alone (pipeline `forwarding`, `route` table; every pass inserts then deletes `--entries`
  /32 routes):
    single   one update per Write through p4runtime-shell's TableEntry.insert()/delete()
    batched  `--batch` updates per Write through the shell client's gRPC stub
  control plane under per-connection load (pipeline `switch_only`; system/controlplane/loadgen.py in
  a subprocess: every connection is an add of `conn_in` and of `conn_out`, both deleted `--hold-s`
  after their acks, over `--clients` TCP connections, as the switch-only slow path makes them):
    open loop at each of `--rates` offered updates/s: achieved rate, client-side latency (send to
    ack) p50/p99, the control plane's own split (queue: received -> Write sent; write: the Write
    RPC), updates per Write, CPU time per update of the control plane and of the P4Runtime server
    closed loop (`--outstanding` requests in flight per client connection): the maximum
    throughput, and for a paced profile its share of the profile's rate
    The server's `pacing_overruns` (Writes whose emulated apply took longer than the model allows)
    tell when the emulation, not the profile, was the limit.

The control plane runs in this process with its defaults (adaptive batching, `--max-batch`).
Prints tables and writes JSON with provenance to `--out`/controlplane-bench-<time>.json. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
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
        def entry(dst: str) -> Any:
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


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_stats(path: Path) -> dict[str, Any]:
    time.sleep(1.2)                      # the server rewrites its stats file once a second
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _split(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p99": None}
    return {"p50": round(_pct(samples, 0.5) * 1e3, 3), "p99": round(_pct(samples, 0.99) * 1e3, 3)}


def bench_load(sp: Any, server_stats: Path, profile: str, rates: list[float | None], args: argparse.Namespace,
               base: int) -> tuple[list[dict[str, Any]], int]:
    """The control plane (in this process) under loadgen subprocesses, one per offered rate
    (None: closed loop). Returns the rows and the next free connection number."""
    from system.controlplane.controller import Controller, ControllerConfig
    from system.controlplane.server import FrontendServer
    from system.switch.package import build_package
    from system.switch.tables import load_p4info

    cfg = ControllerConfig(switch=sp.address, p4info=load_p4info("switch_only"),
                           device_config=build_package("switch_only"), static=[], max_batch=args.max_batch,
                           latency_samples=10_000_000)
    ctl = Controller(cfg)
    srv = FrontendServer(("127.0.0.1", 0), ctl, "switch_only")
    ctl.start()
    threading.Thread(target=srv.serve_forever, name="bench-cp", daemon=True).start()
    rows = []
    try:
        if not ctl.connected.wait(30):
            raise RuntimeError("control plane did not connect")
        for rate in rates:
            label = f"{rate:g}/s" if rate is not None else "closed"
            print(f"  {profile}: load {label} ...", flush=True)
            st = ctl.stats
            n_q, n_w = len(st.queue_latency), len(st.write_latency)
            b0, u0 = st.batches, st.batched_updates
            s0 = _server_stats(server_stats)
            c0, p0 = time.process_time(), _proc_cpu(sp.proc.pid)
            cmd = [sys.executable, "-m", "system.controlplane.loadgen", f"127.0.0.1:{srv.address[1]}",
                   "--seconds", str(args.seconds), "--clients", str(args.clients), "--base", str(base),
                   "--outstanding", str(args.outstanding), "--hold-s", str(args.hold_s)]
            if rate is not None:
                cmd += ["--rate", str(rate)]
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                                 timeout=args.seconds + 180)
            if out.returncode != 0:
                raise RuntimeError(f"loadgen failed: {out.stderr.strip()[-2000:]}")
            r = json.loads(out.stdout)
            c1, p1 = time.process_time(), _proc_cpu(sp.proc.pid)
            s1 = _server_stats(server_stats)
            base += r["connections"] + 1
            n = max(1, sum(v for k, v in r["codes"].items() if not k.startswith(("reply_", "unexpected"))))
            writes = st.batches - b0
            row = {
                "profile": profile, "mode": r["mode"], "offered_ups": rate, "achieved_ups": r["achieved_ups"],
                "latency_ms": r["latency_ms"], "late_ms_p99": r["late_ms_p99"], "codes": r["codes"],
                "unacked": r["unacked"], "connections": r["connections"],
                "queue_ms": _split(list(st.queue_latency)[n_q:]), "write_ms": _split(list(st.write_latency)[n_w:]),
                "writes": writes, "updates_per_write": round((st.batched_updates - u0) / writes, 2) if writes else None,
                "cp_cpu_us_per_update": round((c1 - c0) / n * 1e6, 1),
                "p4rt_cpu_us_per_update": round((p1 - p0) / n * 1e6, 1),
                "pacing_overruns": (s1.get("pacing_overruns", 0) - s0.get("pacing_overruns", 0)) if s1 else None,
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "clients": args.clients, "outstanding": args.outstanding if rate is None else None,
            }
            rows.append(row)
    finally:
        srv.shutdown()
        srv.server_close()
        ctl.stop()
    return rows, base


def provenance() -> dict[str, Any]:
    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return r.stdout.strip() if r.returncode == 0 else ""
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_commit": git("rev-parse", "HEAD") or None,
            "git_dirty": bool(git("status", "--porcelain")), "host": platform.node(),
            "kernel": platform.release(), "python": platform.python_version(), "argv": sys.argv,
            "cpus": os.cpu_count(), "load_avg_1m_at_start": round(os.getloadavg()[0], 2), "emulated": True}


def _rates(text: str) -> list[float]:
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rates: {text!r} is not a comma-separated list of numbers") from None
    if any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("--rates: every rate must be > 0 updates/s")
    return rates


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def print_report(switch_rows: list[dict[str, Any]], load_rows: list[dict[str, Any]],
                 profiles: dict[str, float | None]) -> None:
    if switch_rows:
        print("\nemulated switch alone (pipeline forwarding, route table)")
        print(f"{'case':<34} {'profile':<10} {'updates':>7} {'entries/s':>10} {'p50 us':>9} {'p99 us':>9}")
        for r in switch_rows:
            print(f"{r['case']:<34} {r['profile']:<10} {r['updates']:>7} {r['entries_per_s']:>10.0f} "
                  f"{r['p50_us']:>9.0f} {r['p99_us']:>9.0f}")
    print("\ncontrol plane under per-connection load (switch_only conn_in + conn_out; latency send -> ack, ms)")
    print(f"{'profile':<10} {'offered/s':>9} {'achieved/s':>10} {'p50':>8} {'p99':>8} {'queue p50':>9} "
          f"{'write p50':>9} {'upd/Write':>9} {'cp us/upd':>9} {'sw us/upd':>9} {'errors':>6}")
    for r in load_rows:
        off = "closed" if r["offered_ups"] is None else f"{r['offered_ups']:.0f}"
        errors = sum(v for k, v in r["codes"].items() if k != "OK") + r["unacked"]
        print(f"{r['profile']:<10} {off:>9} {r['achieved_ups']:>10.0f} {_ms(r['latency_ms']['p50']):>8} "
              f"{_ms(r['latency_ms']['p99']):>8} {_ms(r['queue_ms']['p50']):>9} {_ms(r['write_ms']['p50']):>9} "
              f"{r['updates_per_write'] or 0:>9.1f} {r['cp_cpu_us_per_update']:>9.0f} "
              f"{r['p4rt_cpu_us_per_update']:>9.0f} {errors:>6}")
    print("\nmaximum throughput (closed loop)")
    for r in load_rows:
        if r["offered_ups"] is not None:
            continue
        rate = profiles.get(r["profile"])
        share = f", {r['achieved_ups'] / rate:.0%} of the profile's {rate:.0f}/s" if rate else ""
        print(f"  {r['profile']:<10} {r['achieved_ups']:>8.0f} updates/s{share} "
              f"(p50 {_ms(r['latency_ms']['p50'])} ms, {r['updates_per_write']} updates/Write, "
              f"pacing overruns {r['pacing_overruns']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m system.controlplane.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", default="unlimited,tofino1,rate-1k")
    ap.add_argument("--rates", type=_rates, default=_rates("50,200,500,1000,2000"),
                    help="offered updates/s of the open-loop runs (adds + deletes)")
    ap.add_argument("--no-closed", action="store_true", help="skip the closed-loop (maximum throughput) run")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per load run")
    ap.add_argument("--clients", type=int, default=4, help="TCP connections of the load generator")
    ap.add_argument("--outstanding", type=int, default=32, help="closed loop: requests in flight per connection")
    ap.add_argument("--hold-s", type=float, default=0.1, help="a connection's entries live this long")
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--no-switch", action="store_true", help="skip the switch-alone (p4runtime-shell) cases")
    ap.add_argument("--entries", type=int, default=1000, help="routes per pass (route table: 1024)")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--ns-prefix", default="mrsb", help="prefix of the benchmark's namespaces and pins")
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    args = ap.parse_args(argv)
    if not 1 <= args.entries <= 1000:
        ap.error("--entries must be 1..1000 (the route table holds 1024 entries)")
    if args.seconds <= 0 or args.clients < 1 or args.outstanding < 2 or args.max_batch < 1:
        ap.error("--seconds must be > 0, --clients and --max-batch >= 1, --outstanding >= 2")

    from system.switch.p4rt.testing import SwitchNamespaces, SwitchProcess, free_port, root_reason
    from system.switch.package import build_package
    from system.switch.profiles import ProfileError, load_profile
    from system.switch.tables import P4SRC

    reason = root_reason()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    profiles: dict[str, float | None] = {}
    for name in args.profiles.split(","):
        try:
            profiles[name] = load_profile(name).insertion.rate
        except ProfileError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    pkg = args.out / ".forwarding.pkg"
    pkg.write_bytes(build_package("forwarding"))
    ns = SwitchNamespaces(prefix=args.ns_prefix).up()
    switch_rows: list[dict[str, Any]] = []
    load_rows: list[dict[str, Any]] = []
    rates: list[float | None] = [*args.rates, *([] if args.no_closed else [None])]
    base = 0
    try:
        for profile in profiles:
            stats = args.out / f".p4rt-{profile}.json"
            sp = SwitchProcess(ns, free_port(), profile=profile, stats_file=stats).start()
            try:
                if not args.no_switch:
                    print(f"  {profile}: switch alone ...", flush=True)
                    switch_rows += bench_shell(sp.address, P4SRC / "forwarding.p4info.txtpb", pkg, profile,
                                               args.entries, args.passes, args.batch)
                rows, base = bench_load(sp, stats, profile, rates, args, base)
                load_rows += rows
            finally:
                sp.stop()
                stats.unlink(missing_ok=True)
    finally:
        ns.down()
        pkg.unlink(missing_ok=True)
    print_report(switch_rows, load_rows, profiles)
    out = args.out / f"controlplane-bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    max_tp = {r["profile"]: {"updates_per_s": r["achieved_ups"], "profile_rate": profiles[r["profile"]]}
              for r in load_rows if r["offered_ups"] is None}
    out.write_text(json.dumps({"format": 2, "provenance": provenance(), "params": params,
                               "switch_rows": switch_rows, "load_rows": load_rows,
                               "max_throughput": max_tp}, indent=1) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
