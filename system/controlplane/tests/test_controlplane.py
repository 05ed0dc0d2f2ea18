"""The switch control plane against a real P4Runtime server subprocess and the emulated target."""

from __future__ import annotations

import ipaddress
import json
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.inventory import load as load_inventory
from system.controlplane import protocol
from system.controlplane.controller import Controller, ControllerConfig
from system.controlplane.server import FrontendServer, StatsFile
from system.controlplane.static import PortMapError, parse_port_map, static_entries
from system.switch.tables import PipelineTables, pipeline_spec

pytestmark = pytest.mark.root

PORT_MAP = {
    "client1": {"port": 1, "mac": "02:00:00:00:00:11", "switch_mac": "02:00:00:00:01:01"},
    "fe1": {"port": 2, "mac": "02:00:00:00:00:21", "switch_mac": "02:00:00:00:01:02"},
    "be1": {"port": 3, "mac": "02:00:00:00:00:31", "switch_mac": "02:00:00:00:01:03"},
    "be2": {"port": 4, "mac": "02:00:00:00:00:32", "switch_mac": "02:00:00:00:01:04"},
    "atk1": {"port": 5, "mac": "02:00:00:00:00:12", "switch_mac": "02:00:00:00:01:05"},
}
STATIC_ROUTES = len(PORT_MAP)     # a /32 per host of the local inventory


def ip(a: str) -> int:
    return int(ipaddress.IPv4Address(a))


class CP:
    def __init__(self, switch_proc, forwarding, window_s: float = 0.001, max_batch: int = 256,
                 stats_file: Path | None = None, request_timeout_s: float = 5.0) -> None:
        p4info, package = forwarding
        static = static_entries("forwarding", load_inventory("local"), parse_port_map(PORT_MAP))
        self.cfg = ControllerConfig(switch=switch_proc.address, p4info=p4info, device_config=package,
                                    static=static, window_s=window_s, max_batch=max_batch,
                                    request_timeout_s=request_timeout_s, reconnect_s=0.2,
                                    credentials=switch_proc.creds("controlplane"))
        self.controller = Controller(self.cfg)
        self.server = FrontendServer(("127.0.0.1", 0), self.controller, "forwarding",
                                     credentials=switch_proc.creds("controlplane"))
        self.stats = StatsFile(self.controller, stats_file, interval=0.2) if stats_file else None
        self.switch_proc = switch_proc
        self.controller.start()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        if self.stats:
            self.stats.start()
        assert self.controller.connected.wait(20), "control plane did not connect"

    def client(self) -> protocol.Client:
        return protocol.Client(self.server.address, name="test", credentials=self.switch_proc.creds("operator"))

    def tables(self) -> PipelineTables:
        return PipelineTables(pipeline_spec("forwarding"), self.switch_proc.pin_dir)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.controller.stop()
        if self.stats:
            self.stats.stop()


@pytest.fixture
def cp(switch_proc, forwarding) -> Iterator[CP]:
    c = CP(switch_proc, forwarding, window_s=0.02, max_batch=32)
    try:
        yield c
    finally:
        c.close()


def add(cli: protocol.Client, dst: str, plen: int = 32, port: int = 1) -> int:
    return cli.send({"type": "add", "table": "route", "key": {"dst_addr": [dst, plen]}, "action": "forward",
                     "params": {"port": port, "smac": "02:00:00:00:aa:01", "dmac": "02:00:00:00:bb:01"}})


def delete(cli: protocol.Client, dst: str, plen: int = 32) -> int:
    return cli.send({"type": "delete", "table": "route", "key": {"dst_addr": [dst, plen]}})


def acks(cli: protocol.Client, ids: list[int]) -> dict[int, dict]:
    out = {}
    while len(out) < len(ids):
        m = cli.recv()
        assert m["type"] == "ack", m
        out[m["id"]] = m
    assert set(out) == set(ids)
    return out


def test_static_routes_from_the_inventory(cp: CP) -> None:
    with cp.tables() as t:
        entries = {e.key["dst_addr"]: e for e in t.read("route")}
    inv = load_inventory("local")
    assert set(entries) == {(int(h.data_address), 32) for h in inv.hosts if h.data_address}
    be2 = entries[(ip("198.18.0.32"), 32)]
    assert be2.action == "forward"
    assert be2.params == {"port": 4, "smac": 0x020000000104, "dmac": 0x020000000032}


def test_offload_requests_are_batched_and_acked(cp: CP) -> None:
    cli = cp.client()
    try:
        assert cli.server_hello["type"] == "hello" and "route" in cli.server_hello["tables"]
        before = cli.stats()["stats"]["batches"]
        ids = [add(cli, f"198.18.100.{i}") for i in range(100)]
        got = acks(cli, ids)
        assert all(a["code"] == "OK" for a in got.values())
        st = cli.stats()["stats"]
        batches = st["batches"] - before
        assert 4 <= batches <= 40, batches                    # 100 requests, at most 32 per Write
        assert st["occupancy"]["route"] == STATIC_ROUTES + 100
        with cp.tables() as t:
            assert t.count("route") == STATIC_ROUTES + 100
            e = t.get("route", {"dst_addr": (ip("198.18.100.7"), 32)})
            assert e is not None and e.params["smac"] == 0x02000000AA01
    finally:
        cli.close()


def test_per_key_order_is_kept_within_and_across_batches(cp: CP) -> None:
    cli = cp.client()
    try:
        ids = []
        for _ in range(3):               # add, delete, add, delete, add, delete on one key, pipelined
            ids.append(add(cli, "198.18.101.1"))
            ids.append(delete(cli, "198.18.101.1"))
        ids.append(add(cli, "198.18.101.1"))
        ids += [add(cli, f"198.18.101.{i}") for i in range(2, 6)]
        got = acks(cli, ids)
        assert [got[i]["code"] for i in ids] == ["OK"] * len(ids)   # a reorder shows as NOT_FOUND/EXISTS
        with cp.tables() as t:
            assert t.get("route", {"dst_addr": (ip("198.18.101.1"), 32)}) is not None
    finally:
        cli.close()


def test_errors_are_reported_back_and_counted(cp: CP) -> None:
    cli = cp.client()
    try:
        assert cli.call({"type": "add", "table": "route", "key": {"dst_addr": ["198.18.102.1", 32]},
                         "action": "forward", "params": {"port": 1, "smac": 1, "dmac": 2}})["code"] == "OK"
        dup = acks(cli, [add(cli, "198.18.102.1")])
        assert next(iter(dup.values()))["code"] == "ALREADY_EXISTS"
        missing = acks(cli, [delete(cli, "198.18.102.9")])
        assert next(iter(missing.values()))["code"] == "NOT_FOUND"
        host_bits = acks(cli, [add(cli, "198.18.102.1", plen=24)])      # refused by the switch
        a = next(iter(host_bits.values()))
        assert a["code"] == "INVALID_ARGUMENT" and "prefix" in a["message"]
        rep = cli.call({"type": "add", "table": "route", "key": {"nope": 1}, "action": "forward",
                        "params": {}})                                  # refused before the switch
        assert rep["code"] == "INVALID_ARGUMENT" and "unknown match field" in rep["message"]
        rep = cli.call({"type": "add", "table": "nosuch", "key": {"a": 1}, "action": "x"})
        assert rep["code"] == "INVALID_ARGUMENT"
        st = cli.stats()["stats"]
        assert st["errors"] == 5
        assert st["acks"]["ALREADY_EXISTS"] == 1 and st["acks"]["NOT_FOUND"] == 1
    finally:
        cli.close()


@pytest.mark.parametrize(("frame", "needle"), [
    (struct.pack("!I", 5) + b"{nope", "not UTF-8 JSON"),
    (protocol.encode({"v": 2, "type": "hello", "id": 1}), "unsupported protocol version"),
    (protocol.encode({"v": 1, "type": "frobnicate", "id": 1}), "unknown request type"),
    (struct.pack("!I", protocol.MAX_FRAME + 1), "exceeds"),
], ids=["bad json", "version", "type", "oversized"])
def test_malformed_frames_get_an_error_and_the_connection_closes(cp: CP, frame: bytes, needle: str) -> None:
    s = protocol.connect(cp.server.address, 5, cp.switch_proc.creds("operator"))
    try:
        s.sendall(frame)
        rep = protocol.read_frame(s)
        assert rep is not None and rep["type"] == "error" and needle in rep["message"], rep
        assert s.recv(1) == b""
    finally:
        s.close()


def test_stats_file(switch_proc, forwarding, tmp_path: Path) -> None:
    f = tmp_path / "cp.json"
    c = CP(switch_proc, forwarding, stats_file=f)
    try:
        cli = c.client()
        ids = [add(cli, f"198.18.103.{i}") for i in range(10)]
        acks(cli, ids)
        cli.close()
        # The file is rewritten every second: wait for one with the adds. The deadline only keeps a
        # stuck server from hanging the run (a guard, not a bound on speed).
        guard = time.monotonic() + 300
        while not (f.exists() and (j := json.loads(f.read_text())).get("requests") == {"add": 10}
                   and j.get("acks") == {"OK": 10}):
            if time.monotonic() > guard:
                pytest.fail(f"hang guard (300 s): {f.read_text() if f.exists() else 'no stats file'}")
            time.sleep(0.05)
        st = json.loads(f.read_text())
        assert st["connected"] is True and st["occupancy"] == {"route": STATIC_ROUTES + 10}
        assert st["requests"] == {"add": 10} and st["acks"] == {"OK": 10}
        assert st["inserts_per_s"] >= 0 and st["request_latency_us"]["n"] == 10
    finally:
        c.close()


def test_reconnects_after_a_switch_restart_and_reinstalls(switch_proc, forwarding) -> None:
    c = CP(switch_proc, forwarding, window_s=0.005, request_timeout_s=30)
    try:
        cli = c.client()
        acks(cli, [add(cli, f"198.18.104.{i}") for i in range(1, 6)] + [delete(cli, "198.18.104.5")])
        switch_proc.stop()                                    # the switch goes away: its tables with it
        assert not switch_proc.pin_dir.exists()
        deadline = time.monotonic() + 60      # a hang guard, not a bound
        while c.controller.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not c.controller.connected.is_set()
        pending = add(cli, "198.18.104.9")                    # waits for the switch to come back
        switch_proc.start()
        [ack] = acks(cli, [pending]).values()
        assert ack["code"] == "OK"
        with c.tables() as t:
            keys = {e.key["dst_addr"] for e in t.read("route")}
        expected = {(ip(f"198.18.104.{i}"), 32) for i in (1, 2, 3, 4, 9)}
        assert expected <= keys and len(keys) == STATIC_ROUTES + len(expected)   # static + offload, not .5
        st = cli.stats()["stats"]
        assert st["reconnects"] == 2 and st["pipeline_sets"] == 2
        cli.close()
    finally:
        c.close()


def test_port_map_errors_name_the_field() -> None:
    with pytest.raises(PortMapError, match=r"fe1\.switch_mac"):
        parse_port_map({"fe1": {"port": 2, "mac": "02:00:00:00:00:21", "switch_mac": "zz"}})
    with pytest.raises(PortMapError, match="has no entry in the port map"):
        static_entries("forwarding", load_inventory("local"), parse_port_map({"fe1": PORT_MAP["fe1"]}))
