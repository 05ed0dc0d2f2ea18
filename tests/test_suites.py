"""Suite files: expansion into cells, the shipped suites, and clear errors."""

from __future__ import annotations

import pytest

from harness import deploy, inventory, suites
from harness.suites import SuiteError

INV = inventory.load("local")
SYSTEMS = tuple(deploy.SYSTEMS)


def parse(d: dict) -> suites.Suite:
    return suites.parse(d, INV, SYSTEMS)


BASE = {"systems": ["direct", "haproxy"],
        "workloads": [{"name": "1k-close", "objects": {"1k": 1}},
                      {"name": "t2", "mix": "T2", "connection": "keepalive", "requests_per_connection": 10}],
        "load": {"users": [4, 16], "spawn_rate": 16, "warmup_s": 2, "duration_s": 5},
        "repetitions": 2}


def test_expansion_is_the_full_product_grouped_by_system():
    s = parse(BASE)
    assert len(s.cells) == 2 * 2 * 2 * 2
    assert [c.system for c in s.cells[:8]] == ["direct"] * 8       # each system deployed once
    ids = [c.cell_id for c in s.cells]
    assert len(set(ids)) == len(ids)
    assert "haproxy--t2--u16--r2" in ids
    t2 = next(c for c in s.cells if c.workload["name"] == "t2")
    assert {o["name"]: o["weight"] for o in t2.workload["objects"]} == {"1k": 70, "10k": 20, "1m": 8, "10m": 2}
    assert t2.workload["latency_of"] == "1k" and t2.workload["requests_per_connection"] == 10
    one = next(c for c in s.cells if c.workload["name"] == "1k-close")
    assert one.workload["objects"] == [{"name": "1k", "path": "/obj/1k", "size": 1024, "weight": 1}]
    assert one.workload["connection"] == "close" and one.workload["client"] == "lean"
    assert "haproxy--t2--u16--r2" in suites.dry_run(s)


@pytest.mark.parametrize("name", ["quick", "full"])
def test_shipped_suites_expand(name):
    s = suites.load(name, INV, SYSTEMS)
    assert s.cells and set(s.systems) <= set(SYSTEMS)


def test_quick_suite_fits_in_ten_minutes():
    s = suites.load("quick", INV, SYSTEMS)
    assert s.estimated_seconds < 10 * 60


@pytest.mark.parametrize(("change", "words"), [
    ({"systems": ["nginx-cluster"]}, "unknown system 'nginx-cluster'"),
    ({"workloads": [{"name": "x", "objects": {"3k": 1}}]}, "'3k' is not in the inventory's catalog"),
    ({"workloads": [{"name": "x", "mix": "T9"}]}, "unknown mix 'T9'"),
    ({"workloads": [{"name": "x", "objects": {"1k": 1}, "mix": "T1"}]}, "either objects"),
    ({"workloads": [{"name": "x", "objects": {"1k": 1}, "connection": "close",
                     "requests_per_connection": 5}]}, "must be 1 with close"),
    ({"load": {"users": 100, "spawn_rate": 10, "warmup_s": 3}}, "must outlast spawning"),
    ({"repetitions": 0}, "repetitions"),
    ({"colour": "red"}, "colour: unknown field"),
])
def test_mistakes_are_named(change, words):
    with pytest.raises(SuiteError) as e:
        parse(BASE | change)
    assert words in str(e.value)
