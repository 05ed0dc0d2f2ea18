"""The forwarding pipeline's packet cases (system/testing/forwarding_cases.py), on two runners:
BPF_PROG_TEST_RUN without namespaces, and the emulated switch over veth in namespaces."""

from __future__ import annotations

import pytest

from system.testing.forwarding_cases import CASES
from system.testing.runners import TestRunRunner, VethRunner, verify

pytestmark = pytest.mark.root
IDS = [c.description for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_case_bpf_test_run(case, loaded_tables):
    if "bpf_test_run" in case.not_on:
        pytest.skip(case.not_on["bpf_test_run"])
    tables, prog = loaded_tables
    TestRunRunner.map_fake_ports(tables, 3)
    outcome = TestRunRunner(tables, prog).run(case)
    verify(case, outcome)
    assert tables.count("route") == 0, "the runner must undo its writes"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_case_over_veth(case, star):
    if "veth" in case.not_on:
        pytest.skip(case.not_on["veth"])
    _topo, switch, pio = star
    outcome = VethRunner(switch.tables, pio).run(case)
    verify(case, outcome)
    assert switch.tables.count("route") == 0, "the runner must undo its writes"


def test_route_counters_count_hits_and_misses(loaded_tables):
    tables, prog = loaded_tables
    TestRunRunner.map_fake_ports(tables, 3)
    runner = TestRunRunner(tables, prog)
    hit = next(c for c in CASES if c.description.startswith("UDP to a /32"))
    miss = next(c for c in CASES if c.description.startswith("unknown destination"))
    runner.run(hit, repeat=5)
    runner.run(miss, repeat=3)
    c = tables.counters("route")
    assert c["hit_packets"] == 5 and c["miss_packets"] == 3
    assert c["hit_bytes"] == 5 * len(bytes(hit.send)) and c["miss_bytes"] == 3 * len(bytes(miss.send))


def test_direct_counter_counts_per_entry_and_survives_modify(loaded_tables):
    tables, prog = loaded_tables
    TestRunRunner.map_fake_ports(tables, 3)
    case = next(c for c in CASES if c.description.startswith("UDP to a /32"))
    e = case.entries[0]
    tables.insert(e.table, e.key, e.action, e.params)
    prog.test_run(bytes(case.send), repeat=4, ctx=TestRunRunner.ctx_for(1))
    assert tables.entry_counters("route", e.key) == {"packets": 4, "bytes": 4 * len(bytes(case.send))}
    tables.modify(e.table, e.key, e.action, {**e.params, "port": 3})
    assert tables.entry_counters("route", e.key)["packets"] == 4
    assert tables.get("route", e.key).params["port"] == 3
