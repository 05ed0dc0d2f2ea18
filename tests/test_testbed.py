"""The local testbed end to end: up and down, deploy over SSH, byte-exact objects through HAProxy
and the emulated switch, and a short suite that leaves a complete run directory.

Uses its own small testbed (tests/data/testbed.yaml), never the user's `local` one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import deploy, inventory, runner, testbed
from harness.remote import Remote
from tests.miresga_testbed import fresh_json, poll_until
from workloads.catalog import object_bytes

pytestmark = [pytest.mark.root, pytest.mark.testbed]
INV_PATH = Path(__file__).parent / "data" / "testbed.yaml"


def leftovers(inv: inventory.Inventory) -> dict[str, list[str]]:
    ns = [n for n in testbed.namespaces() if n in {testbed.netns(h) for h in inv.hosts}]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    ifs = [name for name in [testbed.mgmt_bridge(inv)] + [f"mm-{h.name}" for h in inv.hosts] if f" {name}:" in links
           or f" {name}@" in links]
    pins = [p.name for p in Path("/sys/fs/bpf").glob(f"{testbed.PREFIX}*")
            if p.name.startswith(tuple(testbed.netns(h) for h in inv.hosts))]
    pid_dir = testbed.state_dir(inv) / "pids"
    sshd = list(pid_dir.glob("*")) if pid_dir.is_dir() else []
    return {k: v for k, v in {"namespaces": ns, "interfaces": ifs, "pins": pins, "pidfiles": sshd}.items() if v}


@pytest.fixture(scope="module")
def inv():
    inv = inventory.load(INV_PATH)
    testbed.down(inv)             # a crashed earlier run must not matter
    testbed.up(inv)
    yield inv
    testbed.down(inv)
    assert leftovers(inv) == {}


def test_up_is_idempotent_and_isolated(inv):
    before = testbed.status(inv)
    testbed.up(inv)               # twice: nothing changes, nothing fails
    after = testbed.status(inv)
    assert before == after
    assert all(h["ssh"] for h in after["hosts"].values())
    cli = testbed.netns(inv.host("tcli1"))
    routes = subprocess.run(["ip", "netns", "exec", cli, "ip", "route"], capture_output=True, text=True).stdout
    assert "default" not in routes                       # no way out of the testbed
    assert "198.18.1.0/24" in routes and "198.19.1.0/24" in routes
    # the switch namespace does not route: only its pipeline moves packets
    sw = testbed.netns(inv.switch_host)
    fwd = subprocess.run(["ip", "netns", "exec", sw, "sysctl", "-n", "net.ipv4.ip_forward"],
                         capture_output=True, text=True).stdout.strip()
    assert fwd == "0"


def test_ssh_reaches_each_host_in_its_own_namespace(inv):
    for h in inv.hosts:
        with Remote(inv, h) as r:
            addrs = r.run("ip -br addr")
            assert str(h.mgmt_address) in addrs
            if h.data_address:
                assert str(h.data_address) in addrs
            assert r.run("ls /sys/fs/bpf >/dev/null && echo bpffs").strip() == "bpffs"


def test_haproxy_serves_byte_exact_objects_through_the_switch(inv):
    sysd = deploy.deploy(inv, "haproxy")
    address, port = sysd.targets(inv)[0]
    assert address == "198.18.1.21"
    # every host's deployment directory and its parents stay traversable by nginx's unprivileged
    # workers (the private credentials directory inside must not make them 0700 on a fresh host)
    for h in inv.hosts:
        for d in (Path(h.workdir), Path(h.workdir).parent):
            assert d.stat().st_mode & 0o005 == 0o005, f"{d} is {oct(d.stat().st_mode)}"
    cli = testbed.netns(inv.host("tcli1"))
    for o in inv.catalog:
        body = subprocess.run(["ip", "netns", "exec", cli, "curl", "-sf", "--max-time", "20",
                               f"http://{address}:{port}{o.path}"], capture_output=True).stdout
        assert body == object_bytes(o.name, o.size), o.name
    # no rule matches -> 404 from the load balancer
    code = subprocess.run(["ip", "netns", "exec", cli, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           f"http://{address}:{port}/nothing-here"], capture_output=True, text=True).stdout
    assert code == "404"
    # every data packet crossed the switch: it was forwarded by the switch's route table
    with Remote(inv, inv.switch_host) as r:
        stats = json.loads(r.run(f"cat {r.workdir}/run/controlplane-stats.json"))
    assert stats["connected"] is True and stats["occupancy"]["route"] == 4
    deploy.undeploy(inv)
    with Remote(inv, inv.host("tfe1")) as r:
        assert r.service_pid("haproxy") is None


def test_short_suite_produces_a_complete_run_directory(inv, tmp_path):
    suite_file = tmp_path / "it.yaml"
    suite_file.write_text(yaml.safe_dump({
        "name": "it", "systems": ["direct", "haproxy"], "verify": "full",
        "workloads": [{"name": "1k-close", "objects": {"1k": 1}, "connection": "close"},
                      {"name": "mix", "objects": {"1k": 3, "1m": 1}, "connection": "keepalive",
                       "requests_per_connection": 5}],
        "load": [{"users": 4, "spawn_rate": 10, "warmup_s": 2, "duration_s": 3},
                 {"mode": "open", "rate": 50, "users": 2, "warmup_s": 2, "duration_s": 3}],
        "wrk_check": True,
    }))
    suite = runner.load_suite(str(suite_file), inv)
    run_dir = runner.run_suite(inv, suite, keep_testbed=True, results=tmp_path / "results")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["emulated"] is True and manifest["switch_target"] == "emulated"
    assert manifest["git"]["commit"] and manifest["ended"]
    assert manifest["cells"] == [c.cell_id for c in suite.cells]
    assert set(manifest["hosts"]) == {h.name for h in inv.hosts}
    for c in suite.cells:
        d = run_dir / "cells" / c.cell_id
        cell = json.loads((d / "cell.json").read_text())
        assert cell["status"] == "ok", cell.get("error")
        assert cell["measure_end"] - cell["measure_start"] == pytest.approx(3)
        assert (d / "locust" / "stats.csv").exists()
        raw = list((d / "requests").glob("*.csv"))
        assert raw and sum(len(p.read_text().splitlines()) - 1 for p in raw) > 10
        cp = json.loads((d / "switch" / "controlplane-stats.json").read_text())
        assert cp["connected"] is True and cp["occupancy"]["route"] == 4
        cpu = json.loads((d / "cpu.json").read_text())
        services = {(p["host"], p["service"]) for p in cpu["processes"]}
        assert ("tcli1", "locust") in services and ("tbe1", "nginx") in services
        if c.system == "haproxy":
            assert ("tfe1", "haproxy") in services
        # whole-machine CPU from /proc/stat: one row on the local testbed (one kernel for every host)
        (machine,) = cpu["machine"]
        assert machine["host"] == "(machine)" and machine["cpus"] >= 1 and machine["busy_s"] > 0
        assert machine["window_s"] > 0 and machine["softirq_s"] >= 0
        header = raw[0].read_text().split("\n", 1)[0].split(",")
        assert header[-3:] == ["queue_us", "connect_us", "ttfb_us"]
        assert cell["load"]["mode"] == c.load.mode
        # the wrk cross-check follows each system's first closed-loop cell of each workload
        assert (d / "wrk.json").exists() == c.wrk_check
        if c.wrk_check:
            w = json.loads((d / "wrk.json").read_text())
            assert w["error"] is None and w["requests"] > 0, w.get("output")
    from analysis import load
    df = load.cells(run_dir)
    assert len(df) == 8 and (df["failed"] == 0).all() and (df["rps"] > 0).all()
    opened = df[df["mode"] == "open"]
    assert len(opened) == 4 and (opened["offered_rps"] == 50).all() and opened["connect_p50_us"].notna().all()
    assert df["machine_s_per_req"].notna().all()
    report = (run_dir / "report.md").read_text()
    assert "emulated testbed" in report
    for wl in ("1k-close", "mix"):
        section = report.split(f"### {wl}")[1].split("###")[0]
        assert "| direct |" in section and "| haproxy |" in section
    assert "## Latency against load (open loop)" in report and "## Cross-check with wrk" in report
    assert list((run_dir / "figures").glob("*.png"))


def _rps(inv, host: str) -> str:
    h = inv.host(host)
    return subprocess.run(["ip", "netns", "exec", testbed.netns(h), "cat",
                           f"/sys/class/net/{h.data_interface}/queues/rx-0/rps_cpus"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_pinned_suite_puts_the_load_balancer_alone_on_its_cpu(inv, tmp_path):
    from harness import cpuplan
    cpus = cpuplan.online_cpus()
    if len(cpus) < 2:
        pytest.skip(f"pin_lb needs 2 online CPUs; this machine has {len(cpus)}")
    lb, others = cpus[-1], cpus[:-1]
    mine, rps_before = os.sched_getaffinity(0), {h: _rps(inv, h) for h in ("tfe1", "tbe1")}
    suite_file = tmp_path / "pinned.yaml"
    suite_file.write_text(yaml.safe_dump({
        "name": "pinned", "systems": ["direct", "haproxy"], "pin_lb": True,
        "workloads": [{"name": "1k-close", "objects": {"1k": 1}, "connection": "close"}],
        "load": [{"mode": "open", "rate": 50, "users": 2, "warmup_s": 2, "duration_s": 3}]}))
    run_dir = runner.run_suite(inv, runner.load_suite(str(suite_file), inv), keep_testbed=True,
                               results=tmp_path / "results")
    plans = {}
    for d in sorted((run_dir / "cells").iterdir()):
        cell = json.loads((d / "cell.json").read_text())
        assert cell["status"] == "ok", cell.get("error")
        plans[cell["system"]] = plan = cell["cpu_plan"]
        assert (plan["lb_cpus"], plan["other_cpus"]) == ([lb], others)
        (machine,) = json.loads((d / "cpu.json").read_text())["machine"]
        assert sorted(machine["per_cpu_busy_s"], key=int) == [str(c) for c in cpus]
        # every testbed veth steered: the front-end host's to the LB CPU, every other one elsewhere
        lb_mask, other_mask = cpuplan.mask([lb]), cpuplan.mask(others)
        fe = testbed.netns(inv.host("tfe1"))
        steered = plan["rps_cpus"]
        assert steered[f"{fe}/{inv.host('tfe1').data_interface}"] == (lb_mask if cell["system"] == "haproxy"
                                                                      else other_mask)
        assert steered[f"{testbed.netns(inv.host('tbe1'))}/{inv.host('tbe1').data_interface}"] == other_mask
    h = plans["haproxy"]
    # HAProxy's processes (not the host's sshd) had the LB CPU and only it
    assert "haproxy" in h["lb_processes"] and "sshd" not in h["lb_processes"]
    assert h["lb_tasks"] >= 1 and h["lb_tasks_allowed_cpus"] == [lb]
    assert plans["direct"]["lb_tasks"] == 0 and plans["direct"]["lb_processes"] == []
    # the analysis has the LB CPU's busy time per request for every cell (the budget model's "pinned")
    from analysis import load
    df = load.cells(run_dir)
    assert df["pinned_lb_s_per_req"].notna().all() and (df["pinned_lb_s"] >= 0).all()
    assert (run_dir / "report.md").is_file()
    # afterwards every queue and this process are as before
    assert os.sched_getaffinity(0) == mine
    assert {h: _rps(inv, h) for h in ("tfe1", "tbe1")} == rps_before


def _frontend_stats(inv) -> dict:
    with Remote(inv, inv.host("tfe1")) as r:
        return json.loads(r.run(f"cat {r.workdir}/run/frontend-stats.json"))["engine"]


def _frontend_stats_after(inv, until=lambda st: True) -> dict:
    """The counters as the front-end wrote them after this call, the first such that `until` holds."""
    return fresh_json(inv, "tfe1", "run/frontend-stats.json", until=lambda d: until(d["engine"]))["engine"]


def _agent_flows(inv, host: str) -> dict:
    from system.agent.tables import FlowTable
    from system.bpf.syscall import Map
    pin = Path(f"/sys/fs/bpf/{testbed.netns(inv.host(host))}-agent")
    flows = next(pin.rglob("flows"))
    return FlowTable(Map.pinned(flows)).entries()


def _offload_occupancy(inv) -> int:
    with Remote(inv, inv.switch_host) as r:
        return json.loads(r.run(f"cat {r.workdir}/run/controlplane-stats.json"))["occupancy"].get("offload", 0)


def test_miresga_serves_byte_exact_objects_through_the_vip(inv):
    """The whole data path: the switch's cookie SYN-ACK, the front-end's crafted SYN (request inside),
    the agents' sequence translation, offloaded large responses; then nothing left behind."""
    sysd = deploy.deploy(inv, "miresga")
    address, port = sysd.targets(inv)[0]
    assert address == str(inv.vip)
    cli = testbed.netns(inv.host("tcli1"))

    def get(*paths: str) -> bytes:
        # several URLs in one curl: one keep-alive connection, re-evaluated per request
        return subprocess.run(["ip", "netns", "exec", cli, "curl", "-sf", "--max-time", "30",
                               *(f"http://{address}:{port}{p}" for p in paths)], capture_output=True).stdout

    before = _frontend_stats(inv)
    for o in inv.catalog:
        assert get(o.path) == object_bytes(o.name, o.size), o.name
    both = [inv.catalog[0], inv.catalog[-1], inv.catalog[0]]
    assert get(*(o.path for o in both)) == b"".join(object_bytes(o.name, o.size) for o in both)
    code = subprocess.run(["ip", "netns", "exec", cli, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           f"http://{address}:{port}/nothing-here"], capture_output=True, text=True).stdout
    assert code == "404"
    after = _frontend_stats_after(inv)      # a stats file written after the fetches
    assert after["offload_add"] > before.get("offload_add", 0)           # 1m and 10m were offloaded
    assert after["fastopen_accepted"] > before.get("fastopen_accepted", 0)

    # A spoofed first data segment with a wrong cookie opens nothing.
    syns = after["backend_syn_sent"]
    spoof = ("from scapy.all import Ether, IP, TCP, Raw, sendp; "
             f"sendp(Ether(dst='{testbed.switch_ports(inv)['tcli1'].mac}')/IP(src='198.18.1.11', dst='{address}')/"
             f"TCP(sport=40000, dport={port}, flags='PA', seq=1000, ack=123456)/"
             "Raw(b'GET /obj/1k HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'), iface='eth0', verbose=False)")
    subprocess.run(["ip", "netns", "exec", cli, sys.executable, "-c", spoof], check=True)
    bad = after.get("bad_cookie", 0)
    after = _frontend_stats_after(inv, until=lambda st: st.get("bad_cookie", 0) > bad)    # the segment was seen
    assert after["backend_syn_sent"] == syns

    # After the connections closed: no offload entry in the switch, no agent entry on a back-end.
    deadline = time.monotonic() + 60      # a hang guard: the entries go at close
    while time.monotonic() < deadline and (_offload_occupancy(inv) or _agent_flows(inv, "tbe1")
                                            or _agent_flows(inv, "tbe2")):
        time.sleep(0.5)
    assert _offload_occupancy(inv) == 0
    assert _agent_flows(inv, "tbe1") == {} and _agent_flows(inv, "tbe2") == {}
    deploy.undeploy(inv)
    assert not list(Path("/sys/fs/bpf").glob(f"{testbed.netns(inv.host('tbe1'))}-agent*/**/flows"))


# The attacker on the load generator (issue 18): plain TCP, TLS without a client certificate, and
# P4Runtime with either, at the switch's management address. Prints what each got (JSON).
_MGMT_PROBE = r'''
import json, socket, ssl, struct, sys
import grpc
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc
host, port, p4port, ca = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def frame(m):
    b = json.dumps(m).encode()
    return struct.pack("!I", len(b)) + b
def drain(s):
    got = b""
    s.settimeout(20)
    try:
        while c := s.recv(65536):
            got += c
    except OSError:
        pass
    return got.decode("latin-1")
route = {"table": "route", "key": {"dst_addr": ["198.18.1.11", 32]}, "action": "forward",
         "params": {"port": 1, "smac": "02:00:00:00:00:01", "dmac": "02:00:00:00:00:02"}}
out = {}
for name, msg in (("hello", {"type": "hello"}), ("cookie_secrets", {"type": "cookie_secrets"}),
                  ("add_route", {"type": "add", **route})):
    with socket.create_connection((host, port), timeout=20) as s:
        s.sendall(frame({"v": 1, "id": 1, **msg}))
        out[name] = drain(s)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(cafile=ca)           # the CA is public; the client has no certificate of it
try:
    with socket.create_connection((host, port), timeout=20) as raw, ctx.wrap_socket(raw, server_hostname=host) as t:
        t.sendall(frame({"v": 1, "id": 1, "type": "cookie_secrets"}))
        out["tls_without_certificate"] = drain(t)
except OSError as e:
    out["tls_without_certificate"] = ""
def p4_read(channel):
    entity = p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry())
    req = p4runtime_pb2.ReadRequest(device_id=1, entities=[entity])
    stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
    try:
        return ["entities: %d" % len(r.entities) for r in stub.Read(req, timeout=10)]
    except grpc.RpcError as e:
        return e.code().name
with grpc.insecure_channel(f"{host}:{p4port}") as ch:
    out["p4runtime_insecure"] = p4_read(ch)
with grpc.secure_channel(f"{host}:{p4port}", grpc.ssl_channel_credentials(open(ca, "rb").read())) as ch:
    out["p4runtime_tls_without_certificate"] = p4_read(ch)
print(json.dumps(out))
'''


def test_miresga_management_plane_lets_no_one_in(inv, capsys, tmp_path):
    """Deployed with credentials (fab deploy makes them): Miresga serves byte-exact; from the load
    generator nothing of the control plane or the P4Runtime server answers without a certificate; the
    harness's monitor identity reads stats only; keys are 0600 in 0700 directories; the cookie secret
    is in no stats file or log of any host, nor in deploy's output."""
    from harness import credentials as hc
    from system.controlplane.protocol import Client

    deploy.deploy(inv, "miresga")
    deploy_output = capsys.readouterr().out
    cli = testbed.netns(inv.host("tcli1"))
    o = inv.catalog[0]
    body = subprocess.run(["ip", "netns", "exec", cli, "curl", "-sf", "--max-time", "30",
                           f"http://{inv.vip}:{inv.vip_port}{o.path}"], capture_output=True).stdout
    assert body == object_bytes(o.name, o.size)

    sw = inv.switch_host
    mgmt = str(sw.mgmt_address)
    monitor = hc.monitor(inv)
    assert monitor is not None and not str(monitor.directory).startswith(str(Path(__file__).parents[1]))
    mon = Client((mgmt, deploy.CONTROLPLANE_PORT), credentials=monitor, timeout=30)
    try:
        before = mon.stats()["stats"]
        assert mon.server_hello["role"] == "monitor" and mon.server_hello["tables"] == []
        assert mon.cookie_secrets()["code"] == "PERMISSION_DENIED"
    finally:
        mon.close()
    assert before["auth"]["sessions"].get("frontend", 0) >= 1       # the front-end's secrets fetcher (at least)

    probe = subprocess.run(["ip", "netns", "exec", cli, sys.executable, "-c", _MGMT_PROBE, mgmt,
                            str(deploy.CONTROLPLANE_PORT), str(inv.switch.p4runtime_port), str(monitor.ca)],
                           capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=300)
    assert probe.returncode == 0, probe.stderr
    got = json.loads(probe.stdout)
    assert got == {"hello": "", "cookie_secrets": "", "add_route": "", "tls_without_certificate": "",
                   "p4runtime_insecure": "UNAVAILABLE", "p4runtime_tls_without_certificate": "UNAVAILABLE"}, got

    with Remote(inv, sw) as r:
        creds_dir = f"{r.workdir}/{hc.REMOTE_DIR}"
        modes = r.run(f"stat -c '%a %n' {creds_dir} {creds_dir}/* {creds_dir}/*/*").split("\n")
        for line in filter(None, modes):
            mode, name = line.split(" ", 1)
            assert mode == ("600" if name.endswith((".key", ".crt")) else "700"), line
        ask = ("from system.controlplane.protocol import Client; from system.credentials import Credentials; "
               f"c = Client(('{mgmt}', {deploy.CONTROLPLANE_PORT}), "
               f"credentials=Credentials.load('{creds_dir}/operator')); "
               "s = c.cookie_secrets(); print(s['current'], s['previous'] or s['current']); c.close()")
        secrets = [int(v) for v in r.run(f"cd {r.workdir} && {r.python()} -c \"{ask}\"").split()]
    # The probe's four refused handshakes, from live stats (the stats file is rewritten every second:
    # read right away it can be a second old); polled because the server counts a failed handshake
    # when it notices it.
    after = poll_until(lambda: _cp_stats_live(mgmt, monitor),
                       lambda st: st["auth"]["handshakes_failed"] - before["auth"]["handshakes_failed"] >= 4,
                       "the probe's 4 refused handshakes not counted", period=0.2)
    assert "route" not in "".join(after["auth"]["refused"])

    # what a run collects from the switch for a cell (cellstats: the monitor identity samples the stats)
    from harness.cellstats import CellCollector
    col = CellCollector(inv, deploy.get_system("miresga"), bpf_stats=False)
    col.begin()
    col.snapshot("start")
    deadline = time.monotonic() + 60
    while len(col.samples) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    col.snapshot("end")
    col.finish()
    col.close()
    col.write(tmp_path / "cell")
    assert col.errors == [] and len(col.samples) >= 2
    assert col.samples[-1]["stats"]["auth"]["sessions"]["monitor"] >= 1

    needles = [f"{s}" for s in secrets] + [f"{s:x}" for s in secrets] + [f"{s:#x}" for s in secrets]
    collected = "".join(p.read_text() for p in (tmp_path / "cell").rglob("*") if p.is_file())
    assert collected and not any(re.search(rf"\b{n}\b", collected) for n in needles)
    for h in inv.hosts:
        with Remote(inv, h) as r:
            found = r.run(f"grep -rIlw {' '.join(f'-e {n}' for n in needles)} {r.workdir}/run {r.workdir}/log "
                          "2>/dev/null", check=False)
            assert found.strip() == "", f"{h.name}: the cookie secret is in {found}"
    assert not any(n in deploy_output for n in needles[:2])
    assert not any(n in json.dumps(after) for n in needles[:2])
    deploy.undeploy(inv)


def _cp_stats_live(mgmt: str, monitor) -> dict:
    from system.controlplane.protocol import Client
    mon = Client((mgmt, deploy.CONTROLPLANE_PORT), credentials=monitor, timeout=30)
    try:
        return mon.stats()["stats"]
    finally:
        mon.close()
