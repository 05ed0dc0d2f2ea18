"""Packet cases of pipeline `switch_only` (docs/switch-only-datapath.md): the SYN-ACK without SACK,
the per-connection splice (conn_in, conn_out) with sequence translation, the CPU port for
everything the slow path handles, and route for everything else (the slow path's own frames too).

Ports: 1 client, 2 back-end, 3 another host, 64 the CPU port. Whoever loads the pipeline for these
cases sets the cookie secret and the CPU port (`configure`). MACs belong to no host, so the
receiving host's kernel ignores every frame out (runners capture them on raw sockets).
"""

from __future__ import annotations

from collections.abc import Callable

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from system.switch import cookie
from system.switch.tables import PipelineTables
from system.testing import miresga_cases as mc
from system.testing.cases import Dropped, Forwarded, PacketCase, TableEntry, ip_checksum_ok
from system.testing.runners import Outcome, VethRunner, _delta, _EntriesInstalled, _related, _snapshot

KEY, SLOT = mc.KEY, mc.SLOT    # miresga_cases.synack checks cookies with these
CPU_PORT = 64
CLIENT, CLIENT_MAC, CPORT = "198.18.218.10", "02:aa:00:00:00:01", 40123
CPORT2 = 51000                # a client endpoint without entries
VIP, VIP_PORT = "198.18.218.100", 80
BACKEND, BE_PORT = "198.18.218.30", 8080
OTHER = "198.18.218.44"
SW_MAC = {1: "02:bb:00:00:00:01", 2: "02:bb:00:00:00:02", 3: "02:bb:00:00:00:03", CPU_PORT: "02:bb:00:00:00:40"}
BE_MAC, OTHER_MAC, CPU_MAC = "02:cc:00:00:00:02", "02:cc:00:00:00:03", "02:cc:00:00:00:40"
DELTA = 0x2345_6789           # b - s of the installed connection
DELTA_WRAP = 0xE000_0000      # makes ack + delta and seq - delta wrap around 2^32
CPORT_WRAP = 40999            # the client endpoint installed with DELTA_WRAP
PAYLOAD = b"GET /switch-only HTTP/1.1\r\nHost: vip\r\n\r\n"
REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" * 8


def _ip(addr: str) -> int:
    return int.from_bytes(bytes(int(x) for x in addr.split(".")), "big")


def _mac(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def configure(tables: PipelineTables, key: int = KEY, cpu_port: int = CPU_PORT, slot: int = SLOT) -> None:
    """The control plane's part: the cookie secret and the CPU port (both keyless defaults)."""
    tables.set_default("syn_cookie", "set_cookie_secret", {"key": key, "slot": slot})
    tables.set_default("slow_path", "set_slow_path", {"port": cpu_port})


# --- entries ------------------------------------------------------------------------------------

VIP_ENTRY = TableEntry("vip", {"dst_addr": _ip(VIP), "dst_port": VIP_PORT}, "mark_vip")
BACKENDS_ENTRY = TableEntry("backends", {"src_addr": _ip(BACKEND), "src_port": BE_PORT}, "mark_backend")
ROUTE_CLIENT = TableEntry("route", {"dst_addr": (_ip(CLIENT), 32)}, "forward",
                          {"port": 1, "smac": _mac(SW_MAC[1]), "dmac": _mac(CLIENT_MAC)})
ROUTE_BACKEND = TableEntry("route", {"dst_addr": (_ip(BACKEND), 32)}, "forward",
                           {"port": 2, "smac": _mac(SW_MAC[2]), "dmac": _mac(BE_MAC)})
ROUTE_OTHER = TableEntry("route", {"dst_addr": (_ip(OTHER), 32)}, "forward",
                         {"port": 3, "smac": _mac(SW_MAC[3]), "dmac": _mac(OTHER_MAC)})
ROUTE_VIP = TableEntry("route", {"dst_addr": (_ip(VIP), 32)}, "forward",
                       {"port": 3, "smac": _mac(SW_MAC[3]), "dmac": _mac(OTHER_MAC)})


def conn_in_entry(cport: int = CPORT, delta: int = DELTA) -> TableEntry:
    return TableEntry("conn_in", {"client_addr": _ip(CLIENT), "client_port": cport, "vip_addr": _ip(VIP),
                                  "vip_port": VIP_PORT}, "to_backend",
                      {"backend_addr": _ip(BACKEND), "backend_port": BE_PORT, "port": 2,
                       "smac": _mac(SW_MAC[2]), "dmac": _mac(BE_MAC), "ack_delta": delta})


def conn_out_entry(cport: int = CPORT, delta: int = DELTA) -> TableEntry:
    return TableEntry("conn_out", {"backend_addr": _ip(BACKEND), "backend_port": BE_PORT,
                                   "client_addr": _ip(CLIENT), "client_port": cport}, "to_client",
                      {"vip_addr": _ip(VIP), "vip_port": VIP_PORT, "seq_delta": -delta & 0xFFFFFFFF})  # negated


CONN_IN = conn_in_entry()
CONN_OUT = conn_out_entry()
STATIC = [VIP_ENTRY, BACKENDS_ENTRY, ROUTE_CLIENT, ROUTE_BACKEND]
INSTALLED = [*STATIC, CONN_IN, CONN_OUT]
INSTALLED_WRAP = [*STATIC, conn_in_entry(CPORT_WRAP, DELTA_WRAP), conn_out_entry(CPORT_WRAP, DELTA_WRAP)]

# --- packets ------------------------------------------------------------------------------------

C_SEQ, C_ACK = 0x1234_ABCE, 0x7777_0001       # the client's view: ack in the switch's space s
B_SEQ, B_ACK = 0x9ABC_0001, 0x1234_ABCE + 40  # the back-end's view: seq in its space b


def syn(options: bytes = b"", payload: bytes = b"", cport: int = CPORT) -> Packet:
    return (Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst=VIP, ttl=63, id=777, flags="DF")
            / TCP(sport=cport, dport=VIP_PORT, flags="S", seq=0x1234ABCD, window=64240,
                  dataofs=5 + len(options) // 4) / Raw(options + payload))


def client_seg(flags: str, payload: bytes = b"", cport: int = CPORT, ack: int = C_ACK,
               dport: int = VIP_PORT) -> Packet:
    pkt = (Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst=VIP, ttl=63, id=778)
           / TCP(sport=cport, dport=dport, flags=flags, seq=C_SEQ, ack=ack, window=502))
    return pkt / Raw(payload) if payload else pkt


def backend_seg(flags: str, payload: bytes = REPLY, cport: int = CPORT, seq: int = B_SEQ) -> Packet:
    pkt = (Ether(src=BE_MAC, dst=SW_MAC[2]) / IP(src=BACKEND, dst=CLIENT, ttl=64, id=999, flags="DF")
           / TCP(sport=BE_PORT, dport=cport, flags=flags, seq=seq, ack=B_ACK, window=501))
    return pkt / Raw(payload) if payload else pkt


def from_cpu(src: str, sport: int, dst: str, dport: int, flags: str, payload: bytes = b"",
             seq: int = C_SEQ, ack: int = 0) -> Packet:
    """A frame the slow path sends: enters on the CPU port, fully formed."""
    pkt = (Ether(src=CPU_MAC, dst=SW_MAC[CPU_PORT]) / IP(src=src, dst=dst, ttl=64, id=4242)
           / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=1000))
    return pkt / Raw(payload) if payload else pkt


# --- checks -------------------------------------------------------------------------------------

tcp_checksum_ok = mc.tcp_checksum_ok


def synack_no_sack(expect: cookie.SynOptions) -> Callable[[Packet, Packet], bool]:
    """The switch's SYN-ACK for `expect` with SACK never offered: cookie bit 4 clear, NOP NOP."""
    no_sack = cookie.SynOptions(mss=expect.mss, sack_ok=False, wscale=expect.wscale)
    base = mc.synack(no_sack)

    def check(out: Packet, sent: Packet) -> bool:
        opts = bytes(out[TCP])[20:32]
        return base(out, sent) and (out[TCP].seq >> 4) & 1 == 0 and opts[4:6] == b"\x01\x01" \
            and b"\x04\x02" not in opts

    return check


def unchanged(out: Packet, sent: Packet) -> bool:
    """To the CPU port: the frame byte for byte as it came."""
    return bytes(out) == bytes(sent)


def to_backend(delta: int = DELTA) -> Callable[[Packet, Packet], bool]:
    """Destination := the back-end, ack += delta, MACs := the entry's; seq, TTL, payload kept."""

    def check(out: Packet, sent: Packet) -> bool:
        o, s, ot, st = out[IP], sent[IP], out[TCP], sent[TCP]
        return ((out[Ether].src, out[Ether].dst) == (SW_MAC[2], BE_MAC)
                and (o.src, o.dst, o.ttl, o.id, o.len) == (s.src, BACKEND, s.ttl, s.id, s.len)
                and (ot.sport, ot.dport) == (st.sport, BE_PORT)
                and ot.seq == st.seq and ot.ack == (st.ack + delta) & 0xFFFFFFFF
                and (ot.flags, ot.window, ot.dataofs) == (st.flags, st.window, st.dataofs)
                and bytes(ot.payload) == bytes(st.payload)
                and ip_checksum_ok(out) and tcp_checksum_ok(out))

    return check


def to_client(delta: int = DELTA) -> Callable[[Packet, Packet], bool]:
    """Source := VIP:port, seq -= delta, routed to the client (route's MACs, TTL - 1)."""

    def check(out: Packet, sent: Packet) -> bool:
        o, s, ot, st = out[IP], sent[IP], out[TCP], sent[TCP]
        return ((out[Ether].src, out[Ether].dst) == (SW_MAC[1], CLIENT_MAC)
                and (o.src, o.dst, o.ttl, o.id, o.len) == (VIP, s.dst, s.ttl - 1, s.id, s.len)
                and (ot.sport, ot.dport) == (VIP_PORT, st.dport)
                and ot.seq == (st.seq - delta) & 0xFFFFFFFF and ot.ack == st.ack
                and (ot.flags, ot.window, ot.dataofs) == (st.flags, st.window, st.dataofs)
                and bytes(ot.payload) == bytes(st.payload)
                and ip_checksum_ok(out) and tcp_checksum_ok(out))

    return check


def routed(port: int, smac: str, dmac: str) -> Callable[[Packet, Packet], bool]:
    """route: MACs := the route's, TTL - 1, everything from the IP header's payload on unchanged."""

    def check(out: Packet, sent: Packet) -> bool:
        o, s = out[IP], sent[IP]
        return ((out[Ether].src, out[Ether].dst) == (smac, dmac) and o.ttl == s.ttl - 1
                and (o.src, o.dst) == (s.src, s.dst) and ip_checksum_ok(out)
                and bytes(o.payload) == bytes(s.payload))

    return check


TO_CLIENT = routed(1, SW_MAC[1], CLIENT_MAC)
TO_BACKEND_ROUTED = routed(2, SW_MAC[2], BE_MAC)
TO_OTHER = routed(3, SW_MAC[3], OTHER_MAC)
Opts = cookie.SynOptions


def _syn_case(desc: str, options: bytes, expect: cookie.SynOptions, payload: bytes = b"") -> PacketCase:
    return PacketCase(desc, entries=STATIC, send=syn(options, payload), expect=Forwarded(1, synack_no_sack(expect)))


SYN_CASES = [
    _syn_case("SYN with Linux options (MSS, SACK, TS, NOP, WS) -> SYN-ACK without SACK, cookie sack bit 0",
              mc.LINUX_OPTS, Opts(mss=1460, sack_ok=True, wscale=7)),
    _syn_case("SYN with SACK but no window scale -> NOP NOP where SACK-permitted would be",
              mc.opts_bytes(mc.MSS(1460), mc.SACKOK), Opts(mss=1460, sack_ok=True)),
    _syn_case("SYN without options -> MSS 536 class, no WS", b"", Opts()),
    _syn_case("Windows layout with WS 15 (clamped to 14), MSS 1300",
              mc.opts_bytes(mc.MSS(1300), mc.NOP, mc.WS(15), mc.NOP, mc.NOP, mc.SACKOK),
              Opts(mss=1300, sack_ok=True, wscale=14)),
    _syn_case("an unrecognised layout (SACK, NOP, WS, MSS) -> fallback: MSS 536, no WS",
              mc.opts_bytes(mc.SACKOK, mc.NOP, mc.WS(15), mc.MSS(1300)), Opts()),
    _syn_case("macOS-like 24 option bytes (MSS, NOP, WS, NOP, NOP, TS, SACK, EOL)",
              mc.opts_bytes(mc.MSS(1440), mc.NOP, mc.WS(6), mc.NOP, mc.NOP, mc.TS, mc.SACKOK),
              Opts(mss=1440, sack_ok=True, wscale=6)),
    _syn_case("SYN carrying data: the SYN-ACK is 66 bytes, data not acked, no SACK",
              mc.LINUX_OPTS, Opts(mss=1460, sack_ok=True, wscale=7), payload=PAYLOAD),
]

CPU = CPU_PORT
PATH_CASES = [
    # client -> VIP
    PacketCase("conn_in hit, payload -> back-end: dst, port, MACs rewritten, ack += delta",
               entries=INSTALLED, send=client_seg("PA", PAYLOAD), expect=Forwarded(2, to_backend())),
    PacketCase("conn_in hit, pure ACK -> back-end (keep-alive needs no CPU)",
               entries=INSTALLED, send=client_seg("A"), expect=Forwarded(2, to_backend())),
    PacketCase("conn_in hit, ACK with ECE/CWR/PSH -> back-end", entries=INSTALLED,
               send=client_seg("APEC"), expect=Forwarded(2, to_backend())),
    PacketCase("conn_in hit: ack + delta wraps around 2^32", entries=INSTALLED_WRAP,
               send=client_seg("PA", PAYLOAD, cport=CPORT_WRAP, ack=0x3000_0010),
               expect=Forwarded(2, to_backend(DELTA_WRAP))),
    PacketCase("conn_in miss (another client endpoint) -> CPU port, unchanged", entries=INSTALLED,
               send=client_seg("PA", PAYLOAD, cport=CPORT2), expect=Forwarded(CPU, unchanged)),
    PacketCase("conn_in miss, pure ACK completing the handshake -> CPU port, unchanged", entries=STATIC,
               send=client_seg("A"), expect=Forwarded(CPU, unchanged)),
    PacketCase("client FIN of an installed connection -> CPU port, unchanged", entries=INSTALLED,
               send=client_seg("FA"), expect=Forwarded(CPU, unchanged)),
    PacketCase("client FIN with data -> CPU port, unchanged", entries=INSTALLED,
               send=client_seg("FPA", PAYLOAD), expect=Forwarded(CPU, unchanged)),
    PacketCase("client RST of an installed connection -> CPU port, unchanged", entries=INSTALLED,
               send=client_seg("R"), expect=Forwarded(CPU, unchanged)),
    PacketCase("client SYN+ACK to the VIP -> CPU port, unchanged", entries=INSTALLED,
               send=client_seg("SA"), expect=Forwarded(CPU, unchanged)),
    # back-end -> client
    PacketCase("conn_out hit, payload -> client: src := VIP:port, seq -= delta, routed",
               entries=INSTALLED, send=backend_seg("PA"), in_port=2, expect=Forwarded(1, to_client())),
    PacketCase("conn_out hit, pure ACK -> client", entries=INSTALLED, send=backend_seg("A", b""),
               in_port=2, expect=Forwarded(1, to_client())),
    PacketCase("conn_out hit: seq - delta wraps around 2^32", entries=INSTALLED_WRAP,
               send=backend_seg("PA", cport=CPORT_WRAP, seq=0x1000_0000), in_port=2,
               expect=Forwarded(1, to_client(DELTA_WRAP))),
    PacketCase("conn_out miss (connection not installed) -> CPU port, unchanged", entries=STATIC,
               send=backend_seg("PA"), in_port=2, expect=Forwarded(CPU, unchanged)),
    PacketCase("back-end SYN-ACK (even of an installed connection) -> CPU port, unchanged", entries=INSTALLED,
               send=backend_seg("SA", b""), in_port=2, expect=Forwarded(CPU, unchanged)),
    PacketCase("back-end FIN -> CPU port, unchanged", entries=INSTALLED, send=backend_seg("FA", b""),
               in_port=2, expect=Forwarded(CPU, unchanged)),
    PacketCase("back-end RST -> CPU port, unchanged", entries=INSTALLED, send=backend_seg("R", b""),
               in_port=2, expect=Forwarded(CPU, unchanged)),
    # the slow path's frames, entering on the CPU port
    PacketCase("from the CPU port: SYN client endpoint -> back-end is routed to the back-end",
               entries=INSTALLED, send=from_cpu(CLIENT, CPORT, BACKEND, BE_PORT, "S", seq=C_SEQ - 1),
               in_port=CPU, expect=Forwarded(2, TO_BACKEND_ROUTED)),
    PacketCase("from the CPU port: ACK with the buffered request -> back-end, untranslated",
               entries=INSTALLED, send=from_cpu(CLIENT, CPORT, BACKEND, BE_PORT, "PA", PAYLOAD, ack=B_SEQ),
               in_port=CPU, expect=Forwarded(2, TO_BACKEND_ROUTED)),
    PacketCase("from the CPU port: VIP -> client (translated FIN) is routed to the client",
               entries=INSTALLED, send=from_cpu(VIP, VIP_PORT, CLIENT, CPORT, "FA", seq=0x5555, ack=C_SEQ),
               in_port=CPU, expect=Forwarded(1, TO_CLIENT)),
    # everything else
    PacketCase("TCP to the VIP's address on another port: not a VIP endpoint, routed",
               entries=[*STATIC, ROUTE_VIP], send=client_seg("PA", PAYLOAD, dport=81), expect=Forwarded(3, TO_OTHER)),
    PacketCase("UDP to the VIP endpoint is routed, never answered", entries=[*STATIC, ROUTE_VIP],
               send=Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst=VIP) / UDP(sport=CPORT, dport=80)
               / Raw(PAYLOAD), expect=Forwarded(3, TO_OTHER)),
    PacketCase("a TCP fragment to the VIP is routed (the switch parses no fragments)", entries=[*STATIC, ROUTE_VIP],
               send=Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst=VIP, flags="MF", proto=6)
               / Raw(bytes(TCP(sport=CPORT, dport=80, flags="A")) + PAYLOAD), expect=Forwarded(3, TO_OTHER)),
    PacketCase("other TCP (neither VIP nor back-end) is routed", entries=[*STATIC, ROUTE_OTHER],
               send=Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst=OTHER)
               / TCP(sport=CPORT, dport=22, flags="S"), expect=Forwarded(3, TO_OTHER)),
    PacketCase("the back-end's TCP from another port is routed, not spliced", entries=INSTALLED,
               send=Ether(src=BE_MAC, dst=SW_MAC[2]) / IP(src=BACKEND, dst=CLIENT)
               / TCP(sport=BE_PORT + 1, dport=CPORT, flags="PA") / Raw(REPLY), in_port=2,
               expect=Forwarded(1, TO_CLIENT)),
    PacketCase("other traffic without a route: const default drop", entries=STATIC,
               send=Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst="198.18.218.45")
               / TCP(sport=CPORT, dport=22, flags="S"), expect=Dropped("table_miss")),
]

# --- the back-end guard: to the back-end's address only from the back-end's (2) or the CPU port

PROTECTED_ENTRY = TableEntry("protected_hosts", {"dst_addr": _ip(BACKEND)}, "mark_protected")


def trusted(port: int) -> TableEntry:
    return TableEntry("trusted_ports", {"port": port}, "mark_trusted")


GUARDED = [*INSTALLED, PROTECTED_ENTRY, trusted(2), trusted(CPU_PORT)]


def at_backend(l4: Packet, **ip: object) -> Packet:
    """`l4` addressed to the back-end's data address, sent by the client on port 1."""
    return Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst=BACKEND, ttl=63, id=4343, **ip) / l4


def _tcp(flags: str, payload: bytes = b"", ack: int = 0) -> Packet:
    seg = TCP(sport=CPORT, dport=BE_PORT, flags=flags, seq=0x0BAD0001, ack=ack, window=1024)
    return seg / Raw(payload) if payload else seg


def _guard_drop(desc: str, l4: Packet, **ip: object) -> PacketCase:
    return PacketCase(desc, entries=GUARDED, send=at_backend(l4, **ip), expect=Dropped("untrusted_port"))


GUARD_CASES = [
    _guard_drop("guard: a client's SYN straight at the back-end's address -> dropped (untrusted_port)",
                _tcp("S")),
    _guard_drop("guard: a client's RST at the back-end -> dropped", _tcp("R")),
    _guard_drop("guard: a client's data segment at the back-end -> dropped", _tcp("PA", PAYLOAD, B_SEQ)),
    _guard_drop("guard: UDP at the back-end -> dropped", UDP(sport=CPORT, dport=53) / Raw(PAYLOAD)),
    _guard_drop("guard: ICMP echo at the back-end -> dropped", ICMP(id=7, seq=1) / Raw(b"ping")),
    _guard_drop("guard: a TCP fragment at the back-end -> dropped", Raw(bytes(_tcp("S")) + PAYLOAD),
                flags="MF", proto=6),
    PacketCase("guard: the slow path's SYN to the back-end (the CPU port is trusted) -> routed",
               entries=GUARDED, send=from_cpu(CLIENT, CPORT, BACKEND, BE_PORT, "S", seq=C_SEQ - 1),
               in_port=CPU, expect=Forwarded(2, TO_BACKEND_ROUTED)),
    PacketCase("guard: the slow path's SYN is dropped if the CPU port is not trusted",
               entries=[*INSTALLED, PROTECTED_ENTRY, trusted(2)],
               send=from_cpu(CLIENT, CPORT, BACKEND, BE_PORT, "S", seq=C_SEQ - 1), in_port=CPU,
               expect=Dropped("untrusted_port")),
    PacketCase("guard: the client's ACK of a spliced connection (to the VIP) is still translated",
               entries=GUARDED, send=client_seg("A"), expect=Forwarded(2, to_backend())),
    PacketCase("guard: the client's data of a spliced connection (to the VIP) is still translated",
               entries=GUARDED, send=client_seg("PA", PAYLOAD), expect=Forwarded(2, to_backend())),
    PacketCase("guard: the back-end's reply to a spliced client still leaves as the VIP",
               entries=GUARDED, send=backend_seg("PA"), in_port=2, expect=Forwarded(1, to_client())),
]

CASES = SYN_CASES + PATH_CASES + GUARD_CASES


# --- the veth runner for this pipeline ----------------------------------------------------------

def related(out: bytes, sent: bytes) -> bool:
    """Is `out` the sent frame after the pipeline (forwarded, rewritten, or answered)?"""
    if _related(out, sent):
        return True
    o, s = Ether(out), Ether(sent)
    if IP not in o or IP not in s or TCP not in o or TCP not in s:
        return False
    ot, st = o[TCP], s[TCP]
    if o[IP].id == s[IP].id and bytes(ot.payload) == bytes(st.payload) and (ot.seq == st.seq or ot.ack == st.ack):
        return True        # a rewrite with sequence translation
    return str(ot.flags) == "SA" and ot.ack == (st.seq + 1) & 0xFFFFFFFF and ot.dport == st.sport


class SwitchOnlyVethRunner(VethRunner):
    """VethRunner whose capture also recognises SYN-ACKs and translated frames as the case's."""

    def run(self, case: PacketCase, timeout: float = 0.3) -> Outcome:
        sent = bytes(case.send)
        with _EntriesInstalled(self.tables, case):
            self.pio.drain()
            before = _snapshot(self.tables)
            self.pio.send(case.in_port, sent)
            frames = self.pio.collect(timeout)
            after = _snapshot(self.tables)
        drops, rx, tx = _delta(before, after)
        out = {p: [Ether(f) for f in fs if related(f, sent)] for p, fs in frames.items()}
        return Outcome(out={p: v for p, v in out.items() if v}, drops=drops, rx=rx, tx=tx)
