"""The Python mirror (tables.py) against the P4Info and against the compiled BPF object."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from p4.config.v1 import p4info_pb2

from system.bpf.build import compile_bpf
from system.bpf.loader import load_object, unpin
from system.bpf.syscall import Map
from system.switch.package import source_of
from system.switch.tables import DROP_REASONS, MAX_PORTS, PIPELINES, load_p4info
from system.switch.tests.conftest import PIN_ROOT, require_root

KINDS = {"exact": p4info_pb2.MatchField.EXACT, "lpm": p4info_pb2.MatchField.LPM,
         "ternary": p4info_pb2.MatchField.TERNARY}
BPF_DIR = Path(__file__).resolve().parents[1] / "bpf"
P4SRC = Path(__file__).resolve().parents[3] / "p4src"


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_spec_matches_p4info_both_ways(pipeline):
    spec, info = PIPELINES[pipeline], load_p4info(pipeline)
    actions = {a.preamble.id: a for a in info.actions}
    counters = {c.preamble.id: c for c in info.direct_counters}
    assert {t.preamble.name for t in info.tables} == {t.p4info_name for t in spec.tables}
    for ts in spec.tables:
        t = next(t for t in info.tables if t.preamble.name == ts.p4info_name)
        assert t.preamble.alias == ts.name
        assert t.size == ts.size
        assert [(m.name, m.bitwidth, m.match_type) for m in t.match_fields] == \
               [(f.name, f.bitwidth, KINDS[f.match_kind]) for f in ts.match_fields]
        refs = [actions[r.id] for r in t.action_refs]
        assert {a.preamble.name for a in refs} == {a.p4info_name for a in ts.actions}
        for a in refs:
            aspec = next(x for x in ts.actions if x.p4info_name == a.preamble.name)
            assert a.preamble.alias == aspec.name
            assert [(p.name, p.bitwidth) for p in a.params] == \
                   [(p.name, p.bitwidth) for p in aspec.params]
        if ts.const_default:
            assert actions[t.const_default_action_id].preamble.alias == ts.default_action
        else:
            assert t.const_default_action_id == 0
        default_only = {actions[r.id].preamble.alias for r in t.action_refs
                        if r.scope == p4info_pb2.ActionRef.DEFAULT_ONLY}
        assert default_only == {a.name for a in ts.actions if a.default_only}
        direct = [counters[i] for i in t.direct_resource_ids]
        assert [c.preamble.name for c in direct] == \
               ([ts.direct_counter_p4info_name] if ts.direct_counter else [])
        for c in direct:
            assert c.direct_table_id == t.preamble.id and c.spec.unit == p4info_pb2.CounterSpec.BOTH


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_p4_source_declares_the_p4info_names_and_ids(pipeline):
    """Every table and action of the P4Info is declared with its @id in p4src, every direct counter
    by its name (p4c-barefoot ignores @id on a DirectCounter and assigns its own id)."""
    text = "\n".join(p.read_text() for p in [P4SRC / f"{pipeline}.p4", *sorted((P4SRC / "include").glob("*.p4"))])
    info = load_p4info(pipeline)
    for c in info.direct_counters:
        assert re.search(rf"DirectCounter<[^;]*\b{c.preamble.alias}\s*;", text), c.preamble.name
    for kind, items in (("table", info.tables), ("action", info.actions)):
        for it in items:
            pat = rf"@id\(0x{it.preamble.id:08x}\)\s*\n\s*{kind}\b[^;{{]*\b{it.preamble.alias}\b"
            assert re.search(pat, text, re.IGNORECASE), f"{kind} {it.preamble.name} @id not in p4src"
    sizes = "\n".join(p.read_text() for p in sorted((P4SRC / "include").glob("*sizes.p4")))
    for t in info.tables:
        m = re.search(rf"#define {t.preamble.alias.upper()}_TABLE_SIZE (\d+)", sizes)
        assert m and int(m.group(1)) == t.size


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_spec_matches_compiled_object(pipeline, tmp_path):
    require_root()
    spec = PIPELINES[pipeline]
    pin = PIN_ROOT / f"corr-{pipeline}"
    unpin(pin)
    compiled = compile_bpf(source_of(pipeline), tmp_path / f"{pipeline}.o").object_path
    obj = load_object(compiled, pin)
    try:
        expected = {t.map_name: (t.key_size, t.value_size, t.size) for t in spec.tables}
        expected |= {m.name: (m.key_size, m.value_size, m.max_entries) for m in spec.maps}
        assert set(obj.maps()) == set(expected) | set(spec.internal_maps)
        for name, sizes in expected.items():
            with Map.pinned(obj.map_path(name)) as m:
                assert m.info.name == name[:15]   # the kernel keeps BPF_OBJ_NAME_LEN - 1
                assert (m.info.key_size, m.info.value_size, m.info.max_entries) == sizes, name
        assert obj.programs() == [spec.program]
    finally:
        unpin(pin)


def test_constants_match_the_c_headers():
    consts = (BPF_DIR / "consts.h").read_text()
    defines = dict(re.findall(r"#define (\w+) (\d+)", consts))
    assert int(defines["MAX_PORTS"]) == MAX_PORTS
    assert int(defines["NUM_DROP_REASONS"]) == len(DROP_REASONS)
    for i, reason in enumerate(DROP_REASONS):
        name = {"none": "DROP_NONE", "action_drop": "DROP_ACTION"}.get(reason, f"DROP_{reason.upper()}")
        assert int(defines[name]) == i, reason
    spec = PIPELINES["forwarding"].table("route")
    assert int(defines["ROUTE_TABLE_SIZE"]) == spec.size
    assert int(defines["TABLE_ROUTE"]) == spec.table_id
    assert {a.name: a.code for a in spec.actions} == {
        "forward": int(defines["ROUTE_ACTION_FORWARD"]), "drop": int(defines["ROUTE_ACTION_DROP"])}
