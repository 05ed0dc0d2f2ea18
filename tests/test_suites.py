"""Suite files: expansion into cells, the shipped suites, and clear errors."""

from __future__ import annotations

import pytest
import yaml

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


@pytest.mark.parametrize("name", ["quick", "full", "sweep", "budget", "attack", "baseline-bench"])
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
    ({"pin_lb": "yes"}, "pin_lb: must be true or false"),
    ({"load": [{"workloads": ["t3"], "users": 4, "spawn_rate": 4}]}, "load[0].workloads: no workload named 't3'"),
    ({"load": [{"workloads": ["t2"], "users": 4, "spawn_rate": 4}]}, "no load level applies to workload '1k-close'"),
    ({"load": [{"workloads": [], "users": 4, "spawn_rate": 4}]}, "must be a non-empty list of workload names"),
])
def test_mistakes_are_named(change, words):
    with pytest.raises(SuiteError) as e:
        parse(BASE | change)
    assert words in str(e.value)


def test_open_loop_rates_axis_beside_a_closed_level():
    s = parse(BASE | {"workloads": [{"name": "1k-close", "objects": {"1k": 1}}],
                      "load": [{"users": 16, "spawn_rate": 16, "warmup_s": 2, "duration_s": 5},
                               {"mode": "open", "rates": [500, 1000], "users": 2, "arrival": "poisson",
                                "warmup_s": 2, "duration_s": 5}],
                      "repetitions": 1, "slo_p99_ms": 10, "budget_cores": 2})
    ids = [c.cell_id for c in s.cells]
    assert ids == ["direct--1k-close--u16--r1", "direct--1k-close--u2-o500--r1", "direct--1k-close--u2-o1000--r1",
                   "haproxy--1k-close--u16--r1", "haproxy--1k-close--u2-o500--r1", "haproxy--1k-close--u2-o1000--r1"]
    closed, o500 = s.cells[0].load, s.cells[1].load
    assert (closed.mode, closed.rate) == ("closed", None)
    assert (o500.mode, o500.rate, o500.arrival, o500.users, o500.pace_rps) == ("open", 500.0, "poisson", 2, None)
    assert s.cells[1].to_dict()["load"]["rate"] == 500.0
    assert (s.slo_p99_ms, s.budget_cores) == (10.0, 2.0)
    assert "open 500/s poisson" in suites.dry_run(s)
    assert parse(BASE).slo_p99_ms is None


@pytest.mark.parametrize(("load", "words"), [
    ({"mode": "open"}, "an open loop needs rate: R or rates"),
    ({"mode": "open", "rate": 5, "rates": [5]}, "an open loop needs rate: R or rates"),
    ({"mode": "open", "rates": [100, -3]}, "load.rates: must be a positive number of requests/s"),
    ({"mode": "open", "rates": [100, 100]}, "load.rates: lists a rate twice"),
    ({"mode": "open", "rate": "fast"}, "load.rate: must be a positive number"),
    ({"mode": "open", "rate": 10, "pace_rps": 10}, "load.pace_rps: is for a closed loop"),
    ({"mode": "open", "rate": 10, "arrival": "bursty"}, "load.arrival: must be one of constant, poisson"),
    ({"mode": "open", "rate": 10, "max_connections": 0}, "load.max_connections: must be an integer >= 1"),
    ({"mode": "ajar", "rate": 10}, "load.mode: must be one of closed, open"),
    ({"users": 4, "rate": 10}, "load.rate: is for an open loop (mode: open)"),
    ({"users": 4, "ratez": 10}, "load.ratez: unknown field"),
    ([{"users": 4}, {"users": 4}], "two load levels give the same cells"),
    ([{"users": 4}, "open"], "load[1]: must be a mapping"),
    ([], "must be a mapping or a non-empty list"),
])
def test_load_mistakes_are_named(load, words):
    with pytest.raises(SuiteError) as e:
        parse(BASE | {"load": load})
    assert words in str(e.value)


@pytest.mark.parametrize(("change", "words"), [
    ({"slo_p99_ms": 0}, "slo_p99_ms: must be a positive number of milliseconds"),
    ({"budget_cores": "one"}, "budget_cores: must be a positive number of cores"),
    ({"client": "stock", "load": {"mode": "open", "rate": 100}}, "open loop needs the lean client"),
])
def test_open_loop_suite_mistakes_are_named(change, words):
    with pytest.raises(SuiteError) as e:
        parse(BASE | change)
    assert words in str(e.value)


def test_wrk_check_marks_the_first_closed_cell_per_system_and_workload():
    s = parse(BASE | {"wrk_check": True,
                      "load": [{"mode": "open", "rate": 100, "users": 2, "warmup_s": 2, "duration_s": 5},
                               {"users": [4, 16], "spawn_rate": 16, "warmup_s": 2, "duration_s": 5}]})
    marked = [c.cell_id for c in s.cells if c.wrk_check]
    assert marked == ["direct--1k-close--u4--r1", "direct--t2--u4--r1", "haproxy--1k-close--u4--r1",
                      "haproxy--t2--u4--r1"]
    unmarked = parse(BASE)
    assert not any(c.wrk_check for c in unmarked.cells)
    # each check adds the cell's duration (wrk runs as long) and a little
    assert s.estimated_seconds - parse(BASE | {"load": s.raw["load"]}).estimated_seconds == \
        pytest.approx(4 * (5 + suites.WRK_OVERHEAD_S))
    with pytest.raises(SuiteError, match="wrk_check: must be true or false"):
        parse(BASE | {"wrk_check": "yes"})


def test_load_blocks_for_some_workloads_only():
    s = parse(BASE | {"load": [{"workloads": ["1k-close"], "mode": "open", "rates": [100, 300], "users": 2},
                               {"workloads": ["t2"], "mode": "open", "rates": [5], "users": 2},
                               {"users": 4, "spawn_rate": 4}],
                      "repetitions": 1, "systems": ["haproxy"]})
    assert [c.cell_id for c in s.cells] == [
        "haproxy--1k-close--u2-o100--r1", "haproxy--1k-close--u2-o300--r1", "haproxy--1k-close--u4--r1",
        "haproxy--t2--u2-o5--r1", "haproxy--t2--u4--r1"]


def test_pin_lb_needs_the_local_testbed():
    assert parse(BASE | {"pin_lb": True}).pin_lb and not parse(BASE).pin_lb
    cluster = inventory.load("harness/inventories/tofino-cluster.example.yaml")
    with pytest.raises(SuiteError, match="pin_lb: pins processes and receive queues of one machine"):
        suites.parse(BASE | {"pin_lb": True}, cluster, SYSTEMS)


def test_budget_suite_pins_and_offers_each_workload_its_rates():
    s = suites.load("budget", INV, SYSTEMS)
    assert s.pin_lb and set(s.systems) == {"direct", "haproxy", "miresga", "switch-only"}
    rates = {(c.workload["name"], c.load.rate) for c in s.cells if c.system == "miresga"}
    assert rates == {("1k-close", 100.0), ("1k-close", 300.0), ("1k-close", 600.0),
                     ("10m-keepalive", 5.0), ("10m-keepalive", 15.0)}
    assert all(c.load.mode == "open" for c in s.cells)


ATTACKS = [{"name": "syn", "kind": "syn-flood", "rate": 3000},
           {"name": "slow", "kind": "slowloris", "connections": 20, "interval_s": 0.5, "reopen": False}]


def test_attack_axis_runs_each_workload_without_and_under_each_attack():
    s = parse(BASE | {"attacks": ATTACKS, "repetitions": 1, "load": {"users": 4, "spawn_rate": 4, "warmup_s": 2,
                                                                     "duration_s": 3}})
    ids = [c.cell_id for c in s.cells]
    assert ids[:6] == ["direct--1k-close--u4--r1", "direct--1k-close+syn--u4--r1", "direct--1k-close+slow--u4--r1",
                       "direct--t2--u4--r1", "direct--t2+syn--u4--r1", "direct--t2+slow--u4--r1"]
    assert len(ids) == 2 * 2 * 3 and s.attacks == ("syn", "slow")
    syn = s.cells[1]
    assert syn.attack is not None and (syn.attack.kind, syn.attack.rate, syn.attack.workload) == ("syn-flood", 3000,
                                                                                                "1k-close")
    assert syn.workload["objects"] == s.cells[0].workload["objects"] and syn.workload["name"] == "1k-close+syn"
    slow = s.cells[2].attack
    assert slow is not None and (slow.connections, slow.interval_s, slow.reopen) == (20, 0.5, False)
    assert s.cells[0].attack is None and "attack" not in s.cells[0].to_dict()
    assert s.cells[1].to_dict()["attack"]["kind"] == "syn-flood"


@pytest.mark.parametrize(("attacks", "words"), [
    ([{"name": "x", "kind": "ping-flood"}], "attacks[0].kind: one of syn-flood"),
    ([{"name": "X Y", "kind": "syn-flood"}], "attacks[0].name"),
    ([{"name": "x", "kind": "syn-flood", "rate": 0}], "rate must be positive"),
    ([{"name": "x", "kind": "slowloris", "connections": 0}], "connections must be 1..10000"),
    ([{"name": "x", "kind": "syn-flood", "spoof_net": "10.0.0.0/24"}], "outside 198.18.0.0/15"),
    ([{"name": "x", "kind": "syn-flood", "colour": 1}], "attacks[0].colour: unknown field"),
    ([{"name": "x", "kind": "syn-flood"}, {"name": "x", "kind": "rst-sweep"}], "must be unique"),
    ([{"name": "none", "kind": "syn-flood"}], "not `none`"),
    ([], "non-empty list"),
])
def test_attack_mistakes_are_named(attacks, words):
    with pytest.raises(SuiteError) as e:
        parse(BASE | {"attacks": attacks})
    assert words in str(e.value)


def test_attacks_need_an_attacker_host():
    data = yaml.safe_load((inventory.ROOT / "harness" / "inventories" / "local.yaml").read_text())
    data["hosts"] = [h for h in data["hosts"] if h["role"] != "attacker"]
    inv = inventory.parse(data)
    with pytest.raises(SuiteError) as e:
        suites.parse(BASE | {"attacks": ATTACKS}, inv, SYSTEMS)
    assert "need a host with role attacker" in str(e.value)
