"""Open-loop analysis on a hand-made run whose numbers are known: latency from the intended send time
(HdrHistogram), the generator-behind flag, connect/first byte apart, whole-machine CPU per request,
the headline SLO capacity beside the closed-loop maximum, the budget model, the report's sections and
the latency-vs-load figure; and old raw files (nine columns) still load."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analysis import figures, load, loadcurve, report
from analysis.tests.rundirs import T0, request_row, workload

WL = workload("1k-close", {"1k": 1024})


def _rows(n: int, latency: Callable[[int], int], queue: Callable[[int], int] = lambda i: 0) -> list[list[Any]]:
    """n requests spread over the 4 s window, each with connect 100 µs and first byte 300 µs."""
    return [request_row(T0 + i * 4.0 / n, latency(i), timing=(queue(i), 100 + i % 3, 300)) for i in range(n)]


def _cpu(machine_busy: float, lb: float = 0.0, switch_bpf_ns: int = 0) -> dict[str, Any]:
    procs = [{"host": "client1", "role": "client", "service": "locust", "instance": "locust-worker-1",
              "pids": [1], "user_s": 0.1, "system_s": 0.0}]
    if lb:
        procs.append({"host": "fe1", "role": "frontend", "service": "lb", "pids": [2], "user_s": lb, "system_s": 0.0})
    bpf = [{"host": "switch", "role": "switch", "program": "p", "run_time_ns": switch_bpf_ns, "run_count": 5}] \
        if switch_bpf_ns else []
    return {"window_s": 4.0, "processes": procs, "bpf": bpf,
            "machine": [{"host": "(machine)", "cpus": 2, "window_s": 4.0, "busy_s": machine_busy}]}


def _open(rate: float) -> dict[str, Any]:
    return {"load": {"users": 2, "spawn_rate": 2, "warmup_s": 1, "duration_s": 4, "pace_rps": None, "mode": "open",
                     "rate": rate, "arrival": "poisson", "max_connections": 128}}


# machine busy s, LB process s, switch eBPF ns per system (the same in every cell of the system)
COST = {"direct": (0.4, 0.0, 0), "haproxy": (0.6, 0.1, 0), "miresga": (0.5, 0.025, 20_000_000)}


@pytest.fixture
def run(run_builder: Callable[..., Path]) -> Path:
    cells = []
    for system, base in (("direct", 500), ("haproxy", 900), ("miresga", 700)):
        cpu = _cpu(*COST[system])
        cells.append({"cell_id": f"{system}--1k-close--u4--r1", "system": system, "wl": WL, "cpu": cpu,
                      "rows": {"client1-1": [request_row(T0 + i * 0.02, base + 50) for i in range(200)]}})
        r25 = _rows(100, lambda i, b=base: b)
        if system == "haproxy":      # at 50/s one request in ten takes 8 ms: p99 misses the 5 ms SLO
            r50 = _rows(200, lambda i: 8000 if i % 10 == 0 else 900)
        elif system == "direct":     # at 50/s the generator sent 3 of 200 requests 15 ms late
            r50 = _rows(200, lambda i: 500, queue=lambda i: 15_000 if i in (10, 20, 30) else 0)
        else:
            r50 = _rows(200, lambda i, b=base: b)
        cells.append({"cell_id": f"{system}--1k-close--u2-o25--r1", "system": system, "wl": WL, "cpu": cpu,
                      "rows": {"client1-1": r25}, "extra": _open(25)})
        cells.append({"cell_id": f"{system}--1k-close--u2-o50--r1", "system": system, "wl": WL, "cpu": cpu,
                      "rows": {"client1-1": r50}, "extra": _open(50)})
    d = run_builder("open", cells)
    (d / "suite.yaml").write_text("name: handmade\nslo_p99_ms: 5\nbudget_cores: 2\n")
    return d


def test_open_loop_cells_latency_from_intended_time_and_flags(run: Path) -> None:
    cells = load.cells(run).set_index("cell_id")
    h50 = cells.loc["haproxy--1k-close--u2-o50--r1"]
    assert (h50["mode"], h50["offered_rps"], h50["load"]) == ("open", 50.0, "open 50/s")
    assert h50["p99_us"] == pytest.approx(8000, rel=1e-3)            # HdrHistogram: within 0.1%
    assert h50["rps"] == pytest.approx(50.0) and h50["achieved_share"] == pytest.approx(1.0)
    d50 = cells.loc["direct--1k-close--u2-o50--r1"]
    # 3 of 200 sent 15 ms late: the latency from the intended time counts it, the service time does not
    assert d50["p99_us"] == pytest.approx(15_500, rel=1e-3) and d50["service_p99_us"] == pytest.approx(500)
    assert d50["behind_share"] == pytest.approx(0.015) and d50["generator_behind"]
    assert "generator-behind" in d50["flags"] and d50["usable"]
    assert not cells.loc["direct--1k-close--u2-o25--r1"]["generator_behind"]
    closed = cells.loc["haproxy--1k-close--u4--r1"]
    assert (closed["mode"], closed["load"], closed["p99_us"]) == ("closed", "4", 950.0)
    assert math.isnan(closed["offered_rps"]) and math.isnan(closed["behind_share"])
    assert math.isnan(closed["connect_p50_us"])                      # nine-column raw files: not measured
    o25 = cells.loc["miresga--1k-close--u2-o25--r1"]
    assert (o25["connect_p50_us"], o25["ttfb_p50_us"], o25["ttfb_p99_us"]) == (101.0, 300.0, 300.0)
    # whole machine per request: busy 0.5 s over 100 ok requests, less the generator's 0.1 s
    assert o25["machine_s_per_req"] == pytest.approx(0.5 / 100)
    assert o25["machine_excl_gen_s_per_req"] == pytest.approx(0.4 / 100)
    assert o25["machine_util"] == pytest.approx(0.5 / (4.0 * 2))
    flagged = report.flagged_list(load.cells(run))
    assert "`direct--1k-close--u2-o50--r1`: generator-behind; 1.5% of requests sent more than 10 ms" in flagged


def test_capacity_is_the_highest_rate_meeting_the_slo(run: Path) -> None:
    cap = loadcurve.capacity(load.cells(run), "1k-close", 5.0).set_index("system")
    assert cap.loc["haproxy", "slo_rate"] == 25 and cap.loc["haproxy", "first_miss"] == 50
    assert cap.loc["direct", "slo_rate"] == 25 and cap.loc["direct", "first_miss"] == 50   # behind: no claim
    assert cap.loc["miresga", "slo_rate"] == 50 and math.isnan(cap.loc["miresga", "first_miss"])
    assert cap.loc["haproxy", "closed_max_rps"] == pytest.approx(50.0)
    assert cap.loc["haproxy", "closed_p99_us"] == 950.0
    assert loadcurve.capacity(load.cells(run), "1k-close", None)["slo_rate"].isna().all()


def test_budget_model_from_measured_cost(run: Path) -> None:
    rows, where = loadcurve.budget_model(load.cells(run), "1k-close", 2.0)
    # direct is behind at 50/s, so the common offered load is 25/s (100 requests in the window)
    assert where == "open loop, 25 requests/s offered"
    r = rows.set_index("system")
    assert list(r["measured_at"]) == ["open 25/s", "open 25/s"]
    assert list(r.index) == ["haproxy", "miresga"]
    assert r.loc["haproxy", "process_us"] == pytest.approx(1000.0)
    assert r.loc["haproxy", "machine_delta_us"] == pytest.approx(5000.0 - 3000.0)
    assert r.loc["miresga", "process_us"] == pytest.approx(250.0)
    assert r.loc["miresga", "switch_dataplane_us"] == pytest.approx(200.0)
    assert r.loc["miresga", "machine_delta_us"] == pytest.approx(4000.0 - 200.0 - 3000.0)
    assert r.loc["haproxy", "capacity_process"] == pytest.approx(2e6 / 1000)
    assert r.loc["miresga", "capacity_machine"] == pytest.approx(2e6 / 800)
    assert loadcurve.model_ratio(rows, "capacity_process") == pytest.approx(4.0)
    assert loadcurve.model_ratio(rows, "capacity_machine") == pytest.approx(2.5)


def test_report_sections_and_figure(run: Path) -> None:
    text = report.build_report(run).read_text()
    assert "## Latency against load (open loop)" in text
    assert "| haproxy | 25/s | 0.90 | 50 | 50.0 | 0.95 | 0.50 |" in text            # headline capacity row
    assert "| miresga | 50/s (every rate swept met it) |" in text
    assert "## Connection setup apart" in text and "## Budget model (a model, not a measurement)" in text
    assert "Modelled Miresga / HAProxy: 4.00x by process CPU, 2.50x by machine Δ; the paper reports 3.9x" in text
    assert "**A model, not a measurement.**" in text and "budget of 2 CPU core(s)" in text
    assert "| system | load | n |" in text                                          # open cells: "load" column
    assert (run / "figures" / "latency-vs-load-1k-close.png").is_file()
    assert "(figures/latency-vs-load-1k-close.png)" in text
    assert set(figures.figures(run)) >= {"latency-vs-load-1k-close", "latency-cdf-1k-close"}


def test_wrk_cross_check_beside_locust(run: Path) -> None:
    rec = {"command": ["wrk"], "object": "1k", "connections": 4, "connection": "close", "error": None,
           "latency_us": {"p50": 400.0, "p75": 500.0, "p90": 600.0, "p99": 1200.0}, "requests": 600,
           "seconds": 6.0, "rps": 100.0, "errors": {"connect": 0, "read": 1, "write": 0, "timeout": 0},
           "non_2xx_3xx": 2}
    (run / "cells" / "haproxy--1k-close--u4--r1" / "wrk.json").write_text(json.dumps(rec))
    rows = loadcurve.wrk_rows(load.load_run(run), load.cells(run))
    assert len(rows) == 1 and rows.iloc[0]["wrk_errors"] == 3 and rows.iloc[0]["locust_rps"] == 50.0
    text = report.build_report(run).read_text()
    assert "## Cross-check with wrk" in text
    assert "| `haproxy--1k-close--u4--r1` | 4 | 50 | 100 | 2.00 | 0.950 | 0.400 | 0.950 | 1.200 | 3 |" in text


def test_hdr_percentiles() -> None:
    got = load.hdr_percentiles(list(range(1, 1001)))
    assert got["p50_us"] == 500 and got["p99_us"] == 990 and got["p999_us"] == 999
    assert math.isnan(load.hdr_percentiles([])["p50_us"])


# The budget suite (pin_lb): the LB CPU's busy seconds in each system's cell at 25/s (100 requests)
PINNED = {"direct": 0.02, "haproxy": 0.30, "miresga": 0.12}


@pytest.fixture
def pinned_run(run_builder: Callable[..., Path]) -> Path:
    cells = []
    for system, busy in PINNED.items():
        cpu = _cpu(*COST[system])
        cpu["machine"][0]["per_cpu_busy_s"] = {"0": 0.4, "1": busy}
        plan = {"system": system, "lb_cpus": [1], "other_cpus": [0], "lb_hosts": [] if system == "direct" else ["fe1"]}
        cells.append({"cell_id": f"{system}--1k-close--u2-o25--r1", "system": system, "wl": WL, "cpu": cpu,
                      "rows": {"client1-1": _rows(100, lambda i: 500)}, "extra": _open(25) | {"cpu_plan": plan}})
    d = run_builder("pinned", cells)
    (d / "suite.yaml").write_text("name: budget\npin_lb: true\nbudget_cores: 1\n")
    return d


def test_pinned_cost_is_the_lb_cpus_busy_time_less_the_floor(pinned_run: Path, run: Path) -> None:
    cells = load.cells(pinned_run).set_index("cell_id")
    h = cells.loc["haproxy--1k-close--u2-o25--r1"]
    assert h["pinned_lb_s"] == pytest.approx(0.30) and h["pinned_lb_util"] == pytest.approx(0.30 / 4.0)
    assert h["pinned_lb_s_per_req"] == pytest.approx(0.30 / 100)
    rows, where = loadcurve.budget_model(load.cells(pinned_run), "1k-close", 1.0)
    assert where == "open loop, 25 requests/s offered"
    r = rows.set_index("system")
    # 3000 and 1200 µs per request on the LB CPU, less direct's 200 µs (nothing of the testbed ran there)
    assert r.loc["haproxy", "pinned_us"] == pytest.approx(2800.0)
    assert r.loc["miresga", "pinned_us"] == pytest.approx(1000.0)
    assert r.loc["miresga", "capacity_pinned"] == pytest.approx(1000.0)
    assert loadcurve.model_ratio(rows, "capacity_pinned") == pytest.approx(2.8)
    text = report.build_report(pinned_run).read_text()
    assert "pinned LB CPU µs/req" in text and "2.80x by pinned CPU" in text
    # a run without the plan has no pinned figures and no such column
    assert loadcurve.budget_model(load.cells(run), "1k-close", 2.0)[0]["pinned_us"].isna().all()
    assert "pinned LB CPU" not in report.build_report(run).read_text()
