"""The eBPF fast path with BPF_PROG_TEST_RUN (no namespaces): verdicts, rewrites, checksums,
counters; and the Python mirror of the maps checked against the compiled object."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from conftest import BACKENDS, CLIENT, CLIENT_PORT, FE_MAC, SWITCH_MAC, VIP, VIP_PORT, require_root
from system.bpf.loader import load_object, unpin
from system.bpf.syscall import Map, Prog
from system.frontend import fastpath as fp
from system.frontend.packets import ip_bytes, mac_bytes

TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7
PUNT_IFINDEX = 9999
BE = BACKENDS["be1"]
PIN = Path(f"/sys/fs/bpf/mrsh-fe-testrun-{os.getpid()}")


@pytest.fixture(scope="module")
def loaded():
    require_root()
    obj = fp.build_object()
    lo = load_object(obj, PIN)
    maps = {name: Map.pinned(lo.map_path(name)) for name in fp.MAP_LAYOUT}
    prog = Prog.pinned(lo.prog_path("fe_ingress"))
    maps["fe_config"].update(struct.pack("<I", 0), fp.FE_CONFIG.pack(
        ip_bytes(VIP), struct.pack("!H", VIP_PORT), 0, PUNT_IFINDEX, 1))
    maps["backends"].update(fp.endpoint_key(ip_bytes(BE.ip), BE.port), struct.pack("<I", BE.index))
    yield maps, prog
    for m in maps.values():
        m.close()
    unpin(PIN)


def counters(maps) -> dict[str, int]:
    out = {}
    for i, name in enumerate(fp.REASONS):
        out[name] = sum(fp.FE_COUNTER.unpack(v)[0] for v in maps["fe_counters"].lookup_percpu(struct.pack("<I", i)))
    return out


def set_flow(maps, flags: int, start: int = 0, end: int = 0, port: int = CLIENT_PORT) -> None:
    e = fp.FlowEntry(ip_bytes(BE.ip), BE.port, flags, mac_bytes(BE.mac), mac_bytes(SWITCH_MAC), mac_bytes(FE_MAC),
                     start, end, 1)
    maps["flows"].update(fp.endpoint_key(ip_bytes(CLIENT), port), e.pack())


def run(loaded, frame: bytes) -> tuple[int, Ether, dict[str, int]]:
    maps, prog = loaded
    before = counters(maps)
    ret, out, _ = prog.test_run(frame)
    after = counters(maps)
    return ret, Ether(out), {k: after[k] - before[k] for k in after if after[k] != before[k]}


def c2b(flags="A", payload=b"", seq=5000, port=CLIENT_PORT) -> bytes:
    p = Ether(src="02:00:00:00:00:99", dst=FE_MAC) / IP(src=CLIENT, dst=VIP, id=9) / TCP(
        sport=port, dport=VIP_PORT, flags=flags, seq=seq, ack=777, window=501)
    return bytes(p / Raw(payload) if payload else p)


def b2c(flags="A", payload=b"") -> bytes:
    p = Ether(src="02:00:00:00:00:98", dst=FE_MAC) / IP(src=BE.ip, dst=CLIENT, id=10) / TCP(
        sport=BE.port, dport=CLIENT_PORT, flags=flags, seq=888, ack=5000, window=300)
    return bytes(p / Raw(payload) if payload else p)


def checksums_ok(p: Ether) -> bool:
    fresh = Ether(bytes(p))
    del fresh[IP].chksum
    del fresh[TCP].chksum
    again = Ether(bytes(fresh))
    return again[IP].chksum == p[IP].chksum and again[TCP].chksum == p[TCP].chksum


def test_python_mirror_matches_the_object(loaded):
    maps, _ = loaded
    for name, (k, v) in fp.MAP_LAYOUT.items():
        assert (maps[name].info.key_size, maps[name].info.value_size) == (k, v), name
    assert maps["flows"].info.type_name == "lru_hash"
    assert maps["fe_counters"].info.max_entries == len(fp.REASONS)
    consts = (fp.BPF_DIR / "consts.h").read_text()
    for bit, name in ((fp.FLOW_F_C2B_ACK, "FLOW_F_C2B_ACK"), (fp.FLOW_F_B2C, "FLOW_F_B2C"),
                      (fp.FLOW_F_C2B_DATA, "FLOW_F_C2B_DATA")):
        assert f"#define {name} {bit:#x}" in " ".join(consts.split())


def test_pure_ack_of_a_fast_flow_is_rewritten_to_the_backend(loaded):
    set_flow(loaded[0], fp.FLOW_F_C2B_ACK | fp.FLOW_F_B2C)
    sent = Ether(c2b())
    ret, out, d = run(loaded, bytes(sent))
    assert ret == TC_ACT_REDIRECT and d == {"c2b_fast": 1}
    assert (out[Ether].dst, out[Ether].src) == (BE.mac, FE_MAC)
    assert (out[IP].src, out[IP].dst, out[TCP].sport, out[TCP].dport) == (CLIENT, BE.ip, CLIENT_PORT, BE.port)
    assert (out[TCP].seq, out[TCP].ack, out[TCP].window, out[IP].id) == (5000, 777, 501, 9)
    assert checksums_ok(out)
    e = fp.FlowEntry.unpack(loaded[0]["flows"].lookup(fp.endpoint_key(ip_bytes(CLIENT), CLIENT_PORT)))
    assert e.last_ns > 1


def test_backend_segment_gets_the_vip_as_source(loaded):
    set_flow(loaded[0], fp.FLOW_F_C2B_ACK | fp.FLOW_F_B2C)
    ret, out, d = run(loaded, b2c("PA", b"x" * 1000))
    assert ret == TC_ACT_REDIRECT and d == {"b2c_fast": 1}
    assert (out[IP].src, out[TCP].sport, out[IP].dst, out[TCP].dport) == (VIP, VIP_PORT, CLIENT, CLIENT_PORT)
    assert (out[Ether].dst, out[Ether].src) == (SWITCH_MAC, FE_MAC)
    assert bytes(out[TCP].payload) == b"x" * 1000 and checksums_ok(out)


@pytest.mark.parametrize("desc,flags,frame,reason", [
    ("data not cleared", fp.FLOW_F_C2B_ACK | fp.FLOW_F_B2C, lambda: c2b("PA", b"GET / HTTP/1.1\r\n\r\n"),
     "punt_c2b_data"),
    ("client FIN", fp.FLOW_F_C2B_ACK | fp.FLOW_F_B2C, lambda: c2b("FA"), "punt_c2b_ctrl"),
    ("client RST", fp.FLOW_F_C2B_ACK | fp.FLOW_F_B2C, lambda: c2b("R"), "punt_c2b_ctrl"),
    ("pure ACK, flow without the ACK flag", fp.FLOW_F_B2C, lambda: c2b("A"), "punt_c2b_slow"),
    ("no flow", 0, lambda: c2b("PA", b"x", port=CLIENT_PORT + 1), "punt_c2b_no_flow"),
    ("back-end SYN-ACK", fp.FLOW_F_C2B_ACK | fp.FLOW_F_B2C, lambda: b2c("SA"), "punt_b2c_ctrl"),
    ("back-end FIN", fp.FLOW_F_C2B_ACK | fp.FLOW_F_B2C, lambda: b2c("FA"), "punt_b2c_ctrl"),
    ("response head awaited (auto)", fp.FLOW_F_C2B_ACK, lambda: b2c("PA", b"HTTP/1.1 200 OK\r\n"),
     "punt_b2c_slow"),
])
def test_punted_to_user_space_unchanged(loaded, desc, flags, frame, reason):
    set_flow(loaded[0], flags)
    sent = frame()
    ret, out, d = run(loaded, sent)
    assert ret == TC_ACT_REDIRECT and d == {reason: 1}, desc
    assert bytes(out) == sent


def test_cleared_body_range_goes_fast_and_beyond_is_punted(loaded):
    set_flow(loaded[0], fp.FLOW_F_C2B_ACK | fp.FLOW_F_B2C | fp.FLOW_F_C2B_DATA, start=5000, end=5000 + 3000)
    ret, out, d = run(loaded, c2b("A", b"b" * 1400, seq=5000))
    assert ret == TC_ACT_REDIRECT and d == {"c2b_fast": 1} and out[IP].dst == BE.ip and checksums_ok(out)
    ret, out, d = run(loaded, c2b("A", b"b" * 1400, seq=5000 + 1400 + 1400))   # crosses the end
    assert ret == TC_ACT_REDIRECT and d == {"punt_c2b_data": 1} and out[IP].dst == VIP
    # Range across the sequence-number wrap.
    set_flow(loaded[0], fp.FLOW_F_C2B_DATA, start=0xFFFFFF00, end=0x100)
    _ret, out, d = run(loaded, c2b("A", b"w" * 0x100, seq=0xFFFFFF80))
    assert d == {"c2b_fast": 1}


def test_other_traffic_passes_to_the_kernel(loaded):
    udp = Ether(dst=FE_MAC) / IP(src=CLIENT, dst=VIP) / UDP(sport=1, dport=VIP_PORT) / Raw(b"u")
    other = Ether(dst=FE_MAC) / IP(src=CLIENT, dst="198.18.7.21") / TCP(sport=5, dport=22)
    for frame in (udp, other):
        ret, _out, d = run(loaded, bytes(frame))
        assert ret == TC_ACT_OK and d == {"pass": 1}
