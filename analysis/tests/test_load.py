"""analysis.load: numbers checked against values computed by hand (hand-made runs) and against an
independent stdlib recomputation (the stored sample run)."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest

from analysis import load
from analysis.tests.rundirs import T0, request_row, workload

KB = 1024
MB = 1024 * KB


def known_cell_rows() -> list[list]:
    """100 ok requests in the window with latencies 100, 200, ..., 10000 us; 2 failures in the
    window; warm-up rows before and rows after the window that must be ignored."""
    rows = [request_row(T0 + 0.03 * i, 100 * (i + 1)) for i in range(100)]  # first one exactly at T0
    rows.append(request_row(T0 + 3.5, 50, ok=False, error="reset"))
    rows.append(request_row(T0 + 3.6, 70, ok=False, error="http-503", status=503, got=0))
    rows += [request_row(T0 - 0.5 + 0.1 * i, 9_000_000) for i in range(5)]  # warm-up
    rows.append(request_row(T0 + 4.0, 9_000_000))  # exactly at measure_end: excluded
    rows.append(request_row(T0 + 4.2, 9_000_000, ok=False, error="timeout"))
    return rows


KNOWN_CPU = {
    "window_s": 4.0,
    "processes": [
        {"host": "fe1", "role": "frontend", "service": "haproxy", "pids": [11], "user_s": 1.0, "system_s": 1.0},
        {"host": "be1", "role": "backend", "service": "nginx", "pids": [21, 22], "user_s": 0.5, "system_s": 0.25},
        {"host": "be1", "role": "backend", "service": "agent", "pids": [23], "user_s": 0.1, "system_s": 0.1},
        {"host": "switch", "role": "switch", "service": "switch", "pids": [31], "user_s": 0.2, "system_s": 0.1},
        {"host": "client1", "role": "client", "service": "locust", "pids": [41, 42], "user_s": 6.0,
         "system_s": 1.2},
    ],
    "bpf": [
        {"host": "fe1", "program": "fe_xdp", "run_time_s": 0.5, "run_count": 1000},
        {"host": "switch", "program": "sw_tc", "run_time_s": 0.2, "run_count": 1000},
        {"host": "be1", "program": "agent_tc", "run_time_s": 0.05, "run_count": 10},
    ],
}


@pytest.fixture
def known_run(run_builder) -> Path:
    return run_builder(cells=[
        {"cell_id": "haproxy--1k--u4--r1", "system": "haproxy", "wl": workload("1k", {"1k": KB}),
         "rows": {"client1-1": known_cell_rows()}, "cpu": KNOWN_CPU},
    ])


def test_window_counts_and_rates(known_run: Path) -> None:
    row = load.cells(known_run).iloc[0]
    assert row["requests"] == 102 and row["ok"] == 100 and row["failed"] == 2
    assert row["err_reset"] == 1 and row["err_http"] == 1 and row["err_timeout"] == 0
    assert row["duration_s"] == pytest.approx(4.0)
    assert row["rps"] == pytest.approx(100 / 4.0)
    assert row["goodput_gbps"] == pytest.approx(100 * 1024 * 8 / 4.0 / 1e9)


def test_percentiles_by_hand(known_run: Path) -> None:
    row = load.cells(known_run).iloc[0]
    # linear interpolation over 100 values v_i = 100 i: p = 100 * (1 + q * 99)
    assert row["p50_us"] == pytest.approx(100 * (1 + 0.50 * 99))  # 5050
    assert row["p90_us"] == pytest.approx(100 * (1 + 0.90 * 99))  # 9010
    assert row["p99_us"] == pytest.approx(9901.0)
    assert row["p999_us"] == pytest.approx(9990.1)


def test_requests_filtered_to_window_with_identity(known_run: Path) -> None:
    df = load.requests(known_run)
    assert len(df) == 102
    assert df["start"].min() == pytest.approx(T0)  # the start boundary is included
    assert df["start"].max() < T0 + 4.0  # the end boundary is excluded
    assert df["latency_us"].max() == 10_000  # no warm-up or tail rows (9 s latency)
    assert set(df["cell_id"]) == {"haproxy--1k--u4--r1"}
    assert set(df["system"]) == {"haproxy"} and set(df["workload"]) == {"1k"}
    assert set(df["users"]) == {4} and set(df["repetition"]) == {1}
    assert len(load.requests(known_run, window=False)) == 109


def test_cpu_by_role_and_flags(known_run: Path) -> None:
    row = load.cells(known_run).iloc[0]
    assert row["lb_cpu_s"] == pytest.approx(2.0 + 0.5)  # haproxy + eBPF on the front-end host
    assert row["switch_cpu_s"] == pytest.approx(0.3 + 0.2)  # host role from the manifest
    assert row["backend_cpu_s"] == pytest.approx(0.75 + 0.2 + 0.05)
    assert row["agent_cpu_s"] == pytest.approx(0.2 + 0.05)
    assert row["generator_cpu_s"] == pytest.approx(7.2)
    assert row["generator_util"] == pytest.approx(7.2 / (4.0 * 2))  # 0.9: two locust processes
    assert row["cpu_s_per_req"] == pytest.approx(2.5 / 100)
    assert row["cpu_s_per_gb"] == pytest.approx(2.5 / (100 * 1024 / 1e9))
    assert bool(row["errors"]) and bool(row["generator_saturated"])
    assert row["flags"] == "errors,generator-saturated"
    # the BPF parts by host role, and per ok request
    assert (row["lb_bpf_s"], row["agent_bpf_s"], row["switch_bpf_s"]) == pytest.approx((0.5, 0.05, 0.2))
    assert row["slowpath_cpu_s"] == pytest.approx(0.3)  # processes on the switch host, without its BPF
    assert row["lb_bpf_s_per_req"] == pytest.approx(0.5 / 100)
    assert row["agent_cpu_s_per_req"] == pytest.approx(0.25 / 100)
    assert row["slowpath_cpu_s_per_req"] == pytest.approx(0.3 / 100)
    assert row["switch_bpf_s_per_req"] == pytest.approx(0.2 / 100)
    assert math.isnan(row["offload_share"]) and row["switch_profile"] == ""  # no switch/ files, no profile
    assert not bool(row["usable"]) and bool(row["emulated"])


def test_bpf_parts_by_role(run_builder) -> None:
    """BPF parts are 0 for a role whose processes ran no programs, NaN for a role absent from the
    cell, and NaN everywhere without BPF rows (statistics not collected)."""
    cpu = {"window_s": 4.0, "processes": [
        {"host": "fe1", "role": "frontend", "service": "haproxy", "pids": [1], "user_s": 1.0, "system_s": 0.0},
        {"host": "be1", "role": "backend", "service": "nginx", "pids": [2], "user_s": 1.0, "system_s": 0.0}],
        "bpf": [{"host": "switch", "role": "switch", "program": "pipe_ingress", "run_time_s": 0.4, "run_count": 9}]}
    rows = [request_row(T0 + 0.1 * i, 100) for i in range(10)]
    run = run_builder(cells=[
        {"cell_id": "a", "system": "haproxy", "wl": workload("1k", {"1k": KB}), "rows": {"c": rows}, "cpu": cpu},
        {"cell_id": "b", "system": "haproxy", "wl": workload("1k", {"1k": KB}), "rows": {"c": rows},
         "cpu": cpu | {"bpf": []}}])
    df = load.cells(run).set_index("cell_id")
    a, b = df.loc["a"], df.loc["b"]
    assert a["lb_bpf_s"] == 0.0 and a["agent_bpf_s"] == 0.0 and a["switch_bpf_s"] == pytest.approx(0.4)
    assert a["lb_cpu_s"] == pytest.approx(1.0) and a["switch_cpu_s"] == pytest.approx(0.4)
    assert math.isnan(a["slowpath_cpu_s"])  # no process on the switch host was measured
    assert math.isnan(b["lb_bpf_s"]) and math.isnan(b["switch_bpf_s"]) and math.isnan(b["switch_cpu_s"])


def test_mix_latency_of_and_by_object(run_builder) -> None:
    rows = [request_row(T0 + 0.01 * i, 100 + i, obj="1k", size=KB) for i in range(50)]
    rows += [request_row(T0 + 1 + 0.01 * i, 5000 + i, obj="1m", size=MB) for i in range(10)]
    run = run_builder(cells=[{"cell_id": "direct--mix--u4--r1", "system": "direct",
                              "wl": workload("mix", {"1k": KB, "1m": MB}, latency_of="1k"),
                              "rows": {"client1-1": rows[::2], "client1-2": rows[1::2]}}])
    row = load.cells(run).iloc[0]
    assert row["latency_object"] == "1k"
    assert row["p50_us"] == pytest.approx(124.5)  # median of 100..149, 1m requests ignored
    assert row["ok"] == 60 and row["goodput_gbps"] == pytest.approx((50 * KB + 10 * MB) * 8 / 4 / 1e9)
    assert math.isnan(row["lb_cpu_s"]) and math.isnan(row["generator_util"])  # no cpu.json
    assert not bool(row["generator_saturated"]) and row["flags"] == ""
    by_obj = load.latency_by_object(run).set_index("object")
    assert by_obj.loc["1m", "requests"] == 10 and by_obj.loc["1m", "p50_us"] == pytest.approx(5004.5)
    assert by_obj.loc["1k", "p99_us"] == pytest.approx(100 + 0.99 * 49)
    assert set(load.requests(run)["source"]) == {"client1-1", "client1-2"}


def test_unknown_format_fails_clearly(run_builder) -> None:
    run = run_builder(fmt=2)
    with pytest.raises(load.RunFormatError, match=r"format 2 is not supported.*format 1"):
        load.cells(run)
    with pytest.raises(load.RunFormatError, match=r"no manifest\.json"):
        load.load_run(run / "cells")


def test_failed_and_missing_cells_are_kept_without_metrics(run_builder) -> None:
    ok_rows = [request_row(T0 + 0.1 * i, 100) for i in range(10)]
    run = run_builder(cells=[
        {"cell_id": "haproxy--1k--u4--r1", "system": "haproxy", "wl": workload("1k", {"1k": KB}),
         "rows": {"client1-1": ok_rows}},
        {"cell_id": "haproxy--1k--u4--r2", "system": "haproxy", "wl": workload("1k", {"1k": KB}),
         "rows": {}, "repetition": 2, "status": "failed", "error": "deploy failed: nginx did not start"},
    ])
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["cells"].append("haproxy--1k--u4--r3")  # listed, but no cell.json was written
    (run / "manifest.json").write_text(json.dumps(manifest))
    df = load.cells(run).set_index("cell_id")
    assert list(df.index) == ["haproxy--1k--u4--r1", "haproxy--1k--u4--r2", "haproxy--1k--u4--r3"]
    failed = df.loc["haproxy--1k--u4--r2"]
    assert failed["status"] == "failed" and failed["flags"] == "failed" and not bool(failed["usable"])
    assert failed["cell_error"] == "deploy failed: nginx did not start"
    assert math.isnan(failed["rps"]) and math.isnan(failed["p99_us"])
    assert failed["system"] == "haproxy" and failed["repetition"] == 2
    missing = df.loc["haproxy--1k--u4--r3"]
    assert missing["status"] == "failed" and "cell.json is missing" in missing["cell_error"]
    assert df.loc["haproxy--1k--u4--r1", "rps"] == pytest.approx(10 / 4)
    assert set(load.requests(run)["cell_id"]) == {"haproxy--1k--u4--r1"}


# ---- the stored sample run, recomputed with the standard library ----

def _raw_rows(cell_dir: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted((cell_dir / "requests").glob("*.csv")):
        with open(path, newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


def _linear_percentile(values: list[int], q: float) -> float:
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def test_sample_matches_independent_recomputation(sample_run: Path) -> None:
    manifest = json.loads((sample_run / "manifest.json").read_text())
    df = load.cells(sample_run).set_index("cell_id")
    assert list(df.index) == manifest["cells"]
    warmup_rows_seen = 0
    for cell_id in manifest["cells"]:
        cdir = sample_run / "cells" / cell_id
        spec = json.loads((cdir / "cell.json").read_text())
        ms, me = spec["measure_start"], spec["measure_end"]
        raw = _raw_rows(cdir)
        warmup_rows_seen += sum(1 for r in raw if float(r["start"]) < ms)
        window = [r for r in raw if ms <= float(r["start"]) < me]
        ok = [r for r in window if r["ok"] == "1"]
        lat_obj = spec["workload"]["latency_of"]
        lat = [int(r["latency_us"]) for r in ok if lat_obj is None or r["object"] == lat_obj]
        row = df.loc[cell_id]
        assert row["requests"] == len(window)
        assert row["ok"] == len(ok)
        assert row["rps"] == pytest.approx(len(ok) / (me - ms))
        assert row["goodput_gbps"] == pytest.approx(sum(int(r["bytes"]) for r in ok) * 8 / (me - ms) / 1e9)
        assert row["p50_us"] == pytest.approx(_linear_percentile(lat, 50))
        assert row["p99_us"] == pytest.approx(_linear_percentile(lat, 99))
        assert bool(row["errors"]) == (len(ok) < len(window))
        cpu = json.loads((cdir / "cpu.json").read_text())
        gen = [p for p in cpu["processes"] if p["role"] == "client"]
        util = sum(p["user_s"] + p["system_s"] for p in gen) / (cpu["window_s"] * sum(len(p["pids"]) for p in gen))
        assert row["generator_util"] == pytest.approx(util)
        assert bool(row["generator_saturated"]) == (util >= 0.9)
        sw = [b["run_time_s"] for b in cpu["bpf"] if manifest["hosts"][b["host"]]["role"] == "switch"]
        if sw:
            assert row["switch_bpf_util"] == pytest.approx(sum(sw) / cpu["window_s"])
        assert bool(row["switch_bound"]) == (sum(sw) / cpu["window_s"] > 0.25)
        fe = [p["user_s"] + p["system_s"] for p in cpu["processes"] if p["role"] == "frontend"]
        fe += [b["run_time_s"] for b in cpu["bpf"] if manifest["hosts"][b["host"]]["role"] == "frontend"]
        if fe:
            assert row["cpu_s_per_req"] == pytest.approx(sum(fe) / len(ok))
        else:
            assert math.isnan(row["lb_cpu_s"])
        assert bool(row["emulated"]) == manifest["emulated"]
    assert warmup_rows_seen > 0, "the sample should hold warm-up rows, or window filtering goes untested"


def test_sample_flags_the_switch_bound_cell(sample_run: Path) -> None:
    """The sample's one cell whose switch eBPF ran 0.62 s in a 2 s window (31% of a core) is
    flagged switch-bound; every other switch cell (well under 1%) is not."""
    df = load.cells(sample_run).set_index("cell_id")
    bound = df[df["switch_bound"].astype(bool)]
    assert list(bound.index) == ["miresga--t2-mix--u8--r1"]
    assert bound.iloc[0]["switch_bpf_util"] == pytest.approx(0.62 / 2.0)
    assert bound.iloc[0]["flags"] == "switch-bound" and bool(bound.iloc[0]["usable"])
    others = df[df["system"].isin(["miresga", "switch-only"]) & ~df["switch_bound"].astype(bool)]
    assert len(others) == 7 and (others["switch_bpf_util"] < 0.01).all()
    assert df[df["system"] == "haproxy"]["switch_bpf_util"].isna().all()   # no switch BPF rows


def test_sample_requests_frame(sample_run: Path) -> None:
    df = load.requests(sample_run)
    cells = load.cells(sample_run)
    assert len(df) == int(cells["requests"].sum())
    for col in ("cell_id", "system", "workload", "connection", "users", "repetition", "latency_us", "object"):
        assert col in df.columns
    assert df["latency_us"].dtype.kind == "i"


def test_sample_with_a_failed_cell(sample_run: Path) -> None:
    victim = json.loads((sample_run / "manifest.json").read_text())["cells"][0]
    cdir = sample_run / "cells" / victim
    spec = json.loads((cdir / "cell.json").read_text())
    spec.update(status="failed", error="locust exited with status 1")
    (cdir / "cell.json").write_text(json.dumps(spec))
    shutil.rmtree(cdir / "requests")
    (cdir / "cpu.json").unlink()
    df = load.cells(sample_run).set_index("cell_id")
    assert df.loc[victim, "flags"] == "failed" and math.isnan(df.loc[victim, "rps"])
    assert victim not in set(load.requests(sample_run)["cell_id"])
