"""Per-connection add/delete load on the control plane, as the switch-only slow path makes it.

Every "connection" c of the load is two `add`s (`conn_in`, `conn_out` of pipeline `switch_only`,
docs/switch-only-datapath.md) and, once both are acknowledged and `hold_s` has passed, the two
`delete`s: 4 updates per connection. All four go over the same one of `clients` TCP connections to
the control plane (the protocol keeps per-key order per arrival order, so a delete never overtakes
its add). One thread drives every socket (selectors), so the load generator costs little CPU and
its own latency is small and measured from the moment a frame is written.

Two modes:
  open loop (`rate` updates/s): connections start on a fixed schedule (rate/4 per s); latency at
            a given offered load. `late_ms` tells how far the sender fell behind its schedule.
  closed loop (`rate` None): `outstanding` requests in flight per client connection, a new one
            sent at every ack: the control plane's maximum throughput.

Measured: the latency of every request sent in the window [warmup_s, warmup_s + seconds) (from its
send to its ack, also when the ack comes later), and the throughput as the acks that came within
the window. After the window no new connection starts, the deletes of every installed connection
are sent and their acks awaited (not measured).
`python -m system.controlplane.loadgen HOST:PORT --rate 1000` prints the result as JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from system.controlplane.protocol import VERSION, decode_body, encode

_LEN = struct.Struct("!I")
VIP, VIP_PORT = "198.18.0.100", 80
BACKEND, BACKEND_PORT = "198.18.0.31", 80


@dataclass
class LoadSpec:
    address: tuple[str, int]
    rate: float | None = None            # offered updates/s; None: closed loop
    seconds: float = 5.0
    clients: int = 4
    outstanding: int = 32                # closed loop: requests in flight per client connection
    hold_s: float = 0.1                  # adds acked -> deletes sent
    warmup_s: float = 0.5
    drain_s: float = 30.0                # at most this long for the last acks
    base: int = 0                        # first connection number (distinct runs use distinct keys)

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be > 0 updates/s (or None for a closed loop)")
        if self.clients < 1 or self.outstanding < 1 or self.seconds <= 0 or self.hold_s < 0:
            raise ValueError("clients and outstanding must be >= 1, seconds > 0, hold_s >= 0")


def client_endpoint(c: int) -> tuple[str, int]:
    """Connection number -> a distinct (client address, port): 60,000 ports per address."""
    addr = 0xC6120000 + 0x0100 + c // 60000          # 198.18.1.0 + ...
    return f"{addr >> 24}.{addr >> 16 & 255}.{addr >> 8 & 255}.{addr & 255}", 1024 + c % 60000


def bodies(c: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(op, table, body) of connection `c`'s two adds; the deletes use the same keys."""
    client, port = client_endpoint(c)
    return [
        ("add", "conn_in", {"key": {"client_addr": client, "client_port": port, "vip_addr": VIP,
                                    "vip_port": VIP_PORT},
                            "action": "to_backend",
                            "params": {"backend_addr": BACKEND, "backend_port": BACKEND_PORT, "port": 3,
                                       "smac": "02:00:00:00:01:03", "dmac": "02:00:00:00:00:31",
                                       "ack_delta": c & 0xFFFFFFFF}}),
        ("add", "conn_out", {"key": {"backend_addr": BACKEND, "backend_port": BACKEND_PORT,
                                     "client_addr": client, "client_port": port},
                             "action": "to_client",
                             "params": {"vip_addr": VIP, "vip_port": VIP_PORT, "seq_delta": c & 0xFFFFFFFF}}),
    ]


@dataclass
class _Conn:
    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    inflight: int = 0
    script: collections.deque = field(default_factory=collections.deque)   # closed loop: next requests


@dataclass
class _Req:
    conn: int            # connection number of the load
    op: str
    table: str
    sent: float
    measured: bool


class LoadGen:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.sel = selectors.DefaultSelector()
        self.conns: list[_Conn] = []
        self.reqs: dict[int, _Req] = {}
        self.next_id = 0
        self.latencies: list[float] = []
        self.codes: collections.Counter[str] = collections.Counter()
        self.acked_in_window = 0              # acks that came during the measured window
        self.sent = 0
        self.sent_in_window = 0
        self.late: list[float] = []
        self.acks_for: dict[int, int] = collections.defaultdict(int)     # connection -> OK add acks
        self.installed: set[int] = set()
        self.deletes: list[collections.deque[tuple[float, int]]] = []     # per client: (due, connection)
        self.t_measure = 0.0
        self.t_end = 0.0

    # -- sockets -------------------------------------------------------------------------------

    def connect(self) -> None:
        for i in range(self.spec.clients):
            s = socket.create_connection(self.spec.address, timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(encode({"v": VERSION, "type": "hello", "id": 0, "client": f"loadgen-{i}"}))
            c = _Conn(s)
            while True:                                   # the hello reply
                msg = self._read_one(c, block=True)
                if msg is not None:
                    break
            self.sel.register(s, selectors.EVENT_READ, len(self.conns))
            self.conns.append(c)

    def close(self) -> None:
        for c in self.conns:
            self.sel.unregister(c.sock)
            c.sock.close()
        self.conns.clear()

    def _read_one(self, c: _Conn, block: bool = False) -> dict[str, Any] | None:
        while True:
            if len(c.buf) >= 4:
                (n,) = _LEN.unpack_from(c.buf)
                if len(c.buf) >= 4 + n:
                    body = bytes(c.buf[4:4 + n])
                    del c.buf[:4 + n]
                    return decode_body(body)
            if not block:
                return None
            chunk = c.sock.recv(65536)
            if not chunk:
                raise ConnectionError("control plane closed the connection")
            c.buf += chunk

    def _send(self, conn: int, op: str, table: str, body: dict[str, Any], now: float) -> None:
        self.next_id += 1
        rid = self.next_id
        c = self.conns[self._client(conn)]
        c.sock.sendall(encode({"v": VERSION, "type": op, "id": rid, "table": table, **body}))
        t = time.monotonic()
        measured = self.t_measure <= now < self.t_end
        self.reqs[rid] = _Req(conn, op, table, t, measured)
        c.inflight += 1
        self.sent += 1
        self.sent_in_window += measured

    def _client(self, conn: int) -> int:
        return (conn - self.spec.base) % len(self.conns)

    def _start_connection(self, conn: int, now: float) -> None:
        for op, table, body in bodies(conn):
            self._send(conn, op, table, body, now)

    def _delete_connection(self, conn: int, now: float) -> None:
        self.installed.discard(conn)
        for _, table, body in bodies(conn):
            self._send(conn, "delete", table, {"key": body["key"]}, now)

    def _on_ack(self, c: _Conn, msg: dict[str, Any], now: float) -> None:
        if msg.get("type") != "ack":
            self.codes[f"reply_{msg.get('type')}"] += 1
            return
        req = self.reqs.pop(msg["id"], None)
        if req is None:
            self.codes["unexpected_ack"] += 1
            return
        c.inflight -= 1
        code = msg.get("code", "?")
        self.codes[code] += 1
        if req.measured:
            self.latencies.append(now - req.sent)
        if self.t_measure <= now < self.t_end:
            self.acked_in_window += 1
        if req.op == "add" and code == "OK":
            self.acks_for[req.conn] += 1
            if self.acks_for[req.conn] == 2:
                del self.acks_for[req.conn]
                self.installed.add(req.conn)
                self.deletes[self._client(req.conn)].append((now + self.spec.hold_s, req.conn))

    def _poll(self, timeout: float) -> None:
        for key, _ in self.sel.select(max(0.0, timeout)):
            c = self.conns[key.data]
            chunk = c.sock.recv(262144)        # readable: does not block
            if not chunk:
                raise ConnectionError("control plane closed the connection")
            c.buf += chunk
            now = time.monotonic()
            while (msg := self._read_one(c)) is not None:
                self._on_ack(c, msg, now)

    # -- runs ----------------------------------------------------------------------------------

    def _due_deletes(self, now: float, closed: bool) -> None:
        for i, c in enumerate(self.conns):
            q = self.deletes[i]
            while q and q[0][0] <= now and (not closed or c.inflight + 2 <= self.spec.outstanding):
                self._delete_connection(q.popleft()[1], now)

    def _next_delete(self) -> float | None:
        heads = [q[0][0] for q in self.deletes if q]
        return min(heads) if heads else None

    def run(self) -> dict[str, Any]:
        s = self.spec
        k = len(self.conns)
        self.deletes = [collections.deque() for _ in range(k)]
        t0 = time.monotonic()
        self.t_measure, self.t_end = t0 + s.warmup_s, t0 + s.warmup_s + s.seconds
        started = 0
        if s.rate is not None:
            interval = 4.0 / s.rate                       # 4 updates per connection
            due = t0
            while True:
                now = time.monotonic()
                self._due_deletes(now, closed=False)
                if now >= self.t_end:
                    break
                if now >= due:
                    if now >= self.t_measure:
                        self.late.append(now - due)
                    self._start_connection(s.base + started, now)
                    started += 1
                    due += interval
                    continue
                nd = self._next_delete()
                self._poll(min(due, nd) - now if nd is not None else due - now)
        else:
            nxt = [s.base + i for i in range(k)]          # client i's next connection number
            while True:
                now = time.monotonic()
                if now >= self.t_end:
                    break
                self._due_deletes(now, closed=True)
                for i, c in enumerate(self.conns):
                    while c.inflight + 2 <= s.outstanding:
                        self._start_connection(nxt[i], now)
                        nxt[i] += k
                        started += 1
                nd = self._next_delete()
                self._poll(0.05 if nd is None else min(0.05, nd - now))
        return self._finish(started)

    def _finish(self, started: int) -> dict[str, Any]:
        s = self.spec
        window_sent = self.sent_in_window
        # Drain: delete everything installed (now), wait for every ack.
        deadline = time.monotonic() + s.drain_s
        while time.monotonic() < deadline:
            now = time.monotonic()
            for q in self.deletes:
                while q:
                    self._delete_connection(q.popleft()[1], now)
            if not self.reqs:
                break
            self._poll(0.05)
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3, 3) if lat else None
        late = sorted(self.late)
        return {
            "mode": "open" if s.rate is not None else "closed", "offered_ups": s.rate, "seconds": s.seconds,
            "clients": s.clients, "outstanding": s.outstanding if s.rate is None else None,
            "connections": started, "sent_in_window": window_sent, "acked_in_window": self.acked_in_window,
            "achieved_ups": round(self.acked_in_window / s.seconds, 1),
            "latency_ms": {"n": len(lat), "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
                           "max": round(lat[-1] * 1e3, 3) if lat else None},
            "late_ms_p99": round(late[min(len(late) - 1, int(0.99 * len(late)))] * 1e3, 3) if late else None,
            "codes": dict(self.codes), "unacked": len(self.reqs), "left_installed": len(self.installed),
        }


def run_load(spec: LoadSpec) -> dict[str, Any]:
    gen = LoadGen(spec)
    gen.connect()
    try:
        return gen.run()
    finally:
        gen.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m system.controlplane.loadgen", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("address", help="control plane HOST:PORT")
    ap.add_argument("--rate", type=float, default=None, help="offered updates/s (default: closed loop)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--outstanding", type=int, default=32)
    ap.add_argument("--hold-s", type=float, default=0.1)
    ap.add_argument("--warmup-s", type=float, default=0.5)
    ap.add_argument("--base", type=int, default=0)
    args = ap.parse_args(argv)
    host, _, port = args.address.rpartition(":")
    try:
        spec = LoadSpec((host, int(port)), rate=args.rate, seconds=args.seconds, clients=args.clients,
                        outstanding=args.outstanding, hold_s=args.hold_s, warmup_s=args.warmup_s, base=args.base)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(run_load(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
