"""The suites' switch-profile axis: expansion, cell ids, deploys per (system, profile), clear errors
that name the field, the shipped insertion-rate sweep and its honest duration estimate; and the
runner's per-cell inventory and provenance record."""

from __future__ import annotations

import dataclasses

import pytest

from harness import deploy, inventory, runner, suites
from harness.suites import SuiteError
from system.switch import profiles

INV = inventory.load("local")
SYSTEMS = tuple(dict.fromkeys((*deploy.SYSTEMS, "switch-only")))   # switch-only may not be deployable yet

BASE = {"systems": ["miresga", "switch-only"],
        "switch_profiles": ["rate-1k", "unlimited", "small-tables"],
        "workloads": [{"name": "1k-close", "objects": {"1k": 1}}],
        "load": {"users": [16], "spawn_rate": 50, "warmup_s": 2, "duration_s": 6},
        "repetitions": 2}


def parse(d: dict, inv: inventory.Inventory = INV) -> suites.Suite:
    return suites.parse(d, inv, SYSTEMS)


def test_profile_axis_expands_per_system_and_profile():
    s = parse(BASE)
    assert len(s.cells) == 2 * 3 * 2
    assert s.switch_profiles == ("rate-1k", "unlimited", "small-tables")
    assert s.deployments == [(sy, p) for sy in ("miresga", "switch-only") for p in s.switch_profiles]
    ids = [c.cell_id for c in s.cells]
    assert ids[:2] == ["miresga--1k-close--u16--rate-1k--r1", "miresga--1k-close--u16--rate-1k--r2"]
    assert len(set(ids)) == len(ids)
    for c in s.cells:
        assert c.switch_profile_path == (profiles.PROFILES_DIR / f"{c.switch_profile}.yaml").resolve()
    text = suites.dry_run(s)
    assert "switch profiles rate-1k, unlimited, small-tables" in text
    assert "switch-only--1k-close--u16--small-tables--r2" in text
    assert "6 deploys x ~35 s = 210 s" in text


def test_without_the_axis_cells_keep_their_ids_and_the_inventory_profile():
    s = parse({k: v for k, v in BASE.items() if k != "switch_profiles"})
    assert s.switch_profiles == () and s.deployments == [("miresga", None), ("switch-only", None)]
    assert s.cells[0].cell_id == "miresga--1k-close--u16--r1"
    assert runner.with_profile(INV, s.cells[0]) is INV


def test_estimate_by_hand():
    s = parse(BASE)
    # 12 cells x (2 + 6 + 12 s) + 6 deploys x 35 s + 30 s
    assert s.estimated_seconds == pytest.approx(12 * 20 + 6 * 35 + 30)
    quick = suites.load("quick", INV, SYSTEMS)
    per_cell = sum(c.load.warmup_s + c.load.duration_s + suites.CELL_OVERHEAD_S for c in quick.cells)
    deploys = sum(suites.DEPLOY_S[sy] for sy in quick.systems)
    assert quick.estimated_seconds == pytest.approx(per_cell + deploys + suites.RUN_OVERHEAD_S)


def test_shipped_insertion_sweep():
    s = suites.load("insertion-sweep", INV, SYSTEMS)
    assert set(s.systems) == {"miresga", "switch-only"}
    assert {"rate-1k", "rate-10k", "rate-100k", "rate-1m", "unlimited"} <= set(s.switch_profiles)
    assert "small-tables" in s.switch_profiles
    small = profiles.load_profile("small-tables")
    full = profiles.load_profile("tofino1")
    for t in ("offload", "conn_in", "conn_out"):
        assert small.capacity(t, 10**6) < full.capacity(t, 10**6) / 100
    assert small.insertion == full.insertion
    assert {w["name"] for w in (c.workload for c in s.cells)} == {"1k-close"}
    assert all(c.workload["connection"] == "close" and c.workload["objects"][0]["size"] == 1024 for c in s.cells)
    assert s.estimated_seconds <= 15 * 60          # the brief: about 15 minutes on this machine


@pytest.mark.parametrize(("change", "words"), [
    ({"switch_profiles": ["rate-1k", "rate-2k"]}, "switch_profiles[1]: unknown switch profile 'rate-2k' (known: "),
    ({"switch_profiles": ["rate-1k", "rate-1k"]}, "switch_profiles[1]: profile 'rate-1k' is listed twice"),
    ({"switch_profiles": "rate-1k"}, "switch_profiles: must be a non-empty list"),
    ({"switch_profiles": []}, "switch_profiles: must be a non-empty list"),
    ({"switch_profiles": [5]}, "switch_profiles[0]: must be a profile name or path, not 5"),
    ({"bpf_stats": "yes"}, "bpf_stats: must be true or false"),
])
def test_profile_mistakes_are_named(change, words):
    with pytest.raises(SuiteError) as e:
        parse(BASE | change)
    assert words in str(e.value)
    assert str(e.value).startswith("<suite>: ")


def test_known_profiles_are_listed_in_the_error():
    with pytest.raises(SuiteError) as e:
        parse(BASE | {"switch_profiles": ["rate-2k"]})
    for name in ("rate-1k", "rate-1m", "tofino1", "unlimited", "small-tables"):
        assert name in str(e.value)


def test_invalid_profile_file_is_named(tmp_path):
    bad = tmp_path / "fast.yaml"
    bad.write_text("name: fast\ninsertion: {rate: -5, burst: 1}\n")
    with pytest.raises(SuiteError) as e:
        parse(BASE | {"switch_profiles": ["rate-1k", str(bad)]})
    assert "switch_profiles[1]: profile" in str(e.value) and "insertion.rate" in str(e.value)


def test_profile_by_path(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("extends: tofino1\nname: own-2k\ninsertion: {rate: 2000, burst: 20}\n")
    s = parse(BASE | {"switch_profiles": [str(own)]})
    assert s.cells[0].cell_id == "miresga--1k-close--u16--own-2k--r1"
    inv = runner.with_profile(INV, s.cells[0])
    assert inv.switch.profile == own.resolve() and INV.switch.profile != own.resolve()
    rec = runner._profile_of(inv)
    assert rec["name"] == "own-2k" and rec["insertion"]["rate"] == 2000.0
    assert rec["tables"]["offload"] == 143360          # inherited from tofino1


def test_profiles_need_an_emulated_switch():
    bridge = dataclasses.replace(INV, switch=dataclasses.replace(INV.switch, target="bridge"))
    with pytest.raises(SuiteError) as e:
        parse(BASE, inv=bridge)
    assert "switch_profiles: needs the emulated switch target" in str(e.value)
    assert runner._profile_of(bridge) is None
