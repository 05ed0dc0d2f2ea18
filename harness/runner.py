"""Runs suites: deploy each system, run every cell with Locust over SSH, collect the run directory.

One cell's lifecycle (flent's: check all, start, stop, parse):
1. check: every client answers over SSH and the target answers an HTTP probe;
2. start: Locust workers on every client host (one per core, or `locust.workers_per_client`), then the
   headless master on the first client, for warm-up + duration;
3. measure: CPU times of the measured processes (load balancer, web servers, the generator), the
   BPF programs' run time and the switch's, control plane's and front-ends' counters are read at the
   start and the end of the measurement window (after warm-up); the control plane's stats are
   sampled about every second (harness/cellstats.py);
4. stop and collect: wait for the master to finish, fetch Locust's CSVs, the raw per-request files
   and the logs into `cells/<cell-id>/`, write cell.json and cpu.json (docs/run-directory.md).

Stopping (harness/interrupt.py): Ctrl-C or SIGTERM abandons the cell running (one whose load has
ended is finished first), stops every service the run started by its recorded PID (processes.jsonl),
tears the local testbed down unless kept, records the manifest's `state` and builds the report of
what ran; a second signal skips straight to KILL and teardown. `resume_suite` runs the missing cells
into the same run directory.

A suite with a `switch_profiles` axis deploys each system once per profile, with that profile in
force (the inventory's `switch.profile` replaced); every cell records its profile in cell.json.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from harness import cpuplan, interrupt, locust_runner, rundir, testbed
from harness import deploy as dep
from harness.cellstats import CellCollector
from harness.inventory import Inventory
from harness.remote import Remote, RemoteError
from harness.suites import Attack, Cell, Suite, SuiteError, dry_run, profile_record
from harness.suites import load as _load_suite
from workloads import attack as attack_tool
from workloads.spec import Job, Target, Workload

__all__ = ["RunError", "RunInterrupted", "SuiteError", "dry_run", "load_suite", "resume_suite", "run_suite"]

MASTER_PORT = 5557
STOP_TIMEOUT_S = 10   # Locust lets requests in flight finish this long after the run time
STOP_GRACE_S = 30
TAIL_S = 2
ATTACK_GUARD_S = 60        # a hang guard: the attack stops by itself at the load's end
LOAD_START_GUARD_S = 180   # a hang guard for Locust's start (workers connecting, imports), not a bound


class RunError(RuntimeError):
    pass


def load_suite(name_or_path: str, inv: Inventory) -> Suite:
    return _load_suite(name_or_path, inv, tuple(dep.SYSTEMS))


def log(msg: str) -> None:
    print(f"[run] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Suites


class RunInterrupted(RunError):
    """An operation stopped on SIGINT or SIGTERM, after cleaning up; `exit_code` is 128 + the signal."""

    def __init__(self, message: str, stop: interrupt.Interrupted, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir
        self.exit_code = stop.exit_code
        super().__init__(message)


def deploy_system(inv: Inventory, system: str) -> dep.System:
    """`dep.deploy` that a signal stops cleanly: what this deploy had started is stopped by PID and
    RunInterrupted raised. (Whatever an earlier, killed deploy left, the next deploy's undeploy or
    `fab undeploy` stops by pid file.)"""
    with interrupt.handling(), interrupt.tracking(inv) as reg:
        try:
            return dep.deploy(inv, system)
        except interrupt.Interrupted as e:
            stop = e
        with interrupt.shielded():
            stopped = interrupt.stop_started(reg, urgent=stop.urgent)
    raise RunInterrupted(f"deploy of {system} interrupted ({stop.signal_name}); stopped what it had started "
                         f"({', '.join(stopped) or 'nothing running'}); `fab deploy` or `fab undeploy` "
                         "starts over from there", stop)


def run_suite(inv: Inventory, suite: Suite, keep_testbed: bool = False, results: Path | None = None) -> Path:
    """Runs every cell of `suite` into a new run directory; returns it. On SIGINT/SIGTERM: stops,
    cleans up and raises RunInterrupted (see harness/interrupt.py)."""
    run_dir = rundir.new_run_dir(suite.name, results or rundir.RESULTS)
    rundir.write_inputs(run_dir, suite, inv)
    return _execute(inv, suite, run_dir, keep_testbed, resume=False)


def resume_suite(run_dir: Path, inv: Inventory, keep_testbed: bool = False, force: bool = False) -> Path:
    """Runs the cells an interrupted (or failed) run is missing into the same run directory, with
    the suite it stored; refuses when the commit or the inventory differ from the run's (unless
    `force`). The report is rebuilt over all cells."""
    try:
        manifest = rundir.read_manifest(run_dir)
    except (OSError, ValueError) as e:
        raise RunError(f"{run_dir} is not a run directory (manifest.json: {e})") from None
    if "planned" not in manifest:
        raise RunError(f"{run_dir}: its manifest does not list the planned cells (a run from before "
                       "interruption was recorded); it cannot be resumed")
    suite = resumable_suite(run_dir, inv)
    if [c.cell_id for c in suite.cells] != manifest["planned"]:
        raise RunError(f"{run_dir}/suite.yaml no longer expands to the cells the run planned "
                       "(the suite format or the profiles changed); it cannot be resumed")
    problems = resume_mismatches(run_dir, manifest, inv)
    if problems and not force:
        raise RunError(f"{run_dir} cannot be resumed as is: " + "; ".join(problems) + " (--force resumes anyway)")
    for p in problems:
        log(f"resuming despite: {p}")
    missing = [c for c in manifest["planned"] if c not in manifest.get("cells", [])]
    if not missing:
        log(f"{run_dir}: every planned cell ran already; rebuilding the report")
        rundir.update_manifest(run_dir, state="complete")
        build_analysis(run_dir)
        return run_dir
    return _execute(inv, suite, run_dir, keep_testbed, resume=True)


def resumable_suite(run_dir: Path, inv: Inventory) -> Suite:
    from harness.suites import parse
    raw = yaml.safe_load((run_dir / "suite.yaml").read_text())
    return parse(raw, inv, tuple(dep.SYSTEMS), source=run_dir / "suite.yaml")


def resume_mismatches(run_dir: Path, manifest: dict[str, Any], inv: Inventory) -> list[str]:
    """Why resuming would mix unlike data: another commit, another inventory."""
    problems = []
    then = (manifest.get("git") or {}).get("commit")
    now = rundir.git_state()["commit"]
    if then != now:
        problems.append(f"the run was made at commit {str(then)[:12]}, this checkout is at {str(now)[:12]}")
    stored = (run_dir / "inventory.yaml").read_text() if (run_dir / "inventory.yaml").exists() else None
    if stored is None or yaml.safe_load(stored) != inv.raw:
        problems.append(f"the inventory differs from the run's ({run_dir}/inventory.yaml, testbed "
                        f"{manifest.get('testbed')!r}; this is {inv.name!r} from {inv.source or 'memory'})")
    return problems


def _execute(inv: Inventory, suite: Suite, run_dir: Path, keep_testbed: bool, resume: bool) -> Path:
    started = rundir.now()
    t_start = time.monotonic()
    local = inv.kind == "local"
    manifest = rundir.read_manifest(run_dir) if resume else {}
    done: list[str] = list(manifest.get("cells", []))
    todo = [c for c in suite.cells if c.cell_id not in done]
    hosts: dict[str, Any] = manifest.get("hosts", {})
    sessions: list[dict[str, Any]] = list(manifest.get("sessions", []))
    est = sum(c.load.warmup_s + c.load.duration_s for c in todo) / max(sum(
        c.load.warmup_s + c.load.duration_s for c in suite.cells), 1) * suite.estimated_seconds
    log(f"suite {suite.name}: {'resuming ' if resume else ''}{len(todo)} of {len(suite.cells)} cells on {inv.name} "
        f"(about {est / 60:.1f} min) -> {run_dir}  (Ctrl-C stops it cleanly)")
    if not resume:
        rundir.write_manifest(run_dir, suite, inv, hosts, started, done)
    rundir.update_manifest(run_dir, state="running", ended=None,
                           sessions=[*sessions, {"started": started, "ended": None, "git": rundir.git_state(),
                                                 "cells": []}])
    current: list[Cell] = []            # the cell running now
    stop: interrupt.Interrupted | None = None
    failure: BaseException | None = None
    with interrupt.handling(), interrupt.tracking(inv, run_dir / "processes.jsonl") as reg:
        try:
            if local:
                testbed.up(inv)
            if not hosts:
                with dep.remotes(inv) as rs:
                    hosts = {r.name: rundir.host_facts(r) for r in rs}
                rundir.update_manifest(run_dir, hosts=hosts)
            _run_cells(inv, suite, run_dir, todo, done, hosts, current, t_start)
        except interrupt.Interrupted as e:
            stop = e
        except BaseException as e:  # the run stops on an error: clean up, record, then re-raise
            failure = e
        teardown = local and not keep_testbed
        try:
            _clean_up(inv, reg, teardown, urgent=stop is not None and stop.urgent)
        except interrupt.Interrupted as e:      # a (second) signal during the graceful clean-up
            stop = stop or e
            with interrupt.shielded():
                _clean_up(inv, reg, teardown, urgent=True)
        with interrupt.shielded():
            state = "complete" if len(done) == len(suite.cells) else "interrupted" if stop else "failed"
            ended = rundir.now()
            fields: dict[str, Any] = {"state": state, "ended": ended, "cells": done, "interruption": None,
                                      "error": None}   # of this session (a resumed one clears the last's)
            this = {"started": started, "ended": ended, "git": rundir.git_state(), "state": state,
                    "cells": [c for c in done if c not in manifest.get("cells", [])]}
            fields["sessions"] = [*sessions, this]
            if stop is not None and state == "interrupted":
                abandoned = current[0].cell_id if current else None
                at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stop.time))
                fields["interruption"] = {"signal": stop.signal_name, "at": at, "cell": abandoned,
                                          "stopped_in_s": round(time.time() - stop.time, 1)}
                if current:
                    _write_abandoned_cell(run_dir, current[0], stop, profile=_profile_of(with_profile(inv, current[0])))
            elif failure is not None:
                fields["error"] = f"{type(failure).__name__}: {failure}"
            rundir.update_manifest(run_dir, **fields)
        if failure is not None:
            raise failure
        req = interrupt.requested()
        if req is None or not req.urgent:
            try:
                build_analysis(run_dir)
            except interrupt.Interrupted:
                log(f"report skipped; build it with: fab report {run_dir}")
            except Exception as e:
                if stop is None:
                    raise
                log(f"the report of the cells that ran could not be built ({e}); fab report {run_dir}")
        else:
            log(f"stopped at once: no report; build it with: fab report {run_dir}")
    if stop is not None and state == "interrupted":
        raise RunInterrupted(f"interrupted ({stop.signal_name}) after {len(done)} of {len(suite.cells)} cells, "
                             f"kept in {run_dir}; resume: fab run-suite --resume {run_dir}", stop, run_dir)
    log(f"done in {(time.monotonic() - t_start) / 60:.1f} min: {run_dir}")
    return run_dir


def _run_cells(inv: Inventory, suite: Suite, run_dir: Path, todo: list[Cell], done: list[str],
               hosts: dict[str, Any], current: list[Cell], t_start: float) -> None:
    """Deploys each system (and switch profile) of `todo` and runs its cells; `done` grows by each
    cell recorded (manifest updated after each), `current` holds the cell running now."""
    n = 0
    for system, profile in dict.fromkeys(c.deployment for c in todo):
        cells = [c for c in todo if c.deployment == (system, profile)]
        inv_c = with_profile(inv, cells[0])
        if profile is not None:
            _save_profile(run_dir, cells[0])
            log(f"switch profile {profile} ({cells[0].switch_profile_path})")
        try:
            sysd = dep.deploy(inv_c, system)
        except (dep.DeployError, RemoteError) as e:
            log(f"deploying {system} failed; its {len(cells)} cells are recorded as failed: {e}")
            for c in cells:
                n += 1
                _write_failed_cell(run_dir, c, f"deploy failed: {e}", profile=_profile_of(inv_c))
                done.append(c.cell_id)
            rundir.update_manifest(run_dir, cells=done)
            continue
        pinned = _pin(inv_c, system) if suite.pin_lb else None
        try:
            for c in cells:
                n += 1
                eta = (time.monotonic() - t_start) / max(n - 1, 1) * (len(todo) - n + 1) if n > 1 else \
                    suite.estimated_seconds * len(todo) / len(suite.cells)
                log(f"[{len(done) + 1}/{len(suite.cells)}] {c.cell_id} (about {eta / 60:.1f} min left)")
                cell_dir = run_dir / "cells" / c.cell_id
                if cell_dir.exists():               # an abandoned attempt of an interrupted run
                    shutil.rmtree(cell_dir)
                current[:] = [c]
                try:
                    extra = {"cpu_plan": pinned.record()} if pinned is not None else None
                    run_cell(inv_c, c, sysd, cell_dir, bpf_stats=suite.bpf_stats, extra=extra)
                except interrupt.Interrupted:
                    if _cell_status(cell_dir) == "ok":      # collected before the stop took effect: kept
                        done.append(c.cell_id)
                        current.clear()
                        rundir.update_manifest(run_dir, cells=done)
                    raise
                except (RunError, RemoteError, OSError) as e:
                    log(f"cell {c.cell_id} failed: {e}")
                    _write_failed_cell(run_dir, c, str(e), detail=traceback.format_exc(),
                                       profile=_profile_of(inv_c))
                done.append(c.cell_id)
                current.clear()
                rundir.update_manifest(run_dir, cells=done)
                _progress(cell_dir, {name: f["role"] for name, f in hosts.items()})
        finally:
            if pinned is not None:
                with interrupt.shielded():
                    cpuplan.release(pinned)
    dep.undeploy(inv, quiet=True)


def _pin(inv: Inventory, system: str) -> cpuplan.Pinned:
    """The budget suite's plan for one deployment (harness/cpuplan.py): the load balancer alone on the
    last CPU, every other task and receive queue on the others."""
    pinned = cpuplan.apply(inv, system)
    rec = pinned.record()
    log(f"{system}: CPU {','.join(map(str, pinned.lb_cpus))} for the load balancer alone "
        f"({', '.join(rec['lb_processes']) or 'nothing: no load balancer'}; {rec['lb_tasks']} tasks), "
        f"CPU {','.join(map(str, pinned.other_cpus))} for everything else ({rec['tasks_moved']} tasks moved), "
        f"RPS on {len(rec['rps_cpus'])} interfaces")
    return pinned


def _cell_status(cell_dir: Path) -> str | None:
    try:
        return str(json.loads((cell_dir / "cell.json").read_text()).get("status"))
    except (OSError, ValueError):
        return None


def _clean_up(inv: Inventory, reg: interrupt.Registry, teardown: bool, urgent: bool) -> None:
    """Stops every process the run started (by its recorded PID; at once when `urgent`), then tears
    the local testbed down, or else stops whatever still has a pid file (undeploy)."""
    stopped = interrupt.stop_started(reg, urgent=urgent)
    if stopped:
        log(f"stopped {', '.join(stopped)}")
    if teardown:
        testbed.down(inv)
    elif not urgent:
        dep.undeploy(inv, quiet=True)


def _write_abandoned_cell(run_dir: Path, c: Cell, stop: interrupt.Interrupted,
                          profile: dict[str, Any] | None) -> None:
    """cell.json of the cell a signal abandoned (not in the manifest's cells: resume runs it again)."""
    d = run_dir / "cells" / c.cell_id
    d.mkdir(parents=True, exist_ok=True)
    rec = c.to_dict() | {"switch_profile": profile, "status": "interrupted",
                         "error": f"abandoned on {stop.signal_name}", "ended": rundir.now()}
    (d / "cell.json").write_text(json.dumps(rec, indent=2) + "\n")


def _progress(cell_dir: Path, roles: dict[str, str]) -> None:
    """One line of figures per finished cell, computed by the analysis from the stored raw data."""
    try:
        from analysis import load
        spec = json.loads((cell_dir / "cell.json").read_text())
        if spec.get("status") != "ok":
            return
        s = load.cell_metrics(load.Cell(cell_id=cell_dir.name, path=cell_dir, spec=spec), roles)
    except Exception as e:  # progress output must never stop a run
        log(f"  (no summary: {e})")
        return
    log(f"  {s.get('rps', 0):.0f} req/s, {s.get('goodput_gbps', 0):.2f} Gbit/s, "
        f"p50 {s.get('p50_us', 0) / 1000:.2f} ms, p99 {s.get('p99_us', 0) / 1000:.2f} ms, "
        f"{s.get('failed', 0)} failed, generator {100 * s.get('generator_util', 0):.0f}% busy")


def with_profile(inv: Inventory, cell: Cell) -> Inventory:
    """The inventory a cell runs with: its switch profile (from the suite's axis) in force."""
    if cell.switch_profile_path is None:
        return inv
    return dataclasses.replace(inv, switch=dataclasses.replace(inv.switch, profile=cell.switch_profile_path))


def _profile_of(inv: Inventory) -> dict[str, Any] | None:
    """cell.json's `switch_profile`: the resolved profile in force (None without a modelled switch)."""
    if inv.switch.target == "bridge":
        return None
    try:
        return profile_record(inv.switch.profile)
    except ValueError as e:
        return {"name": None, "source": str(inv.switch.profile), "error": str(e)}


def _save_profile(run_dir: Path, cell: Cell) -> None:
    """A sweep's profiles are kept beside the run's switch-profile.yaml: switch-profiles/<name>.yaml."""
    assert cell.switch_profile_path is not None
    d = run_dir / "switch-profiles"
    d.mkdir(exist_ok=True)
    shutil.copy(cell.switch_profile_path, d / f"{cell.switch_profile}.yaml")


def _write_failed_cell(run_dir: Path, c: Cell, error: str, detail: str | None = None,
                       profile: dict[str, Any] | None = None) -> None:
    d = run_dir / "cells" / c.cell_id
    d.mkdir(parents=True, exist_ok=True)
    rec = c.to_dict() | {"switch_profile": profile, "status": "failed", "error": error,
                         "started": rundir.now(), "ended": rundir.now()}
    (d / "cell.json").write_text(json.dumps(rec, indent=2) + "\n")
    if detail:
        (d / "error.txt").write_text(detail)


def build_analysis(run_dir: Path) -> list[Path]:
    """Figures and report.md of a run directory, rebuilt from its stored data."""
    from analysis.figures import build_figures
    from analysis.report import build_report
    figures = build_figures(run_dir)
    return [build_report(run_dir, figures), *figures]


# ---------------------------------------------------------------------------------------------
# Cells


def _workers(inv: Inventory, clients: list[Remote]) -> list[tuple[Remote, int]]:
    """(client, worker number) for every Locust worker process of the run."""
    return [(r, i) for r in clients for i in range(1, inv.workers_for(r.host) + 1)]


def run_cell(inv: Inventory, cell: Cell, sysd: dep.System, cell_dir: Path, bpf_stats: bool = True,
             extra: dict[str, Any] | None = None) -> None:
    """One cell: check the target, start Locust, measure the window, collect. `extra` goes to cell.json
    (the budget suite's CPU plan)."""
    targets = sysd.targets(inv)
    address, port = targets[0]
    job = Job(workload=Workload.from_dict(cell.workload), target=Target(address=address, port=port),
              users=cell.load.users, pace_rps=cell.load.pace_rps, seed=cell.repetition, mode=cell.load.mode,
              rate=cell.load.rate, arrival=cell.load.arrival, max_connections=cell.load.max_connections)
    clients = [Remote(inv, h) for h in inv.clients]
    master = clients[0]
    n_workers = sum(inv.workers_for(h) for h in inv.clients)
    remote_cell = f"{master.workdir}/cells/{cell.cell_id}"
    others = {role: [Remote(inv, h) for h in inv.role(role)] for role, _ in sysd.measured}
    measured = [(r, svc) for role, svc in sysd.measured for r in others[role]]
    workers = _workers(inv, clients)
    attacker: Remote | None = None
    collector = CellCollector(inv, sysd, bpf_stats=bpf_stats)
    try:
        # 1. check
        for r in clients:
            rc = f"{r.workdir}/cells/{cell.cell_id}"
            r.run(f"rm -rf {rc} && mkdir -p {rc}/requests {rc}/locust")
            r.put_tree({"job.json": json.dumps(job.to_dict(), indent=2).encode()}, dest=rc)
        probe = master.run(f"curl -s -o /dev/null -m 5 -w '%{{http_code}}' "
                           f"http://{address}:{port}{cell.workload['objects'][0]['path']}", check=False).strip()
        if probe != "200":
            raise RunError(f"the target {address}:{port} does not serve "
                           f"{cell.workload['objects'][0]['path']} (HTTP {probe or 'no answer'})")
        # 2. start workers, then the master
        mgmt = str(master.host.mgmt_address or master.host.ssh_address)
        for r, i in workers:
            rc = f"{r.workdir}/cells/{cell.cell_id}"
            env = locust_runner.locust_env(f"{rc}/job.json", f"{rc}/requests", host_label=r.name, worker_id=i)
            cmd = locust_runner.worker_command(r.python(), f"{r.workdir}/workloads/locustfile.py",
                                               master_host=mgmt, master_port=MASTER_PORT,
                                               logfile=f"{rc}/locust/worker-{r.name}-{i}.log")
            r.start(f"locust-worker-{i}", shlex.join(cmd), env=env)
        # Load continues a little past the window so that the closing CPU reading sees it running.
        run_time = cell.load.warmup_s + cell.load.duration_s + TAIL_S
        env = locust_runner.locust_env(f"{remote_cell}/job.json", f"{remote_cell}/requests",
                                       host_label=f"{master.name}-master")
        cmd = locust_runner.master_command(
            master.python(), f"{master.workdir}/workloads/locustfile.py",
            users=cell.load.users, spawn_rate=cell.load.spawn_rate, run_time_s=run_time,
            csv_prefix=f"{remote_cell}/locust/stats", expect_workers=n_workers, bind_host=mgmt,
            bind_port=MASTER_PORT, stop_timeout_s=STOP_TIMEOUT_S, logfile=f"{remote_cell}/locust/master.log")
        collector.begin()
        master.start("locust-master", shlex.join(cmd), env=env)
        # The warm-up runs from the moment the load starts, not from the master's launch: starting
        # Locust (imports, workers connecting) took 3 s on a busy 2-CPU machine, and a window anchored
        # at the launch measured that start-up instead of the load.
        t0 = _wait_for_load_start(master, f"{remote_cell}/locust/master.log")
        if cell.attack is not None:     # from the load's start to its end (warm-up, window, tail)
            attacker = Remote(inv, inv.attackers[0])
            _start_attack(attacker, inv, cell.attack, cell.cell_id, address, port, run_time)
        measure_start = t0 + cell.load.warmup_s
        measure_end = measure_start + cell.load.duration_s
        # 3. measure
        gen = [(r, f"locust-worker-{i}") for r, i in workers] + [(master, "locust-master")]
        _sleep_until(measure_start)
        collector.snapshot_async("start")       # beside the CPU readings, not after them
        before = _cpu_snapshot(measured + gen)
        collector.join()
        _sleep_until(measure_end)
        collector.snapshot_async("end")
        after = _cpu_snapshot(measured + gen)
        collector.join()
        # 4. stop and collect
        deadline = time.time() + STOP_GRACE_S
        while master.service_pid("locust-master") is not None and time.time() < deadline:
            time.sleep(0.3)
        attack_report = _finish_attack(attacker, cell.cell_id) if attacker is not None else None
        # The load is over: collecting takes seconds and keeps the cell, so a first Ctrl-C waits for it.
        with interrupt.deferred():
            if attack_report is not None:
                cell_dir.mkdir(parents=True, exist_ok=True)
                (cell_dir / "attack.json").write_text(json.dumps(attack_report, indent=2) + "\n")
            _collect_cell(inv, cell, sysd, cell_dir, collector, clients, master, workers, measured, before, after,
                          rec={"switch_profile": _profile_of(inv), "target": {"address": address, "port": port},
                               "generator": {"hosts": [h.name for h in inv.clients], "workers": n_workers},
                               "measure_start": measure_start, "measure_end": measure_end,
                               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0))}
                          | ({"attack_report": attack_report} if attack_report is not None else {}) | (extra or {}))
    finally:
        if interrupt.requested() is None:
            collector.close()
            for r, i in workers:
                r.stop(f"locust-worker-{i}")
            master.stop("locust-master")
            if attacker is not None:
                attacker.stop("attack")
        else:       # stopping: the run's clean-up stops Locust by its recorded PIDs, at once
            collector.abandon()
        for r in clients + [r for rs in others.values() for r in rs] + ([attacker] if attacker else []):
            r.close()


def _start_attack(attacker: Remote, inv: Inventory, attack: Attack, cell_id: str, address: str,
                  port: int, seconds: float) -> None:
    """workloads/attack.py on the attacker host against the cell's target, bounded by `seconds` and
    by a packet count of rate x seconds; its report goes to the attacker's cell directory."""
    rc = f"{attacker.workdir}/cells/{cell_id}"
    attacker.run(f"rm -rf {rc} && mkdir -p {rc}")
    args = [attacker.python(), "-m", "workloads.attack", attack.kind, "--vip", address, "--port", str(port),
            "--duration", f"{seconds:.1f}", "--rate", f"{attack.rate:g}", "--spoof-net", attack.spoof_net,
            "--count", str(max(1, min(attack_tool.MAX_COUNT, int(attack.rate * seconds) + 1))),
            "--connections", str(attack.connections), "--interval", f"{attack.interval_s:g}",
            "--victim", str(inv.clients[0].data_address), "--json", f"{rc}/attack.json"]
    if attack.kind == "slowloris":      # header lines: every connection, every interval, for the time
        args[args.index("--count") + 1] = str(int(attack.connections * (seconds / attack.interval_s + 2)))
        args += ["--reopen"] if attack.reopen else []
    log(f"  attack {attack.name}: {attack.kind} from {attacker.name} at {address}:{port} for {seconds:.0f} s")
    attacker.start("attack", shlex.join(args))


def _finish_attack(attacker: Remote, cell_id: str) -> dict[str, Any]:
    """The attack's report once it stopped by itself (its own bounds; a hang guard stops it by PID)."""
    deadline = time.time() + ATTACK_GUARD_S
    while attacker.service_pid("attack") is not None and time.time() < deadline:
        time.sleep(0.3)
    if attacker.stop("attack"):
        raise RunError(f"the attack on {attacker.name} did not stop by itself within {ATTACK_GUARD_S} s of the "
                       f"load's end; stopped it:\n{attacker.tail('attack', 20)}")
    out = attacker.run(f"cat {attacker.workdir}/cells/{cell_id}/attack.json", check=False)
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise RunError(f"the attack on {attacker.name} wrote no report:\n{attacker.tail('attack', 20)}") from None


def _collect_cell(inv: Inventory, cell: Cell, sysd: dep.System, cell_dir: Path, collector: CellCollector,
                  clients: list[Remote], master: Remote, workers: list[tuple[Remote, int]],
                  measured: list[tuple[Remote, str]], before: dict, after: dict, rec: dict[str, Any]) -> None:
    """A cell's step 4 after the load: Locust's files, logs, counters, cpu.json and cell.json."""
    ended = rundir.now()
    collector.finish()
    master.stop("locust-master")
    for r, i in workers:
        r.stop(f"locust-worker-{i}")
    cell_dir.mkdir(parents=True, exist_ok=True)
    for r in clients:
        r.get_tree(f"{r.workdir}/cells/{cell.cell_id}/requests", cell_dir / "requests")
        r.get_tree(f"{r.workdir}/cells/{cell.cell_id}/locust", cell_dir / "locust")
    _rename_locust_csvs(cell_dir / "locust")
    for r, svc in measured:
        (cell_dir / "logs").mkdir(exist_ok=True)
        (cell_dir / "logs" / f"{r.name}-{svc}.log").write_text(r.tail(svc, 200))
    _collect_switch_stats(inv, cell_dir / "switch", sysd)
    collector.write(cell_dir)
    cpu = _cpu_json(before, after, rec["measure_end"] - rec["measure_start"])
    cpu["bpf"] = collector.bpf_rows()
    cpu["machine"] = collector.machine_rows()
    (cell_dir / "cpu.json").write_text(json.dumps(cpu, indent=2) + "\n")
    rec = cell.to_dict() | rec | {"ended": ended, "status": "ok", "error": None}
    (cell_dir / "cell.json").write_text(json.dumps(rec, indent=2) + "\n")
    if cell.wrk_check:
        from harness import wrk
        wrk.cross_check(master, cell, rec["target"]["address"], rec["target"]["port"], cell_dir)
    if not any((cell_dir / "requests").glob("*.csv")):
        raise RunError(f"no raw request data came back; master log:\n{_tail(cell_dir / 'locust/master.log')}")


def _collect_switch_stats(inv: Inventory, dest: Path, sysd: dep.System | None = None) -> None:
    """Counters after the cell: the emulated switch's and control plane's (occupancy, insertions) and
    each Miresga front-end's (offloads, fast-path and user-space forwarding). With `sysd`, only the
    stats files of that system's services: the files outlive a service in run/ across deploys, so
    a switch-only cell would otherwise get an earlier Miresga deploy's front-end stats."""
    switch_files = {"emulated": ("controlplane-stats.json", "p4rt-stats.json", "slowpath-stats.json"),
                    "tofino": ("controlplane-stats.json", "slowpath-stats.json", "switch-sde.json")}
    hosts = [(inv.switch_host, switch_files[inv.switch.target])] if inv.switch.target in switch_files else []
    hosts += [(h, ("frontend-stats.json",)) for h in inv.frontends]
    if sysd is not None:
        services = {svc for _, svc in sysd.measured}
        own = {"frontend-stats.json": "frontend" in services, "slowpath-stats.json": "slowpath" in services}
        hosts = [(h, tuple(n for n in names if own.get(n, True))) for h, names in hosts]
    for host, names in hosts:
        with Remote(inv, host) as r:
            for name in names:
                text = r.run(f"cat {r.workdir}/run/{name} 2>/dev/null", check=False)
                if text.strip():
                    dest.mkdir(parents=True, exist_ok=True)
                    target = name if host.role == "switch" else f"{host.name}-{name}"
                    (dest / target).write_text(text)


def _tail(p: Path, n: int = 20) -> str:
    try:
        return "\n".join(p.read_text().splitlines()[-n:])
    except OSError:
        return "(no log)"


def _rename_locust_csvs(d: Path) -> None:
    """Locust writes <prefix>_stats.csv etc.; the run directory names them stats.csv etc."""
    for p in d.glob("stats_*.csv"):
        p.rename(d / p.name.removeprefix("stats_"))


def _wait_for_load_start(master: Remote, logfile: str) -> float:
    """Poll the master's log until Locust starts its run-time clock (the load begins); returns the
    local time it was seen (at most one poll late). Fails if the master exits first or never starts."""
    deadline = time.time() + LOAD_START_GUARD_S
    while True:
        seen = master.run(f"grep -cF {shlex.quote(locust_runner.LOAD_STARTED)} {shlex.quote(logfile)} || true",
                          check=False).strip()
        if seen not in ("", "0"):
            return time.time()
        if master.service_pid("locust-master") is None:
            raise RunError(f"Locust's master exited before starting the load: see {logfile} on {master.name}\n"
                           + master.tail("locust-master", 20))
        if time.time() > deadline:
            raise RunError(f"Locust's master did not start the load within {LOAD_START_GUARD_S} s "
                           f"(no {locust_runner.LOAD_STARTED!r} in {logfile} on {master.name})")
        time.sleep(0.2)


def _sleep_until(t: float) -> None:
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.5))


def _cpu_snapshot(services: list[tuple[Remote, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """CPU times of every measured service: one SSH round trip per host."""
    by_host: dict[str, tuple[Remote, list[str]]] = {}
    for r, svc in services:
        by_host.setdefault(r.name, (r, []))[1].append(svc)
    snap = {}
    for r, svcs in by_host.values():
        for svc, times in r.service_cpu(svcs).items():
            snap[(r.name, svc)] = {"role": r.host.role, "times": times}
    return snap


def _cpu_json(before: dict, after: dict, window: float) -> dict[str, Any]:
    procs = []
    for key, a in after.items():
        host, svc = key
        b = before.get(key, {"times": {}})["times"]
        user = sys_ = 0.0
        for pid, (u, s) in a["times"].items():
            u0, s0 = b.get(pid, (0.0, 0.0))
            user += u - u0
            sys_ += s - s0
        service = "locust" if svc.startswith("locust") else svc
        procs.append({"host": host, "role": a["role"], "service": service, "instance": svc,
                      "pids": sorted(a["times"]), "user_s": round(user, 3), "system_s": round(sys_, 3)})
    return {"window_s": round(window, 3), "processes": procs, "bpf": []}
