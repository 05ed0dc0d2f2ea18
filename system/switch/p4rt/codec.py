"""P4Info-driven encoding: P4Runtime TableEntry messages <-> plain (table, key, action, params).

`P4InfoIndex` indexes a P4Info by id. `decode_entry` validates a TableEntry against it and returns a
`DecodedEntry` whose key maps each match field's P4Info name to an int (exact), (value, prefix_len)
(lpm) or (value, mask) (ternary); `encode_entry` builds a TableEntry back with canonical bytestrings
(P4Runtime 1.4 section 8.3: the shortest big-endian form, b"\\x00" for zero). Decoding accepts
canonical and zero-padded bytestrings, and refuses values wider than the field (INVALID_ARGUMENT).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from system.switch.p4rt.errors import P4RTError

Key = dict[str, int | tuple[int, int]]
MatchType = p4info_pb2.MatchField.MatchType


def bad(msg: str) -> P4RTError:
    return P4RTError(grpc.StatusCode.INVALID_ARGUMENT, msg)


@dataclass(frozen=True)
class FieldInfo:
    id: int
    name: str
    bitwidth: int
    kind: str  # exact | lpm | ternary


@dataclass(frozen=True)
class ParamInfo:
    id: int
    name: str
    bitwidth: int


@dataclass(frozen=True)
class ActionInfo:
    id: int
    name: str       # P4Info full name
    alias: str
    params: tuple[ParamInfo, ...]

    def param(self, pid: int) -> ParamInfo | None:
        return next((p for p in self.params if p.id == pid), None)


@dataclass(frozen=True)
class TableInfo:
    id: int
    name: str       # P4Info full name
    alias: str      # short name ("route")
    fields: tuple[FieldInfo, ...]
    action_ids: frozenset[int]          # actions allowed in entries (not DEFAULT_ONLY)
    size: int
    const_default_action_id: int
    direct_resource_ids: tuple[int, ...]
    default_action_ids: frozenset[int] = frozenset()   # actions allowed as default (not TABLE_ONLY)

    def field(self, fid: int) -> FieldInfo | None:
        return next((f for f in self.fields if f.id == fid), None)

    @property
    def needs_priority(self) -> bool:
        return any(f.kind == "ternary" for f in self.fields)


_KINDS = {MatchType.EXACT: "exact", MatchType.LPM: "lpm", MatchType.TERNARY: "ternary"}


class P4InfoIndex:
    def __init__(self, p4info: p4info_pb2.P4Info) -> None:
        self.p4info = p4info
        self.actions: dict[int, ActionInfo] = {}
        for a in p4info.actions:
            self.actions[a.preamble.id] = ActionInfo(
                a.preamble.id, a.preamble.name, a.preamble.alias or a.preamble.name.split(".")[-1],
                tuple(ParamInfo(p.id, p.name, p.bitwidth) for p in a.params))
        self.tables: dict[int, TableInfo] = {}
        for t in p4info.tables:
            fields = []
            for mf in t.match_fields:
                kind = _KINDS.get(mf.match_type)
                if kind is None:
                    raise ValueError(f"table {t.preamble.name}: match field {mf.name} has an unsupported "
                                     f"match type {MatchType.Name(mf.match_type)}")
                fields.append(FieldInfo(mf.id, mf.name, mf.bitwidth, kind))
            allowed = frozenset(r.id for r in t.action_refs if r.scope != p4info_pb2.ActionRef.DEFAULT_ONLY)
            defaults = frozenset(r.id for r in t.action_refs if r.scope != p4info_pb2.ActionRef.TABLE_ONLY)
            self.tables[t.preamble.id] = TableInfo(
                t.preamble.id, t.preamble.name, t.preamble.alias or t.preamble.name.split(".")[-1],
                tuple(fields), allowed, t.size, t.const_default_action_id, tuple(t.direct_resource_ids),
                defaults)
        self.counters: dict[int, p4info_pb2.Counter] = {c.preamble.id: c for c in p4info.counters}
        self.direct_counters: dict[int, p4info_pb2.DirectCounter] = {
            c.preamble.id: c for c in p4info.direct_counters}

    def table(self, table_id: int) -> TableInfo:
        t = self.tables.get(table_id)
        if t is None:
            raise bad(f"unknown table id {table_id:#x}")
        return t

    def table_by_name(self, name: str) -> TableInfo:
        for t in self.tables.values():
            if name in (t.name, t.alias):
                return t
        raise KeyError(name)

    def action_by_name(self, name: str) -> ActionInfo:
        for a in self.actions.values():
            if name in (a.name, a.alias):
                return a
        raise KeyError(name)


@dataclass(frozen=True)
class DecodedEntry:
    table: TableInfo
    key: Key                     # P4Info field name -> int | (value, plen) | (value, mask)
    action: ActionInfo | None    # None for DELETE and match-only reads
    params: dict[str, int]       # P4Info param name -> value
    priority: int = 0


# -- bytestrings --------------------------------------------------------------------------------


def to_int(data: bytes, bitwidth: int, what: str) -> int:
    if not data:
        raise bad(f"{what}: empty bytestring")
    v = int.from_bytes(data, "big")
    if v >> bitwidth:
        raise bad(f"{what}: value {data.hex()} does not fit in {bitwidth} bits")
    return v


def to_bytes(value: int, bitwidth: int | None = None) -> bytes:
    """Canonical bytestring: the shortest big-endian form (b'\\x00' for zero)."""
    if value < 0 or (bitwidth is not None and value >> bitwidth):
        raise ValueError(f"{value} does not fit in {bitwidth} bits")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


# -- decode -------------------------------------------------------------------------------------


def decode_match(table: TableInfo, matches: list[p4runtime_pb2.FieldMatch]) -> Key:
    key: Key = {}
    seen: set[int] = set()
    for m in matches:
        f = table.field(m.field_id)
        if f is None:
            raise bad(f"table {table.alias}: unknown match field id {m.field_id}")
        if m.field_id in seen:
            raise bad(f"table {table.alias}: match field {f.name} given twice")
        seen.add(m.field_id)
        which = m.WhichOneof("field_match_type")
        if which != f.kind:
            raise bad(f"table {table.alias}: field {f.name} is {f.kind}, the entry gives {which}")
        what = f"table {table.alias} field {f.name}"
        if f.kind == "exact":
            key[f.name] = to_int(m.exact.value, f.bitwidth, what)
        elif f.kind == "lpm":
            plen = m.lpm.prefix_len
            if not 0 < plen <= f.bitwidth:
                raise bad(f"{what}: prefix length {plen} not in 1..{f.bitwidth} (omit the field for a "
                          "don't-care match)")
            v = to_int(m.lpm.value, f.bitwidth, what)
            host_mask = (1 << (f.bitwidth - plen)) - 1
            if v & host_mask:
                raise bad(f"{what}: value {m.lpm.value.hex()} has bits set beyond the /{plen} prefix")
            key[f.name] = (v, plen)
        else:
            v = to_int(m.ternary.value, f.bitwidth, what)
            mask = to_int(m.ternary.mask, f.bitwidth, what + " mask")
            if mask == 0:
                raise bad(f"{what}: zero mask (omit the field for a don't-care match)")
            if v & ~mask:
                raise bad(f"{what}: value has bits set outside the mask")
            key[f.name] = (v, mask)
    for f in table.fields:
        if f.name in key:
            continue
        if f.kind == "exact":
            raise bad(f"table {table.alias}: exact match field {f.name} is missing")
        key[f.name] = (0, 0)  # don't care
    return key


def decode_action(idx: P4InfoIndex, table: TableInfo, action: p4runtime_pb2.TableAction,
                  default: bool = False) -> tuple[ActionInfo, dict[str, int]]:
    which = action.WhichOneof("type")
    if which is None:
        raise bad(f"table {table.alias}: the entry has no action")
    if which != "action":
        raise P4RTError(grpc.StatusCode.UNIMPLEMENTED, f"table {table.alias}: {which} (action profiles) "
                        "are not supported by this target")
    a = idx.actions.get(action.action.action_id)
    if a is None:
        raise bad(f"unknown action id {action.action.action_id:#x}")
    if default and a.id not in table.default_action_ids:
        raise bad(f"action {a.alias} cannot be the default action of table {table.alias}")
    if not default and a.id not in table.action_ids:
        raise bad(f"action {a.alias} is not an entry action of table {table.alias}")
    params: dict[str, int] = {}
    for p in action.action.params:
        info = a.param(p.param_id)
        if info is None:
            raise bad(f"action {a.alias}: unknown param id {p.param_id}")
        if info.name in params:
            raise bad(f"action {a.alias}: param {info.name} given twice")
        params[info.name] = to_int(p.value, info.bitwidth, f"action {a.alias} param {info.name}")
    missing = [p.name for p in a.params if p.name not in params]
    if missing:
        raise bad(f"action {a.alias}: missing param(s) {', '.join(missing)}")
    return a, params


def decode_default_entry(idx: P4InfoIndex, entry: p4runtime_pb2.TableEntry, *,
                         with_action: bool) -> DecodedEntry:
    """A default entry (is_default_action set): no match, no priority; for a write (`with_action`) the
    table's default must not be const (PERMISSION_DENIED) and the action must be a default action."""
    table = idx.table(entry.table_id)
    if len(entry.match):
        raise bad(f"table {table.alias}: a default entry has no match fields")
    if entry.priority != 0:
        raise bad(f"table {table.alias}: a default entry has no priority")
    if not with_action:
        return DecodedEntry(table, {}, None, {})
    if table.const_default_action_id:
        raise P4RTError(grpc.StatusCode.PERMISSION_DENIED,
                        f"table {table.alias}: the default action is const in this pipeline")
    action, params = decode_action(idx, table, entry.action, default=True)
    return DecodedEntry(table, {}, action, params)


def decode_entry(idx: P4InfoIndex, entry: p4runtime_pb2.TableEntry, *, with_action: bool) -> DecodedEntry:
    table = idx.table(entry.table_id)
    if entry.is_default_action:
        raise bad(f"table {table.alias}: a default entry can only be modified or read "
                  "(decode it with decode_default_entry)")
    if table.needs_priority:
        if entry.priority <= 0:
            raise bad(f"table {table.alias} has ternary fields: priority must be > 0")
    elif entry.priority != 0:
        raise bad(f"table {table.alias}: priority must be 0 (no ternary or range field)")
    key = decode_match(table, list(entry.match))
    if not with_action:
        return DecodedEntry(table, key, None, {}, entry.priority)
    action, params = decode_action(idx, table, entry.action)
    return DecodedEntry(table, key, action, params, entry.priority)


# -- encode -------------------------------------------------------------------------------------


def encode_entry(table: TableInfo, key: Key, action: ActionInfo | None,
                 params: dict[str, int]) -> p4runtime_pb2.TableEntry:
    e = p4runtime_pb2.TableEntry(table_id=table.id)
    for f in table.fields:
        v = key.get(f.name)
        if v is None:
            continue
        if f.kind == "exact":
            m = e.match.add(field_id=f.id)
            m.exact.value = to_bytes(int(v), f.bitwidth)  # type: ignore[arg-type]
        elif f.kind == "lpm":
            val, plen = v  # type: ignore[misc]
            if plen == 0:
                continue
            m = e.match.add(field_id=f.id)
            m.lpm.value, m.lpm.prefix_len = to_bytes(val, f.bitwidth), plen
        else:
            val, mask = v  # type: ignore[misc]
            if mask == 0:
                continue
            m = e.match.add(field_id=f.id)
            m.ternary.value, m.ternary.mask = to_bytes(val, f.bitwidth), to_bytes(mask, f.bitwidth)
    if action is not None:
        e.action.action.action_id = action.id
        for p in action.params:
            e.action.action.params.add(param_id=p.id, value=to_bytes(params[p.name], p.bitwidth))
    return e
