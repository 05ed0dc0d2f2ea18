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
    ("miresga", "1k-close"): {"rate": 110.0, "median": {"1k": 650.0}},
    ("miresga", "t2-mix"): {"rate": 82.0,
                            "median": {"1k": 400.0, "10k": 450.0, "1m": 1800.0, "10m": 11500.0}},
    ("switch-only", "1k-close"): {"rate": 45.0, "median": {"1k": 2600.0}},
    ("switch-only", "t2-mix"): {"rate": 75.0,
                                "median": {"1k": 420.0, "10k": 480.0, "1m": 1850.0, "10m": 11800.0}},
}
WORKERS = {"1k-close": 1, "t2-mix": 2}
# Generator CPU utilisation per cell (generator CPU s / (window x locust processes)).
GEN_UTIL = {"direct--1k-close--u8--r2": 0.93}
# The emulated switch's BPF run time in the window (s), where it made the cell switch-bound (> 25% of a core).
SWITCH_BPF_S = {"miresga--t2-mix--u8--r1": 0.62}
# Injected failures: cell -> list of (error, status, bytes fraction)
FAILURES = {"haproxy--t2-mix--u8--r2": [("reset", 0, 0.0), ("reset", 0, 0.0), ("short-body", 200, 0.5)]}
SYSTEMS = ("haproxy", "direct", "miresga", "switch-only")
REPETITIONS = (1, 2)
PIPELINE = {"haproxy": "forwarding", "direct": "forwarding", "miresga": "miresga", "switch-only": "switch_only"}
# The profile every cell records (cell.json "switch_profile"), as the harness writes it.
TOFINO1 = {"name": "tofino1", "description": "Tofino-1 like capacities and insertion model (default)",
           "tables": {"route": 4096, "vip": 64, "backends": 1024, "frontend_bucket": 1024, "backend_by_index": 1024,
                      "offload": 143360, "conn_in": 71680, "conn_out": 71680},
           "default_capacity": None, "insertion": {"rate": 100000.0, "burst": 1000, "write_latency_us": 100.0},
           "source": "/work/main/system/switch/profiles/tofino1.yaml"}
# Connections the switch-only slow path relayed because its tables were full, per cell (in the window).
RELAYED = {"switch-only--1k-close--u8--r2": 3}
FRAME_OVERHEAD = 66  # bytes of Ethernet/IP/TCP headers per response segment (synthetic accounting)

README = """# Sample run (SYNTHETIC)

This run directory follows docs/run-directory.md (format 1) but its numbers are **synthetic**: drawn
from fixed, seeded distributions by `analysis/tests/data/make_sample.py`, not measured on any testbed.
It exists so the analysis code, its tests and `analysis/notebooks/report.ipynb` have a small run
directory to read. Do not quote any number from it.

Shape: 4 systems (haproxy, direct, miresga, switch-only) x 2 workloads (1k-close: 1 KB objects, one
request per connection; t2-mix: the paper's T2 mix over keep-alive, latency reported for 1k) x 1 load
level (8 users) x 2 repetitions; 2 s measurement windows after 1 s of warm-up (warm-up and tail rows
are in the raw files and must be filtered out). One cell has injected request failures (flag
`errors`), one has a saturated generator (flag `generator-saturated`) and one a switch whose eBPF
used 31% of a core (flag `switch-bound`), so flags and exclusions show up in the report. Miresga and
switch-only cells carry the switch files (switch/window.json, switch/controlplane-samples.jsonl, the
stats files after the cell) and BPF rows in cpu.json; one switch-only cell relayed connections
because its tables were full.

To be replaced by a trimmed real run. The tests recompute every number from the raw files, so they
do not depend on these values; they do expect: format 1, cells with cpu.json, some warm-up rows
before measure_start, and at least the figures throughput-vs-size, latency-cdf-<workload> and
cpu-cost (a fixed-size workload and a system with front-end CPU rows), switch-occupancy-<workload>.
test_compare.py's sample test expects the systems haproxy, direct, miresga and switch-only.
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


def _counters(pipeline: str, base: int, offloaded: int, c2b_acks: int, total: int) -> dict:
    """A `counters` snapshot pair's end, given the start `base` and the window's deltas."""
    zero = {"hit_packets": base, "hit_bytes": base * 100, "miss_packets": base, "miss_bytes": base * 100}
    tables = {t: dict(zero) for t in ("route", "vip", "backends")}
    tables["backends"]["hit_bytes"] += total
    if pipeline == "miresga":
        tables["offload"] = dict(zero, hit_bytes=base * 100 + offloaded + c2b_acks)
        tables["backend_by_index"] = dict(zero, hit_bytes=base * 100 + c2b_acks - 120, miss_bytes=base * 100 + 120)
    else:
        tables["conn_in"] = dict(zero, hit_bytes=base * 100 + c2b_acks)
        tables["conn_out"] = dict(zero, hit_bytes=base * 100 + offloaded)
    return tables


def write_switch(cdir: Path, rng: np.random.Generator, cell_id: str, system: str, workload: str,
                 t0: float, ms: float, me: float, measured: list[list[object]]) -> None:
    """switch/ of a miresga or switch-only cell: window.json, controlplane-samples.jsonl and the
    stats files after the cell (docs/run-directory.md), with numbers consistent with `measured`."""
    pipeline = PIPELINE[system]
    d = cdir / "switch"
    d.mkdir()
    total = sum(int(r[4]) + FRAME_OVERHEAD * (1 + int(r[4]) // 1448) for r in measured)
    big = [r for r in measured if int(r[3]) >= MB]
    if pipeline == "miresga":
        offloaded = sum(int(r[4]) for r in big)          # 1m/10m responses offloaded, their headers not
        adds = len(big)
        conns = {"offload": 2} if adds else {}    # nothing offloaded: the table never shows up
        conn_tables: tuple[str, ...] = ("offload",)
    else:
        new_conns = sum(int(r[8]) for r in measured)
        offloaded = int(total * 0.96)
        adds = 2 * new_conns
        conns = {"conn_in": 8, "conn_out": 8}
        conn_tables = ("conn_in", "conn_out")
    relayed = RELAYED.get(cell_id, 0)
    c2b_acks = 66 * len(measured)
    base = int(rng.integers(1000, 5000))
    start_tables = _counters(pipeline, base, 0, 0, 0)
    end_tables = _counters(pipeline, base, offloaded, c2b_acks, total)
    tofino = {t: {"capacity": TOFINO1["tables"].get(t, 1024), "entries": 1}
              for t in ("route", "vip", "backends", *conn_tables)}
    cp_base = {"add": int(rng.integers(100, 1000)), "delete": int(rng.integers(100, 1000))}

    def cp(t: float, frac: float) -> dict:
        occ = {"route": 4, "vip": 1, "backends": 2}
        if frac > 0 or pipeline == "switch_only":
            occ.update({k: v + int(rng.integers(0, 4)) for k, v in conns.items()})
        done = round(adds * frac)
        return {"requests": {"add": cp_base["add"] + done, "delete": cp_base["delete"] + done, "stats": 3},
                "acks": {"OK": 2 * cp_base["add"] + round(2 * adds * frac),
                         **({"RESOURCE_EXHAUSTED": round(relayed * frac)} if relayed else {})},
                "inserts_per_s": round(adds / DURATION_S), "deletes_per_s": round(adds / DURATION_S), "queued": 0,
                "occupancy": occ, "connected": True,
                "request_latency_us": {"n": 2000, "p50": 310.0 + 400 * (pipeline == "switch_only"),
                                       "p90": 900.0, "p99": 2400.0, "max": 5000.0}}

    def slowpath(frac: float) -> dict:
        return {"counters": {"installs_requested": 500 + round(adds / 2 * frac),
                             "relayed_table_full": 7 + round(relayed * frac), "relayed_install_failed": 1},
                "install_latency_ms": {"n": 900, "p50": 1.25, "p99": 4.5, "max": 9.0},
                "connections_installed": 8, "time": t0}

    window = {"pipeline": pipeline, "bpf_stats": True, "errors": [],
              "start": {"time": ms + 0.05, "controlplane": cp(ms, 0.0), "p4rt": {"tables": tofino},
                        "counters": {"pipeline": pipeline, "tables": start_tables}, "frontends": {}},
              "end": {"time": me + 0.05, "controlplane": cp(me, 1.0), "p4rt": {"tables": tofino},
                      "counters": {"pipeline": pipeline, "tables": end_tables}, "frontends": {}}}
    if pipeline == "switch_only":
        window["start"]["slowpath"] = slowpath(0.0)
        window["end"]["slowpath"] = slowpath(1.0)
        (d / "slowpath-stats.json").write_text(json.dumps(slowpath(1.0), indent=1) + "\n")
    (d / "window.json").write_text(json.dumps(window, indent=1) + "\n")
    with open(d / "controlplane-samples.jsonl", "w") as f:
        k = 0
        while t0 + 0.2 + k <= me + TAIL_S:
            t = t0 + 0.2 + k
            frac = min(1.0, max(0.0, (t - ms) / (me - ms)))
            f.write(json.dumps({"time": round(t, 6), "stats": cp(t, frac)}, separators=(",", ":")) + "\n")
            k += 1
    (d / "controlplane-stats.json").write_text(json.dumps(cp(me, 1.0), indent=1) + "\n")
    (d / "p4rt-stats.json").write_text(json.dumps({"pipeline": pipeline, "profile": TOFINO1, "tables": tofino},
                                                  indent=1) + "\n")


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
                    "switch_profile": TOFINO1,
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
                bpf: list[dict] = []
                if system == "miresga":
                    fe = len(measured) * rng.uniform(60e-6, 80e-6)
                    procs.append({"host": "fe1", "role": "frontend", "service": "frontend", "instance": "frontend",
                                  "pids": [4111], "user_s": round(fe * 0.8, 6), "system_s": round(fe * 0.2, 6)})
                    for i, be in enumerate(("be1", "be2")):
                        procs.append({"host": be, "role": "backend", "service": "agent", "instance": "agent",
                                      "pids": [4250 + i], "user_s": 0.0, "system_s": 0.0})
                    bpf.append({"host": "fe1", "role": "frontend", "program": "fe_tc", "id": 71,
                                "run_time_s": round(len(measured) * 9e-6, 6), "run_count": 12 * len(measured)})
                    bpf += [{"host": be, "role": "backend", "program": prog, "id": 80 + 2 * i + j,
                             "run_time_s": round(len(measured) * 1.5e-6, 6), "run_count": 6 * len(measured)}
                            for i, be in enumerate(("be1", "be2")) for j, prog in enumerate(("agent_ingress",
                                                                                               "agent_egress"))]
                if system == "switch-only":
                    sp = len(measured) * rng.uniform(150e-6, 200e-6)
                    procs.append({"host": "switch", "role": "switch", "service": "slowpath", "instance": "slowpath",
                                  "pids": [4401], "user_s": round(sp * 0.7, 6), "system_s": round(sp * 0.3, 6)})
                if system in ("miresga", "switch-only"):
                    bpf.append({"host": "switch", "role": "switch", "program": "pipe_ingress", "id": 60,
                                "run_time_s": SWITCH_BPF_S.get(cell_id, round(len(measured) * 4e-6, 6)),
                                "run_count": 20 * len(measured)})
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
                (cdir / "cpu.json").write_text(json.dumps({"window_s": window, "processes": procs, "bpf": bpf},
                                                          indent=2) + "\n")
                if system in ("miresga", "switch-only"):
                    write_switch(cdir, rng, cell_id, system, workload, t0, ms, me, measured)
                (cdir / "logs").mkdir()
                svc = {"haproxy": "fe1-haproxy", "miresga": "fe1-frontend", "switch-only": "switch-slowpath"}.get(
                    system, "be1-nginx")
                (cdir / "logs" / f"{svc}.log").write_text("(synthetic sample: no log lines)\n")
                t = ended + timedelta(seconds=CELL_GAP_S)
    manifest = {
        "format": 1, "run_id": RUN_ID, "suite": SUITE, "emulated": True, "testbed": "local",
        "switch_target": "emulated",
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
        f"name: {SUITE}\ninventory: local\nsystems: [haproxy, direct, miresga, switch-only]\n"
        "workloads: [1k-close, t2-mix]\n"
        f"load: [{{users: {USERS}, spawn_rate: {USERS}, warmup_s: {WARMUP_S}, duration_s: {DURATION_S}}}]\n"
        f"repetitions: {len(REPETITIONS)}\n")
    (OUT / "inventory.yaml").write_text(
        "# synthetic sample: a shortened copy of harness/inventories/local.yaml\n"
        "name: local\nkind: local\nvip: 198.18.0.100\nvip_port: 80\nswitch: {target: emulated}\nhosts:\n"
        "  - {name: switch, role: switch, cores: [0, 1]}\n  - {name: client1, role: client, cores: [0]}\n"
        "  - {name: fe1, role: frontend, cores: [1]}\n  - {name: be1, role: backend, cores: [0]}\n"
        "  - {name: be2, role: backend, cores: [1]}\n")
    (OUT / "README.md").write_text(README)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
