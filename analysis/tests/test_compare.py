"""analysis.compare: ratios of means, intervals computed by hand, claims, exclusions."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis import compare, load

KB, MB = 1024, 1024 * 1024


def cell(system: str, workload: str, rep: int, rps: float, p50: float, p99: float, size: tuple[int, int],
         usable: bool = True, users: int = 8) -> dict:
    return {"cell_id": f"{system}--{workload}--u{users}--r{rep}", "system": system, "workload": workload,
            "users": users, "repetition": rep, "rps": rps, "p50_us": p50, "p99_us": p99,
            "min_object_bytes": size[0], "max_object_bytes": size[1], "usable": usable}


def test_ratio_of_means_interval_by_hand() -> None:
    r = compare.ratio_of_means([10.0, 12.0], [5.0, 6.0])
    assert r.ratio == pytest.approx(2.0)
    # a = s_x^2 / (n m_x^2) = 2 / (2 * 121); b = 0.5 / (2 * 30.25); equal, so Welch df = 2, t = 4.303
    a = 2 / (2 * 121)
    half = 4.303 * math.sqrt(2 * a)
    assert r.low == pytest.approx(2.0 * math.exp(-half))
    assert r.high == pytest.approx(2.0 * math.exp(half))
    assert r.low == pytest.approx(1.1502, abs=1e-3) and r.high == pytest.approx(3.4776, abs=1e-3)
    assert r.note == ""


def test_one_repetition_gives_nan_interval_and_says_so() -> None:
    r = compare.ratio_of_means([10.0], [5.0, 6.0])
    assert r.ratio == pytest.approx(10 / 5.5)
    assert math.isnan(r.low) and math.isnan(r.high)
    assert "1 repetition" in r.note
    assert math.isnan(compare.ratio_of_means([], [1.0]).ratio)


def test_t_quantiles() -> None:
    assert compare.t975(1) == 12.706 and compare.t975(2.9) == 4.303  # rounded down
    assert compare.t975(35) == 2.042 and compare.t975(1000) == 1.960
    assert math.isnan(compare.t975(0.5))


def test_size_classes() -> None:
    assert compare.size_class(KB, 64 * KB) == "small"
    assert compare.size_class(MB, 10 * MB) == "large"
    assert compare.size_class(KB, 10 * MB) == "mix"
    assert compare.size_class(512 * KB, 512 * KB) == "mix"


def test_compare_against_claims_and_exclusions() -> None:
    small, large = (KB, KB), (10 * MB, 10 * MB)
    cells = pd.DataFrame([
        cell("miresga", "1k", 1, 400.0, 100.0, 300.0, small),
        cell("miresga", "1k", 2, 420.0, 110.0, 310.0, small),
        cell("miresga", "1k", 3, 10.0, 9000.0, 9000.0, small, usable=False),  # errors: not averaged in
        cell("haproxy", "1k", 1, 100.0, 250.0, 700.0, small),
        cell("haproxy", "1k", 2, 110.0, 260.0, 720.0, small),
        cell("switch-only", "1k", 1, 80.0, 500.0, 1500.0, small),
        cell("switch-only", "1k", 2, 84.0, 520.0, 1600.0, small),
        cell("miresga", "10m", 1, 50.0, 9000.0, 12000.0, large),
        cell("switch-only", "10m", 1, 49.0, 9100.0, 12500.0, large),
    ])
    assert compare.default_pairs(list(cells["system"])) == [("miresga", "haproxy"), ("miresga", "switch-only")]
    out = compare.compare_all(cells).set_index(["baseline", "workload", "metric"])
    thr = out.loc[("haproxy", "1k", "throughput")]
    assert thr["ratio"] == pytest.approx(410 / 105)
    assert thr["n_system"] == 2 and thr["excluded"] == ["miresga--1k--u8--r3"]
    assert thr["claim"] == 3.9 and thr["ci_low"] < thr["ratio"] < thr["ci_high"]
    assert out.loc[("haproxy", "1k", "latency_p99"), "ratio"] == pytest.approx(305 / 710)
    assert out.loc[("haproxy", "1k", "latency_p50"), "claim"] == 0.4
    sw_small = out.loc[("switch-only", "1k", "throughput")]
    assert sw_small["claim"] == 5.0 and sw_small["size_class"] == "small"
    assert out.loc[("switch-only", "1k", "latency_p50"), "claim"] == 0.2
    sw_large = out.loc[("switch-only", "10m", "throughput")]
    assert sw_large["claim"] == 1.0 and sw_large["ratio"] == pytest.approx(50 / 49)
    assert math.isnan(sw_large["ci_low"]) and "1 repetition" in sw_large["note"]
    assert math.isnan(out.loc[("switch-only", "10m", "latency_p99"), "claim"])  # no claim for large latency
    assert ("haproxy", "10m", "throughput") not in out.index  # no haproxy cells for 10m


def test_sample_pairs(sample_run) -> None:
    cells = load.cells(sample_run)
    out = compare.compare_all(cells)
    pairs = {("miresga", "haproxy"), ("miresga", "switch-only"), ("miresga", "direct"), ("haproxy", "direct"),
             ("switch-only", "direct")}
    assert set(zip(out["system"], out["baseline"], strict=True)) == pairs
    assert len(out) == 3 * cells["workload"].nunique() * len(pairs)
    assert set(out["switch_profile"]) == {""}  # one profile (tofino1) for every cell: no sweep
    for _, r in out[out["metric"] == "throughput"].iterrows():
        sel = cells[(cells["workload"] == r["workload"]) & cells["usable"]]
        expect = (sel[sel["system"] == r["system"]]["rps"].mean() / sel[sel["system"] == r["baseline"]]["rps"].mean())
        assert r["ratio"] == pytest.approx(expect)
        both = cells[(cells["workload"] == r["workload"]) & cells["system"].isin([r["system"], r["baseline"]])]
        assert set(r["excluded"]) == set(both[~both["usable"]]["cell_id"])
    # Miresga against switch-only beside the paper: 5.0x / 0.2x on the 1 KB workload, no claim on the mix
    sw = out[(out["baseline"] == "switch-only")].set_index(["workload", "metric"])
    assert sw.loc[("1k-close", "throughput"), "claim"] == 5.0
    assert sw.loc[("1k-close", "latency_p99"), "claim"] == 0.2
    assert sw.loc[("t2-mix", "throughput"), "size_class"] == "mix"
    assert math.isnan(sw.loc[("t2-mix", "throughput"), "claim"])


def test_sweep_compares_under_the_same_profile() -> None:
    small = (KB, KB)
    rows = []
    for profile, m_rps, s_rps in (("rate-1k", 400.0, 50.0), ("rate-1m", 410.0, 380.0)):
        for rep in (1, 2):
            for system, rps in (("miresga", m_rps + rep), ("switch-only", s_rps + rep)):
                rows.append(cell(system, "1k", rep, rps, 100.0, 300.0, small) | {"switch_profile": profile})
    cells = pd.DataFrame(rows)
    assert compare.profile_sweep(cells) and not compare.profile_sweep(cells.drop(columns="switch_profile"))
    out = compare.compare_all(cells).set_index(["switch_profile", "metric"])
    assert out.loc[("rate-1k", "throughput"), "ratio"] == pytest.approx(401.5 / 51.5)
    assert out.loc[("rate-1m", "throughput"), "ratio"] == pytest.approx(411.5 / 381.5)
    assert out.loc[("rate-1k", "throughput"), "claim"] == 5.0
