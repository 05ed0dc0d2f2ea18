"""The hand-written wire format of table-entry Writes (wire.py) against protobuf's own: the encoder
writes protobuf's exact bytes, the decoder's views read as protobuf's messages do, and whatever is
outside its shape is protobuf's parse."""

from __future__ import annotations

import random
from typing import Any

import pytest
from google.protobuf import text_format
from google.protobuf.message import DecodeError
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from system.controlplane.switch import EntryCodec
from system.switch.p4rt import wire
from system.switch.p4rt.codec import P4InfoIndex, encode_entry
from system.switch.tables import load_p4info

Update = p4runtime_pb2.Update
TERNARY_P4INFO = """
tables {
  preamble { id: 33554433 name: "Ing.acl" alias: "acl" }
  match_fields { id: 2 name: "proto" bitwidth: 8 match_type: EXACT }
  match_fields { id: 1 name: "src" bitwidth: 32 match_type: TERNARY }
  match_fields { id: 3 name: "dst" bitwidth: 32 match_type: LPM }
  action_refs { id: 16777217 }
  size: 16
}
actions { preamble { id: 16777217 name: "Ing.set" alias: "set" }
          params { id: 1 name: "port" bitwidth: 9 } params { id: 2 name: "mac" bitwidth: 48 } }
"""


def dump(u: Any) -> tuple:
    """What the server reads of an Update, from a protobuf message or a view alike."""
    which = u.entity.WhichOneof("entity")
    if which != "table_entry":
        return (u.type, which)
    te = u.entity.table_entry
    matches = []
    for m in te.match:
        kind = m.WhichOneof("field_match_type")
        v = getattr(m, kind) if kind else None
        if kind == "range":
            matches.append((m.field_id, kind, v.low, v.high))
            continue
        matches.append((m.field_id, kind, v and v.value, kind == "lpm" and v.prefix_len,
                        kind == "ternary" and v.mask))
    act = te.action.WhichOneof("type")
    a = (act, te.action.action.action_id, [(p.param_id, p.value) for p in te.action.action.params])
    return (u.type, te.table_id, te.priority, te.is_default_action, matches, a)


def random_requests(codec: EntryCodec, rng: random.Random) -> list[tuple[str, str, dict, str, dict]]:
    out = []
    for t in codec.index.tables.values():
        if not t.fields:
            continue
        actions = [codec.index.actions[a] for a in sorted(t.action_ids)]
        for _ in range(20):
            key: dict[str, Any] = {}
            for f in t.fields:
                v = rng.getrandbits(f.bitwidth) if rng.random() < 0.8 else rng.choice([0, 1, (1 << f.bitwidth) - 1])
                if f.kind == "exact":
                    key[f.name] = v
                elif f.kind == "lpm":
                    plen = rng.randint(1, f.bitwidth)
                    key[f.name] = [v >> (f.bitwidth - plen) << (f.bitwidth - plen), plen]
                else:
                    key[f.name] = [v & 0xF0F0F0F0, 0xF0F0F0F0]
            a = rng.choice(actions)
            params = {q.name: rng.getrandbits(q.bitwidth) for q in a.params}
            for op in ("add", "modify", "delete"):
                out.append((op, t.name, key, a.name, params))
    return out


@pytest.mark.parametrize("pipeline", ["forwarding", "miresga", "switch_only"])
def test_encoded_updates_are_protobufs_bytes_and_parse_back(pipeline: str) -> None:
    codec = EntryCodec(load_p4info(pipeline))
    reqs = random_requests(codec, random.Random(pipeline))
    assert len(reqs) >= 60
    pbs = [codec.update(*r) for r in reqs]
    wus = [codec.wire_update(*r) for r in reqs]
    for pb, wu in zip(pbs, wus, strict=True):
        assert wu.data() == pb.SerializeToString()
        assert wu.type == pb.type and wu.ident[0] == pb.entity.table_entry.table_id
    # The identity is the match alone: add, modify and delete of one key share it; keys differ.
    assert wus[0].ident == wus[1].ident == wus[2].ident
    assert len({w.ident for w in wus}) == len({codec.entry_key(p.entity.table_entry) for p in pbs})
    for election, role in (((0, 1), None), ((7, 0), "ctl"), ((0, 0), None), ((1 << 63, 5), None)):
        req = p4runtime_pb2.WriteRequest(device_id=3)
        req.election_id.high, req.election_id.low = election
        if role:
            req.role = role
        req.updates.extend(pbs)
        data = wire.encode_write_request(3, election, role, [w.data() for w in wus])
        assert data == req.SerializeToString()
        view = wire.parse_write_request(data)
        assert isinstance(view, wire.WriteRequestView)
        assert (view.device_id, view.election_id.high, view.election_id.low, view.role, view.atomicity) == \
            (3, *election, role or "", 0)
        assert [dump(u) for u in view.updates] == [dump(u) for u in req.updates]
        assert all(isinstance(u, wire.UpdateView) for u in view.updates)


def test_ternary_priority_and_field_order() -> None:
    idx = P4InfoIndex(text_format.Parse(TERNARY_P4INFO, p4info_pb2.P4Info()))
    t, a = idx.table_by_name("acl"), idx.action_by_name("set")
    key = {"src": (0x0A000000, 0xFF000000), "proto": 6, "dst": (0xC6120000, 16)}
    params = {"port": 5, "mac": 0x020000000001}
    data, ident = wire.encode_entry(t, key, a, params, priority=10)
    pb = encode_entry(t, key, a, params)
    pb.priority = 10
    assert data == pb.SerializeToString()
    # match in P4Info order (2, 1, 3) in the entry; the identity is in field id order (1, 2, 3)
    ids = [m.field_id for m in p4runtime_pb2.TableEntry.FromString(data).match]
    assert ids == [2, 1, 3]
    assert [m.field_id for m in p4runtime_pb2.TableEntry.FromString(b"\x08\x01" + ident).match] == [1, 2, 3]
    view = wire.parse_write_request(wire.encode_write_request(1, (0, 1), None, [wire.encode_update(1, data)]))
    u = Update(type=Update.INSERT)
    u.entity.table_entry.CopyFrom(pb)
    assert dump(view.updates[0]) == dump(u)
    # don't-care fields are left out, as protobuf's encoder does
    data2, _ = wire.encode_entry(t, {"proto": 6, "src": (0, 0), "dst": (0, 0)}, None, {})
    assert data2 == encode_entry(t, {"proto": 6, "src": (0, 0), "dst": (0, 0)}, None, {}).SerializeToString()


def _unusual_updates() -> list[Update]:
    base = Update(type=Update.INSERT)
    te = base.entity.table_entry
    te.table_id = 7
    te.match.add(field_id=1).exact.value = b"\x01"
    te.action.action.action_id = 9
    counters = Update()
    counters.CopyFrom(base)
    counters.entity.table_entry.counter_data.packet_count = 3
    member = Update(type=Update.INSERT)
    member.entity.table_entry.table_id = 7
    member.entity.table_entry.action.action_profile_member_id = 4
    meta = Update()
    meta.CopyFrom(base)
    meta.entity.table_entry.metadata = b"cookie"
    negative = Update()
    negative.CopyFrom(base)
    negative.entity.table_entry.priority = -5
    other = Update(type=Update.MODIFY)
    other.entity.counter_entry.counter_id = 3
    rng = Update()
    rng.CopyFrom(base)
    r = rng.entity.table_entry.match.add(field_id=2).range
    r.low, r.high = b"\x01", b"\x09"
    default = Update(type=Update.MODIFY)
    default.entity.table_entry.table_id = 7
    default.entity.table_entry.is_default_action = True       # no action: a reset; views handle it
    return [counters, member, meta, negative, other, rng, default, Update()]


def test_unusual_updates_are_protobufs_parse() -> None:
    ups = _unusual_updates()
    plain = Update(type=Update.DELETE)
    plain.entity.table_entry.table_id = 7
    plain.entity.table_entry.match.add(field_id=1).exact.value = b"\x02"
    ups.append(plain)
    data = wire.encode_write_request(1, (0, 1), None, [u.SerializeToString() for u in ups])
    view = wire.parse_write_request(data)
    assert isinstance(view, wire.WriteRequestView)
    assert [type(u) for u in view.updates] == [Update] * 6 + [wire.UpdateView, Update, wire.UpdateView]
    assert view.updates[:6] == ups[:6]
    assert [dump(u) for u in view.updates] == [dump(u) for u in ups]
    # An unknown field in a known message: protobuf keeps it; so does the fallback.
    extra = plain.SerializeToString() + b"\xf8\x06\x01"      # field 111, varint 1
    [u] = wire.parse_write_request(wire.encode_write_request(1, (0, 1), None, [extra])).updates
    assert isinstance(u, Update) and u == Update.FromString(extra)
    # An unusual envelope (an unknown top-level field): the whole request is protobuf's.
    req = wire.parse_write_request(data + b"\xf8\x06\x01")
    assert isinstance(req, p4runtime_pb2.WriteRequest)
    assert req == p4runtime_pb2.WriteRequest.FromString(data + b"\xf8\x06\x01")


def test_oneof_names_and_malformed_input() -> None:
    reset = _unusual_updates()[6].SerializeToString()
    view = wire.parse_write_request(wire.encode_write_request(1, (0, 1), None, [reset]))
    u = view.updates[0]
    assert u.entity.WhichOneof("entity") == "table_entry"
    assert u.entity.table_entry.action.WhichOneof("type") is None
    with pytest.raises(ValueError, match="no oneof"):
        u.entity.WhichOneof("nope")
    good = wire.encode_write_request(1, (0, 1), None, [Update(type=1).SerializeToString()])
    for bad in (good[:-1], b"\x22\x05\x08", b"\x0a"):
        with pytest.raises(DecodeError):
            wire.parse_write_request(bad)
        with pytest.raises(DecodeError):
            p4runtime_pb2.WriteRequest.FromString(bad)


def test_varint() -> None:
    for n in (0, 1, 127, 128, 300, 1 << 32, (1 << 64) - 1):
        m = p4runtime_pb2.WriteRequest(device_id=n)
        assert (b"\x08" + wire.varint(n) if n else b"") == m.SerializeToString()
    assert wire.varint(-1) == b"\xff" * 9 + b"\x01"


@pytest.mark.parametrize("counts", [None, (0, 0), (5, 0), (7, 9001), ((1 << 40) + 3, 1 << 50)])
def test_read_entities_are_protobufs_bytes(counts: tuple[int, int] | None) -> None:
    idx = P4InfoIndex(load_p4info("switch_only"))
    t, a = idx.table_by_name("conn_in"), idx.action_by_name("to_backend")
    key = {f.name: (i + 1) * 1000 for i, f in enumerate(t.fields)}
    params = {q.name: (i + 1) * 7 for i, q in enumerate(a.params)}
    te = encode_entry(t, key, a, params)
    if counts is not None:
        te.counter_data.packet_count, te.counter_data.byte_count = counts
    ent = p4runtime_pb2.Entity(table_entry=te)
    data = wire.encode_read_entity(t, key, a, params, counts)
    assert data == ent.SerializeToString()
    rep = p4runtime_pb2.ReadResponse(entities=[ent, ent])
    assert wire.encode_read_response([data, data]) == rep.SerializeToString()
    assert wire.encode_read_response([]) == p4runtime_pb2.ReadResponse().SerializeToString()
