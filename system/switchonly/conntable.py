"""The switch-only slow path's two entries per connection, written through the control plane.

docs/switch-only-datapath.md: after the back-end's SYN-ACK the slow path inserts `conn_in` (client
-> VIP rewritten to the back-end, `ack += delta`) and `conn_out` (back-end -> client rewritten to
the VIP, `seq += seq_delta` with seq_delta = -delta mod 2^32: a Tofino cannot subtract action data)
with two `add`s on the control plane's framed protocol (docs/controlplane-protocol.md), and holds
the request until both are acknowledged OK. If either fails, the other one is deleted once it is in
and the connection is relayed by user space (`relayed_table_full` for RESOURCE_EXHAUSTED,
`relayed_install_failed` otherwise). Both entries are deleted when the engine removes the flow
(after its linger), also when that happens while an add is still unacknowledged.

Threads: the transport (`OffloadClient.request`) calls back on its reader thread; the callbacks only
queue the ack and call `wake`. Everything else (`install`, `remove`, `drain`) runs on the slow path's
engine thread, so the bookkeeping needs no lock. `drain()` returns the finished installs for
`FrontEnd.install_done`.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from system.frontend.flows import Flow
from system.frontend.offload import AckCallback
from system.frontend.packets import ip_str

CONN_IN, CONN_OUT = "conn_in", "conn_out"
TABLES = (CONN_IN, CONN_OUT)
TABLE_FULL = "RESOURCE_EXHAUSTED"
Key = tuple[bytes, int]           # the client endpoint (packed IPv4, port)


class Transport(Protocol):
    def request(self, op: str, table: str, body: dict[str, Any], on_ack: AckCallback | None = None) -> None: ...


@dataclass(frozen=True)
class BackendPort:
    """Where a back-end is on the switch: conn_in's `to_backend(port, smac, dmac)` parameters."""

    port: int        # P4 port of the back-end's switch port
    smac: str        # that switch port's MAC
    dmac: str        # the back-end's data MAC


@dataclass
class _Install:
    key: Key
    started: float
    bodies: dict[str, dict[str, Any]]                  # table -> key part (for deletes)
    codes: dict[str, str] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)     # tables whose add was acked OK, not yet deleted
    outcome: bool | None = None                        # reported to the engine (True: installed)
    removed: bool = False                              # the engine is done with the flow


class ConnTable:
    def __init__(self, transport: Transport, vip: str, vip_port: int, ports: dict[str, BackendPort],
                 wake: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.monotonic,
                 latency_window: int = 20000) -> None:
        self.transport, self.vip, self.vip_port, self.ports = transport, vip, vip_port, ports
        self.wake, self.clock = wake, clock
        self.counters: collections.Counter[str] = collections.Counter()
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._acks: queue.SimpleQueue[tuple[int, str, str]] = queue.SimpleQueue()
        self._installs: dict[int, _Install] = {}     # install id -> state, while anything is pending or present
        self._by_key: dict[Key, int] = {}            # the client endpoint's current install
        self._next = 0
        self._activity: dict[Key, float] = {}        # from the counter reader (another thread): replaced whole
        self._activity_lock = threading.Lock()

    # ----------------------------------------------------------------- requests (engine thread)

    def bodies(self, flow: Flow) -> dict[str, dict[str, Any]]:
        """The two `add` requests' key/action/params for a flow (docs/switch-only-datapath.md)."""
        b = flow.backend
        if b is None:
            raise ValueError("a flow without a back-end cannot be installed")
        port = self.ports.get(b.name)
        if port is None:
            raise ValueError(f"back-end {b.name} has no switch port (known: {', '.join(sorted(self.ports))})")
        client = ip_str(flow.client_ip)
        return {
            CONN_IN: {"key": {"client_addr": client, "client_port": flow.client_port,
                              "vip_addr": self.vip, "vip_port": self.vip_port},
                      "action": "to_backend",
                      "params": {"backend_addr": b.ip, "backend_port": b.port, "port": port.port,
                                 "smac": port.smac, "dmac": port.dmac, "ack_delta": flow.delta}},
            CONN_OUT: {"key": {"backend_addr": b.ip, "backend_port": b.port,
                               "client_addr": client, "client_port": flow.client_port},
                       "action": "to_client",
                       "params": {"vip_addr": self.vip, "vip_port": self.vip_port,
                                  "seq_delta": -flow.delta & 0xFFFFFFFF}},   # added: the negated delta
        }

    def install(self, flow: Flow) -> None:
        bodies = self.bodies(flow)
        self._next += 1
        iid = self._next
        self._installs[iid] = _Install(flow.key, self.clock(), {t: {"key": b["key"]} for t, b in bodies.items()})
        self._by_key[flow.key] = iid
        self.counters["installs_requested"] += 1
        for table in TABLES:
            self.transport.request("add", table, bodies[table], on_ack=self._callback(iid, table))

    def remove(self, flow: Flow) -> None:
        """The engine removed the flow: delete whatever of its entries is (or will be) in the switch."""
        iid = self._by_key.pop(flow.key, None)
        inst = self._installs.get(iid) if iid is not None else None
        if inst is None:
            return
        inst.removed = True
        for table in sorted(inst.present):
            self._delete(iid, inst, table)
        self._forget_if_done(iid, inst)

    def _delete(self, iid: int, inst: _Install, table: str) -> None:
        inst.present.discard(table)
        self.counters[f"delete_{table}_requested"] += 1
        self.transport.request("delete", table, inst.bodies[table], on_ack=self._callback(-iid, table))

    def _callback(self, iid: int, table: str) -> AckCallback:
        def on_ack(code: str, _seconds: float) -> None:      # the transport's reader thread
            self._acks.put((iid, table, code))
            self.wake()
        return on_ack

    # ----------------------------------------------------------------- acks (engine thread)

    def drain(self) -> list[tuple[bytes, int, bool]]:
        """Apply the acks that came in; returns (client_ip, client_port, installed) per finished install."""
        done: list[tuple[bytes, int, bool]] = []
        while True:
            try:
                iid, table, code = self._acks.get_nowait()
            except queue.Empty:
                return done
            if iid < 0:                          # a delete's ack
                self.counters[f"delete_{table}_{code}"] += 1
                continue
            inst = self._installs.get(iid)
            if inst is None:
                self.counters["ack_without_install"] += 1
                continue
            outcome = self._on_add_ack(iid, inst, table, code)
            if outcome is not None:
                done.append((inst.key[0], inst.key[1], outcome))
            self._forget_if_done(iid, inst)

    def _on_add_ack(self, iid: int, inst: _Install, table: str, code: str) -> bool | None:
        inst.codes[table] = code
        self.counters[f"add_{table}_{code}"] += 1
        if code == "OK":
            inst.present.add(table)
            if inst.removed or inst.outcome is False:
                self._delete(iid, inst, table)   # the flow is gone, or its other entry failed
        if inst.outcome is not None or inst.removed:
            return None
        if code != "OK":
            # First failure: undo what is in (the other add's ack, if OK, is undone when it comes).
            inst.outcome = False
            for t in sorted(inst.present):
                self._delete(iid, inst, t)
            full = TABLE_FULL in inst.codes.values()
            self.counters["relayed_table_full" if full else "relayed_install_failed"] += 1
            self.counters["installs_failed"] += 1
            return False
        if len(inst.codes) == len(TABLES):
            inst.outcome = True
            self.counters["installs_ok"] += 1
            self.latencies_ms.append((self.clock() - inst.started) * 1000)
            return True
        return None

    def _forget_if_done(self, iid: int, inst: _Install) -> None:
        acked = len(inst.codes) == len(TABLES)
        if acked and not inst.present and (inst.removed or inst.outcome is False):
            self._installs.pop(iid, None)
            if self._by_key.get(inst.key) == iid and inst.removed:
                self._by_key.pop(inst.key, None)

    def pending(self) -> int:
        """Installs whose adds are not all acknowledged yet."""
        return sum(1 for i in self._installs.values() if len(i.codes) < len(TABLES))

    def installed(self) -> int:
        """Connections with both entries in the switch (as far as the acks tell)."""
        return sum(1 for i in self._installs.values() if i.present == set(TABLES))

    def entries(self) -> dict[str, int]:
        """Entries currently in the switch per table (acked OK and not deleted)."""
        out = dict.fromkeys(TABLES, 0)
        for i in self._installs.values():
            for t in i.present:
                out[t] += 1
        return out

    # ----------------------------------------------------------------- idle (direct counters)

    def set_activity(self, activity: dict[Key, float]) -> None:
        """From the counter reader: client endpoint -> when its entries last counted a packet."""
        with self._activity_lock:
            self._activity = activity

    def last_active(self, flow: Flow) -> float | None:
        with self._activity_lock:
            return self._activity.get(flow.key)

    def stats(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None
        return {"counters": dict(self.counters), "installs_pending": self.pending(),
                "connections_installed": self.installed(), "entries": self.entries(),
                "install_latency_ms": {"n": len(lat), "p50": pct(0.50), "p99": pct(0.99),
                                       "max": round(lat[-1], 3) if lat else None}}
