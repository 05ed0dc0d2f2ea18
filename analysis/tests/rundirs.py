"""Builders of small hand-made run directories (docs/run-directory.md v1) whose numbers are known."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

REQUEST_HEADER = ["start", "latency_us", "object", "expected_bytes", "bytes", "status", "ok", "error",
                  "new_connection"]
TIMING_HEADER = ["queue_us", "connect_us", "ttfb_us"]   # written since the open-loop mode
T0 = 1_800_000_000.0  # measure_start of hand-made cells


def workload(name: str, objects: dict[str, int], latency_of: str | None = None,
             connection: str = "close") -> dict[str, Any]:
    return {
        "name": name,
        "objects": [{"name": n, "path": f"/obj/{n}", "size": s, "weight": 1} for n, s in objects.items()],
        "connection": connection, "requests_per_connection": 1, "client": "lean", "verify": "full",
        "latency_of": latency_of,
    }


def request_row(start: float, latency_us: int, obj: str = "1k", size: int = 1024, ok: bool = True,
                error: str = "", status: int | None = None, got: int | None = None,
                timing: tuple[int, int | None, int | None] | None = None) -> list[Any]:
    """A raw row; with `timing` = (queue_us, connect_us, ttfb_us) the newer 12-column form (None: empty)."""
    if status is None:
        status = 200 if ok else 0
    if got is None:
        got = size if ok else 0
    row = [f"{start:.6f}", latency_us, obj, size, got, status, int(ok), error, 1]
    if timing is not None:
        row += ["" if v is None else v for v in timing]
    return row


def make_cell(run_dir: Path, cell_id: str, system: str, wl: dict[str, Any], rows: dict[str, list[list[Any]]],
              users: int = 4, repetition: int = 1, window: tuple[float, float] = (T0, T0 + 4.0),
              cpu: dict[str, Any] | None = None, status: str = "ok", error: str | None = None,
              extra: dict[str, Any] | None = None) -> None:
    """Write cells/<cell_id>/ with cell.json (plus `extra` fields), requests/<file>.csv per `rows` key
    and cpu.json."""
    cdir = run_dir / "cells" / cell_id
    (cdir / "requests").mkdir(parents=True)
    spec = {
        "cell_id": cell_id, "system": system, "workload": wl,
        "load": {"users": users, "spawn_rate": users, "warmup_s": 1, "duration_s": window[1] - window[0],
                 "pace_rps": None},
        "repetition": repetition, "target": {"address": "198.18.0.100", "port": 80},
        "generator": {"hosts": ["client1"], "workers": max(1, len(rows))},
        "measure_start": window[0], "measure_end": window[1],
        "started": "2027-01-15T08:00:00Z", "ended": "2027-01-15T08:00:06Z", "status": status, "error": error,
        **(extra or {}),
    }
    (cdir / "cell.json").write_text(json.dumps(spec))
    for name, file_rows in rows.items():
        with open(cdir / "requests" / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            timed = bool(file_rows) and len(file_rows[0]) > len(REQUEST_HEADER)
            w.writerow(REQUEST_HEADER + (TIMING_HEADER if timed else []))
            w.writerows(file_rows)
    if cpu is not None:
        (cdir / "cpu.json").write_text(json.dumps(cpu))


def make_manifest(run_dir: Path, cell_ids: list[str], emulated: bool = True, fmt: int = 1) -> None:
    manifest = {
        "format": fmt, "run_id": "20270115-080000-handmade", "suite": "handmade", "emulated": emulated,
        "testbed": "local", "switch_target": "bridge" if emulated else "tofino",
        "git": {"commit": "1234567", "dirty": False},
        "packages": {"python": {"locust": "2.47.0"}, "debian": {}},
        "hosts": {"switch": {"role": "switch"}, "client1": {"role": "client"}, "fe1": {"role": "frontend"},
                  "be1": {"role": "backend"}},
        "started": "2027-01-15T08:00:00Z", "ended": "2027-01-15T08:01:00Z", "cells": cell_ids,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))


def counters(**tables: tuple[int, int, int, int]) -> dict[str, Any]:
    """A switch `counters` snapshot: table -> (hit_packets, hit_bytes, miss_packets, miss_bytes)."""
    return {"tables": {t: {"hit_packets": v[0], "hit_bytes": v[1], "miss_packets": v[2], "miss_bytes": v[3]}
                       for t, v in tables.items()}}


def make_switch(run_dir: Path, cell_id: str, pipeline: str, start: dict[str, Any] | None,
                end: dict[str, Any] | None, samples: list[tuple[float, dict[str, Any]]] | None = None,
                files: dict[str, Any] | None = None) -> Path:
    """cells/<cell_id>/switch/: window.json (start/end snapshots, as the harness writes them),
    controlplane-samples.jsonl from (time, stats) pairs, and any stats files after the cell."""
    d = run_dir / "cells" / cell_id / "switch"
    d.mkdir(parents=True, exist_ok=True)
    if start is not None or end is not None:
        window = {"pipeline": pipeline, "bpf_stats": True, "start": start, "end": end, "errors": []}
        (d / "window.json").write_text(json.dumps(window))
    if samples is not None:
        (d / "controlplane-samples.jsonl").write_text(
            "".join(json.dumps({"time": t, "stats": st}) + "\n" for t, st in samples))
    for name, content in (files or {}).items():
        (d / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return d


def profile(name: str, rate: float | None, tables: dict[str, int] | None = None) -> dict[str, Any]:
    """A cell.json `switch_profile` record."""
    return {"name": name, "description": "", "tables": tables or {}, "default_capacity": None,
            "insertion": {"rate": rate, "burst": None if rate is None else 10, "write_latency_us": 0.0},
            "source": f"/x/{name}.yaml"}
