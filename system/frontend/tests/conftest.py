"""Shared fixtures of the front-end tests: a small world (VIP, back-ends, rules) and a switch stand-in
that computes cookies. Frames are built with scapy, independently of system/frontend/packets.py."""

from __future__ import annotations

import os
import shutil

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from system import rules
from system.frontend import syncookie
from system.frontend.balancer import Backend, Balancer
from system.frontend.engine import Config, FrontEnd
from system.frontend.packets import ip_bytes

VIP, VIP_PORT = "198.18.7.100", 80
CLIENT, CLIENT_PORT = "198.18.7.11", 40001
FE_MAC, SWITCH_MAC, CLIENT_MAC = "02:00:07:00:00:21", "02:00:07:ff:00:02", "02:00:07:00:00:11"
BACKENDS = {
    "be1": Backend("be1", "198.18.7.31", 8080, 0, "02:00:07:ff:00:02"),
    "be2": Backend("be2", "198.18.7.32", 8080, 1, "02:00:07:ff:00:02"),
}
SECRET, OLD_SECRET = 0x5EC12E7, 0x01D5EC2
C_ISN = 1_000_000

RULES_YAML = {
    "pools": {"web": {"backends": ["be1", "be2"], "policy": "round_robin"},
              "one": {"backends": ["be2"], "policy": "round_robin"},
              "big": {"backends": ["be1"], "policy": "round_robin"}},
    "rules": [
        {"name": "objects", "match": {"path_prefix": "/obj/", "method": "GET"}, "pool": "web", "offload": "auto",
         "offload_threshold": 65536},
        {"name": "pinned", "match": {"path_prefix": "/two/"}, "pool": "one", "offload": "never"},
        {"name": "always", "match": {"path_prefix": "/big/"}, "pool": "big", "offload": "always"},
        {"name": "health", "match": {"path": "/health"}, "pool": "web", "offload": "never"},
    ],
}


def ruleset() -> rules.RuleSet:
    return rules.parse(RULES_YAML, tuple(BACKENDS))


def cookie(client: str = CLIENT, port: int = CLIENT_PORT, secret: int = SECRET, mss_idx: int = 3,
           sack: bool = True, wscale: int = 7) -> int:
    return syncookie.encode(ip_bytes(client), port, ip_bytes(VIP), VIP_PORT, secret, mss_idx, sack, wscale)


def client_seg(payload: bytes = b"", flags: str = "PA", seq_off: int = 0, ack: int | None = None,
               port: int = CLIENT_PORT, s: int | None = None, window: int = 502) -> bytes:
    """A client->VIP frame as the switch delivers it to the front-end (seq relative to c + 1)."""
    s = cookie(port=port) if s is None else s
    a = (s + 1) & 0xFFFFFFFF if ack is None else ack
    pkt = (Ether(src=CLIENT_MAC, dst=FE_MAC) / IP(src=CLIENT, dst=VIP, id=77)
           / TCP(sport=port, dport=VIP_PORT, flags=flags, seq=C_ISN + 1 + seq_off, ack=a, window=window))
    if payload:
        pkt = pkt / Raw(payload)
    return bytes(pkt)


def backend_seg(be: Backend, flags: str, seq: int, ack: int, payload: bytes = b"",
                port: int = CLIENT_PORT) -> bytes:
    pkt = (Ether(src=SWITCH_MAC, dst=FE_MAC) / IP(src=be.ip, dst=CLIENT)
           / TCP(sport=be.port, dport=port, flags=flags, seq=seq, ack=ack, window=1000))
    if payload:
        pkt = pkt / Raw(payload)
    return bytes(pkt)


def make_engine(fastpath=None, offload=None, clock=None, activity=None, **cfg) -> FrontEnd:
    config = Config(vip=VIP, vip_port=VIP_PORT, own_mac=FE_MAC, client_next_hop_mac=SWITCH_MAC, **cfg)
    kw = {"clock": clock} if clock else {}
    return FrontEnd(config, Balancer(ruleset(), dict(BACKENDS)), syncookie.Secrets(SECRET, OLD_SECRET),
                    fastpath=fastpath, offload=offload, activity=activity, **kw)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, BPF programs)")
    for tool in ("bpftool", "tc", "clang"):
        if not shutil.which(tool) and not (tool == "clang" and shutil.which("clang-14")):
            pytest.skip(f"needs {tool}")
    if not os.path.ismount("/sys/fs/bpf"):
        pytest.skip("/sys/fs/bpf is not mounted")
