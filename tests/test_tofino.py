"""The Tofino deployment's pieces that need no testbed: inventory keys and their errors, the dry run's
SDE commands, the chassis config and bfshell script, the device config formats (checked against
protobuf's own parser), and the stand-in SDE's compiler and device-config checks."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from harness import deploy, inventory, tofino
from system.switch import bfpipeline
from system.switch.sde_standin import stratum

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "harness" / "inventories" / "tofino-cluster.example.yaml"
STANDIN_INV = ROOT / "tests" / "data" / "testbed-tofino.yaml"
STANDIN_BIN = ROOT / "system" / "switch" / "sde_standin" / "install" / "bin"


def _example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def _error(data: dict) -> str:
    with pytest.raises(inventory.InventoryError) as e:
        inventory.parse(data)
    return str(e.value)


def test_example_inventory_has_the_tofino_keys():
    inv = inventory.load(EXAMPLE)
    t = inv.switch.tofino
    assert (t.sde, t.sde_install, t.sde_version, t.server, t.chip, t.arch) == (
        "/opt/bf-sde-9.13.4", "/opt/bf-sde-9.13.4/install", "9.13.4", "stratum_bf", "tofino", "tna")
    p = t.ports[0]
    assert (p.port, p.dev_port, p.speed, p.fec, p.autoneg) == ("1/0", 132, "100G", "rs", "off")
    assert not inv.emulated
    assert inventory.load(STANDIN_INV).emulated        # the stand-in on a local testbed: emulated results


@pytest.mark.parametrize("edit, field, words", [
    (lambda s: s.pop("sde"), "switch.sde", "is required"),
    (lambda s: s.update(sde_version=9.13), "switch.sde_version", "must be str"),
    (lambda s: s.update(sde_version="latest"), "switch.sde_version", "not an SDE version"),
    (lambda s: s.update(p4runtime_server="bmv2"), "switch.p4runtime_server", "stratum_bf, bf_switchd"),
    (lambda s: s.update(chip="tofino3"), "switch.chip", "tofino, tofino2"),
    (lambda s: s.update(ports=[]), "switch.ports", "at least one port"),
    (lambda s: s["ports"][1].update(port="2-0"), "switch.ports[1].port", "front-panel port"),
    (lambda s: s["ports"][1].update(dev_port=600), "switch.ports[1].dev_port", "0..511"),
    (lambda s: s["ports"][1].update(dev_port=132), "switch.ports[1].dev_port", "also port 1/0's"),
    (lambda s: s["ports"][2].update(speed="400G"), "switch.ports[2].speed", "not a tofino port speed"),
    (lambda s: s["ports"][2].update(speed="10G"), "switch.ports[2].fec", "rs is not available at 10G"),
    (lambda s: s["ports"][3].update(fec="reed"), "switch.ports[3].fec", "none, fc, rs"),
    (lambda s: s["ports"][3].update(autoneg="maybe"), "switch.ports[3].autoneg", "default, on, off"),
    (lambda s: s["ports"][3].update(lanes=4), "switch.ports[3].lanes", "unknown field"),
    (lambda s: s.update(cpu_port=140), "switch.cpu_port", "front-panel port 2/0"),
    (lambda s: s.update(server_args="-bf_sim"), "switch.server_args", "must be list"),
    (lambda s: s.update(sdee="/opt"), "switch.sdee", "unknown field"),
])
def test_bad_tofino_keys_name_the_field(edit, field, words):
    data = _example()
    edit(data["switch"])
    msg = _error(data)
    assert f": {field}:" in msg and words in msg, msg


def test_hosts_must_be_on_listed_ports():
    data = _example()
    data["hosts"][2]["switch_port"] = "164"
    msg = _error(data)
    assert "hosts[2].switch_port: device port 164 is not in switch.ports" in msg, msg
    local = yaml.safe_load(STANDIN_INV.read_text())
    local["switch"]["ports"].pop()
    msg = _error(local)
    assert "hosts[4] (tfbe2, switch port 4 of the local testbed)" in msg, msg


def test_tofino_keys_only_for_target_tofino():
    data = yaml.safe_load((ROOT / "tests" / "data" / "testbed.yaml").read_text())
    data["switch"]["sde"] = "/opt/sde"
    assert "switch.sde: is a key of target tofino, not emulated" in _error(data)


def test_dry_run_prints_the_sde_commands():
    inv = inventory.load(EXAMPLE)
    text = deploy.plan(inv, "miresga")
    assert "not executed" not in text
    for want in ("/opt/bf-sde-9.13.4/install/bin/bf-p4c --target tofino --arch tna --p4runtime-force-std-externs "
                 "-o /opt/miresga/build/miresga --p4runtime-files /opt/miresga/build/miresga/p4info.txtpb "
                 "--bf-rt-schema /opt/miresga/build/miresga/bfrt.json p4src/miresga.p4",
                 "-m system.switch.bfpipeline pack --format stratum --name miresga",
                 "setsid /usr/bin/stratum_bf -bf_sde_install=/opt/bf-sde-9.13.4/install "
                 "-bf_switchd_cfg=/usr/share/stratum/tofino_skip_p4.conf",
                 "-chassis_config_file=/opt/miresga/tofino/chassis_config.pb.txt -external_stratum_urls=0.0.0.0:9559",
                 "--device-config /opt/miresga/build/miresga/device_config.bin",
                 "id: 156", "fec_mode: FEC_MODE_ON", "autoneg: TRI_STATE_FALSE", "speed_bps: 100000000000"):
        assert want.replace("$SDE_INSTALL", "/opt/bf-sde-9.13.4/install") in text.replace(
            "$SDE_INSTALL", "/opt/bf-sde-9.13.4/install"), want
    so = deploy.plan(inv, "switch-only")
    assert "--dev bf_pci0" in so and "p4src/switch_only.p4" in so


def test_bf_switchd_flow_and_its_port_script():
    data = _example()
    data["switch"].update(p4runtime_server="bf_switchd", server_args=[])
    data["switch"].pop("server_binary")
    data["switch"].pop("switchd_conf")
    data["switch"]["ports"][0].update(speed="40G", fec="fc", autoneg="on")
    inv = inventory.parse(data)
    text = deploy.plan(inv, "direct")
    assert ("setsid /opt/bf-sde-9.13.4/install/bin/bf_switchd --install-dir=/opt/bf-sde-9.13.4/install "
            "--conf-file=/opt/bf-sde-9.13.4/install/share/p4/targets/tofino/skip_p4.conf --skip-p4 "
            "--p4rt-server=0.0.0.0:9559 --background") in text
    assert "--format pi" in text and "$SDE/run_bfshell.sh -f /opt/miresga/tofino/ports.ucli" in text
    script = tofino.ucli_script(inv.switch.tofino).splitlines()
    assert script[:5] == ["ucli", "pm", "port-add 1/0 40G FC", "an-set 1/0 1", "port-enb 1/0"]
    assert "port-add 2/0 100G RS" in script and "an-set 2/0 2" in script
    show = " PORT |MAC |D_P|P/PT|SPEED  |FEC |AN|KR|RDY|ADM|OPR\n 1/0  |1/0 |132|2/ 4|40G    | FC |Ena|Au|YES|ENB|UP\n"
    assert tofino.missing_ports(show, inv.switch.tofino.ports) == ["2/0", "3/0", "4/0"]


def test_chassis_config_reads_back_as_the_inventory_ports():
    inv = inventory.load(STANDIN_INV)
    text = tofino.chassis_config(inv)
    assert stratum.chassis_ports(text) == {1: "sw-tfcli1", 2: "sw-tffe1", 3: "sw-tfbe1", 4: "sw-tfbe2"}
    parsed = stratum.parse_textproto(text)
    sp = parsed["singleton_ports"][2]
    assert (sp["id"], sp["speed_bps"], sp["channel"]) == ([3], [25 * 10**9], [1])
    assert sp["config_params"][0] == {"admin_state": ["ADMIN_STATE_ENABLED"], "autoneg": ["TRI_STATE_TRUE"],
                                      "fec_mode": ["FEC_MODE_ON"]}
    with pytest.raises(ValueError, match="channelized"):
        stratum.chassis_ports(text.replace("channel: 1", "channel: 3", 1))


def _bf_proto_class():
    """BfPipelineConfig from Stratum's bf.proto, built at run time: protobuf's own parser."""
    f = descriptor_pb2.FileDescriptorProto(name="miresga_test_bf.proto", package="stratum.hal.barefoot",
                                           syntax="proto3")
    m = f.message_type.add(name="BfPipelineConfig")
    t = descriptor_pb2.FieldDescriptorProto
    prof = m.nested_type.add(name="Profile")
    for name, num, typ, label in (("profile_name", 1, t.TYPE_STRING, t.LABEL_OPTIONAL),
                                  ("context", 2, t.TYPE_BYTES, t.LABEL_OPTIONAL),
                                  ("binary", 3, t.TYPE_BYTES, t.LABEL_OPTIONAL),
                                  ("pipe_scope", 4, t.TYPE_UINT32, t.LABEL_REPEATED)):
        prof.field.add(name=name, number=num, type=typ, label=label)
    m.field.add(name="p4_name", number=1, type=t.TYPE_STRING, label=t.LABEL_OPTIONAL)
    m.field.add(name="bfruntime_info", number=2, type=t.TYPE_BYTES, label=t.LABEL_OPTIONAL)
    m.field.add(name="profiles", number=3, type=t.TYPE_MESSAGE, label=t.LABEL_REPEATED,
                type_name=".stratum.hal.barefoot.BfPipelineConfig.Profile")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    desc = pool.FindMessageTypeByName("stratum.hal.barefoot.BfPipelineConfig")
    return message_factory.MessageFactory(pool).GetPrototype(desc)   # protobuf < 3.21 (p4runtime-shell's pin)


def test_bf_pipeline_config_is_what_protobuf_parses():
    cls = _bf_proto_class()
    big = bytes(range(256)) * 600
    cfg = bfpipeline.BfPipelineConfig("miresga", b'{"tables": []}', (
        bfpipeline.Profile("pipe", b'{"ctx": 1}', big, (0, 1, 2, 3)), bfpipeline.Profile("pipe1", b"{}", b"x", ())))
    msg = cls.FromString(bfpipeline.encode(cfg))
    assert msg.p4_name == "miresga" and msg.bfruntime_info == b'{"tables": []}'
    assert [(p.profile_name, p.context, p.binary, list(p.pipe_scope)) for p in msg.profiles] == [
        ("pipe", b'{"ctx": 1}', big, [0, 1, 2, 3]), ("pipe1", b"{}", b"x", [])]
    assert bfpipeline.decode(msg.SerializeToString()) == cfg      # and protobuf's bytes decode here
    assert bfpipeline.decode_pi(bfpipeline.encode_pi("miresga", b"BIN", b"{}")) == ("miresga", b"BIN", b"{}")
    with pytest.raises(bfpipeline.PipelineConfigError):
        bfpipeline.decode_pi(bfpipeline.encode_pi("miresga", b"BIN", b"{}") + b"x")


def test_packaging_refuses_an_output_without_tofino_bin(tmp_path):
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "context.json").write_text("{}")
    (tmp_path / "bfrt.json").write_text("{}")
    with pytest.raises(bfpipeline.PipelineConfigError, match=r"no tofino\.bin"):
        bfpipeline.pack("stratum", tmp_path, "forwarding")
    with pytest.raises(bfpipeline.PipelineConfigError, match="not a bf-p4c output"):
        bfpipeline.pack("stratum", tmp_path / "pipe", "forwarding")


def _compiler() -> str | None:
    if os.environ.get("P4C_BAREFOOT"):
        return os.environ["P4C_BAREFOOT"]
    if shutil.which("p4c-barefoot"):
        return shutil.which("p4c-barefoot")
    for up in ROOT.parents:
        if (up / "shared" / "tools" / "p4c" / "p4c-barefoot").is_file():
            return str(up / "shared" / "tools" / "p4c" / "p4c-barefoot")
    return None


@pytest.mark.skipif(_compiler() is None, reason="p4c-barefoot not found ($P4C_BAREFOOT, PATH, ../shared/tools/p4c)")
def test_standin_compiler_output_packages_and_is_checked(tmp_path):
    out = tmp_path / "out"
    subprocess.run([str(STANDIN_BIN / "bf-p4c"), "--target", "tofino", "--arch", "tna", "--p4runtime-force-std-externs",
                    "-o", str(out), "--p4runtime-files", str(out / "p4info.txtpb"), "--bf-rt-schema",
                    str(out / "bfrt.json"), "p4src/forwarding.p4"], cwd=ROOT, check=True, capture_output=True)
    assert (out / "pipe" / "tofino.bin").read_bytes().startswith(stratum.BIN_MAGIC)
    assert '"program-name": "forwarding"' in (out / "forwarding.conf").read_text()
    data = bfpipeline.pack("stratum", out, "forwarding")
    assert stratum.program_of(data) == "forwarding"
    cfg = bfpipeline.decode(data)
    p = cfg.profiles[0]
    assert p.context == (out / "pipe" / "context.json").read_bytes()
    assert stratum.program_of(bfpipeline.pack("pi", out, "forwarding")) == "forwarding"
    # a real Tofino binary, or a binary of another context, is refused by the stand-in
    real = dataclasses.replace(cfg, profiles=(dataclasses.replace(p, binary=b"\x00TOFINO"),))
    with pytest.raises(ValueError, match="not the stand-in's"):
        stratum.program_of(bfpipeline.encode(real))
    other = dataclasses.replace(cfg, profiles=(dataclasses.replace(p, context=b'{"other": 1}'),))
    with pytest.raises(ValueError, match=r"not built with this context\.json"):
        stratum.program_of(bfpipeline.encode(other))
    # the committed P4Info is the compiler's: the control plane's is the Tofino's
    from google.protobuf import text_format
    from p4.config.v1 import p4info_pb2

    from system.switch.p4rt.device import p4info_difference
    got = text_format.Parse((out / "p4info.txtpb").read_text(), p4info_pb2.P4Info())
    want = text_format.Parse((ROOT / "p4src" / "forwarding.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    assert p4info_difference(got, want) == ""


@pytest.mark.skipif(_compiler() is None, reason="p4c-barefoot not found ($P4C_BAREFOOT, PATH, ../shared/tools/p4c)")
def test_standin_device_verifies_the_pushed_config(tmp_path):
    """The stand-in stratum_bf's check of a SetForwardingPipelineConfig (no loading: no BPF here)."""
    from p4.v1 import p4runtime_pb2

    from system.switch.p4rt.errors import P4RTError
    from system.switch.profiles import load_profile
    from system.switch.tables import load_p4info

    out = tmp_path / "out"
    subprocess.run([str(STANDIN_BIN / "bf-p4c"), "--target", "tofino", "--arch", "tna", "--p4runtime-force-std-externs",
                    "-o", str(out), "--p4runtime-files", str(out / "p4info.txtpb"), "--bf-rt-schema",
                    str(out / "bfrt.json"), "p4src/forwarding.p4"], cwd=ROOT, check=True, capture_output=True)
    device = stratum.make_device({1: "sw-a", 2: "sw-b"}, tmp_path / "pins", load_profile(None), device_id=1)
    cfg = p4runtime_pb2.ForwardingPipelineConfig(p4info=load_p4info("forwarding"),
                                                 p4_device_config=bfpipeline.pack("stratum", out, "forwarding"))
    prepared = device.verify(cfg)
    assert prepared.pipeline == "forwarding" and prepared.config is cfg     # Get returns what was pushed
    wrong = p4runtime_pb2.ForwardingPipelineConfig(p4info=load_p4info("miresga"),
                                                   p4_device_config=cfg.p4_device_config)
    with pytest.raises(P4RTError, match="p4info does not match"):
        device.verify(wrong)
    junk = p4runtime_pb2.ForwardingPipelineConfig(p4info=load_p4info("forwarding"), p4_device_config=b"MRSGPKG1")
    with pytest.raises(P4RTError, match="stand-in SDE"):
        device.verify(junk)


def test_provenance_labels_the_standin():
    assert inventory.load(STANDIN_INV).switch.tofino is not None
    from harness.tofino_config import provenance
    assert provenance(inventory.load(STANDIN_INV))["stand_in"] is True
    assert provenance(inventory.load(EXAMPLE)) == {"sde": "/opt/bf-sde-9.13.4", "sde_version": "9.13.4",
                                                   "p4runtime_server": "stratum_bf", "chip": "tofino",
                                                   "stand_in": False}
    assert provenance(inventory.load(ROOT / "tests" / "data" / "testbed.yaml")) is None


def test_standin_bfshell_adds_the_platform_ports_and_refuses_others(tmp_path):
    """The stand-in bfshell (run_bfshell.sh) on deploy's own script: every inventory port added, with
    its speed, FEC and autoneg, and `show` rows that deploy's ports check accepts; a port the stand-in
    platform lacks, or bf_switchd not started, is an error."""
    from system.switch.sde_standin import bfshell
    inv = inventory.load(Path(__file__).parent / "data" / "testbed-tofino-switchd.yaml")
    t = inv.switch.tofino
    conf = tmp_path / "tofino"
    conf.mkdir()
    (conf / "chassis_config.pb.txt").write_text(tofino.chassis_config(inv))
    script = tofino.ucli_script(t)
    status, out = bfshell.run(script, conf)
    assert status == 1 and "bf_switchd has not started here" in out
    (conf / "bf_switchd").mkdir()
    status, out = bfshell.run(script, conf)
    assert status == 0 and tofino.missing_ports(out, t.ports) == []
    added = yaml.safe_load((conf / "bf_switchd" / "ports.json").read_text())
    assert {p: (v["interface"], v["speed"], v["fec"], v["enabled"]) for p, v in added.items()} == {
        p.port: (p.name, p.speed, p.fec.upper(), True) for p in t.ports}
    status, out = bfshell.run("ucli\npm\nport-add 9/0 10G NONE\n", conf)
    assert status == 1 and "no such port '9/0'" in out
    assert tofino.missing_ports(bfshell.run("ucli\npm\nshow\n", conf)[1], t.ports) == [p.port for p in t.ports]
