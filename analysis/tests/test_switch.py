"""The switch side of cells (analysis.switchstats, the switch/ files of docs/run-directory.md):
hand-made cells with known numbers, the stored sample recomputed independently, graceful NaN for
runs and systems without the files, the occupancy series, the sweep figure and the report sections."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from analysis import figures, load, report
from analysis.tests.rundirs import T0, counters, make_switch, profile, request_row, workload

KB = 1024
TOFINO = profile("tofino1", 100000.0, {"offload": 143360, "conn_in": 71680, "conn_out": 71680})


def _cp(t_add: int, t_del: int, occ: dict[str, int] | None = None, **extra: object) -> dict:
    return {"requests": {"add": t_add, "delete": t_del, "stats": 9}, "acks": {"OK": t_add + t_del},
            "occupancy": {"route": 5, "vip": 1, **(occ or {})}, "inserts_per_s": 3, "deletes_per_s": 2,
            "queued": 0, **extra}


def _rows(n: int = 40) -> list[list]:
    return [request_row(T0 + 0.1 * i, 500 + i) for i in range(n)]


@pytest.fixture
def switch_run(run_builder) -> Path:
    cells = [
        {"cell_id": "miresga--1k--u4--r1", "system": "miresga", "wl": workload("1k", {"1k": KB}),
         "rows": {"client1-1": _rows()}, "extra": {"switch_profile": TOFINO}},
        {"cell_id": "switch-only--1k--u4--r1", "system": "switch-only", "wl": workload("1k", {"1k": KB}),
         "rows": {"client1-1": _rows(20)}, "extra": {"switch_profile": TOFINO}},
        {"cell_id": "haproxy--1k--u4--r1", "system": "haproxy", "wl": workload("1k", {"1k": KB}),
         "rows": {"client1-1": _rows()}, "extra": {"switch_profile": TOFINO}},
        {"cell_id": "miresga--1k--u4--r2", "system": "miresga", "wl": workload("1k", {"1k": KB}),
         "rows": {"client1-1": _rows()}, "repetition": 2, "extra": {"switch_profile": TOFINO}},
    ]
    run = run_builder(cells=cells)
    # Miresga: back-end -> client 10,000 bytes; offload hits 7,800 of which 300 were client pure ACKs
    # (backend_by_index: 250 hit + 50 miss) -> 7,500 offloaded: 75%.
    make_switch(
        run, "miresga--1k--u4--r1", "miresga",
        start={"time": T0 + 0.1, "controlplane": _cp(10, 5),
               "counters": counters(backends=(10, 1000, 0, 0), offload=(5, 500, 9, 900),
                                    backend_by_index=(1, 100, 0, 0))},
        end={"time": T0 + 4.1,
             "controlplane": _cp(50, 45, request_latency_us={"n": 80, "p50": 1500.0, "p99": 4000.0})
             | {"acks": {"OK": 95, "RESOURCE_EXHAUSTED": 2}},
             "counters": counters(backends=(110, 11000, 0, 0), offload=(80, 8300, 9, 900),
                                  backend_by_index=(6, 350, 1, 50)),
             "p4rt": {"tables": {"offload": {"capacity": 256, "entries": 3}, "route": {"capacity": 9, "entries": 5}}}},
        samples=[(T0 - 1.0, _cp(0, 0, {"offload": 100})),        # warm-up: not in the window
                 (T0 + 0.5, _cp(0, 0, {"offload": 3})), (T0 + 1.5, _cp(0, 0, {"offload": 7})),
                 (T0 + 2.5, _cp(0, 0, {"offload": 5})), (T0 + 3.5, _cp(0, 0)),   # table not listed: 0
                 (T0 + 4.5, _cp(0, 0, {"offload": 200}))])       # tail: not in the window
    # Switch-only: conn_out carried 900 of 1,000 back-end -> client bytes; 5 connections relayed.
    sp0 = {"counters": {"relayed_table_full": 4, "relayed_install_failed": 1},
           "install_latency_ms": {"n": 3, "p50": 1.0, "p99": 2.0}}
    sp1 = {"counters": {"relayed_table_full": 9, "relayed_install_failed": 1},
           "install_latency_ms": {"n": 40, "p50": 2.5, "p99": 8.25}}
    make_switch(
        run, "switch-only--1k--u4--r1", "switch_only",
        start={"time": T0, "controlplane": _cp(0, 0), "slowpath": sp0,
               "counters": counters(backends=(0, 0, 0, 0), conn_out=(0, 0, 0, 0), conn_in=(0, 0, 0, 0))},
        end={"time": T0 + 5.0, "controlplane": _cp(80, 70), "slowpath": sp1,
             "counters": counters(backends=(40, 1000, 0, 0), conn_out=(35, 900, 5, 100), conn_in=(9, 90, 1, 10)),
             "p4rt": {"tables": {"conn_in": {"capacity": 64, "entries": 2},
                                 "conn_out": {"capacity": 64, "entries": 2}}}},
        samples=[(T0 + 1.0, _cp(0, 0, {"conn_in": 6, "conn_out": 6})),
                 (T0 + 2.0, _cp(0, 0, {"conn_in": 11, "conn_out": 10}))])
    # Miresga r2: only the files after the cell (a run before window.json existed), and a stale
    # slow-path stats file left on the switch host by an earlier switch-only deploy.
    make_switch(run, "miresga--1k--u4--r2", "miresga", start=None, end=None,
                files={"controlplane-stats.json": {"request_latency_us": {"n": 5, "p50": 700.0, "p99": 900.0}},
                       "slowpath-stats.json": sp1,
                       "p4rt-stats.json": {"pipeline": "miresga",
                                           "tables": {"offload": {"capacity": 143360, "entries": 0}}}})
    return run


def test_known_switch_metrics(switch_run: Path) -> None:
    df = load.cells(switch_run).set_index("cell_id")
    m = df.loc["miresga--1k--u4--r1"]
    assert m["b2c_bytes"] == 10000 and m["offload_share"] == pytest.approx(0.75)
    assert m["inserts_per_s"] == pytest.approx(40 / 4.0) and m["deletes_per_s"] == pytest.approx(40 / 4.0)
    assert m["insert_rejected"] == 2                       # RESOURCE_EXHAUSTED first seen at the end
    assert (m["cp_latency_p50_ms"], m["cp_latency_p99_ms"]) == (1.5, 4.0)
    assert math.isnan(m["install_latency_p50_ms"]) and math.isnan(m["relayed_table_full"])  # no slow path
    assert m["occupancy_peak"] == 7 and m["table_capacity"] == 256
    assert m["profile_insert_rate"] == 100000.0 and m["switch_profile"] == "tofino1"

    s = df.loc["switch-only--1k--u4--r1"]
    assert s["offload_share"] == pytest.approx(0.9)
    assert s["inserts_per_s"] == pytest.approx(80 / 5.0) and s["deletes_per_s"] == pytest.approx(14.0)
    assert (s["relayed_table_full"], s["relayed_install_failed"]) == (5, 0)
    assert (s["install_latency_p50_ms"], s["install_latency_p99_ms"]) == (2.5, 8.25)
    assert s["occupancy_peak"] == 21 and s["table_capacity"] == 128

    h = df.loc["haproxy--1k--u4--r1"]                      # no switch/ directory at all
    for col in ("offload_share", "inserts_per_s", "cp_latency_p50_ms", "occupancy_peak", "relayed_table_full"):
        assert math.isnan(h[col]), col
    old = df.loc["miresga--1k--u4--r2"]                    # files after the cell only
    assert math.isnan(old["offload_share"]) and math.isnan(old["inserts_per_s"])
    assert math.isnan(old["install_latency_p50_ms"]) and math.isnan(old["relayed_table_full"])  # not its own
    assert (old["cp_latency_p50_ms"], old["cp_latency_p99_ms"]) == pytest.approx((0.7, 0.9))
    assert old["table_capacity"] == 143360


def test_broken_switch_files_give_nan(switch_run: Path) -> None:
    d = switch_run / "cells" / "miresga--1k--u4--r1" / "switch"
    (d / "window.json").write_text("{not json")
    (d / "controlplane-samples.jsonl").write_text('{"time": "x"}\nnot json\n')
    m = load.cells(switch_run).set_index("cell_id").loc["miresga--1k--u4--r1"]
    assert math.isnan(m["offload_share"]) and math.isnan(m["occupancy_peak"]) and math.isnan(m["inserts_per_s"])


def test_switch_series(switch_run: Path) -> None:
    ser = load.switch_series(switch_run)
    assert set(ser["cell_id"]) == {"miresga--1k--u4--r1", "switch-only--1k--u4--r1"}
    off = ser[(ser["cell_id"] == "miresga--1k--u4--r1") & (ser["table"] == "offload")]
    assert list(off["time_s"]) == pytest.approx([-1.0, 0.5, 1.5, 2.5, 3.5, 4.5])
    assert list(off["entries"]) == [100, 3, 7, 5, 0, 200] and off["conn_table"].all()
    assert not ser[ser["table"] == "route"]["conn_table"].any()
    so = ser[ser["cell_id"] == "switch-only--1k--u4--r1"]
    assert set(so[so["conn_table"]]["table"]) == {"conn_in", "conn_out"}
    assert set(so["system"]) == {"switch-only"} and set(so["inserts_per_s"]) == {3}


def test_occupancy_figure_and_report(switch_run: Path) -> None:
    figs = figures.figures(switch_run)
    fig = figs["switch-occupancy-1k"]
    ax = fig.axes[0]
    ys = sorted(max(line.get_ydata()) for line in ax.get_lines() if len(line.get_ydata()))
    assert ys == [21, 200]                                 # switch-only, and miresga with warm-up/tail
    assert "insertion-sweep" not in figs                   # one profile: no sweep
    text = report.build_report(switch_run).read_text()
    section = text[text.index("### Switch: 1k"):text.index("## CPU per request")]
    rows = {r[0]: r for r in ([c.strip() for c in ln.strip("|").split("|")]
                              for ln in section.splitlines()[4:] if ln.startswith("|"))}
    assert set(rows) == {"miresga", "switch-only"}        # haproxy has no switch data
    # miresga: mean over r1 (75%) and r2 (NaN) is r1's
    assert rows["miresga"][3:8] == ["75.0%", "10", "10", "2", "1.10 / 2.45"]
    assert rows["switch-only"][3:] == ["90.0%", "16", "14", "0", "–", "2.50 / 8.25", "21 / 128", "5"]
    assert "insertion-rate sweep" not in text.lower().split("## comparisons")[0]


def test_sample_switch_columns_recomputed(sample_run: Path) -> None:
    """The stored sample, recomputed from its raw switch files with the documented formulas."""
    df = load.cells(sample_run).set_index("cell_id")
    checked = 0
    for cell_id, row in df.iterrows():
        d = sample_run / "cells" / str(cell_id) / "switch"
        if row["system"] in ("haproxy", "direct"):
            assert not d.exists() and math.isnan(row["offload_share"]) and math.isnan(row["inserts_per_s"])
            continue
        w = json.loads((d / "window.json").read_text())
        t0, t1 = (w[k]["counters"]["tables"] for k in ("start", "end"))

        def delta(table: str, field: str, t0=t0, t1=t1) -> int:
            return t1[table][field] - t0[table][field]
        total = delta("backends", "hit_bytes")
        if w["pipeline"] == "miresga":
            off = delta("offload", "hit_bytes") - delta("backend_by_index", "hit_bytes") - \
                delta("backend_by_index", "miss_bytes")
        else:
            off = delta("conn_out", "hit_bytes")
        assert row["offload_share"] == pytest.approx(off / total)
        cp0, cp1 = w["start"]["controlplane"], w["end"]["controlplane"]
        dt = w["end"]["time"] - w["start"]["time"]
        assert row["inserts_per_s"] == pytest.approx((cp1["requests"]["add"] - cp0["requests"]["add"]) / dt)
        spec = json.loads((d.parent / "cell.json").read_text())
        samples = [json.loads(ln) for ln in (d / "controlplane-samples.jsonl").read_text().splitlines()]
        tables = ("offload",) if w["pipeline"] == "miresga" else ("conn_in", "conn_out")
        inside = [s for s in samples if spec["measure_start"] <= s["time"] <= spec["measure_end"]]
        assert row["occupancy_peak"] == max(sum(s["stats"]["occupancy"].get(t, 0) for t in tables) for s in inside)
        if w["pipeline"] == "switch_only":
            sp0, sp1 = w["start"]["slowpath"]["counters"], w["end"]["slowpath"]["counters"]
            assert row["relayed_table_full"] == sp1["relayed_table_full"] - sp0["relayed_table_full"]
        checked += 1
    assert checked == 8
    assert df.loc["switch-only--1k-close--u8--r2", "relayed_table_full"] == 3   # the injected relays
    assert df.loc["miresga--1k-close--u8--r1", "offload_share"] == 0.0          # 1 KB: nothing offloaded


def test_sample_without_switch_files(sample_run: Path) -> None:
    """An older run: no switch/ directories and no BPF rows -> NaN columns, no switch figures."""
    for d in (sample_run / "cells").glob("*/switch"):
        shutil.rmtree(d)
    for p in (sample_run / "cells").glob("*/cpu.json"):
        cpu = json.loads(p.read_text())
        cpu["bpf"] = []
        p.write_text(json.dumps(cpu))
    df = load.cells(sample_run)
    assert df["offload_share"].isna().all() and df["lb_bpf_s"].isna().all()
    assert not any(n.startswith("switch-occupancy") for n in figures.figures(sample_run))
    text = report.build_report(sample_run).read_text()
    assert "No switch counters in this run" in text


# ---- the insertion-rate sweep ----

def _sweep_run(run_builder) -> Path:
    """miresga flat at 100 req/s; switch-only at rate/20 req/s (capped at 90), unlimited at 95;
    a small-tables profile for switch-only at 1e5 with 30 req/s. Two repetitions (+-1 req/s)."""
    full = {"offload": 143360, "conn_in": 71680, "conn_out": 71680}
    profiles = [("rate-1k", 1000.0, full), ("rate-100k", 100000.0, full), ("unlimited", None, {}),
                ("small-tables", 100000.0, {"offload": 256, "conn_in": 256, "conn_out": 256})]
    cells, caps = [], {}
    for system in ("miresga", "switch-only"):
        for pname, rate, tables in profiles:
            if system == "miresga":
                rps = 100
            elif pname == "small-tables":
                rps = 30
            else:
                rps = 95 if rate is None else min(90, int(rate / 20))
            for rep, d in ((1, -1), (2, 1)):
                n = (rps + d) * 4
                rows = [request_row(T0 + 3.99 * i / n, 1000 * (1 + (system == "switch-only")) + i % 7)
                        for i in range(n)]
                cid = f"{system}--1k--u4--{pname}--r{rep}"
                cells.append({"cell_id": cid, "system": system, "wl": workload("1k", {"1k": KB}),
                              "rows": {"client1-1": rows}, "repetition": rep,
                              "extra": {"switch_profile": profile(pname, rate, tables)}})
                conn = ("offload",) if system == "miresga" else ("conn_in", "conn_out")
                caps[cid] = {t: {"capacity": tables.get(t, 143360 if t == "offload" else 71680)} for t in conn}
    run = run_builder(cells=cells)
    for cid, tables in caps.items():
        make_switch(run, cid, "miresga" if cid.startswith("miresga") else "switch_only", None, None,
                    files={"p4rt-stats.json": {"tables": tables}})
    return run


def test_sweep_figure_values(run_builder) -> None:
    run = _sweep_run(run_builder)
    cells = load.cells(run)
    assert set(cells["switch_profile"]) == {"rate-1k", "rate-100k", "unlimited", "small-tables"}
    assert cells.loc[cells["switch_profile"] == "unlimited", "profile_insert_rate"].tolist() == [math.inf] * 4
    fig = figures.figures(run)["insertion-sweep"]
    ax_rps, ax_p99 = fig.axes[0], fig.axes[1]
    assert ax_rps.get_xscale() == "log"
    assert [t.get_text() for t in ax_rps.get_xticklabels()] == ["1000", "100000", "unlimited"]
    lines = {}
    for line in ax_rps.get_lines():
        xs, ys = list(line.get_xdata()), list(line.get_ydata())
        if xs:
            lines.setdefault(tuple(xs), []).append(ys)
    # full tables: miresga flat, switch-only limited by the insertion rate; unlimited drawn at 10 x 1e5
    assert sorted(lines[(1000.0, 100000.0, 1000000.0)]) == [[50.0, 90.0, 95.0], [100.0, 100.0, 100.0]]
    small = [ys for xs, yss in lines.items() if xs == (100000.0,) for ys in yss]
    assert [30.0] in small                                 # switch-only with small tables: its own marker
    legend = [t.get_text() for t in ax_p99.get_legend().get_texts()]
    assert {"tables", "full tables", "small tables", "miresga", "switch-only"} <= set(legend)
    p99s = [max(line.get_ydata()) for line in ax_p99.get_lines() if len(line.get_ydata())]
    assert max(p99s) == pytest.approx((2000 + 6) / 1000, abs=0.01)  # switch-only's p99 in ms


def test_sweep_report_and_comparisons(run_builder) -> None:
    run = _sweep_run(run_builder)
    text = report.build_report(run).read_text()
    sweep = text[text.index("## Insertion-rate sweep"):text.index("## Comparisons")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in sweep.splitlines() if ln.startswith("| 1k")]
    got = [(r[1], r[2], r[3], r[4], r[6]) for r in rows]
    assert got == [("miresga", "rate-1k", "1,000", "143,360", "100.0"),
                   ("miresga", "rate-100k", "100,000", "143,360", "100.0"),
                   ("miresga", "small-tables", "100,000", "256", "100.0"),
                   ("miresga", "unlimited", "unlimited", "143,360", "100.0"),
                   ("switch-only", "rate-1k", "1,000", "143,360", "50.0"),
                   ("switch-only", "rate-100k", "100,000", "143,360", "90.0"),
                   ("switch-only", "small-tables", "100,000", "512", "30.0"),
                   ("switch-only", "unlimited", "unlimited", "143,360", "95.0")]
    comp = text[text.index("## Comparisons"):]
    assert "| miresga vs switch-only | 1k @ rate-1k | 4 | small | throughput | 2.00 |" in comp
    head = text[text.index("### 1k "):text.index("## Switch")]
    assert "| system | switch profile | users | n |" in head
