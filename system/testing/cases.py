"""Packet cases as data: table entries to install, a packet in, the expected verdict.

The same case lists feed every runner (BPF_PROG_TEST_RUN, the emulated switch over veth, later
P4Runtime and Tofino). A case names ports by P4 port number and MACs by value; it never depends
on a runner's interfaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from scapy.layers.inet import IP
from scapy.packet import Packet


@dataclass(frozen=True)
class TableEntry:
    table: str
    key: dict[str, int | tuple[int, int]]
    action: str
    params: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Forwarded:
    """The packet leaves on `port`; `check(out, sent)` holds for the packet out."""

    port: int
    check: Callable[[Packet, Packet], bool] | None = None


@dataclass(frozen=True)
class Dropped:
    """The packet is dropped and counted under `reason` (system.switch.tables.DROP_REASONS)."""

    reason: str


@dataclass(frozen=True)
class PacketCase:
    description: str
    entries: list[TableEntry]
    send: Packet
    expect: Forwarded | Dropped
    in_port: int = 1
    not_on: dict[str, str] = field(default_factory=dict)  # runner name -> why it cannot run there

    def __str__(self) -> str:
        return self.description


def ip_checksum_ok(pkt: Packet) -> bool:
    """The IPv4 header checksum of `pkt` equals the one scapy recomputes."""
    ip = pkt[IP]
    fresh = ip.copy()
    fresh.chksum = None
    return IP(bytes(fresh))[IP].chksum == ip.chksum
