"""The run report: `<run_dir>/report.md`, built from the stored data only.

    python -m analysis.report RUN_DIR      # rebuilds figures/*.png and report.md

Sections: provenance, one table per workload (one row per system and load level, and switch profile
in a sweep; means over the usable repetitions), the switch side (offloaded share, insertions,
insertion latency, occupancy, relayed connections), CPU per request by part, the insertion-rate
sweep (when the run has one), the comparisons (analysis.compare), the flagged cells, and the figures.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import compare, figures, load, loadcurve

DASH = "–"


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return format(value, fmt)


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table; `|` in cells is escaped."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    out = [line(header), "|" + "|".join("---" for _ in header) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def provenance(run: load.Run, cells: pd.DataFrame) -> str:
    m = run.manifest
    git = m.get("git") or {}
    commit = str(git.get("commit") or "unknown")
    dirty = git.get("dirty")
    dirty_text = "dirty (uncommitted changes)" if dirty else ("clean" if dirty is False else "unknown")
    py = (m.get("packages") or {}).get("python") or {}
    deb = (m.get("packages") or {}).get("debian") or {}
    pkgs = ", ".join(f"{k} {v}" for k, v in {**py, **deb}.items()) or DASH
    failed = int((cells["status"] != "ok").sum())
    flagged = int((cells["flags"] != "").sum())
    kind = "**emulated testbed**" if run.emulated else "hardware testbed"
    rows = [
        ("run id", f"`{run.run_id}`"),
        ("suite", str(m.get("suite", DASH))),
        ("testbed", f"{m.get('testbed', DASH)} (switch target: {m.get('switch_target', DASH)})"),
        ("results from", kind),
        ("git commit", f"`{commit}`, {dirty_text}"),
        ("started / ended", f"{m.get('started', DASH)} / {m.get('ended', DASH)}"),
        ("state", _state_text(run)),
        ("cells", f"{len(cells)} ({failed} failed, {flagged} flagged)"
         + ("" if run.complete else f" of {len(run.planned)} planned")),
        ("packages", pkgs),
    ]
    head = [f"# Report: run {run.run_id}" + (" (emulated testbed)" if run.emulated else ""), ""]
    if not run.complete:
        head += [*incomplete_notice(run), ""]
    if run.emulated:
        head += ["> These results come from an **emulated testbed** (software switch on one machine), not",
                 "> from the hardware the paper used. Compare shapes and ratios, not absolute numbers.", ""]
    head += [md_table(("", ""), rows), "",
             f"Built by `python -m analysis.report {run.path}` from the stored run directory."]
    return "\n".join(head)


def _state_text(run: load.Run) -> str:
    state = run.state
    stop = run.manifest.get("interruption") or {}
    if state == "interrupted" and stop:
        return f"interrupted ({stop.get('signal', 'signal')} at {stop.get('at', DASH)})"
    if state == "failed":
        return f"failed ({run.manifest.get('error') or 'no message'})"
    if state == "running":
        return "running (the run was still going when this was built, or its process was killed)"
    resumed = len(run.manifest.get("sessions") or []) - 1
    return state + (f" (resumed {resumed} time{'s' if resumed > 1 else ''})" if resumed > 0 else "")


def incomplete_notice(run: load.Run) -> list[str]:
    """The report's first words for a run that did not run every planned cell."""
    ran, planned = len(run.planned) - len(run.missing), len(run.planned)
    stop = run.manifest.get("interruption") or {}
    why = {"interrupted": f"interrupted by {stop.get('signal', 'a signal')}"
                          + (f" during `{stop['cell']}`" if stop.get("cell") else ""),
           "failed": "stopped by an error", "running": "still running, or killed"}.get(run.state, run.state)
    missing = ", ".join(f"`{c}`" for c in run.missing)
    return [f"> **incomplete: {ran} of {planned} cells** ({why}). Missing: {missing or DASH}.",
            f"> Tables, comparisons and figures cover the cells that ran. Complete it with "
            f"`fab run-suite --resume {run.path}`."]


def _flags_text(group: pd.DataFrame) -> str:
    parts = []
    for _, row in group.iterrows():
        if row["flags"]:
            parts.append(f"r{row['repetition']}: {row['flags']}")
    return "; ".join(parts)


def _groups(cells: pd.DataFrame, workload: str) -> Iterator[tuple[list[str], pd.DataFrame, pd.Series]]:
    """Per system (and switch profile in a sweep) and load level of one workload, in run order:
    (leading cells [system, (profile,) users, n], the cells, the means over the usable ones)."""
    df = cells[cells["workload"] == workload]
    sweep = compare.profile_sweep(cells)
    for system in dict.fromkeys(df["system"]):
        sdf = df[df["system"] == system]
        for profile in (dict.fromkeys(sdf["switch_profile"]) if sweep else [None]):
            pdf = sdf if profile is None else sdf[sdf["switch_profile"] == profile]
            # closed-loop levels by users, then open-loop ones by offered rate
            keyed = pdf.assign(_open=pdf["mode"] == "open", _rate=pdf["offered_rps"].fillna(0))
            for (_o, _u, _r), group in keyed.groupby(["_open", "users", "_rate"], sort=True, dropna=False):
                use = group[group["usable"].astype(bool)]
                mean = use.mean(numeric_only=True) if len(use) else pd.Series(dtype=float)
                lead = [system, *([str(profile)] if sweep else []), str(group["load"].iloc[0]),
                        f"{len(use)}/{len(group)}"]
                yield lead, group, mean


def _lead_header(cells: pd.DataFrame) -> tuple[str, ...]:
    level = _level_header(cells)
    return ("system", "switch profile", level, "n") if compare.profile_sweep(cells) else ("system", level, "n")


def _level_header(cells: pd.DataFrame) -> str:
    """"users" when every cell is a closed loop (the level is its users), else "load"."""
    return "load" if "mode" in cells.columns and (cells["mode"] == "open").any() else "users"


def workload_table(cells: pd.DataFrame, workload: str) -> str:
    """One row per system (and load level; and switch profile in a sweep) of one workload; means over
    usable repetitions."""
    df = cells[cells["workload"] == workload]
    rows = []
    for lead, group, mean in _groups(cells, workload):
        rows.append([
            *lead,
            _num(mean.get("rps", math.nan), ".1f"),
            _num(mean.get("goodput_gbps", math.nan), ".3f"),
            _num(mean.get("p50_us", math.nan) / 1000, ".3f"),
            _num(mean.get("p99_us", math.nan) / 1000, ".3f"),
            _num(mean.get("cpu_s_per_req", math.nan), ".3g"),
            _num(mean.get("generator_util", math.nan) * 100, ".0f") + ("%" if len(mean) else ""),
            _flags_text(group),
        ])
    header = (*_lead_header(cells), "requests/s", "Gbit/s", "p50 ms", "p99 ms", "LB CPU s/request",
              "generator CPU util", "flags")
    first = df.iloc[0] if len(df) else None
    objects = ""
    latency = "all requests"
    if first is not None:
        obj = first["latency_object"]
        latency = "all requests" if obj in ("all", None) or pd.isna(obj) else f"the {obj} requests only"
        objects = f" ({first['connection']})"
    note = (f"Means over usable repetitions (`n` = usable/all; cells with errors or that failed are "
            f"left out). Latency over {latency}.")
    return "\n".join([f"### {workload}{objects}", "", note, "", md_table(header, rows)])


def comparison_table(comp: pd.DataFrame, lacking: pd.DataFrame | None = None) -> str:
    """The comparisons; `lacking` (compare.lacking_sides) adds a row per pair that lacks a side."""
    lacking = lacking if lacking is not None else pd.DataFrame()
    if comp.empty and lacking.empty:
        return "No pair of systems to compare in this run."
    rows = []
    for _, r in comp.iterrows():
        ci = (f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if not math.isnan(r["ci_low"])
              else f"n/a ({r['note']})" if r["note"] else "n/a")
        profile = r.get("switch_profile") or ""
        rows.append([
            f"{r['system']} vs {r['baseline']}", r["workload"] + (f" @ {profile}" if profile else ""),
            str(r.get("load") or _num(r["users"], "g")), r["size_class"],
            r["metric"], _num(r["ratio"], ".2f"), ci,
            (f"{r['claim']:.1f}x" if not math.isnan(r["claim"]) else DASH),
            f"{r['n_system']}/{r['n_baseline']}",
            ", ".join(f"`{c}`" for c in r["excluded"]) or DASH,
        ])
    for _, r in lacking.iterrows():
        profile = r.get("switch_profile") or ""
        rows.append([f"{r['system']} vs {r['baseline']}", r["workload"] + (f" @ {profile}" if profile else ""),
                     _num(r["users"], "g"), DASH, DASH, DASH,
                     f"lacks a side: no {' and no '.join(r['missing'])} cells (not run)", DASH, DASH, DASH])
    level = "load" if "load" in comp.columns and comp["load"].astype(str).str.startswith("open").any() else "users"
    header = ("pair", "workload", level, "sizes", "metric", "ratio", "95% CI", "paper", "n (sys/base)",
              "excluded cells")
    return "\n".join([
        "Ratio of means over usable repetitions (throughput: requests/s; latency: p50 or p99),",
        "95% t-interval on the log ratio. `paper` is the WWW'25 claim for this pair and object size class,",
        "if any.", "",
        md_table(header, rows)])


SWITCH_COLUMNS = ("offload_share", "inserts_per_s", "cp_latency_p50_ms", "install_latency_p50_ms",
                  "occupancy_peak", "relayed_table_full")


def _has_switch_data(group: pd.DataFrame) -> bool:
    return bool(group[[c for c in SWITCH_COLUMNS if c in group.columns]].notna().any().any())


def _count(value: float) -> str:
    """A mean of counts: whole numbers as such, else one decimal."""
    if math.isnan(value):
        return DASH
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _pct(value: float) -> str:
    return _num(value * 100, ".1f") + ("%" if not math.isnan(value) else "")


def _pair(a: float, b: float, fmt: str) -> str:
    return DASH if math.isnan(a) and math.isnan(b) else f"{_num(a, fmt)} / {_num(b, fmt)}"


def switch_table(cells: pd.DataFrame, workload: str) -> str | None:
    """The switch side of one workload per system (docs/run-directory.md, analysis/switchstats.py);
    None when no system of it has switch data."""
    rows = []
    for lead, group, mean in _groups(cells, workload):
        if not _has_switch_data(group):
            continue
        def m(col: str, mean: pd.Series = mean) -> float:
            return float(mean.get(col, math.nan))
        occ, cap = m("occupancy_peak"), m("table_capacity")
        occupancy = DASH if math.isnan(occ) else f"{occ:,.0f}" + (f" / {cap:,.0f}" if not math.isnan(cap) else "")
        rows.append([
            *lead, _pct(m("offload_share")), _num(m("inserts_per_s"), ",.0f"), _num(m("deletes_per_s"), ",.0f"),
            _count(m("insert_rejected")), _pair(m("cp_latency_p50_ms"), m("cp_latency_p99_ms"), ".2f"),
            _pair(m("install_latency_p50_ms"), m("install_latency_p99_ms"), ".2f"), occupancy,
            _count(m("relayed_table_full")),
        ])
    if not rows:
        return None
    header = (*_lead_header(cells), "offloaded share of bytes", "insertions/s", "deletions/s", "rejected (full)",
              "control-plane latency p50 / p99 ms", "slow-path install p50 / p99 ms",
              "peak entries / capacity", "relayed (table full)")
    return "\n".join([f"### Switch: {workload}", "", md_table(header, rows)])


def switch_section(cells: pd.DataFrame) -> str:
    tables = [t for wl in dict.fromkeys(cells["workload"].dropna()) if wl
              for t in [switch_table(cells, wl)] if t is not None]
    if not tables:
        return ("No switch counters in this run (switch target bridge, or a run from before the harness "
                "collected them).")
    intro = [
        "Means over usable repetitions, from `cells/<id>/switch/` (definitions: docs/run-directory.md).",
        "- *offloaded share*: of the bytes back-ends sent toward clients in the window (as the switch",
        "  counted them), the share the switch forwarded straight to the client: Miresga's `offload`",
        "  hits; switch-only's `conn_out` hits (the rest went through a front-end or the switch CPU).",
        "- *insertions/s*, *deletions/s*: table adds/deletes the control plane received in the window",
        "  (one per Miresga offload; two per switch-only connection); *rejected (full)*: adds refused",
        "  with RESOURCE_EXHAUSTED.",
        "- *control-plane latency*: receipt to ack of its last 20,000 requests (adds and deletes) at the",
        "  window's end; *slow-path install*: switch-only's both entries requested to both acked, on",
        "  the connection's critical path.",
        "- *peak entries*: most per-connection entries (`offload`; `conn_in` + `conn_out`) sampled in",
        "  the window, against the profile's capacity; *relayed*: connections switch-only's slow path",
        "  relayed itself because the table was full.",
        "",
    ]
    return "\n".join(intro) + "\n" + "\n\n".join(tables)


def cpu_table(cells: pd.DataFrame, workload: str) -> str | None:
    rows = []
    for lead, _group, mean in _groups(cells, workload):
        def us(col: str, mean: pd.Series = mean) -> str:
            return _num(float(mean.get(col, math.nan)) * 1e6, ".1f")
        rows.append([*lead, us("cpu_s_per_req"), us("lb_bpf_s_per_req"), us("agent_cpu_s_per_req"),
                     us("slowpath_cpu_s_per_req"), us("switch_bpf_s_per_req"), us("machine_s_per_req"),
                     us("machine_excl_gen_s_per_req"), _pct(float(mean.get("machine_util", math.nan)))])
    if not rows:
        return None
    header = (*_lead_header(cells), "front-end (incl. eBPF)", "of which eBPF", "agents (incl. eBPF)",
              "switch-only slow path", "emulated switch data plane (eBPF)", "whole machine",
              "whole machine less generator", "machine busy")
    return "\n".join([f"### CPU: {workload}", "", md_table(header, rows)])


def cpu_section(cells: pd.DataFrame) -> str:
    tables = [t for wl in dict.fromkeys(cells["workload"].dropna()) if wl
              for t in [cpu_table(cells, wl)] if t is not None]
    intro = [
        "CPU µs per ok request over the measurement window (cpu.json; means over usable repetitions).",
        "eBPF is the kernel's run time of the programs the harness pinned on each host (BPF statistics",
        "enabled during the cell). The front-end column is the load balancer's cost (HAProxy, or",
        "Miresga's front-end with its eBPF fast path); the emulated switch's data plane stands for",
        "hardware and is shown apart. *Whole machine*: busy time of every CPU (/proc/stat: user,",
        "system, irq and softirq; on the local testbed one kernel runs every host, the load generator",
        "included, so it is also shown less the generator's processes). Process CPU misleads on veth:",
        "a send runs the receiver's kernel work in the sender's softirq, billed to whichever task runs.",
        "*Machine busy* is the share of all CPUs busy in the window: /proc/stat counts every process of",
        "the machine, so work outside the testbed (other jobs on a shared machine) shows up there and",
        "in the whole-machine columns; at low request rates it dominates them.",
        "`–`: not measured in this run (no such part, no BPF rows, or a run before /proc/stat was read).",
        "",
    ]
    return "\n".join(intro) + "\n" + "\n\n".join(tables)


def sweep_section(cells: pd.DataFrame) -> str | None:
    """The insertion-rate sweep: one row per system and switch profile (None without a sweep)."""
    if not compare.profile_sweep(cells):
        return None
    df = cells.copy()
    rows = []
    for (wl, system, profile), group in df.groupby(["workload", "system", "switch_profile"], sort=False):
        use = group[group["usable"].astype(bool)]
        mean = use.mean(numeric_only=True) if len(use) else pd.Series(dtype=float)
        rate = float(group["profile_insert_rate"].iloc[0])
        cap = float(mean.get("table_capacity", group["table_capacity"].max()))
        rows.append((rate, [
            wl, system, profile, "unlimited" if math.isinf(rate) else _num(rate, ",.0f"), _num(cap, ",.0f"),
            f"{len(use)}/{len(group)}", _num(float(mean.get("rps", math.nan)), ".1f"),
            _num(float(mean.get("p99_us", math.nan)) / 1000, ".3f"),
            _num(float(mean.get("inserts_per_s", math.nan)), ",.0f"),
            _count(float(mean.get("relayed_table_full", math.nan))), _flags_text(group),
        ]))
    rows.sort(key=lambda r: (r[1][0], r[1][1], math.isnan(r[0]), r[0]))
    header = ("workload", "system", "switch profile", "insertion rate /s", "per-connection capacity", "n",
              "requests/s", "p99 ms", "insertions/s", "relayed (table full)", "flags")
    return "\n".join([
        "Each system under each switch profile of the suite (`switch_profiles`); the figure",
        "`insertion-sweep` plots throughput and p99 latency against the profile's sustained insertion rate.",
        "", md_table(header, [r for _, r in rows])])


def _ms(value: float, fmt: str = ".2f") -> str:
    return _num(value / 1000, fmt)


def load_curve_section(cells: pd.DataFrame, settings: loadcurve.Settings) -> str | None:
    """Open-loop cells: latency against offered load per system, and the headline capacity beside the
    closed-loop maximum (None when the run has no open-loop cell)."""
    if loadcurve.open_cells(cells).empty:
        return None
    slo = settings.slo_p99_ms
    parts = [
        "Open-loop cells send on a schedule (constant or Poisson arrivals at the offered rate) whatever the",
        "system does, on as many connections as needed, and measure latency from each request's intended",
        "send time (HdrHistogram percentiles), so a stall reaches every request due during it. *service*",
        "p99 is from the actual send; *connect* is the TCP handshake of new connections; *send lag* is how",
        "late the generator sent (its own overhead, part of the latency from the intended time, and the",
        "floor of what this generator can resolve). A cell is flagged",
        f"`generator-behind` when more than {load.BEHIND_SHARE:.0%} of its requests were sent more than "
        f"{load.LATE_US / 1000:g} ms late (the generator, not the system, set their latency).", ""]
    for wl in dict.fromkeys(loadcurve.open_cells(cells)["workload"]):
        sw = loadcurve.sweep_rows(cells, wl)
        rows = [[r["system"], _num(r["offered_rps"], ",.0f"), r["n"], _num(r["rps"], ",.1f"),
                 _pct(r["achieved_share"]), _ms(r["p50_us"]), _ms(r["p99_us"]), _ms(r["p999_us"]),
                 _ms(r["service_p99_us"]), _ms(r["connect_p50_us"], ".3f"),
                 _num(r["machine_s_per_req"] * 1e6, ".0f"), _ms(r["queue_p99_us"]), _pct(r["behind_share"]),
                 r["flags"]]
                for _, r in sw.iterrows()]
        header = ("system", "offered /s", "n", "achieved /s", "achieved share", "p50 ms", "p99 ms", "p99.9 ms",
                  "service p99 ms", "connect p50 ms", "machine µs/req", "send lag p99 ms", "sent >10 ms late",
                  "flags")
        parts += [f"### Latency against load: {wl}", "", md_table(header, rows), ""]
        cap = loadcurve.capacity(cells, wl, slo)
        crow = []
        for _, r in cap.iterrows():
            if slo is None:
                slo_text = "no SLO in the suite"
            elif math.isnan(r["slo_rate"]):
                slo_text = ("below the lowest rate swept" if r["rates"] else "no open-loop cells")
            else:
                slo_text = f"{r['slo_rate']:,.0f}/s" + ("" if not math.isnan(r["first_miss"])
                                                        else " (every rate swept met it)")
            ratio = (r["slo_rate"] / r["closed_max_rps"]) if r["closed_max_rps"] and not math.isnan(r["slo_rate"]) \
                else math.nan
            crow.append([r["system"], slo_text, _ms(r["slo_p99_us"]), _num(r["first_miss"], ",.0f"),
                         _num(r["closed_max_rps"], ",.1f"), _ms(r["closed_p99_us"]), _num(ratio, ".2f")])
        slo_name = f"p99 <= {slo:g} ms" if slo is not None else "SLO"
        parts += [f"**Headline capacity ({wl})**: the highest offered rate whose p99 (from the intended send",
                  f"time) met the suite's SLO ({slo_name}) with every lower rate meeting it too, beside the",
                  "closed-loop maximum (the most requests/s of a usable closed-loop cell, and its p99). A",
                  "closed loop slows down with the system, so its p99 stays low at its maximum; where the SLO",
                  "capacity is well below that maximum, the closed loop overstates what the system serves",
                  "within the SLO.", "",
                  md_table(("system", f"capacity at {slo_name}", "p99 ms there", "first rate missing it",
                            "closed-loop max /s", "closed-loop p99 ms", "capacity / closed max"), crow), ""]
    return "\n".join(parts)


def setup_section(cells: pd.DataFrame) -> str | None:
    """Connect time, time to first byte and total, per workload, system and load level."""
    tables = []
    for wl in dict.fromkeys(cells["workload"].dropna()):
        if not wl:
            continue
        rows = loadcurve.setup_rows(cells, wl)
        if rows.empty:
            continue
        body = [[r["system"], r["load"], r["n"], _ms(r["connect_p50_us"], ".3f"), _ms(r["connect_p99_us"], ".3f"),
                 _ms(r["ttfb_p50_us"], ".3f"), _ms(r["ttfb_p99_us"], ".3f"), _ms(r["service_p50_us"], ".3f"),
                 _ms(r["service_p99_us"], ".3f"), _ms(r["p99_us"], ".3f")] for _, r in rows.iterrows()]
        header = ("system", "load", "n", "connect p50 ms", "connect p99 ms", "first byte p50 ms",
                  "first byte p99 ms", "total p50 ms", "total p99 ms", "p99 as reported ms")
        tables.append(f"### Setup: {wl}\n\n" + md_table(header, body))
    if not tables:
        return None
    intro = ["Per request, from the send (connect included for a new connection): *connect* is the TCP",
             "handshake (SYN to SYN-ACK, which Miresga's switch answers), *first byte* the first response",
             "byte, *total* the last body byte. *p99 as reported* is the workload table's (from the intended",
             "send time in open loop). Means over usable repetitions.", ""]
    return "\n".join(intro) + "\n" + "\n\n".join(tables)


def budget_section(cells: pd.DataFrame, settings: loadcurve.Settings) -> str | None:
    """The budget model per workload (None without a load balancer in the run)."""
    parts = []
    b = settings.budget_cores
    for wl in dict.fromkeys(cells["workload"].dropna()):
        if not wl:
            continue
        rows, where = loadcurve.budget_model(cells, wl, b)
        if rows.empty:
            continue
        pinned = bool(rows["pinned_us"].notna().any())
        body = [[r["system"], r["measured_at"], _num(r["machine_util"] * 100, ".0f") + "%",
                 _num(r["process_us"], ".1f"), _num(r["machine_delta_us"], ".1f"),
                 *([_num(r["pinned_us"], ".1f"), _num(r["pinned_util"] * 100, ".0f") + "%"] if pinned else []),
                 _num(r["switch_dataplane_us"], ".1f"), _num(r["switch_cpu_us"], ".1f"),
                 _num(r["measured_rps"], ",.0f"), _num(r["capacity_process"], ",.0f"),
                 _num(r["capacity_machine"], ",.0f"),
                 *([_num(r["capacity_pinned"], ",.0f")] if pinned else [])] for _, r in rows.iterrows()]
        rp = loadcurve.model_ratio(rows, "capacity_process")
        rm = loadcurve.model_ratio(rows, "capacity_machine")
        by_pinned = f", {_num(loadcurve.model_ratio(rows, 'capacity_pinned'), '.2f')}x by pinned CPU" if pinned else ""
        ratio = (f"Modelled Miresga / HAProxy: {_num(rp, '.2f')}x by process CPU, {_num(rm, '.2f')}x by "
                 f"machine Δ{by_pinned}; the paper reports {loadcurve.PAPER_RATIO}x (measured on hardware).")
        header = ("system", "measured at", "machine busy", "process µs/req", "machine Δ µs/req",
                  *(("pinned LB CPU µs/req", "LB CPU busy") if pinned else ()),
                  "switch data plane µs/req (apart)", "switch CPU µs/req (apart)", "measured requests/s",
                  f"model: requests/s on {b:g} core(s) by process",
                  f"model: requests/s on {b:g} core(s) by machine Δ",
                  *((f"model: requests/s on {b:g} core(s) by pinned CPU",) if pinned else ()))
        parts += [f"### Budget model: {wl} (common load: {where})", "", md_table(header, body), "", ratio, ""]
    if not parts:
        return None
    intro = [f"**A model, not a measurement.** The capacity each load balancer would have on a budget of "
             f"{b:g} CPU core(s) (`budget_cores`), from its measured cost per request. Assumptions:", ""]
    intro += [f"- {a}" for a in loadcurve.BUDGET_ASSUMPTIONS] + [""]
    return "\n".join(intro + parts)


def wrk_section(run: load.Run, cells: pd.DataFrame) -> str | None:
    """Locust beside wrk for the cells the suite cross-checked (None when none was)."""
    rows = loadcurve.wrk_rows(run, cells)
    if rows.empty:
        return None
    body = []
    for _, r in rows.iterrows():
        ratio = r["wrk_rps"] / r["locust_rps"] if r["locust_rps"] else math.nan
        body.append([f"`{r['cell_id']}`", _num(r["connections"], "g"), _num(r["locust_rps"], ",.0f"),
                     _num(r["wrk_rps"], ",.0f"), _num(ratio, ".2f"), _ms(r["locust_p50_us"], ".3f"),
                     _ms(r["wrk_p50_us"], ".3f"), _ms(r["locust_p99_us"], ".3f"), _ms(r["wrk_p99_us"], ".3f"),
                     str(r["wrk_errors"]) + (f" ({r['error']})" if r["error"] else "")])
    header = ("cell", "connections", "Locust req/s", "wrk req/s", "wrk / Locust", "Locust p50 ms", "wrk p50 ms",
              "Locust p99 ms", "wrk p99 ms", "wrk errors")
    return "\n".join([
        "An independent client (`wrk`, one thread, as many connections as the cell's users, the cell's",
        "first object and duration) run right after the cell against the same target. Both are closed",
        "loops; wrk is written in C, so where it finds much more throughput than Locust, the generator,",
        "not the system, limited the cell (and the system comparisons at that load are the generator's).",
        "", md_table(header, body)])


def attack_section(cells: pd.DataFrame) -> str | None:
    """The attack axis (None without one): per workload, system and attack, the legitimate load's
    throughput as a share of the same system's cells without attack, its errors and latency, and the
    attack's achieved rate."""
    if "attack" not in cells.columns or not (cells["attack"].fillna("") != "").any():
        return None
    rows = []
    for (base, system), group in cells.groupby(["base_workload", "system"], sort=False):
        use = group[group["usable"].astype(bool)]
        calm = use[use["attack"].fillna("") == ""]
        calm_rps = float(calm["rps"].mean()) if len(calm) else math.nan
        calm_gbps = float(calm["goodput_gbps"].mean()) if len(calm) else math.nan
        for attack in dict.fromkeys(group["attack"].fillna("")):
            a = use[use["attack"].fillna("") == attack]
            n = f"{len(a)}/{int((group['attack'].fillna('') == attack).sum())}"
            if not len(a):
                rows.append([base, system, attack or "none", n, *["-"] * 7])
                continue
            rps, gbps = float(a["rps"].mean()), float(a["goodput_gbps"].mean())
            share = rps / calm_rps if calm_rps else math.nan
            failed = float(a["failed"].sum()) / max(1.0, float(a["requests"].sum()))
            rows.append([base, system, attack or "none", n, _num(rps, ",.0f"), _num(gbps, ".2f"),
                         "1" if not attack else _num(share, ".2f"),
                         _num(gbps / calm_gbps if calm_gbps else math.nan, ".2f") if attack else "1",
                         _pct(failed), _num(float(a["p99_us"].mean()) / 1000, ".2f"),
                         "-" if not attack else _num(float(a["attack_pps"].mean()), ",.0f")])
    header = ("workload", "system", "attack", "n", "req/s", "Gbit/s", "req/s share", "Gbit/s share",
              "failed", "p99 ms", "attack pkt/s")
    return "\n".join([
        "The suite's `attacks` axis: each workload ran without attack and under each attack, played from",
        "the attacker host (workloads/attack.py) for the cell's warm-up, window and tail. *share*: the",
        "legitimate load's throughput as a share of the same system's cells without attack (means over",
        "the repetitions); *failed*: the legitimate requests that failed; *attack pkt/s*: the rate the",
        "attacker achieved (packets, or slowloris header lines). The attacker shares the machine's CPUs.",
        "", md_table(header, rows)])


def flagged_list(cells: pd.DataFrame) -> str:
    flagged = cells[cells["flags"] != ""]
    if flagged.empty:
        return "None."
    lines = []
    for _, r in flagged.iterrows():
        detail = []
        if r["status"] != "ok":
            detail.append(f"status {r['status']}: {r['cell_error'] or 'no error message'}")
        else:
            errs = [f"{c[4:].replace('_', '-')} {int(r[c])}" for c in r.index
                    if c.startswith("err_") and r[c] and not math.isnan(r[c])]
            if r["errors"]:
                detail.append(f"{int(r['failed'])} failed of {int(r['requests'])} requests "
                              f"({', '.join(errs)})")
            if r["generator_saturated"]:
                detail.append(f"generator CPU util {r['generator_util'] * 100:.0f}% (>= 90%)")
            if r["switch_bound"]:
                detail.append(f"the emulated switch's eBPF used {r['switch_bpf_util'] * 100:.0f}% of one core "
                              f"(> {load.SWITCH_BOUND_UTIL * 100:.0f}%): the cell measured the emulator")
            if r.get("generator_behind"):
                detail.append(f"{r['behind_share'] * 100:.1f}% of requests sent more than "
                              f"{load.LATE_US / 1000:g} ms after their intended time")
        lines.append(f"- `{r['cell_id']}`: {r['flags']}; " + "; ".join(detail))
    return "\n".join(lines)


def build_report(run_dir: str | Path, figure_paths: list[Path] | None = None) -> Path:
    """Write `<run_dir>/report.md` (building the figures first unless their paths are given)."""
    run = load.load_run(run_dir)
    if figure_paths is None:
        figure_paths = figures.build_figures(run.path)
    cells = load.cells(run)
    comp = compare.compare_all(cells)
    parts = [provenance(run, cells), "", "## Results per workload", ""]
    for wl in dict.fromkeys(cells["workload"].dropna()):
        if wl:
            parts += [workload_table(cells, wl), ""]
    parts += ["## Switch: offload, insertions, occupancy", "", switch_section(cells), "",
              "## CPU per request by part", "", cpu_section(cells), ""]
    sweep = sweep_section(cells)
    if sweep is not None:
        parts += ["## Insertion-rate sweep", "", sweep, ""]
    settings = loadcurve.settings(run.path)
    for title, section in (("Latency against load (open loop)", load_curve_section(cells, settings)),
                           ("Connection setup apart", setup_section(cells)),
                           ("Budget model (a model, not a measurement)", budget_section(cells, settings)),
                           ("Under attack", attack_section(cells)),
                           ("Cross-check with wrk", wrk_section(run, cells))):
        if section is not None:
            parts += [f"## {title}", "", section, ""]
    lacking = compare.lacking_sides(run.planned, [c.cell_id for c in run.cells]) if not run.complete else None
    parts += ["## Comparisons", "", comparison_table(comp, lacking), "",
              "## Flagged cells", "", flagged_list(cells), "", "## Figures", ""]
    if figure_paths:
        for p in figure_paths:
            try:
                rel = Path(p).relative_to(run.path)
            except ValueError:
                rel = Path("figures") / Path(p).name
            parts += [f"![{rel.stem}]({rel.as_posix()})", ""]
    else:
        parts += ["No figures.", ""]
    out = run.path / "report.md"
    out.write_text("\n".join(parts))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild figures and report.md of a run directory.")
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    paths = figures.build_figures(args.run_dir)
    report = build_report(args.run_dir, paths)
    for p in [*paths, report]:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
