"""The switch control plane: pipeline, static tables, and front-ends' entry requests in batches.

One worker thread owns the switch connection. It (re)connects as primary, sets the pipeline when
the switch's cookie differs from ours (fresh switch, restart, other pipeline), installs the static
entries and the offload state it has acknowledged so far, then serves queued requests in batches.
Batching is adaptive: one Write is in flight at a time; a request that finds the worker idle is
sent at once, alone, and whatever queues while a Write is in flight goes into the next one (up to
`max_batch` updates). So a lone request waits for no timer, and under load the batches grow by
themselves as far as the switch's Write time makes them. `window_s` > 0 (not the default) adds a
fixed wait after a batch's first request for more to come. A batch holds at most one update per
(table, key) (a later request on a key waits for the next batch, so per-key order is the arrival
order; P4Runtime lets a server reorder updates within one batch), and is sent as one Write, encoded
straight to protobuf wire bytes (switch.py). Each request is acknowledged with its update's
P4Runtime code, the acks of one Write to one front-end in one send. When the switch goes away, the
batch in flight is kept and retried after the reconnect; requests older than `request_timeout_s`
are acknowledged UNAVAILABLE instead.

Static entries of a keyless table (switch_only's `slow_path`: the CPU port) are default actions,
written as MODIFYs of the table's default entry at every (re)connect.

SYN cookie key and slot (pipelines with a `syn_cookie` table: miresga and switch_only; format in
system/switch/README.md, "The SYN cookie"): a 64-bit key is drawn from the `secrets` CSPRNG at start
(never 0) and set with slot FIRST_SLOT as syn_cookie's default action set_cookie_secret(key, slot)
(a P4Runtime MODIFY of the default entry) at every (re)connect; until that first write the switch
answers no SYN. Every `cookie_rotation_s` while connected the slot advances by one and a new key is
drawn, the old one kept as `previous` (front-ends and the switch-only slow path accept the current
and the previous slot; protocol request `cookie_secrets`), and the new pair set.
The new secret is published to front-ends before the switch uses it, so a front-end never sees a
cookie made with a secret it cannot know about (it may fetch again when validation fails).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from system.controlplane.activity import ACTIVITY_TABLES, Activity
from system.controlplane.switch import (
    EntryCodec,
    SwitchConnection,
    SwitchRefused,
    SwitchUnavailable,
    WireUpdate,
)
from system.credentials import Credentials

log = logging.getLogger(__name__)
Reply = Callable[[dict[str, Any]], None]


@dataclass(slots=True)
class Op:
    rid: int
    op: str                           # add | modify | delete
    update: WireUpdate
    ident: tuple[int, bytes]          # (table id, match) for ordering and state
    table: str                        # table alias, for stats
    reply: Reply
    received: float = field(default_factory=time.monotonic)


@dataclass
class ControllerConfig:
    switch: str                                   # HOST:PORT of the P4Runtime server
    p4info: p4info_pb2.P4Info
    device_config: bytes                          # the target's pipeline package
    static: list[tuple[str, dict[str, Any], str, dict[str, Any]]]   # (table, key, action, params)
    device_id: int = 1
    election_id: tuple[int, int] = (0, 1)
    window_s: float = 0.0                         # 0: adaptive batching only (see the module doc)
    max_batch: int = 256
    request_timeout_s: float = 5.0
    reconnect_s: float = 0.5
    latency_samples: int = 20000
    cookie_rotation_s: float = 60.0
    cookie_table: str = "syn_cookie"
    cookie_action: str = "set_cookie_secret"
    cookie_params: tuple[str, str] = ("key", "slot")   # the action's key and slot parameters
    credentials: Credentials | None = None        # P4Runtime over TLS with this client certificate
    activity_interval_s: float = 1.0              # offload entries' counters read this often (0: never;
                                                  # activity.py, request `activity`)


FIRST_SLOT = 1
KEY_BITS = 64


class CookieSecrets:
    """The SYN cookie keys (system/switch/README.md, "The SYN cookie"): the current slot's key, the
    previous slot's (None before the first rotation), the slot number, the rotation time. Keys are
    64-bit draws of the `secrets` CSPRNG, never 0 (a zero key is "none written": the switch answers
    no SYN); every rotation advances the slot by one and draws a new key."""

    def __init__(self, rotation_s: float, draw: Callable[[], int] = lambda: secrets.randbits(KEY_BITS)) -> None:
        self.rotation_s = rotation_s
        self._draw = draw
        self._lock = threading.Lock()
        self.current = self._nonzero()
        self.previous: int | None = None
        self.slot = FIRST_SLOT
        self.rotated_at = time.time()
        self.due = time.monotonic() + rotation_s
        self.rotations = 0
        self.installs = 0

    def _nonzero(self) -> int:
        key = self._draw()
        while key == 0:
            key = self._draw()
        return key

    def rotate(self) -> int:
        """Advance the slot and draw its key; the new key."""
        with self._lock:
            new = self._nonzero()
            while new == self.current:
                new = self._nonzero()
            self.current, self.previous = new, self.current
            self.slot += 1
            self.rotated_at = time.time()
            self.due = time.monotonic() + self.rotation_s
            self.rotations += 1
            return new

    def snapshot(self) -> dict[str, Any]:
        """The `cookie_secrets` reply's fields (docs/controlplane-protocol.md)."""
        with self._lock:
            rot = self.rotation_s
            return {"current": self.current, "previous": self.previous, "slot": self.slot,
                    "rotated_at": self.rotated_at,
                    "rotation_s": int(rot) if float(rot).is_integer() else rot}


class Stats:
    def __init__(self, samples: int) -> None:
        self.lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.acks: collections.Counter[str] = collections.Counter()
        self.errors = 0
        self.batches = 0
        self.batched_updates = 0
        self.reconnects = 0
        self.pipeline_sets = 0
        self.static_installed = 0
        self.request_latency: collections.deque[float] = collections.deque(maxlen=samples)
        self.queue_latency: collections.deque[float] = collections.deque(maxlen=samples)
        self.write_latency: collections.deque[float] = collections.deque(maxlen=samples)
        self.multi_update_writes = 0
        self.largest_batch = 0
        self.recent: collections.deque[tuple[float, str]] = collections.deque(maxlen=1_000_000)
        self.sessions: collections.Counter[str] = collections.Counter()      # authenticated, by role
        self.refused: collections.Counter[str] = collections.Counter()       # "role op table" -> n
        self.handshakes_failed = 0
        # Direct counters of the entries the control plane deleted, read just before each delete
        # (a deleted entry's counter goes with it): alias -> {"entries", "packets", "bytes"}.
        self.retired: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.retired_read_errors = 0
        # The same, one record per deleted entry: (sequence number, alias, entry key hex, packets, bytes);
        # a `stats` request with `retired_after` gets those after a sequence number (harness/p4rtstats.py).
        self.retired_seq = 0
        self.retired_log: collections.deque[tuple[int, str, str, int, int]] = collections.deque(maxlen=100_000)

    def snapshot(self, retired_after: int | None = None) -> dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            extra: dict[str, Any] = {}
            if retired_after is not None:
                extra["retired_entries"] = [list(r) for r in self.retired_log if r[0] > retired_after]
            while self.recent and self.recent[0][0] < now - 1.0:
                self.recent.popleft()
            last = collections.Counter(kind for _, kind in self.recent)
            return {
                "requests": dict(self.requests), "acks": dict(self.acks), "errors": self.errors,
                "batches": self.batches,
                "mean_batch": round(self.batched_updates / self.batches, 2) if self.batches else 0.0,
                "multi_update_writes": self.multi_update_writes, "largest_batch": self.largest_batch,
                "reconnects": self.reconnects, "pipeline_sets": self.pipeline_sets,
                "static_installed": self.static_installed,
                "inserts_per_s": last["add"], "deletes_per_s": last["delete"],
                "request_latency_us": _percentiles(self.request_latency),
                "queue_latency_us": _percentiles(self.queue_latency),
                "write_latency_us": _percentiles(self.write_latency),
                "auth": {"sessions": dict(self.sessions), "handshakes_failed": self.handshakes_failed,
                         "refused": dict(self.refused), "refused_total": sum(self.refused.values())},
                "retired_counters": {t: dict(c) for t, c in self.retired.items()},
                "retired_read_errors": self.retired_read_errors, "retired_seq": self.retired_seq, **extra,
            }


def _ack_msg(rid: int, code: str, message: str, latency: float) -> dict[str, Any]:
    msg: dict[str, Any] = {"v": 1, "type": "ack", "id": rid, "code": code, "latency_us": round(latency * 1e6, 1)}
    if message:
        msg["message"] = message
    return msg


def _percentiles(samples: collections.deque[float]) -> dict[str, float | int]:
    if not samples:
        return {"n": 0}
    s = sorted(samples)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))] * 1e6, 1)
    return {"n": len(s), "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": round(s[-1] * 1e6, 1)}


class Controller:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        self.codec = EntryCodec(cfg.p4info)
        self.cookie = int.from_bytes(hashlib.sha256(cfg.p4info.SerializeToString(deterministic=True)
                                                    + cfg.device_config).digest()[:8], "big") >> 1
        self.static_updates = [self._static_update(t, k, a, p) for t, k, a, p in cfg.static]
        self.conn = SwitchConnection(cfg.switch, cfg.device_id, cfg.election_id, credentials=cfg.credentials)
        self.queue: queue.Queue[Op | None] = queue.Queue()
        self.stats = Stats(cfg.latency_samples)
        self.state: dict[tuple[int, bytes], p4runtime_pb2.Update] = {}   # acknowledged offload entries
        self._counted_tables = frozenset(c.direct_table_id for c in cfg.p4info.direct_counters)
        self.secrets: CookieSecrets | None = None
        if self.codec.has_table(cfg.cookie_table):
            if cfg.cookie_rotation_s <= 0:
                raise ValueError("cookie_rotation_s must be > 0")
            self.secrets = CookieSecrets(cfg.cookie_rotation_s)
            self._cookie_update(self.secrets.current, self.secrets.slot)   # names checked now
        # The direct counters of the offload entries, read every activity_interval_s on a channel of
        # their own, answer front-ends' `activity` requests (activity.py).
        counted = [t for t in ACTIVITY_TABLES if self.codec.has_table(t)
                   and self.codec.index.table_by_name(t).id in self._counted_tables]
        self.activity: Activity | None = None
        if counted and cfg.activity_interval_s > 0:
            self.activity = Activity(cfg.switch, cfg.activity_interval_s, cfg.device_id, tuple(counted),
                                     credentials=cfg.credentials)
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._carry: collections.deque[Op] = collections.deque()
        self._thread = threading.Thread(target=self._run, name="controlplane-switch", daemon=True)

    # -- API for the front-end server -----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if self.activity is not None:
            self.activity.start()

    def stop(self) -> None:
        self._stop.set()
        self.queue.put(None)
        self._thread.join()
        if self.activity is not None:
            self.activity.close()
        self.conn.close()

    def submit(self, rid: int, op: str, table: str, key: dict[str, Any], action: str | None,
               params: dict[str, Any], reply: Reply) -> None:
        """Queues an entry request; `reply` gets exactly one ack (possibly at once, on a bad request)."""
        with self.stats.lock:
            self.stats.requests[op] += 1
        received = time.monotonic()
        try:
            u = self.codec.wire_update(op, table, key, action, params)
        except ValueError as e:
            self._ack_now(rid, reply, "INVALID_ARGUMENT", str(e), received)
            return
        alias = self.codec.index.table(u.ident[0]).alias
        self.queue.put(Op(rid, op, u, u.ident, alias, reply, received))

    def refuse(self, rid: int, reply: Reply, name: str, role: str, op: str, table: str) -> None:
        """Acks an entry request PERMISSION_DENIED at once (not queued): `role` may not do it."""
        with self.stats.lock:
            self.stats.requests[op] += 1
            self.stats.refused[f"{role} {op} {table}"] += 1
        self._ack_now(rid, reply, "PERMISSION_DENIED",
                      f"identity {name} (role {role}) may not {op} entries of table {table}", time.monotonic())

    def count_auth(self, role: str | None = None, refused: str | None = None, handshake_failed: bool = False) -> None:
        """Counts an authenticated session (`role`), a refused request (`refused`: "role what") or a
        failed TLS handshake."""
        with self.stats.lock:
            if role is not None:
                self.stats.sessions[role] += 1
            if refused is not None:
                self.stats.refused[refused] += 1
            if handshake_failed:
                self.stats.handshakes_failed += 1

    def occupancy(self) -> dict[str, int]:
        occ: collections.Counter[str] = collections.Counter()
        for u in self.static_updates:
            if not u.entity.table_entry.is_default_action:
                occ[self.codec.index.table(u.entity.table_entry.table_id).alias] += 1
        for ident in list(self.state):
            occ[self.codec.index.table(ident[0]).alias] += 1
        return dict(occ)

    def cookie_secrets(self) -> dict[str, Any] | None:
        """Current/previous secret, rotation time and period; None when the pipeline has no cookie."""
        return self.secrets.snapshot() if self.secrets else None

    def snapshot(self, retired_after: int | None = None) -> dict[str, Any]:
        snap = self.stats.snapshot(retired_after)
        if self.secrets:
            snap["cookie"] = {"rotations": self.secrets.rotations, "installs": self.secrets.installs,
                              "rotated_at": self.secrets.rotated_at, "rotation_s": self.secrets.rotation_s}
        if self.activity is not None:
            snap["activity"] = self.activity.snapshot()
        snap.update({"switch": self.cfg.switch, "connected": self.connected.is_set(),
                     "occupancy": self.occupancy(), "queued": self.queue.qsize() + len(self._carry),
                     "window_s": self.cfg.window_s, "max_batch": self.cfg.max_batch})
        return snap

    # -- worker ----------------------------------------------------------------------------------

    def _run(self) -> None:
        pending: list[Op] = []
        while not self._stop.is_set():
            if not self.connected.is_set() or not self.conn.alive:
                self.connected.clear()
                if not self._connect():
                    self._expire(pending)
                    self._stop.wait(self.cfg.reconnect_s)
                    continue
            if self.secrets is not None and time.monotonic() >= self.secrets.due:
                try:
                    self.secrets.rotate()
                    self._install_secret()
                    log.info("cookie secret rotated")
                except SwitchUnavailable as e:   # installed again at the reconnect
                    log.warning("switch %s unavailable while rotating the cookie secret: %s", self.cfg.switch, e)
                    self.connected.clear()
                    continue
                except SwitchRefused as e:
                    log.error("switch refused the cookie secret: %s", e)
                    self.connected.clear()
                    continue
            if not pending:
                pending = self._gather()
                if not pending:
                    continue
            try:
                self._send(pending)
                pending = []
            except SwitchUnavailable as e:
                log.warning("switch %s unavailable during a write: %s", self.cfg.switch, e)
                self.connected.clear()
            except SwitchRefused as e:
                log.error("switch refused a batch: %s", e)
                for op in pending:
                    self._ack(op, e.code, e.message)
                pending = []
                self.connected.clear()  # e.g. PERMISSION_DENIED: someone else is primary; re-arbitrate
        for op in [*pending, *self._carry, *self._drain()]:
            self._ack(op, "UNAVAILABLE", "control plane stopping")

    def _drain(self) -> list[Op]:
        out = []
        while True:
            try:
                op = self.queue.get_nowait()
            except queue.Empty:
                return out
            if op is not None:
                out.append(op)

    def _gather(self) -> list[Op]:
        """The next batch: at most max_batch ops, at most one per key, FIFO per key."""
        batch: list[Op] = []
        keys: set[tuple[int, bytes]] = set()
        carry: collections.deque[Op] = collections.deque()
        deferred: set[tuple[int, bytes]] = set()

        def take(op: Op) -> None:
            if op.ident in keys or op.ident in deferred:
                carry.append(op)
                deferred.add(op.ident)
            else:
                batch.append(op)
                keys.add(op.ident)

        while self._carry and len(batch) < self.cfg.max_batch:
            take(self._carry.popleft())
        if not batch:
            try:
                op = self.queue.get(timeout=0.2)
            except queue.Empty:
                self._carry = carry + self._carry
                return []
            if op is None:
                self._carry = carry + self._carry
                return []
            take(op)
        deadline = time.monotonic() + self.cfg.window_s
        while len(batch) < self.cfg.max_batch:
            left = deadline - time.monotonic()
            try:
                op = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if op is None:
                break
            take(op)
        self._carry = carry + self._carry
        return batch

    def _retiring_counts(self, ops: list[Op]) -> dict[int, tuple[int, int, bytes]]:
        """(packets, bytes) of the direct counter of each entry `ops` delete (index in `ops`), read
        in one Read RPC before the Write: the switch drops an entry's counter with the entry, and the
        harness's offloaded-bytes figure on a real switch is the live entries' counters plus these
        (harness/p4rtstats.py). A refused read is counted (`retired_read_errors`), never fatal."""
        wanted: dict[tuple[int, bytes], int] = {}
        entries = []
        for i, op in enumerate(ops):
            if op.op == "delete" and op.ident[0] in self._counted_tables:
                e = p4runtime_pb2.TableEntry.FromString(op.update.entry)
                wanted[self.codec.entry_key(e)] = i
                entries.append(e)
        if not entries:
            return {}
        try:
            got = self.conn.read_direct_counters(entries)
        except SwitchRefused as e:
            log.warning("reading the counters of entries being deleted: %s", e)
            with self.stats.lock:
                self.stats.retired_read_errors += 1
            return {}
        out = {}
        for d in got:
            i = wanted.get(self.codec.entry_key(d.table_entry))
            if i is not None:
                out[i] = (d.data.packet_count, d.data.byte_count, self.codec.entry_key(d.table_entry)[1])
        return out

    def _send(self, ops: list[Op]) -> None:
        retiring = self._retiring_counts(ops)
        t0 = time.monotonic()
        results = self.conn.write([op.update for op in ops])
        t1 = time.monotonic()
        with self.stats.lock:
            st = self.stats
            st.batches += 1
            st.batched_updates += len(ops)
            st.write_latency.append(t1 - t0)
            st.queue_latency.extend(t0 - op.received for op in ops)
            if len(ops) > 1:
                st.multi_update_writes += 1
            st.largest_batch = max(st.largest_batch, len(ops))
        for i, (op, r) in enumerate(zip(ops, results, strict=True)):
            if r.code == "OK":
                if op.op == "delete":
                    self.state.pop(op.ident, None)
                    if i in retiring:
                        with self.stats.lock:
                            c = self.stats.retired[op.table]
                            c["entries"] += 1
                            c["packets"] += retiring[i][0]
                            c["bytes"] += retiring[i][1]
                            self.stats.retired_seq += 1
                            self.stats.retired_log.append((self.stats.retired_seq, op.table, retiring[i][2].hex(),
                                                           retiring[i][0], retiring[i][1]))
                else:
                    self.state[op.ident] = op.update.with_type(p4runtime_pb2.Update.INSERT)
        self._ack_all([(op, r.code, r.message) for op, r in zip(ops, results, strict=True)])

    def _ack(self, op: Op, code: str, message: str) -> None:
        self._ack_all([(op, code, message)])

    def _ack_now(self, rid: int, reply: Reply, code: str, message: str, received: float,
                 kind: str = "") -> None:
        now = time.monotonic()
        self._count([(code, kind, received)], now)
        try:
            reply(_ack_msg(rid, code, message, now - received))
        except OSError:
            log.debug("front-end went away before its ack %d", rid)

    def _count(self, acks: list[tuple[str, str, float]], now: float) -> None:
        with self.stats.lock:
            st = self.stats
            for code, kind, received in acks:
                st.acks[code] += 1
                if code != "OK":
                    st.errors += 1
                else:
                    st.recent.append((now, kind))
                st.request_latency.append(now - received)

    def _ack_all(self, acks: list[tuple[Op, str, str]]) -> None:
        """Acks, counted; those to one front-end connection in one send when it can (`reply.many`)."""
        now = time.monotonic()
        self._count([(code, op.op, op.received) for op, code, _ in acks], now)
        groups: dict[Any, list[dict[str, Any]]] = {}
        for op, code, message in acks:
            groups.setdefault(op.reply, []).append(_ack_msg(op.rid, code, message, now - op.received))
        for reply, msgs in groups.items():
            try:
                many = getattr(reply, "many", None)
                if many is not None:
                    many(msgs)
                else:
                    for m in msgs:
                        reply(m)
            except OSError:
                log.debug("front-end went away before its acks %s", [m["id"] for m in msgs])

    def _expire(self, pending: list[Op]) -> None:
        limit = time.monotonic() - self.cfg.request_timeout_s
        for src in (pending, self._carry):
            keep = [op for op in src if op.received >= limit]
            for op in src:
                if op.received < limit:
                    self._ack(op, "UNAVAILABLE", f"switch {self.cfg.switch} unreachable for "
                              f"{self.cfg.request_timeout_s} s")
            src.clear()
            src.extend(keep)
        while True:  # queued requests age too
            try:
                op = self.queue.get_nowait()
            except queue.Empty:
                break
            if op is None:
                continue
            if op.received < limit:
                self._ack(op, "UNAVAILABLE", f"switch {self.cfg.switch} unreachable")
            else:
                self._carry.append(op)

    # -- (re)connect -----------------------------------------------------------------------------

    def _connect(self) -> bool:
        try:
            self.conn.connect()
            if self.conn.pipeline_cookie() != self.cookie:
                self.conn.set_pipeline(self.cfg.p4info, self.cfg.device_config, self.cookie)
                with self.stats.lock:
                    self.stats.pipeline_sets += 1
            self._install([*self.static_updates, *self.state.values()])
            if self.secrets is not None:
                self._install_secret()
        except (SwitchUnavailable, SwitchRefused) as e:
            log.warning("connecting to switch %s: %s", self.cfg.switch, e)
            self.conn.close()
            return False
        with self.stats.lock:
            self.stats.reconnects += 1
        self.connected.set()
        log.info("switch %s: primary, pipeline cookie %#x, %d static + %d offload entries installed",
                 self.cfg.switch, self.cookie, len(self.static_updates), len(self.state))
        return True

    def _static_update(self, table: str, key: dict[str, Any], action: str,
                       params: dict[str, Any]) -> p4runtime_pb2.Update:
        """An INSERT; for a keyless table (switch_only's slow_path) a MODIFY of its default entry."""
        try:
            keyless = not self.codec.index.table_by_name(table).fields
        except KeyError:
            keyless = False        # update() raises the ValueError that names the table
        if keyless and not key:
            return self.codec.default_update(table, action, params)
        return self.codec.update("add", table, key, action, params)

    def _cookie_update(self, key: int, slot: int) -> p4runtime_pb2.Update:
        c = self.cfg
        return self.codec.default_update(c.cookie_table, c.cookie_action,
                                         {c.cookie_params[0]: key, c.cookie_params[1]: slot})

    def _install_secret(self) -> None:
        """Sets syn_cookie's default action to the current key and slot (raises
        SwitchUnavailable/SwitchRefused)."""
        assert self.secrets is not None
        with self.secrets._lock:
            key, slot = self.secrets.current, self.secrets.slot
        (r,) = self.conn.write([self._cookie_update(key, slot)])
        if r.code != "OK":
            raise SwitchRefused(r.code, f"setting the cookie secret: {r.message}")
        assert self.secrets is not None
        with self.stats.lock:
            self.secrets.installs += 1

    def _install(self, updates: list[p4runtime_pb2.Update | WireUpdate]) -> None:
        """INSERTs `updates`; entries that exist already (the switch kept its state) are MODIFYed."""
        n = self.cfg.max_batch
        for i in range(0, len(updates), n):
            chunk = updates[i:i + n]
            results = self.conn.write(chunk)
            again: list[p4runtime_pb2.Update | WireUpdate] = []
            for u, r in zip(chunk, results, strict=True):
                if r.code == "ALREADY_EXISTS":
                    again.append(_as_modify(u))
                elif r.code != "OK":
                    raise SwitchRefused(r.code, f"installing {_describe(u)}: {r.message}")
            if again:
                for u, r in zip(again, self.conn.write(again), strict=True):
                    if r.code != "OK":
                        raise SwitchRefused(r.code, f"re-installing {_describe(u)}: {r.message}")
        with self.stats.lock:
            self.stats.static_installed = len(self.static_updates)


def _as_modify(u: p4runtime_pb2.Update | WireUpdate) -> p4runtime_pb2.Update | WireUpdate:
    if isinstance(u, WireUpdate):
        return u.with_type(p4runtime_pb2.Update.MODIFY)
    m = p4runtime_pb2.Update(type=p4runtime_pb2.Update.MODIFY)
    m.entity.CopyFrom(u.entity)
    return m


def _describe(u: p4runtime_pb2.Update | WireUpdate) -> str:
    return u.describe() if isinstance(u, WireUpdate) else str(u.entity.table_entry)
