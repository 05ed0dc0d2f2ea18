"""Locust user classes for Miresga's workloads; run by `python -m locust -f workloads/locustfile.py`.

Never imported by the harness (importing Locust monkey-patches with gevent). Configuration comes
from the environment (see harness/locust_runner.py `locust_env`):

- MIRESGA_WORKLOAD    path of the job JSON (workloads.spec.Job: workload, target, users, pace, timeout)
- MIRESGA_RAW_DIR     directory for raw rows, written as <label>-<n>.csv
- MIRESGA_HOST_LABEL  the <label> (the client host's inventory name)
- MIRESGA_WORKER_ID   optional <n>; default the process id
- MIRESGA_UI          optional: the web UI file of `fab locust-ui` (workloads/webui.py): the workload
                      is then chosen in the UI's start form (the job's is the default)

Exactly one user class is non-abstract: `LeanUser` for client "lean", `StockUser` for "stock"; with
MIRESGA_UI both are, and the master runs the one the form's `client` selects.
Both write identical raw rows and fire Locust's request event (its stats, CSVs and web UI work).
"""

from __future__ import annotations

import bisect
import itertools
import os
import random
import sys
import time
from pathlib import Path

from locust import FastHttpUser, User, constant, constant_throughput, events, task
from locust.runners import MasterRunner, WorkerRunner
from locust.user.task import LOCUST_STATE_STOPPING

try:
    import workloads  # noqa: F401  (installed in the harness's environment)
except ImportError:  # a bare checkout on a client host: the project root is the parent of workloads/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workloads.lean import LeanConnection, Result, expected_bytes
from workloads.openloop import OpenLoop, Schedule
from workloads.raw import RawWriter, raw_path, worker_id
from workloads.spec import Job, Workload, WorkloadObject


def _load_job() -> Job:
    path = os.environ.get("MIRESGA_WORKLOAD")
    if not path:
        raise SystemExit("workloads/locustfile.py: set MIRESGA_WORKLOAD to the job JSON file "
                         "(harness/locust_runner.py locust_env())")
    try:
        return Job.load(path)
    except ValueError as e:
        raise SystemExit(f"workloads/locustfile.py: {e}") from None


def _load_ui() -> dict | None:
    path = os.environ.get("MIRESGA_UI")
    if not path:
        return None
    from workloads import webui
    try:
        return webui.load_ui_file(path)
    except ValueError as e:
        raise SystemExit(f"workloads/locustfile.py: {e}") from None


JOB = _load_job()
WORKLOAD = JOB.workload
UI = _load_ui()
HOST_LABEL = os.environ.get("MIRESGA_HOST_LABEL") or os.uname().nodename.split(".")[0]
RAW_DIR = os.environ.get("MIRESGA_RAW_DIR", "requests")
_user_numbers = itertools.count()


class _Choice:
    """A workload's objects and their cumulative weights (object choice by bisection)."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.objects = workload.objects
        self.cumulative = list(itertools.accumulate(o.weight for o in self.objects))
        self.paths = {o.name: o.path for o in self.objects}
        # In the web UI every run's rows are labelled with its workload (Locust's stats, CSV, report).
        self.label = f" [{workload.name}, {workload.client}]" if UI is not None else ""

    def pick(self, rng: random.Random) -> WorkloadObject:
        if len(self.objects) == 1:
            return self.objects[0]
        return self.objects[bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


_FIXED = _Choice(WORKLOAD)
_chosen: dict[tuple, _Choice] = {}


def _current(environment) -> _Choice:
    """The job's workload, or in the web UI the one the start form chose (Locust's parsed options,
    sent to the workers with each spawn message)."""
    if UI is None:
        return _FIXED
    from workloads import webui
    opts = vars(environment.parsed_options) if environment.parsed_options else {}
    key = tuple(opts.get(k) for k in webui.FORM_FIELDS)
    if key not in _chosen:
        _chosen[key] = _Choice(webui.workload_from(dict(zip(webui.FORM_FIELDS, key, strict=True)), UI["catalog"]))
    return _chosen[key]


@events.init_command_line_parser.add_listener
def _ui_arguments(parser, **_kw) -> None:
    if UI is not None:
        from workloads import webui
        webui.add_arguments(parser, UI["catalog"], WORKLOAD)


@events.init.add_listener
def _ui_install(environment, **_kw) -> None:
    if UI is None or isinstance(environment.runner, WorkerRunner) or environment.web_ui is None:
        return
    from workloads import webui

    def chosen(w: Workload) -> None:
        environment.profile = f"Miresga {webui.describe(w)} against {UI['system']}"

    webui.install(environment, UI, {"lean": LeanUser, "stock": StockUser}, chosen)


_writer: RawWriter | None = None


def writer() -> RawWriter:
    global _writer
    if _writer is None:
        _writer = RawWriter(raw_path(RAW_DIR, HOST_LABEL, worker_id()))
    return _writer


@events.test_stop.add_listener
def _flush_at_stop(environment, **_kw) -> None:
    if not isinstance(environment.runner, MasterRunner):
        writer().flush()  # creates the file (header only) even if this process sent nothing


@events.quitting.add_listener
def _flush_at_quit(environment, **_kw) -> None:
    if _writer is not None:
        _writer.flush()


class RequestFailed(Exception):
    """What Locust's stats record as the failure: the raw row's error value."""


def _wait_time():
    per_user = JOB.user_throughput
    return constant(0) if per_user is None else constant_throughput(per_user)


class _Mixin:
    """Object choice (seeded per user) and raw recording, shared by both user classes."""

    def _setup_rng(self) -> random.Random:
        k = next(_user_numbers)
        self.choice = _current(self.environment)
        return random.Random(f"{JOB.seed}:{HOST_LABEL}:{worker_id()}:{k}")


class LeanUser(_Mixin, User):
    """Plain sockets (gevent-patched), a reused 256 KiB buffer, full or sampled verification."""

    abstract = UI is None and WORKLOAD.client != "lean"
    host = JOB.target.url
    wait_time = _wait_time()

    def on_start(self) -> None:
        self.rng = self._setup_rng()
        w = self.choice.workload
        self.conn = LeanConnection(JOB.target, keepalive=w.connection == "keepalive",
                                   requests_per_connection=w.requests_per_connection,
                                   verify=w.verify, timeout_s=JOB.timeout_s, rng=self.rng)

    def on_stop(self) -> None:
        self.conn.close()
        if getattr(self, "open_loop", None) is not None:
            self.open_loop.close()

    def _record(self, r: Result) -> None:
        writer().add_result(r)
        # Locust's stats get the latency a user saw: from the intended send time in open loop.
        self.environment.events.request.fire(
            request_type="GET", name=r.object + self.choice.label,
            response_time=(r.queue_us + r.latency_us) / 1000.0,
            response_length=r.bytes, exception=RequestFailed(r.error) if r.error else None,
            context={}, start_time=r.start, url=self.choice.paths.get(r.object), response=None)

    @task
    def fetch(self) -> None:
        if JOB.mode == "open":
            self._open_loop()
            return
        self._record(self.conn.get(self.choice.pick(self.rng)))

    def _open_loop(self) -> None:
        """This user's arrival stream (workloads/openloop.py) until Locust stops the user."""
        import gevent
        rate = JOB.user_rate
        assert rate is not None
        w = self.choice.workload
        self.open_loop = OpenLoop(
            Schedule(rate, JOB.arrival, random.Random(self.rng.random())),
            connect=lambda: LeanConnection(JOB.target, keepalive=w.connection == "keepalive",
                                           requests_per_connection=w.requests_per_connection,
                                           verify=w.verify, timeout_s=JOB.timeout_s, rng=self.rng),
            choose=lambda: self.choice.pick(self.rng), record=self._record,
            max_connections=JOB.max_connections, spawn=gevent.spawn)
        # Stop sending when Locust stops the user; requests in flight finish within its stop timeout.
        self.open_loop.run(stopping=lambda: self._state == LOCUST_STATE_STOPPING,
                           drain_s=self.environment.stop_timeout or 10.0)


def _stock_error(resp, obj: WorkloadObject, new: bool) -> tuple[int, str]:
    """(bytes, error) for a FastHttpUser response."""
    status = resp.status_code or 0
    body = resp.content or b""
    if status == 0:
        exc = getattr(resp, "error", None)
        if isinstance(exc, ConnectionRefusedError) or (new and isinstance(exc, OSError)
                                                        and not isinstance(exc, TimeoutError)
                                                        and not isinstance(exc, ConnectionResetError)):
            return len(body), "connect"
        if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower():
            return len(body), "timeout"
        if isinstance(exc, ConnectionResetError | BrokenPipeError):
            return len(body), "reset"
        return len(body), f"other:{type(exc).__name__}"
    if status != 200:
        return len(body), f"http-{status}"
    if len(body) < obj.size:
        return len(body), "short-body"
    if len(body) != obj.size or body != expected_bytes(obj.name, obj.size):
        return len(body), "wrong-bytes"
    if getattr(resp, "error", None) is not None:
        return len(body), f"other:{type(resp.error).__name__}"
    return len(body), ""


class StockUser(_Mixin, FastHttpUser):
    """Locust's FastHttpUser with the same workload, the same raw rows and full verification."""

    abstract = UI is None and WORKLOAD.client != "stock"
    host = JOB.target.url
    wait_time = _wait_time()
    network_timeout = JOB.timeout_s
    connection_timeout = JOB.timeout_s
    max_retries = 0

    def on_start(self) -> None:
        self.rng = self._setup_rng()
        self.sent_on_connection = 0
        self.keepalive = self.choice.workload.connection == "keepalive"
        self.requests_per_connection = self.choice.workload.requests_per_connection
        self.base_headers = {"Host": JOB.target.host_header, "Accept-Encoding": "identity"}

    @task
    def fetch(self) -> None:
        obj = self.choice.pick(self.rng)
        new = self.sent_on_connection == 0
        self.sent_on_connection += 1
        last = not self.keepalive or self.sent_on_connection >= self.requests_per_connection
        headers = dict(self.base_headers, Connection="close") if last else self.base_headers
        start = time.time()
        t0 = time.perf_counter_ns()
        with self.client.get(obj.path, name=obj.name + self.choice.label, headers=headers, catch_response=True) as resp:
            latency_us = (time.perf_counter_ns() - t0) // 1000
            nbytes, error = _stock_error(resp, obj, new)
            if error:
                resp.failure(RequestFailed(error))
            else:
                resp.success()
        if last or not resp.status_code or error == "short-body":
            self.sent_on_connection = 0  # the client opens a new connection for the next request
        writer().add(start, latency_us, obj.name, obj.size, nbytes, resp.status_code or 0, 0 if error else 1,
                     error, 1 if new else 0)
