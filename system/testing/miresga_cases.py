"""Packet cases of pipeline `miresga` (docs/miresga-datapath.md): the SYN-ACK with its cookie, the
offload rewrites in both directions, the front-end buckets, the back-end guard (protected_hosts,
trusted_ports), and route for everything else.

Ports: 1 client, 2 front-end, 3 back-end, 4 another host. The switch's cookie key is KEY, its slot
SLOT (odd: the parity bit is 1): whoever loads the pipeline for these cases sets them (`set_secret`).
MACs belong to no host, so the receiving host's kernel ignores every frame out (runners capture
them on raw sockets).
"""

from __future__ import annotations

from collections.abc import Callable

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from system.switch import cookie
from system.switch.tables import PipelineTables
from system.testing.cases import Dropped, Forwarded, PacketCase, TableEntry, ip_checksum_ok
from system.testing.runners import Outcome, VethRunner, _delta, _EntriesInstalled, _related, _snapshot

KEY = 0x5EC2E7A1_0BADC0DE
SLOT = 0x12345
CLIENT, CLIENT_MAC, CPORT = "198.18.210.10", "02:aa:00:00:00:01", 40123
CLIENT2, CPORT2 = "198.18.210.11", 51000
VIP, VIP_PORT = "198.18.210.100", 80
BACKEND, BE_PORT, BE_INDEX = "198.18.210.30", 8080, 7
SW_MAC = {p: f"02:bb:00:00:00:0{p}" for p in (1, 2, 3, 4)}   # the switch ports' MACs
FE_MAC, FE2_MAC = "02:cc:00:00:00:02", "02:cc:00:00:00:04"
BE_MAC = "02:cc:00:00:00:03"
HOST_MAC = {1: CLIENT_MAC, 3: BE_MAC, 4: "02:cc:00:00:00:44"}
PAYLOAD = b"GET /miresga HTTP/1.1\r\nHost: vip\r\n\r\n"


def _ip(addr: str) -> int:
    return int.from_bytes(bytes(int(x) for x in addr.split(".")), "big")


def _mac(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def set_secret(tables: PipelineTables, key: int = KEY, slot: int = SLOT) -> None:
    """The control plane's write of the cookie key and slot (syn_cookie's default action)."""
    tables.set_default("syn_cookie", "set_cookie_secret", {"key": key, "slot": slot})


# --- entries ------------------------------------------------------------------------------------

VIP_ENTRY = TableEntry("vip", {"dst_addr": _ip(VIP), "dst_port": VIP_PORT}, "mark_vip")
BACKENDS_ENTRY = TableEntry("backends", {"src_addr": _ip(BACKEND), "src_port": BE_PORT},
                            "mark_backend", {"vip_addr": _ip(VIP), "vip_port": VIP_PORT})
OFFLOAD_ENTRY = TableEntry("offload", {"client_addr": _ip(CLIENT), "client_port": CPORT},
                           "to_backend", {"index": BE_INDEX})
BACKEND_ENTRY = TableEntry("backend_by_index", {"index": BE_INDEX}, "set_backend",
                           {"port": 3, "dmac": _mac(BE_MAC), "dst_addr": _ip(BACKEND),
                            "dst_port": BE_PORT})
ROUTE_CLIENT = TableEntry("route", {"dst_addr": (_ip(CLIENT), 32)}, "forward",
                          {"port": 1, "smac": _mac(SW_MAC[1]), "dmac": _mac(CLIENT_MAC)})


def bucket_entry(client: str, cport: int, port: int = 2, dmac: str = FE_MAC) -> TableEntry:
    return TableEntry("frontend_bucket", {"bucket": cookie.frontend_bucket(client, cport)},
                      "to_frontend", {"port": port, "dmac": _mac(dmac)})


def all_buckets_but(client: str, cport: int) -> list[TableEntry]:
    """Every bucket to the front-end on port 4, the client endpoint's bucket to port 2: a wrong
    hash in the switch shows as a packet out on port 4."""
    mine = cookie.frontend_bucket(client, cport)
    return [TableEntry("frontend_bucket", {"bucket": b}, "to_frontend",
                       {"port": 2 if b == mine else 4, "dmac": _mac(FE_MAC if b == mine else FE2_MAC)})
            for b in range(cookie.FRONTEND_BUCKETS)]


STATIC = [VIP_ENTRY, BACKENDS_ENTRY, BACKEND_ENTRY, ROUTE_CLIENT, bucket_entry(CLIENT, CPORT)]
OFFLOADED = [*STATIC, OFFLOAD_ENTRY]

# --- packets ------------------------------------------------------------------------------------


def opts_bytes(*opts: bytes) -> bytes:
    """Raw option bytes, padded with EOL to a multiple of 4."""
    raw = b"".join(opts)
    return raw + b"\x00" * ((-len(raw)) % 4)


def MSS(value: int) -> bytes:
    return bytes([2, 4]) + value.to_bytes(2, "big")


def WS(shift: int) -> bytes:
    return bytes([3, 3, shift])


SACKOK = bytes([4, 2])
NOP = bytes([1])
TS = bytes([8, 10]) + (123456).to_bytes(4, "big") + bytes(4)
LINUX_OPTS = opts_bytes(MSS(1460), SACKOK, TS, NOP, WS(7))                  # 20 bytes


def syn(options: bytes = b"", payload: bytes = b"", seq: int = 0x1234ABCD, client: str = CLIENT,
        cport: int = CPORT) -> Packet:
    tcp = TCP(sport=cport, dport=VIP_PORT, flags="S", seq=seq, window=64240,
              dataofs=5 + len(options) // 4)
    return (Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=client, dst=VIP, ttl=63, id=777, flags="DF")
            / tcp / Raw(options + payload))


def client_seg(flags: str, payload: bytes = b"", dport: int = VIP_PORT) -> Packet:
    pkt = (Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst=VIP, ttl=63, id=778)
           / TCP(sport=CPORT, dport=dport, flags=flags, seq=0x1234ABCE, ack=0x77770001, window=502))
    return pkt / Raw(payload) if payload else pkt


def backend_seg(flags: str, payload: bytes = PAYLOAD * 4) -> Packet:
    pkt = (Ether(src=BE_MAC, dst=SW_MAC[3]) / IP(src=BACKEND, dst=CLIENT, ttl=64, id=999, flags="DF")
           / TCP(sport=BE_PORT, dport=CPORT, flags=flags, seq=0x55550001, ack=0x1234ABCE + 40,
                 window=501))
    return pkt / Raw(payload) if payload else pkt


# --- checks -------------------------------------------------------------------------------------

def tcp_checksum_ok(pkt: Packet) -> bool:
    ip = pkt[IP]
    fresh = ip.copy()
    fresh[TCP].chksum = None
    return IP(bytes(fresh))[TCP].chksum == ip[TCP].chksum


def synack(expect: cookie.SynOptions) -> Callable[[Packet, Packet], bool]:
    """out is the switch's SYN-ACK to `sent`; the cookie's low bits encode `expect`."""

    def check(out: Packet, sent: Packet) -> bool:
        o, s = out[IP], sent[IP]
        ot, st = out[TCP], sent[TCP]
        want = cookie.encode(s.src, st.sport, s.dst, st.dport, KEY, SLOT, expect)
        fields = (
            len(bytes(out)) == 66,
            out[Ether].src == sent[Ether].dst, out[Ether].dst == sent[Ether].src,
            out[Ether].type == 0x0800,
            (o.version, o.ihl, o.tos, o.len, o.id, int(o.flags), o.frag, o.ttl, o.proto)
            == (4, 5, 0, 52, 0, 2, 0, 64, 6),
            (o.src, o.dst) == (s.dst, s.src),
            (ot.sport, ot.dport) == (st.dport, st.sport),
            ot.seq == want, ot.ack == (st.seq + 1) & 0xFFFFFFFF,
            str(ot.flags) == "SA", ot.window == 65535, ot.urgptr == 0, ot.dataofs == 8,
            bytes(ot)[20:32] == cookie.synack_options(expect),
            bytes(ot.payload) == b"",
            ip_checksum_ok(out), tcp_checksum_ok(out),
        )
        return all(fields)

    return check


def _same_tcp(o: Packet, s: Packet) -> bool:
    ot, st = o[TCP], s[TCP]
    return ((ot.seq, ot.ack, ot.flags, ot.window, ot.dataofs, bytes(ot.payload))
            == (st.seq, st.ack, st.flags, st.window, st.dataofs, bytes(st.payload)))


def to_backend(out: Packet, sent: Packet) -> bool:
    """Destination MAC, IP and port := the back-end's; TTL and the rest unchanged."""
    o, s = out[IP], sent[IP]
    return (out[Ether].dst == BE_MAC and out[Ether].src == sent[Ether].src
            and o.dst == BACKEND and o.src == s.src and o.ttl == s.ttl and o.id == s.id
            and out[TCP].dport == BE_PORT and out[TCP].sport == s[TCP].sport
            and _same_tcp(out, sent) and ip_checksum_ok(out) and tcp_checksum_ok(out))


def to_frontend(dmac: str = FE_MAC) -> Callable[[Packet, Packet], bool]:
    """The frame unchanged but its destination MAC."""

    def check(out: Packet, sent: Packet) -> bool:
        return out[Ether].dst == dmac and bytes(out)[6:] == bytes(sent)[6:]

    return check


def from_vip(out: Packet, sent: Packet) -> bool:
    """Source := VIP:port, routed to the client (MACs of the route, TTL - 1), checksums right."""
    o, s = out[IP], sent[IP]
    return (out[Ether].src == SW_MAC[1] and out[Ether].dst == CLIENT_MAC
            and o.src == VIP and o.dst == s.dst and o.ttl == s.ttl - 1 and o.id == s.id
            and out[TCP].sport == VIP_PORT and out[TCP].dport == s[TCP].dport
            and _same_tcp(out, sent) and ip_checksum_ok(out) and tcp_checksum_ok(out))


def routed(port: int) -> Callable[[Packet, Packet], bool]:
    def check(out: Packet, sent: Packet) -> bool:
        o, s = out[IP], sent[IP]
        return (out[Ether].src == SW_MAC[port] and out[Ether].dst == HOST_MAC[port]
                and o.ttl == s.ttl - 1 and ip_checksum_ok(out) and bytes(o.payload) == bytes(s.payload))

    return check


Opts = cookie.SynOptions
ROUTE_OTHER = TableEntry("route", {"dst_addr": (_ip("198.18.210.44"), 32)}, "forward",
                         {"port": 4, "smac": _mac(SW_MAC[4]), "dmac": _mac(HOST_MAC[4])})
ROUTE_VIP = TableEntry("route", {"dst_addr": (_ip(VIP), 32)}, "forward",
                       {"port": 4, "smac": _mac(SW_MAC[4]), "dmac": _mac(HOST_MAC[4])})


def _syn_case(desc: str, options: bytes, expect: cookie.SynOptions, payload: bytes = b"") -> PacketCase:
    return PacketCase(desc, entries=STATIC, send=syn(options, payload),
                      expect=Forwarded(1, synack(expect)))


SYN_CASES = [
    _syn_case("SYN with Linux options (MSS, SACK, TS, NOP, WS) -> SYN-ACK, cookie with all bits",
              LINUX_OPTS, Opts(mss=1460, sack_ok=True, wscale=7)),
    _syn_case("SYN without options (shorter than the SYN-ACK) -> MSS 536 class, no SACK, no WS",
              b"", Opts()),
    # The layouts of the common stacks (32-bit words, miresga_parser.p4).
    _syn_case("Linux without timestamps (MSS, NOP, NOP, SACK, NOP, WS)",
              opts_bytes(MSS(1460), NOP, NOP, SACKOK, NOP, WS(7)), Opts(mss=1460, sack_ok=True, wscale=7)),
    _syn_case("Linux without SACK (MSS, NOP, NOP, TS, NOP, WS)",
              opts_bytes(MSS(1440), NOP, NOP, TS, NOP, WS(9)), Opts(mss=1440, wscale=9)),
    _syn_case("Windows (MSS, NOP, WS, NOP, NOP, SACK)",
              opts_bytes(MSS(1460), NOP, WS(8), NOP, NOP, SACKOK), Opts(mss=1460, sack_ok=True, wscale=8)),
    _syn_case("macOS-like 24 option bytes (MSS, NOP, WS, NOP, NOP, TS, SACK, EOL)",
              opts_bytes(MSS(1460), NOP, WS(6), NOP, NOP, TS, SACKOK), Opts(mss=1460, sack_ok=True, wscale=6)),
    _syn_case("FreeBSD (MSS, NOP, WS, SACK, TS)",
              opts_bytes(MSS(1460), NOP, WS(6), SACKOK, TS), Opts(mss=1460, sack_ok=True, wscale=6)),
    _syn_case("SYN with MSS 1440 only -> class 1440", opts_bytes(MSS(1440)), Opts(mss=1440)),
    _syn_case("SYN with MSS 1300 -> class 1220", opts_bytes(MSS(1300)), Opts(mss=1300)),
    _syn_case("SYN with MSS 500 (below the table) -> class 536", opts_bytes(MSS(500)), Opts(mss=500)),
    _syn_case("SYN with MSS 1459, just below class 1460 -> class 1440", opts_bytes(MSS(1459), NOP, WS(1)),
              Opts(mss=1459, wscale=1)),
    _syn_case("SYN with MSS 9000 (jumbo) -> class 1460", opts_bytes(MSS(9000), NOP, WS(0)),
              Opts(mss=9000, wscale=0)),
    _syn_case("SYN with SACK but no window scale (MSS, SACK, EOL)", opts_bytes(MSS(1460), SACKOK),
              Opts(mss=1460, sack_ok=True)),
    _syn_case("SYN with window scale 0 (offered, no shift) keeps WS in the SYN-ACK",
              opts_bytes(NOP, WS(0)), Opts(wscale=0)),
    _syn_case("SYN with window scale 15 is clamped to 14", opts_bytes(MSS(1460), NOP, WS(15)),
              Opts(mss=1460, wscale=14)),
    _syn_case("timestamp values are not read as options (TSval looks like WS, TSecr like SACK)",
              opts_bytes(MSS(1460), NOP, NOP, bytes([8, 10, 1, 3, 3, 14, 1, 1, 4, 2])), Opts(mss=1460)),
    # Fallback: the walk ends at the first word it does not recognise, keeping what it found.
    _syn_case("an unrecognised layout (WS without its NOP first, MSS last) -> fallback: MSS 536, no WS/SACK",
              opts_bytes(WS(9), NOP, bytes([30, 6, 1, 2, 3, 4]), SACKOK, MSS(1220)), Opts()),
    _syn_case("an unknown option (kind 254) ends the walk: MSS before it counts, WS after it not",
              opts_bytes(MSS(1440), bytes([254, 30]) + bytes(28), NOP, NOP, NOP, WS(3)), Opts(mss=1440)),
    _syn_case("an MSS that is not the first word is not read", opts_bytes(NOP, NOP, SACKOK, MSS(1460)),
              Opts(sack_ok=True)),
    _syn_case("a second window scale word ends the walk (a Tofino parser writes a field once)",
              opts_bytes(MSS(1460), NOP, WS(5), NOP, WS(9), NOP, NOP, SACKOK), Opts(mss=1460, wscale=5)),
    _syn_case("timestamps not on a word boundary end the walk", opts_bytes(MSS(1460), TS, NOP, NOP),
              Opts(mss=1460)),
    _syn_case("a malformed option (length 0) ends the walk: options after it are ignored",
              opts_bytes(MSS(1460), bytes([77, 0]), SACKOK, WS(7)), Opts(mss=1460)),
    _syn_case("an option overrunning the area is not recognised", opts_bytes(SACKOK, NOP, bytes([3, 9, 1])),
              Opts()),
    _syn_case("EOL ends the options: a MSS after it is padding, not an option",
              bytes([1, 0]) + MSS(1460) + bytes(2), Opts()),
    _syn_case("SYN carrying data (fast open style): the SYN-ACK is 66 bytes, data not acked",
              LINUX_OPTS, Opts(mss=1460, sack_ok=True, wscale=7), payload=PAYLOAD),
    PacketCase("another secret gives another cookie: the SYN-ACK uses the switch's secret",
               entries=STATIC, send=syn(LINUX_OPTS, seq=0xFFFFFFFF, cport=CPORT),
               expect=Forwarded(1, synack(Opts(mss=1460, sack_ok=True, wscale=7)))),
]

PATH_CASES = [
    PacketCase("pure ACK of an offloaded endpoint -> destination rewritten to the back-end",
               entries=OFFLOADED, send=client_seg("A"), expect=Forwarded(3, to_backend)),
    PacketCase("pure ACK with ECE/CWR/PSH bits of an offloaded endpoint is still a pure ACK",
               entries=OFFLOADED, send=client_seg("APEC"), expect=Forwarded(3, to_backend)),
    PacketCase("pure ACK of a non-offloaded endpoint -> its front-end bucket, unchanged",
               entries=STATIC, send=client_seg("A"), expect=Forwarded(2, to_frontend())),
    PacketCase("data segment of an offloaded endpoint -> front-end (requests are re-evaluated)",
               entries=OFFLOADED, send=client_seg("PA", PAYLOAD), expect=Forwarded(2, to_frontend())),
    PacketCase("FIN of an offloaded endpoint -> front-end", entries=OFFLOADED,
               send=client_seg("FA"), expect=Forwarded(2, to_frontend())),
    PacketCase("RST of an offloaded endpoint -> front-end", entries=OFFLOADED,
               send=client_seg("R"), expect=Forwarded(2, to_frontend())),
    PacketCase("SYN+ACK from a client to the VIP is not answered: front-end", entries=STATIC,
               send=client_seg("SA"), expect=Forwarded(2, to_frontend())),
    PacketCase("offloaded pure ACK whose back-end index is unknown -> front-end",
               entries=[VIP_ENTRY, bucket_entry(CLIENT, CPORT), OFFLOAD_ENTRY],
               send=client_seg("A"), expect=Forwarded(2, to_frontend())),
    PacketCase("bucket = CRC32(client ip|port) mod 256 (every other bucket leads elsewhere)",
               entries=[VIP_ENTRY, *all_buckets_but(CLIENT, CPORT)], send=client_seg("PA", PAYLOAD),
               expect=Forwarded(2, to_frontend())),
    PacketCase("no front-end bucket for the client endpoint: const default drop (table miss)",
               entries=[VIP_ENTRY, bucket_entry(CLIENT2, CPORT2)], send=client_seg("PA", PAYLOAD),
               expect=Dropped("table_miss")),
    PacketCase("back-end -> offloaded client: source := VIP:port, routed to the client",
               entries=OFFLOADED, send=backend_seg("PA"), in_port=3, expect=Forwarded(1, from_vip)),
    PacketCase("back-end pure ACK to an offloaded client is rewritten too",
               entries=OFFLOADED, send=backend_seg("A", b""), in_port=3, expect=Forwarded(1, from_vip)),
    PacketCase("back-end -> non-offloaded client: to the client endpoint's front-end, unchanged",
               entries=STATIC, send=backend_seg("PA"), in_port=3, expect=Forwarded(2, to_frontend())),
    PacketCase("back-end FIN to an offloaded client -> front-end", entries=OFFLOADED,
               send=backend_seg("FA", b""), in_port=3, expect=Forwarded(2, to_frontend())),
    PacketCase("back-end RST to an offloaded client -> front-end", entries=OFFLOADED,
               send=backend_seg("R", b""), in_port=3, expect=Forwarded(2, to_frontend())),
    PacketCase("back-end SYN-ACK (even of an offloaded endpoint) -> front-end", entries=OFFLOADED,
               send=backend_seg("SA", b""), in_port=3, expect=Forwarded(2, to_frontend())),
    PacketCase("TCP to the VIP's address on another port: not a VIP endpoint, routed",
               entries=[*STATIC, ROUTE_VIP], send=client_seg("S", dport=81), expect=Forwarded(4, routed(4))),
    PacketCase("UDP to the VIP endpoint is routed, never answered",
               entries=[*STATIC, ROUTE_VIP],
               send=Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst=VIP) / UDP(sport=CPORT, dport=80)
               / Raw(PAYLOAD), expect=Forwarded(4, routed(4))),
    PacketCase("other TCP (neither VIP nor back-end) is routed", entries=[*STATIC, ROUTE_OTHER],
               send=Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst="198.18.210.44")
               / TCP(sport=CPORT, dport=22, flags="S"), expect=Forwarded(4, routed(4))),
    PacketCase("a TCP fragment to the VIP is routed (the switch parses no fragments)",
               entries=[*STATIC, ROUTE_VIP],
               send=Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst=VIP, flags="MF", proto=6)
               / Raw(bytes(TCP(sport=CPORT, dport=80, flags="S")) + PAYLOAD), expect=Forwarded(4, routed(4))),
    PacketCase("other traffic without a route: const default drop", entries=STATIC,
               send=Ether(src=CLIENT_MAC, dst=SW_MAC[1]) / IP(src=CLIENT, dst="198.18.210.45")
               / TCP(sport=CPORT, dport=22, flags="S"), expect=Dropped("table_miss")),
]

# --- the back-end guard: to the back-end's address only from the front-end's (2) or a back-end's port

PROTECTED_ENTRY = TableEntry("protected_hosts", {"dst_addr": _ip(BACKEND)}, "mark_protected")
ROUTE_BACKEND = TableEntry("route", {"dst_addr": (_ip(BACKEND), 32)}, "forward",
                           {"port": 3, "smac": _mac(SW_MAC[3]), "dmac": _mac(BE_MAC)})


def trusted(port: int) -> TableEntry:
    return TableEntry("trusted_ports", {"port": port}, "mark_trusted")


GUARDED = [*OFFLOADED, ROUTE_BACKEND, PROTECTED_ENTRY, trusted(2), trusted(3)]   # front-end 2, back-end 3
SRC_OF_PORT = {1: (CLIENT, CLIENT_MAC), 2: ("198.18.210.20", FE_MAC), 4: ("198.18.210.31", HOST_MAC[4])}


def at_backend(l4: Packet, in_port: int = 1, **ip: object) -> Packet:
    """`l4` addressed to the back-end's data address, as the host on `in_port` sends it."""
    src, mac = SRC_OF_PORT[in_port]
    return Ether(src=mac, dst=SW_MAC[in_port]) / IP(src=src, dst=BACKEND, ttl=63, id=4242, **ip) / l4


def _tcp(flags: str, payload: bytes = b"", ack: int = 0) -> Packet:
    seg = TCP(sport=CPORT, dport=BE_PORT, flags=flags, seq=0x0BAD0001, ack=ack, window=1024)
    return seg / Raw(payload) if payload else seg


def _guard_drop(desc: str, l4: Packet, **ip: object) -> PacketCase:
    return PacketCase(desc, entries=GUARDED, send=at_backend(l4, **ip), expect=Dropped("untrusted_port"))


GUARD_CASES = [
    _guard_drop("guard: a client's SYN straight at the back-end's address -> dropped (untrusted_port)",
                _tcp("S")),
    _guard_drop("guard: a client's SYN with a chosen ack field (rewrites an agent's translation) -> dropped",
                _tcp("S", ack=0x77770001)),
    _guard_drop("guard: a client's RST at the back-end (resets a live connection) -> dropped", _tcp("R")),
    _guard_drop("guard: a client's RST+ACK at the back-end -> dropped", _tcp("RA", ack=0x55550001)),
    _guard_drop("guard: a client's data segment at the back-end -> dropped", _tcp("PA", PAYLOAD, 0x55550001)),
    _guard_drop("guard: a client's pure ACK at the back-end's own address (not the VIP) -> dropped",
                _tcp("A", ack=0x55550001)),
    _guard_drop("guard: UDP at the back-end -> dropped", UDP(sport=CPORT, dport=53) / Raw(PAYLOAD)),
    _guard_drop("guard: ICMP echo at the back-end -> dropped", ICMP(id=7, seq=1) / Raw(b"ping")),
    _guard_drop("guard: a TCP fragment at the back-end (not parsed as TCP) -> dropped",
                Raw(bytes(_tcp("S")) + PAYLOAD), flags="MF", proto=6),
    _guard_drop("guard: IPv4 with options at the back-end -> dropped by the guard before route",
                _tcp("S"), options=[IPOption_NOP()] * 4),
    PacketCase("guard: no port is trusted -> even the front-end's SYN to the back-end is dropped",
               entries=[*OFFLOADED, ROUTE_BACKEND, PROTECTED_ENTRY], send=at_backend(_tcp("S"), 2), in_port=2,
               expect=Dropped("untrusted_port")),
    PacketCase("guard: the front-end's SYN to the back-end (its port is trusted) -> routed to the back-end",
               entries=GUARDED, send=at_backend(_tcp("S", ack=0x77770001), 2), in_port=2,
               expect=Forwarded(3, routed(3))),
    PacketCase("guard: the front-end's RST to the back-end -> routed", entries=GUARDED,
               send=at_backend(_tcp("R"), 2), in_port=2, expect=Forwarded(3, routed(3))),
    PacketCase("guard: the front-end's UDP to the back-end -> routed", entries=GUARDED,
               send=at_backend(UDP(sport=4000, dport=53) / Raw(PAYLOAD), 2), in_port=2,
               expect=Forwarded(3, routed(3))),
    PacketCase("guard: another back-end's SYN (its port trusted) -> routed to the back-end",
               entries=[*GUARDED, trusted(4)], send=at_backend(_tcp("S"), 4), in_port=4,
               expect=Forwarded(3, routed(3))),
    PacketCase("guard: the same SYN from a host whose port is not trusted -> dropped",
               entries=GUARDED, send=at_backend(_tcp("S"), 4), in_port=4, expect=Dropped("untrusted_port")),
    PacketCase("guard: no protected_hosts entry for the address -> routed (the guard acts on its entries)",
               entries=[*OFFLOADED, ROUTE_BACKEND, trusted(2), trusted(3)], send=at_backend(_tcp("S")),
               expect=Forwarded(3, routed(3))),
    PacketCase("guard: a client's pure ACK of an offloaded connection (to the VIP) is still rewritten to "
               "the back-end", entries=GUARDED, send=client_seg("A"), expect=Forwarded(3, to_backend)),
    PacketCase("guard: a client's data to the VIP still goes to its front-end", entries=GUARDED,
               send=client_seg("PA", PAYLOAD), expect=Forwarded(2, to_frontend())),
    PacketCase("guard: a client's SYN to the VIP is still answered", entries=GUARDED,
               send=syn(LINUX_OPTS), expect=Forwarded(1, synack(Opts(mss=1460, sack_ok=True, wscale=7)))),
    PacketCase("guard: the back-end's reply to an offloaded client still leaves as the VIP",
               entries=GUARDED, send=backend_seg("PA"), in_port=3, expect=Forwarded(1, from_vip)),
]

CASES = SYN_CASES + PATH_CASES + GUARD_CASES


# --- the veth runner for this pipeline ----------------------------------------------------------

def related(out: bytes, sent: bytes) -> bool:
    """Is `out` the sent frame after the pipeline (forwarded, rewritten, or answered)?"""
    if _related(out, sent):
        return True
    o, s = Ether(out), Ether(sent)
    if TCP not in o or TCP not in s:
        return False
    ot, st = o[TCP], s[TCP]
    if (ot.seq, ot.ack) == (st.seq, st.ack):
        return True        # an address rewrite
    return str(ot.flags) == "SA" and ot.ack == (st.seq + 1) & 0xFFFFFFFF and ot.dport == st.sport


class MiresgaVethRunner(VethRunner):
    """VethRunner whose capture also recognises SYN-ACKs and rewritten frames as the case's."""

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
