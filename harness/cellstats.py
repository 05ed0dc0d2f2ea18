"""Per-cell system counters, collected beside the CPU times (docs/run-directory.md).

- BPF run time per program (cpu.json "bpf" rows): the kernel's BPF statistics are on for the cell,
  through BPF_ENABLE_STATS (reference counted, released when its fd closes: never the global
  `kernel.bpf_stats_enabled` sysctl, whose save/restore would race with other runs on a shared
  kernel). On the local testbed the harness process holds the fd (every host shares its kernel); on a
  cluster a small holder process (`bpf-stats`, bounded lifetime) runs on each measured host that has
  the project's code. `bpftool prog show pinned` of every program the harness pinned on a host (its
  pin directories, `bpf_pin_globs`) is read at the window's start and end; rows are the deltas.
- `switch/window.json`: at the window's start and end, the emulated switch's per-table and per-port
  counters (read from its pinned maps on the switch host), the control plane's live stats, the
  P4Runtime server's, the switch-only slow path's and each front-end's stats files.
- `switch/controlplane-samples.jsonl`: the control plane's stats about once a second from the cell's
  start to the end of its window (occupancy per table, insertions and deletions per second, latency).

Collection never stops a run: a failure is logged and recorded in window.json (`errors`).
"""

from __future__ import annotations

import json
import os
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import deploy as dep
from harness import testbed
from harness.inventory import Host, Inventory
from harness.remote import Remote, RemoteError

SAMPLE_INTERVAL_S = 1.0
STATS_HOLDER = "bpf-stats"          # the holder service's name (pid file under <workdir>/run/)
STATS_HOLDER_MAX_S = 900            # a holder never outlives this, even if the harness dies
# Run on a cluster host (in its deployment directory): BPF statistics on while this process lives.
_HOLDER_SCRIPT = """
import sys, time
from system.bpf.syscall import enable_stats
fd = enable_stats()
print("BPF statistics enabled (fd %d) for at most %s s" % (fd, sys.argv[1]), flush=True)
time.sleep(float(sys.argv[1]))
"""

# Run on the switch host (in its deployment directory): the pipeline's table and port counters.
_COUNTERS_SCRIPT = """
import json, sys, time
from pathlib import Path
from system.switch import tables as T
spec = T.pipeline_spec(sys.argv[1])
with T.PipelineTables(spec, Path(sys.argv[2])) as pt:
    out = {"time": time.time(), "pipeline": spec.name,
           "tables": {t.name: pt.counters(t.name) for t in spec.tables},
           "ports": {str(p): c for p, c in pt.port_counters().items()}}
print(json.dumps(out))
"""


def log(msg: str) -> None:
    print(f"[run] {msg}", flush=True)


def bpf_pin_globs(inv: Inventory, host: Host) -> list[str]:
    """Where the harness pins a host's BPF programs (harness/deploy.py): on the local testbed
    /sys/fs/bpf/<netns> (the switch) and /sys/fs/bpf/<netns>-<part> (front-end, agent); on a cluster
    /sys/fs/bpf/miresga-<part>. Programs elsewhere (other testbeds on the same kernel) are not counted."""
    if inv.kind == "local":
        ns = testbed.netns(host)
        return [f"/sys/fs/bpf/{ns}/progs/*", f"/sys/fs/bpf/{ns}-*/progs/*"]
    return ["/sys/fs/bpf/miresga-*/progs/*"]


def switch_pin_dir(inv: Inventory) -> str:
    """The emulated switch's pin directory, as deploy_switch chooses it."""
    return f"/sys/fs/bpf/{testbed.netns(inv.switch_host)}" if inv.kind == "local" else "/sys/fs/bpf/miresga-switch"


def _bpf_listing_cmd(globs: list[str]) -> str:
    return (f"for p in {' '.join(globs)}; do [ -e \"$p\" ] || continue; "
            "printf '%s\\t' \"$p\"; bpftool -j prog show pinned \"$p\" 2>/dev/null || echo '{}'; echo; done")


def parse_bpf_listing(text: str) -> dict[str, dict[str, Any]]:
    """pinned path -> {id, name, run_time_ns, run_cnt} from `_bpf_listing_cmd` output."""
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        path, sep, js = line.partition("\t")
        if not sep or not js.strip():
            continue
        try:
            info = json.loads(js)
        except json.JSONDecodeError:
            continue
        if not isinstance(info, dict) or "id" not in info:
            continue
        out[path] = {"id": int(info["id"]), "name": str(info.get("name", "")),
                     "run_time_ns": int(info.get("run_time_ns", 0)), "run_cnt": int(info.get("run_cnt", 0))}
    return out


# /proc/stat's "cpu" line: jiffies of USER_HZ (100 on every Linux architecture the harness runs on;
# the kernel's HZ does not change it). guest and guest_nice are already counted in user and nice.
USER_HZ = 100
PROC_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
LOCAL_MACHINE = "(machine)"   # the host name of the local testbed's row: all its hosts share one kernel


def _times(parts: list[str]) -> dict[str, float]:
    values = [int(v) for v in parts[1:1 + len(PROC_STAT_FIELDS)]]
    values += [0] * (len(PROC_STAT_FIELDS) - len(values))
    return {f"{k}_s": v / USER_HZ for k, v in zip(PROC_STAT_FIELDS, values, strict=True)}


def _busy(times: dict[str, float]) -> float:
    """Busy = everything but idle and iowait (softirq and irq included)."""
    return sum(times[f"{k}_s"] for k in PROC_STAT_FIELDS if k not in ("idle", "iowait"))


def parse_proc_stat(text: str) -> dict[str, Any]:
    """The whole machine's CPU times (seconds, summed over CPUs), its CPU count, and each CPU's busy
    seconds (`per_cpu_busy_s`, by CPU number: the budget suite's pinned load balancer) from /proc/stat."""
    out: dict[str, Any] = {}
    per_cpu: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "cpu":
            out.update(_times(parts))
        elif parts[0].startswith("cpu") and parts[0][3:].isdigit():
            per_cpu[parts[0][3:]] = _busy(_times(parts))
    if not out:
        raise ValueError("no aggregate 'cpu' line in /proc/stat text")
    out["cpus"] = len(per_cpu)
    out["per_cpu_busy_s"] = per_cpu
    return out


def machine_row(host: str, start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """cpu.json "machine" row: CPU seconds by kind over the window between two readings (`time` is
    when each was read), busy = everything but idle and iowait (softirq and irq included)."""
    row: dict[str, Any] = {"host": host, "cpus": end["cpus"], "window_s": round(end["time"] - start["time"], 3)}
    for k in PROC_STAT_FIELDS:
        row[f"{k}_s"] = round(max(0.0, end[f"{k}_s"] - start[f"{k}_s"]), 2)
    row["busy_s"] = round(_busy(row), 2)
    a, b = start.get("per_cpu_busy_s") or {}, end.get("per_cpu_busy_s") or {}
    row["per_cpu_busy_s"] = {c: round(max(0.0, b[c] - a[c]), 2) for c in b if c in a}
    return row


def bpf_rows(hosts: dict[str, str], start: dict[str, dict[str, dict[str, Any]]],
             end: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """cpu.json "bpf" rows: per host and pinned program, run time (integer nanoseconds, as the kernel
    counts them: a fast machine's sub-microsecond totals must not round to zero) and count over the window.
    `hosts` maps host name -> role; `start`/`end` are host -> `parse_bpf_listing` results. A program
    not present at the start (or reloaded: another id) counts from zero."""
    rows = []
    for host, progs in end.items():
        for path, e in sorted(progs.items()):
            s = start.get(host, {}).get(path)
            if s is None or s["id"] != e["id"]:
                s = {"run_time_ns": 0, "run_cnt": 0}
            rows.append({"host": host, "role": hosts.get(host, ""), "program": Path(path).name,
                         "pinned": path, "id": e["id"],
                         "run_time_ns": max(0, e["run_time_ns"] - s["run_time_ns"]),
                         "run_count": max(0, e["run_cnt"] - s["run_cnt"])})
    return rows


class CellCollector:
    """Collects one cell's system counters: `begin()` before the load starts, `snapshot("start")` and
    `snapshot("end")` at the window's edges, `finish()` after the load, then `write(cell_dir)`."""

    def __init__(self, inv: Inventory, sysd: dep.System, bpf_stats: bool = True) -> None:
        self.inv = inv
        self.sysd = sysd
        self.bpf_stats = bpf_stats
        roles = {role for role, _ in sysd.measured}
        self.emulated_switch = inv.switch.target == "emulated"
        # A real switch (tofino): its counters come over P4Runtime (harness/p4rtstats.py), not from maps.
        self.p4rt_counters = inv.switch.target == "tofino"
        self.controlplane = self.emulated_switch or self.p4rt_counters
        hosts = [h for h in inv.hosts if h.role in roles]
        if self.emulated_switch and inv.switch_host not in hosts:
            hosts.append(inv.switch_host)
        self.hosts = hosts
        self.remotes: dict[str, Remote] = {}
        self.errors: list[str] = []
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.samples: list[dict[str, Any]] = []
        self._stats_fd: int | None = None
        self._holders: list[Remote] = []
        self._cp_lock = threading.Lock()
        self._cp: Any = None
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._snap_thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def _remote(self, h: Host) -> Remote:
        if h.name not in self.remotes:
            self.remotes[h.name] = Remote(self.inv, h)
        return self.remotes[h.name]

    def _error(self, what: str, e: BaseException) -> None:
        msg = f"{what}: {e}"
        self.errors.append(msg)
        log(f"  (collection: {msg})")

    def begin(self) -> None:
        if self.bpf_stats:
            self._enable_bpf_stats()
        if self.controlplane:
            self._sampler = threading.Thread(target=self._sample_loop, name="cp-sampler", daemon=True)
            self._sampler.start()

    def _enable_bpf_stats(self) -> None:
        if self.inv.kind == "local":
            from system.bpf.syscall import enable_stats
            try:
                self._stats_fd = enable_stats()
            except OSError as e:
                self._error("enabling BPF statistics (BPF_ENABLE_STATS)", e)
            return
        for h in self.hosts:
            try:
                r = self._remote(h)
                if r.run(f"test -f {h.workdir}/system/bpf/syscall.py && echo yes", check=False).strip() != "yes":
                    continue   # no project code there, so no program of the harness either
                r.stop(STATS_HOLDER)
                r.start(STATS_HOLDER, f"{r.python()} -c {shlex.quote(_HOLDER_SCRIPT)} {STATS_HOLDER_MAX_S}")
                self._holders.append(r)
            except RemoteError as e:
                self._error(f"{h.name}: enabling BPF statistics", e)

    def finish(self) -> None:
        self.join()
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=10)
        if self._stats_fd is not None:
            os.close(self._stats_fd)
            self._stats_fd = None
        for r in self._holders:
            try:
                r.stop(STATS_HOLDER)
            except RemoteError as e:
                self._error(f"{r.name}: stopping {STATS_HOLDER}", e)
        self._holders.clear()
        with self._cp_lock:
            if self._cp is not None:
                self._cp.close()
                self._cp = None

    def abandon(self) -> None:
        """Closes what this process holds without waiting for anything (the run is being stopped;
        a cluster's `bpf-stats` holders are services the run's clean-up stops by PID)."""
        self._stop.set()
        if self._stats_fd is not None:
            os.close(self._stats_fd)
            self._stats_fd = None
        with self._cp_lock:
            if self._cp is not None:
                self._cp.close()
                self._cp = None
        for r in self.remotes.values():
            r.close()
        self.remotes.clear()

    def close(self) -> None:
        self.finish()
        for r in self.remotes.values():
            r.close()
        self.remotes.clear()

    # -- the control plane ---------------------------------------------------------------------

    def _cp_stats(self, retired_after: int | None = None) -> dict[str, Any]:
        from harness.credentials import monitor as monitor_credentials
        from system.controlplane.protocol import Client
        sw = self.inv.switch_host
        with self._cp_lock:
            if self._cp is None:
                self._cp = Client((str(sw.mgmt_address or sw.ssh_address), dep.CONTROLPLANE_PORT), timeout=3,
                                  name="harness-stats", credentials=monitor_credentials(self.inv))
            try:
                rep = self._cp.stats(retired_after)
            except (OSError, ValueError):
                self._cp.close()
                self._cp = None
                raise
        if rep.get("type") != "stats":
            raise ValueError(f"unexpected reply {rep.get('type')!r}")
        return dict(rep["stats"])

    def _sample_loop(self) -> None:
        failures = 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.samples.append({"time": time.time(), "stats": self._cp_stats()})
            except (OSError, ValueError) as e:
                failures += 1
                if failures == 1:
                    self._error("sampling the control plane's stats", e)
            next_t += SAMPLE_INTERVAL_S
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    # -- snapshots -----------------------------------------------------------------------------

    def snapshot(self, label: str) -> None:
        """Everything read at one edge of the window (`label` "start" or "end"): the control plane
        and every host in parallel, so that the snapshot spans as little time as possible."""
        snap: dict[str, Any] = {"time": time.time(), "bpf": {}, "frontends": {}, "procstat": {}}
        if self.inv.kind == "local":
            try:
                snap["procstat"][LOCAL_MACHINE] = parse_proc_stat(Path("/proc/stat").read_text()) | \
                    {"time": time.time()}
            except (OSError, ValueError) as e:
                self._error(f"{label}: /proc/stat", e)
        with ThreadPoolExecutor(max_workers=len(self.hosts) + 1) as pool:
            cp = pool.submit(self._counters_then_cp_stats) if self.controlplane else None
            outs = {h.name: pool.submit(self._host_read, h) for h in self.hosts}
        if cp is not None:
            counters, cp_out = cp.result()
            if isinstance(counters, BaseException):
                self._error(f"{label}: the switch's counters over P4Runtime", counters)
            elif counters is not None:
                snap["p4rt"] = counters.pop("p4rt")
                snap["counters"] = counters
            if isinstance(cp_out, BaseException):
                self._error(f"{label}: the control plane's stats", cp_out)
                if isinstance(counters, dict):
                    counters.pop("live", None)     # per-entry counters: only for add_retired
            else:
                snap["controlplane_time"], snap["controlplane"] = cp_out
                if counters is not None and not isinstance(counters, BaseException):
                    from harness.p4rtstats import add_retired
                    add_retired(counters, cp_out[1])
        for h in self.hosts:
            try:
                out = outs[h.name].result()
            except RemoteError as e:
                self._error(f"{label}: {h.name}", e)
                continue
            for name, text in _sections(out).items():
                if name == "bpf":
                    snap["bpf"][h.name] = parse_bpf_listing(text)
                    continue
                if name == "procstat":
                    try:
                        snap["procstat"][h.name] = parse_proc_stat(text) | {"time": time.time()}
                    except ValueError as e:
                        self._error(f"{label}: {h.name} /proc/stat", e)
                    continue
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    self._error(f"{label}: {h.name} {name}", ValueError(text.strip()[-300:]))
                    continue
                if name == "frontend":
                    snap["frontends"][h.name] = value
                else:
                    snap[name] = value
        snap["took_s"] = round(time.time() - snap["time"], 3)
        self.snapshots[label] = snap

    def snapshot_async(self, label: str) -> None:
        """`snapshot(label)` in a thread (the runner reads CPU times meanwhile); `join()` waits."""
        self.join()
        self._snap_thread = threading.Thread(target=self._snapshot_logged, args=(label,), name=f"snap-{label}",
                                             daemon=True)
        self._snap_thread.start()

    def _snapshot_logged(self, label: str) -> None:
        try:
            self.snapshot(label)
        except Exception as e:  # a snapshot must never stop a run
            self._error(f"{label}: snapshot", e)

    def join(self) -> None:
        if self._snap_thread is not None:
            self._snap_thread.join(timeout=60)
            self._snap_thread = None

    def _timed_cp_stats(self, retired_after: int | None = None) -> tuple[float, dict[str, Any]]:
        t0 = time.time()
        stats = self._cp_stats(retired_after)
        return (t0 + time.time()) / 2, stats

    def _counters_then_cp_stats(self) -> tuple[Any, Any]:
        """(P4Runtime counters or None or the error, (time, control-plane stats) or the error). With
        P4Runtime counters: the control plane's stats before the read (its `retired_seq`) and after
        it (the entries deleted meanwhile, harness/p4rtstats.py `add_retired`)."""
        counters: Any = None
        after: int | None = None
        if self.p4rt_counters:
            try:
                after = int(self._cp_stats().get("retired_seq", 0))
            except (OSError, ValueError) as e:
                return None, e
            try:
                counters = self._p4rt_counters()
            except Exception as e:  # grpc.RpcError and anything of a half-set switch: never stops a run
                counters = e
        try:
            cp: Any = self._timed_cp_stats(after)
        except (OSError, ValueError) as e:
            cp = e
        return counters, cp

    def _p4rt_counters(self) -> dict[str, Any]:
        """A real switch's table counters over P4Runtime (harness/p4rtstats.py): read before the
        control plane's stats, whose retired counters are added once both are in."""
        from harness import p4rtstats
        from harness.credentials import monitor as monitor_credentials
        sw = self.inv.switch_host
        # bf_switchd's P4Runtime server has no TLS (the control plane uses --switch-insecure with it)
        tls = self.inv.switch.tofino is None or self.inv.switch.tofino.server == "stratum_bf"
        return p4rtstats.read(f"{sw.mgmt_address or sw.ssh_address}:{self.inv.switch.p4runtime_port}",
                              monitor_credentials(self.inv) if tls else None)

    def _host_read(self, h: Host) -> str:
        """One SSH round trip per host: its BPF listing and the stats files this system writes there."""
        parts = []
        if self.inv.kind != "local":   # the local testbed's hosts share one kernel: read once, locally
            parts.append(("procstat", "grep '^cpu' /proc/stat"))
        if self.bpf_stats:
            parts.append(("bpf", _bpf_listing_cmd(bpf_pin_globs(self.inv, h))))
        # Stats files outlive their service (run/ is kept across deploys): read only this system's.
        if h.role == "frontend" and ("frontend", "frontend") in self.sysd.measured:
            parts.append(("frontend", f"cat {h.workdir}/run/frontend-stats.json 2>/dev/null"))
        if h.role == "switch" and self.emulated_switch:
            py = self._remote(h).python()
            script = shlex.quote(_COUNTERS_SCRIPT)
            parts.append(("counters", f"cd {h.workdir} && {py} -c {script} {self.sysd.pipeline} "
                                      f"{switch_pin_dir(self.inv)} 2>&1"))
            parts.append(("p4rt", f"cat {h.workdir}/run/p4rt-stats.json 2>/dev/null"))
            if self.sysd.pipeline == "switch_only":
                parts.append(("slowpath", f"cat {h.workdir}/run/slowpath-stats.json 2>/dev/null"))
        if not parts:
            return ""
        return self._remote(h).run("; ".join(f"echo '@@{name}'; {c}" for name, c in parts), check=False, timeout=30)

    # -- results -------------------------------------------------------------------------------

    def bpf_rows(self) -> list[dict[str, Any]]:
        if "start" not in self.snapshots or "end" not in self.snapshots:
            return []
        roles = {h.name: h.role for h in self.inv.hosts}
        return bpf_rows(roles, self.snapshots["start"]["bpf"], self.snapshots["end"]["bpf"])

    def machine_rows(self) -> list[dict[str, Any]]:
        """cpu.json "machine" rows: whole-machine CPU over the window, one per machine read (the local
        testbed: one row, host "(machine)"; a cluster: each measured host)."""
        if "start" not in self.snapshots or "end" not in self.snapshots:
            return []
        start, end = self.snapshots["start"]["procstat"], self.snapshots["end"]["procstat"]
        return [machine_row(h, start[h], end[h]) for h in end if h in start]

    def write(self, cell_dir: Path) -> None:
        """switch/window.json and switch/controlplane-samples.jsonl (when there is anything)."""
        if not self.snapshots and not self.samples and not self.errors:
            return
        d = cell_dir / "switch"
        d.mkdir(parents=True, exist_ok=True)
        window = {"pipeline": self.sysd.pipeline, "bpf_stats": self.bpf_stats,
                  "start": _without_bpf(self.snapshots.get("start")),
                  "end": _without_bpf(self.snapshots.get("end")), "errors": self.errors}
        (d / "window.json").write_text(json.dumps(window, indent=1) + "\n")
        if self.samples:
            with open(d / "controlplane-samples.jsonl", "w") as f:
                for s in self.samples:
                    f.write(json.dumps(s, separators=(",", ":")) + "\n")


def _without_bpf(snap: dict[str, Any] | None) -> dict[str, Any] | None:
    """The BPF listings and /proc/stat go to cpu.json as deltas; window.json keeps the rest."""
    return None if snap is None else {k: v for k, v in snap.items() if k not in ("bpf", "procstat")}


def _sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = out.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in out.items()}
