"""Packet tools of tests/test_miresga_guard.py, run inside a host's namespace (`ip netns exec <ns>
python tests/guard_probe.py ...`): craft packets at a back-end, capture what a host receives.

    send <json>      send the packets of a JSON list of {dst, proto: tcp|udp|icmp, sport, dport, flags,
                     seq, ack, payload, src?} at layer 3; print how many were sent
    sniff <iface>    capture every IPv4 frame received on <iface> until a TCP packet to port STOP_PORT
                     arrives (or a hang guard of 300 s passes); print "ready" once capturing, then one
                     JSON list of {src, dst, proto, sport, dport, flags}
    seq <iface> <vip> <sport>
                     wait for one pure ACK from local port <sport> to <vip> and print its seq (what the
                     peer expects next: the exact value a RST needs to reset the connection)

Not a test module (no test_ prefix).
"""

from __future__ import annotations

import json
import sys

from scapy.config import conf
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Raw
from scapy.sendrecv import AsyncSniffer, send, sniff
from scapy.supersocket import L3RawSocket

# The kernel's raw socket: its routes and static neighbours (the switch answers no ARP).
conf.L3socket = L3RawSocket
STOP_PORT = 9  # discard: the trusted sentinel's destination port ends a capture
HANG_GUARD_S = 300


def _packet(d: dict):
    ip = IP(dst=d["dst"], ttl=64) if "src" not in d else IP(src=d["src"], dst=d["dst"], ttl=64)
    payload = d.get("payload", "").encode()
    if d["proto"] == "tcp":
        l4 = TCP(sport=d["sport"], dport=d["dport"], flags=d["flags"], seq=d.get("seq", 1), ack=d.get("ack", 0))
    elif d["proto"] == "udp":
        l4 = UDP(sport=d["sport"], dport=d["dport"])
    else:
        l4 = ICMP(id=d.get("sport", 1), seq=1)
    return ip / l4 / Raw(payload) if payload else ip / l4


def cmd_send(spec: str) -> None:
    pkts = [_packet(d) for d in json.loads(spec)]
    send(pkts, verbose=0)
    print(len(pkts), flush=True)


def _describe(p) -> dict:
    ip = p[IP]
    out = {"src": ip.src, "dst": ip.dst, "proto": ip.proto}
    if TCP in p:
        out |= {"sport": p[TCP].sport, "dport": p[TCP].dport, "flags": str(p[TCP].flags)}
    elif UDP in p:
        out |= {"sport": p[UDP].sport, "dport": p[UDP].dport}
    return out


def cmd_sniff(iface: str) -> None:
    conf.sniff_promisc = False
    sniffer = AsyncSniffer(iface=iface, lfilter=lambda p: IP in p, store=True,
                           stop_filter=lambda p: TCP in p and p[TCP].dport == STOP_PORT,
                           started_callback=lambda: print("ready", flush=True))
    sniffer.start()
    sniffer.join(timeout=HANG_GUARD_S)
    if sniffer.running:
        sniffer.stop()
    print(json.dumps([_describe(p) for p in sniffer.results or []]), flush=True)


def cmd_seq(iface: str, vip: str, sport: str) -> None:
    got = sniff(iface=iface, count=1, timeout=HANG_GUARD_S,
                lfilter=lambda p: (TCP in p and p[IP].dst == vip and p[TCP].sport == int(sport)
                                   and str(p[TCP].flags) == "A" and not bytes(p[TCP].payload)))
    if not got:
        sys.exit(f"no segment from port {sport} to {vip} within {HANG_GUARD_S} s")
    print(got[0][TCP].seq, flush=True)


if __name__ == "__main__":
    {"send": cmd_send, "sniff": cmd_sniff, "seq": cmd_seq}[sys.argv[1]](*sys.argv[2:])
