"""Helpers of the slow-path tests (a module, not a conftest, so that it never shadows another
directory's conftest): a small world, frames built with scapy (independently of
system/frontend/packets.py), a manual clock and a conn table that records what the engine asks."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from system import rules
from system.frontend import syncookie
from system.frontend.balancer import Backend, Balancer
from system.frontend.engine import Config, FrontEnd
from system.frontend.flows import Flow
from system.frontend.packets import ip_bytes

VIP, VIP_PORT = "198.18.9.100", 80
CLIENT, CLIENT_PORT = "198.18.9.11", 40001
CPU_MAC, CLIENT_MAC = "02:00:09:00:00:40", "02:00:09:00:00:11"
BACKENDS = {
    "be1": Backend("be1", "198.18.9.31", 80, 1, "02:00:09:00:00:31"),
    "be2": Backend("be2", "198.18.9.32", 80, 2, "02:00:09:00:00:32"),
}
SECRET = 0x5EC12E7
C_ISN = 1_000_000
RULES_YAML = {
    "pools": {"one": {"backends": ["be1"], "policy": "round_robin"},
              "two": {"backends": ["be2"], "policy": "round_robin"}},
    "rules": [
        {"name": "objects", "match": {"path_prefix": "/obj/"}, "pool": "one", "offload": "never"},
        {"name": "other", "match": {"path_prefix": "/two/"}, "pool": "two", "offload": "always"},
    ],
}
MASK = 0xFFFFFFFF


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class RecordingTable:
    """Stands in for the conn table at engine level: records install/remove, answers last_active."""

    def __init__(self) -> None:
        self.installed: list[tuple[tuple[bytes, int], int, str]] = []   # (key, delta, back-end)
        self.removed: list[tuple[bytes, int]] = []
        self.active: dict[tuple[bytes, int], float] = {}

    def install(self, flow: Flow) -> None:
        self.installed.append((flow.key, flow.delta, flow.backend.name))

    def remove(self, flow: Flow) -> None:
        self.removed.append(flow.key)

    def last_active(self, flow: Flow) -> float | None:
        return self.active.get(flow.key)


def cookie(port: int = CLIENT_PORT) -> int:
    # The switch-only SYN-ACK never offers SACK: sack_ok is always 0 (docs/switch-only-datapath.md).
    return syncookie.encode(ip_bytes(CLIENT), port, ip_bytes(VIP), VIP_PORT, SECRET, 3, False, 7)


def make_engine(table: RecordingTable | None = None, clock: Clock | None = None, **cfg) -> FrontEnd:
    config = Config(vip=VIP, vip_port=VIP_PORT, own_mac=CPU_MAC, client_next_hop_mac=CPU_MAC, learn_delta=True,
                    pin_backend=True, **cfg)
    return FrontEnd(config, Balancer(rules.parse(RULES_YAML, tuple(BACKENDS)), dict(BACKENDS)),
                    syncookie.Secrets(SECRET), clock=clock or Clock(), conn_table=table or RecordingTable())


def client_seg(payload: bytes = b"", flags: str = "PA", seq_off: int = 0, ack_off: int = 1,
               port: int = CLIENT_PORT) -> bytes:
    """Client -> VIP as the switch hands it to the CPU port: seq relative to c + 1, ack to s."""
    pkt = (Ether(src=CLIENT_MAC, dst=CPU_MAC) / IP(src=CLIENT, dst=VIP)
           / TCP(sport=port, dport=VIP_PORT, flags=flags, seq=C_ISN + 1 + seq_off,
                 ack=(cookie(port) + ack_off) & MASK, window=502))
    return bytes(pkt / Raw(payload) if payload else pkt)


def backend_seg(be: Backend, flags: str, seq: int, ack: int, payload: bytes = b"", port: int = CLIENT_PORT) -> bytes:
    pkt = (Ether(src=be.mac, dst=CPU_MAC) / IP(src=be.ip, dst=CLIENT)
           / TCP(sport=be.port, dport=port, flags=flags, seq=seq & MASK, ack=ack & MASK, window=1000))
    return bytes(pkt / Raw(payload) if payload else pkt)


def checksums_ok(p: Ether) -> bool:
    fresh = Ether(bytes(p))
    ip_c, tcp_c = fresh[IP].chksum, fresh[TCP].chksum
    fresh[IP].chksum = None
    fresh[TCP].chksum = None
    again = Ether(bytes(fresh))
    return again[IP].chksum == ip_c and again[TCP].chksum == tcp_c


def frames(raw: list[bytes]) -> list[Ether]:
    out = [Ether(f) for f in raw]
    assert all(checksums_ok(p) for p in out)
    return out
