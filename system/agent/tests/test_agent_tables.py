"""The Python mirror (tables.py) against the headers and the compiled, loaded object."""

from __future__ import annotations

import re

import pytest
from agent_testing import PIN_ROOT, require_root

from system.agent import tables
from system.agent.loader import build_object
from system.bpf.loader import load_object, unpin
from system.bpf.syscall import Map

BPF_DIR = tables.BPF_DIR


def _c_fields(struct_name: str) -> list[tuple[str, str]]:
    text = (BPF_DIR / "structs.h").read_text()
    body = re.search(rf"struct {struct_name} \{{(.*?)\n\}};", text, re.S)
    assert body, struct_name
    return re.findall(r"^\s*(__u64|__u32|__u16|__be32|__be16)\s+(\w+);", body.group(1), re.M)


def test_counter_fields_match_the_header():
    fields = _c_fields("agent_counters")
    assert [name for _, name in fields] == list(tables.COUNTER_FIELDS)
    assert all(kind == "__u64" for kind, _ in fields)
    assert tables.COUNTERS.size == 8 * len(fields)


def test_struct_layouts_match_the_header():
    sizes = {"__u64": 8, "__u32": 4, "__u16": 2, "__be32": 4, "__be16": 2}
    key = _c_fields("flow_key")
    state = _c_fields("flow_state")
    assert [n for _, n in key] == ["client_ip", "client_port", "pad"]
    assert [n for _, n in state] == ["s", "delta", "flags", "fin_in_end", "fin_out_end", "rcv_nxt", "s_next",
                                     "syn_next", "rcv_high"]
    assert sum(sizes[k] for k, _ in key) == tables.FLOW_KEY.size == 8
    assert sum(sizes[k] for k, _ in state) == tables.FLOW_STATE.size == 40


def test_constants_match_the_header():
    defines = dict(re.findall(r"#define (\w+) (\d+)", (BPF_DIR / "consts.h").read_text()))
    assert int(defines["AGENT_FLOWS_SIZE"]) == tables.FLOWS_SIZE
    for bit, name in tables.FLAG_NAMES.items():
        assert int(defines[f"FLOW_{name.upper()}"]) == bit


def test_key_packing_is_network_order():
    raw = tables.pack_key(("198.18.60.1", 0x1234))
    assert raw == bytes([198, 18, 60, 1, 0x12, 0x34, 0, 0])
    assert tables.unpack_key(raw) == ("198.18.60.1", 0x1234)


@pytest.mark.root
def test_mirror_matches_the_compiled_object(tmp_path):
    require_root()
    obj = build_object(tmp_path / "agent.o").object_path
    pin = PIN_ROOT / "mirror"
    unpin(pin)
    loaded = load_object(obj, pin)
    try:
        assert loaded.programs() == sorted([tables.PROG_INGRESS, tables.PROG_EGRESS])
        assert loaded.maps() == sorted([tables.MAP_FLOWS, tables.MAP_COUNTERS])
        with Map.pinned(loaded.map_path(tables.MAP_FLOWS)) as flows:
            assert (flows.info.name, flows.info.type) == ("flows", tables.MAP_TYPE_LRU_HASH)
            assert flows.info.key_size == tables.FLOW_KEY.size
            assert flows.info.value_size == tables.FLOW_STATE.size
            assert flows.info.max_entries == tables.FLOWS_SIZE
        with Map.pinned(loaded.map_path(tables.MAP_COUNTERS)) as counters:
            assert (counters.info.name, counters.info.type) == ("counters", tables.MAP_TYPE_PERCPU_ARRAY)
            assert (counters.info.key_size, counters.info.value_size) == (4, tables.COUNTERS.size)
            assert counters.info.max_entries == 1
    finally:
        unpin(pin)
    assert not pin.exists()


@pytest.mark.root
def test_flows_size_can_be_set_at_build_time(tmp_path):
    require_root()
    obj = build_object(tmp_path / "agent.o", flows_size=1024).object_path
    pin = PIN_ROOT / "mirror-small"
    unpin(pin)
    loaded = load_object(obj, pin)
    try:
        with Map.pinned(loaded.map_path(tables.MAP_FLOWS)) as flows:
            assert flows.info.max_entries == 1024
    finally:
        unpin(pin)
