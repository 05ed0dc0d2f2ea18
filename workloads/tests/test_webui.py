"""The web UI of `fab locust-ui` (workloads/webui.py) on loopback: a real Locust master with its web UI
and one worker, against a real nginx; the workload chosen in the start form (validated by the spec),
recorded in Locust's stats and report, and the Switch tab fed through /switch/push.

The testbed version (tests/test_locust_ui.py) adds the harness's sampler against Miresga."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from harness import locust_runner
from workloads import webui
from workloads.catalog import write_catalog
from workloads.raw import read_raw_dir
from workloads.spec import Job, Target, choose
from workloads.testserver import LoopbackNginx

CATALOG = {"1k": 1024, "10k": 10240, "1m": 1 << 20, "10m": 10 << 20}
TOKEN = "t0ken"


def http(url: str, form: dict | None = None, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 10) -> tuple[int, bytes]:
    data = urllib.parse.urlencode(form).encode() if form is not None else body
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def poll(what: str, fn, timeout: float = 60):
    """fn() until it returns something true (returned), else fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout} s (last {last!r})")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    write_catalog(root / "www" / "obj", CATALOG)
    with LoopbackNginx(root / "www") as nginx:
        job = Job(workload=choose("1k", CATALOG), target=Target("127.0.0.1", nginx.port), users=1)
        job.write(root / "job.json")
        (root / "ui.json").write_text(json.dumps({
            "catalog": CATALOG, "system": "direct", "description": "nginx on loopback", "pipeline": "forwarding",
            "switch_state": True, "message": "", "token": TOKEN}))
        (root / "requests").mkdir()
        web, master_port = locust_runner.free_port(), locust_runner.free_port()
        env = locust_runner.locust_env(root / "job.json", root / "requests", "loop", ui_file=root / "ui.json",
                                       base={"PATH": "/usr/bin:/bin"})
        mcmd = locust_runner.ui_command(locust_runner.sys.executable, locust_runner.ROOT / locust_runner.LOCUSTFILE,
                                        web_host="127.0.0.1", web_port=web, bind_host="127.0.0.1",
                                        bind_port=master_port, users=2, spawn_rate=2,
                                        csv_prefix=root / "stats", logfile=root / "master.log")
        wcmd = locust_runner.worker_command(locust_runner.sys.executable,
                                            locust_runner.ROOT / locust_runner.LOCUSTFILE,
                                            master_host="127.0.0.1", master_port=master_port,
                                            logfile=root / "worker.log")
        procs = [subprocess.Popen(mcmd, env=env, cwd=locust_runner.ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)]
        procs.append(subprocess.Popen(wcmd, env={**env, "MIRESGA_WORKER_ID": "0"}, cwd=locust_runner.ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{web}"

        def ready():
            try:
                return json.loads(http(f"{url}/stats/requests")[1]).get("worker_count") == 1
            except OSError:
                return False
        try:
            poll("the web UI with one worker", ready)
            yield url, root
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)


def template_args(url: str) -> dict:
    status, html = http(url + "/")
    assert status == 200
    m = re.search(r"window\.templateArgs = (\{.*\})\s*</script>", html.decode(), re.S)
    assert m, "no templateArgs in the page"
    return json.loads(m.group(1))


def swarm(url: str, **form) -> dict:
    base = {"user_count": "2", "spawn_rate": "2", "host": "", "objects": "1k", "connection": "close",
            "requests_per_connection": "100", "client": "lean", "verify": "sampled"}
    return json.loads(http(url + "/swarm", {**base, **form})[1])


def state(url: str) -> dict:
    return json.loads(http(url + "/stats/requests")[1])


def test_the_start_form_has_the_workload_fields_and_the_switch_tab(ui):
    url, _ = ui
    args = template_args(url)
    extra = args["extra_options"]
    assert set(webui.FORM_FIELDS) <= set(extra)
    assert extra["objects"]["choices"] == ["1k", "10k", "1m", "10m", "t1", "t2", "t3"]
    assert extra["objects"]["default_value"] == "1k"
    assert extra["connection"]["choices"] == ["close", "keepalive"]
    assert extra["client"]["choices"] == ["lean", "stock"]
    assert args["extended_tabs"] == [{"title": "Switch", "key": "switch"}]
    assert [c["key"] for c in args["extended_tables"][0]["structure"]] == ["metric", "value", "detail"]


@pytest.mark.parametrize("form, message", [
    ({"objects": "2k"}, "objects: '2k' is neither an object of the catalog (1k, 10k, 1m, 10m) nor a mix (t1, t2, t3)"),
    ({"connection": "pipelined"}, "connection: must be one of close, keepalive, not 'pipelined'"),
    ({"connection": "keepalive", "requests_per_connection": "0"}, "requests_per_connection: must be >= 1, not 0"),
    ({"requests_per_connection": "many"}, "requests_per_connection: must be an integer, not 'many'"),
    ({"client": "curl"}, "client: must be one of lean, stock, not 'curl'"),
])
def test_a_bad_workload_is_refused_with_the_specs_message(ui, form, message):
    url, _ = ui
    got = swarm(url, **form)
    assert got["success"] is False
    assert got["message"] == f"Miresga workload: {message}"
    assert state(url)["state"] in ("ready", "stopped")


def test_the_chosen_workload_runs_and_is_recorded_in_locusts_reports(ui):
    url, root = ui
    got = swarm(url, objects="t2", connection="keepalive", requests_per_connection="10", client="lean")
    assert got["success"] is True, got
    names = {f"{o} [t2-ka10, lean]" for o in ("1k", "10k", "1m", "10m")}

    def mix_seen():
        rows = {s["name"]: s for s in state(url)["stats"]}
        return set(rows) >= {"1k [t2-ka10, lean]", "10k [t2-ka10, lean]"} and \
            all(rows[n]["num_failures"] == 0 for n in rows if n in names) and rows
    rows = poll("requests of the t2 mix by the lean user", mix_seen)
    assert set(rows) - {"Aggregated"} <= names

    # changing the workload of a running test is refused; the same one (e.g. more users) is not
    other = swarm(url, objects="1m", connection="close", client="lean")
    assert other["success"] is False
    assert "stop the test before changing the workload (running t2-ka10, lean client)" in other["message"]
    assert swarm(url, objects="t2", connection="keepalive", requests_per_connection="10", client="lean",
                 user_count="3")["success"] is True

    assert http(url + "/stop", {})[0] == 200
    poll("the test to stop", lambda: state(url)["state"] == "stopped")
    status, report = http(url + "/stats/report")
    assert status == 200
    report = report.decode()
    assert "1k [t2-ka10, lean]" in report
    assert ("Miresga workload t2-ka10 (1k 70%, 10k 20%, 1m 8%, 10m 2%; keep-alive, 10 requests/connection; "
            "lean client; sampled verification) against direct") in report

    # a new test with another workload and the other user class, once the worker is ready again
    poll("the worker to be ready again", lambda: [w["state"] for w in state(url)["workers"]] == ["ready"])
    assert swarm(url, objects="1k", connection="close", client="stock")["success"] is True
    poll("requests of 1k-close by the stock user",
         lambda: any(s["name"] == "1k [1k-close, stock]" and s["num_requests"] > 0 for s in state(url)["stats"]))
    tab = json.loads(http(url + "/switch/stats")[1])   # the Switch tab names the running workload
    assert {r["metric"]: r["value"] for r in tab["rows"]}["workload"] == "1k-close"
    assert tab["workload"]["client"] == "stock"
    assert http(url + "/stop", {})[0] == 200
    poll("the test to stop", lambda: state(url)["state"] == "stopped")
    rows = poll("the worker's raw rows", lambda: read_raw_dir(root / "requests"))
    assert {r["object"] for r in rows} >= {"1k", "10k"}
    assert all(r["ok"] == 1 for r in rows)


def test_the_switch_tab_shows_what_the_harness_pushes(ui):
    url, _ = ui
    tab = json.loads(http(url + "/switch/stats")[1])
    assert tab["switch_state"] is True
    sample = {"time": time.time(), "window_s": 3.0, "offload_share": 0.875, "offloaded_bytes_total": 7e6,
              "b2c_bytes_total": 8e6, "inserts_per_s": 120.4, "inserts_total": 361, "deletes_per_s": 118,
              "deletes_total": 350, "insert_rejected_total": 0, "occupancy": 11, "capacity": 65536,
              "occupancy_by_table": {"offload": 11}, "occupancy_peak": 30, "cp_latency_p50_ms": 1.234,
              "cp_latency_p99_ms": 3.5,
              "punts_per_s": 2400, "errors": []}
    body = json.dumps(sample).encode()
    assert http(url + "/switch/push", body=body, headers={"Content-Type": "application/json"})[0] == 403
    assert http(url + "/switch/push", body=body, headers={"Content-Type": "application/json",
                                                          "X-Miresga-Token": "wrong"})[0] == 403
    status, _ = http(url + "/switch/push", body=body, headers={"Content-Type": "application/json",
                                                               "X-Miresga-Token": TOKEN})
    assert status == 200
    tab = json.loads(http(url + "/switch/stats")[1])
    assert tab["samples_received"] >= 1 and tab["sample"]["inserts_total"] == 361
    values = {r["metric"]: r["value"] for r in tab["rows"]}
    assert values["offloaded share of bytes"] == "87.5 %"
    assert values["insertions per second"] == "120 /s"
    assert values["table occupancy"] == "11 / 65,536"
    details = {r["metric"]: r["detail"] for r in tab["rows"]}
    assert details["table occupancy"].endswith("(offload 11); peak 30 since the UI started")
    assert values["control-plane latency"] == "p50 1.23 ms, p99 3.50 ms"
    assert values["front-end punts per second"] == "2,400 /s"
    # the tab itself reads the same rows from Locust's /stats/requests (extended_stats)
    ext = state(url)["extended_stats"]
    assert ext == [{"key": "switch", "data": tab["rows"]}]


def test_rows_without_switch_state_say_why():
    conf = {"system": "haproxy", "description": "software L7", "switch_state": False,
            "message": "HAProxy terminates every connection on the front-end"}
    rows = webui.rows(conf, None)
    assert rows[-1] == {"metric": "switch state", "value": "none",
                        "detail": "HAProxy terminates every connection on the front-end"}


def test_a_stale_sample_is_flagged():
    conf = {"system": "miresga", "switch_state": True}
    rows = webui.rows(conf, {"time": 100.0, "errors": []}, now=200.0)
    assert rows[-1]["metric"] == "stale" and rows[-1]["value"] == "100 s old"


def test_load_ui_file_names_what_is_missing(tmp_path: Path):
    p = tmp_path / "ui.json"
    p.write_text(json.dumps({"catalog": {}, "system": "x"}))
    with pytest.raises(ValueError, match="has no 'token'"):
        webui.load_ui_file(p)
