"""`fab locust-ui`: Locust's web UI against the deployed system, with the workload chosen in the page
and the switch shown live in a "Switch" tab (workloads/webui.py is the page's side).

- `LocustUI.start()` writes the job (the default workload, the target) and the UI file (catalog,
  system, token) to every client, starts the workers and the web UI master on the first client
  (recorded by pid file, `harness/remote.py`), and waits until the page answers and every worker
  has connected.
- For a system with switch state (Miresga, switch-only) a thread samples every second what a
  suite's cell collects (`harness.cellstats.CellCollector.snapshot`: the switch's table counters,
  the control plane's stats, the P4Runtime server's and the daemons' stats files), computes the
  figures with `analysis.switchstats.window_metrics` over the last few seconds, and POSTs them to
  the master's /switch/push over the management network (the same way the browser reaches it).
- `stop()` stops the sampler, the workers and the master by their recorded PIDs.
"""

from __future__ import annotations

import json
import math
import secrets
import shlex
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from analysis import switchstats
from harness import deploy as dep
from harness import interrupt, locust_runner
from harness.cellstats import CellCollector
from harness.inventory import Inventory
from harness.remote import Remote, RemoteError
from workloads.spec import Job, Target, Workload, choose

UI_DIR = "cells/ui"                 # under each client's workdir
MASTER = "locust-ui-master"         # service names (pid files under <workdir>/run/)
WORKER = "locust-ui-worker-{}"
SAMPLE_INTERVAL_S = 1.0
RATE_WINDOW_S = 3.0                 # rates over the last few samples (the stats files change once a second)
NO_SWITCH_STATE = {
    "direct": "direct: clients fetch straight from nginx; the switch only forwards (pipeline forwarding) "
              "and holds no per-connection state",
    "haproxy": "HAProxy terminates every connection on the front-end; the switch only forwards (pipeline "
               "forwarding) and holds no per-connection state",
}


class UIError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[locust-ui] {msg}", flush=True)


def deployed_system(inv: Inventory) -> dep.System:
    """The system whose services run now (by pid files)."""
    with dep.remotes(inv, "frontend") as fes:
        if any(r.service_pid("frontend") for r in fes):
            return dep.SYSTEMS["miresga"]
        if any(r.service_pid("haproxy") for r in fes):
            return dep.SYSTEMS["haproxy"]
    with dep.remotes(inv, "switch") as sws:
        if any(r.service_pid("slowpath") for r in sws):
            return dep.SYSTEMS["switch-only"]
    with dep.remotes(inv, "backend") as bes:
        if bes and all(r.service_pid("nginx") for r in bes):
            return dep.SYSTEMS["direct"]
    raise UIError("no system is deployed: run `fab deploy --system NAME` first, or pass --system")


def has_switch_state(inv: Inventory, sysd: dep.System) -> bool:
    return inv.switch.target == "emulated" and sysd.pipeline in switchstats.CONN_TABLES


def _clean(v: Any) -> Any:
    """NaN and infinities as null (JSON has none)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def _count(cp: Any, *path: str) -> int:
    for k in path:
        cp = cp.get(k, 0) if isinstance(cp, dict) else 0
    return int(cp) if isinstance(cp, int | float) else 0


class SwitchSampler:
    """The Switch tab's figures from successive snapshots of the cell collector."""

    def __init__(self, inv: Inventory, sysd: dep.System) -> None:
        self.sysd = sysd
        self.collector = CellCollector(inv, sysd, bpf_stats=False)
        self.history: deque[dict[str, Any]] = deque()
        self.first: dict[str, Any] | None = None
        self.occupancy_peak = math.nan
        self._errors_seen = 0

    def sample(self) -> dict[str, Any]:
        self.collector.snapshot("now")
        snap = self.collector.snapshots.pop("now")
        errors = self.collector.errors[self._errors_seen:]
        self._errors_seen = len(self.collector.errors)
        if self.first is None and snap.get("counters") and snap.get("controlplane"):
            self.first = snap
        self.history.append(snap)
        while len(self.history) > 2 and snap["time"] - self.history[1]["time"] >= RATE_WINDOW_S:
            self.history.popleft()
        return self.figures(self.history[0], snap, errors)

    def figures(self, prev: dict[str, Any], snap: dict[str, Any], errors: list[str]) -> dict[str, Any]:
        pipeline = self.sysd.pipeline
        out: dict[str, Any] = {"time": snap["time"], "system": self.sysd.name, "pipeline": pipeline,
                               "window_s": snap["time"] - prev["time"], "took_s": snap.get("took_s"),
                               "errors": errors}
        recent = switchstats.window_metrics(pipeline, prev, snap) if prev is not snap else {}
        for k in ("offload_share", "inserts_per_s", "deletes_per_s", "punts_per_s"):
            out[k] = recent.get(k, math.nan)
        cp = snap.get("controlplane")
        lat = switchstats.window_metrics(pipeline, None, snap)   # latency percentiles need one snapshot
        out["cp_latency_p50_ms"], out["cp_latency_p99_ms"] = lat["cp_latency_p50_ms"], lat["cp_latency_p99_ms"]
        out["occupancy"] = switchstats.occupancy(pipeline, cp)
        if not math.isnan(out["occupancy"]):
            self.occupancy_peak = max(out["occupancy"], 0 if math.isnan(self.occupancy_peak) else self.occupancy_peak)
        out["occupancy_peak"] = self.occupancy_peak
        occ = cp.get("occupancy") if isinstance(cp, dict) and isinstance(cp.get("occupancy"), dict) else {}
        out["occupancy_by_table"] = {t: int(occ.get(t, 0)) for t in switchstats.conn_tables(pipeline, set(occ))}
        out["capacity"] = switchstats.table_capacity(pipeline, snap.get("p4rt"))
        first = self.first or snap
        total = switchstats.window_metrics(pipeline, first, snap)
        out["offloaded_bytes_total"], out["b2c_bytes_total"] = total["offloaded_bytes"], total["b2c_bytes"]
        fcp = first.get("controlplane")
        out["inserts_total"] = _count(cp, "requests", "add") - _count(fcp, "requests", "add")
        out["deletes_total"] = _count(cp, "requests", "delete") - _count(fcp, "requests", "delete")
        out["insert_rejected_total"] = (_count(cp, "acks", "RESOURCE_EXHAUSTED")
                                        - _count(fcp, "acks", "RESOURCE_EXHAUSTED"))
        return _clean(out)

    def close(self) -> None:
        self.collector.close()


def _http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 5) -> Any:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


@dataclass
class LocustUI:
    """Locust's web UI master and workers on the clients, and the switch sampler."""

    inv: Inventory
    sysd: dep.System
    workload: Workload
    users: int = 16
    spawn_rate: float = 16
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    clients: list[Remote] = field(default_factory=list)
    workers: list[tuple[Remote, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    pushed: int = 0
    push_errors: list[str] = field(default_factory=list)

    @property
    def master(self) -> Remote:
        return self.clients[0]

    @property
    def mgmt(self) -> str:
        h = self.inv.clients[0]
        return str(h.mgmt_address or h.ssh_address)

    @property
    def url(self) -> str:
        return f"http://{self.mgmt}:{locust_runner.WEB_PORT}"

    @property
    def switch_state(self) -> bool:
        return has_switch_state(self.inv, self.sysd)

    def ui_file(self) -> dict[str, Any]:
        msg = "" if self.switch_state else NO_SWITCH_STATE.get(
            self.sysd.name, f"{self.sysd.name}: no emulated switch to read (switch target {self.inv.switch.target})")
        return {"catalog": {o.name: o.size for o in self.inv.catalog}, "system": self.sysd.name,
                "description": self.sysd.description, "pipeline": self.sysd.pipeline,
                "switch_state": self.switch_state, "message": msg, "token": self.token}

    def deployed_summary(self) -> str:
        address, port = self.sysd.targets(self.inv)[0]
        fes = ", ".join(h.name for h in self.inv.frontends)
        sw = (f"emulated switch, pipeline {self.sysd.pipeline}, profile {self.inv.switch.profile.name}"
              if self.inv.switch.target == "emulated" else f"switch target {self.inv.switch.target}")
        tab = ("the Switch tab samples the switch every second" if self.switch_state
               else "the Switch tab says why there is no switch state")
        return (f"deployed: {self.sysd.name} ({self.sysd.description}) on {self.inv.name}; target "
                f"{address}:{port}; front-ends {fes or '-'}; {sw}; {len(self.workers)} Locust workers; {tab}")

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout_s: float = 90) -> None:
        address, port = self.sysd.targets(self.inv)[0]
        job = Job(workload=self.workload, target=Target(address=address, port=port), users=1)
        self.clients = [Remote(self.inv, h) for h in self.inv.clients]
        self.workers = [(r, i) for r in self.clients for i in range(1, self.inv.workers_for(r.host) + 1)]
        files = {"job.json": json.dumps(job.to_dict(), indent=2).encode(),
                 "ui.json": json.dumps(self.ui_file(), indent=2).encode()}
        for r in self.clients:
            rc = f"{r.workdir}/{UI_DIR}"
            r.stop(MASTER)   # a UI left over by a killed task
            for i in range(1, self.inv.workers_for(r.host) + 1):
                r.stop(WORKER.format(i))
            r.run(f"rm -rf {rc} && mkdir -p {rc}/requests {rc}/locust")
            r.put_tree(files, dest=rc)
        master, rc = self.master, f"{self.master.workdir}/{UI_DIR}"
        cmd = locust_runner.ui_command(master.python(), f"{master.workdir}/workloads/locustfile.py",
                                       web_host=self.mgmt, bind_host=self.mgmt, users=self.users,
                                       spawn_rate=self.spawn_rate, csv_prefix=f"{rc}/locust/stats",
                                       logfile=f"{rc}/locust/master.log")
        master.start(MASTER, shlex.join(cmd), env=locust_runner.locust_env(
            f"{rc}/job.json", f"{rc}/requests", f"{master.name}-master", ui_file=f"{rc}/ui.json"))
        for r, i in self.workers:
            wrc = f"{r.workdir}/{UI_DIR}"
            cmd = locust_runner.worker_command(r.python(), f"{r.workdir}/workloads/locustfile.py",
                                               master_host=self.mgmt,
                                               logfile=f"{wrc}/locust/worker-{r.name}-{i}.log")
            r.start(WORKER.format(i), shlex.join(cmd), env=locust_runner.locust_env(
                f"{wrc}/job.json", f"{wrc}/requests", r.name, worker_id=i, ui_file=f"{wrc}/ui.json"))
        self._wait_ready(timeout_s)
        if self.switch_state:
            self._thread = threading.Thread(target=self._sample_loop, name="switch-sampler", daemon=True)
            self._thread.start()

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self.master.service_pid(MASTER) is None:
                raise UIError(f"the Locust master exited; its log:\n{self.master.tail(MASTER)}")
            try:
                workers = _http(f"{self.url}/stats/requests").get("worker_count", 0)
                if workers >= len(self.workers):
                    return
                last = f"{workers} of {len(self.workers)} workers connected"
            except (OSError, ValueError) as e:
                last = str(e)
            time.sleep(0.5)
        raise UIError(f"the web UI at {self.url} was not ready within {timeout_s:.0f} s ({last})")

    def _sample_loop(self) -> None:
        sampler = SwitchSampler(self.inv, self.sysd)
        headers = {"Content-Type": "application/json", "X-Miresga-Token": self.token}
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    body = json.dumps(sampler.sample()).encode()
                    _http(f"{self.url}/switch/push", body, headers)
                    self.pushed += 1
                except (OSError, ValueError, RemoteError, urllib.error.URLError) as e:
                    if not self.push_errors:
                        log(f"sampling the switch: {e} (will keep trying)")
                    self.push_errors.append(str(e))
                next_t += SAMPLE_INTERVAL_S
                self._stop.wait(max(0.0, next_t - time.monotonic()))
        finally:
            sampler.close()

    def alive(self) -> bool:
        return self.master.service_pid(MASTER) is not None

    def stop(self) -> list[str]:
        """Stops the sampler, the workers and the master (by pid file); returns what was running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        stopped = []
        for r, i in self.workers:
            if r.stop(WORKER.format(i)):
                stopped.append(f"{r.name}:{WORKER.format(i)}")
        if self.clients and self.master.stop(MASTER, timeout=20):
            stopped.append(f"{self.master.name}:{MASTER}")
        for r in self.clients:
            r.close()
        return stopped


def default_workload(inv: Inventory, objects: str | None = None, connection: str = "close",
                     client: str = "lean") -> Workload:
    """The form's initial workload: `objects` (default 1k, else the smallest catalog object)."""
    sizes = {o.name: o.size for o in inv.catalog}
    if objects is None:
        objects = "1k" if "1k" in sizes else min(sizes, key=sizes.__getitem__)
    return choose(objects, sizes, connection=connection, client=client)


def run(inv: Inventory, system: str | None = None, minutes: float = 30, objects: str | None = None,
        connection: str = "close", client: str = "lean") -> None:
    """`fab locust-ui`: start, print the URL and what is deployed, wait for the deadline or Ctrl-C,
    stop everything it started."""
    try:
        workload = default_workload(inv, objects, connection, client)
    except ValueError as e:
        raise UIError(f"workload: {e}") from None
    with interrupt.handling(), interrupt.tracking(inv) as reg:
        sysd = dep.deploy(inv, system) if system is not None else deployed_system(inv)
        ui = LocustUI(inv, sysd, workload)
        try:
            ui.start()
            log(f"Locust web UI: {ui.url}  (open it in a browser on this machine)")
            log(ui.deployed_summary())
            log(f"start form prefilled with {workload.name}; stops in {minutes:g} min or on Ctrl-C")
            deadline = time.monotonic() + minutes * 60
            checked = time.monotonic()
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if time.monotonic() - checked >= 5:
                    checked = time.monotonic()
                    if not ui.alive():
                        log(f"the Locust master exited; its log:\n{ui.master.tail(MASTER)}")
                        break
            else:
                log(f"{minutes:g} minutes are up")
        except interrupt.Interrupted as e:
            log(f"{e.signal_name}: stopping the web UI and its workers")
        finally:
            stopped: list[str] = []
            try:
                req = interrupt.requested()
                if req is None or not req.urgent:
                    stopped = ui.stop()              # gracefully: sampler, workers, master
            except (interrupt.Interrupted, RemoteError) as e:
                log(f"stopping at once ({e})")
            with interrupt.shielded():
                stopped += interrupt.stop_started(reg, urgent=True)   # what the graceful stop missed
            log(f"stopped: {', '.join(stopped) or 'nothing was running'}")
