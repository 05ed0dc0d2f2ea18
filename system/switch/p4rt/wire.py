"""The protobuf wire format of P4Runtime table-entry Writes, encoded and decoded by hand.

Why: the project runs protobuf 3.20 (pinned by p4runtime-shell), whose Python 3.11 build is the pure
Python implementation. Building a table entry with it costs ~0.6 ms of CPU, serializing ~0.2 ms and
parsing ~0.5 ms (a `conn_in` entry: 4 match fields, 6 params), which made our control plane and our
P4Runtime server, not the modelled switch, the limit of the insertion rate. The messages on this
path have a small fixed shape, so:

- `encode_entry`/`encode_update`/`encode_write_request` (and for Read replies
  `encode_read_entity`/`encode_read_response`) write exactly the bytes protobuf's
  SerializeToString writes for the same messages (fields in number order, proto3 defaults left out,
  repeated fields in list order); the tests compare them byte for byte with protobuf's.
- `parse_write_request` reads a WriteRequest into light read-only views with the attributes and
  `WhichOneof` the server reads (same names as the generated classes). Anything outside the shape
  it knows (another entity, action profiles, meters, counters, metadata, unknown or repeated
  singular fields, negative int32s) is handed to protobuf instead: that one Update, or the whole
  request when its envelope is unusual, and malformed input always, so the result equals
  protobuf's parse of the same bytes.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from p4.v1 import p4runtime_pb2

from system.switch.p4rt.codec import ActionInfo, Key, TableInfo, to_bytes

INSERT, MODIFY, DELETE = (p4runtime_pb2.Update.INSERT, p4runtime_pb2.Update.MODIFY,
                          p4runtime_pb2.Update.DELETE)


# -- encode -------------------------------------------------------------------------------------

_SMALL = [bytes((i,)) for i in range(0x80)]


def varint(n: int) -> bytes:
    if 0 <= n < 0x80:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (tag = field << 3 | 2, below 128)."""
    n = len(payload)
    return _SMALL[tag] + (_SMALL[n] if n < 0x80 else varint(n)) + payload


def _match(fid: int, kind: str, bitwidth: int, v: Any) -> bytes | None:
    """One FieldMatch as protobuf writes it; None for a don't-care (left out, as encode_entry does)."""
    if kind == "exact":
        inner = _ld(0x12, _ld(0x0A, to_bytes(int(v), bitwidth)))
    elif kind == "lpm":
        val, plen = v
        if plen == 0:
            return None
        inner = _ld(0x22, _ld(0x0A, to_bytes(val, bitwidth)) + b"\x10" + varint(plen))
    else:
        val, mask = v
        if mask == 0:
            return None
        inner = _ld(0x1A, _ld(0x0A, to_bytes(val, bitwidth)) + _ld(0x12, to_bytes(mask, bitwidth)))
    return b"\x08" + varint(fid) + inner


def encode_entry(table: TableInfo, key: Key, action: ActionInfo | None, params: dict[str, int],
                 priority: int = 0) -> tuple[bytes, bytes]:
    """(TableEntry bytes, match bytes): what `codec.encode_entry(...).SerializeToString()` gives, and
    the entry's FieldMatch fields in field id order (with the table id, an entry's identity)."""
    pieces: list[tuple[int, bytes]] = []
    for f in table.fields:
        v = key.get(f.name)
        if v is None:
            continue
        m = _match(f.id, f.kind, f.bitwidth, v)
        if m is not None:
            pieces.append((f.id, _ld(0x12, m)))
    matches = b"".join(p for _, p in pieces)
    ident = matches if all(a[0] < b[0] for a, b in itertools.pairwise(pieces)) else \
        b"".join(p for _, p in sorted(pieces, key=lambda x: x[0]))
    out = b"\x08" + varint(table.id) + matches
    if action is not None:
        body = b"\x08" + varint(action.id) + b"".join(
            _ld(0x22, b"\x10" + varint(p.id) + _ld(0x1A, to_bytes(params[p.name], p.bitwidth)))
            for p in action.params)
        out += _ld(0x1A, _ld(0x0A, body))
    if priority:
        out += b"\x20" + varint(priority)
    return out, ident


def encode_update(typ: int, entry: bytes) -> bytes:
    """Update{type, entity{table_entry}} around a TableEntry's bytes."""
    return b"\x08" + varint(typ) + _ld(0x12, _ld(0x12, entry))


def entity_of_entry(entry: bytes) -> bytes:
    """Entity{table_entry} around a TableEntry's bytes."""
    return _ld(0x12, entry)


def encode_read_entity(table: TableInfo, key: Key, action: ActionInfo, params: dict[str, int],
                       counts: tuple[int, int] | None = None) -> bytes:
    """A Read reply's Entity: the entry as `codec.encode_entry` builds it, with its direct counter
    data (packets, bytes) when `counts` is given (present even when both are zero, as protobuf
    writes a sub-message once a field of it is assigned)."""
    entry, _ = encode_entry(table, key, action, params)
    if counts is not None:
        packets, nbytes = counts
        entry += _ld(0x3A, (b"\x08" + varint(nbytes) if nbytes else b"") +
                     (b"\x10" + varint(packets) if packets else b""))
    return _ld(0x12, entry)


def encode_read_response(entities: list[bytes]) -> bytes:
    """ReadResponse{entities} around serialized Entities."""
    return b"".join(_ld(0x0A, e) for e in entities)


def encode_write_request(device_id: int, election_id: tuple[int, int], role: str | None,
                         updates: list[bytes]) -> bytes:
    """WriteRequest (atomicity CONTINUE_ON_ERROR) around serialized Updates; election_id is always
    present, as when protobuf's fields are assigned."""
    high, low = election_id
    eid = (b"\x08" + varint(high) if high else b"") + (b"\x10" + varint(low) if low else b"")
    out = bytearray(b"\x08" + varint(device_id) if device_id else b"")
    out += _ld(0x1A, eid)
    for u in updates:
        out += _ld(0x22, u)
    if role:
        out += _ld(0x32, role.encode())
    return bytes(out)


# -- decode -------------------------------------------------------------------------------------

class _Unusual(Exception):
    """Not the shape this decoder knows: let protobuf parse it."""


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise _Unusual
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result, shift = b & 0x7F, 7
    pos += 1
    while True:
        if pos >= end or shift > 63:
            raise _Unusual
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, pos: int, end: int) -> Any:
    """(field number, wire type, value or (start, end) of a length-delimited payload)."""
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = _read_varint(buf, pos, end)
            yield num, 0, v
        elif wt == 2:
            n, pos = _read_varint(buf, pos, end)
            if pos + n > end:
                raise _Unusual
            yield num, 2, (pos, pos + n)
            pos += n
        else:
            raise _Unusual


class _View:
    __slots__ = ()


class _OneofView(_View):
    """A view with one oneof group, named `_GROUP`; `_which` is the member set (None: none)."""

    __slots__ = ("_which",)
    _GROUP: ClassVar[str] = ""

    def __init__(self) -> None:
        self._which: str | None = None

    def WhichOneof(self, group: str) -> str | None:
        if group != self._GROUP:
            raise ValueError(f"{type(self).__name__} has no oneof {group!r}")
        return self._which


class Uint128View(_View):
    __slots__ = ("high", "low")

    def __init__(self, high: int = 0, low: int = 0) -> None:
        self.high, self.low = high, low


class ValueView(_View):
    """FieldMatch.Exact/LPM/Ternary (value, prefix_len, mask: protobuf's defaults when absent)."""

    __slots__ = ("mask", "prefix_len", "value")

    def __init__(self) -> None:
        self.value, self.prefix_len, self.mask = b"", 0, b""


class FieldMatchView(_OneofView):
    __slots__ = ("exact", "field_id", "lpm", "ternary")
    _GROUP = "field_match_type"

    def __init__(self) -> None:
        super().__init__()
        self.field_id = 0
        self.exact = self.lpm = self.ternary = ValueView()


class ParamView(_View):
    __slots__ = ("param_id", "value")

    def __init__(self, param_id: int, value: bytes) -> None:
        self.param_id, self.value = param_id, value


class ActionView(_View):
    __slots__ = ("action_id", "params")

    def __init__(self) -> None:
        self.action_id, self.params = 0, []


class TableActionView(_OneofView):
    __slots__ = ("action",)
    _GROUP = "type"

    def __init__(self) -> None:
        super().__init__()
        self.action = ActionView()


class TableEntryView(_View):
    __slots__ = ("action", "is_default_action", "match", "priority", "table_id")

    def __init__(self) -> None:
        self.table_id, self.match, self.action = 0, [], TableActionView()
        self.priority, self.is_default_action = 0, False


class EntityView(_OneofView):
    __slots__ = ("table_entry",)
    _GROUP = "entity"

    def __init__(self, entry: TableEntryView) -> None:
        super().__init__()
        self.table_entry, self._which = entry, "table_entry"


class UpdateView(_View):
    __slots__ = ("entity", "type")

    def __init__(self, typ: int, entity: EntityView) -> None:
        self.type, self.entity = typ, entity


class WriteRequestView(_View):
    __slots__ = ("atomicity", "device_id", "election_id", "role", "role_id", "updates")

    def __init__(self) -> None:
        self.device_id = self.role_id = self.atomicity = 0
        self.role, self.election_id, self.updates = "", Uint128View(), []


def _once(seen: set[int], num: int) -> None:
    if num in seen:
        raise _Unusual          # protobuf merges repeated singular fields: leave that to it
    seen.add(num)


def _int32(v: int) -> int:
    if v >= 1 << 31:
        raise _Unusual          # negative (or out of range) int32: protobuf's conversion
    return v


def _value(buf: bytes, s: int, e: int, kind: str) -> ValueView:
    out, seen = ValueView(), set()
    for num, wt, v in _fields(buf, s, e):
        _once(seen, num)
        if num == 1 and wt == 2:
            out.value = buf[v[0]:v[1]]
        elif num == 2 and kind == "lpm" and wt == 0:
            out.prefix_len = _int32(v)
        elif num == 2 and kind == "ternary" and wt == 2:
            out.mask = buf[v[0]:v[1]]
        else:
            raise _Unusual
    return out


_MATCH_KINDS = {2: "exact", 3: "ternary", 4: "lpm"}


def _field_match(buf: bytes, s: int, e: int) -> FieldMatchView:
    m, seen = FieldMatchView(), set()
    for num, wt, v in _fields(buf, s, e):
        _once(seen, num)
        if num == 1 and wt == 0:
            if v >> 32:
                raise _Unusual
            m.field_id = v
        elif num in _MATCH_KINDS and wt == 2:
            if m._which is not None:
                raise _Unusual  # two members of the oneof
            kind = _MATCH_KINDS[num]
            setattr(m, kind, _value(buf, v[0], v[1], kind))
            m._which = kind
        else:
            raise _Unusual
    return m


def _action(buf: bytes, s: int, e: int) -> ActionView:
    a, seen = ActionView(), set()
    for num, wt, v in _fields(buf, s, e):
        if num == 1 and wt == 0:
            _once(seen, num)
            if v >> 32:
                raise _Unusual
            a.action_id = v
        elif num == 4 and wt == 2:
            pid, val, pseen = 0, b"", set()
            for pn, pwt, pv in _fields(buf, v[0], v[1]):
                _once(pseen, pn)
                if pn == 2 and pwt == 0 and not pv >> 32:
                    pid = pv
                elif pn == 3 and pwt == 2:
                    val = buf[pv[0]:pv[1]]
                else:
                    raise _Unusual
            a.params.append(ParamView(pid, val))
        else:
            raise _Unusual
    return a


def _table_entry(buf: bytes, s: int, e: int) -> TableEntryView:
    t, seen = TableEntryView(), set()
    for num, wt, v in _fields(buf, s, e):
        if num == 2 and wt == 2:
            t.match.append(_field_match(buf, v[0], v[1]))
            continue
        _once(seen, num)
        if num == 1 and wt == 0:
            if v >> 32:
                raise _Unusual
            t.table_id = v
        elif num == 3 and wt == 2:
            ta = TableActionView()
            for an, awt, av in _fields(buf, v[0], v[1]):
                if an != 1 or awt != 2 or ta._which is not None:
                    raise _Unusual   # action profiles, or a repeated action: protobuf's business
                ta.action, ta._which = _action(buf, av[0], av[1]), "action"
            t.action = ta
        elif num == 4 and wt == 0:
            t.priority = _int32(v)
        elif num == 8 and wt == 0:
            t.is_default_action = bool(v)
        else:
            raise _Unusual
    return t


def _update(buf: bytes, s: int, e: int) -> UpdateView:
    typ, entry, seen = 0, None, set()
    for num, wt, v in _fields(buf, s, e):
        _once(seen, num)
        if num == 1 and wt == 0:
            typ = _int32(v)
        elif num == 2 and wt == 2:
            for en, ewt, ev in _fields(buf, v[0], v[1]):
                if en != 2 or ewt != 2 or entry is not None:
                    raise _Unusual
                entry = _table_entry(buf, ev[0], ev[1])
        else:
            raise _Unusual
    if entry is None:
        raise _Unusual          # no entity or an empty one: protobuf's view of it
    return UpdateView(typ, EntityView(entry))


def parse_write_request(data: bytes) -> WriteRequestView | p4runtime_pb2.WriteRequest:
    """The request as views, or as protobuf's message when its envelope is unusual (see above).
    Malformed input raises protobuf's DecodeError, as WriteRequest.FromString does."""
    try:
        return _write_request(data)
    except _Unusual:
        return p4runtime_pb2.WriteRequest.FromString(data)


def _write_request(buf: bytes) -> WriteRequestView:
    r, seen = WriteRequestView(), set()
    for num, wt, v in _fields(buf, 0, len(buf)):
        if num == 4 and wt == 2:
            try:
                r.updates.append(_update(buf, v[0], v[1]))
            except _Unusual:
                r.updates.append(p4runtime_pb2.Update.FromString(buf[v[0]:v[1]]))
            continue
        _once(seen, num)
        if v.__class__ is int and v >> 64:
            raise _Unusual
        if num == 1 and wt == 0:
            r.device_id = v
        elif num == 2 and wt == 0:
            r.role_id = v
        elif num == 3 and wt == 2:
            eid, eseen = Uint128View(), set()
            for en, ewt, ev in _fields(buf, v[0], v[1]):
                _once(eseen, en)
                if en == 1 and ewt == 0:
                    eid.high = ev
                elif en == 2 and ewt == 0:
                    eid.low = ev
                else:
                    raise _Unusual
            r.election_id = eid
        elif num == 5 and wt == 0:
            r.atomicity = _int32(v)
        elif num == 6 and wt == 2:
            try:
                r.role = buf[v[0]:v[1]].decode()
            except UnicodeDecodeError:
                raise _Unusual from None
        else:
            raise _Unusual
    return r
