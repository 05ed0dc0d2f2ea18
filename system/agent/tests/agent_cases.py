"""Packet cases of the back-end agent, as data: flows entries to install, the hook that sees the
packet, the packet, the packet expected out (built from the one sent), the flows table expected
afterwards and the counters expected to move.

C is the client endpoint (as the back-end sees it: the real client address), B the back-end.
S is the switch's ISN, ISN_B the back-end kernel's, DELTA = ISN_B - S (mod 2^32).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from system.agent.tables import (
    FLOW_DELTA_LEARNED,
    FLOW_FIN_IN,
    FLOW_FIN_IN_ACKED,
    FLOW_FIN_OUT,
    FLOW_S_LEARNED,
    FLOW_S_PENDING,
    Endpoint,
    FlowEntry,
)

C_IP, C_PORT = "198.18.60.1", 40000
B_IP, B_PORT = "198.18.60.2", 80
C: Endpoint = (C_IP, C_PORT)
C_OTHER_PORT: Endpoint = (C_IP, C_PORT + 1)
M32 = 0xFFFFFFFF

C_ISN = 0x11223344
S = 0x5A5A5A80
ISN_B = 0x9E3779B9
DELTA = (ISN_B - S) & M32
LEARNED = FlowEntry(s=S, delta=DELTA, flags=FLOW_S_LEARNED | FLOW_DELTA_LEARNED, rcv_nxt=(C_ISN + 1) & M32)
SYN_SEEN = FlowEntry(s=S, rcv_nxt=(C_ISN + 1) & M32)      # the SYN passed, its SYN-ACK not yet
PAYLOAD = b"GET /object/1 HTTP/1.1\r\nHost: miresga\r\n\r\n"
BODY = bytes(range(256)) * 4


def add(a: int, b: int) -> int:
    return (a + b) & M32


def sub(a: int, b: int) -> int:
    return (a - b) & M32


@dataclass(frozen=True)
class AgentCase:
    description: str
    hook: str                                   # "ingress" (to the back-end) or "egress"
    send: Packet
    entries: dict[Endpoint, FlowEntry] = field(default_factory=dict)
    expect: Callable[[Packet], Packet] | None = None   # sent -> expected out; None: unchanged
    after: dict[Endpoint, FlowEntry] | None = None      # the whole table afterwards; None: as before
    counts: dict[str, int] = field(default_factory=dict)  # counters that move (besides *_packets)

    def __str__(self) -> str:
        return self.description

    def expected(self) -> Packet:
        out = self.expect(self.send.copy()) if self.expect else self.send.copy()
        if self.expect:
            del out[TCP].chksum   # scapy recomputes the full checksum
        return Ether(bytes(out))


def to_b(flags: str = "A", seq: int = add(C_ISN, 1), ack: int = add(S, 1), options=(),
         payload: bytes = b"", sport: int = C_PORT) -> Packet:
    pkt = (Ether(src="02:00:00:00:60:01", dst="02:00:00:00:60:02") / IP(src=C_IP, dst=B_IP, id=7)
           / TCP(sport=sport, dport=B_PORT, flags=flags, seq=seq, ack=ack, window=502,
                 options=list(options)))
    return pkt / Raw(payload) if payload else pkt


def from_b(flags: str = "A", seq: int = add(ISN_B, 1), ack: int = add(C_ISN, 1), options=(),
           payload: bytes = b"", dport: int = C_PORT) -> Packet:
    pkt = (Ether(src="02:00:00:00:60:02", dst="02:00:00:00:60:01") / IP(src=B_IP, dst=C_IP, id=9)
           / TCP(sport=B_PORT, dport=dport, flags=flags, seq=seq, ack=ack, window=509,
                 options=list(options)))
    return pkt / Raw(payload) if payload else pkt


def set_tcp(**fields) -> Callable[[Packet], Packet]:
    def apply(pkt: Packet) -> Packet:
        for name, value in fields.items():
            setattr(pkt[TCP], name, value)
        return pkt
    return apply


SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("NOP", None), ("WScale", 7)]
UNKNOWN_OPT = (254, b"\x12\x34")   # an experimental option scapy writes as kind 254, len 4


def sack(*blocks: tuple[int, int]) -> tuple[str, tuple[int, ...]]:
    return ("SAck", tuple(edge for block in blocks for edge in block))


def sack_shift(blocks: list[tuple[int, int]], delta: int) -> list[tuple[int, int]]:
    return [(add(left, delta), add(right, delta)) for left, right in blocks]


# SACK blocks as the client numbers them (S space), three and four of them.
SACK3 = [(add(S, 5001), add(S, 6001)), (add(S, 9001), add(S, 10001)), (add(S, 12001), add(S, 13001))]
SACK4 = [*SACK3, (add(S, 20001), add(S, 21001))]
ACKED = add(S, 2001)
FIN_SEQ = add(C_ISN, 1 + len(PAYLOAD))
B_FIN_SEQ = add(ISN_B, 1 + len(BODY))
WRAP_DELTA = 0xFFFFFF00
AFTER_FIN_IN = replace(LEARNED, flags=LEARNED.flags | FLOW_FIN_IN, fin_in_end=add(FIN_SEQ, 1), rcv_high=FIN_SEQ)
AFTER_FIN_OUT = replace(AFTER_FIN_IN, flags=AFTER_FIN_IN.flags | FLOW_FIN_OUT | FLOW_FIN_IN_ACKED,
                        fin_out_end=add(B_FIN_SEQ, 1), rcv_nxt=add(FIN_SEQ, 1))
# Issue 10: a second SYN for a known endpoint (a re-steer back, port reuse, or forged), its s pending.
S2, C2_ISN, ISN_B2 = add(S, 0x1000), add(C_ISN, 0x777777), add(ISN_B, 0x3333)
PENDING = replace(LEARNED, flags=LEARNED.flags | FLOW_S_PENDING, s_next=S2, syn_next=C2_ISN)

CASES = [
    # Learning s.
    AgentCase("SYN with s in the ack field: s stored, ack field zeroed, checksum fixed",
              "ingress", to_b("S", seq=C_ISN, ack=S, options=SYN_OPTS),
              expect=set_tcp(ack=0), after={C: SYN_SEEN},
              counts={"in_syn_learned": 1}),
    AgentCase("SYN carrying the request (fast open) with s: learned, payload intact",
              "ingress", to_b("S", seq=C_ISN, ack=S, options=SYN_OPTS, payload=PAYLOAD),
              expect=set_tcp(ack=0), after={C: SYN_SEEN},
              counts={"in_syn_learned": 1}),
    AgentCase("port reuse: a new SYN from a known endpoint: s pending, the entry (close state too) kept",
              "ingress", to_b("S", seq=C2_ISN, ack=S2, options=SYN_OPTS),
              entries={C: AFTER_FIN_OUT, C_OTHER_PORT: LEARNED},
              expect=set_tcp(ack=0),
              after={C: replace(AFTER_FIN_OUT, flags=AFTER_FIN_OUT.flags | FLOW_S_PENDING, s_next=S2,
                                syn_next=C2_ISN), C_OTHER_PORT: LEARNED},
              counts={"in_syn_learned": 1, "in_syn_relearned": 1}),
    AgentCase("a forged SYN (s in the ack field) to a live connection changes no translation",
              "ingress", to_b("S", seq=C2_ISN, ack=S2, options=SYN_OPTS), entries={C: LEARNED},
              expect=set_tcp(ack=0), after={C: PENDING}, counts={"in_syn_learned": 1, "in_syn_relearned": 1}),
    AgentCase("a plain SYN (ack field 0) from a known endpoint: untouched, the entry kept",
              "ingress", to_b("S", seq=C_ISN, ack=0, options=SYN_OPTS), entries={C: LEARNED},
              counts={"in_syn_plain": 1}),
    AgentCase("a plain SYN from an unknown endpoint is untouched and learns nothing",
              "ingress", to_b("S", seq=C_ISN, ack=0, options=SYN_OPTS),
              after={}, counts={"in_syn_plain": 1}),
    # Learning delta.
    AgentCase("the kernel's SYN-ACK: delta = seq - s stored, seq := s, checksum fixed",
              "egress", from_b("SA", seq=ISN_B, ack=add(C_ISN, 1), options=SYN_OPTS),
              entries={C: SYN_SEEN}, expect=set_tcp(seq=S), after={C: LEARNED},
              counts={"out_synack_learned": 1, "out_translated": 1}),
    AgentCase("the kernel's SYN-ACK (fast open accepted: ack past the SYN's data) learns delta",
              "egress", from_b("SA", seq=ISN_B, ack=add(C_ISN, 1 + len(PAYLOAD)), options=SYN_OPTS),
              entries={C: SYN_SEEN}, expect=set_tcp(seq=S),
              after={C: replace(LEARNED, rcv_nxt=add(C_ISN, 1 + len(PAYLOAD)))},
              counts={"out_synack_learned": 1, "out_translated": 1}),
    AgentCase("a SYN-ACK answering the pending SYN: its s replaces the entry's, delta relearned",
              "egress", from_b("SA", seq=ISN_B2, ack=add(C2_ISN, 1), options=SYN_OPTS),
              entries={C: replace(AFTER_FIN_OUT, flags=AFTER_FIN_OUT.flags | FLOW_S_PENDING, s_next=S2,
                                  syn_next=C2_ISN)},
              expect=set_tcp(seq=S2),
              after={C: FlowEntry(s=S2, delta=sub(ISN_B2, S2), flags=LEARNED.flags, rcv_nxt=add(C2_ISN, 1))},
              counts={"out_syn_adopted": 1, "out_synack_learned": 1, "out_translated": 1}),
    AgentCase("a retransmitted SYN-ACK of the entry's own SYN while a forged SYN is pending: kept",
              "egress", from_b("SA", seq=ISN_B, ack=add(C_ISN, 1), options=SYN_OPTS),
              entries={C: PENDING}, expect=set_tcp(seq=S),
              counts={"out_synack_learned": 1, "out_translated": 1}),
    AgentCase("a SYN-ACK answering a SYN the entry did not learn (a plain SYN reused the endpoint): "
              "entry removed, untouched", "egress", from_b("SA", seq=ISN_B2, ack=0x01020304, options=SYN_OPTS),
              entries={C: LEARNED, C_OTHER_PORT: LEARNED}, after={C_OTHER_PORT: LEARNED},
              counts={"removed_plain_syn": 1, "out_unknown": 1}),
    AgentCase("a retransmitted SYN-ACK relearns the same delta and leaves with seq = s",
              "egress", from_b("SA", seq=ISN_B, ack=add(C_ISN, 1), options=SYN_OPTS),
              entries={C: LEARNED}, expect=set_tcp(seq=S), after={C: LEARNED},
              counts={"out_synack_learned": 1, "out_translated": 1}),
    AgentCase("a SYN-ACK to an unknown endpoint is untouched",
              "egress", from_b("SA", seq=ISN_B, options=SYN_OPTS), counts={"out_unknown": 1}, after={}),
    # Translation.
    AgentCase("client data with ACK: ack += delta, seq and payload unchanged, its end remembered",
              "ingress", to_b("PA", ack=ACKED, payload=PAYLOAD), entries={C: LEARNED},
              expect=set_tcp(ack=add(ACKED, DELTA)), after={C: replace(LEARNED, rcv_high=FIN_SEQ)},
              counts={"in_translated": 1}),
    AgentCase("client data outside the window: translated, its end not remembered",
              "ingress", to_b("PA", seq=add(C_ISN, 1 << 30), ack=ACKED, payload=PAYLOAD), entries={C: LEARNED},
              expect=set_tcp(ack=add(ACKED, DELTA)), counts={"in_translated": 1}),
    AgentCase("three SACK blocks behind NOPs and an unknown option: every edge += delta",
              "ingress", to_b("A", ack=ACKED, options=[("NOP", None), UNKNOWN_OPT, ("NOP", None),
                                                       sack(*SACK3)]),
              entries={C: LEARNED},
              expect=set_tcp(ack=add(ACKED, DELTA), options=[("NOP", None), UNKNOWN_OPT, ("NOP", None),
                                                            sack(*sack_shift(SACK3, DELTA))]),
              counts={"in_translated": 1, "in_sack_edges": 6}),
    AgentCase("four SACK blocks (36 option bytes, SACK last): all eight edges += delta",
              "ingress", to_b("A", ack=ACKED, options=[("NOP", None), ("NOP", None), sack(*SACK4)]),
              entries={C: LEARNED},
              expect=set_tcp(ack=add(ACKED, DELTA), options=[("NOP", None), ("NOP", None),
                                                            sack(*sack_shift(SACK4, DELTA))]),
              counts={"in_translated": 1, "in_sack_edges": 8}),
    AgentCase("SACK first, then an unknown option and EOL: one block translated, the rest intact",
              "ingress", to_b("A", ack=ACKED, options=[sack(SACK3[0]), UNKNOWN_OPT, ("EOL", None)]),
              entries={C: LEARNED},
              expect=set_tcp(ack=add(ACKED, DELTA), options=[sack(*sack_shift(SACK3[:1], DELTA)),
                                                            UNKNOWN_OPT, ("EOL", None)]),
              counts={"in_translated": 1, "in_sack_edges": 2}),
    AgentCase("a malformed SACK option (length 11) is left alone; ack is still translated",
              "ingress", to_b("A", ack=ACKED, options=[(5, b"\x00" * 9), ("NOP", None)]),
              entries={C: LEARNED}, expect=set_tcp(ack=add(ACKED, DELTA)),
              counts={"in_translated": 1, "in_malformed": 1}),
    AgentCase("back-end data: seq -= delta, ack and payload unchanged",
              "egress", from_b("PA", seq=add(ISN_B, 1), payload=BODY), entries={C: LEARNED},
              expect=set_tcp(seq=add(S, 1)), counts={"out_translated": 1}),
    AgentCase("wraparound on ingress: ack + delta crosses 2^32",
              "ingress", to_b("A", ack=0x200, options=[sack((0x180, 0x1C0))]),
              entries={C: replace(LEARNED, s=1, delta=WRAP_DELTA)},
              expect=set_tcp(ack=0x100, options=[sack((0x80, 0xC0))]),
              counts={"in_translated": 1, "in_sack_edges": 2}),
    AgentCase("wraparound on egress: seq - delta crosses 0",
              "egress", from_b("PA", seq=0x100, payload=BODY),
              entries={C: replace(LEARNED, s=1, delta=WRAP_DELTA)},
              expect=set_tcp(seq=0x200), counts={"out_translated": 1}),
    AgentCase("the back-end's ACK moves rcv_nxt (what a client RST must carry)",
              "egress", from_b("A", seq=add(ISN_B, 1), ack=add(C_ISN, 1 + len(PAYLOAD))), entries={C: LEARNED},
              expect=set_tcp(seq=add(S, 1)), after={C: replace(LEARNED, rcv_nxt=add(C_ISN, 1 + len(PAYLOAD)))},
              counts={"out_translated": 1}),
    # Untouched.
    AgentCase("unknown endpoint (same client IP, other port) on ingress: byte-identical",
              "ingress", to_b("A", ack=ACKED, sport=C_PORT + 1, options=[sack(SACK3[0])]),
              entries={C: LEARNED}, counts={"in_unknown": 1}),
    AgentCase("unknown endpoint on egress: byte-identical",
              "egress", from_b("PA", payload=BODY, dport=C_PORT + 1), entries={C: LEARNED},
              counts={"out_unknown": 1}),
    AgentCase("an entry without delta yet: the segment passes untouched",
              "ingress", to_b("A", ack=ACKED), entries={C: SYN_SEEN}, counts={"in_no_delta": 1}),
    AgentCase("UDP is not touched", "ingress",
              Ether() / IP(src=C_IP, dst=B_IP) / UDP(sport=C_PORT, dport=B_PORT) / Raw(PAYLOAD),
              entries={C: LEARNED}, counts={"in_not_tcp": 1}),
    # Close.
    AgentCase("RST from the client with seq = rcv_nxt: ack translated, entry removed",
              "ingress", to_b("RA", ack=ACKED), entries={C: LEARNED, C_OTHER_PORT: LEARNED},
              expect=set_tcp(ack=add(ACKED, DELTA)), after={C_OTHER_PORT: LEARNED},
              counts={"in_translated": 1, "in_rst": 1, "removed_rst": 1}),
    AgentCase("RST in the window but not at rcv_nxt (a blind guess): passed to the kernel, entry kept",
              "ingress", to_b("R", seq=add(C_ISN, 1 + 1000), ack=0), entries={C: LEARNED},
              counts={"in_translated": 1, "in_rst": 1, "in_rst_kept": 1}),
    AgentCase("RST at the end of data the kernel has not acknowledged yet (rcv_high): removed",
              "ingress", to_b("R", seq=FIN_SEQ, ack=0), entries={C: replace(LEARNED, rcv_high=FIN_SEQ)}, after={},
              counts={"in_translated": 1, "in_rst": 1, "removed_rst": 1}),
    AgentCase("RST one short of rcv_nxt after the client's FIN was acknowledged: removed (Linux accepts it)",
              "ingress", to_b("R", seq=FIN_SEQ, ack=0), entries={C: replace(AFTER_FIN_OUT, rcv_high=0)}, after={},
              counts={"in_translated": 1, "in_rst": 1, "removed_rst": 1}),
    AgentCase("RST before the SYN-ACK, at the SYN's seq + 1: removed",
              "ingress", to_b("R", seq=add(C_ISN, 1), ack=0), entries={C: SYN_SEEN}, after={},
              counts={"in_no_delta": 1, "removed_rst": 1}),
    AgentCase("RST before the SYN-ACK, elsewhere: entry kept",
              "ingress", to_b("R", seq=add(C_ISN, 5000), ack=0), entries={C: SYN_SEEN},
              counts={"in_no_delta": 1, "in_rst_kept": 1}),
    AgentCase("RST from the back-end: seq translated, entry removed",
              "egress", from_b("R", seq=add(ISN_B, 100), ack=0), entries={C: LEARNED},
              expect=set_tcp(seq=add(S, 100)), after={},
              counts={"out_translated": 1, "out_rst": 1, "removed_rst": 1}),
    AgentCase("the client's FIN (with data): translated, FIN end recorded, entry kept",
              "ingress", to_b("FPA", ack=ACKED, payload=PAYLOAD), entries={C: LEARNED},
              expect=set_tcp(ack=add(ACKED, DELTA)), after={C: AFTER_FIN_IN},
              counts={"in_translated": 1, "in_fin": 1}),
    AgentCase("a FIN far outside the window: translated, not recorded",
              "ingress", to_b("FA", seq=add(C_ISN, 1 + (1 << 24)), ack=ACKED), entries={C: LEARNED},
              expect=set_tcp(ack=add(ACKED, DELTA)), counts={"in_translated": 1, "in_fin": 1, "in_fin_outside": 1}),
    AgentCase("the back-end's FIN acknowledging the client's: both FINs seen, entry kept for the "
              "last ACK", "egress", from_b("FA", seq=B_FIN_SEQ, ack=add(FIN_SEQ, 1)),
              entries={C: AFTER_FIN_IN}, expect=set_tcp(seq=add(S, 1 + len(BODY))),
              after={C: AFTER_FIN_OUT}, counts={"out_translated": 1, "out_fin": 1}),
    AgentCase("an ACK short of the back-end's FIN keeps the entry",
              "ingress", to_b("A", seq=add(FIN_SEQ, 1), ack=add(S, len(BODY))),
              entries={C: AFTER_FIN_OUT}, expect=set_tcp(ack=add(ISN_B, len(BODY))),
              counts={"in_translated": 1}),
    AgentCase("the client's last ACK (of the back-end's FIN): translated, then the entry goes",
              "ingress", to_b("A", seq=add(FIN_SEQ, 1), ack=add(S, 2 + len(BODY))),
              entries={C: AFTER_FIN_OUT}, expect=set_tcp(ack=add(ISN_B, 2 + len(BODY))), after={},
              counts={"in_translated": 1, "removed_closed": 1}),
]
