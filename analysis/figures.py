"""Figures of a run directory (seaborn on matplotlib's object API with the Agg canvas; no pyplot state).

`build_figures(run_dir)` writes PNGs into `<run_dir>/figures/` and returns their paths. Each figure
function takes the tidy tables from `analysis.load` and returns a Figure, or None when the run has no
data for it (e.g. throughput-latency needs several load levels). Every title carries the run label,
which says "emulated testbed" when the manifest says the run was emulated.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis import compare, load, loadcurve

STYLE = "whitegrid"
DPI = 110


def run_label(run: load.Run) -> str:
    """The label every figure carries: run id, and "emulated testbed" when emulated."""
    label = f"run {run.run_id}"
    return f"{label} (emulated testbed)" if run.emulated else f"{label} (hardware testbed)"


def _figure(ncols: int = 1, nrows: int = 1, width: float = 5.5, height: float = 4.0) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height * nrows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _usable(cells: pd.DataFrame) -> pd.DataFrame:
    return cells[cells["usable"].astype(bool)]


def throughput_vs_size(cells: pd.DataFrame, label: str) -> Figure | None:
    """Requests/s and Gbit/s against object size, per system (fixed-size workloads only)."""
    df = _usable(cells)
    df = df[df["min_object_bytes"] == df["max_object_bytes"]].copy()
    if df.empty:
        return None
    df["object size (bytes)"] = df["max_object_bytes"].astype(float)
    many_loads = df["users"].nunique() > 1
    with sns.axes_style(STYLE):
        fig, (ax_rps, ax_gbps) = _figure(ncols=2)
        for ax, col, ylabel in ((ax_rps, "rps", "requests/s"), (ax_gbps, "goodput_gbps", "goodput (Gbit/s)")):
            sns.lineplot(data=df, x="object size (bytes)", y=col, hue="system",
                         style="users" if many_loads else None, marker="o", errorbar="sd", ax=ax)
            ax.set_xscale("log")
            ax.set_xlim(df["object size (bytes)"].min() / 2, df["object size (bytes)"].max() * 2)
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0)
    fig.suptitle(f"Throughput vs object size (mean ± sd over repetitions; mixes not shown)\n{label}")
    return fig


def latency_cdf(requests: pd.DataFrame, cells: pd.DataFrame, workload: str, label: str) -> Figure | None:
    """CDF of per-request latency (us, log x) of one workload, per system; for a mix, of the object
    named by the workload's `latency_of`. Ok requests of usable cells, pooled over repetitions."""
    usable = _usable(cells)
    usable = usable[usable["workload"] == workload]
    if usable.empty:
        return None
    df = requests[requests["cell_id"].isin(usable["cell_id"]) & (requests["ok"] == 1)]
    objects = set(usable["latency_object"])
    obj = next(iter(objects)) if len(objects) == 1 else "all"
    if obj != "all":
        df = df[df["object"] == obj]
    if df.empty:
        return None
    # one panel per load level: closed loops by users, open loops by offered rate (latency from the
    # intended send time there)
    levels = list(dict.fromkeys(usable.sort_values(["mode", "users", "offered_rps"])["load"]))
    df = df.merge(usable[["cell_id"]], on="cell_id")
    with sns.axes_style(STYLE):
        fig, axes = _figure(ncols=len(levels))
        for ax, level in zip(axes, levels, strict=True):
            sel = df[df["load"] == level]
            sns.ecdfplot(data=sel, x="user_latency_us", hue="system", log_scale=True, ax=ax)
            ax.set_xlabel("latency (µs)" + (", from the intended send" if str(level).startswith("open") else ""))
            ax.set_title(f"{level} users" if not str(level).startswith("open") else str(level))
    what = "all requests" if obj == "all" else f"{obj} requests"
    fig.suptitle(f"Latency CDF, {workload} ({what})\n{label}")
    return fig


def cpu_cost(cells: pd.DataFrame, label: str) -> Figure | None:
    """Load-balancer CPU per request (µs) and per GB of bodies (s), per system and workload."""
    df = _usable(cells).dropna(subset=["cpu_s_per_req"]).copy()
    if df.empty:
        return None
    df["cpu_us_per_req"] = df["cpu_s_per_req"] * 1e6
    with sns.axes_style(STYLE):
        fig, (ax_req, ax_gb) = _figure(ncols=2)
        sns.barplot(data=df, x="workload", y="cpu_us_per_req", hue="system", errorbar="sd", ax=ax_req)
        ax_req.set_ylabel("LB CPU µs per request")
        sns.barplot(data=df, x="workload", y="cpu_s_per_gb", hue="system", errorbar="sd", ax=ax_gb)
        ax_gb.set_yscale("log")
        ax_gb.set_ylabel("LB CPU s per GB of bodies (log)")
    fig.suptitle(f"Load-balancer CPU cost (front-end processes and their eBPF; mean ± sd)\n{label}")
    return fig


def throughput_latency(cells: pd.DataFrame, label: str) -> Figure | None:
    """p99 latency against requests/s across load levels, per system and workload (needs >1 level)."""
    df = _usable(cells)
    df = df[df["mode"] != "open"]      # open-loop levels: latency_vs_load
    levels = df.groupby(["system", "workload"])["users"].nunique()
    if df.empty or levels.max() < 2:
        return None
    df = df.groupby(["system", "workload", "users"], as_index=False)[["rps", "p99_us"]].mean()
    df["p99 (ms)"] = df["p99_us"] / 1000
    workloads = sorted(df["workload"].unique())
    with sns.axes_style(STYLE):
        fig, axes = _figure(ncols=len(workloads))
        for ax, wl in zip(axes, workloads, strict=True):
            sns.lineplot(data=df[df["workload"] == wl], x="rps", y="p99 (ms)", hue="system", marker="o",
                         sort=False, ax=ax)
            ax.set_xlabel("requests/s")
            ax.set_title(wl)
    fig.suptitle(f"Throughput vs p99 latency across load levels (mean over repetitions)\n{label}")
    return fig


def switch_occupancy(series: pd.DataFrame, cells: pd.DataFrame, workload: str, label: str) -> Figure | None:
    """Per-connection table entries (Miresga: offload; switch-only: conn_in + conn_out) and the
    control plane's insertions/s over time, one line per cell, coloured by system (the shaded span is
    the measurement window; before it, the warm-up)."""
    usable = _usable(cells)
    usable = usable[usable["workload"] == workload]
    df = series[series["cell_id"].isin(usable["cell_id"]) & series["conn_table"].astype(bool)]
    if df.empty:
        return None
    keys = ["cell_id", "system", "switch_profile", "time_s"]
    occ = df.groupby(keys, as_index=False).agg(entries=("entries", "sum"), inserts_per_s=("inserts_per_s", "first"))
    sweep = compare.profile_sweep(usable)
    duration = float(usable["duration_s"].max())
    with sns.axes_style(STYLE):
        fig, (ax_occ, ax_ins) = _figure(ncols=2)
        for ax, col, ylabel in ((ax_occ, "entries", "per-connection table entries"),
                                (ax_ins, "inserts_per_s", "insertions/s (control plane, last second)")):
            sns.lineplot(data=occ, x="time_s", y=col, hue="system", style="switch_profile" if sweep else None,
                         units="cell_id", estimator=None, drawstyle="steps-post", ax=ax)
            if not math.isnan(duration):
                ax.axvspan(0, duration, color="0.9", zorder=0)
            ax.set_xlabel("seconds from the start of the measurement window")
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0)
    fig.suptitle(f"Switch table occupancy and insertions over time, {workload} (one line per cell)\n{label}")
    return fig


def _table_size_label(df: pd.DataFrame) -> pd.Series:
    """"small tables" for cells whose per-connection tables hold less than half of what the same
    system's other cells had; "full tables" otherwise (or when unknown). The report's sweep table
    gives the capacities."""
    most = df.groupby("system")["table_capacity"].transform("max")
    labels = ["small tables" if cap < m / 2 else "full tables"   # NaN compares False: full
              for cap, m in zip(df["table_capacity"], most, strict=True)]
    return pd.Series(labels, index=df.index, dtype=object)


def insertion_sweep(cells: pd.DataFrame, label: str) -> Figure | None:
    """Requests/s and p99 latency against the switch profile's sustained insertion rate (log x), one
    line per system (means over repetitions); an unpaced profile is drawn at the right as
    "unlimited", profiles with small per-connection tables as separate markers. Needs cells under at
    least two insertion rates."""
    df = _usable(cells)
    df = df[df["profile_insert_rate"].notna()].copy()
    if df.empty or df["profile_insert_rate"].nunique() < 2:
        return None
    finite = df.loc[np.isfinite(df["profile_insert_rate"]), "profile_insert_rate"]
    unlimited_x = float(finite.max()) * 10 if len(finite) else 1e7
    df["insertion rate (updates/s)"] = df["profile_insert_rate"].replace(math.inf, unlimited_x)
    df["tables"] = _table_size_label(df)
    df["p99 (ms)"] = df["p99_us"] / 1000
    agg = df.groupby(["workload", "system", "tables", "insertion rate (updates/s)"], as_index=False)[
        ["rps", "p99 (ms)"]].mean()
    workloads = sorted(agg["workload"].unique())
    styles = agg["tables"].nunique() > 1
    with sns.axes_style(STYLE):
        fig, axes = _figure(ncols=2, nrows=len(workloads), width=6.0)
        for i, wl in enumerate(workloads):
            data = agg[agg["workload"] == wl]
            for ax, col in ((axes[2 * i], "rps"), (axes[2 * i + 1], "p99 (ms)")):
                style = {"style": "tables", "markers": True, "dashes": False} if styles else {"marker": "o"}
                sns.lineplot(data=data, x="insertion rate (updates/s)", y=col, hue="system", sort=True, ax=ax,
                             **style)
                ax.set_xscale("log")
                ticks = sorted(set(data["insertion rate (updates/s)"]))
                ax.set_xticks(ticks)
                ax.set_xticklabels(["unlimited" if t == unlimited_x else f"{t:g}" for t in ticks])
                ax.minorticks_off()
                ax.set_ylabel("requests/s" if col == "rps" else "p99 latency (ms)")
                ax.set_ylim(bottom=0)
                ax.set_title(wl)
                if col == "rps":
                    ax.get_legend().remove()
                else:
                    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle(f"Throughput and p99 latency vs the switch's sustained insertion rate (mean over "
                 f"repetitions)\n{label}")
    return fig


def latency_vs_load(cells: pd.DataFrame, workload: str, label: str, slo_p99_ms: float | None) -> Figure | None:
    """p50 and p99 latency (from the intended send time, log y) against the achieved requests/s of
    one workload's open-loop cells, one line per system in order of offered rate; each system's
    closed-loop cells as crosses (their latency from the send), the SLO as a dashed line."""
    df = _usable(cells)
    df = df[df["workload"] == workload]
    op = df[df["mode"] == "open"]
    if op.empty:
        return None
    op = op.groupby(["system", "offered_rps"], as_index=False, sort=False)[["rps", "p50_us", "p99_us"]].mean()
    op = op.sort_values(["system", "offered_rps"])
    closed = df[df["mode"] != "open"]
    systems = list(dict.fromkeys(df["system"]))
    palette = dict(zip(systems, sns.color_palette(n_colors=len(systems)), strict=True))
    with sns.axes_style(STYLE):
        fig, axes = _figure(ncols=2)
        for ax, col, name in ((axes[0], "p50_us", "p50"), (axes[1], "p99_us", "p99")):
            for system in systems:
                sel = op[op["system"] == system]
                ax.plot(sel["rps"], sel[col] / 1000, marker="o", color=palette[system], label=f"{system} (open)")
                c = closed[closed["system"] == system]
                if len(c):
                    ax.scatter(c["rps"], c[col] / 1000, marker="X", s=70, color=palette[system],
                               label=f"{system} (closed loop)")
            if name == "p99" and slo_p99_ms is not None:
                ax.axhline(slo_p99_ms, color="0.3", linestyle="--", linewidth=1, label=f"SLO {slo_p99_ms:g} ms")
            ax.set_yscale("log")
            ax.set_xlabel("achieved requests/s (ok responses)")
            ax.set_ylabel(f"{name} latency (ms)")
            ax.set_xlim(left=0)
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False, fontsize="small")
    fig.suptitle(f"Latency against load, {workload}: open loop (from the intended send time) and the closed-loop "
                 f"cells\n{label}")
    return fig


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def figures(run_dir: str | Path | load.Run) -> dict[str, Figure]:
    """Every figure of the run, by file stem, in a stable order (figures without data are left out)."""
    run = run_dir if isinstance(run_dir, load.Run) else load.load_run(run_dir)
    cells = load.cells(run)
    reqs = load.requests(run)
    label = run_label(run)
    out: dict[str, Figure | None] = {"throughput-vs-size": throughput_vs_size(cells, label)}
    for wl in dict.fromkeys(cells["workload"].dropna()):
        if wl:
            out[f"latency-cdf-{_slug(wl)}"] = latency_cdf(reqs, cells, wl, label)
    out["cpu-cost"] = cpu_cost(cells, label)
    out["throughput-latency"] = throughput_latency(cells, label)
    series = load.switch_series(run)
    if not series.empty:
        for wl in dict.fromkeys(cells["workload"].dropna()):
            if wl:
                out[f"switch-occupancy-{_slug(wl)}"] = switch_occupancy(series, cells, wl, label)
    out["insertion-sweep"] = insertion_sweep(cells, label)
    slo = loadcurve.settings(run.path).slo_p99_ms
    for wl in dict.fromkeys(cells["workload"].dropna()):
        if wl:
            out[f"latency-vs-load-{_slug(wl)}"] = latency_vs_load(cells, wl, label, slo)
    return {name: fig for name, fig in out.items() if fig is not None}


def build_figures(run_dir: str | Path) -> list[Path]:
    """Write every figure as `<run_dir>/figures/<name>.png` and return the paths."""
    run = load.load_run(run_dir)
    outdir = run.path / "figures"
    outdir.mkdir(exist_ok=True)
    paths = []
    for name, fig in figures(run).items():
        path = outdir / f"{name}.png"
        fig.savefig(path)
        paths.append(path)
    return paths
