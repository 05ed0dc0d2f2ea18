"""The tables facade over the pinned maps: insert/get/read/modify/delete and every TableError."""

from __future__ import annotations

import dataclasses

import pytest

from system.bpf.build import compile_bpf
from system.bpf.loader import load_object, unpin
from system.switch.package import source_of
from system.switch.tables import FORWARDING, ROUTE, Entry, PipelineTables, TableError
from system.switch.tests.conftest import PIN_ROOT, require_root

pytestmark = pytest.mark.root

A = 0xC612C802  # 198.18.200.2
FWD = {"port": 2, "smac": 0x02BB00000002, "dmac": 0x02CC00000002}


def test_insert_get_read_modify_delete(loaded_tables):
    t, _ = loaded_tables
    key = {"dst_addr": (A, 32)}
    t.insert("route", key, "forward", FWD)
    t.insert("route", {"dst_addr": (A & 0xFFFFFF00, 24)}, "drop", {})
    assert t.get("route", key) == Entry("route", key, "forward", FWD)
    assert t.get("route", {"dst_addr": (A & 0xFFFFFF00, 24)}).action == "drop"
    # get is exact: the /31 that the /32 would match by LPM does not exist.
    assert t.get("route", {"dst_addr": (A & ~1, 31)}) is None
    assert sorted(e.key["dst_addr"][1] for e in t.read("route")) == [24, 32]
    assert t.count("route") == 2
    t.modify("route", key, "forward", {**FWD, "port": 3, "dmac": 0x02CC00000003})
    assert t.get("route", key).params == {**FWD, "port": 3, "dmac": 0x02CC00000003}
    t.modify("route", key, "drop", {})
    assert t.get("route", key) == Entry("route", key, "drop", {})
    t.delete("route", key)
    assert t.get("route", key) is None and t.count("route") == 1
    # P4Info full names are accepted as well as short names.
    assert t.read("SwitchIngress.forwarding.route")[0].action == "drop"


def test_already_exists_and_not_found(loaded_tables):
    t, _ = loaded_tables
    key = {"dst_addr": (A, 32)}
    t.insert("route", key, "forward", FWD)
    with pytest.raises(TableError) as e:
        t.insert("route", key, "drop", {})
    assert e.value.code == "ALREADY_EXISTS"
    assert t.get("route", key).action == "forward", "a failed insert must not change the entry"
    other = {"dst_addr": (A + 1, 32)}
    for op in (lambda: t.modify("route", other, "drop", {}), lambda: t.delete("route", other),
               lambda: t.entry_counters("route", other)):
        with pytest.raises(TableError) as e:
            op()
        assert e.value.code == "NOT_FOUND"
    # A shorter prefix of an existing address is another entry: not found either.
    with pytest.raises(TableError) as e:
        t.delete("route", {"dst_addr": (A & 0xFFFFFF00, 24)})
    assert e.value.code == "NOT_FOUND"


@pytest.mark.parametrize("key,action,params,what", [
    ({"dst_addr": (A, 33)}, "drop", {}, "prefix length"),
    ({"dst_addr": (A, 24)}, "drop", {}, "bits beyond"),
    ({"dst_addr": A}, "drop", {}, "LPM key"),
    ({"dst": (A, 32)}, "drop", {}, "key fields"),
    ({"dst_addr": (1 << 32, 32)}, "drop", {}, "does not fit"),
    ({"dst_addr": (A, 32)}, "nat", {}, "no action"),
    ({"dst_addr": (A, 32)}, "forward", {"port": 2}, "params"),
    ({"dst_addr": (A, 32)}, "forward", {**FWD, "port": 512}, "does not fit"),
    ({"dst_addr": (A, 32)}, "forward", {**FWD, "smac": 1 << 48}, "does not fit"),
    ({"dst_addr": (A, 32)}, "drop", {"port": 1}, "params"),
])
def test_invalid_argument(loaded_tables, key, action, params, what):
    t, _ = loaded_tables
    with pytest.raises(TableError) as e:
        t.insert("route", key, action, params)
    assert e.value.code == "INVALID_ARGUMENT" and what in e.value.message
    assert t.count("route") == 0


def test_unknown_table_is_invalid_argument(loaded_tables):
    t, _ = loaded_tables
    with pytest.raises(TableError) as e:
        t.read("offload")
    assert e.value.code == "INVALID_ARGUMENT"


def test_full_table_is_resource_exhausted(tmp_path):
    require_root()
    obj = tmp_path / "small.o"
    compile_bpf(source_of("forwarding"), obj, defines={"ROUTE_TABLE_SIZE": "4"})
    pin = PIN_ROOT / "small"
    unpin(pin)
    load_object(obj, pin)
    spec = dataclasses.replace(FORWARDING, tables=(dataclasses.replace(ROUTE, size=4),))
    try:
        with PipelineTables(spec, pin) as t:
            for i in range(4):
                t.insert("route", {"dst_addr": (A + i, 32)}, "drop", {})
            with pytest.raises(TableError) as e:
                t.insert("route", {"dst_addr": (A + 10, 32)}, "drop", {})
            assert e.value.code == "RESOURCE_EXHAUSTED"
            assert t.count("route") == 4
            # A full table still accepts modifications and deletions, then inserts again.
            t.modify("route", {"dst_addr": (A, 32)}, "forward", FWD)
            t.delete("route", {"dst_addr": (A + 1, 32)})
            t.insert("route", {"dst_addr": (A + 10, 32)}, "drop", {})
            assert t.clear("route") == 4 and t.count("route") == 0
    finally:
        unpin(pin)


def test_table_error_rejects_unknown_code():
    with pytest.raises(ValueError):
        TableError("OOPS", "x")
