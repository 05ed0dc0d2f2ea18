"""Switch profiles: the shipped files load, and a wrong file names the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from system.switch.profiles import PROFILES_DIR, ProfileError, load_profile


def test_tofino1_is_the_default_and_models_1e4_single_and_1e5_batched() -> None:
    p = load_profile()
    assert p.name == "tofino1"
    assert p.tables["offload"] == 143360
    ins = p.insertion
    assert ins.rate == 100000 and ins.burst == 1000 and ins.write_latency_us == 100
    single = 1 / (ins.write_latency_us / 1e6 + 1 / ins.rate)           # one update per Write
    batched = 1000 / (ins.write_latency_us / 1e6 + 1000 / ins.rate)    # 1000 updates per Write
    assert 9000 < single < 10000 and 95000 < batched < 100000


def test_every_shipped_profile_loads() -> None:
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
    assert {"tofino1", "unlimited", "rate-1k", "rate-10k", "rate-100k", "rate-1m"} <= set(names)
    for n in names:
        assert load_profile(n).name == n


def test_unlimited_is_unpaced_and_capacity_is_the_declared_size() -> None:
    p = load_profile("unlimited")
    assert p.insertion.rate is None and not p.insertion.paced
    assert p.capacity("route", 1024) == 1024


def test_rate_profile_extends_tofino1() -> None:
    p = load_profile("rate-1k")
    assert p.insertion.rate == 1000 and p.insertion.burst == 10
    assert p.insertion.write_latency_us == 100           # inherited
    assert p.tables["offload"] == 143360                 # inherited


def test_capacity_never_exceeds_the_declared_size() -> None:
    p = load_profile("tofino1")
    assert p.capacity("route", 512) == 512              # profile says 1024, a map of 512 holds 512
    assert p.capacity("offload", 10**6) == 143360
    assert p.capacity("not_listed", 77) == 77


@pytest.mark.parametrize(("text", "field"), [
    ("name: x\ninsertion: {rate: -5, burst: 1}\n", "insertion.rate"),
    ("name: x\ninsertion: {rate: 10}\n", "insertion.burst"),
    ("name: x\ninsertion: {burst: 10}\n", "insertion.burst"),
    ("name: x\ninsertion: {write_latency_us: '1ms'}\n", "insertion.write_latency_us"),
    ("name: x\ninsertion: {rat: 10}\n", "insertion.rat"),
    ("name: x\ntables: {route: -1}\n", "tables.route"),
    ("name: x\ntables: {route: true}\n", "tables.route"),
    ("name: x\ncapacity: 3\n", "capacity"),
    ("tables: {}\n", "name"),
    ("name: x\ndefault_capacity: 1.5\n", "default_capacity"),
    ("- a\n", "(top level)"),
])
def test_errors_name_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ProfileError) as e:
        load_profile(f)
    assert str(e.value).startswith(f"{f}: {field}: "), str(e.value)


def test_extends_cycle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(ProfileError, match="cycle"):
        load_profile(tmp_path / "a.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "nope.yaml")
