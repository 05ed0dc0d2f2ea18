"""Python mirror of the agent's maps, structs and constants (bpf/consts.h, bpf/structs.h).

A test checks this mirror against the compiled object (map names, types, key/value sizes, sizes)
and against the headers (counter field names and order, flag bits). Callers use the facade
(`FlowTable`), never raw map bytes.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from system.bpf.syscall import Map

BPF_DIR = Path(__file__).resolve().parent / "bpf"
SOURCE = BPF_DIR / "agent.c"

PROG_INGRESS = "agent_ingress"
PROG_EGRESS = "agent_egress"
MAP_FLOWS = "flows"
MAP_COUNTERS = "counters"

FLOWS_SIZE = 131072  # AGENT_FLOWS_SIZE
MAP_TYPE_LRU_HASH = 9
MAP_TYPE_PERCPU_ARRAY = 6

# flow_state.flags bits.
FLOW_S_LEARNED = 1
FLOW_DELTA_LEARNED = 2
FLOW_FIN_IN = 4
FLOW_FIN_OUT = 8
FLOW_FIN_IN_ACKED = 16
FLOW_FIN_OUT_ACKED = 32
FLOW_S_PENDING = 64
FLAG_NAMES = {
    FLOW_S_LEARNED: "s_learned", FLOW_DELTA_LEARNED: "delta_learned", FLOW_FIN_IN: "fin_in",
    FLOW_FIN_OUT: "fin_out", FLOW_FIN_IN_ACKED: "fin_in_acked", FLOW_FIN_OUT_ACKED: "fin_out_acked",
    FLOW_S_PENDING: "s_pending",
}

# struct flow_key: client_ip (network), client_port (network), pad.
FLOW_KEY = struct.Struct("!4sHH")
# struct flow_state: s, delta (host u32), flags (host u64), fin_in_end, fin_out_end, rcv_nxt,
# s_next, syn_next, rcv_high (host u32).
FLOW_STATE = struct.Struct("=IIQIIIIII")

# struct agent_counters, in field order.
COUNTER_FIELDS = (
    "in_packets", "in_not_tcp", "in_malformed", "in_syn_learned", "in_syn_relearned",
    "in_syn_plain", "in_unknown", "in_no_delta", "in_translated", "in_sack_edges", "in_fin",
    "in_rst", "out_packets", "out_not_tcp", "out_malformed", "out_synack_learned", "out_unknown",
    "out_translated", "out_fin", "out_rst", "removed_closed", "removed_rst", "removed_plain_syn",
    "helper_errors", "in_rst_kept", "in_fin_outside", "out_syn_adopted",
)
COUNTERS = struct.Struct(f"={len(COUNTER_FIELDS)}Q")

Endpoint = tuple[str, int]  # (client IPv4 address, client TCP port)


@dataclass(frozen=True)
class FlowEntry:
    s: int
    delta: int = 0
    flags: int = FLOW_S_LEARNED
    fin_in_end: int = 0
    fin_out_end: int = 0
    rcv_nxt: int = 0       # the client sequence number the back-end's kernel expects next (agent's view)
    s_next: int = 0        # a later SYN's s, pending (FLOW_S_PENDING) until the kernel's SYN-ACK answers it
    syn_next: int = 0      # that SYN's seq
    rcv_high: int = 0      # end of the furthest in-window client data seen (0: none)

    @property
    def flag_names(self) -> list[str]:
        return [name for bit, name in FLAG_NAMES.items() if self.flags & bit]

    def pack(self) -> bytes:
        return FLOW_STATE.pack(self.s, self.delta, self.flags, self.fin_in_end, self.fin_out_end, self.rcv_nxt,
                               self.s_next, self.syn_next, self.rcv_high)

    @classmethod
    def unpack(cls, raw: bytes) -> FlowEntry:
        s, delta, flags, fin_in_end, fin_out_end, rcv_nxt, s_next, syn_next, rcv_high = FLOW_STATE.unpack(
            raw[: FLOW_STATE.size])
        return cls(s=s, delta=delta, flags=flags, fin_in_end=fin_in_end, fin_out_end=fin_out_end, rcv_nxt=rcv_nxt,
                   s_next=s_next, syn_next=syn_next, rcv_high=rcv_high)

    def as_dict(self) -> dict[str, object]:
        return {"s": self.s, "delta": self.delta, "flags": self.flag_names,
                "fin_in_end": self.fin_in_end, "fin_out_end": self.fin_out_end, "rcv_nxt": self.rcv_nxt,
                "s_next": self.s_next, "syn_next": self.syn_next, "rcv_high": self.rcv_high}


def pack_key(endpoint: Endpoint) -> bytes:
    ip, port = endpoint
    return FLOW_KEY.pack(socket.inet_aton(ip), port, 0)


def unpack_key(raw: bytes) -> Endpoint:
    ip, port, _ = FLOW_KEY.unpack(raw)
    return socket.inet_ntoa(ip), port


class FlowTable:
    """The flows map by client endpoint."""

    def __init__(self, flows: Map) -> None:
        self.map = flows

    def get(self, endpoint: Endpoint) -> FlowEntry | None:
        raw = self.map.lookup(pack_key(endpoint))
        return FlowEntry.unpack(raw) if raw is not None else None

    def put(self, endpoint: Endpoint, entry: FlowEntry) -> None:
        self.map.update(pack_key(endpoint), entry.pack())

    def delete(self, endpoint: Endpoint) -> None:
        self.map.delete(pack_key(endpoint))

    def entries(self) -> dict[Endpoint, FlowEntry]:
        out = {}
        for key in self.map.iter_keys():
            raw = self.map.lookup(key)
            if raw is not None:
                out[unpack_key(key)] = FlowEntry.unpack(raw)
        return out

    def clear(self) -> None:
        for key in list(self.map.iter_keys()):
            self.map.delete(key)


def read_counters(counters: Map) -> dict[str, int]:
    """The per-CPU counters summed over CPUs, by field name."""
    totals = [0] * len(COUNTER_FIELDS)
    for raw in counters.lookup_percpu(struct.pack("=I", 0)):
        for i, value in enumerate(COUNTERS.unpack(raw)):
            totals[i] += value
    return dict(zip(COUNTER_FIELDS, totals, strict=True))
