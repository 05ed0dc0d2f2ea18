"""Load run directories (docs/run-directory.md, format 1) into tidy pandas tables.

- `load_run(run_dir)` reads manifest.json and every cell.json into a `Run`.
- `requests(run_dir)` returns the raw per-request rows of all cells, in the measurement window.
- `cells(run_dir)` returns one row per cell with throughput, latency, errors, CPU cost and flags.
- `latency_by_object(run_dir)` returns latency percentiles per cell and catalog object.
- `switch_series(run_dir)` returns the control plane's samples (table occupancy, insertions/s) per
  cell over time; the switch columns of `cells` are defined in `analysis.switchstats`.

Percentiles use linear interpolation between order statistics (numpy's default, `method="linear"`),
over ok requests only. In an open-loop cell (cell.json load.mode "open") latency is measured from
each request's intended send time (`queue_us + latency_us`, workloads/openloop.py) and its
percentiles come from an HdrHistogram (1 µs to 1 h, 3 significant digits, `hdr_percentiles`);
`service_*` columns keep the latency from the actual send. Connect time (new connections) and time to
first byte are reported apart (`connect_*`, `ttfb_*`). Whole-machine CPU per request comes from
cpu.json "machine" (/proc/stat, softirq included). Cells the harness could not run (status "failed") are kept with their
identity and the "failed" flag, and NaN metrics.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from analysis import switchstats

FORMATS = (1,)
PERCENTILES = {"p50_us": 50.0, "p90_us": 90.0, "p99_us": 99.0, "p999_us": 99.9}
ERROR_KINDS = ("wrong-bytes", "short-body", "reset", "timeout", "http", "connect", "other")
SATURATED_UTIL = 0.9
# The emulated switch stands for a line-rate ASIC: a cell whose switch data plane (eBPF run time on
# the switch host) used more than this share of one core measured the emulator (system/switch/README.md).
SWITCH_BOUND_UTIL = 0.25
REQUEST_COLUMNS = {
    "start": "float64",
    "latency_us": "int64",
    "object": "string",
    "expected_bytes": "int64",
    "bytes": "int64",
    "status": "int64",
    "ok": "int64",
    "error": "string",
    "new_connection": "int64",
}
# Written since the open-loop mode (workloads/raw.py); older files lack them: queue 0, times NaN.
TIMING_COLUMNS = ("queue_us", "connect_us", "ttfb_us")
LATE_US = 10_000        # an open-loop send this late counts as the generator falling behind
BEHIND_SHARE = 0.01     # ... and more than this share of a cell's late sends flags it `generator-behind`
HDR_RANGE_US = (1, 3_600_000_000)


class RunFormatError(ValueError):
    """A run directory this code cannot read (unknown format version, missing manifest...)."""


@dataclass(frozen=True)
class Cell:
    """One cell.json, plus where it lives."""

    cell_id: str
    path: Path
    spec: dict[str, Any]

    @property
    def system(self) -> str:
        return str(self.spec.get("system", ""))

    @property
    def workload(self) -> dict[str, Any]:
        return self.spec.get("workload") or {}

    @property
    def load(self) -> dict[str, Any]:
        return self.spec.get("load") or {}

    @property
    def status(self) -> str:
        return str(self.spec.get("status", "failed"))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def window(self) -> tuple[float, float] | None:
        start, end = self.spec.get("measure_start"), self.spec.get("measure_end")
        if start is None or end is None:
            return None
        return float(start), float(end)

    @property
    def switch_profile(self) -> str:
        """The name of the switch profile the cell ran under ("" if none was recorded)."""
        prof = self.spec.get("switch_profile")
        return str(prof.get("name") or "") if isinstance(prof, dict) else ""

    @property
    def open_loop(self) -> bool:
        return self.load.get("mode") == "open"

    def identity(self) -> dict[str, Any]:
        """The columns that say which cell a row belongs to."""
        wl = self.workload
        return {
            "cell_id": self.cell_id,
            "system": self.system,
            "workload": wl.get("name", ""),
            "connection": wl.get("connection", ""),
            "users": self.load.get("users"),
            "mode": "open" if self.open_loop else "closed",
            "load": load_label(self.load.get("users"), self.open_loop, self.load.get("rate")),
            "offered_rps": float(self.load["rate"]) if self.open_loop and self.load.get("rate") else math.nan,
            "pace_rps": float(self.load["pace_rps"]) if self.load.get("pace_rps") is not None else math.nan,
            "repetition": self.spec.get("repetition"),
            "switch_profile": self.switch_profile,
            # the suite's attack axis: the attack played beside the load ("" none), and the workload
            # it ran beside (the name without `+<attack>`)
            "attack": str((self.spec.get("attack") or {}).get("name", "")),
            "base_workload": str((self.spec.get("attack") or {}).get("workload") or wl.get("name", "")),
        }


def load_label(users: Any, open_loop: bool, rate: Any) -> str:
    """How tables name a load level: the users of a closed loop ("16"), the offered rate of an open
    loop ("open 500/s")."""
    if open_loop and rate is not None:
        return f"open {float(rate):g}/s"
    return f"{users:g}" if isinstance(users, int | float) else str(users)


@dataclass(frozen=True)
class Run:
    path: Path
    manifest: dict[str, Any]
    cells: list[Cell] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.path.name))

    @property
    def emulated(self) -> bool:
        return bool(self.manifest.get("emulated", True))

    @property
    def planned(self) -> list[str]:
        """Every cell the suite planned (suite order); runs from before it was recorded: the cells run."""
        return list(self.manifest.get("planned") or self.manifest.get("cells") or [])

    @property
    def state(self) -> str:
        """complete | interrupted | failed | running (docs/run-directory.md); older runs: complete."""
        return str(self.manifest.get("state") or "complete")

    @property
    def missing(self) -> list[str]:
        """Planned cells that did not run (an interrupted or failed run), in suite order."""
        ran = set(self.manifest.get("cells") or [])
        return [c for c in self.planned if c not in ran]

    @property
    def complete(self) -> bool:
        return self.state == "complete" and not self.missing

    def host_roles(self) -> dict[str, str]:
        hosts = self.manifest.get("hosts") or {}
        return {name: str(facts.get("role", "")) for name, facts in hosts.items() if isinstance(facts, dict)}


def load_run(run_dir: str | Path) -> Run:
    """Read manifest.json and the cell.json of every cell the manifest lists (in run order)."""
    path = Path(run_dir)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise RunFormatError(f"{path}: no manifest.json; not a run directory")
    manifest = json.loads(manifest_path.read_text())
    version = manifest.get("format")
    if version not in FORMATS:
        raise RunFormatError(
            f"{manifest_path}: run directory format {version!r} is not supported "
            f"(this analysis reads format {', '.join(map(str, FORMATS))})"
        )
    cells = []
    for cell_id in manifest.get("cells", []):
        cdir = path / "cells" / cell_id
        cell_json = cdir / "cell.json"
        if cell_json.is_file():
            spec = json.loads(cell_json.read_text())
        else:
            spec = {"cell_id": cell_id, "status": "failed", "error": f"{cell_json} is missing"}
        cells.append(Cell(cell_id=cell_id, path=cdir, spec=spec))
    return Run(path=path, manifest=manifest, cells=cells)


def _as_run(run: str | Path | Run) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _read_request_files(cell: Cell) -> pd.DataFrame:
    frames = []
    for csv_path in sorted((cell.path / "requests").glob("*.csv")):
        df = pd.read_csv(csv_path, dtype={"object": "string", "error": "string"}, keep_default_na=False)
        missing = set(REQUEST_COLUMNS) - set(df.columns)
        if missing:
            raise RunFormatError(f"{csv_path}: missing columns {sorted(missing)}")
        timing = {c: pd.to_numeric(df[c], errors="coerce") if c in df.columns else
                  pd.Series(0 if c == "queue_us" else math.nan, index=df.index, dtype="float64")
                  for c in TIMING_COLUMNS}
        df = df[list(REQUEST_COLUMNS)].astype(REQUEST_COLUMNS)
        df["queue_us"] = timing["queue_us"].fillna(0).astype("int64")
        df["connect_us"] = timing["connect_us"].astype("float64")
        df["ttfb_us"] = timing["ttfb_us"].astype("float64")
        df["source"] = csv_path.stem
        frames.append(df)
    if not frames:
        empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in REQUEST_COLUMNS.items()})
        empty["queue_us"] = pd.Series(dtype="int64")
        empty["connect_us"] = pd.Series(dtype="float64")
        empty["ttfb_us"] = pd.Series(dtype="float64")
        empty["source"] = pd.Series(dtype="string")
        return empty
    return pd.concat(frames, ignore_index=True)


def cell_requests(cell: Cell, window: bool = True) -> pd.DataFrame:
    """The raw rows of one cell; with `window`, only requests started in [measure_start, measure_end)."""
    df = _read_request_files(cell)
    if window and cell.window is not None:
        start, end = cell.window
        df = df[(df["start"] >= start) & (df["start"] < end)]
    return df.reset_index(drop=True)


def requests(run_dir: str | Path | Run, window: bool = True, include_failed: bool = False) -> pd.DataFrame:
    """Raw per-request rows of all cells with the cell's identity columns (cell_id, system, workload,
    connection, users, pace_rps, repetition), filtered to each cell's measurement window by start time.
    Cells with status failed are left out unless `include_failed`."""
    run = _as_run(run_dir)
    frames = []
    for cell in run.cells:
        if not cell.ok and not include_failed:
            continue
        df = cell_requests(cell, window=window)
        for col, value in reversed(cell.identity().items()):
            df.insert(0, col, value)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=[*Cell("", Path(), {}).identity(), *REQUEST_COLUMNS, *TIMING_COLUMNS,
                                     "source", "latency_ms", "user_latency_us"])
    out = pd.concat(frames, ignore_index=True)
    out["latency_ms"] = out["latency_us"] / 1000.0
    # The latency a user saw: from the intended send time in open loop (queue_us is 0 in a closed loop).
    out["user_latency_us"] = out["queue_us"] + out["latency_us"]
    return out


def percentiles(latency_us: pd.Series | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/p99.9 in microseconds (linear interpolation); NaN for an empty set."""
    values = np.asarray(latency_us, dtype=float)
    if values.size == 0:
        return dict.fromkeys(PERCENTILES, math.nan)
    return {name: float(np.percentile(values, q)) for name, q in PERCENTILES.items()}


def hdr_percentiles(latency_us: pd.Series | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/p99.9 in microseconds from an HdrHistogram of the values (1 µs to 1 h, 3
    significant digits: each value within 0.1%); NaN for an empty set."""
    values = np.asarray(latency_us, dtype=np.int64)
    if values.size == 0:
        return dict.fromkeys(PERCENTILES, math.nan)
    h = HdrHistogram(HDR_RANGE_US[0], HDR_RANGE_US[1], 3)
    for v in np.clip(values, HDR_RANGE_US[0], HDR_RANGE_US[1]).tolist():
        h.record_value(v)
    return {name: float(h.get_value_at_percentile(q)) for name, q in PERCENTILES.items()}


def error_kind(error: str) -> str:
    """Map a raw `error` value to one of ERROR_KINDS ("http-503" -> "http", "other:..." -> "other")."""
    if error.startswith("http-"):
        return "http"
    if error in ERROR_KINDS:
        return error
    return "other"


def _error_counts(df: pd.DataFrame) -> dict[str, int]:
    failed = df[df["ok"] != 1]
    kinds = failed["error"].fillna("").map(error_kind)
    counts = kinds.value_counts()
    return {f"err_{k.replace('-', '_')}": int(counts.get(k, 0)) for k in ERROR_KINDS}


@dataclass(frozen=True)
class CpuUse:
    lb_cpu_s: float
    backend_cpu_s: float
    agent_cpu_s: float
    switch_cpu_s: float
    generator_cpu_s: float
    generator_processes: int
    window_s: float | None
    lb_bpf_s: float = math.nan       # BPF run time on front-end hosts (part of lb_cpu_s)
    agent_bpf_s: float = math.nan    # on back-end hosts: the agents' programs (part of agent_cpu_s)
    switch_bpf_s: float = math.nan   # on the switch host: the emulated data plane (part of switch_cpu_s)
    slowpath_cpu_s: float = math.nan  # processes on the switch host: switch-only's slow path
    machine_busy_s: float = math.nan  # whole machine(s) busy (/proc/stat, softirq included)
    machine_cpus: int = 0             # CPUs of those machines
    pinned_lb_s: float = math.nan     # budget suite: busy time of the CPU(s) the load balancer had alone
    pinned_lb_cpus: int = 0


def bpf_run_time_s(row: dict[str, Any]) -> float:
    """A cpu.json "bpf" row's run time in seconds: `run_time_ns` (integer nanoseconds, format 2 and
    later) or, in older run directories, `run_time_s` (rounded to microseconds when it was written)."""
    if "run_time_ns" in row:
        return int(row["run_time_ns"]) / 1e9
    return float(row.get("run_time_s", 0.0))


def cpu_use(cell: Cell, host_roles: dict[str, str]) -> CpuUse | None:
    """Sum cpu.json by role. BPF run time counts for the role of the host it ran on (the row's
    `role`, else the processes rows of the same host, else the manifest's hosts). Roles with no row
    give NaN; the BPF parts are NaN when cpu.json has no BPF rows (statistics not collected) and 0
    for a role without programs otherwise."""
    path = cell.path / "cpu.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    roles = dict(host_roles)
    sums: dict[str, float] = {}
    agent = math.nan
    gen_pids = 0
    for proc in data.get("processes", []):
        role = str(proc.get("role", ""))
        roles.setdefault(str(proc.get("host", "")), role)
        cpu = float(proc.get("user_s", 0.0)) + float(proc.get("system_s", 0.0))
        sums[role] = sums.get(role, 0.0) + cpu
        if proc.get("service") == "agent":
            agent = (0.0 if math.isnan(agent) else agent) + cpu
        if role == "client":
            # Capacity is one core per Locust worker process; the master's CPU counts as generator
            # time but it is no worker (rows without `instance` count their PIDs).
            instance = proc.get("instance")
            if instance is None:
                gen_pids += len(proc.get("pids") or [])
            elif str(instance).startswith("locust-worker"):
                gen_pids += 1
    switch_procs = sums.get("switch", math.nan)
    bpf_rows = data.get("bpf") or []
    # A role with processes but no programs ran 0 s of BPF (when statistics were collected at all).
    bpf: dict[str, float] = {role: 0.0 if bpf_rows and role in sums else math.nan
                             for role in ("frontend", "backend", "switch")}
    for prog in bpf_rows:
        role = str(prog.get("role") or roles.get(str(prog.get("host", "")), ""))
        run_time = bpf_run_time_s(prog)
        sums[role] = sums.get(role, 0.0) + run_time
        bpf[role] = (0.0 if math.isnan(bpf.get(role, math.nan)) else bpf[role]) + run_time
        if role == "backend":
            agent = (0.0 if math.isnan(agent) else agent) + run_time
    window = data.get("window_s")
    machine = data.get("machine") or []
    # The budget suite (harness/cpuplan.py): the load balancer alone on `lb_cpus`, its receive work
    # steered there; their busy time (/proc/stat) is its measured cost.
    lb_cpus = [str(c) for c in (cell.spec.get("cpu_plan") or {}).get("lb_cpus") or []]
    pinned = math.nan
    if lb_cpus and len(machine) == 1 and all(c in (machine[0].get("per_cpu_busy_s") or {}) for c in lb_cpus):
        pinned = sum(float(machine[0]["per_cpu_busy_s"][c]) for c in lb_cpus)
    return CpuUse(
        pinned_lb_s=pinned, pinned_lb_cpus=len(lb_cpus),
        machine_busy_s=sum(float(m.get("busy_s", 0.0)) for m in machine) if machine else math.nan,
        machine_cpus=sum(int(m.get("cpus", 0)) for m in machine),
        lb_cpu_s=sums.get("frontend", math.nan),
        backend_cpu_s=sums.get("backend", math.nan),
        agent_cpu_s=agent,
        switch_cpu_s=sums.get("switch", math.nan),
        generator_cpu_s=sums.get("client", math.nan),
        generator_processes=gen_pids,
        window_s=float(window) if window is not None else None,
        lb_bpf_s=bpf["frontend"], agent_bpf_s=bpf["backend"], switch_bpf_s=bpf["switch"],
        slowpath_cpu_s=switch_procs,
    )


def _div(a: float, b: float) -> float:
    return a / b if b and not (math.isnan(a) or math.isnan(b)) else math.nan


CPU_COLUMNS = ["lb_cpu_s", "backend_cpu_s", "agent_cpu_s", "switch_cpu_s", "generator_cpu_s", "generator_util",
               "lb_bpf_s", "agent_bpf_s", "switch_bpf_s", "switch_bpf_util", "slowpath_cpu_s", "machine_busy_s",
               "machine_util", "machine_excl_gen_s", "pinned_lb_s", "pinned_lb_util"]
# CPU seconds per ok request: front-end (incl. its eBPF), of which eBPF; agents (incl. eBPF); the
# switch-only slow path (processes on the switch host); the emulated switch's data plane (eBPF).
# The whole machine (/proc/stat busy time: every process, softirq and irq), and it less the load
# generator's processes (on the local testbed the generator shares the machine).
PER_REQUEST = {"cpu_s_per_req": "lb_cpu_s", "lb_bpf_s_per_req": "lb_bpf_s", "agent_cpu_s_per_req": "agent_cpu_s",
               "slowpath_cpu_s_per_req": "slowpath_cpu_s", "switch_bpf_s_per_req": "switch_bpf_s",
               "machine_s_per_req": "machine_busy_s", "machine_excl_gen_s_per_req": "machine_excl_gen_s",
               "pinned_lb_s_per_req": "pinned_lb_s"}
TIMING = ("service_p50_us", "service_p99_us", "connect_p50_us", "connect_p99_us", "ttfb_p50_us", "ttfb_p99_us",
          "queue_p99_us", "behind_share", "achieved_share")


def _metric_columns() -> list[str]:
    return [
        "requests", "ok", "failed", *(f"err_{k.replace('-', '_')}" for k in ERROR_KINDS),
        "duration_s", "rps", "goodput_gbps", "latency_object", *PERCENTILES, *TIMING,
        *CPU_COLUMNS, *PER_REQUEST, "cpu_s_per_gb", "profile_insert_rate", *switchstats.COLUMNS,
        "attack_sent", "attack_pps",
    ]


def cell_metrics(cell: Cell, host_roles: dict[str, str]) -> dict[str, Any]:
    """The metrics of one cell that ran (status ok)."""
    df = cell_requests(cell)
    start, end = cell.window or (math.nan, math.nan)
    duration = end - start
    ok = df[df["ok"] == 1]
    body_bytes = float(ok["bytes"].sum())
    latency_of = cell.workload.get("latency_of")
    lat = ok[ok["object"] == latency_of] if latency_of else ok
    # from the intended send time in open loop (HdrHistogram), from the send in a closed loop
    lat_pct = hdr_percentiles(lat["queue_us"] + lat["latency_us"]) if cell.open_loop \
        else percentiles(lat["latency_us"])
    service = percentiles(lat["latency_us"])
    conn = lat["connect_us"].dropna()
    ttfb = lat["ttfb_us"].dropna()

    def pct(values: pd.Series, q: float) -> float:
        return float(np.percentile(values, q)) if len(values) else math.nan

    offered = float(cell.load["rate"]) if cell.open_loop and cell.load.get("rate") else math.nan
    row: dict[str, Any] = {
        "requests": len(df),
        "ok": len(ok),
        "failed": len(df) - len(ok),
        **_error_counts(df),
        "duration_s": duration,
        "rps": _div(len(ok), duration),
        "goodput_gbps": _div(body_bytes * 8, duration) / 1e9,
        "latency_object": latency_of or "all",
        **lat_pct,
        "service_p50_us": service["p50_us"], "service_p99_us": service["p99_us"],
        "connect_p50_us": pct(conn, 50), "connect_p99_us": pct(conn, 99),
        "ttfb_p50_us": pct(ttfb, 50), "ttfb_p99_us": pct(ttfb, 99),
        "queue_p99_us": pct(df["queue_us"], 99) if cell.open_loop else math.nan,
        "behind_share": _div(float((df["queue_us"] > LATE_US).sum()), len(df)) if cell.open_loop else math.nan,
        "achieved_share": _div(_div(len(ok), duration), offered),
    }
    cpu = cpu_use(cell, host_roles)
    if cpu is None:
        row.update(dict.fromkeys(CPU_COLUMNS, math.nan))
    else:
        cores = cpu.generator_processes or int(cell.spec.get("generator", {}).get("workers") or 0)
        cpu_window = cpu.window_s if cpu.window_s else duration
        row.update(
            lb_cpu_s=cpu.lb_cpu_s, backend_cpu_s=cpu.backend_cpu_s, agent_cpu_s=cpu.agent_cpu_s,
            switch_cpu_s=cpu.switch_cpu_s, generator_cpu_s=cpu.generator_cpu_s,
            generator_util=_div(cpu.generator_cpu_s, cpu_window * cores),
            lb_bpf_s=cpu.lb_bpf_s, agent_bpf_s=cpu.agent_bpf_s, switch_bpf_s=cpu.switch_bpf_s,
            switch_bpf_util=_div(cpu.switch_bpf_s, cpu_window),   # share of one core
            slowpath_cpu_s=cpu.slowpath_cpu_s, machine_busy_s=cpu.machine_busy_s,
            machine_util=_div(cpu.machine_busy_s, cpu_window * cpu.machine_cpus),
            machine_excl_gen_s=cpu.machine_busy_s - cpu.generator_cpu_s,
            pinned_lb_s=cpu.pinned_lb_s, pinned_lb_util=_div(cpu.pinned_lb_s, cpu_window * cpu.pinned_lb_cpus),
        )
    for column, source in PER_REQUEST.items():
        row[column] = _div(row[source], len(ok))
    row["cpu_s_per_gb"] = _div(row["lb_cpu_s"], body_bytes / 1e9)
    row["profile_insert_rate"] = switchstats.profile_rate(cell.spec.get("switch_profile"))
    row.update(switchstats.cell_switch_metrics(cell.path, cell.window))
    attack = cell.spec.get("attack_report") or {}
    row["attack_sent"] = float(attack["sent"]) if "sent" in attack else math.nan
    row["attack_pps"] = _div(row["attack_sent"], float(attack.get("elapsed_s") or math.nan))
    return row


def _flags(row: dict[str, Any]) -> str:
    flags = []
    if row["status"] != "ok":
        flags.append("failed")
    else:
        if row["errors"]:
            flags.append("errors")
        if row["generator_saturated"]:
            flags.append("generator-saturated")
        if row["switch_bound"]:
            flags.append("switch-bound")
        if row.get("generator_behind"):
            flags.append("generator-behind")
    return ",".join(flags)


def cells(run_dir: str | Path | Run) -> pd.DataFrame:
    """One tidy row per cell (in run order): identity, status, counts, throughput, latency (us), CPU,
    flags (`errors`, `generator_saturated`, `switch_bound`, and a `flags` text) and `emulated`. Failed cells keep
    their identity and status with NaN metrics; `usable` is True for cells that ran without errors."""
    run = _as_run(run_dir)
    roles = run.host_roles()
    rows = []
    for cell in run.cells:
        sizes = [int(o["size"]) for o in cell.workload.get("objects") or []]
        row: dict[str, Any] = {**cell.identity(), "status": cell.status,
                               "cell_error": cell.spec.get("error"),
                               "min_object_bytes": min(sizes) if sizes else math.nan,
                               "max_object_bytes": max(sizes) if sizes else math.nan}
        if cell.ok:
            row.update(cell_metrics(cell, roles))
        else:
            row.update(dict.fromkeys(_metric_columns(), math.nan))
        row["errors"] = bool(cell.ok and row["failed"] > 0)
        util = row["generator_util"]
        row["generator_saturated"] = bool(cell.ok and not math.isnan(util) and util >= SATURATED_UTIL)
        sw = row["switch_bpf_util"]
        row["switch_bound"] = bool(cell.ok and not math.isnan(sw) and sw > SWITCH_BOUND_UTIL)
        behind = row.get("behind_share", math.nan)
        row["generator_behind"] = bool(cell.ok and not math.isnan(behind) and behind > BEHIND_SHARE)
        row["flags"] = _flags(row)
        row["usable"] = bool(cell.ok and not row["errors"])
        row["emulated"] = run.emulated
        rows.append(row)
    columns = [*Cell("", Path(), {}).identity(), "status", "cell_error", "min_object_bytes",
               "max_object_bytes", *_metric_columns(),
               "errors", "generator_saturated", "switch_bound", "generator_behind", "flags", "usable", "emulated"]
    return pd.DataFrame(rows, columns=columns)


def latency_by_object(run_dir: str | Path | Run) -> pd.DataFrame:
    """Latency percentiles (us, ok requests) per cell and object, with request counts."""
    run = _as_run(run_dir)
    rows = []
    for cell in run.cells:
        if not cell.ok:
            continue
        df = cell_requests(cell)
        for obj, group in df.groupby("object", sort=False):
            ok = group[group["ok"] == 1]
            rows.append({**cell.identity(), "object": obj, "size": int(group["expected_bytes"].iloc[0]),
                         "requests": len(group), "ok": len(ok), **percentiles(ok["latency_us"])})
    columns = [*Cell("", Path(), {}).identity(), "object", "size", "requests", "ok", *PERCENTILES]
    df = pd.DataFrame(rows, columns=columns)
    return df.sort_values(["cell_id", "size"], kind="stable", ignore_index=True)


def switch_series(run_dir: str | Path | Run) -> pd.DataFrame:
    """The control plane's stats sampled about every second during each cell that ran, one row per
    sample and table: identity, time_s (seconds from the window's start; negative in the warm-up),
    table, entries, conn_table, inserts_per_s, deletes_per_s, queued (analysis.switchstats.series)."""
    run = _as_run(run_dir)
    frames = []
    for cell in run.cells:
        if not cell.ok:
            continue
        df = switchstats.series(cell.path, cell.window)
        if df.empty:
            continue
        for col, value in reversed(cell.identity().items()):
            df.insert(0, col, value)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=[*Cell("", Path(), {}).identity(), "time_s", "table", "entries", "conn_table",
                                     "inserts_per_s", "deletes_per_s", "queued"])
    return pd.concat(frames, ignore_index=True)


def locust_stats(run_dir: str | Path | Run) -> pd.DataFrame:
    """Locust's own stats.csv rows of every cell (for cross-checking the raw records)."""
    run = _as_run(run_dir)
    frames = []
    for cell in run.cells:
        path = cell.path / "locust" / "stats.csv"
        if path.is_file():
            df = pd.read_csv(path, keep_default_na=False)
            df.insert(0, "cell_id", cell.cell_id)
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["cell_id"])


def workload_sizes(run: Run) -> dict[str, list[int]]:
    """Object sizes per workload name (from the cells' workload specs)."""
    sizes: dict[str, list[int]] = {}
    for cell in run.cells:
        wl = cell.workload
        if wl.get("name") and wl.get("objects"):
            sizes.setdefault(wl["name"], sorted(int(o["size"]) for o in wl["objects"]))
    return sizes
