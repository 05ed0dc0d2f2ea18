"""The conn-table client: the two adds of the contract, outcomes from both acks, undo and relay on
failure, deletes after removal (also of entries acked after the flow went). The last test runs the
real control-plane client (OffloadClient.request) against a TCP server speaking the framed protocol."""

from __future__ import annotations

import socket
import threading
import time

from so_testing import BACKENDS, CLIENT, CLIENT_PORT, VIP, VIP_PORT

from system.controlplane.protocol import encode, read_frame
from system.frontend.flows import Flow, State
from system.frontend.offload import OffloadClient
from system.frontend.packets import ip_bytes
from system.frontend.syncookie import CookieInfo
from system.switchonly.conntable import BackendPort, ConnTable

PORTS = {"be1": BackendPort(3, "02:00:5e:00:00:03", "02:00:09:00:00:31"),
         "be2": BackendPort(4, "02:00:5e:00:00:04", "02:00:09:00:00:32")}
KEY = (ip_bytes(CLIENT), CLIENT_PORT)


class Transport:
    """Records requests; the test acks them by index."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, object]] = []

    def request(self, op, table, body, on_ack=None) -> None:
        self.requests.append((op, table, body, on_ack))

    def ack(self, i: int, code: str = "OK") -> None:
        self.requests[i][3](code, 0.001)

    def ops(self) -> list[tuple[str, str]]:
        return [(op, table) for op, table, _, _ in self.requests]


def flow(delta: int = 0xFFFFFFF0, port: int = CLIENT_PORT) -> Flow:
    f = Flow(client_ip=ip_bytes(CLIENT), client_port=port, client_mac=b"\0" * 6, info=CookieInfo(1, 1460, False, 7),
             c=1, state=State.INSTALLING, created=0, last=0, client_window=0, req_start=2, parser=None,
             server_next=0)
    f.backend, f.delta = BACKENDS["be1"], delta
    return f


def table() -> tuple[ConnTable, Transport, list[int]]:
    t = Transport()
    woken: list[int] = []
    return ConnTable(t, VIP, VIP_PORT, PORTS, wake=lambda: woken.append(1)), t, woken


def test_adds_carry_the_contract_fields():
    ct, t, _ = table()
    ct.install(flow())
    assert t.ops() == [("add", "conn_in"), ("add", "conn_out")]
    assert t.requests[0][2] == {
        "key": {"client_addr": CLIENT, "client_port": CLIENT_PORT, "vip_addr": VIP, "vip_port": VIP_PORT},
        "action": "to_backend",
        "params": {"backend_addr": "198.18.9.31", "backend_port": 80, "port": 3, "smac": "02:00:5e:00:00:03",
                   "dmac": "02:00:09:00:00:31", "ack_delta": 0xFFFFFFF0}}
    assert t.requests[1][2] == {
        "key": {"backend_addr": "198.18.9.31", "backend_port": 80, "client_addr": CLIENT, "client_port": CLIENT_PORT},
        "action": "to_client", "params": {"vip_addr": VIP, "vip_port": VIP_PORT, "seq_delta": 0x10}}  # -delta


def test_installed_only_when_both_acks_are_ok():
    ct, t, woken = table()
    ct.install(flow())
    t.ack(1)
    assert ct.drain() == [] and woken == [1]
    t.ack(0)
    assert ct.drain() == [(KEY[0], KEY[1], True)]
    assert ct.entries() == {"conn_in": 1, "conn_out": 1} and ct.installed() == 1
    st = ct.stats()
    assert st["counters"]["installs_ok"] == 1 and st["install_latency_ms"]["n"] == 1
    ct.remove(flow())
    assert t.ops()[2:] == [("delete", "conn_in"), ("delete", "conn_out")]
    t.ack(2)
    t.ack(3)
    assert ct.drain() == [] and ct.entries() == {"conn_in": 0, "conn_out": 0}
    assert ct.counters["delete_conn_in_OK"] == 1 and ct._installs == {} and ct._by_key == {}


def test_table_full_undoes_the_other_entry_and_relays():
    ct, t, _ = table()
    ct.install(flow())
    t.ack(1, "RESOURCE_EXHAUSTED")
    assert ct.drain() == [(KEY[0], KEY[1], False)]        # decided at the first failure
    t.ack(0, "OK")                                         # the other one got in: deleted at once
    assert ct.drain() == []
    assert t.ops()[2:] == [("delete", "conn_in")]
    assert ct.counters["relayed_table_full"] == 1 and ct.counters["relayed_install_failed"] == 0
    assert ct.entries() == {"conn_in": 0, "conn_out": 0}
    ct.remove(flow())                                      # the engine's removal later: nothing more to delete
    assert len(t.requests) == 3


def test_unreachable_control_plane_counts_install_failed():
    ct, t, _ = table()
    ct.install(flow())
    t.ack(0, "UNAVAILABLE")
    t.ack(1, "UNAVAILABLE")
    assert ct.drain() == [(KEY[0], KEY[1], False)]
    assert ct.counters["relayed_install_failed"] == 1 and ct.counters["relayed_table_full"] == 0
    assert ct.counters["add_conn_in_UNAVAILABLE"] == 1 and len(t.requests) == 2


def test_removed_before_the_acks_deletes_what_gets_in():
    ct, t, _ = table()
    ct.install(flow())
    ct.remove(flow())
    t.ack(0)
    t.ack(1)
    assert ct.drain() == []
    assert t.ops()[2:] == [("delete", "conn_in"), ("delete", "conn_out")]
    assert ct.entries() == {"conn_in": 0, "conn_out": 0}


def test_port_reuse_keeps_installs_apart():
    ct, t, _ = table()
    ct.install(flow())
    t.ack(0)
    t.ack(1)
    ct.drain()
    ct.remove(flow())                 # deletes queued, acks not back yet
    ct.install(flow(delta=5))         # the same client endpoint again
    t.ack(4)
    t.ack(5)
    t.ack(2)
    t.ack(3)
    assert ct.drain() == [(KEY[0], KEY[1], True)]
    assert ct.entries() == {"conn_in": 1, "conn_out": 1}
    assert t.requests[4][2]["params"]["ack_delta"] == 5


class FramedServer:
    """Acks adds (RESOURCE_EXHAUSTED for conn_out when `full`) and deletes; records requests."""

    def __init__(self, full: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.full = full
        self.requests: list[dict] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while (msg := read_frame(conn)) is not None:
                self.requests.append(msg)
                if msg["type"] == "hello":
                    conn.sendall(encode({"v": 1, "type": "hello", "id": msg["id"], "server": "t"}))
                    continue
                code = "RESOURCE_EXHAUSTED" if self.full and msg["table"] == "conn_out" else "OK"
                conn.sendall(encode({"v": 1, "type": "ack", "id": msg["id"], "code": code}))


def drain_until(ct: ConnTable, n: int, timeout: float = 60.0) -> list:
    got: list = []
    end = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < end:
        got += ct.drain()
        time.sleep(0.005)
    return got


def test_over_the_framed_protocol():
    for full in (False, True):
        srv = FramedServer(full=full)
        cl = OffloadClient(srv.address, name="slowpath-test")
        try:
            ct = ConnTable(cl, VIP, VIP_PORT, PORTS)
            ct.install(flow())
            assert drain_until(ct, 1) == [(KEY[0], KEY[1], not full)]
            tables = [(r["type"], r["table"]) for r in srv.requests if r["type"] != "hello"]
            if full:
                deadline = time.monotonic() + 60
                while len(tables) < 3 and time.monotonic() < deadline:
                    time.sleep(0.01)
                    ct.drain()
                    tables = [(r["type"], r["table"]) for r in srv.requests if r["type"] != "hello"]
                assert tables == [("add", "conn_in"), ("add", "conn_out"), ("delete", "conn_in")]
                assert ct.counters["relayed_table_full"] == 1
            else:
                assert tables == [("add", "conn_in"), ("add", "conn_out")]
                assert ct.stats()["install_latency_ms"]["p50"] is not None
        finally:
            cl.close()
            srv.sock.close()
