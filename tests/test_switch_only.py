"""The switch-only baseline end to end on a testbed of its own (tests/data/testbed-so.yaml): curl and
Locust through the VIP, the slow path on the switch CPU installing conn_in/conn_out, relaying when
the tables are full, entries deleted after close and on idle, and a clean undeploy."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import deploy, inventory, locust_runner, runner, testbed
from harness.remote import Remote
from system.switchonly.counters import CounterReader
from tests.miresga_testbed import fresh_json
from workloads.catalog import object_bytes

pytestmark = [pytest.mark.root, pytest.mark.testbed]
DATA = Path(__file__).parent / "data"
INV_PATH = DATA / "testbed-so.yaml"
TINY_PROFILE = DATA / "so-tiny-profile.yaml"
IDLE_S = 3.0


@pytest.fixture(scope="module")
def inv():
    inv = inventory.load(INV_PATH)
    testbed.down(inv)             # a crashed earlier run must not matter
    testbed.up(inv)
    saved = dict(deploy.SLOWPATH_OPTIONS)
    deploy.SLOWPATH_OPTIONS.update(idle_timeout=IDLE_S, linger=1.0, counter_interval=0.5)
    yield inv
    deploy.SLOWPATH_OPTIONS.clear()
    deploy.SLOWPATH_OPTIONS.update(saved)
    testbed.down(inv)
    assert testbed.namespaces() == [] or not set(testbed.namespaces()) & {testbed.netns(h) for h in inv.hosts}


def cli(inv) -> str:
    return testbed.netns(inv.host("scli1"))


def curl(inv, *paths: str) -> bytes:
    """Several URLs in one curl: one keep-alive connection."""
    url = f"http://{inv.vip}:{inv.vip_port}"
    return subprocess.run(["ip", "netns", "exec", cli(inv), "curl", "-sf", "--max-time", "30",
                           *(url + p for p in paths)], capture_output=True, timeout=60).stdout


def slowpath_stats(inv) -> dict:
    """The slow path's stats as it wrote them after this call."""
    return fresh_json(inv, inv.switch_host.name, "run/slowpath-stats.json")


def switch_entries(inv) -> dict:
    """conn_in/conn_out entries as the switch itself has them (P4Runtime Read over TLS), keyed by client
    endpoint."""
    from harness.credentials import monitor
    reader = CounterReader(f"{inv.switch_host.mgmt_address}:{inv.switch.p4runtime_port}", lambda _: None,
                           credentials=monitor(inv))      # the harness's identity: P4Runtime reads only
    try:
        return reader.read()
    finally:
        reader.close()


def occupancy(inv) -> dict:
    with Remote(inv, inv.switch_host) as r:
        return json.loads(r.run(f"cat {r.workdir}/run/controlplane-stats.json"))["occupancy"]


def wait_until(pred, timeout: float, step: float = 0.5) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def tables_empty(inv) -> bool:
    st = slowpath_stats(inv)
    occ = occupancy(inv)
    return (switch_entries(inv) == {} and st["entries"] == {"conn_in": 0, "conn_out": 0}
            and occ.get("conn_in", 0) == 0 and occ.get("conn_out", 0) == 0)


HOLD = """
import socket, sys, time
s = socket.create_connection(("{vip}", {port}), timeout=10)
s.sendall(b"GET {path} HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n")
got = b""
while b"\\r\\n\\r\\n" not in got or len(got) < {size}:
    got += s.recv(65536)
print(s.getsockname()[1], flush=True)
s.settimeout({hold})                    # idle: ends early when the connection is reset or closed
try:
    print("after-idle", s.recv(1) == b"", flush=True)
except OSError as e:
    print("after-idle", type(e).__name__, flush=True)
"""

# A connection that stays in use (a request every 0.2 s, so no idle timeout takes it) until the test
# closes the holder's stdin; bounded to 300 s in any case.
BUSY = """
import select, socket, sys, time
s = socket.create_connection(("{vip}", {port}), timeout=30)
req = b"GET {path} HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n"
def fetch():
    s.sendall(req)
    got = b""
    while b"\\r\\n\\r\\n" not in got or len(got.partition(b"\\r\\n\\r\\n")[2]) < {size}:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("closed by the peer")
        got += chunk
fetch()
print(s.getsockname()[1], flush=True)
end = time.monotonic() + 300
while time.monotonic() < end and not select.select([sys.stdin], [], [], 0.2)[0]:
    fetch()
"""


def hold_connection(inv, hold: float) -> subprocess.Popen:
    """A keep-alive connection that fetches the 1k object, then stays idle for up to `hold` seconds
    (less if it is reset or closed meanwhile)."""
    o = inv.catalog[0]
    code = HOLD.format(vip=inv.vip, port=inv.vip_port, path=o.path, size=o.size, hold=hold)
    return subprocess.Popen(["ip", "netns", "exec", cli(inv), sys.executable, "-c", code],
                            stdout=subprocess.PIPE, text=True)


def busy_connection(inv) -> subprocess.Popen:
    """A keep-alive connection that keeps fetching the 1k object until its stdin is closed."""
    o = inv.catalog[0]
    code = BUSY.format(vip=inv.vip, port=inv.vip_port, path=o.path, size=o.size)
    return subprocess.Popen(["ip", "netns", "exec", cli(inv), sys.executable, "-c", code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_curl_through_the_vip(inv):
    sysd = deploy.deploy(inv, "switch-only")
    assert sysd.targets(inv) == [(str(inv.vip), inv.vip_port)]
    with Remote(inv, inv.switch_host) as r:
        assert "cpu0" in r.run("ip -br link")
    before = slowpath_stats(inv)["engine"]
    for o in inv.catalog:                                    # one request per connection
        assert curl(inv, o.path) == object_bytes(o.name, o.size), o.name
    mid = slowpath_stats(inv)["engine"]
    assert mid["conn_installed"] - before.get("conn_installed", 0) == len(inv.catalog)
    # Keep-alive: three requests on one connection; only the first reaches the slow path.
    three = [inv.catalog[0], inv.catalog[-1], inv.catalog[0]]
    assert curl(inv, *(o.path for o in three)) == b"".join(object_bytes(o.name, o.size) for o in three)
    st = slowpath_stats(inv)
    after = st["engine"]
    assert after["install_requested"] - mid["install_requested"] == 1
    assert after["requests"] - mid["requests"] == 1
    assert after.get("synack_seq_not_translated", 0) == 0
    assert st["counters"]["installs_ok"] >= len(inv.catalog) + 1
    assert st["install_latency_ms"]["n"] >= 1 and st["install_latency_ms"]["p50"] > 0
    print(f"install latency: {st['install_latency_ms']}")
    # No rule -> 404 answered by the slow path, nothing installed.
    code = subprocess.run(["ip", "netns", "exec", cli(inv), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           f"http://{inv.vip}:{inv.vip_port}/nothing-here"], capture_output=True, text=True).stdout
    assert code == "404"
    # All closed: after the linger both tables are empty (slow path, control plane and the switch agree).
    assert wait_until(lambda: tables_empty(inv), 60), (switch_entries(inv), slowpath_stats(inv)["entries"])


def test_idle_connection_is_reset_and_its_entries_deleted(inv):
    before = slowpath_stats(inv)["engine"].get("timeout_established", 0)
    p = hold_connection(inv, hold=IDLE_S + 120)              # the slow path, not the client, must end it
    try:
        port = int(p.stdout.readline())
        key_present = lambda: any(k[1] == port for k in switch_entries(inv))   # noqa: E731
        assert key_present()                                 # installed while the connection is in use
        assert wait_until(lambda: not key_present(), IDLE_S + 60)
        st = slowpath_stats(inv)
        assert st["engine"]["timeout_established"] > before
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert wait_until(lambda: tables_empty(inv), 60)


def test_full_tables_relay_connections_in_the_slow_path(inv):
    tiny = dataclasses.replace(inv, switch=dataclasses.replace(inv.switch, profile=TINY_PROFILE))
    deploy.deploy(tiny, "switch-only")
    holders = [busy_connection(inv) for _ in range(2)]      # the two connections that fit, kept in use
    try:
        for h in holders:
            assert h.stdout.readline().strip().isdigit()
        assert len(switch_entries(inv)) == 2
        for o in inv.catalog:                                # relayed by the slow path, byte-exact
            assert curl(inv, o.path) == object_bytes(o.name, o.size), o.name
        three = [inv.catalog[-1], inv.catalog[0], inv.catalog[1]]
        assert curl(inv, *(o.path for o in three)) == b"".join(object_bytes(o.name, o.size) for o in three)
        st = slowpath_stats(inv)
        assert st["counters"]["relayed_table_full"] >= len(inv.catalog) + 1
        assert st["counters"].get("relayed_install_failed", 0) == 0
        assert st["engine"]["conn_relayed"] >= len(inv.catalog) + 1
    finally:
        for h in holders:
            h.stdin.close()                                  # the holder's signal to stop
            h.wait(timeout=60)
    assert wait_until(lambda: tables_empty(inv), 60)


def test_short_locust_run_without_failures(inv, tmp_path):
    """Locust through the VIP (the harness's cells: workers, master, raw requests, verification of
    every body), then, after the load, the linger and the idle timeout: both tables empty."""
    suite_file = tmp_path / "so.yaml"
    suite_file.write_text(yaml.safe_dump({
        "name": "so", "systems": ["switch-only"], "verify": "full",
        "workloads": [{"name": "1k-close", "objects": {"1k": 1}, "connection": "close"},
                      {"name": "mix", "objects": {"1k": 3, "64k": 1}, "connection": "keepalive",
                       "requests_per_connection": 5}],
        "load": {"users": 4, "spawn_rate": 10, "warmup_s": 1, "duration_s": 3},
    }))
    suite = runner.load_suite(str(suite_file), inv)
    sysd = deploy.deploy(inv, "switch-only")
    for c in suite.cells:
        d = tmp_path / "cells" / c.cell_id
        runner.run_cell(inv, c, sysd, d)
        cell = json.loads((d / "cell.json").read_text())
        assert cell["status"] == "ok", cell.get("error")
        row = locust_runner.parse_stats_csv(d / "locust" / "stats.csv")
        assert row is not None and row.requests > 10 and row.failures == 0, row
        sp = json.loads((d / "switch" / "slowpath-stats.json").read_text())
        assert sp["counters"]["installs_ok"] > 0 and sp["install_latency_ms"]["p99"] is not None
        print(f"{c.cell_id}: {row.requests} requests, install latency {sp['install_latency_ms']}")
    st = slowpath_stats(inv)
    assert st["counters"].get("relayed_table_full", 0) == 0 and st["counters"].get("relayed_install_failed", 0) == 0
    # After the load (closed connections, linger, idle timeout): both tables empty.
    assert wait_until(lambda: tables_empty(inv), 2 * IDLE_S + 60), switch_entries(inv)


def test_undeploy_stops_the_slow_path_and_removes_the_cpu_port(inv):
    stopped = deploy.undeploy(inv)
    assert "ssw:slowpath" in stopped and "ssw:swcpu" in stopped
    with Remote(inv, inv.switch_host) as r:
        assert r.service_pid("slowpath") is None
        assert "cpu0" not in r.run("ip -br link") and "swcpu" not in r.run("ip -br link")
    assert deploy.undeploy(inv) == []                        # idempotent
