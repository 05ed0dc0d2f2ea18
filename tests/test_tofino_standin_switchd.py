"""`fab deploy` on a Tofino switch host whose P4Runtime server is bf_switchd (built with P4Runtime),
end to end on the local testbed through the STAND-IN SDE (system/switch/sde_standin,
tests/data/testbed-tofino-switchd.yaml): bf-p4c (the real p4c-barefoot) builds p4src/, deploy packs
the output in PI's format, starts bf_switchd --p4rt-server (the stand-in: the emulated switch's
P4Runtime server, no TLS, as bf_switchd's PI server), the control plane pushes the pipeline without
TLS (--switch-insecure), bfshell adds and enables the ports, and objects come back byte-exact through
the VIP; the harness reads the switch's counters over that server; undeploy leaves nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import pytest
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from harness import deploy, inventory, p4rtstats, testbed
from harness.remote import Remote
from system.switch import bfpipeline
from system.switch.p4rt.device import p4info_difference
from system.switch.tables import load_p4info
from tests.test_tofino import _compiler
from workloads.catalog import object_bytes

pytestmark = [pytest.mark.root, pytest.mark.testbed,
              pytest.mark.skipif(_compiler() is None, reason="p4c-barefoot not found ($P4C_BAREFOOT, PATH, "
                                 "../shared/tools/p4c)")]
INV_PATH = Path(__file__).parent / "data" / "testbed-tofino-switchd.yaml"


@pytest.fixture(scope="module")
def inv():
    inv = inventory.load(INV_PATH)
    testbed.down(inv)
    testbed.up(inv)
    yield inv
    deploy.undeploy(inv, quiet=True)
    testbed.down(inv)


def fetch(inv, path: str) -> bytes:
    cli = testbed.netns(inv.clients[0])
    address, port = deploy.get_system("miresga").targets(inv)[0]
    return subprocess.run(["ip", "netns", "exec", cli, "curl", "-sf", "--max-time", "30",
                           f"http://{address}:{port}{path}"], capture_output=True, timeout=60).stdout


def test_deploy_through_the_standin_bf_switchd(inv):
    deploy.deploy(inv, "miresga")
    with Remote(inv, inv.switch_host) as r:
        facts = json.loads(r.run(f"cat {r.workdir}/run/switch-sde.json"))
        log = r.run(f"cat {r.workdir}/log/switchd.log")
        ports = json.loads(r.run(f"cat {r.workdir}/tofino/bf_switchd/ports.json"))
        ctx = r.run(f"cat {r.workdir}/build/miresga/pipe/context.json")
    assert facts["stand_in"] is True and facts["p4runtime_server"] == "bf_switchd"
    assert facts["device_config"]["format"] == "pi" and facts["pipeline"] == "miresga"
    assert "THIS IS A STAND-IN FOR bf_switchd" in log and "no TLS" in log
    assert "P4 program miresga -> the emulated pipeline miresga" in log
    # bfshell added and enabled every inventory port, with its speed, FEC and autoneg
    assert {p: (v["interface"], v["speed"], v["fec"], v["autoneg"], v["enabled"]) for p, v in ports.items()} == {
        p.port: (p.name, p.speed, p.fec.upper(), {"default": 0, "on": 1, "off": 2}[p.autoneg], True)
        for p in inv.switch.tofino.ports}

    # bf_switchd's PI server has no TLS: the pushed config is readable on a plain channel, and is the
    # compiler's output in PI's packing with the committed P4Info
    address = f"{inv.switch_host.mgmt_address}:{inv.switch.p4runtime_port}"
    req = p4runtime_pb2.GetForwardingPipelineConfigRequest(
        device_id=1, response_type=p4runtime_pb2.GetForwardingPipelineConfigRequest.ALL)
    with grpc.insecure_channel(address) as ch:
        cfg = p4runtime_pb2_grpc.P4RuntimeStub(ch).GetForwardingPipelineConfig(req, timeout=10).config
    name, binary, context = bfpipeline.decode_pi(cfg.p4_device_config)
    assert name == "miresga" and context == ctx.encode() and binary.startswith(b"MIRESGA-SDE-STANDIN tofino.bin")
    assert p4info_difference(cfg.p4info, load_p4info("miresga")) == ""

    for o in inv.catalog:
        assert fetch(inv, o.path) == object_bytes(o.name, o.size), o.name

    # The harness's counter reads work on this server too (no TLS: no identity)
    got = p4rtstats.read(address, None)["tables"]
    assert got["backends"]["entries"] == len(inv.backends) and got["backends"]["hit_bytes"] >= 10 * 1024 * 1024
    assert got["vip"]["entries"] == 1 and got["vip"]["hit_packets"] > 0


def test_bfshell_refuses_a_port_the_platform_lacks(inv, tmp_path):
    with Remote(inv, inv.switch_host) as r:
        conf = f"{r.workdir}/tofino"
        r.run(f"printf 'ucli\\npm\\nport-add 9/0 10G NONE\\nexit\\n' > {conf}/bad.ucli")
        out = r.run(f"export SDE={inv.switch.tofino.sde}; $SDE/run_bfshell.sh -f {conf}/bad.ucli 2>&1; echo rc=$?",
                    check=False)
    assert "no such port '9/0' on the stand-in platform" in out and "rc=1" in out


def test_undeploy_leaves_nothing(inv):
    stopped = deploy.undeploy(inv)
    assert "tdsw:switchd" in stopped and "tdsw:controlplane" in stopped
    with Remote(inv, inv.switch_host) as r:
        assert r.service_pid("switchd") is None and r.service_pid("controlplane") is None
        assert not r.run("ip link show bf_pci0 2>/dev/null", check=False).strip()
        for p in inv.switch.tofino.ports:
            assert not r.run(f"tc filter show dev {p.name} ingress", check=False).strip()
    assert list(Path("/sys/fs/bpf").glob("*tdsw*sde-standin*")) == []
