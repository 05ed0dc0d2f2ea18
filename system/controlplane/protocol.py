"""The front-end <-> switch control plane protocol: length-prefixed JSON over TCP, version 1.

Documented in docs/controlplane-protocol.md. A frame is a 4-byte big-endian unsigned length followed
by that many bytes of UTF-8 JSON: one object per frame, at most MAX_FRAME bytes. Every object has
"v" (the protocol version, 1), "type" and, for requests, "id" (an integer the client chooses; the
reply carries it back). Requests: hello, add, modify, delete, stats, cookie_secrets, activity. Replies:
hello, ack, stats, cookie_secrets, activity, error. Frames travel inside mutual TLS (`connect` with an identity's
`Credentials`, system/credentials.py); what a client may ask depends on its role (rights.py).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from system.credentials import Credentials, client_stream

VERSION = 1
MAX_FRAME = 1 << 20
_LEN = struct.Struct("!I")
REQUEST_TYPES = ("hello", "add", "modify", "delete", "stats", "cookie_secrets", "activity")
ENTRY_TYPES = ("add", "modify", "delete")
MAX_ACTIVITY_KEYS = 4096      # entries per `activity` request


class ProtocolError(ValueError):
    """A malformed frame or message (the connection is closed after an error reply)."""


def encode(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, separators=(",", ":"), sort_keys=True).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"message of {len(body)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return _LEN.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(body.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"frame is not UTF-8 JSON: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("frame is not a JSON object")
    return msg


def connect(address: tuple[str, int], timeout: float | None,
            credentials: Credentials | None) -> Any:
    """A connection to the control plane: TLS with this identity's certificate (`credentials`), or
    plain TCP (None: only a server started with --insecure, in tests, accepts it). Has recv, sendall,
    settimeout, shutdown and close."""
    if credentials is not None:
        return client_stream(address, credentials, timeout)
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_exact(sock: Any, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if buf:
                raise ProtocolError(f"connection closed inside a frame ({len(buf)} of {n} bytes)")
            return None
        buf += chunk
    return bytes(buf)


def read_frame(sock: Any) -> dict[str, Any] | None:
    """The next message, or None at a clean end of stream."""
    head = _recv_exact(sock, _LEN.size)
    if head is None:
        return None
    (n,) = _LEN.unpack(head)
    if n > MAX_FRAME:
        raise ProtocolError(f"frame length {n} exceeds {MAX_FRAME}")
    body = _recv_exact(sock, n)
    if body is None:
        raise ProtocolError("connection closed after a frame header")
    return decode_body(body)


class FrameReader:
    """`read_frame` with a receive buffer: one recv for as many frames as have arrived."""

    def __init__(self, sock: Any, chunk: int = 65536) -> None:
        self.sock, self.chunk = sock, chunk
        self.buf = bytearray()

    def _fill(self, n: int) -> bool:
        """At least n bytes buffered (True), or the end of the stream came first (False)."""
        while len(self.buf) < n:
            data = self.sock.recv(max(self.chunk, n - len(self.buf)))
            if not data:
                return False
            self.buf += data
        return True

    def read(self) -> dict[str, Any] | None:
        """The next message, or None at a clean end of stream."""
        if not self._fill(_LEN.size):
            if self.buf:
                raise ProtocolError(f"connection closed inside a frame ({len(self.buf)} of {_LEN.size} bytes)")
            return None
        (n,) = _LEN.unpack_from(self.buf)
        if n > MAX_FRAME:
            raise ProtocolError(f"frame length {n} exceeds {MAX_FRAME}")
        if not self._fill(_LEN.size + n):
            got = len(self.buf) - _LEN.size
            if not got:
                raise ProtocolError("connection closed after a frame header")
            raise ProtocolError(f"connection closed inside a frame ({got} of {n} bytes)")
        body = bytes(self.buf[_LEN.size:_LEN.size + n])
        del self.buf[:_LEN.size + n]
        return decode_body(body)


@dataclass(frozen=True)
class EntryRequest:
    """A validated add/modify/delete request (names as the client gave them; resolved later)."""

    id: int
    op: str                                   # add | modify | delete
    table: str
    key: dict[str, Any]
    action: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def validate_request(msg: dict[str, Any]) -> dict[str, Any] | EntryRequest:
    """Checks the envelope and, for entry requests, the fields; raises ProtocolError."""
    v = msg.get("v")
    if v != VERSION:
        raise ProtocolError(f"unsupported protocol version {v!r} (this server speaks {VERSION})")
    typ = msg.get("type")
    if typ not in REQUEST_TYPES:
        raise ProtocolError(f"unknown request type {typ!r} (known: {', '.join(REQUEST_TYPES)})")
    rid = msg.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise ProtocolError("request id must be an integer")
    if typ not in ENTRY_TYPES:
        return msg
    table = msg.get("table")
    if not isinstance(table, str) or not table:
        raise ProtocolError("table must be a non-empty string")
    key = msg.get("key")
    if not isinstance(key, dict) or not key:
        raise ProtocolError("key must be a non-empty object of match field -> value")
    action, params = msg.get("action"), msg.get("params", {})
    if typ != "delete":
        if not isinstance(action, str) or not action:
            raise ProtocolError(f"{typ} needs an action name")
        if not isinstance(params, dict):
            raise ProtocolError("params must be an object of param name -> value")
    return EntryRequest(id=rid, op=typ, table=table, key=key, action=action if typ != "delete" else None,
                        params=params if typ != "delete" else {})


def parse_activity(msg: dict[str, Any]) -> tuple[str, list[tuple[bytes, int]]]:
    """(table, client endpoints) of an `activity` request: `table` a name, `keys` a list of at most
    MAX_ACTIVITY_KEYS objects {"client_addr": dotted IPv4 or 32-bit integer, "client_port": 0..65535};
    ProtocolError naming what is wrong (the server answers it with an `error` and keeps the connection)."""
    table, keys = msg.get("table"), msg.get("keys")
    if not isinstance(table, str) or not table:
        raise ProtocolError("activity: table must be a non-empty string")
    if not isinstance(keys, list) or not keys:
        raise ProtocolError("activity: keys must be a non-empty list of {client_addr, client_port}")
    if len(keys) > MAX_ACTIVITY_KEYS:
        raise ProtocolError(f"activity: {len(keys)} keys, at most {MAX_ACTIVITY_KEYS} per request")
    out = []
    for i, k in enumerate(keys):
        if not isinstance(k, dict) or set(k) != {"client_addr", "client_port"}:
            raise ProtocolError(f"activity: key {i} must be an object of exactly client_addr and client_port")
        addr, port = k["client_addr"], k["client_port"]
        try:
            if isinstance(addr, bool) or not isinstance(addr, str | int):
                raise ValueError(addr)
            packed = ipaddress.IPv4Address(addr).packed
        except ValueError:
            raise ProtocolError(f"activity: key {i}: client_addr {addr!r} is not an IPv4 address") from None
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
            raise ProtocolError(f"activity: key {i}: client_port {port!r} is not a port number")
        out.append((packed, port))
    return table, out


class Client:
    """A blocking client of the control plane (used by tests, the benchmark and the front-end)."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0, name: str = "client",
                 credentials: Credentials | None = None) -> None:
        self.sock = connect(address, timeout, credentials)
        self._next = 0
        self._lock = threading.Lock()
        self.server_hello = self.call({"type": "hello", "client": name})

    def next_id(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def send(self, msg: dict[str, Any]) -> int:
        msg = {"v": VERSION, **msg}
        if "id" not in msg:
            msg["id"] = self.next_id()
        self.sock.sendall(encode(msg))
        return msg["id"]

    def recv(self) -> dict[str, Any]:
        msg = read_frame(self.sock)
        if msg is None:
            raise ConnectionError("control plane closed the connection")
        return msg

    def call(self, msg: dict[str, Any]) -> dict[str, Any]:
        rid = self.send(msg)
        rep = self.recv()
        if rep.get("id") != rid:
            raise ProtocolError(f"reply to {rep.get('id')}, expected {rid} (use send/recv when pipelining)")
        return rep

    def add(self, table: str, key: dict[str, Any], action: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.call({"type": "add", "table": table, "key": key, "action": action, "params": params})

    def delete(self, table: str, key: dict[str, Any]) -> dict[str, Any]:
        return self.call({"type": "delete", "table": table, "key": key})

    def stats(self, retired_after: int | None = None) -> dict[str, Any]:
        """The `stats` reply; with `retired_after` its stats also list the entries deleted after that
        `retired_seq` (`retired_entries`: [seq, table, key hex, packets, bytes])."""
        msg: dict[str, Any] = {"type": "stats"}
        if retired_after is not None:
            msg["retired_after"] = retired_after
        return self.call(msg)

    def cookie_secrets(self) -> dict[str, Any]:
        """The `cookie_secrets` reply (current, previous, rotated_at, rotation_s), or an `error`
        reply (code FAILED_PRECONDITION) when the pipeline has no SYN cookie."""
        return self.call({"type": "cookie_secrets"})

    def activity(self, table: str, keys: list[dict[str, Any]]) -> dict[str, Any]:
        """The `activity` reply (idle_s per key), or an `error` reply."""
        return self.call({"type": "activity", "table": table, "keys": keys})

    def close(self) -> None:
        self.sock.close()


def parse_cookie_secrets(msg: dict[str, Any]) -> tuple[int, int | None, int]:
    """(current, previous, slot) of a `cookie_secrets` reply: the 64-bit keys of the current slot and
    of the previous one (None before the first rotation) and the current slot number (32 bits);
    ProtocolError if it is not a valid one."""
    if msg.get("type") != "cookie_secrets":
        raise ProtocolError(f"expected a cookie_secrets reply, got {msg.get('type')!r}: {msg.get('message', '')}")
    cur, prev, slot = msg.get("current"), msg.get("previous"), msg.get("slot")

    def ok(v: Any, bits: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << bits
    if not ok(cur, 64) or cur == 0 or not (prev is None or ok(prev, 64)):
        raise ProtocolError(f"cookie_secrets: current/previous must be 64-bit keys (current not 0), "
                            f"got {cur!r}, {prev!r}")
    if not ok(slot, 32):
        raise ProtocolError(f"cookie_secrets: slot must be a 32-bit integer, got {slot!r}")
    return cur, prev, slot
