"""Pipeline `miresga`: its packet cases (system/testing/miresga_cases.py) on both runners, the
cookie of the eBPF program against system/switch/cookie.py, counters, and the tables facade's
keyless/default-only rules."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from system.bpf.build import compile_bpf
from system.bpf.loader import BPFFS, load_object, unpin
from system.bpf.syscall import Prog
from system.switch import cookie
from system.switch.package import build_package, source_of
from system.switch.tables import MIRESGA, PipelineTables, TableError
from system.switch.target import EmulatedSwitch
from system.switch.tests.conftest import require_root
from system.testing import miresga_cases as mc
from system.testing.netns import PacketIO, StarTopology
from system.testing.runners import TC_ACT_REDIRECT, TC_ACT_SHOT, TestRunRunner, verify

pytestmark = pytest.mark.root
PIN_ROOT = BPFFS / "mrsf-test"
IDS = [c.description for c in mc.CASES]


@pytest.fixture(scope="module")
def miresga_object(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bpf") / "miresga.o"
    compile_bpf(source_of("miresga"), out)
    return out


@pytest.fixture
def loaded(miresga_object):
    """The miresga object loaded and pinned (not attached), ports 1..4 on fake ifindexes, the
    cases' secret set."""
    require_root()
    pin = PIN_ROOT / "tables"
    unpin(pin)
    obj = load_object(miresga_object, pin)
    tables = PipelineTables(MIRESGA, pin)
    prog = Prog.pinned(obj.prog_path(MIRESGA.program))
    try:
        TestRunRunner.map_fake_ports(tables, 4)
        mc.set_secret(tables)
        yield tables, prog
    finally:
        prog.close()
        tables.close()
        unpin(pin)
        if PIN_ROOT.is_dir() and not any(PIN_ROOT.iterdir()):
            PIN_ROOT.rmdir()


@pytest.fixture(scope="module")
def star():
    require_root()
    topo = StarTopology(prefix="mrsf", ifprefix="mf", nports=4, subnet=215).up()
    switch = EmulatedSwitch(topo.switch_ns, topo.port_map, PIN_ROOT / "switch")
    try:
        mc.set_secret(switch.load(build_package("miresga")))
        pio = PacketIO(topo)
        try:
            yield topo, switch, pio
        finally:
            pio.close()
    finally:
        switch.unload()
        topo.down()
        if PIN_ROOT.is_dir() and not any(PIN_ROOT.iterdir()):
            PIN_ROOT.rmdir()


def _empty(tables: PipelineTables) -> None:
    for t in MIRESGA.tables:
        assert tables.count(t.name) == 0, f"the runner must undo its writes ({t.name})"


@pytest.mark.parametrize("case", mc.CASES, ids=IDS)
def test_case_bpf_test_run(case, loaded):
    if "bpf_test_run" in case.not_on:
        pytest.skip(case.not_on["bpf_test_run"])
    tables, prog = loaded
    verify(case, TestRunRunner(tables, prog).run(case))
    _empty(tables)


@pytest.mark.parametrize("case", mc.CASES, ids=IDS)
def test_case_over_veth(case, star):
    if "veth" in case.not_on:
        pytest.skip(case.not_on["veth"])
    _topo, switch, pio = star
    verify(case, mc.MiresgaVethRunner(switch.tables, pio).run(case))
    _empty(switch.tables)


LAYOUTS = (   # the common stacks' SYNs (miresga_parser.p4): random values in known layouts
    lambda m, w: (mc.MSS(m), mc.SACKOK, mc.TS, mc.NOP, mc.WS(w)),
    lambda m, w: (mc.MSS(m), mc.NOP, mc.NOP, mc.SACKOK, mc.NOP, mc.WS(w)),
    lambda m, w: (mc.MSS(m), mc.NOP, mc.NOP, mc.TS, mc.NOP, mc.WS(w)),
    lambda m, w: (mc.MSS(m), mc.NOP, mc.WS(w), mc.NOP, mc.NOP, mc.SACKOK),
    lambda m, w: (mc.MSS(m), mc.NOP, mc.WS(w), mc.NOP, mc.NOP, mc.TS, mc.SACKOK),
    lambda m, w: (mc.MSS(m), mc.NOP, mc.WS(w)),
    lambda m, w: (mc.MSS(m),),
)
MSS_VALUES = [0, 88, 535, 536, 1219, 1220, 1300, 1439, 1440, 1459, 1460, 1461, 8960, 65535]


def _random_options(rng: random.Random) -> bytes:
    """Half the time a common stack's layout with random values, else a random but well-formed
    option area (<= 40 bytes) in random order (mostly the parser's fallback)."""
    if rng.random() < 0.5:
        return mc.opts_bytes(*rng.choice(LAYOUTS)(rng.choice(MSS_VALUES), rng.randrange(0, 20)))
    parts = []
    if rng.random() < 0.8:
        parts.append(mc.MSS(rng.choice(MSS_VALUES)))
    if rng.random() < 0.6:
        parts.append(mc.SACKOK)
    if rng.random() < 0.6:
        parts.append(mc.WS(rng.randrange(0, 20)))
    if rng.random() < 0.4:
        parts.append(mc.TS)
    if rng.random() < 0.3:
        parts.append(bytes([rng.randrange(5, 250), 4, 0xAB, 0xCD]))
    parts += [mc.NOP] * rng.randrange(0, 3)
    rng.shuffle(parts)
    raw = mc.opts_bytes(*parts)
    return raw[:40] if len(raw) <= 40 else mc.opts_bytes(*parts[:3])


def test_ebpf_cookie_equals_python_for_random_endpoints_keys_slots_and_options(loaded):
    tables, prog = loaded
    rng = random.Random(20250428)
    for entry in mc.STATIC[:1]:
        tables.insert(entry.table, entry.key, entry.action, entry.params)
    try:
        for i in range(300):
            key, slot = rng.getrandbits(64) or 1, rng.getrandbits(32)
            if i % 25 == 0:   # a few VIP endpoints: the vip table holds one
                tables.clear("vip")
                vip, vport = f"198.18.{rng.randrange(256)}.{rng.randrange(1, 255)}", rng.randrange(1, 65536)
                tables.insert("vip", {"dst_addr": int.from_bytes(bytes(map(int, vip.split("."))), "big"),
                                      "dst_port": vport}, "mark_vip", {})
            mc.set_secret(tables, key, slot)
            client = f"198.19.{rng.randrange(256)}.{rng.randrange(256)}"
            cport, isn = rng.randrange(1, 65536), rng.getrandbits(32)
            opts = _random_options(rng)
            sent = (Ether(src=mc.CLIENT_MAC, dst=mc.SW_MAC[1]) / IP(src=client, dst=vip)
                    / TCP(sport=cport, dport=vport, flags="S", seq=isn, dataofs=5 + len(opts) // 4)
                    / opts)
            retval, data, _ = prog.test_run(bytes(sent), ctx=TestRunRunner.ctx_for(1))
            assert retval == TC_ACT_REDIRECT
            out = Ether(data)
            parsed = cookie.SynOptions.parse(opts)
            want = cookie.encode(client, cport, vip, vport, key, slot, parsed)
            assert out[TCP].seq == want, (opts.hex(), hex(out[TCP].seq), hex(want))
            assert (out[TCP].seq >> 7) & 1 == slot & 1
            assert bytes(out[TCP])[20:32] == cookie.synack_options(parsed)
            assert cookie.check(want, client, cport, vip, vport, [(rng.getrandbits(64), slot + 1), (key, slot)]) \
                == cookie.decode_bits(want)
    finally:
        tables.clear("vip")


def _syn(client: str, cport: int, opts: bytes = b"") -> bytes:
    return bytes(Ether(src=mc.CLIENT_MAC, dst=mc.SW_MAC[1]) / IP(src=client, dst=mc.VIP)
                 / TCP(sport=cport, dport=mc.VIP_PORT, flags="S", seq=1000, dataofs=5 + len(opts) // 4) / opts)


def test_no_syn_is_answered_before_the_control_plane_wrote_a_key(miresga_object):
    """A fresh load (action 0) and a written key of 0 both drop SYNs to the VIP (no_cookie_key)."""
    require_root()
    pin = PIN_ROOT / "nokey"
    unpin(pin)
    obj = load_object(miresga_object, pin)
    tables = PipelineTables(MIRESGA, pin)
    prog = Prog.pinned(obj.prog_path(MIRESGA.program))
    try:
        TestRunRunner.map_fake_ports(tables, 4)
        tables.insert("vip", mc.VIP_ENTRY.key, "mark_vip", {})
        for expect_drops, write in ((1, None), (2, (0, 5)), (2, (mc.KEY, mc.SLOT))):
            if write is not None:
                mc.set_secret(tables, *write)
            retval, data, _ = prog.test_run(_syn("198.19.1.2", 40000), ctx=TestRunRunner.ctx_for(1))
            assert tables.drop_counters()["no_cookie_key"]["packets"] == expect_drops
            if write is None or write[0] == 0:
                assert retval == TC_ACT_SHOT
            else:           # a key: the SYN-ACK carries its cookie
                assert retval == TC_ACT_REDIRECT
                assert Ether(data)[TCP].seq == cookie.encode("198.19.1.2", 40000, mc.VIP, mc.VIP_PORT,
                                                             mc.KEY, mc.SLOT, cookie.SynOptions())
    finally:
        prog.close()
        tables.close()
        unpin(pin)


def test_a_syn_answered_in_slot_n_completes_in_slot_n_plus_1_not_later(loaded):
    """The switch answers in slot n; the control plane rotates (key', n+1): the checker's accepted
    pairs (current, previous) still take the cookie; after the next rotation they refuse it."""
    tables, prog = loaded
    tables.insert("vip", mc.VIP_ENTRY.key, "mark_vip", {})
    try:
        rng = random.Random(10)
        keys = [rng.getrandbits(64) | 1 for _ in range(4)]
        slot = 7
        mc.set_secret(tables, keys[0], slot)
        opts = mc.opts_bytes(mc.MSS(1460), mc.NOP, mc.WS(7), mc.NOP, mc.NOP, mc.SACKOK)
        retval, data, _ = prog.test_run(_syn("198.19.3.4", 41000, opts), ctx=TestRunRunner.ctx_for(1))
        assert retval == TC_ACT_REDIRECT
        s = Ether(data)[TCP].seq
        args = ("198.19.3.4", 41000, mc.VIP, mc.VIP_PORT)
        want = cookie.decode_bits(s)
        assert cookie.check(s, *args, [(keys[0], slot)]) == want                          # slot n
        mc.set_secret(tables, keys[1], slot + 1)                                            # rotation
        retval, data, _ = prog.test_run(_syn("198.19.3.4", 41000, opts), ctx=TestRunRunner.ctx_for(1))
        assert Ether(data)[TCP].seq != s and (Ether(data)[TCP].seq >> 7) & 1 == (slot + 1) & 1
        assert cookie.check(s, *args, [(keys[1], slot + 1), (keys[0], slot)]) == want      # n+1
        assert cookie.check(s, *args, [(keys[2], slot + 2), (keys[1], slot + 1)]) is None   # n+2
    finally:
        tables.delete("vip", mc.VIP_ENTRY.key)


def test_python_cookie_known_answers():
    """Pin the Python side to the README's format: HalfSipHash-2-4 over the four LE words."""
    import zlib
    key, slot = 0x0706050403020100, 0x12345
    words = (0xC6120001, 0xC6120064, 40000 << 16 | 80, 0x12345 << 8 | 0x77)
    mac = cookie.halfsiphash24(bytes(range(8)), b"".join(w.to_bytes(4, "little") for w in words))
    c = cookie.encode("198.18.0.1", 40000, "198.18.0.100", 80, key, slot,
                      cookie.SynOptions(mss=1460, sack_ok=True, wscale=7))
    assert c == (mac & 0xFFFFFF00) | 0x80 | (3 << 5) | (1 << 4) | 7
    assert cookie.decode_bits(c) == cookie.Decoded(mss=1460, mss_idx=3, sack_ok=True, wscale=7)
    assert cookie.decode_bits((mac & 0xFFFFFF00) | 15).wscale is None
    keys = [(key, slot)]
    assert cookie.check(c, "198.18.0.1", 40000, "198.18.0.100", 80, keys) == cookie.decode_bits(c)
    assert cookie.check(c ^ 0x80, "198.18.0.1", 40000, "198.18.0.100", 80, keys) is None
    assert cookie.check(c, "198.18.0.1", 40001, "198.18.0.100", 80, keys) is None
    assert [cookie.mss_index(m) for m in (None, 100, 536, 1219, 1220, 1439, 1440, 1459, 1460, 9000)] == \
        [0, 0, 0, 0, 1, 1, 2, 2, 3, 3]
    assert cookie.frontend_bucket("198.18.0.1", 40000) == zlib.crc32(bytes([198, 18, 0, 1, 0x9C, 0x40])) % 256
    assert cookie.synack_options(cookie.SynOptions()) == bytes([2, 4, 5, 0xB4, 1, 1, 1, 1, 1, 1, 1, 1])


def test_table_and_direct_counters(loaded):
    tables, prog = loaded
    runner = TestRunRunner(tables, prog)
    by = {c.description: c for c in mc.CASES}
    syn = mc.SYN_CASES[0]
    ack = by["pure ACK of an offloaded endpoint -> destination rewritten to the back-end"]
    # repeat=1: a test run repeats on the same skb, which the first run has rewritten
    for _ in range(3):
        runner.run(syn)
    for _ in range(2):
        runner.run(ack)
    vip = tables.counters("vip")
    assert vip["hit_packets"] == 5 and vip["miss_packets"] == 0
    assert vip["hit_bytes"] == 3 * len(bytes(syn.send)) + 2 * len(bytes(ack.send))
    assert tables.counters("syn_cookie")["miss_packets"] == 3
    assert tables.counters("offload")["hit_packets"] == 2
    assert tables.counters("backend_by_index")["hit_packets"] == 2
    assert tables.counters("frontend_bucket") == dict.fromkeys(
        ("hit_packets", "hit_bytes", "miss_packets", "miss_bytes"), 0)
    # direct counters, per entry
    for e in ack.entries:
        tables.insert(e.table, e.key, e.action, e.params)
    try:
        for _ in range(4):
            prog.test_run(bytes(ack.send), ctx=TestRunRunner.ctx_for(1))
        assert tables.entry_counters("offload", mc.OFFLOAD_ENTRY.key) == \
            {"packets": 4, "bytes": 4 * len(bytes(ack.send))}
        assert tables.entry_counters("vip", mc.VIP_ENTRY.key)["packets"] == 4
        assert tables.entry_counters("backends", mc.BACKENDS_ENTRY.key)["packets"] == 0
        tables.modify("offload", mc.OFFLOAD_ENTRY.key, "to_backend", {"index": 8})
        assert tables.entry_counters("offload", mc.OFFLOAD_ENTRY.key)["packets"] == 4
    finally:
        for e in reversed(ack.entries):
            tables.delete(e.table, e.key)
    # port counters: SYN-ACKs leave by the ingress port, counted with their own length (66)
    pc = tables.port_counters()
    assert (pc[1]["tx_packets"], pc[1]["tx_bytes"]) == (3, 3 * 66)
    assert (pc[3]["tx_packets"], pc[3]["tx_bytes"]) == (6, 6 * len(bytes(ack.send)))
    assert pc[1]["rx_packets"] == 3 + 2 + 4


def test_syn_cookie_is_a_keyless_default_and_miss_actions_are_default_only(loaded):
    tables, _prog = loaded
    assert tables.get_default("syn_cookie").params == {"key": mc.KEY, "slot": mc.SLOT}
    tables.set_default("syn_cookie", "set_cookie_secret", {"key": (1 << 64) - 1, "slot": 0xFFFFFFFF})
    assert tables.get_default("syn_cookie").params == {"key": (1 << 64) - 1, "slot": 0xFFFFFFFF}
    assert tables.read("syn_cookie") == [] and tables.count("syn_cookie") == 0
    for bad in (lambda: tables.insert("syn_cookie", {}, "set_cookie_secret", {"key": 1, "slot": 1}),
                lambda: tables.set_default("syn_cookie", "set_cookie_secret", {"key": 1 << 64, "slot": 1}),
                lambda: tables.set_default("vip", "vip_miss", {}),
                lambda: tables.insert("vip", mc.VIP_ENTRY.key, "vip_miss", {}),
                lambda: tables.insert("offload", mc.OFFLOAD_ENTRY.key, "to_backend", {"index": 1 << 16})):
        with pytest.raises(TableError) as ei:
            bad()
        assert ei.value.code == "INVALID_ARGUMENT"
    assert tables.get_default("vip").action == "vip_miss"
    tables.insert("offload", mc.OFFLOAD_ENTRY.key, "to_backend", {"index": 3})
    with pytest.raises(TableError) as ei:
        tables.insert("offload", mc.OFFLOAD_ENTRY.key, "to_backend", {"index": 4})
    assert ei.value.code == "ALREADY_EXISTS"
    assert tables.get("offload", mc.OFFLOAD_ENTRY.key).params == {"index": 3}
    tables.delete("offload", mc.OFFLOAD_ENTRY.key)


def test_fresh_load_has_secret_zero(miresga_object):
    require_root()
    pin = PIN_ROOT / "fresh"
    unpin(pin)
    load_object(miresga_object, pin)
    try:
        with PipelineTables(MIRESGA, pin) as tables:
            assert tables.get_default("syn_cookie").params == {"key": 0, "slot": 0}
            raw = struct.pack("<I", 0)
            assert tables._map("syn_cookie").lookup(raw) == bytes(16)
    finally:
        unpin(pin)


def test_guard_counts_its_drops_and_costs_client_to_vip_traffic_nothing(loaded):
    """The guard's drops: the untrusted_port reason, protected_hosts' entry, trusted_ports' miss and
    the port's drop counter each grow by exactly the packets sent; a client -> VIP ACK (vip hit)
    never looks the guard's tables up; a front-end's SYN to the back-end counts as a trusted hit."""
    tables, prog = loaded
    attack = bytes(mc.at_backend(mc._tcp("S")))
    from_fe = bytes(mc.at_backend(mc._tcp("S"), 2))
    ack = bytes(mc.client_seg("A"))
    for e in mc.GUARDED:
        tables.insert(e.table, e.key, e.action, e.params)
    try:
        for _ in range(5):
            assert prog.test_run(attack, ctx=TestRunRunner.ctx_for(1))[0] == TC_ACT_SHOT
        for _ in range(3):
            assert prog.test_run(ack, ctx=TestRunRunner.ctx_for(1))[0] == TC_ACT_REDIRECT
        for _ in range(2):
            assert prog.test_run(from_fe, ctx=TestRunRunner.ctx_for(2))[0] == TC_ACT_REDIRECT
        assert tables.drop_counters()["untrusted_port"] == {"packets": 5, "bytes": 5 * len(attack)}
        assert tables.port_counters()[1]["drops"] == 5
        assert tables.entry_counters("protected_hosts", mc.PROTECTED_ENTRY.key) == \
            {"packets": 7, "bytes": 5 * len(attack) + 2 * len(from_fe)}
        assert tables.counters("protected_hosts")["hit_packets"] == 7
        assert tables.counters("protected_hosts")["miss_packets"] == 0     # the ACKs hit vip first
        assert tables.counters("trusted_ports")["miss_packets"] == 5
        assert tables.counters("trusted_ports")["hit_packets"] == 2
        assert tables.entry_counters("trusted_ports", mc.trusted(2).key)["packets"] == 2
        assert tables.entry_counters("trusted_ports", mc.trusted(3).key)["packets"] == 0
        assert tables.entry_counters("offload", mc.OFFLOAD_ENTRY.key)["packets"] == 3
        assert tables.counters("backends")["hit_packets"] + tables.counters("backends")["miss_packets"] == 2
    finally:
        for e in reversed(mc.GUARDED):
            tables.delete(e.table, e.key)
