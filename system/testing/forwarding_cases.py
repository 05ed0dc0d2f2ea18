"""Packet cases of pipeline `forwarding` (control Forwarding, table route).

Entries use MACs that belong to no host, so the receiving host's kernel ignores the forwarded
frame (no ICMP answers to confuse a capture); runners see it on their raw sockets all the same.
"""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from system.testing.cases import Dropped, Forwarded, PacketCase, TableEntry, ip_checksum_ok

SRC_MAC = "02:aa:00:00:00:01"
IN_DMAC = "02:aa:00:00:00:fe"      # whatever the sender addressed the switch with
SW_MAC = {1: "02:bb:00:00:00:01", 2: "02:bb:00:00:00:02", 3: "02:bb:00:00:00:03"}
NEXT_HOP = {1: "02:cc:00:00:00:01", 2: "02:cc:00:00:00:02", 3: "02:cc:00:00:00:03"}
H1, H2, H3 = "198.18.200.1", "198.18.200.2", "198.18.200.3"
NET = "198.18.201.0"
PAYLOAD = b"miresga-forwarding-case-payload-0123456789"


def _ip(addr: str) -> int:
    return int.from_bytes(bytes(int(x) for x in addr.split(".")), "big")


def _mac(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def route(addr: str, plen: int, port: int) -> TableEntry:
    return TableEntry("route", {"dst_addr": (_ip(addr), plen)}, "forward",
                      {"port": port, "smac": _mac(SW_MAC[port]), "dmac": _mac(NEXT_HOP[port])})


def route_drop(addr: str, plen: int) -> TableEntry:
    return TableEntry("route", {"dst_addr": (_ip(addr), plen)}, "drop", {})


def routed(port: int):
    """out is `sent` routed to `port`: MACs rewritten, TTL - 1, checksum right, rest unchanged."""

    def check(out: Packet, sent: Packet) -> bool:
        o, s = out[IP], sent[IP]
        unchanged_l3 = (o.src, o.dst, o.id, o.proto, o.tos, o.flags, o.frag, o.len, o.options) == \
                       (s.src, s.dst, s.id, s.proto, s.tos, s.flags, s.frag, s.len, s.options)
        return (out[Ether].src == SW_MAC[port] and out[Ether].dst == NEXT_HOP[port]
                and out[Ether].type == 0x0800 and o.ttl == s.ttl - 1 and ip_checksum_ok(out)
                and unchanged_l3 and bytes(o.payload) == bytes(s.payload))

    return check


def udp(dst: str, ttl: int = 64) -> Packet:
    return (Ether(src=SRC_MAC, dst=IN_DMAC) / IP(src=H1, dst=dst, ttl=ttl, id=4242)
            / UDP(sport=40000, dport=9) / Raw(PAYLOAD))


CASES = [
    PacketCase("UDP to a /32 route leaves its port with MACs rewritten, TTL-1, checksum fixed",
               entries=[route(H2, 32, 2)], send=udp(H2), expect=Forwarded(2, routed(2))),
    PacketCase("TCP segment is routed; L4 header and payload are byte-identical",
               entries=[route(H3, 32, 3)],
               send=Ether(src=SRC_MAC, dst=IN_DMAC) / IP(src=H1, dst=H3, ttl=17)
               / TCP(sport=33000, dport=80, flags="PA", seq=1000, ack=2000) / Raw(PAYLOAD),
               expect=Forwarded(3, routed(3))),
    PacketCase("longest prefix wins: /32 to port 3 over /24 to port 2",
               entries=[route(NET, 24, 2), route("198.18.201.7", 32, 3)],
               send=udp("198.18.201.7"), expect=Forwarded(3, routed(3))),
    PacketCase("a /24 route covers an address without a /32",
               entries=[route(NET, 24, 2), route("198.18.201.7", 32, 3)],
               send=udp("198.18.201.8"), expect=Forwarded(2, routed(2))),
    PacketCase("a default route (/0) catches the rest",
               entries=[route("0.0.0.0", 0, 2)], send=udp("198.18.250.1"),
               expect=Forwarded(2, routed(2))),
    PacketCase("hairpin: a route back to the ingress port is honoured",
               entries=[route(H1, 32, 1)], send=udp(H1), in_port=1, expect=Forwarded(1, routed(1))),
    PacketCase("IPv4 with options is dropped (the P4 deparser checksums a fixed header)",
               entries=[route(H2, 32, 2)],
               send=Ether(src=SRC_MAC, dst=IN_DMAC)
               / IP(src=H1, dst=H2, options=[IPOption_RR(routers=["0.0.0.0"])]) / UDP() / Raw(PAYLOAD),
               expect=Dropped("ip_options")),
    PacketCase("TTL 2 is forwarded with TTL 1", entries=[route(H2, 32, 2)], send=udp(H2, ttl=2),
               expect=Forwarded(2, routed(2))),
    PacketCase("TTL 1 is dropped as expired", entries=[route(H2, 32, 2)], send=udp(H2, ttl=1),
               expect=Dropped("ttl_expired")),
    PacketCase("TTL 0 is dropped as expired", entries=[route(H2, 32, 2)], send=udp(H2, ttl=0),
               expect=Dropped("ttl_expired")),
    PacketCase("unknown destination: const default action drop, counted as a miss",
               entries=[route(H2, 32, 2)], send=udp("198.18.202.9"), expect=Dropped("table_miss")),
    PacketCase("a route whose action is drop drops", entries=[route_drop(H2, 32)], send=udp(H2),
               expect=Dropped("action_drop")),
    PacketCase("ARP request is dropped and counted (hosts use static neighbours)",
               entries=[route(H2, 32, 2)],
               send=Ether(src=SRC_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=H1, pdst=H2),
               expect=Dropped("arp")),
    PacketCase("IPv6 is dropped and counted as not IPv4", entries=[],
               send=Ether(src=SRC_MAC, dst=IN_DMAC) / IPv6(dst="2001:db8::1") / UDP() / Raw(PAYLOAD),
               expect=Dropped("not_ipv4")),
    PacketCase("truncated IPv4 header is dropped as malformed", entries=[route(H2, 32, 2)],
               send=Ether(src=SRC_MAC, dst=IN_DMAC, type=0x0800) / Raw(bytes(IP(src=H1, dst=H2))[:12]),
               expect=Dropped("malformed"),
               not_on={"bpf_test_run": "the kernel's test run refuses IPv4 frames shorter than an "
                                       "IPv4 header (EINVAL) before the program runs"}),
    PacketCase("IHL below 5 is dropped as malformed", entries=[route(H2, 32, 2)],
               send=Ether(src=SRC_MAC, dst=IN_DMAC) / IP(src=H1, dst=H2, ihl=4) / Raw(PAYLOAD),
               expect=Dropped("malformed")),
    PacketCase("a route to a port without an interface is dropped (no egress)",
               entries=[TableEntry("route", {"dst_addr": (_ip(H2), 32)}, "forward",
                                   {"port": 9, "smac": _mac(SW_MAC[2]), "dmac": _mac(NEXT_HOP[2])})],
               send=udp(H2), expect=Dropped("no_egress")),
    PacketCase("ICMP echo is routed like any IPv4 packet", entries=[route(H2, 32, 2)],
               send=Ether(src=SRC_MAC, dst=IN_DMAC) / IP(src=H1, dst=H2) / ICMP() / Raw(PAYLOAD),
               expect=Forwarded(2, routed(2))),
]
