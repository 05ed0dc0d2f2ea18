"""Latency against load, setup time apart, whole-machine cost and the CPU budget model.

Tables the report (analysis/report.py) shows for runs with open-loop cells (the `sweep` suite), and
for every run the connection-setup and budget-model tables:

- `sweep_rows`: per system and offered rate, the achieved rate and the latency from the intended send
  time (p50/p99/p99.9, HdrHistogram), beside the service latency and connect time;
- `capacity`: per system, the headline capacity = the highest offered rate whose p99 stays under the
  suite's SLO (`slo_p99_ms`), beside the closed-loop maximum (the most requests/s of any closed cell);
- `setup_rows`: connect time, time to first byte and total per system and load level;
- `budget_model`: a MODEL, not a measurement: what each load balancer would serve on a fixed CPU
  budget (`budget_cores`) from its measured µs per request (see `BUDGET_ASSUMPTIONS`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

PAPER_RATIO = 3.9            # Miresga / software LB throughput, WWW'25
LB_SYSTEMS = ("haproxy", "miresga", "switch-only")
REFERENCE = "direct"         # clients straight to nginx: no load balancer


@dataclass(frozen=True)
class Settings:
    slo_p99_ms: float | None
    budget_cores: float


def settings(run_dir: Path) -> Settings:
    """The suite's `slo_p99_ms` and `budget_cores`, from the run's suite.yaml (defaults: none, 1)."""
    try:
        raw = yaml.safe_load((Path(run_dir) / "suite.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        raw = {}
    slo = raw.get("slo_p99_ms") if isinstance(raw, dict) else None
    budget = raw.get("budget_cores", 1) if isinstance(raw, dict) else 1
    ok = isinstance(slo, int | float) and not isinstance(slo, bool) and slo > 0
    okb = isinstance(budget, int | float) and not isinstance(budget, bool) and budget > 0
    return Settings(float(slo) if ok else None, float(budget) if okb else 1.0)


def _means(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Means of the usable cells per key (NaN rows for keys with none), with n = usable/all."""
    out = []
    for key, group in df.groupby(keys, sort=False, dropna=False):
        use = group[group["usable"].astype(bool)]
        mean = use.mean(numeric_only=True) if len(use) else pd.Series(dtype=float)
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row.update({c: float(mean.get(c, math.nan)) for c in df.select_dtypes("number").columns if c not in keys})
        row["n"] = f"{len(use)}/{len(group)}"
        row["behind"] = bool(group["generator_behind"].astype(bool).any()) if "generator_behind" in group else False
        row["flags"] = "; ".join(f"r{r['repetition']}: {r['flags']}" for _, r in group.iterrows() if r["flags"])
        out.append(row)
    return pd.DataFrame(out)


def open_cells(cells: pd.DataFrame) -> pd.DataFrame:
    return cells[cells["mode"] == "open"] if "mode" in cells.columns else cells.iloc[0:0]


def sweep_rows(cells: pd.DataFrame, workload: str) -> pd.DataFrame:
    """Means per system and offered rate of one workload's open-loop cells, by rate."""
    df = open_cells(cells)
    df = df[df["workload"] == workload]
    if df.empty:
        return pd.DataFrame()
    m = _means(df, ["system", "offered_rps"])
    order = {s: i for i, s in enumerate(dict.fromkeys(df["system"]))}
    return m.sort_values(["system", "offered_rps"], key=lambda c: c.map(order) if c.name == "system" else c,
                         ignore_index=True)


def capacity(cells: pd.DataFrame, workload: str, slo_p99_ms: float | None) -> pd.DataFrame:
    """Per system: closed-loop maximum (most requests/s of a usable closed cell, and its p99), the
    highest offered rate meeting the SLO (usable, the generator on schedule, p99 from the intended
    send time <= SLO), the lowest rate missing it, and whether the sweep ever missed it."""
    df = cells[cells["workload"] == workload]
    rows = []
    sweep = sweep_rows(cells, workload)
    for system in dict.fromkeys(df["system"]):
        closed = df[(df["system"] == system) & (df["mode"] != "open") & df["usable"].astype(bool)]
        best = closed.loc[closed["rps"].idxmax()] if len(closed) else None
        row: dict[str, Any] = {"system": system,
                               "closed_max_rps": float(best["rps"]) if best is not None else math.nan,
                               "closed_p99_us": float(best["p99_us"]) if best is not None else math.nan,
                               "closed_users": best["users"] if best is not None else None,
                               "slo_rate": math.nan, "slo_rps": math.nan, "slo_p99_us": math.nan,
                               "first_miss": math.nan, "rates": 0}
        sw = sweep[sweep["system"] == system] if len(sweep) else sweep
        row["rates"] = len(sw)
        if slo_p99_ms is not None and len(sw):
            limit = slo_p99_ms * 1000
            meets = [(not r["behind"]) and not math.isnan(r["p99_us"]) and r["p99_us"] <= limit
                     for _, r in sw.iterrows()]
            # the highest rate meeting the SLO with every lower rate meeting it too
            for ok, (_, r) in zip(meets, sw.iterrows(), strict=True):
                if not ok:
                    row["first_miss"] = float(r["offered_rps"])
                    break
                row.update(slo_rate=float(r["offered_rps"]), slo_rps=float(r["rps"]), slo_p99_us=float(r["p99_us"]))
        rows.append(row)
    return pd.DataFrame(rows)


def setup_rows(cells: pd.DataFrame, workload: str) -> pd.DataFrame:
    """Connect time (new connections), time to first byte and total, per system and load level."""
    df = cells[cells["workload"] == workload]
    if df.empty or "connect_p50_us" not in df or df["connect_p50_us"].isna().all():
        return pd.DataFrame()
    return _means(df, ["system", "load"])


# ---------------------------------------------------------------------------------------------
# The budget model

BUDGET_ASSUMPTIONS = [
    "This is a **model**, not a measurement: capacity = budget (CPU-µs per second) / the load "
    "balancer's measured CPU µs per request.",
    "Cost per request is taken as constant (no batching gains or contention losses at higher load) "
    "and measured where every system carried the same offered load (the highest open-loop rate at "
    "which all systems' cells were usable; else the closed-loop cells).",
    "*process*: the load balancer's own processes and their eBPF (HAProxy; Miresga's front-end; "
    "switch-only has no front-end, its slow path runs on the switch CPU and is shown apart).",
    "*machine Δ*: whole-machine busy time per request (/proc/stat, softirq included) less the load "
    "generator's processes, minus the same for `direct` (clients straight to nginx) and minus the "
    "emulated switch's data-plane eBPF (it stands for switch hardware, shown apart). It charges the "
    "load balancer with the kernel work its traffic causes anywhere (veth softirq is billed to "
    "whichever task runs); it includes Miresga's back-end agents, which the paper runs on the back-ends.",
    "The switch is assumed to forward at line rate (a Tofino): its emulated cost is not part of any "
    "budget; on this machine it is real CPU, so measured throughput is lower than the model.",
    "*pinned* (suites with `pin_lb: true`, e.g. `budget`): measured, not inferred: the load balancer's "
    "processes ran alone on one CPU, every other task of the machine on the others, and receive packet "
    "steering put the kernel work of frames received by its hosts on its CPU (harness/cpuplan.py); its "
    "CPU's busy time per request (/proc/stat, softirq included), less the same CPU's time per request "
    "in the `direct` cell at the same load (the floor: nothing of the testbed ran there), is the cost. "
    "Sends still do the start of the receiver's work (veth transmit, GRO) on the sender's CPU.",
    "/proc/stat counts every process of the machine: the machine Δ is only sound when nothing but the "
    "testbed runs there. Work outside the testbed (other jobs on a shared machine) inflates `direct`'s "
    "and the systems' figures unevenly; a machine Δ that comes out negative is shown as such and gives "
    "no modelled capacity.",
]


def _measured_at(cells: pd.DataFrame, workload: str, systems: list[str]) -> tuple[dict[str, pd.DataFrame], str]:
    """The cells each system's cost is taken from: the highest offered rate at which the reference
    and the load balancers of the paper's ratio (direct, haproxy, miresga: those present) all have a
    usable, on-schedule cell; a system without a usable cell there (e.g. saturated earlier) at its own
    highest usable on-schedule rate below it; else the closed-loop cells. Returns (system -> cells,
    the common load's description)."""
    df = cells[(cells["workload"] == workload) & cells["system"].isin(systems)]
    op = open_cells(df)
    op = op[op["usable"].astype(bool) & ~op["generator_behind"].astype(bool)]
    core = [s for s in (REFERENCE, "haproxy", "miresga") if s in systems] or systems
    rates = [r for r, g in op.groupby("offered_rps") if set(g["system"]) >= set(core)]
    closed = df[(df["mode"] != "open") & df["usable"].astype(bool)]
    out: dict[str, pd.DataFrame] = {}
    if not rates:
        return {s: closed[closed["system"] == s] for s in systems}, "closed loop (no offered rate common to all)"
    common = max(rates)
    for s in systems:
        own = op[(op["system"] == s) & (op["offered_rps"] <= common)]
        if len(own):
            out[s] = own[own["offered_rps"] == own["offered_rps"].max()]
        else:
            out[s] = closed[closed["system"] == s]
    return out, f"open loop, {common:g} requests/s offered"


def _where(sel: pd.DataFrame) -> str:
    if sel.empty:
        return "–"
    if (sel["mode"] == "open").all():
        return f"open {sel['offered_rps'].iloc[0]:g}/s"
    return f"closed, {sel['users'].iloc[0]:g} users"


def budget_model(cells: pd.DataFrame, workload: str, budget_cores: float) -> tuple[pd.DataFrame, str]:
    """One row per load balancer: µs per request (process, machine Δ, switch parts apart), where it was
    measured, and the modelled capacity on `budget_cores` cores by each measure (NaN where the cost is
    not positive: on a machine shared with other work the machine Δ can be, see the report). Returns
    (rows, the common load)."""
    systems = list(dict.fromkeys(cells.loc[cells["workload"] == workload, "system"]))
    lbs = [s for s in systems if s in LB_SYSTEMS]
    if not lbs:
        return pd.DataFrame(), ""
    chosen, where = _measured_at(cells, workload, systems)
    means = {s: sel.mean(numeric_only=True) for s, sel in chosen.items() if len(sel)}

    def us(system: str, col: str) -> float:
        m = means.get(system)
        return float(m.get(col, math.nan)) * 1e6 if m is not None else math.nan

    ref_machine = us(REFERENCE, "machine_excl_gen_s_per_req") - _nan0(us(REFERENCE, "switch_bpf_s_per_req"))
    floor = _nan0(us(REFERENCE, "pinned_lb_s_per_req"))
    budget_us = budget_cores * 1e6
    rows = []
    for s in lbs:
        process = us(s, "cpu_s_per_req")
        if s == "switch-only" and math.isnan(process):
            process = 0.0  # no front-end: its load-balancing work is the switch CPU's (shown apart)
        machine = us(s, "machine_excl_gen_s_per_req") - _nan0(us(s, "switch_bpf_s_per_req")) - ref_machine
        pinned = us(s, "pinned_lb_s_per_req") - floor
        rows.append({
            "system": s, "measured_at": _where(chosen.get(s, pd.DataFrame())), "process_us": process,
            "machine_delta_us": machine,
            "switch_dataplane_us": us(s, "switch_bpf_s_per_req"), "switch_cpu_us": us(s, "slowpath_cpu_s_per_req"),
            "measured_rps": float(means[s]["rps"]) if s in means else math.nan,
            "machine_util": float(means[s].get("machine_util", math.nan)) if s in means else math.nan,
            "capacity_process": budget_us / process if process and process > 0 else math.nan,
            "capacity_machine": budget_us / machine if not math.isnan(machine) and machine > 0 else math.nan,
            "pinned_us": pinned,
            "pinned_util": float(means[s].get("pinned_lb_util", math.nan)) if s in means else math.nan,
            "capacity_pinned": budget_us / pinned if not math.isnan(pinned) and pinned > 0 else math.nan,
        })
    return pd.DataFrame(rows), where


def _nan0(v: float) -> float:
    return 0.0 if math.isnan(v) else v


def model_ratio(rows: pd.DataFrame, column: str, system: str = "miresga", baseline: str = "haproxy") -> float:
    """Modelled capacity of `system` over `baseline` by one measure (NaN when either is missing)."""
    if rows.empty:
        return math.nan
    by = rows.set_index("system")[column]
    if system not in by.index or baseline not in by.index:
        return math.nan
    a, b = float(by[system]), float(by[baseline])
    return a / b if b and not (math.isnan(a) or math.isnan(b)) else math.nan


# ---------------------------------------------------------------------------------------------
# The wrk cross-check (harness/wrk.py: cells/<id>/wrk.json)


def wrk_rows(run: Any, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with a wrk.json: Locust's requests/s, p50 and p99 beside wrk's (same target,
    object, connections and duration, right after the cell), and wrk's errors."""
    by_id = cells.set_index("cell_id")
    rows = []
    for cell in run.cells:
        path = cell.path / "wrk.json"
        if not path.is_file() or cell.cell_id not in by_id.index:
            continue
        w = json.loads(path.read_text())
        c = by_id.loc[cell.cell_id]
        lat = w.get("latency_us") or {}
        errs = w.get("errors") or {}
        rows.append({"cell_id": cell.cell_id, "system": c["system"], "workload": c["workload"],
                     "connections": w.get("connections"), "locust_rps": float(c["rps"]),
                     "locust_p50_us": float(c["p50_us"]), "locust_p99_us": float(c["p99_us"]),
                     "wrk_rps": float(w.get("rps", math.nan)), "wrk_p50_us": float(lat.get("p50", math.nan)),
                     "wrk_p99_us": float(lat.get("p99", math.nan)),
                     "wrk_errors": sum(int(v) for v in errs.values()) + int(w.get("non_2xx_3xx", 0)),
                     "error": w.get("error")})
    return pd.DataFrame(rows)
