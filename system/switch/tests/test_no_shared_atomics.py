"""No locked read-modify-write on shared map values, no misaligned 8-byte field in a map value
(system/switch/README.md, "Counters"): the compiled switch pipelines, the front-end fast path and
the back-end agent, checked by their instructions (llvm-objdump) and their maps' BTF. No root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from system.bpf import audit
from system.bpf.build import compile_bpf
from system.switch.package import source_of
from system.switch.tables import PIPELINES

ROOT = Path(__file__).resolve().parents[3]
FRONTEND = ROOT / "system" / "frontend" / "bpf" / "frontend.c"
AGENT = ROOT / "system" / "agent" / "bpf" / "agent.c"

# The pattern the switch had (forwarding.h before issue 17): a direct counter inside an LPM trie
# value, incremented with __sync_fetch_and_add.
OLD_ROUTE = r"""
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
struct route_key { __u32 prefixlen; __u32 dst_addr; };
struct route_value { __u32 action; __u32 port; __u8 smac[6]; __u8 dmac[6]; __u32 pad;
	__u64 packets; __u64 bytes; };
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16);
	__type(key, struct route_key);
	__type(value, struct route_value);
} route SEC(".maps");
SEC("tc")
int pipe_ingress(struct __sk_buff *skb)
{
	struct route_key key = {32, skb->mark};
	struct route_value *rv = bpf_map_lookup_elem(&route, &key);

	if (!rv)
		return TC_ACT_SHOT;
	__sync_fetch_and_add(&rv->packets, 1);
	__sync_fetch_and_add(&rv->bytes, skb->len);
	return TC_ACT_OK;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _compile(source: Path, tmp_path: Path) -> Path:
    return compile_bpf(source, tmp_path / f"{source.stem}.o").object_path


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("audit")
    out = {name: _compile(source_of(name), tmp) for name in sorted(PIPELINES)}
    out["frontend"] = _compile(FRONTEND, tmp)
    out["agent"] = _compile(AGENT, tmp)
    return out


def test_the_audit_catches_the_old_route_counter(tmp_path):
    src = tmp_path / "old_route.c"
    src.write_text(OLD_ROUTE)
    obj = _compile(src, tmp_path)
    insns = audit.atomic_instructions(obj)
    offsets = sorted(int(m.group(1)) for i in insns
                     if (m := re.fullmatch(r"lock \*\(u64 \*\)\(r\d \+ (\d+)\) \+= r\d", i.text)))
    assert offsets == [24, 32] and len(insns) == 2, insns
    fields = {f.field: f for f in audit.map_u64_fields(obj)}
    assert set(fields) == {"packets", "bytes"}
    # trie node header (24 bytes on 6.18, 40 before) + 4 bytes of key data, then the value.
    value_at = audit.lpm_node_header() + 4
    assert value_at % 8 == 4
    assert (fields["packets"].element_offset, fields["bytes"].element_offset) == (value_at + 24, value_at + 32)
    assert not fields["packets"].aligned and not fields["bytes"].aligned
    assert fields["packets"].map_type == "lpm_trie"


@pytest.mark.parametrize("name", [*sorted(PIPELINES), "frontend"])
def test_no_atomic_instruction(objects, name):
    assert audit.atomic_instructions(objects[name]) == []


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_switch_maps_hold_64_bit_fields_only_per_cpu(objects, name):
    """Every counter of the switch (direct, per table, per port, per drop reason) is per-CPU;
    no table's key or value has a 64-bit field at all."""
    fields = audit.map_u64_fields(objects[name])
    maps = {f.map_name for f in fields}
    direct = {t.direct_counter for t in PIPELINES[name].tables if t.direct_counter}
    assert direct and direct <= maps
    assert {"port_counters", "table_counters", "drop_counters"} <= maps
    shared = [f for f in fields if f.map_type not in audit.PERCPU_TYPES]
    assert shared == []
    assert all(f.aligned for f in fields)


@pytest.mark.parametrize("name", ["frontend", "agent"])
def test_every_64_bit_map_field_is_aligned_in_the_kernel_element(objects, name):
    fields = audit.map_u64_fields(objects[name])
    assert fields
    assert [f for f in fields if not f.aligned] == []


def test_agent_atomics_are_only_or_on_the_flow_flags(objects):
    """The agent's only atomics set close/handshake bits in flows.flags (fetch-or: the ingress and
    egress hooks of one connection may run on two CPUs at once). They run on the SYN-ACK and on
    the segments that close a connection, not per data packet; counters are per-CPU."""
    flags = [f for f in audit.map_u64_fields(objects["agent"]) if f.map_name == "flows"]
    assert [(f.field, f.aligned) for f in flags] == [("flags", True)]
    off = flags[0].offset
    insns = audit.atomic_instructions(objects["agent"])
    assert insns
    for i in insns:
        assert re.fullmatch(rf"(r\d = atomic_fetch_or\(\(u64 \*\)\(r\d \+ {off}\), r\d\)|"
                            rf"lock \*\(u64 \*\)\(r\d \+ {off}\) \|= r\d)", i.text), i.text
