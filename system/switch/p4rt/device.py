"""The device behind the P4Runtime server: the emulated switch, its pipeline and the profile.

`Device` owns the `EmulatedSwitch` (engineer C's target: BPF programs attached to the switch's ports)
and the `PipelineTables` facade of the loaded pipeline. It verifies a ForwardingPipelineConfig
(package parses; P4Info ids/names equal the pipeline's own P4Info; every table of the pipeline's spec
is in the P4Info), commits it (unloading the previous pipeline first), applies decoded table updates
with the profile's capacities and insertion model (the time spent applying counts into the model's
time for the Write, insertion.py; `pacing_overruns` counts Writes where it was longer), reads entries
and counters, and keeps the server's own counters (`stats()`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from system.switch.p4rt import compat, wire
from system.switch.p4rt.codec import (
    ActionInfo,
    DecodedEntry,
    Key,
    P4InfoIndex,
    TableInfo,
    decode_default_entry,
    decode_entry,
    encode_entry,
)
from system.switch.p4rt.errors import P4RTError
from system.switch.p4rt.insertion import InsertionPacer
from system.switch.profiles import SwitchProfile

log = logging.getLogger(__name__)
Update = p4runtime_pb2.Update
_TYPE_NAMES = {v: k for k, v in Update.Type.items()}


@dataclass
class Prepared:
    """A verified pipeline config, ready to commit."""

    config: p4runtime_pb2.ForwardingPipelineConfig
    index: P4InfoIndex
    pipeline: str
    spec: Any


@dataclass
class Loaded:
    prepared: Prepared
    tables: Any                              # system.switch.tables.PipelineTables
    capacity: dict[str, int]                 # P4 short name -> effective capacity
    occupancy: dict[str, int]                # P4 short name -> entries
    loaded_at: float = field(default_factory=time.time)
    bindings: dict[int, Any] = field(default_factory=dict)   # table id -> compat.Binding

    def binding(self, table: Any) -> Any:
        b = self.bindings.get(table.id)
        if b is None:
            b = self.bindings[table.id] = compat.Binding(self.prepared.spec, table)
        return b


@dataclass
class Stats:
    write_rpcs: int = 0
    updates: Counter = field(default_factory=Counter)          # by type INSERT/MODIFY/DELETE
    entries_written: int = 0                                    # successful updates
    rejected: Counter = field(default_factory=Counter)         # by canonical code name
    pacing_wait_s: float = 0.0
    apply_s: float = 0.0                 # the emulated target's own time applying updates
    overruns: int = 0                    # paced Writes whose apply took longer than the model's time
    pipeline_commits: int = 0


class Device:
    def __init__(self, netns: str | None, ports: dict[int, str], pin_dir: Path, profile: SwitchProfile,
                 device_id: int = 1) -> None:
        self.device_id = device_id
        self.netns = netns
        self.ports = dict(ports)
        self.pin_dir = Path(pin_dir)
        self.profile = profile
        self.pacer = InsertionPacer(profile.insertion)
        self._switch: Any = None                # the EmulatedSwitch, created at the first commit
        self._write_lock = threading.Lock()     # serializes writes (pacing happens under it)
        self._lock = threading.RLock()          # pipeline state
        self._readers = 0                       # table reads in progress outside _lock (see _snapshot)
        self._no_readers = threading.Condition(self._lock)
        self.loaded: Loaded | None = None
        self.saved: Prepared | None = None      # VERIFY_AND_SAVE
        self.st = Stats()
        self.started = time.time()

    @property
    def switch(self) -> Any:
        if self._switch is None:
            self._switch = compat.make_switch(self.netns, self.ports, self.pin_dir)
        return self._switch

    # -- pipeline ----------------------------------------------------------------------------

    def verify(self, config: p4runtime_pb2.ForwardingPipelineConfig) -> Prepared:
        if not config.p4_device_config:
            raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, "p4_device_config is empty: it must be the "
                            "emulated target's pipeline package (system.switch.package.build_package)")
        try:
            package = compat.parse_package(config.p4_device_config)
        except ValueError as e:
            raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"p4_device_config: {e}") from None
        pipeline = compat.package_pipeline(package)
        try:
            index = P4InfoIndex(config.p4info)
        except ValueError as e:
            raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"p4info: {e}") from None
        try:
            reference = compat.load_p4info(pipeline)
        except (OSError, ValueError, KeyError) as e:
            raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT,
                            f"no P4Info for pipeline {pipeline!r} on this target: {e}") from None
        diff = p4info_difference(config.p4info, reference)
        if diff:
            raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT,
                            f"p4info does not match the package's pipeline {pipeline!r}: {diff}")
        spec = compat.package_spec(package)
        spec_names = {compat.table_full_name(t) for t in compat.spec_tables(spec)}
        for t in index.tables.values():
            if t.name not in spec_names:
                raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"p4info table {t.name} is not a table "
                                f"of the package's pipeline {pipeline!r}")
        for t in compat.spec_tables(spec):
            try:
                index.table_by_name(compat.table_full_name(t))
            except KeyError:
                raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"p4info has no table "
                                f"{compat.table_full_name(t)} of pipeline {pipeline!r}") from None
        return Prepared(config=config, index=index, pipeline=pipeline, spec=spec)

    def commit(self, prepared: Prepared) -> None:
        with self._write_lock, self._lock:
            self._unload_locked()
            try:
                tables = self.switch.load(prepared.config.p4_device_config)
            except Exception as e:
                log.exception("loading pipeline %s failed", prepared.pipeline)
                try:
                    self.switch.unload()
                except Exception:
                    log.exception("cleanup after a failed load failed")
                raise P4RTError(grpc.StatusCode.INTERNAL,
                                f"loading pipeline {prepared.pipeline!r} failed: {e}") from None
            capacity, occupancy = {}, {}
            for t in compat.spec_tables(prepared.spec):
                name = compat.table_name(t)
                capacity[name] = self.profile.capacity(name, compat.table_size(t))
                occupancy[name] = tables.count(name)
            self.loaded = Loaded(prepared, tables, capacity, occupancy)
            self.st.pipeline_commits += 1
            log.info("pipeline %s committed (capacities %s)", prepared.pipeline, capacity)

    def commit_saved(self) -> None:
        if self.saved is None:
            raise P4RTError(grpc.StatusCode.FAILED_PRECONDITION,
                            "COMMIT without a config saved by VERIFY_AND_SAVE")
        prepared, self.saved = self.saved, None
        self.commit(prepared)

    def unload(self) -> None:
        with self._write_lock, self._lock:
            self._unload_locked()

    def _unload_locked(self) -> None:
        while self._readers:                     # a Read still uses the maps: let it finish
            self._no_readers.wait()
        if self.loaded is not None:
            self.loaded.tables.close()
        if self._switch is not None and (self.loaded is not None or self._switch.loaded):
            self._switch.unload()
        self.loaded = None

    def config(self) -> p4runtime_pb2.ForwardingPipelineConfig | None:
        with self._lock:
            return self.loaded.prepared.config if self.loaded else None

    def _require(self) -> Loaded:
        if self.loaded is None:
            raise P4RTError(grpc.StatusCode.FAILED_PRECONDITION,
                            "no forwarding pipeline config: call SetForwardingPipelineConfig first")
        return self.loaded

    # -- writes ------------------------------------------------------------------------------

    def write(self, updates: list[Any]) -> list[P4RTError | None]:
        """Applies the updates (protobuf Updates or wire.UpdateViews) in order (CONTINUE_ON_ERROR);
        one result per update, None if OK."""
        with self._write_lock:
            with self._lock:
                loaded = self._require()
            n_table = sum(1 for u in updates if u.entity.WhichOneof("entity") == "table_entry")
            start = self.pacer.now()
            budget = self.pacer.delay_for(n_table)        # the model's time for this Write
            results: list[P4RTError | None] = []
            with self._lock:
                if self.loaded is not loaded:
                    raise P4RTError(grpc.StatusCode.ABORTED, "the pipeline changed during the write")
                for u in updates:
                    try:
                        self._apply(loaded, u)
                        results.append(None)
                    except P4RTError as e:
                        results.append(e)
            applied = self.pacer.now() - start
            waited = self.pacer.finish(start + budget)   # the rest of the modelled time
            st = self.st
            st.write_rpcs += 1
            st.pacing_wait_s += waited
            st.apply_s += applied
            if budget > 0 and applied > budget:
                st.overruns += 1
            for u, r in zip(updates, results, strict=True):
                st.updates[_TYPE_NAMES.get(u.type, str(u.type))] += 1
                if r is None:
                    st.entries_written += 1
                else:
                    st.rejected[r.code.name] += 1
            return results

    def _apply(self, loaded: Loaded, u: Any) -> None:
        kind = u.entity.WhichOneof("entity")
        if kind != "table_entry":
            raise P4RTError(grpc.StatusCode.UNIMPLEMENTED, f"writing {kind} is not supported by this target")
        if u.type not in (Update.INSERT, Update.MODIFY, Update.DELETE):
            raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"update type {u.type} is not "
                            "INSERT, MODIFY or DELETE")
        if u.entity.table_entry.is_default_action:
            self._apply_default(loaded, u)
            return
        d = decode_entry(loaded.prepared.index, u.entity.table_entry, with_action=u.type != Update.DELETE)
        bind = loaded.binding(d.table)
        name = bind.table
        key = bind.key(d.key)
        try:
            if u.type == Update.INSERT:
                if loaded.occupancy[name] >= loaded.capacity[name]:
                    raise P4RTError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"table {name} is full: {loaded.capacity[name]} entries (profile "
                                    f"{self.profile.name})")
                loaded.tables.insert(name, key, bind.action(d.action), bind.params(d.action, d.params))
                loaded.occupancy[name] += 1
            elif u.type == Update.MODIFY:
                loaded.tables.modify(name, key, bind.action(d.action), bind.params(d.action, d.params))
            else:
                loaded.tables.delete(name, key)
                loaded.occupancy[name] -= 1
        except compat.TableError as e:
            raise compat.table_error(e) from None

    def _apply_default(self, loaded: Loaded, u: Any) -> None:
        """MODIFY of a table's default entry (P4Runtime 1.4, 9.1.3): sets the default action of a
        table whose default is not const (syn_cookie's secret); without an action it resets the
        default to the declared one with zero parameters. INSERT/DELETE: INVALID_ARGUMENT."""
        entry = u.entity.table_entry
        if u.type != Update.MODIFY:
            raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"{Update.Type.Name(u.type)} of a default "
                            "entry: the default entry can only be modified")
        reset = entry.action.WhichOneof("type") is None
        d = decode_default_entry(loaded.prepared.index, entry, with_action=not reset)
        if reset and d.table.const_default_action_id:
            raise P4RTError(grpc.StatusCode.PERMISSION_DENIED,
                            f"table {d.table.alias}: the default action is const in this pipeline")
        bind = compat.Binding(loaded.prepared.spec, d.table)
        try:
            if reset:
                act = bind.spec_table.action(bind.spec_table.default_action)
                loaded.tables.set_default(bind.table, act.name, {p.name: 0 for p in act.params})
            else:
                loaded.tables.set_default(bind.table, bind.action(d.action), bind.params(d.action, d.params))
        except compat.TableError as e:
            raise compat.table_error(e) from None

    # -- reads -------------------------------------------------------------------------------

    def read_default_entry(self, req: p4runtime_pb2.TableEntry) -> p4runtime_pb2.TableEntry:
        """The default entry of table `req.table_id` (is_default_action set in the reply)."""
        with self._lock:
            loaded = self._require()
            idx = loaded.prepared.index
            if req.table_id == 0:
                raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT,
                                "reading a default entry needs a table_id")
            d = decode_default_entry(idx, req, with_action=False)
            bind = compat.Binding(loaded.prepared.spec, d.table)
            try:
                e = loaded.tables.get_default(bind.table)
            except compat.TableError as err:
                raise compat.table_error(err) from None
            action = bind.action_info(idx, e.action)
            msg = encode_entry(d.table, {}, action, bind.p4_params(action, e.params))
            msg.is_default_action = True
            return msg

    def _snapshot(self, req: p4runtime_pb2.TableEntry, with_counters: bool
                  ) -> list[tuple[TableInfo, ActionInfo, Key, dict[str, int], tuple[int, int] | None]]:
        """The entries matching `req` as plain data: (table, action, P4 key, P4 params, (packets,
        bytes) or None). The BPF maps are read without the pipeline lock (the kernel serializes map
        operations; a pipeline change waits for the reads in progress), and encoding happens after,
        so a large Read (the slow path's counter reader) does not stall the Writes. An entry deleted
        while the Read runs is left out, as if the Read had come after the delete."""
        with self._lock:
            loaded = self._require()
            self._readers += 1
        try:
            idx = loaded.prepared.index
            if req.table_id == 0:
                if len(req.match):
                    raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, "a match needs a table_id")
                tables = list(idx.tables.values())
            else:
                tables = [idx.table(req.table_id)]
            out = []
            for t in tables:
                bind = loaded.binding(t)
                try:
                    if len(req.match):
                        d: DecodedEntry = decode_entry(idx, req, with_action=False)
                        e = loaded.tables.get(bind.table, bind.key(d.key))
                        entries = [e] if e is not None else []
                    else:
                        entries = loaded.tables.read(bind.table)
                    counted = with_counters and bind.spec_table.direct_counter is not None
                    for e in entries:
                        counts = None
                        if counted:
                            try:
                                c = loaded.tables.entry_counters(bind.table, e.key)
                            except compat.TableError as err:
                                if getattr(err, "code", "") == "NOT_FOUND":
                                    continue            # deleted since the table was read
                                raise
                            counts = (c["packets"], c["bytes"])
                        action = bind.action_info(idx, e.action)
                        out.append((t, action, bind.p4_key(e.key), bind.p4_params(action, e.params), counts))
                except compat.TableError as err:
                    raise compat.table_error(err) from None
            return out
        finally:
            with self._lock:
                self._readers -= 1
                self._no_readers.notify_all()

    def read_table_entries(self, req: p4runtime_pb2.TableEntry,
                           with_counters: bool | None = None) -> list[p4runtime_pb2.TableEntry]:
        """Entries matching `req`: every table (table_id 0), one table (no match) or one entry.
        Direct counter data is included when the request sets counter_data (or `with_counters`)."""
        if req.is_default_action:
            return [self.read_default_entry(req)]
        if with_counters is None:
            with_counters = req.HasField("counter_data")
        out: list[p4runtime_pb2.TableEntry] = []
        for t, action, key, params, counts in self._snapshot(req, with_counters):
            msg = encode_entry(t, key, action, params)
            if counts is not None:
                msg.counter_data.packet_count, msg.counter_data.byte_count = counts
            out.append(msg)
        return out

    def read_table_entities_wire(self, req: p4runtime_pb2.TableEntry) -> list[bytes]:
        """As `read_table_entries`, each entry as a serialized Entity (wire.encode_read_entity)."""
        if req.is_default_action:
            return [wire.entity_of_entry(self.read_default_entry(req).SerializeToString())]
        return [wire.encode_read_entity(t, key, action, params, counts)
                for t, action, key, params, counts in self._snapshot(req, req.HasField("counter_data"))]

    def _default_counter(self, req: p4runtime_pb2.TableEntry) -> p4runtime_pb2.DirectCounterEntry:
        entry = self.read_default_entry(req)          # checks table_id, the pipeline and the table
        with self._lock:
            loaded = self._require()
            bind = loaded.binding(loaded.prepared.index.table(req.table_id))
            if bind.spec_table.direct_counter is None:
                raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"table {req.table_id:#x} has no direct counter")
            try:
                c = loaded.tables.counters(bind.table)
            except compat.TableError as err:
                raise compat.table_error(err) from None
        d = p4runtime_pb2.DirectCounterEntry()
        d.table_entry.table_id, d.table_entry.is_default_action = entry.table_id, True
        d.data.packet_count, d.data.byte_count = c["miss_packets"], c["miss_bytes"]
        return d

    def read_direct_counters(self, req: p4runtime_pb2.DirectCounterEntry
                             ) -> list[p4runtime_pb2.DirectCounterEntry]:
        """Direct counters of the entries matching req.table_entry (table_id 0: every table that has one).
        With `is_default_action` (and a table_id): the default entry's counter, i.e. the table's misses
        (every default action of the project's P4 programs counts the table's direct counter)."""
        if req.table_entry.is_default_action:
            return [self._default_counter(req.table_entry)]
        entries = self.read_table_entries(req.table_entry, with_counters=True)
        out = []
        for e in entries:
            if not e.HasField("counter_data"):
                if req.table_entry.table_id:
                    raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"table {e.table_id:#x} has no direct counter")
                continue
            d = p4runtime_pb2.DirectCounterEntry(data=e.counter_data)
            e.ClearField("counter_data")
            e.ClearField("action")
            d.table_entry.CopyFrom(e)
            out.append(d)
        return out

    def read_counter_entries(self, req: p4runtime_pb2.CounterEntry) -> list[p4runtime_pb2.CounterEntry]:
        with self._lock:
            loaded = self._require()
            return compat.read_counters(loaded.prepared.index, loaded.prepared.spec, loaded.tables, req)

    # -- stats -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            loaded = self.loaded
            st = self.st
            return {
                "device_id": self.device_id,
                "started": self.started,
                "time": time.time(),
                "profile": self.profile.to_dict(),
                "pipeline": loaded.prepared.pipeline if loaded else None,
                "pipeline_cookie": loaded.prepared.config.cookie.cookie if loaded else None,
                "pipeline_commits": st.pipeline_commits,
                "write_rpcs": st.write_rpcs,
                "updates": dict(st.updates),
                "entries_written": st.entries_written,
                "rejected": dict(st.rejected),
                "pacing_wait_s": round(st.pacing_wait_s, 6),
                "apply_s": round(st.apply_s, 6),
                "pacing_overruns": st.overruns,
                "tables": {name: {"entries": loaded.occupancy[name], "capacity": loaded.capacity[name]}
                           for name in loaded.capacity} if loaded else {},
            }


def p4info_difference(given: p4info_pb2.P4Info, reference: p4info_pb2.P4Info) -> str:
    """'' when `given` declares the same tables, actions, fields, params and counters (ids, names,
    widths, match kinds) as `reference`; otherwise a short description of the first difference."""
    def table_sig(p: p4info_pb2.P4Info) -> dict[int, tuple]:
        return {t.preamble.id: (t.preamble.name,
                                tuple((f.id, f.name, f.bitwidth, f.match_type) for f in t.match_fields),
                                tuple(sorted(a.id for a in t.action_refs)), t.const_default_action_id)
                for t in p.tables}

    def action_sig(p: p4info_pb2.P4Info) -> dict[int, tuple]:
        return {a.preamble.id: (a.preamble.name, tuple((q.id, q.name, q.bitwidth) for q in a.params))
                for a in p.actions}

    def counter_sig(p: p4info_pb2.P4Info) -> dict[int, tuple]:
        sig = {c.preamble.id: (c.preamble.name, c.size, c.spec.unit) for c in p.counters}
        sig.update({c.preamble.id: (c.preamble.name, c.direct_table_id, c.spec.unit)
                    for c in p.direct_counters})
        return sig

    for what, fn in (("tables", table_sig), ("actions", action_sig), ("counters", counter_sig)):
        g, r = fn(given), fn(reference)
        if g == r:
            continue
        for oid in sorted(set(g) | set(r)):
            if oid not in g:
                return f"{what}: {r[oid][0]} (id {oid:#x}) is missing"
            if oid not in r:
                return f"{what}: {g[oid][0]} (id {oid:#x}) is not in the pipeline"
            if g[oid] != r[oid]:
                return f"{what}: {r[oid][0]} (id {oid:#x}) differs"
    return ""


def config_hash(config: p4runtime_pb2.ForwardingPipelineConfig) -> str:
    return hashlib.sha256(config.p4_device_config).hexdigest()[:16]
