"""How fast can the Locust generator go here? `python -m harness.bench.locust_ceiling --seconds 10`

Starts nginx on 127.0.0.1 (one worker process) serving a 1 KB and a 10 MB object, then runs Locust
(master + 1 worker) with the lean and the stock user classes on 1 KB close, 1 KB keep-alive and
10 MB keep-alive. Prints requests/s, Gbit/s of verified bodies and the CPU utilisation of the Locust
worker (1.0 = one core busy) and of nginx, measured over the same window, and saves
``results.json`` with provenance under ``--out``.

By default the worker is pinned to CPU 0 and nginx and the Locust master to CPU 1 (``--no-pin``).
A worker near 1.0 means the generator was the bottleneck; nginx near 1.0 means the server was.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from harness.locust_runner import LocalLocust
from workloads.catalog import write_catalog
from workloads.raw import read_raw_dir
from workloads.spec import Job, Target, Workload, WorkloadObject
from workloads.testserver import LoopbackNginx

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOG = {"1k": 1024, "10m": 10 * 1024 * 1024}
SCENARIOS = (  # name, object, connection, requests per connection
    ("1k-close", "1k", "close", 1),
    ("1k-keepalive", "1k", "keepalive", 1000),
    ("10m-keepalive", "10m", "keepalive", 100),
)


@dataclass
class Measurement:
    client: str
    scenario: str
    verify: str
    users: int
    window_s: float
    requests: int
    failed: int
    rps: float
    gbit_s: float
    worker_cpu: float
    master_cpu: float
    nginx_cpu: float
    p50_us: int | None
    p99_us: int | None


class CpuSampler:
    """Samples the summed user+system CPU seconds of process groups every `interval` seconds."""

    def __init__(self, groups: dict[str, list[int]], interval: float = 0.2) -> None:
        self.procs = {g: [psutil.Process(p) for p in pids] for g, pids in groups.items()}
        self.samples: dict[str, list[tuple[float, float]]] = {g: [] for g in groups}
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu(self, procs: list[psutil.Process]) -> float | None:
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                return None  # a process ended: stop sampling this group
            total += t.user + t.system
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for g, procs in self.procs.items():
                v = self._cpu(procs)
                if v is not None:
                    self.samples[g].append((now, v))
            self._stop.wait(self.interval)

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def utilisation(self, group: str, t0: float, t1: float) -> float:
        """CPU seconds per second over [t0, t1], interpolated between samples (nan if not covered)."""
        s = self.samples[group]
        if len(s) < 2 or s[0][0] > t0 or s[-1][0] < t1:
            return float("nan")
        times = [x[0] for x in s]

        def at(t: float) -> float:
            i = min(max(bisect.bisect_left(times, t), 1), len(s) - 1)
            (ta, va), (tb, vb) = s[i - 1], s[i]
            return va + (vb - va) * (t - ta) / (tb - ta) if tb > ta else vb

        return (at(t1) - at(t0)) / (t1 - t0)


def _pin(pids: list[int], cpu: int) -> None:
    for pid in pids:
        try:
            psutil.Process(pid).cpu_affinity([cpu])
        except (psutil.Error, ValueError, OSError):
            pass


def _percentile(sorted_values: list[int], q: float) -> int | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_one(nginx: LoopbackNginx, out: Path, client: str, scenario: tuple[str, str, str, int], users: int,
            seconds: float, pin: bool, keep_raw: bool, lean_verify: str = "sampled") -> Measurement:
    name, obj, connection, per_conn = scenario
    workload = Workload(name, (WorkloadObject(obj, f"/obj/{obj}", CATALOG[obj], 1),), connection=connection,
                        requests_per_connection=per_conn, client=client,
                        verify="full" if client == "stock" else lean_verify)
    run_dir = out / f"{client}-{name}"
    run_dir.mkdir(parents=True)
    job_file = Job(workload, Target("127.0.0.1", nginx.port), users=users).write(run_dir / "job.json")
    warmup, cooldown = 1.5, 0.5
    run = LocalLocust(job_file=job_file, out_dir=run_dir, users=users, spawn_rate=users * 4,
                      run_time_s=seconds + warmup + cooldown, workers=1, host_label="bench",
                      stop_timeout_s=5)
    run.start()
    try:
        if pin:
            _pin(run.pids["workers"], 0)
            _pin(run.pids["master"], 1)
        sampler = CpuSampler({"worker": run.pids["workers"], "master": run.pids["master"],
                              "nginx": nginx.pids()}).start()
        code = run.wait()
        sampler.stop()
    finally:
        run.stop()
    if code != 0:
        raise RuntimeError(f"Locust exited with {code}; see {run.locust_dir / 'master.log'}")
    rows = read_raw_dir(run.raw_dir)
    if not rows:
        raise RuntimeError(f"no requests were made; see {run.locust_dir}")
    first = min(r["start"] for r in rows)
    t0, t1 = first + warmup, first + warmup + seconds
    window = [r for r in rows if t0 <= r["start"] < t1]
    ok = [r for r in window if r["ok"]]
    lat = sorted(r["latency_us"] for r in ok)
    if not keep_raw:
        shutil.rmtree(run.raw_dir)
    return Measurement(
        client=client, scenario=name, verify=workload.verify, users=users, window_s=seconds, requests=len(ok),
        failed=len(window) - len(ok), rps=len(ok) / seconds,
        gbit_s=sum(r["bytes"] for r in ok) * 8 / seconds / 1e9,
        worker_cpu=sampler.utilisation("worker", t0, t1), master_cpu=sampler.utilisation("master", t0, t1),
        nginx_cpu=sampler.utilisation("nginx", t0, t1), p50_us=_percentile(lat, 0.5),
        p99_us=_percentile(lat, 0.99))


def provenance() -> dict[str, object]:
    def cmd(*args: str) -> str | None:
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=10, cwd=ROOT)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return (r.stdout or r.stderr).strip() if r.returncode == 0 else None

    versions = {}
    for pkg in ("locust", "gevent", "geventhttpclient", "psutil"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    nginx_v = cmd("nginx", "-v")
    return {
        "git": {"commit": cmd("git", "rev-parse", "HEAD"), "dirty": bool(cmd("git", "status", "--porcelain"))},
        "python": sys.version.split()[0], "packages": versions,
        "nginx": nginx_v.split("/", 1)[-1] if nginx_v else None,
        "kernel": platform.release(), "nproc": os.cpu_count(),
        "cpu_model": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name")), None),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def table(ms: list[Measurement]) -> str:
    head = f"{'client':<6} {'scenario':<14} {'verify':<7} {'users':>5} {'req/s':>9} {'Gbit/s':>7} {'failed':>6} " \
           f"{'worker CPU':>10} {'master CPU':>10} {'nginx CPU':>9} {'p50 us':>7} {'p99 us':>7}"
    lines = [head, "-" * len(head)]
    for m in ms:
        lines.append(f"{m.client:<6} {m.scenario:<14} {m.verify:<7} {m.users:>5} {m.rps:>9.0f} "
                     f"{m.gbit_s:>7.2f} {m.failed:>6} {m.worker_cpu:>10.2f} {m.master_cpu:>10.2f} {m.nginx_cpu:>9.2f} "
                     f"{m.p50_us or 0:>7} {m.p99_us or 0:>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.bench.locust_ceiling", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10, help="measured seconds per run (default 10)")
    ap.add_argument("--users", type=int, default=16, help="Locust users for the 1 KB runs (default 16)")
    ap.add_argument("--large-users", type=int, default=4, help="Locust users for the 10 MB run (default 4)")
    ap.add_argument("--clients", default="lean,stock", help="user classes to run (default lean,stock)")
    ap.add_argument("--scenarios", default=",".join(s[0] for s in SCENARIOS))
    ap.add_argument("--out", type=Path, default=None,
                    help="results directory (default results/bench-locust-ceiling-<UTC timestamp>/)")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to CPUs")
    ap.add_argument("--lean-verify", choices=("full", "sampled"), default="sampled",
                    help="verification of the lean client (the stock client always verifies fully)")
    ap.add_argument("--keep-raw", action="store_true", help="keep the raw per-request rows")
    args = ap.parse_args(argv)

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "results" / f"bench-locust-ceiling-{stamp}"
    out.mkdir(parents=True, exist_ok=False)
    clients = [c for c in args.clients.split(",") if c]
    chosen = [s for s in SCENARIOS if s[0] in args.scenarios.split(",")]
    pin = args.pin and (os.cpu_count() or 1) >= 2
    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="miresga-bench-nginx-") as tmp:
        write_catalog(Path(tmp) / "obj", CATALOG)
        with LoopbackNginx(tmp, workers=1) as nginx:
            if pin:
                _pin(nginx.pids(), 1)
            for client in clients:
                for scenario in chosen:
                    users = args.large_users if scenario[1] == "10m" else args.users
                    m = run_one(nginx, out, client, scenario, users, args.seconds, pin, args.keep_raw,
                                args.lean_verify)
                    measurements.append(m)
                    print(f"{client} {scenario[0]}: {m.rps:.0f} req/s, {m.gbit_s:.2f} Gbit/s, "
                          f"worker CPU {m.worker_cpu:.2f}", flush=True)
    print()
    print(table(measurements))
    result = {"benchmark": "locust-ceiling", "args": {k: str(v) for k, v in vars(args).items()},
              "pinned": pin, "provenance": provenance(), "runs": [asdict(m) for m in measurements]}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "table.txt").write_text(table(measurements) + "\n")
    print(f"\nsaved {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
