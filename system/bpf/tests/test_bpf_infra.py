"""Shared eBPF infrastructure: build, bpf(2) wrapper, loader, L4 checksum helpers under test run."""

from __future__ import annotations

import errno
import os
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from system.bpf.build import BuildError, compile_bpf
from system.bpf.loader import BPFFS, load_object, unpin
from system.bpf.syscall import BPF_EXIST, BPF_NOEXIST, BpfError, Map, Prog, enable_stats

PROBE = r"""
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "parsing.h"
#include "csum.h"

/* probe: a 2-entry hash to exercise the syscall wrapper. */
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 2);
         __type(key, __u32); __type(value, __u64); } probe SEC(".maps");

/* Rewrites the IPv4 destination of a TCP packet to 198.18.9.9 with the checksum helpers. */
SEC("tc")
int rewrite(struct __sk_buff *skb)
{
	struct cursor c;
	struct iphdr *ip;
	__be32 old, new = host_to_be32(0xc6120909);
	__u32 ip_off = sizeof(struct ethhdr);

	cursor_init(&c, (void *)(long)skb->data, (void *)(long)skb->data_end);
	if (!parse_ethhdr(&c) || !(ip = parse_iphdr(&c)) || ip->protocol != IPPROTO_TCP || ip->ihl != 5)
		return TC_ACT_SHOT;
	old = ip->daddr;
	ip->daddr = new;
	csum_replace4(&ip->check, old, new);
	tc_l4_replace_addr(skb, ip_off + 20 + 16, old, new, 0);
	return TC_ACT_OK;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (BPF)")


def test_build_is_deterministic_and_reports_clang_errors(tmp_path):
    src = tmp_path / "probe.c"
    src.write_text(PROBE)
    a = compile_bpf(src, tmp_path / "a.o")
    b = compile_bpf(src, tmp_path / "b.o")
    assert a.sha256 == b.sha256
    bad = tmp_path / "bad.c"
    bad.write_text("int f(void) { return undefined_symbol; }\n")
    with pytest.raises(BuildError, match="undefined_symbol"):
        compile_bpf(bad, tmp_path / "bad.o")
    assert not (tmp_path / "bad.o").exists()


@pytest.mark.root
def test_syscall_map_ops_and_checksum_helpers(tmp_path):
    _root()
    src = tmp_path / "probe.c"
    src.write_text(PROBE)
    compile_bpf(src, tmp_path / "probe.o")
    pin = BPFFS / "mrsc-infra"
    unpin(pin)
    obj = load_object(tmp_path / "probe.o", pin)
    try:
        with Map.pinned(obj.map_path("probe")) as m:
            assert (m.info.name, m.info.key_size, m.info.value_size, m.info.max_entries) == ("probe", 4, 8, 2)
            k = [struct.pack("<I", i) for i in range(3)]
            v = struct.pack("<Q", 7)
            m.update(k[0], v, BPF_NOEXIST)
            with pytest.raises(BpfError) as e:
                m.update(k[0], v, BPF_NOEXIST)
            assert e.value.errno == errno.EEXIST
            with pytest.raises(BpfError) as e:
                m.update(k[1], v, BPF_EXIST)
            assert e.value.errno == errno.ENOENT
            m.update(k[1], v)
            with pytest.raises(BpfError) as e:
                m.update(k[2], v)
            assert e.value.errno == errno.E2BIG
            assert sorted(m.iter_keys()) == sorted(k[:2])
            assert m.lookup(k[1]) == v and m.lookup(k[2]) is None
            m.delete(k[1])
            with pytest.raises(BpfError):
                m.delete(k[1])
        sent = Ether() / IP(src="198.18.0.1", dst="198.18.0.2") / TCP(sport=1, dport=80) / b"payload"
        stats = enable_stats()
        try:
            with Prog.pinned(obj.prog_path("rewrite")) as p:
                ret, out, _ = p.test_run(bytes(sent), repeat=3)
                info = p.info()
        finally:
            os.close(stats)
        assert ret == 0 and info.run_cnt == 3 and info.name == "rewrite"
        got = Ether(out)
        fresh = Ether(bytes(got))
        fresh[IP].chksum = None
        fresh[TCP].chksum = None
        fresh = Ether(bytes(fresh))
        assert got[IP].dst == "198.18.9.9"
        assert (got[IP].chksum, got[TCP].chksum) == (fresh[IP].chksum, fresh[TCP].chksum)
    finally:
        unpin(pin)
    assert not pin.exists()
