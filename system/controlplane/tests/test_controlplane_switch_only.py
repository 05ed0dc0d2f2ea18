"""The control plane with pipeline `switch_only` (docs/switch-only-datapath.md): static tables (the CPU
port as slow_path's default action, routes, vip, backends), the SYN cookie secret (set, rotated, no
SACK in the switch's SYN-ACK), and conn_in/conn_out adds and deletes through the framed protocol as
the slow path sends them, up to RESOURCE_EXHAUSTED at the profile's capacity."""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from harness.inventory import InventoryError, resolve_path
from harness.inventory import load as load_inventory
from harness.inventory import parse as parse_inventory
from system.controlplane import protocol
from system.controlplane.controller import Controller, ControllerConfig
from system.controlplane.server import FrontendServer
from system.controlplane.static import parse_port_map, static_entries
from system.controlplane.tests.test_controlplane_miresga import PORT_MAP, by_table, ip, mac, wait_for
from system.switch import cookie
from system.switch.p4rt.codec import P4InfoIndex
from system.switch.p4rt.testing import SwitchProcess, free_port
from system.switch.tables import SWITCH_ONLY, PipelineTables, load_p4info

VIP = "198.18.0.100"
CONN_IN_KEY = {"client_addr": "198.18.0.11", "client_port": 40000, "vip_addr": VIP, "vip_port": 80}
CONN_IN_PARAMS = {"backend_addr": "198.18.0.31", "backend_port": 80, "port": 3, "smac": "02:00:00:00:01:03",
                  "dmac": "02:00:00:00:00:31", "ack_delta": 0xFFFF_FFF0}
CONN_OUT_KEY = {"backend_addr": "198.18.0.31", "backend_port": 80, "client_addr": "198.18.0.11",
                "client_port": 40000}
CONN_OUT_PARAMS = {"vip_addr": VIP, "vip_port": 80, "seq_delta": 0xFFFF_FFF0}


def _inventory(**switch) -> object:
    data = copy.deepcopy(yaml.safe_load(resolve_path("local").read_text()))
    data["switch"].update(switch)
    return parse_inventory(data, resolve_path("local"))


# -- static entries and the inventory's cpu_port (no switch) ----------------------------------------

def test_switch_only_static_entries_of_the_local_inventory() -> None:
    entries = static_entries("switch_only", load_inventory("local"), parse_port_map(PORT_MAP))
    assert entries[0] == ("slow_path", {}, "set_slow_path", {"port": 64})   # before the VIP exists
    t = by_table(entries)
    assert Counter({k: len(v) for k, v in t.items()}) == Counter(
        {"slow_path": 1, "route": 5, "vip": 1, "backends": 2, "protected_hosts": 2, "trusted_ports": 3})
    assert t["vip"] == [({"dst_addr": VIP, "dst_port": 80}, "mark_vip", {})]
    assert t["backends"] == [({"src_addr": "198.18.0.31", "src_port": 80}, "mark_backend", {}),
                             ({"src_addr": "198.18.0.32", "src_port": 80}, "mark_backend", {})]
    assert ({"dst_addr": ["198.18.0.11", 32]}, "forward",
            {"port": 1, "smac": "02:00:00:00:01:01", "dmac": "02:00:00:00:00:11"}) in t["route"]
    # the guard: the back-ends' addresses from the back-ends' ports and the CPU port (the slow path's)
    assert t["protected_hosts"] == [({"dst_addr": "198.18.0.31"}, "mark_protected", {}),
                                    ({"dst_addr": "198.18.0.32"}, "mark_protected", {})]
    assert t["trusted_ports"] == [({"port": p}, "mark_trusted", {}) for p in (3, 4, 64)]
    ctl = _controller("switch_only", static=entries)          # every entry encodes against the P4Info
    assert len(ctl.static_updates) == len(entries)
    default = ctl.static_updates[0]
    assert default.type == p4runtime_pb2.Update.MODIFY and default.entity.table_entry.is_default_action
    assert all(u.type == p4runtime_pb2.Update.INSERT for u in ctl.static_updates[1:])
    assert ctl.occupancy() == {"route": 5, "vip": 1, "backends": 2, "protected_hosts": 2,
                               "trusted_ports": 3}                           # a default is no entry


def test_cpu_port_comes_from_the_inventory_and_is_validated() -> None:
    assert load_inventory("local").switch.cpu_port == 64
    sde = {"sde": "/opt/bf-sde", "sde_version": "9.13.4",       # a Tofino target needs its SDE keys
           "ports": [{"port": f"{i}/0", "dev_port": i, "speed": "100G"} for i in (1, 2, 3, 4, 5)]}
    inv = _inventory(target="tofino", cpu_port=192, **sde)
    assert static_entries("switch_only", inv, parse_port_map(PORT_MAP))[0][3] == {"port": 192}
    assert _inventory(cpu_port=3).switch.cpu_port == 3
    for bad, msg in ((512, "not a P4 port"), (-1, "not a P4 port"), ("64", "must be int"), (True, "integer"),
                     (65, "emulated switch's ports are 1..64"), (0, "emulated switch's ports are 1..64")):
        with pytest.raises(InventoryError, match=rf"switch\.cpu_port.*{msg}"):
            _inventory(cpu_port=bad)


def test_switch_only_needs_every_backend_in_the_port_map() -> None:
    pm = {k: v for k, v in PORT_MAP.items() if k != "be2"}
    with pytest.raises(ValueError, match=r"be2 .* has no entry in the port map"):
        static_entries("switch_only", load_inventory("local"), parse_port_map(pm))


def _controller(pipeline: str, switch: str = "127.0.0.1:1", static: list | None = None, **kw) -> Controller:
    cfg = ControllerConfig(switch=switch, p4info=load_p4info(pipeline), device_config=b"unused",
                           static=static or [], **kw)
    return Controller(cfg)


def test_switch_only_controller_owns_a_cookie_secret() -> None:
    ctl = _controller("switch_only", cookie_rotation_s=60)
    assert ctl.secrets is not None and 0 < ctl.secrets.current < 1 << 64 and ctl.secrets.slot == 1
    u = ctl._cookie_update(ctl.secrets.current, ctl.secrets.slot)
    assert u.entity.table_entry.is_default_action
    assert ctl.codec.index.table(u.entity.table_entry.table_id).name == "SwitchIngress.switch_only.syn_cookie"


# -- with the real switch (P4Runtime server subprocess, emulated target, a tiny profile) -------------

@pytest.fixture(scope="module")
def so_pipeline() -> tuple[object, bytes]:
    from system.switch.package import build_package

    return load_p4info("switch_only"), build_package("switch_only")


@pytest.fixture
def tiny_switch(switch_ns, tmp_path: Path, creds) -> Iterator[SwitchProcess]:
    """The P4Runtime server with a profile allowing 2 conn_in and 1 conn_out entries."""
    profile = tmp_path / "mrsa-tiny.yaml"
    profile.write_text("extends: unlimited\nname: mrsa-tiny\ntables: {conn_in: 2, conn_out: 1}\n")
    sp = SwitchProcess(switch_ns, free_port(), profile=str(profile), log=tmp_path / "p4rt.log",
                       identities=creds).start()
    try:
        yield sp
    finally:
        sp.stop()
        assert not sp.pin_dir.exists(), "pins left behind"


class SwitchOnlyCP:
    def __init__(self, switch_proc, pipeline, rotation_s: float = 60.0) -> None:
        p4info, package = pipeline
        self.static = static_entries("switch_only", load_inventory("local"), parse_port_map(PORT_MAP))
        self.controller = Controller(ControllerConfig(
            switch=switch_proc.address, p4info=p4info, device_config=package, static=self.static, window_s=0.002,
            reconnect_s=0.2, request_timeout_s=30, cookie_rotation_s=rotation_s,
            credentials=switch_proc.creds("controlplane")))
        self.server = FrontendServer(("127.0.0.1", 0), self.controller, "switch_only",
                                     credentials=switch_proc.creds("controlplane"))
        self.switch_proc = switch_proc
        self.controller.start()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        assert self.controller.connected.wait(30), "control plane did not connect"

    def tables(self) -> PipelineTables:
        return PipelineTables(SWITCH_ONLY, self.switch_proc.pin_dir)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.controller.stop()


def _p4rt_conn_in_counters(address: str, creds) -> list[tuple[int, int]]:
    """(packets, bytes) of every conn_in entry, read over P4Runtime as the slow path's idle timeout does
    (TLS, the slow path's client certificate)."""
    import grpc

    with grpc.secure_channel(address, creds.grpc_channel_credentials()) as ch:
        stub = p4runtime_pb2_grpc.P4RuntimeStub(ch)
        idx = P4InfoIndex(load_p4info("switch_only"))
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = idx.table_by_name("conn_in").id
        ent.table_entry.counter_data.SetInParent()
        reps = stub.Read(p4runtime_pb2.ReadRequest(device_id=1, entities=[ent]), timeout=10)
        return [(e.table_entry.counter_data.packet_count, e.table_entry.counter_data.byte_count)
                for rep in reps for e in rep.entities]


@pytest.mark.root
def test_static_tables_and_conn_entries_up_to_resource_exhausted(tiny_switch, so_pipeline) -> None:
    c = SwitchOnlyCP(tiny_switch, so_pipeline)
    cli = protocol.Client(c.server.address, name="slowpath", credentials=c.switch_proc.creds("slowpath"))
    try:
        assert cli.server_hello["pipeline"] == "switch_only"
        assert cli.server_hello["tables"] == ["conn_in", "conn_out"]     # what the slow path may write
        assert cli.server_hello["role"] == "slowpath"
        with c.tables() as t:
            counts = {name: t.count(name) for name in ("route", "vip", "backends", "conn_in", "conn_out",
                                                       "protected_hosts", "trusted_ports")}
            assert counts == {"route": 5, "vip": 1, "backends": 2, "conn_in": 0, "conn_out": 0,
                              "protected_hosts": 2, "trusted_ports": 3}
            assert t.get_default("slow_path").params == {"port": 64}
            assert t.get_default("syn_cookie").params == {"key": c.controller.secrets.current, "slot": 1}
            assert t.get("backends", {"src_addr": ip("198.18.0.32"), "src_port": 80}).action == "mark_backend"
        # the slow path's two adds (names and value formats of the contract)
        assert cli.add("conn_in", CONN_IN_KEY, "to_backend", CONN_IN_PARAMS)["code"] == "OK"
        assert cli.add("conn_out", CONN_OUT_KEY, "to_client", CONN_OUT_PARAMS)["code"] == "OK"
        with c.tables() as t:
            key = {"client_addr": ip("198.18.0.11"), "client_port": 40000, "vip_addr": ip(VIP), "vip_port": 80}
            assert t.get("conn_in", key).params == {
                "backend_addr": ip("198.18.0.31"), "backend_port": 80, "port": 3, "smac": mac("02:00:00:00:01:03"),
                "dmac": mac("02:00:00:00:00:31"), "ack_delta": 0xFFFF_FFF0}
            e = t.get("conn_out", {"backend_addr": ip("198.18.0.31"), "backend_port": 80,
                                   "client_addr": ip("198.18.0.11"), "client_port": 40000})
            assert e.action == "to_client" and e.params == {"vip_addr": ip(VIP), "vip_port": 80,
                                                            "seq_delta": 0xFFFF_FFF0}
        assert _p4rt_conn_in_counters(tiny_switch.address, tiny_switch.creds("slowpath")) == [(0, 0)]
        # the profile's capacity: conn_in 2, conn_out 1
        second_in = dict(CONN_IN_KEY, client_port=40001)
        second_out = dict(CONN_OUT_KEY, client_port=40001)
        assert cli.add("conn_in", second_in, "to_backend", CONN_IN_PARAMS)["code"] == "OK"
        rep = cli.add("conn_out", second_out, "to_client", CONN_OUT_PARAMS)
        assert rep["code"] == "RESOURCE_EXHAUSTED" and "conn_out" in rep["message"], rep
        rep = cli.add("conn_in", dict(CONN_IN_KEY, client_port=40002), "to_backend", CONN_IN_PARAMS)
        assert rep["code"] == "RESOURCE_EXHAUSTED", rep
        # what the slow path does then: delete the one that went in, relay the connection itself
        assert cli.delete("conn_in", second_in)["code"] == "OK"
        assert cli.add("conn_in", CONN_IN_KEY, "to_backend", CONN_IN_PARAMS)["code"] == "ALREADY_EXISTS"
        assert cli.add("conn_in", second_in, "to_backend", CONN_IN_PARAMS)["code"] == "OK"   # room again
        assert cli.delete("conn_out", second_out)["code"] == "NOT_FOUND"
        bad = cli.add("conn_out", second_out, "to_client", {"vip_addr": VIP, "vip_port": 80})
        assert bad["code"] == "INVALID_ARGUMENT" and "seq_delta" in bad["message"]
        # both connections closed: entries deleted, tables empty
        for table, key in (("conn_in", CONN_IN_KEY), ("conn_out", CONN_OUT_KEY), ("conn_in", second_in)):
            assert cli.delete(table, key)["code"] == "OK"
        with c.tables() as t:
            assert t.count("conn_in") == 0 and t.count("conn_out") == 0
        st = c.controller.snapshot()        # the slow path may not read the stats (rights.py)
        assert st["acks"]["RESOURCE_EXHAUSTED"] == 2 and st["occupancy"] == {"route": 5, "vip": 1, "backends": 2,
                                                                               "protected_hosts": 2, "trusted_ports": 3}
    finally:
        cli.close()
        c.close()


@pytest.mark.root
def test_secret_rotates_and_the_syn_ack_offers_no_sack(switch_proc, switch_ns, so_pipeline) -> None:
    """Control plane -> syn_cookie default entry -> eBPF SYN-ACK (no SACK) -> the secrets a slow path
    fetches validate it; after a rotation the old cookie still validates (previous)."""
    from scapy.layers.inet import TCP

    from system.controlplane.tests.test_controlplane_miresga import _syn_exchange

    c = SwitchOnlyCP(switch_proc, so_pipeline)
    cli = protocol.Client(c.server.address, name="slowpath", credentials=c.switch_proc.creds("slowpath"))
    try:
        first, prev, slot = protocol.parse_cookie_secrets(cli.cookie_secrets())
        assert (first, prev, slot) == (c.controller.secrets.current, None, 1)
        syn, synack = _syn_exchange(switch_ns, 1, 42001, [("MSS", 1460), ("NOP", None), ("NOP", None),  # Linux
                                                           ("SAckOK", b""), ("NOP", None), ("WScale", 9)])
        s = synack[TCP].seq
        assert synack[TCP].ack == (syn[TCP].seq + 1) & 0xFFFFFFFF
        assert bytes(synack[TCP])[20:32] == cookie.synack_options(cookie.SynOptions(mss=1460, wscale=9))
        bits = cookie.check(s, switch_ns.host_ip(1), 42001, VIP, 80, [(first, 1)])
        assert bits is not None and (bits.mss, bits.sack_ok, bits.wscale) == (1460, False, 9)
        c.controller.secrets.due = 0.0
        assert wait_for(lambda: c.controller.secrets.rotations == 1 and c.controller.secrets.installs == 2)
        cur, prev, slot = protocol.parse_cookie_secrets(cli.cookie_secrets())
        assert prev == first and cur != first and slot == 2
        with c.tables() as t:
            assert t.get_default("syn_cookie").params == {"key": cur, "slot": 2}
            assert t.get_default("slow_path").params == {"port": 64}
        assert cookie.check(s, switch_ns.host_ip(1), 42001, VIP, 80, [(cur, 2), (prev, 1)]) == bits
        _, synack2 = _syn_exchange(switch_ns, 1, 42002, [("MSS", 536)])
        assert cookie.check(synack2[TCP].seq, switch_ns.host_ip(1), 42002, VIP, 80, [(cur, 2)]) is not None
        assert cookie.check(synack2[TCP].seq, switch_ns.host_ip(1), 42002, VIP, 80, [(prev, 1)]) is None
        assert cookie.check(synack2[TCP].seq, switch_ns.host_ip(1), 42002, VIP, 80, [(prev, 2)]) is None
    finally:
        cli.close()
        c.close()
