"""Rule application and the pools' policies."""

from __future__ import annotations

import pytest

from conftest import BACKENDS, ruleset
from system import rules
from system.frontend.balancer import Balancer, NoBackend, NoRule
from system.frontend.packets import ip_bytes


def test_rule_order_and_conditions():
    b = Balancer(ruleset(), dict(BACKENDS))
    assert b.choose("GET", "x", "/obj/1k", ip_bytes("198.18.0.1")).rule.name == "objects"
    assert b.choose("GET", "x", "/health", ip_bytes("198.18.0.1")).rule.name == "health"
    assert b.choose("POST", "x", "/two/a", ip_bytes("198.18.0.1")).backend.name == "be2"
    with pytest.raises(NoRule):
        b.choose("POST", "x", "/obj/1k", ip_bytes("198.18.0.1"))      # method must be GET
    with pytest.raises(NoRule):
        b.choose("GET", "x", "/nothing", ip_bytes("198.18.0.1"))


def test_round_robin_alternates_and_skips_down_backends():
    b = Balancer(ruleset(), dict(BACKENDS))
    got = [b.choose("GET", None, "/obj/x", b"\0\0\0\0").backend.name for _ in range(4)]
    assert got == ["be1", "be2", "be1", "be2"]
    b.set_health("be1", False)
    assert {b.choose("GET", None, "/obj/x", b"\0\0\0\0").backend.name for _ in range(3)} == {"be2"}
    b.set_health("be2", False)
    with pytest.raises(NoBackend):
        b.choose("GET", None, "/obj/x", b"\0\0\0\0")


def _balancer(policy: str) -> Balancer:
    rs = rules.parse({"pools": {"p": {"backends": ["be1", "be2"], "policy": policy}},
                      "rules": [{"match": {"path_prefix": "/"}, "pool": "p"}]}, tuple(BACKENDS))
    return Balancer(rs, dict(BACKENDS))


def test_consistent_hash_is_stable_per_client_and_spreads():
    b = _balancer("consistent_hash")
    picks = {}
    for i in range(64):
        ip = ip_bytes(f"198.18.1.{i}")
        first = b.choose("GET", None, "/", ip).backend.name
        assert all(b.choose("GET", None, "/", ip).backend.name == first for _ in range(3))
        picks[ip] = first
    assert set(picks.values()) == {"be1", "be2"}
    # Only the clients of a failed back-end move.
    b.set_health("be1", False)
    for ip, name in picks.items():
        if name == "be2":
            assert b.choose("GET", None, "/", ip).backend.name == "be2"


def test_least_connections_follows_open_counts():
    b = _balancer("least_connections")
    first = b.choose("GET", None, "/", b"\0\0\0\1").backend
    assert first.name == "be1"
    b.opened(first)
    second = b.choose("GET", None, "/", b"\0\0\0\1").backend
    assert second.name == "be2"
    b.opened(second)
    b.opened(second)
    assert b.choose("GET", None, "/", b"\0\0\0\1").backend.name == "be1"
    b.closed(second)
    b.closed(second)
    assert b.connections == {"be1": 1, "be2": 0}


def test_default_rules_file_loads_into_a_balancer():
    from pathlib import Path
    rs = rules.load(Path(__file__).resolve().parents[2] / "rules" / "default.yaml", tuple(BACKENDS))
    b = Balancer(rs, dict(BACKENDS))
    assert b.choose("GET", None, "/obj/1m", b"\0\0\0\1").rule.offload == "auto"
