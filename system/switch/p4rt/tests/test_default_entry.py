"""Default entries over P4Runtime (1.4, section 9.1.3) with pipeline `miresga`: MODIFY of syn_cookie's
default action (the cookie secret), its Read, the reset, and the refusals (INSERT/DELETE of a default
entry, a const default, a match in a default entry, an entry-only action), checked in the BPF map
through the tables facade."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from p4.v1 import p4runtime_pb2

from system.controlplane.switch import EntryCodec, SwitchConnection, SwitchRefused
from system.switch.p4rt.codec import P4InfoIndex, decode_default_entry, to_bytes
from system.switch.p4rt.errors import P4RTError
from system.switch.p4rt.testing import make_server
from system.switch.tables import MIRESGA, PipelineTables, load_p4info

pytestmark = pytest.mark.root
Update = p4runtime_pb2.Update


@pytest.fixture(scope="module")
def pipeline() -> tuple[object, bytes]:
    from system.switch.package import build_package

    return load_p4info("miresga"), build_package("miresga")


@pytest.fixture
def conn(switch_ns, pipeline) -> Iterator[tuple[SwitchConnection, EntryCodec, object]]:
    srv = make_server(switch_ns, tag="p4rt-default")
    c = SwitchConnection(srv.address, election_id=(0, 5))
    try:
        c.connect()
        p4info, package = pipeline
        c.set_pipeline(p4info, package, cookie=77)
        yield c, EntryCodec(p4info), srv
    finally:
        c.close()
        srv.stop()
        assert not srv.device.pin_dir.exists(), "pins left behind"


def secret_update(codec: EntryCodec, key: int, slot: int = 1) -> Update:
    return codec.default_update("syn_cookie", "set_cookie_secret", {"key": key, "slot": slot})


def read_default(c: SwitchConnection, codec: EntryCodec, table: str) -> p4runtime_pb2.TableEntry:
    [e] = c.read_entries(codec.index.table_by_name(table).id, default=True)
    return e


def test_modify_and_read_the_cookie_secret(conn) -> None:
    c, codec, srv = conn
    with PipelineTables(MIRESGA, srv.device.pin_dir) as t:
        assert t.get_default("syn_cookie").params == {"key": 0, "slot": 0}     # never written
        for secret in (0xDEADBEEF_01234567, 1, (1 << 64) - 1):
            assert [r.code for r in c.write([secret_update(codec, secret)])] == ["OK"]
            assert t.get_default("syn_cookie").params == {"key": secret, "slot": 1}
            e = read_default(c, codec, "syn_cookie")
            assert e.is_default_action and not e.match
            assert e.action.action.action_id == codec.index.action_by_name("set_cookie_secret").id
            assert [(p.param_id, p.value) for p in e.action.action.params] == \
                [(1, to_bytes(secret)), (2, to_bytes(1))]
        assert t.count("syn_cookie") == 0               # a default is no entry
    # a wildcard read returns entries only, never the default entry
    assert c.read_entries(codec.index.table_by_name("syn_cookie").id) == []
    assert srv.device.stats()["tables"]["syn_cookie"]["entries"] == 0


def test_reset_restores_the_declared_default_with_zero_params(conn) -> None:
    c, codec, srv = conn
    assert c.write([secret_update(codec, 0x1234)])[0].code == "OK"
    u = Update(type=Update.MODIFY)
    u.entity.table_entry.table_id = codec.index.table_by_name("syn_cookie").id
    u.entity.table_entry.is_default_action = True                    # no action: reset
    assert c.write([u])[0].code == "OK"
    with PipelineTables(MIRESGA, srv.device.pin_dir) as t:
        assert t.get_default("syn_cookie").params == {"key": 0, "slot": 0}


def test_read_of_a_const_default_returns_the_declared_action(conn) -> None:
    c, codec, _ = conn
    e = read_default(c, codec, "vip")
    assert e.is_default_action and e.action.action.action_id == codec.index.action_by_name("vip_miss").id


def _as(u: Update, typ: int) -> Update:
    v = Update(type=typ)
    v.entity.CopyFrom(u.entity)
    return v


def test_refusals(conn) -> None:
    c, codec, srv = conn
    good = secret_update(codec, 42)
    results = c.write([_as(good, Update.INSERT), _as(good, Update.DELETE)])
    assert [r.code for r in results] == ["INVALID_ARGUMENT"] * 2
    assert all("can only be modified" in r.message for r in results)

    const = Update(type=Update.MODIFY)                  # vip's default (vip_miss) is const
    const.entity.table_entry.table_id = codec.index.table_by_name("vip").id
    const.entity.table_entry.is_default_action = True
    const.entity.table_entry.action.action.action_id = codec.index.action_by_name("vip_miss").id
    [r] = c.write([const])
    assert r.code == "PERMISSION_DENIED" and "const" in r.message

    with_match = _as(good, Update.MODIFY)               # a default entry has no match
    m = with_match.entity.table_entry.match.add(field_id=1)
    m.exact.value = b"\x01"
    assert c.write([with_match])[0].code == "INVALID_ARGUMENT"

    wide = _as(good, Update.MODIFY)                     # 65-bit key
    wide.entity.table_entry.action.action.params[0].value = (1 << 64).to_bytes(9, "big")
    [r] = c.write([wide])
    assert r.code == "INVALID_ARGUMENT" and "64 bits" in r.message

    no_param = _as(good, Update.MODIFY)
    del no_param.entity.table_entry.action.action.params[:]
    [r] = c.write([no_param])
    assert r.code == "INVALID_ARGUMENT" and "missing param" in r.message
    with PipelineTables(MIRESGA, srv.device.pin_dir) as t:
        assert t.get_default("syn_cookie").params == {"key": 0, "slot": 0}      # nothing was applied

    with pytest.raises(SwitchRefused) as e:            # reading a default entry needs a table id
        c.read_entries(0, default=True)
    assert e.value.code == "INVALID_ARGUMENT"


def test_codec_decode_default_entry_without_a_server() -> None:
    idx = P4InfoIndex(load_p4info("miresga"))
    codec = EntryCodec(load_p4info("miresga"))
    d = decode_default_entry(idx, secret_update(codec, 9).entity.table_entry, with_action=True)
    assert d.table.alias == "syn_cookie" and d.action.alias == "set_cookie_secret" and d.params == {"key": 9, "slot": 1}
    with pytest.raises(ValueError, match="cannot be the default action"):
        codec.default_update("syn_cookie", "mark_vip", {})
    e = secret_update(codec, 9).entity.table_entry
    e.table_id = idx.table_by_name("offload").id                    # const default
    e.action.action.action_id = idx.action_by_name("offload_miss").id
    del e.action.action.params[:]
    with pytest.raises(P4RTError) as err:
        decode_default_entry(idx, e, with_action=True)
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
