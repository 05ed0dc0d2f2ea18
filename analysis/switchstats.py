"""The switch side of a cell (docs/run-directory.md, "switch/"): offloaded share of bytes, insertions,
insertion latency, table occupancy over time, connections relayed because a table was full.

Every value comes from files under `cells/<id>/switch/`; a file or field that is absent (a system
without a switch, a run from before the harness collected it) gives NaN, never an error.

- `offload_share`: of the bytes the back-ends sent toward clients in the measurement window, as the
  switch counted them (Ethernet frames; `backends` table hits), the share the switch forwarded
  straight to the client instead of to a front-end (Miresga: `offload` hits of back-end -> client
  packets, i.e. `offload` hit bytes minus the client pure ACKs it also matched, which are exactly
  the `backend_by_index` lookups) or to the switch CPU (switch-only: `conn_out` hit bytes).
  Deltas of the table counters between window.json's `start` and `end`.
- `inserts_per_s` / `deletes_per_s`: table insertions (`add` requests) and deletions the control
  plane received in the window, over the time between the two snapshots. One Miresga offload is one
  insertion; one switch-only connection is two (conn_in and conn_out).
- `insert_rejected`: adds the switch refused as full (acks RESOURCE_EXHAUSTED) in the window.
- `cp_latency_p50_ms` / `_p99_ms`: the control plane's request latency (receipt to ack, adds and
  deletes) over its last 20,000 requests at the window's end.
- `install_latency_p50_ms` / `_p99_ms`: switch-only's slow path: both entries requested to both
  acked, on the connection's critical path (its last 20,000 installs at the window's end).
- `relayed_table_full` / `relayed_install_failed`: connections the switch-only slow path relayed
  itself in the window because an insert was refused as full / failed otherwise.
- `occupancy_peak`: the most per-connection entries (`offload`, or `conn_in` + `conn_out`) seen in
  the control plane's samples during the window; `table_capacity`: those tables' capacity under the
  cell's profile (the P4Runtime server's stats).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

# The per-connection tables of each pipeline (the ones whose occupancy moves with the load).
CONN_TABLES = {"miresga": ("offload",), "switch_only": ("conn_in", "conn_out")}
ALL_CONN_TABLES = ("offload", "conn_in", "conn_out")
COLUMNS = ("offload_share", "b2c_bytes", "inserts_per_s", "deletes_per_s", "insert_rejected",
           "cp_latency_p50_ms", "cp_latency_p99_ms", "install_latency_p50_ms", "install_latency_p99_ms",
           "relayed_table_full", "relayed_install_failed", "occupancy_peak", "table_capacity")
NAN = math.nan


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _get(d: Any, *path: str) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else NAN


def _delta(start: Any, end: Any, *path: str, missing_is_zero: bool = False) -> float:
    """end[path] - start[path]; NaN unless both snapshots exist (a missing counter in an existing
    snapshot is 0 with `missing_is_zero`: counters by code appear at their first occurrence)."""
    if not isinstance(start, dict) or not isinstance(end, dict):
        return NAN
    a, b = _get(start, *path), _get(end, *path)
    if missing_is_zero:
        a = 0 if a is None else a
        b = 0 if b is None else b
    return _num(b) - _num(a)


def _find(d: Any, key: str) -> Any:
    """The first value of `key` anywhere in nested mappings (stats files nest counters by part)."""
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


def pipeline_of(window: dict[str, Any] | None, switch_dir: Path) -> str | None:
    if window and window.get("pipeline"):
        return str(window["pipeline"])
    p4rt = _read_json(switch_dir / "p4rt-stats.json")
    return str(p4rt["pipeline"]) if isinstance(p4rt, dict) and p4rt.get("pipeline") else None


def offload_bytes(pipeline: str | None, start: Any, end: Any) -> tuple[float, float]:
    """(bytes forwarded back-end -> client by the switch itself, all back-end -> client bytes) from
    two `counters` snapshots ({"tables": {name: {hit_bytes, miss_bytes, ...}}})."""
    def d(table: str, field: str) -> float:
        return _delta(start, end, "tables", table, field)
    total = d("backends", "hit_bytes")
    if pipeline == "miresga":
        # backend_by_index misses: absent from a real switch that cannot read a default entry's
        # counter (harness/p4rtstats.py); they are client ACKs with an unknown index, next to none.
        offloaded = (d("offload", "hit_bytes") - d("backend_by_index", "hit_bytes")
                     - _delta(start, end, "tables", "backend_by_index", "miss_bytes", missing_is_zero=True))
    elif pipeline == "switch_only":
        offloaded = d("conn_out", "hit_bytes")
    else:
        offloaded = NAN
    return offloaded, total


def _pct_ms(stats: Any, field: str, scale: float) -> tuple[float, float]:
    lat = stats.get(field) if isinstance(stats, dict) else None
    if not isinstance(lat, dict):
        return NAN, NAN
    return _num(lat.get("p50")) * scale, _num(lat.get("p99")) * scale


def samples(switch_dir: Path) -> list[dict[str, Any]]:
    """The control plane's stats samples (controlplane-samples.jsonl), oldest first."""
    path = switch_dir / "controlplane-samples.jsonl"
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("stats"), dict) and not math.isnan(_num(rec.get("time"))):
            out.append(rec)
    return sorted(out, key=lambda r: float(r["time"]))


def conn_tables(pipeline: str | None, occupancy_keys: set[str]) -> tuple[str, ...]:
    return CONN_TABLES.get(pipeline or "", tuple(t for t in ALL_CONN_TABLES if t in occupancy_keys))


WINDOW_COLUMNS = ("offload_share", "b2c_bytes", "offloaded_bytes", "inserts_per_s", "deletes_per_s",
                  "insert_rejected", "cp_latency_p50_ms", "cp_latency_p99_ms", "punts_per_s")


def window_metrics(pipeline: str | None, start: Any, end: Any) -> dict[str, float]:
    """The WINDOW_COLUMNS between two snapshots as harness/cellstats.py takes them ({"time",
    "counters", "controlplane", "controlplane_time", "frontends", ...}): a cell's window, or the last
    seconds of the Locust web UI's Switch tab. NaN where a snapshot lacks the part."""
    row = dict.fromkeys(WINDOW_COLUMNS, NAN)
    offloaded, total = offload_bytes(pipeline, _get(start, "counters"), _get(end, "counters"))
    row["b2c_bytes"], row["offloaded_bytes"] = total, offloaded
    row["offload_share"] = offloaded / total if total and not math.isnan(total) and total > 0 else NAN
    cp0, cp1 = _get(start, "controlplane"), _get(end, "controlplane")
    # when the control plane answered (older window.json: when the snapshot began)
    t0 = _num(_get(start, "controlplane_time") or _get(start, "time"))
    t1 = _num(_get(end, "controlplane_time") or _get(end, "time"))
    dt = t1 - t0 if t1 > t0 else NAN
    row["inserts_per_s"] = _delta(cp0, cp1, "requests", "add", missing_is_zero=True) / dt
    row["deletes_per_s"] = _delta(cp0, cp1, "requests", "delete", missing_is_zero=True) / dt
    row["insert_rejected"] = _delta(cp0, cp1, "acks", "RESOURCE_EXHAUSTED", missing_is_zero=True)
    row["cp_latency_p50_ms"], row["cp_latency_p99_ms"] = _pct_ms(cp1, "request_latency_us", 1e-3)
    span = _num(_get(end, "time")) - _num(_get(start, "time"))
    row["punts_per_s"] = frontend_punts(_get(start, "frontends"), _get(end, "frontends")) / span if span > 0 else NAN
    return row


def frontend_punts(start: Any, end: Any) -> float:
    """Frames the front-ends' fast paths handed to user space (`punt_*` reasons of their stats
    files' "fast_path"), summed over the front-ends present in both snapshots; NaN without any."""
    if not isinstance(start, dict) or not isinstance(end, dict):
        return NAN
    total, seen = 0.0, False
    for host, e in end.items():
        s = start.get(host)
        reasons = _get(e, "fast_path")
        if not isinstance(s, dict) or not isinstance(reasons, dict):
            continue
        seen = True
        for reason in reasons:
            if reason.startswith("punt_"):
                total += _delta(s, e, "fast_path", reason, "packets", missing_is_zero=True)
    return total if seen else NAN


def occupancy(pipeline: str | None, cp_stats: Any) -> float:
    """Per-connection entries (`offload`; `conn_in` + `conn_out`) in one control-plane stats reply."""
    occ = _get(cp_stats, "occupancy")
    if not isinstance(occ, dict):
        return NAN
    return float(sum(_num(occ.get(t, 0)) for t in conn_tables(pipeline, set(occ))))


def table_capacity(pipeline: str | None, p4rt: Any) -> float:
    """The per-connection tables' capacity under the loaded profile (the P4Runtime server's stats)."""
    caps = [_num(_get(p4rt, "tables", t, "capacity")) for t in conn_tables(pipeline, set(_get(p4rt, "tables") or {}))]
    caps = [c for c in caps if not math.isnan(c)]
    return float(sum(caps)) if caps else NAN


def cell_switch_metrics(cell_dir: Path, window_s: tuple[float, float] | None) -> dict[str, float]:
    """The COLUMNS of one cell (NaN where its files do not say)."""
    d = cell_dir / "switch"
    row = dict.fromkeys(COLUMNS, NAN)
    if not d.is_dir():
        return row
    window = _read_json(d / "window.json")
    window = window if isinstance(window, dict) else None
    start, end = (window or {}).get("start"), (window or {}).get("end")
    pipeline = pipeline_of(window, d)

    row.update({k: v for k, v in window_metrics(pipeline, start, end).items() if k in row})
    if math.isnan(row["cp_latency_p50_ms"]) and not isinstance(_get(end, "controlplane"), dict):
        row["cp_latency_p50_ms"], row["cp_latency_p99_ms"] = _pct_ms(_read_json(d / "controlplane-stats.json"),
                                                                     "request_latency_us", 1e-3)

    sp0, sp1 = _get(start, "slowpath"), _get(end, "slowpath")
    sp_end = sp1 if isinstance(sp1, dict) else _read_json(d / "slowpath-stats.json")
    # The slow path's stats file outlives it on the switch host: only a switch-only cell's counts.
    if isinstance(sp_end, dict) and pipeline == "switch_only":
        lat = _find(sp_end, "install_latency_ms")
        row["install_latency_p50_ms"], row["install_latency_p99_ms"] = _pct_ms({"l": lat}, "l", 1.0)
        for name in ("relayed_table_full", "relayed_install_failed"):
            if isinstance(sp0, dict) and isinstance(sp1, dict):
                a, b = _find(sp0, name), _find(sp1, name)
                row[name] = _num(0 if b is None else b) - _num(0 if a is None else a)

    recs = samples(d)
    keys = {k for r in recs for k in (r["stats"].get("occupancy") or {})}
    tables = conn_tables(pipeline, keys)
    if recs and tables:
        lo, hi = window_s or (-math.inf, math.inf)
        inside = [r for r in recs if lo <= float(r["time"]) <= hi] or recs
        row["occupancy_peak"] = float(max(sum(_num((r["stats"].get("occupancy") or {}).get(t, 0)) for t in tables)
                                          for r in inside))
    row["table_capacity"] = table_capacity(pipeline, _get(end, "p4rt") or _read_json(d / "p4rt-stats.json"))
    return row


def series(cell_dir: Path, window_s: tuple[float, float] | None) -> pd.DataFrame:
    """One row per control-plane sample and table: time_s (from the window's start), table, entries,
    conn_table (a per-connection table of the cell's pipeline), inserts_per_s, deletes_per_s, queued."""
    d = cell_dir / "switch"
    cols = ["time_s", "table", "entries", "conn_table", "inserts_per_s", "deletes_per_s", "queued"]
    recs = samples(d)
    if not recs:
        return pd.DataFrame(columns=cols)
    window = _read_json(d / "window.json")
    pipeline = pipeline_of(window if isinstance(window, dict) else None, d)
    keys = {k for r in recs for k in (r["stats"].get("occupancy") or {})}
    tables = set(conn_tables(pipeline, keys))
    origin = window_s[0] if window_s else float(recs[0]["time"])
    rows = []
    for r in recs:
        st = r["stats"]
        occ = dict(st.get("occupancy") or {})
        for t in tables:
            occ.setdefault(t, 0)   # a table appears in the stats with its first entry
        for table, entries in sorted(occ.items()):
            rows.append({"time_s": float(r["time"]) - origin, "table": table, "entries": _num(entries),
                         "conn_table": table in tables, "inserts_per_s": _num(st.get("inserts_per_s")),
                         "deletes_per_s": _num(st.get("deletes_per_s")), "queued": _num(st.get("queued"))})
    return pd.DataFrame(rows, columns=cols)


def profile_rate(profile: Any) -> float:
    """The sustained insertion rate of a cell.json `switch_profile` (updates/s): inf for an unpaced
    profile (rate null), NaN without a profile."""
    if not isinstance(profile, dict):
        return NAN
    ins = profile.get("insertion")
    if not isinstance(ins, dict):
        return NAN
    rate = ins.get("rate")
    return math.inf if rate is None else _num(rate)
