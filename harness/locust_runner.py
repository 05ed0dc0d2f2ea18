"""Locust as a subprocess: command lines, environment, CSV parsing, and a local runner.

The suite runner (over SSH) uses the pure parts: `master_command`, `worker_command`, `ui_command`,
`locust_env`, `csv_files`/`collect_csvs` and `parse_stats_csv`. `LocalLocust` runs a master and
workers on this machine (tests, the generator benchmark). Nothing here imports Locust: importing it
monkey-patches the process with gevent.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = "workloads/locustfile.py"  # relative to the project root (the host's workdir)
MASTER_PORT = 5557
WEB_PORT = 8089
# Locust's --csv PREFIX writes PREFIX_<kind>.csv; the run directory stores them as locust/<kind>.csv.
CSV_KINDS = ("stats", "stats_history", "failures", "exceptions")


# What a headless master logs when it starts the load and its --run-time clock (locust/main.py):
# the harness anchors a cell's warm-up and measurement window there (runner._wait_for_load_start).
LOAD_STARTED = "Run time limit set to"


def _common(python: str, locustfile: str | Path, logfile: str | Path | None, loglevel: str) -> list[str]:
    cmd = [python, "-m", "locust", "-f", str(locustfile), "--loglevel", loglevel]
    if logfile is not None:
        cmd += ["--logfile", str(logfile)]
    return cmd


def _seconds(value: float, flag: str) -> str:
    if value <= 0:
        raise ValueError(f"{flag} must be positive, not {value}")
    return f"{int(value)}s" if float(value).is_integer() else f"{value}s"


def master_command(python: str, locustfile: str | Path = LOCUSTFILE, *, users: int, spawn_rate: float,
                   run_time_s: float, expect_workers: int, bind_host: str, bind_port: int = MASTER_PORT,
                   csv_prefix: str | Path | None = None, full_history: bool = True,
                   only_summary: bool = True, stop_timeout_s: float = 15.0,
                   expect_workers_max_wait_s: int = 60, exit_code_on_error: int = 0,
                   logfile: str | Path | None = None, loglevel: str = "INFO") -> list[str]:
    """A headless distributed master: waits for ``expect_workers`` workers, runs, writes CSVs, exits.

    ``stop_timeout_s`` lets requests in flight at the end finish (a 10 MB download) instead of being
    cut. Locust's exit code is 0 even with failed requests (``exit_code_on_error``): the raw rows
    classify failures; a non-zero code means Locust itself failed.
    """
    if users < 1 or expect_workers < 1:
        raise ValueError("users and expect_workers must be at least 1")
    if spawn_rate <= 0:
        raise ValueError(f"spawn_rate must be positive, not {spawn_rate}")
    cmd = _common(python, locustfile, logfile, loglevel)
    cmd += ["--headless", "--master", "--master-bind-host", bind_host, "--master-bind-port", str(bind_port),
            "--expect-workers", str(expect_workers), "--expect-workers-max-wait",
            str(expect_workers_max_wait_s), "-u", str(users), "-r", f"{spawn_rate:g}",
            "-t", _seconds(run_time_s, "run_time_s"), "--stop-timeout", f"{stop_timeout_s:g}",
            "--exit-code-on-error", str(exit_code_on_error)]
    if csv_prefix is not None:
        cmd += ["--csv", str(csv_prefix)]
        if full_history:
            cmd.append("--csv-full-history")
    if only_summary:
        cmd.append("--only-summary")
    return cmd


def ui_command(python: str, locustfile: str | Path = LOCUSTFILE, *, web_host: str, web_port: int = WEB_PORT,
               bind_host: str, bind_port: int = MASTER_PORT, users: int | None = None,
               spawn_rate: float | None = None, csv_prefix: str | Path | None = None,
               stop_timeout_s: float = 15.0, logfile: str | Path | None = None,
               loglevel: str = "INFO") -> list[str]:
    """An interactive master with Locust's web UI (``fab locust-ui``); users/spawn rate prefill the form."""
    cmd = _common(python, locustfile, logfile, loglevel)
    cmd += ["--master", "--master-bind-host", bind_host, "--master-bind-port", str(bind_port),
            "--web-host", web_host, "--web-port", str(web_port), "--stop-timeout", f"{stop_timeout_s:g}"]
    if users is not None:
        cmd += ["-u", str(users)]
    if spawn_rate is not None:
        cmd += ["-r", f"{spawn_rate:g}"]
    if csv_prefix is not None:
        cmd += ["--csv", str(csv_prefix), "--csv-full-history"]
    return cmd


def worker_command(python: str, locustfile: str | Path = LOCUSTFILE, *, master_host: str,
                   master_port: int = MASTER_PORT, logfile: str | Path | None = None,
                   loglevel: str = "INFO") -> list[str]:
    """One worker process; start one per client core (inventory: workers_for(host))."""
    cmd = _common(python, locustfile, logfile, loglevel)
    cmd += ["--worker", "--master-host", master_host, "--master-port", str(master_port)]
    return cmd


def locust_env(job_file: str | Path, raw_dir: str | Path, host_label: str, worker_id: int | str | None = None,
               base: Mapping[str, str] | None = None, ui_file: str | Path | None = None) -> dict[str, str]:
    """The environment variables the locustfile reads (merged over ``base`` if given).

    Raw rows go to ``raw_dir/<host_label>-<worker_id>.csv``; without ``worker_id`` the worker's PID.
    The master needs the same job file (it loads the locustfile too) but writes no rows. With
    ``ui_file`` (harness/locust_ui.py) the workload is chosen in the web UI (workloads/webui.py).
    """
    env = dict(base or {})
    env.update({"MIRESGA_WORKLOAD": str(job_file), "MIRESGA_RAW_DIR": str(raw_dir),
                "MIRESGA_HOST_LABEL": host_label, "PYTHONUNBUFFERED": "1"})
    if worker_id is not None:
        env["MIRESGA_WORKER_ID"] = str(worker_id)
    if ui_file is not None:
        env["MIRESGA_UI"] = str(ui_file)
    return env


def csv_files(prefix: str | Path) -> dict[str, Path]:
    """What Locust writes for ``--csv PREFIX``, by kind."""
    return {k: Path(f"{prefix}_{k}.csv") for k in CSV_KINDS}


def collect_csvs(prefix: str | Path, dest: str | Path) -> dict[str, Path]:
    """Moves Locust's CSVs to ``dest/<kind>.csv`` (the run directory's names); returns what it moved."""
    d = Path(dest)
    d.mkdir(parents=True, exist_ok=True)
    moved = {}
    for kind, src in csv_files(prefix).items():
        if src.exists():
            target = d / f"{kind}.csv"
            shutil.move(str(src), target)
            moved[kind] = target
    return moved


# ---------------------------------------------------------------------------------------------
# Locust's stats CSV


@dataclass(frozen=True)
class StatsRow:
    """One row of Locust's <prefix>_stats.csv (times in milliseconds, as Locust stores them)."""

    type: str
    name: str
    requests: int
    failures: int
    median_ms: float | None
    average_ms: float | None
    min_ms: float | None
    max_ms: float | None
    average_size: float | None
    rps: float
    failures_per_s: float
    percentiles_ms: dict[str, float | None] = field(default_factory=dict)


def _num(v: str | None) -> float | None:
    if v is None or v == "" or v == "N/A":
        return None
    return float(v)


def parse_stats_rows(path: str | Path) -> list[StatsRow]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = []
        for r in reader:
            pct = {k: _num(v) for k, v in r.items() if k and k.endswith("%")}
            rows.append(StatsRow(
                type=r.get("Type", ""), name=r.get("Name", ""), requests=int(r["Request Count"]),
                failures=int(r["Failure Count"]), median_ms=_num(r.get("Median Response Time")),
                average_ms=_num(r.get("Average Response Time")), min_ms=_num(r.get("Min Response Time")),
                max_ms=_num(r.get("Max Response Time")), average_size=_num(r.get("Average Content Size")),
                rps=_num(r.get("Requests/s")) or 0.0, failures_per_s=_num(r.get("Failures/s")) or 0.0,
                percentiles_ms=pct))
    return rows


def parse_stats_csv(path: str | Path) -> StatsRow | None:
    """Locust's "Aggregated" row (None if the file has none, e.g. no request was made)."""
    for row in parse_stats_rows(path):
        if row.name == "Aggregated":
            return row
    return None


def progress_line(row: StatsRow | None) -> str:
    if row is None:
        return "no requests"
    p99 = row.percentiles_ms.get("99%")
    return (f"{row.requests} requests, {row.failures} failed, {row.rps:.0f} req/s, "
            f"median {row.median_ms or 0:.0f} ms, p99 {p99 or 0:.0f} ms")


# ---------------------------------------------------------------------------------------------
# A local run: master + workers as child processes of this one


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class LocalLocust:
    """Runs a headless master and ``workers`` workers here, with files under ``out_dir``:

    out_dir/job.json, out_dir/requests/<label>-<i>.csv, out_dir/locust/{stats,...}.csv and logs.
    Processes are children of this process, recorded by PID and ended by PID.
    """

    job_file: Path
    out_dir: Path
    users: int
    spawn_rate: float
    run_time_s: float
    workers: int = 1
    host_label: str = "local"
    python: str = sys.executable
    locustfile: Path = ROOT / LOCUSTFILE
    stop_timeout_s: float = 5.0
    extra_env: Mapping[str, str] = field(default_factory=dict)
    master: subprocess.Popen[bytes] | None = None
    worker_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def raw_dir(self) -> Path:
        return self.out_dir / "requests"

    @property
    def locust_dir(self) -> Path:
        return self.out_dir / "locust"

    def start(self) -> LocalLocust:
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        self.locust_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        base = {**os.environ, **self.extra_env}
        mcmd = master_command(self.python, self.locustfile, users=self.users, spawn_rate=self.spawn_rate,
                              run_time_s=self.run_time_s, expect_workers=self.workers,
                              bind_host="127.0.0.1", bind_port=port, csv_prefix=self.locust_dir / "locust",
                              stop_timeout_s=self.stop_timeout_s, expect_workers_max_wait_s=30,
                              logfile=self.locust_dir / "master.log")
        self.master = subprocess.Popen(mcmd, env=locust_env(self.job_file, self.raw_dir, self.host_label,
                                                            base=base),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        for i in range(self.workers):
            wcmd = worker_command(self.python, self.locustfile, master_host="127.0.0.1", master_port=port,
                                  logfile=self.locust_dir / f"worker-{self.host_label}-{i}.log")
            env = locust_env(self.job_file, self.raw_dir, self.host_label, worker_id=i, base=base)
            self.worker_procs.append(subprocess.Popen(wcmd, env=env, stdout=subprocess.DEVNULL,
                                                      stderr=subprocess.DEVNULL, cwd=ROOT))
        return self

    @property
    def pids(self) -> dict[str, list[int]]:
        return {"master": [self.master.pid] if self.master else [],
                "workers": [p.pid for p in self.worker_procs]}

    def wait(self, timeout_s: float | None = None) -> int:
        """Waits for the master (then the workers) to exit; returns the master's exit code.

        On timeout every process is ended (by PID) and TimeoutError raised.
        """
        assert self.master is not None
        limit = timeout_s if timeout_s is not None else self.run_time_s + self.stop_timeout_s + 60
        deadline = time.monotonic() + limit
        try:
            code = self.master.wait(timeout=max(0.1, deadline - time.monotonic()))
            for w in self.worker_procs:
                w.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            raise TimeoutError(f"Locust did not finish within {limit:.0f} s") from None
        collect_csvs(self.locust_dir / "locust", self.locust_dir)
        return code

    def stop(self) -> None:
        """Ends every process this object started (SIGINT, then SIGKILL), by PID."""
        procs = [p for p in [self.master, *self.worker_procs] if p is not None]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    def stats(self) -> StatsRow | None:
        path = self.locust_dir / "stats.csv"
        return parse_stats_csv(path) if path.exists() else None


def run_local(job_file: Path, out_dir: Path, *, users: int, run_time_s: float, spawn_rate: float | None = None,
              workers: int = 1, **kw: object) -> tuple[int, LocalLocust]:
    """Starts a LocalLocust, waits for it, returns (master exit code, the run)."""
    run = LocalLocust(job_file=job_file, out_dir=out_dir, users=users, spawn_rate=spawn_rate or users,
                      run_time_s=run_time_s, workers=workers, **kw)  # type: ignore[arg-type]
    run.start()
    try:
        code = run.wait()
    finally:
        run.stop()
    return code, run


def command_line(cmd: Sequence[str]) -> str:
    """A shell-quoted command line, for logs and for Fabric's `run`."""
    import shlex
    return shlex.join(cmd)
