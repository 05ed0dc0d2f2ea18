"""`fab deploy` on a Tofino switch host, end to end on the local testbed through the STAND-IN SDE
(system/switch/sde_standin, tests/data/testbed-tofino.yaml): the SDE's bf-p4c (the real p4c-barefoot)
builds p4src/, deploy packages a BfPipelineConfig, starts stratum_bf (the stand-in: the emulated
switch's P4Runtime server on the chassis config's ports), the control plane pushes the pipeline over
P4Runtime, and objects come back byte-exact through the VIP; a failing step names host and step;
undeploy leaves nothing."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import grpc
import pytest
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from harness import deploy, inventory, testbed
from harness.remote import Remote
from system.switch import bfpipeline
from system.switch.p4rt.device import p4info_difference
from system.switch.tables import load_p4info
from tests.test_tofino import _compiler
from workloads.catalog import object_bytes

pytestmark = [pytest.mark.root, pytest.mark.testbed,
              pytest.mark.skipif(_compiler() is None, reason="p4c-barefoot not found ($P4C_BAREFOOT, PATH, "
                                 "../shared/tools/p4c)")]
INV_PATH = Path(__file__).parent / "data" / "testbed-tofino.yaml"


@pytest.fixture(scope="module")
def inv():
    inv = inventory.load(INV_PATH)
    testbed.down(inv)
    testbed.up(inv)
    yield inv
    deploy.undeploy(inv, quiet=True)
    testbed.down(inv)


def fetch(inv, path: str, system: str = "miresga") -> bytes:
    """An object from a client host through the system's target (the VIP; direct: the first back-end)."""
    cli = testbed.netns(inv.clients[0])
    address, port = deploy.get_system(system).targets(inv)[0]
    return subprocess.run(["ip", "netns", "exec", cli, "curl", "-sf", "--max-time", "30",
                           f"http://{address}:{port}{path}"], capture_output=True, timeout=60).stdout


def pushed_config(inv) -> p4runtime_pb2.ForwardingPipelineConfig:
    """The switch's pipeline config as its P4Runtime server returns it, read over TLS with the harness's
    monitor identity (the server, like Stratum given its TLS flags, has no insecure port)."""
    from harness import credentials
    address = f"{inv.switch_host.mgmt_address}:{inv.switch.p4runtime_port}"
    req = p4runtime_pb2.GetForwardingPipelineConfigRequest(
        device_id=1, response_type=p4runtime_pb2.GetForwardingPipelineConfigRequest.ALL)
    with grpc.insecure_channel(address) as ch, pytest.raises(grpc.RpcError) as refused:
        p4runtime_pb2_grpc.P4RuntimeStub(ch).GetForwardingPipelineConfig(req, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE     # no TLS, no channel
    monitor = credentials.monitor(inv)
    assert monitor is not None, "fab deploy issued no monitor identity"
    with grpc.secure_channel(address, monitor.grpc_channel_credentials()) as ch:
        rep = p4runtime_pb2_grpc.P4RuntimeStub(ch).GetForwardingPipelineConfig(req, timeout=10)
    return rep.config


def switch_facts(inv) -> dict:
    with Remote(inv, inv.switch_host) as r:
        return json.loads(r.run(f"cat {r.workdir}/run/switch-sde.json"))


def leftovers(inv) -> list[str]:
    """Anything of the switch deployment still there: services, the CPU netdev, pins, tc programs."""
    out = []
    with Remote(inv, inv.switch_host) as r:
        for svc in ("switchd", "controlplane", "slowpath", "p4rt"):
            if r.service_pid(svc) is not None:
                out.append(f"service {svc}")
        if r.run("ip link show bf_pci0 2>/dev/null", check=False).strip():
            out.append("netdev bf_pci0")
        for p in inv.switch.tofino.ports:
            if r.run(f"tc filter show dev {p.name} ingress", check=False).strip():
                out.append(f"tc filter on {p.name}")
    out += [f"pin {p}" for p in Path("/sys/fs/bpf").glob("*sde-standin*")]
    return out


@pytest.mark.parametrize("system, pipeline", [("miresga", "miresga"), ("switch-only", "switch_only")])
def test_deploy_through_the_standin_sde(inv, system, pipeline):
    deploy.deploy(inv, system)
    facts = switch_facts(inv)
    assert facts["stand_in"] is True and facts["p4runtime_server"] == "stratum_bf"
    assert "STAND-IN" in facts["version"] and facts["pipeline"] == pipeline
    assert facts["device_config"]["format"] == "stratum" and facts["device_config"]["p4_name"] == pipeline
    # What the switch holds is what the compiler built, pushed by the control plane over P4Runtime.
    cfg = pushed_config(inv)
    bf = bfpipeline.decode(cfg.p4_device_config)
    assert bf.p4_name == pipeline and [p.name for p in bf.profiles] == ["pipe"]
    with Remote(inv, inv.switch_host) as r:
        ctx = r.run(f"cat {r.workdir}/build/{pipeline}/pipe/context.json")
        log = r.run(f"cat {r.workdir}/log/switchd.log")
        compile_log = r.run(f"cat {r.workdir}/log/bf-p4c-{pipeline}.log")
    assert bf.profiles[0].context == ctx.encode()
    assert bf.profiles[0].binary.startswith(b"MIRESGA-SDE-STANDIN tofino.bin")
    assert p4info_difference(cfg.p4info, load_p4info(pipeline)) == ""     # the committed = the compiler's
    assert "p4c-barefoot" in compile_log and "0 errors" in compile_log
    assert "THIS IS A STAND-IN FOR stratum_bf" in log
    assert "sw-tfcli1" in log and f"P4 program {pipeline} -> the emulated pipeline {pipeline}" in log
    for o in inv.catalog:
        assert fetch(inv, o.path, system) == object_bytes(o.name, o.size), o.name


def test_failing_step_names_host_and_step(inv):
    bad = dataclasses.replace(inv, switch=dataclasses.replace(
        inv.switch, tofino=dataclasses.replace(inv.switch.tofino, sde_version="9.9.9")))
    with pytest.raises(deploy.DeployError) as e:
        deploy.deploy(bad, "direct")
    assert "tfsw: step 'sde' failed: switch.sde_version is 9.9.9 but" in str(e.value)
    nosde = dataclasses.replace(inv, switch=dataclasses.replace(
        inv.switch, tofino=dataclasses.replace(inv.switch.tofino, sde_install="/nonexistent/install")))
    with pytest.raises(deploy.DeployError, match="tfsw: step 'sde' failed"):
        deploy.deploy(nosde, "direct")


def test_undeploy_leaves_nothing(inv):
    deploy.deploy(inv, "direct")
    assert fetch(inv, "/obj/64k", "direct") == object_bytes("64k", 65536)     # across the switch
    with Remote(inv, inv.switch_host) as r:
        assert r.service_pid("switchd") is not None
        assert r.run("ip link show bf_pci0", check=False).strip()
    stopped = deploy.undeploy(inv)
    assert "tfsw:switchd" in stopped and "tfsw:controlplane" in stopped
    assert leftovers(inv) == []


def slow_fetch(inv, path: str, rate: str) -> subprocess.Popen:
    """A rate-limited fetch through the VIP from the first client: its connection (and so its offload
    entry) lasts seconds however fast the machine."""
    cli = testbed.netns(inv.clients[0])
    address, port = deploy.get_system("miresga").targets(inv)[0]
    return subprocess.Popen(["ip", "netns", "exec", cli, "curl", "-sf", "--max-time", "180", "--limit-rate", rate,
                             "-o", "/dev/null", "-w", "%{size_download}", f"http://{address}:{port}{path}"],
                            stdout=subprocess.PIPE)


def poll(what: str, fn, deadline_s: float = 60.0):
    import time
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"never saw {what} within {deadline_s} s")


def test_switch_metrics_over_p4runtime(inv, tmp_path):
    """The switch side of a cell on a `tofino` target: no pinned maps, no p4rt-stats.json; the harness
    reads the table counters over P4Runtime with its monitor identity (harness/p4rtstats.py) and the
    control plane's stats (occupancy, insertions, the counters of the entries it deleted), and the
    report's figures come out of them: offloaded share, insertions/s, occupancy, capacity."""
    from analysis import switchstats
    from harness import credentials, p4rtstats
    from harness.cellstats import CellCollector

    sysd = deploy.deploy(inv, "miresga")
    size = object_bytes("10m", 10 * 1024 * 1024)
    p4rt = f"{inv.switch_host.mgmt_address}:{inv.switch.p4runtime_port}"
    monitor = credentials.monitor(inv)
    with pytest.raises(grpc.RpcError) as refused:                 # no identity: no counters
        p4rtstats.read(p4rt, None)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    before = p4rtstats.read(p4rt, monitor)
    assert before["source"] == "p4runtime" and before["tables"]["offload"]["entries"] == 0
    assert before["tables"]["backends"]["entries"] == len(inv.backends)
    assert before["tables"]["offload"]["capacity"] > 0

    collector = CellCollector(inv, sysd, bpf_stats=False)
    collector.begin()
    try:
        collector.snapshot("start")
        slow = slow_fetch(inv, "/obj/10m", "300K")   # ~33 s; the back-end is done (and the entry
        # deleted) once the rest fits in the client's receive buffer (a few MB): still >= 10 s

        def sampled() -> bool:
            if slow.poll() is not None:
                raise AssertionError(f"the slow fetch ended (exit {slow.returncode}, {slow.stdout.read()!r} bytes) "
                                     f"before a sample showed its entry; samples: {len(collector.samples)}, "
                                     f"errors: {collector.errors}")
            return any((s["stats"].get("occupancy") or {}).get("offload", 0) >= 1 for s in collector.samples)
        poll("the slow connection's offload entry in the control plane's samples", sampled)
        live = p4rtstats.read(p4rt, monitor)["tables"]["offload"]
        assert live["entries"] >= 1
        for _ in range(3):
            assert fetch(inv, "/obj/10m") == size
        assert slow.wait(timeout=200) == 0 and slow.stdout.read() == str(len(size)).encode()
        # Every connection's entry deleted, each counter read just before its delete.
        poll("the offload entries deleted and their counters retired",
             lambda: collector._cp_stats().get("retired_counters", {}).get("offload", {}).get("entries", 0) >= 4
             and p4rtstats.read(p4rt, monitor)["tables"]["offload"]["entries"] == 0)
        collector.snapshot("end")
    finally:
        collector.finish()
        collector.close()
    cell = tmp_path / "cell"
    collector.write(cell)
    window = json.loads((cell / "switch" / "window.json").read_text())
    assert window["errors"] == []
    start, end = window["start"], window["end"]
    assert end["counters"]["source"] == "p4runtime" and end["counters"]["retired"]["offload"]["bytes"] > 0
    assert "live" not in end["counters"] and end["counters"]["deleted_while_read"] >= 0     # no per-entry data kept
    assert end["controlplane"]["retired_seq"] >= 4 and "retired_entries" not in end["controlplane"]
    assert end["p4rt"]["tables"]["offload"]["capacity"] == before["tables"]["offload"]["capacity"]

    m = switchstats.cell_switch_metrics(cell, None)
    offloaded, total = switchstats.offload_bytes("miresga", start["counters"], end["counters"])
    # Four 10 MB responses went back-end -> client; the switch sent most of them straight to the client.
    assert total >= 4 * len(size)
    assert offloaded >= 0.5 * 4 * len(size) and 0.5 < m["offload_share"] <= 1.0
    assert m["inserts_per_s"] > 0 and m["deletes_per_s"] > 0
    assert m["occupancy_peak"] >= 1
    assert m["table_capacity"] == before["tables"]["offload"]["capacity"]
