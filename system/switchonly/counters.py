"""Idle detection for installed connections: the direct counters of `conn_in` and `conn_out`.

An installed connection's pure ACKs and payload never reach the slow path, so its idleness is judged
by the switch: every `interval` seconds one P4Runtime Read per table (table entries with
`counter_data`, docs/switch-only-datapath.md) gives each entry's packet count. A connection whose
summed count changed since the previous read was active at that read; `ConnTable.last_active` then
answers with that time. Reads need no arbitration, so this client never competes with the control
plane (the primary). The P4Info comes from the switch itself (GetForwardingPipelineConfig).

Resolution: a connection is seen active at most `interval` late, so the idle timeout is exact to
within one interval. Errors (switch away, pipeline not set yet) are counted and retried.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable

import grpc
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from system.credentials import Credentials
from system.switch.p4rt.codec import P4InfoIndex, TableInfo, decode_match

Key = tuple[bytes, int]


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def client_key(table: str, key: dict[str, object]) -> Key:
    """The client endpoint of a decoded conn_in / conn_out key (field names' last components)."""
    k = {_short(n): v for n, v in key.items()}
    return int(k["client_addr"]).to_bytes(4, "big"), int(k["client_port"])


class CounterReader:
    def __init__(self, address: str, publish: Callable[[dict[Key, float]], None], interval: float = 1.0,
                 device_id: int = 1, tables: tuple[str, ...] = ("conn_in", "conn_out"),
                 clock: Callable[[], float] = time.monotonic, credentials: Credentials | None = None) -> None:
        self.address, self.publish, self.interval = address, publish, interval
        self.credentials = credentials    # P4Runtime over TLS with this client certificate; None: insecure
        self.device_id, self.table_names, self.clock = device_id, tables, clock
        self.counters: collections.Counter[str] = collections.Counter()
        self.last_error = ""
        self._channel: grpc.Channel | None = None
        self._stub: p4runtime_pb2_grpc.P4RuntimeStub | None = None
        self._tables: list[TableInfo] = []
        self._packets: dict[Key, int] = {}
        self._active: dict[Key, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _connect(self) -> p4runtime_pb2_grpc.P4RuntimeStub:
        if self._stub is None:
            self._channel = (grpc.secure_channel(self.address, self.credentials.grpc_channel_credentials())
                             if self.credentials else grpc.insecure_channel(self.address))
            self._stub = p4runtime_pb2_grpc.P4RuntimeStub(self._channel)
        if not self._tables:
            req = p4runtime_pb2.GetForwardingPipelineConfigRequest(
                device_id=self.device_id,
                response_type=p4runtime_pb2.GetForwardingPipelineConfigRequest.P4INFO_AND_COOKIE)
            idx = P4InfoIndex(self._stub.GetForwardingPipelineConfig(req, timeout=5).config.p4info)
            self._tables = [idx.table_by_name(t) for t in self.table_names]
        return self._stub

    def read(self) -> dict[Key, int]:
        """Packets per client endpoint, summed over the tables (one Read RPC per table)."""
        stub = self._connect()
        out: dict[Key, int] = {}
        for t in self._tables:
            ent = p4runtime_pb2.Entity()
            ent.table_entry.table_id = t.id
            ent.table_entry.counter_data.SetInParent()
            req = p4runtime_pb2.ReadRequest(device_id=self.device_id, entities=[ent])
            for rep in stub.Read(req, timeout=10):
                for e in rep.entities:
                    key = client_key(t.alias, decode_match(t, list(e.table_entry.match)))
                    out[key] = out.get(key, 0) + e.table_entry.counter_data.packet_count
        return out

    def poll_once(self) -> None:
        try:
            packets = self.read()
        except (grpc.RpcError, KeyError, ValueError) as e:
            self.counters["read_errors"] += 1
            self.last_error = str(e.details() if isinstance(e, grpc.RpcError) else e)
            self._tables = []                   # the pipeline may have been (re)set
            return
        now = self.clock()
        self.counters["reads"] += 1
        active = {k: t for k, t in self._active.items() if k in packets}
        for k, n in packets.items():
            if self._packets.get(k) != n:
                active[k] = now
        self._packets, self._active = packets, active
        self.counters["entries_seen"] = len(packets)
        self.publish(dict(active))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="conn-counters", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._channel is not None:
            with contextlib.suppress(Exception):
                self._channel.close()
