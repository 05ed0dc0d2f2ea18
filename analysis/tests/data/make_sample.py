"""Write the synthetic sample run directory `sample-run/` beside this file (docs/run-directory.md v1).

Synthetic: the numbers are drawn from fixed distributions (seeded), not measured. It exists so the
analysis code, its tests and the notebook have a small run directory that follows the contract; the
lead replaces it with a trimmed real run. Regenerate with:

    .venv/bin/python analysis/tests/data/make_sample.py
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "sample-run"
RUN_START = datetime(2026, 11, 26, 8, 15, 0, tzinfo=UTC)
SUITE = "sample"
RUN_ID = RUN_START.strftime("%Y%m%d-%H%M%S") + "-" + SUITE
USERS = 8
WARMUP_S = 1.0
DURATION_S = 2.0
TAIL_S = 0.3  # requests still started after measure_end, before the users stopped
CELL_GAP_S = 5.0

KB = 1024
MB = 1024 * KB
WORKLOADS = {
    "1k-close": {
        "name": "1k-close",
        "objects": [{"name": "1k", "path": "/obj/1k", "size": KB, "weight": 1}],
        "connection": "close",
        "requests_per_connection": 1,
        "client": "lean",
        "verify": "sampled",
        "latency_of": None,
    },
    "t2-mix": {
        "name": "t2-mix",
        "objects": [
            {"name": "1k", "path": "/obj/1k", "size": KB, "weight": 70},
            {"name": "10k", "path": "/obj/10k", "size": 10 * KB, "weight": 20},
            {"name": "1m", "path": "/obj/1m", "size": MB, "weight": 8},
            {"name": "10m", "path": "/obj/10m", "size": 10 * MB, "weight": 2},
        ],
        "connection": "keepalive",
        "requests_per_connection": 10,
        "client": "lean",
        "verify": "sampled",
        "latency_of": "1k",
    },
}
# requests/s started (all workers together) and median latency (us) per object, per system x workload
PROFILE = {
    ("haproxy", "1k-close"): {"rate": 95.0, "median": {"1k": 850.0}},
    ("direct", "1k-close"): {"rate": 120.0, "median": {"1k": 420.0}},
    ("haproxy", "t2-mix"): {"rate": 70.0,
                            "median": {"1k": 600.0, "10k": 700.0, "1m": 2400.0, "10m": 14000.0}},
    ("direct", "t2-mix"): {"rate": 85.0,
                           "median": {"1k": 280.0, "10k": 350.0, "1m": 1700.0, "10m": 11000.0}},
}
WORKERS = {"1k-close": 1, "t2-mix": 2}
# Generator CPU utilisation per cell (generator CPU s / (window x locust processes)).
GEN_UTIL = {"direct--1k-close--u8--r2": 0.93}
# Injected failures: cell -> list of (error, status, bytes fraction)
FAILURES = {"haproxy--t2-mix--u8--r2": [("reset", 0, 0.0), ("reset", 0, 0.0), ("short-body", 200, 0.5)]}
SYSTEMS = ("haproxy", "direct")
REPETITIONS = (1, 2)

README = """# Sample run (SYNTHETIC)

This run directory follows docs/run-directory.md (format 1) but its numbers are **synthetic**: drawn
from fixed, seeded distributions by `analysis/tests/data/make_sample.py`, not measured on any testbed.
It exists so the analysis code, its tests and `analysis/notebooks/report.ipynb` have a small run
directory to read. Do not quote any number from it.

Shape: 2 systems (haproxy, direct) x 2 workloads (1k-close: 1 KB objects, one request per connection;
t2-mix: the paper's T2 mix over keep-alive, latency reported for 1k) x 1 load level (8 users) x 2
repetitions; 2 s measurement windows after 1 s of warm-up (warm-up and tail rows are in the raw files
and must be filtered out). One cell has injected request failures (flag `errors`) and one has a
saturated generator (flag `generator-saturated`), so flags and exclusions show up in the report.

To be replaced by a trimmed real run. The tests recompute every number from the raw files, so they
do not depend on these values; they do expect: format 1, cells with cpu.json, some warm-up rows
before measure_start, and at least the figures throughput-vs-size, latency-cdf-<workload> and
cpu-cost (a fixed-size workload and a system with front-end CPU rows). test_compare.py's sample test
expects the systems haproxy and direct (pair "haproxy vs direct").
"""


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def cell_rows(rng: np.random.Generator, cell_id: str, system: str, workload: str,
              t0: float, measure_start: float, measure_end: float) -> list[list[list[object]]]:
    """Rows per worker: [start, latency_us, object, expected_bytes, bytes, status, ok, error, new_conn]."""
    prof = PROFILE[(system, workload)]
    spec = WORKLOADS[workload]
    names = [o["name"] for o in spec["objects"]]
    sizes = {o["name"]: o["size"] for o in spec["objects"]}
    weights = np.array([o["weight"] for o in spec["objects"]], dtype=float)
    weights /= weights.sum()
    rate = prof["rate"] * rng.uniform(0.93, 1.07)
    first = t0 + 0.1
    last = measure_end + TAIL_S
    n = int(rate * (last - first))
    starts = np.sort(rng.uniform(first, last, size=n))
    objs = rng.choice(names, size=n, p=weights)
    workers = WORKERS[workload]
    rows: list[list[list[object]]] = [[] for _ in range(workers)]
    in_window = [i for i, s in enumerate(starts) if measure_start <= s < measure_end]
    fail_at = {}
    for k, failure in enumerate(FAILURES.get(cell_id, [])):
        fail_at[in_window[(k + 1) * len(in_window) // 5]] = failure
    per_conn = spec["requests_per_connection"]
    for i, (start, obj) in enumerate(zip(starts, objs, strict=True)):
        median = prof["median"][str(obj)]
        latency = round(rng.lognormal(np.log(median), 0.35))
        size = sizes[str(obj)]
        worker = i % workers
        new_conn = 1 if per_conn == 1 or (len(rows[worker]) % per_conn == 0) else 0
        status, ok, error, got = 200, 1, "", size
        if i in fail_at:
            error, status, frac = fail_at[i]
            ok, got = 0, int(size * frac)
        rows[worker].append([f"{start:.6f}", latency, obj, size, got, status, ok, error, new_conn])
    return rows


def write_locust(dir_: Path, rows: list[list[object]], spec: dict, t_first: float) -> None:
    dir_.mkdir(parents=True, exist_ok=True)
    paths = {o["name"]: o["path"] for o in spec["objects"]}
    pct_cols = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
    pct = [50, 66, 75, 80, 90, 95, 98, 99, 99.9, 99.99, 100]
    span = max(float(r[0]) for r in rows) - t_first

    def stat_row(kind: str, name: str, sel: list[list[object]]) -> list[object]:
        lat_ms = np.array([int(r[1]) / 1000 for r in sel])
        fails = sum(1 for r in sel if int(r[6]) == 0)
        q = [round(v) for v in np.percentile(lat_ms, pct)]
        return [kind, name, len(sel), fails, q[0], round(float(lat_ms.mean()), 3),
                round(float(lat_ms.min()), 3), round(float(lat_ms.max()), 3),
                round(float(np.mean([int(r[4]) for r in sel])), 1),
                round(len(sel) / span, 3), round(fails / span, 3), *q]

    with open(dir_ / "stats.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Type", "Name", "Request Count", "Failure Count", "Median Response Time",
                    "Average Response Time", "Min Response Time", "Max Response Time", "Average Content Size",
                    "Requests/s", "Failures/s", *pct_cols])
        for name, path in paths.items():
            sel = [r for r in rows if r[2] == name]
            if sel:
                w.writerow(stat_row("GET", path, sel))
        w.writerow(stat_row("", "Aggregated", rows))
    with open(dir_ / "stats_history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *pct_cols,
                    "Total Request Count", "Total Failure Count", "Total Median Response Time",
                    "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
                    "Total Average Content Size"])
        for sec in range(int(span) + 1):
            upto = [r for r in rows if float(r[0]) < t_first + sec + 1]
            this = [r for r in upto if float(r[0]) >= t_first + sec]
            if not upto:
                continue
            lat = np.array([int(r[1]) / 1000 for r in upto])
            q = [round(v) for v in np.percentile(lat, pct)]
            w.writerow([int(t_first) + sec + 1, USERS, "", "Aggregated", len(this), 0, *q, len(upto),
                        sum(1 for r in upto if int(r[6]) == 0), q[0], round(float(lat.mean()), 3),
                        round(float(lat.min()), 3), round(float(lat.max()), 3),
                        round(float(np.mean([int(r[4]) for r in upto])), 1)])
    with open(dir_ / "failures.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Method", "Name", "Error", "Occurrences"])
        counts: dict[tuple[str, str], int] = {}
        for r in rows:
            if int(r[6]) == 0:
                key = (paths[str(r[2])], str(r[7]))
                counts[key] = counts.get(key, 0) + 1
        for (path, err), c in sorted(counts.items()):
            w.writerow(["GET", path, err, c])
    with open(dir_ / "exceptions.csv", "w", newline="") as f:
        csv.writer(f).writerow(["Count", "Message", "Traceback", "Nodes"])


def main() -> None:
    rng = np.random.default_rng(20261126)
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "cells").mkdir(parents=True)
    t = RUN_START
    cell_ids: list[str] = []
    for system in SYSTEMS:
        for workload in WORKLOADS:
            for rep in REPETITIONS:
                cell_id = f"{system}--{workload}--u{USERS}--r{rep}"
                cell_ids.append(cell_id)
                cdir = OUT / "cells" / cell_id
                t0 = t.timestamp()
                ms, me = t0 + WARMUP_S, t0 + WARMUP_S + DURATION_S
                ended = t + timedelta(seconds=WARMUP_S + DURATION_S + 1)
                workers = WORKERS[workload]
                cell = {
                    "cell_id": cell_id, "system": system, "workload": WORKLOADS[workload],
                    "load": {"users": USERS, "spawn_rate": USERS, "warmup_s": WARMUP_S,
                             "duration_s": DURATION_S, "pace_rps": None},
                    "repetition": rep,
                    "target": {"address": "198.18.0.100", "port": 80},
                    "generator": {"hosts": ["client1"], "workers": workers},
                    "measure_start": ms, "measure_end": me,
                    "started": iso(t), "ended": iso(ended), "status": "ok", "error": None,
                }
                (cdir / "requests").mkdir(parents=True)
                (cdir / "cell.json").write_text(json.dumps(cell, indent=2) + "\n")
                per_worker = cell_rows(rng, cell_id, system, workload, t0, ms, me)
                for n, rows in enumerate(per_worker, start=1):
                    with open(cdir / "requests" / f"client1-{n}.csv", "w", newline="") as f:
                        w = csv.writer(f)
                        w.writerow(["start", "latency_us", "object", "expected_bytes", "bytes", "status",
                                    "ok", "error", "new_connection"])
                        w.writerows(rows)
                all_rows = sorted((r for rows in per_worker for r in rows), key=lambda r: float(r[0]))
                write_locust(cdir / "locust", all_rows, WORKLOADS[workload], t0)
                (cdir / "locust" / "master.log").write_text(
                    f"[{iso(t)}] client1/INFO/locust.main: Starting Locust 2.47.0 (synthetic sample)\n")
                for n in range(1, workers + 1):
                    (cdir / "locust" / f"worker-client1-{n}.log").write_text(
                        f"[{iso(t)}] client1/INFO/locust.main: Starting Locust 2.47.0 worker {n}"
                        " (synthetic)\n")
                window = DURATION_S
                procs = []
                measured = [r for r in all_rows if ms <= float(r[0]) < me]
                gbytes = sum(int(r[4]) for r in measured) / 1e9
                # CPU seconds: a per-request cost plus a per-GB cost (synthetic, plausible magnitudes)
                if system == "haproxy":
                    lb = len(measured) * rng.uniform(22e-6, 30e-6) + gbytes * rng.uniform(0.8, 1.2)
                    procs.append({"host": "fe1", "role": "frontend", "service": "haproxy", "pids": [4101],
                                  "user_s": round(lb * 0.3, 6), "system_s": round(lb * 0.7, 6)})
                for i, be in enumerate(("be1", "be2")):
                    be_cpu = (len(measured) * rng.uniform(15e-6, 20e-6) + gbytes * rng.uniform(0.4, 0.6)) / 2
                    procs.append({"host": be, "role": "backend", "service": "nginx",
                                  "pids": [4201 + 10 * i, 4202 + 10 * i],
                                  "user_s": round(be_cpu * 0.35, 6), "system_s": round(be_cpu * 0.65, 6)})
                n_proc = 1 + workers  # master + workers
                util = GEN_UTIL.get(cell_id, rng.uniform(0.35, 0.6))
                gen = util * window * n_proc
                procs.append({"host": "client1", "role": "client", "service": "locust",
                              "pids": list(range(4301, 4301 + n_proc)),
                              "user_s": round(gen * 0.8, 4), "system_s": round(gen * 0.2, 4)})
                (cdir / "cpu.json").write_text(json.dumps({"window_s": window, "processes": procs, "bpf": []},
                                                          indent=2) + "\n")
                (cdir / "logs").mkdir()
                svc = "fe1-haproxy" if system == "haproxy" else "be1-nginx"
                (cdir / "logs" / f"{svc}.log").write_text("(synthetic sample: no log lines)\n")
                t = ended + timedelta(seconds=CELL_GAP_S)
    manifest = {
        "format": 1, "run_id": RUN_ID, "suite": SUITE, "emulated": True, "testbed": "local",
        "switch_target": "bridge",
        "git": {"commit": "0000000000000000000000000000000000000000", "dirty": True},
        "packages": {"python": {"locust": "2.47.0", "pandas": "3.1.1"},
                     "debian": {"nginx": "1.22.1-9+deb12u11", "haproxy": "2.6.12-1+deb12u2"}},
        "hosts": {
            "switch": {"kernel": "6.18.0", "nproc": 2, "cores": [0, 1], "role": "switch"},
            "client1": {"kernel": "6.18.0", "nproc": 2, "cores": [0], "role": "client"},
            "fe1": {"kernel": "6.18.0", "nproc": 2, "cores": [1], "role": "frontend"},
            "be1": {"kernel": "6.18.0", "nproc": 2, "cores": [0], "role": "backend"},
            "be2": {"kernel": "6.18.0", "nproc": 2, "cores": [1], "role": "backend"},
        },
        "started": iso(RUN_START), "ended": iso(t - timedelta(seconds=CELL_GAP_S)),
        "cells": cell_ids,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (OUT / "suite.yaml").write_text(
        "# synthetic sample suite (analysis/tests/data/make_sample.py)\n"
        f"name: {SUITE}\ninventory: local\nsystems: [haproxy, direct]\nworkloads: [1k-close, t2-mix]\n"
        f"load: [{{users: {USERS}, spawn_rate: {USERS}, warmup_s: {WARMUP_S}, duration_s: {DURATION_S}}}]\n"
        f"repetitions: {len(REPETITIONS)}\n")
    (OUT / "inventory.yaml").write_text(
        "# synthetic sample: a shortened copy of harness/inventories/local.yaml\n"
        "name: local\nkind: local\nvip: 198.18.0.100\nvip_port: 80\nswitch: {target: bridge}\nhosts:\n"
        "  - {name: switch, role: switch, cores: [0, 1]}\n  - {name: client1, role: client, cores: [0]}\n"
        "  - {name: fe1, role: frontend, cores: [1]}\n  - {name: be1, role: backend, cores: [0]}\n"
        "  - {name: be2, role: backend, cores: [1]}\n")
    (OUT / "README.md").write_text(README)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
