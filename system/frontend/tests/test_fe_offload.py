"""The offload client against a TCP server speaking the control plane's framed protocol
(system.controlplane.protocol): request fields, per-key order, acks counted by code."""

from __future__ import annotations

import socket
import threading
import time

from system.controlplane.protocol import encode, read_frame
from system.frontend.offload import OffloadClient


class FramedServer:
    """Acks add/delete with OK, except deletes of unknown keys (NOT_FOUND); records requests."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.requests: list[dict] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        keys: set = set()
        with conn:
            while (msg := read_frame(conn)) is not None:
                self.requests.append(msg)
                if msg["type"] == "hello":
                    conn.sendall(encode({"v": 1, "type": "hello", "id": msg["id"], "server": "t"}))
                    continue
                key = (msg["key"]["client_addr"], msg["key"]["client_port"])
                code = "OK"
                if msg["type"] == "add":
                    keys.add(key)
                elif key in keys:
                    keys.discard(key)
                else:
                    code = "NOT_FOUND"
                conn.sendall(encode({"v": 1, "type": "ack", "id": msg["id"], "code": code}))

    def close(self) -> None:
        self.sock.close()


def wait_for(pred, timeout=60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def test_add_delete_in_order_and_counted():
    srv = FramedServer()
    cl = OffloadClient(srv.address)
    try:
        cl.add(bytes([198, 18, 0, 11]), 40000, 1)
        cl.delete(bytes([198, 18, 0, 11]), 40000)
        cl.delete(bytes([198, 18, 0, 12]), 40001)
        assert wait_for(lambda: cl.pending() == 0 and cl.counters["delete_NOT_FOUND"] == 1)
        entries = [r for r in srv.requests if r["type"] != "hello"]
        assert [r["type"] for r in entries] == ["add", "delete", "delete"]
        assert entries[0] == {"v": 1, "type": "add", "id": entries[0]["id"], "table": "offload",
                              "key": {"client_addr": "198.18.0.11", "client_port": 40000},
                              "action": "to_backend", "params": {"index": 1}}
        assert cl.counters["add_OK"] == 1 and cl.counters["delete_OK"] == 1 and cl.counters["failed"] == 1
    finally:
        cl.close()
        srv.close()


def test_unreachable_control_plane_is_counted_not_silent():
    s = socket.create_server(("127.0.0.1", 0))
    addr = s.getsockname()
    s.close()                                  # nobody listens there now
    cl = OffloadClient(addr, timeout=0.5)
    cl.add(bytes([198, 18, 0, 11]), 40000, 1)
    assert cl.counters["add_unavailable"] == 1 and cl.counters["failed"] == 1
    assert cl.counters["connect_failed"] == 1
    cl.close()
