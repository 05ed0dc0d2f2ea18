"""The Locust runner library: command lines, CSV parsing, and real Locust runs against nginx on loopback.

The integration tests run `python -m locust` (master + 1 worker, as subprocesses) against a
throw-away nginx on 127.0.0.1 serving objects written by workloads.catalog, and check the raw rows.
"""

from __future__ import annotations

import collections
import math
import sys
from pathlib import Path

import pytest

from harness.locust_runner import (
    LOAD_STARTED,
    collect_csvs,
    csv_files,
    locust_env,
    master_command,
    parse_stats_csv,
    parse_stats_rows,
    progress_line,
    run_local,
    ui_command,
    worker_command,
)
from workloads.catalog import object_bytes, write_catalog
from workloads.raw import COLUMNS, read_raw
from workloads.spec import Job, Target, Workload, WorkloadObject
from workloads.testserver import LoopbackNginx, MisbehavingServer

PY = "/opt/venv/bin/python"


def _flag(cmd: list[str], flag: str) -> str:
    assert flag in cmd, f"{flag} missing from {cmd}"
    return cmd[cmd.index(flag) + 1]


def test_master_command_headless() -> None:
    cmd = master_command(PY, "workloads/locustfile.py", users=32, spawn_rate=32, run_time_s=20,
                         expect_workers=2, bind_host="198.19.0.11", bind_port=5600,
                         csv_prefix="/w/cell/locust/locust", stop_timeout_s=15, logfile="/w/master.log")
    assert cmd[:5] == [PY, "-m", "locust", "-f", "workloads/locustfile.py"]
    assert {"--headless", "--master", "--csv-full-history", "--only-summary"} <= set(cmd)
    assert "--worker" not in cmd and "--web-port" not in cmd
    assert _flag(cmd, "--master-bind-host") == "198.19.0.11"
    assert _flag(cmd, "--master-bind-port") == "5600"
    assert _flag(cmd, "--expect-workers") == "2"
    assert _flag(cmd, "-u") == "32"
    assert _flag(cmd, "-r") == "32"
    assert _flag(cmd, "-t") == "20s"
    assert _flag(cmd, "--csv") == "/w/cell/locust/locust"
    assert _flag(cmd, "--stop-timeout") == "15"
    assert _flag(cmd, "--exit-code-on-error") == "0"
    assert _flag(cmd, "--logfile") == "/w/master.log"
    cmd = master_command(PY, users=1, spawn_rate=0.5, run_time_s=2.5, expect_workers=1, bind_host="127.0.0.1",
                         only_summary=False)
    assert _flag(cmd, "-t") == "2.5s" and _flag(cmd, "-r") == "0.5"
    assert "--csv" not in cmd and "--only-summary" not in cmd
    assert _flag(cmd, "--master-bind-port") == "5557"
    with pytest.raises(ValueError, match="run_time_s"):
        master_command(PY, users=1, spawn_rate=1, run_time_s=0, expect_workers=1, bind_host="127.0.0.1")
    with pytest.raises(ValueError, match="at least 1"):
        master_command(PY, users=0, spawn_rate=1, run_time_s=1, expect_workers=1, bind_host="127.0.0.1")


def test_worker_and_ui_commands() -> None:
    cmd = worker_command(PY, master_host="198.19.0.11", master_port=5600, logfile="/w/worker-client1-0.log")
    assert "--worker" in cmd and "--headless" not in cmd and "--master" not in cmd
    assert _flag(cmd, "--master-host") == "198.19.0.11"
    assert _flag(cmd, "--master-port") == "5600"
    cmd = ui_command(PY, web_host="198.19.0.11", bind_host="198.19.0.11", users=10, spawn_rate=5)
    assert "--headless" not in cmd and "--master" in cmd
    assert _flag(cmd, "--web-host") == "198.19.0.11"
    assert _flag(cmd, "--web-port") == "8089"
    assert _flag(cmd, "-u") == "10"


def test_env_and_csv_names(tmp_path) -> None:
    env = locust_env("/w/job.json", "/w/cell/requests", "client1", worker_id=3, base={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "MIRESGA_WORKLOAD": "/w/job.json", "MIRESGA_RAW_DIR": "/w/cell/requests",
                   "MIRESGA_HOST_LABEL": "client1", "MIRESGA_WORKER_ID": "3", "PYTHONUNBUFFERED": "1"}
    assert "MIRESGA_WORKER_ID" not in locust_env("j", "r", "h")
    assert csv_files(tmp_path / "locust")["stats_history"] == tmp_path / "locust_stats_history.csv"
    (tmp_path / "locust_stats.csv").write_text("x")
    (tmp_path / "locust_failures.csv").write_text("y")
    moved = collect_csvs(tmp_path / "locust", tmp_path / "cell")
    assert sorted(moved) == ["failures", "stats"]
    assert (tmp_path / "cell" / "stats.csv").read_text() == "x"
    assert not (tmp_path / "locust_stats.csv").exists()


# Captured from a Locust 2.47 run (lean user, T2-like mix, 4 users).
STATS_CSV = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,\
Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
GET,10k,1986,0,0.087,0.6681706948640486,0.087,8.518,10240.0,651.287505948063,0.0,0,1,1,1,1,2,4,5,8,9,9
GET,1k,6873,3,0.082,0.6699976720500505,0.082,46.533,1024.0,2253.9270032130094,0.5,0,1,1,1,1,2,4,5,7,47,47
,Aggregated,8859,3,0.082,0.9639726786974486,0.082,73.775,314615.7669119871,3252.8301971293236,0.5,\
0,1,1,1,2,3,5,6,46,74,74
"""


def test_parse_stats_csv(tmp_path) -> None:
    p = tmp_path / "stats.csv"
    p.write_text(STATS_CSV)
    rows = parse_stats_rows(p)
    assert [r.name for r in rows] == ["10k", "1k", "Aggregated"]
    agg = parse_stats_csv(p)
    assert agg is not None
    assert (agg.requests, agg.failures) == (8859, 3)
    assert agg.rps == pytest.approx(3252.83, abs=0.01)
    assert agg.percentiles_ms["99%"] == 6 and agg.percentiles_ms["99.9%"] == 46
    assert agg.max_ms == 73.775
    assert progress_line(agg) == "8859 requests, 3 failed, 3253 req/s, median 0 ms, p99 6 ms"
    p.write_text(STATS_CSV.split("\n")[0] + "\n")
    assert parse_stats_csv(p) is None


# ---------------------------------------------------------------------------------------------
# Integration: real nginx, real Locust (master + 1 worker)

CATALOG = {"1k": 1024, "10k": 10 * 1024, "64k": 64 * 1024, "10m": 10 * 1024 * 1024}
TRUNCATED_BY = 100


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("nginx")
    write_catalog(root / "obj", CATALOG)
    # Damaged copies under other paths: one byte changed (mid-object, and the last byte), a short file.
    for sub, offset in (("corrupt", 40_000), ("corrupt-end", 64 * 1024 - 1)):
        data = bytearray(object_bytes("64k", 64 * 1024))
        data[offset] ^= 0x5A
        (root / "obj" / sub).mkdir()
        (root / "obj" / sub / "64k").write_bytes(data)
    (root / "obj" / "trunc").mkdir()
    (root / "obj" / "trunc" / "10k").write_bytes(object_bytes("10k", 10 * 1024)[:-TRUNCATED_BY])
    with LoopbackNginx(root) as nginx:
        yield nginx


def _objects(paths: dict[str, str] | None = None) -> tuple[WorkloadObject, ...]:
    paths = paths or {}
    return tuple(WorkloadObject(n, paths.get(n, f"/obj/{n}"), s, 1) for n, s in CATALOG.items())


def _run(tmp_path: Path, port: int, workload: Workload, users: int = 3, seconds: float = 2,
         pace_rps: float | None = None, **job_kw: object) -> tuple[list, object]:
    out = tmp_path / f"{workload.name}-{workload.client}-{workload.verify}"
    out.mkdir()
    job = Job(workload, Target("127.0.0.1", port), users=users, timeout_s=5, pace_rps=pace_rps,
              **job_kw)  # type: ignore[arg-type]
    job.write(out / "job.json")
    code, run = run_local(out / "job.json", out, users=users, run_time_s=seconds, stop_timeout_s=5,
                          host_label="client1", python=sys.executable)
    master_log = (out / "locust" / "master.log").read_text()
    assert code == 0, master_log
    expected_class = {"lean": "LeanUser", "stock": "StockUser"}[workload.client]
    assert f'All users spawned: {{"{expected_class}": {users}}}' in master_log  # one class, by the spec
    assert sorted(p.name for p in (out / "requests").iterdir()) == ["client1-0.csv"]  # master writes none
    rows = read_raw(out / "requests" / "client1-0.csv")
    assert (out / "requests" / "client1-0.csv").read_text().split("\n", 1)[0] == ",".join(COLUMNS)
    stats = run.stats()
    assert stats is not None
    assert stats.requests == len(rows)  # every row was also reported to Locust
    assert stats.failures == sum(1 for r in rows if not r["ok"])
    assert {"stats.csv", "stats_history.csv", "failures.csv", "exceptions.csv"} <= \
           {p.name for p in (out / "locust").iterdir()}
    return rows, run


def _assert_all_ok(rows: list[dict], min_rows: int) -> None:
    assert len(rows) >= min_rows
    bad = [r for r in rows if not (r["ok"] == 1 and r["error"] == "" and r["status"] == 200)]
    assert not bad, bad[:5]
    for r in rows:
        assert r["bytes"] == r["expected_bytes"] == CATALOG[r["object"]]
        assert r["latency_us"] > 0
    assert set(CATALOG) == {r["object"] for r in rows}  # equal weights: every object was requested
    starts = [r["start"] for r in rows]
    assert max(starts) - min(starts) < 10


@pytest.mark.parametrize(("client", "verify", "connection", "per_conn"), [
    ("lean", "full", "keepalive", 5),
    ("lean", "sampled", "close", 1),
    ("stock", "full", "close", 1),
    ("stock", "full", "keepalive", 5),
])
def test_locust_run_all_ok(server, tmp_path, client, verify, connection, per_conn) -> None:
    w = Workload("mix4", _objects(), connection=connection, requests_per_connection=per_conn,
                 client=client, verify=verify)
    users = 3
    rows, run = _run(tmp_path, server.port, w, users=users)
    _assert_all_ok(rows, min_rows=30)
    # the line the suite runner anchors a cell's window on (runner._wait_for_load_start)
    assert LOAD_STARTED in (run.locust_dir / "master.log").read_text()
    new = sum(r["new_connection"] for r in rows)
    if connection == "close":
        assert new == len(rows)
    else:  # a new connection every 5 requests per user
        assert math.ceil(len(rows) / per_conn) <= new <= len(rows) / per_conn + users


@pytest.mark.parametrize(("client", "verify", "corrupt_dir"), [
    ("lean", "full", "corrupt"),
    ("lean", "sampled", "corrupt-end"),
    ("stock", "full", "corrupt"),
])
def test_locust_run_detects_damage(server, tmp_path, client, verify, corrupt_dir) -> None:
    w = Workload("damaged", _objects({"64k": f"/obj/{corrupt_dir}/64k", "10k": "/obj/trunc/10k"}),
                 connection="keepalive", requests_per_connection=4, client=client, verify=verify)
    rows, run = _run(tmp_path, server.port, w, users=2)
    by = collections.defaultdict(list)
    for r in rows:
        by[r["object"]].append(r)
    assert set(by) == set(CATALOG)
    for r in by["64k"]:
        assert (r["ok"], r["error"], r["status"], r["bytes"]) == (0, "wrong-bytes", 200, 64 * 1024)
    for r in by["10k"]:
        assert (r["ok"], r["error"], r["status"], r["bytes"]) == (0, "short-body", 200, 10 * 1024 - TRUNCATED_BY)
    for r in by["1k"] + by["10m"]:
        assert (r["ok"], r["error"], r["bytes"]) == (1, "", r["expected_bytes"])
    failures = (run.locust_dir / "failures.csv").read_text()
    assert "wrong-bytes" in failures and "short-body" in failures


@pytest.mark.parametrize("client", ["lean", "stock"])
def test_locust_run_cut_response(tmp_path, client) -> None:
    """A response cut mid-body (right Content-Length, then the connection closes) is a short-body."""
    with MisbehavingServer({"64k": 64 * 1024}) as bad:
        w = Workload("cut", (WorkloadObject("64k", "/cut/64k", 64 * 1024),), client=client, verify="full")
        rows, _ = _run(tmp_path, bad.port, w, users=1, seconds=1)
    assert len(rows) >= 5
    for r in rows:
        assert (r["ok"], r["error"], r["status"], r["new_connection"]) == (0, "short-body", 200, 1)
        assert 0 < r["bytes"] < 64 * 1024 if client == "stock" else r["bytes"] == 32 * 1024


def test_locust_run_paced(server, tmp_path) -> None:
    """pace_rps is the run's total: 3 users at 10 requests/s each, instead of a closed loop."""
    w = Workload("paced", _objects(), connection="keepalive", requests_per_connection=100)
    rows, _ = _run(tmp_path, server.port, w, users=3, seconds=3, pace_rps=30)
    assert all(r["ok"] for r in rows)
    starts = sorted(r["start"] for r in rows)
    in_two_seconds = [t for t in starts if starts[0] + 0.5 <= t < starts[0] + 2.5]
    # Pacing caps the rate (a closed loop on loopback would make thousands in 2 s). How many a busy
    # machine reaches below the cap is its speed, not pacing's behaviour: only the cap is asserted.
    assert 1 <= len(in_two_seconds) <= 70, len(in_two_seconds)


def test_locust_run_open_loop(server, tmp_path) -> None:
    """Open loop through Locust: 2 users, each a constant stream of 20 requests/s; every row records
    how late it was sent (queue_us), and the intended send times keep to the schedule: no second
    holds more than the two streams' 40 requests (+1 each for the phase), whatever the server did."""
    w = Workload("open", _objects(), connection="close")
    rows, _ = _run(tmp_path, server.port, w, users=2, seconds=3, mode="open", rate=40)
    _assert_all_ok(rows, min_rows=8)
    assert all(r["queue_us"] >= 0 and r["connect_us"] is not None and r["ttfb_us"] is not None for r in rows)
    intended = sorted(r["start"] - r["queue_us"] / 1e6 for r in rows)
    for i, t in enumerate(intended):
        assert sum(1 for u in intended[i:] if u < t + 1.0) <= 42
