"""Offload add/delete requests from the front-end to the switch control plane.

Framed protocol of docs/controlplane-protocol.md over one TCP connection: requests are written in
the order the front-end makes them (the control plane keeps requests on one key in order), acks are
read by a background thread and counted by code. Failures (a non-OK ack, no connection) are visible
in `counters`, never silent. Table `offload`: key (client_addr, client_port) (the P4Info's match
field names), action to_backend(index). `request` sends any table write and can call back with the
ack's code (the switch-only slow path's conn-table client builds on it). `activity` asks when the
switch last counted packets of some offload entries (request `activity`); its answer comes back
through a callback, never blocking the caller.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from system.controlplane.protocol import VERSION, ProtocolError, connect, encode, read_frame
from system.credentials import Credentials
from system.frontend.packets import ip_str

TABLE = "offload"
ACTION = "to_backend"
AckCallback = Callable[[str, float], None]     # (ack code, seconds from request to ack)
# (idle seconds per key, None where the switch has no such entry; or None and the error code)
ActivityCallback = Callable[[list[float | None] | None, str], None]


class OffloadClient:
    def __init__(self, address: tuple[str, int], name: str = "frontend", timeout: float = 5.0,
                 reconnect_interval: float = 1.0, credentials: Credentials | None = None) -> None:
        self.address, self.name, self.timeout = address, name, timeout
        self.credentials = credentials     # this front-end's identity (mutual TLS); None: plain TCP
        self.reconnect_interval = reconnect_interval
        self.counters: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._sock: Any = None             # a socket, or a credentials.TLSStream
        self._next_id = 0
        self._pending: dict[int, tuple[str, float, AckCallback | None]] = {}
        self._activity: dict[int, tuple[int, ActivityCallback]] = {}    # id -> (keys asked, callback)
        self._last_attempt = 0.0
        self._reader: threading.Thread | None = None
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=10000)

    def _connect(self) -> Any:
        if self._sock is not None:
            return self._sock
        now = time.monotonic()
        if now - self._last_attempt < self.reconnect_interval:
            return None
        self._last_attempt = now
        try:
            sock = connect(self.address, self.timeout, self.credentials)
            sock.sendall(encode({"v": VERSION, "type": "hello", "id": 0, "client": self.name}))
            sock.settimeout(None)
        except OSError:
            self.counters["connect_failed"] += 1
            return None
        self._sock = sock
        self.counters["connected"] += 1
        self._reader = threading.Thread(target=self._read, args=(sock,), name="offload-acks", daemon=True)
        self._reader.start()
        return sock

    def _read(self, sock: Any) -> None:
        while True:
            try:
                msg = read_frame(sock)
            except (OSError, ProtocolError):
                msg = None
            if msg is None:
                break
            self._on_reply(msg)
        with self._lock:
            if self._sock is sock:
                self._sock = None
                lost = list(self._pending.values())
                self._pending.clear()
                asked = list(self._activity.values())
                self._activity.clear()
                self.counters["lost_unacked"] += len(lost)
                self.counters["activity_lost"] += len(asked)
                self.counters["disconnected"] += 1
                for _, t0, on_ack in lost:
                    if on_ack is not None:
                        on_ack("UNAVAILABLE", time.monotonic() - t0)
                for _, on_reply in asked:
                    on_reply(None, "UNAVAILABLE")

    def _on_reply(self, msg: dict[str, Any]) -> None:
        typ = msg.get("type")
        with self._lock:
            if typ == "hello":
                self.counters["hello"] += 1
                return
            if typ in ("activity", "error") and msg.get("id") in self._activity:
                self._activity_reply(msg)
                return
            if typ == "error":
                self.counters["error_replies"] += 1
                return
            pending = self._pending.pop(msg.get("id"), None)
            if pending is None:
                self.counters["unexpected_replies"] += 1
                return
            op, t0, on_ack = pending
            code = msg.get("code", "?")
            self.counters[f"{op}_{code}"] += 1
            if code != "OK":
                self.counters["failed"] += 1
            elapsed = time.monotonic() - t0
            self.latencies_ms.append(elapsed * 1000)
            if on_ack is not None:
                on_ack(code, elapsed)

    def _activity_reply(self, msg: dict[str, Any]) -> None:
        n, on_reply = self._activity.pop(msg["id"])
        idle = msg.get("idle_s")
        if msg.get("type") == "error":
            code = str(msg.get("code", "?"))
            self.counters[f"activity_{code}"] += 1
            on_reply(None, code)
        elif not isinstance(idle, list) or len(idle) != n or not all(
                v is None or (isinstance(v, int | float) and not isinstance(v, bool) and v >= 0) for v in idle):
            self.counters["activity_malformed"] += 1
            on_reply(None, "MALFORMED")
        else:
            self.counters["activity_OK"] += 1
            on_reply([None if v is None else float(v) for v in idle], "OK")

    def activity(self, keys: list[tuple[bytes, int]], on_reply: ActivityCallback) -> None:
        """Asks when the switch last counted packets of the offload entries of `keys` (client endpoints).
        `on_reply(idle, code)` runs on the reader thread with the idle seconds per key (None: no such
        entry) and "OK"; or with None and the error code (UNAVAILABLE: not sent, or the connection
        dropped before the answer; then at once, on the caller's thread, when it cannot be sent)."""
        with self._lock:
            sock = self._connect()
            self.counters["activity_requested"] += 1
            self.counters["activity_keys"] += len(keys)
            if sock is None:
                self.counters["activity_unavailable"] += 1
                on_reply(None, "UNAVAILABLE")
                return
            self._next_id += 1
            rid = self._next_id
            self._activity[rid] = (len(keys), on_reply)
            try:
                sock.sendall(encode({"v": VERSION, "type": "activity", "id": rid, "table": TABLE, "keys": [
                    {"client_addr": ip_str(ip), "client_port": port} for ip, port in keys]}))
            except OSError:
                self._activity.pop(rid, None)
                self.counters["activity_unavailable"] += 1
                with contextlib.suppress(OSError):
                    sock.close()
                self._sock = None
                on_reply(None, "UNAVAILABLE")

    def _send(self, op: str, body: dict[str, Any]) -> None:
        self.request(op, TABLE, body)

    def request(self, op: str, table: str, body: dict[str, Any], on_ack: AckCallback | None = None) -> None:
        """One table write (`add`, `modify`, `delete`) on `table`; `body` holds key/action/params.
        `on_ack(code, seconds)` runs on the reader thread when the ack comes, or at once with
        UNAVAILABLE when the request cannot be sent (or the connection drops before its ack)."""
        with self._lock:
            sock = self._connect()
            self.counters[f"{op}_requested"] += 1
            if sock is None:
                self.counters[f"{op}_unavailable"] += 1
                self.counters["failed"] += 1
                if on_ack is not None:
                    on_ack("UNAVAILABLE", 0.0)
                return
            self._next_id += 1
            rid = self._next_id
            self._pending[rid] = (op, time.monotonic(), on_ack)
            try:
                sock.sendall(encode({"v": VERSION, "type": op, "id": rid, "table": table, **body}))
            except OSError:
                self._pending.pop(rid, None)
                self.counters[f"{op}_unavailable"] += 1
                self.counters["failed"] += 1
                with contextlib.suppress(OSError):
                    sock.close()
                self._sock = None
                if on_ack is not None:
                    on_ack("UNAVAILABLE", 0.0)

    def add(self, client_ip: bytes, client_port: int, index: int) -> None:
        self._send("add", {"key": {"client_addr": ip_str(client_ip), "client_port": client_port},
                           "action": ACTION, "params": {"index": index}})

    def delete(self, client_ip: bytes, client_port: int, on_ack: AckCallback | None = None) -> None:
        """`on_ack(code, seconds)`: see `request` (the engine holds a re-steer's SYN until it runs)."""
        self.request("delete", TABLE, {"key": {"client_addr": ip_str(client_ip), "client_port": client_port}},
                     on_ack)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._activity)

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._reader is not None:
            self._reader.join(timeout=2)
