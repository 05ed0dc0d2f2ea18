"""harness/locust_ui.py without a testbed: the Switch tab's figures from two collector snapshots, the
UI file for systems without switch state, the initial workload. (tests/test_locust_ui.py runs it all
on the integration testbed.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import deploy, inventory
from harness import locust_ui as lui

TESTBED = Path(__file__).resolve().parents[2] / "tests" / "data" / "testbed.yaml"


@pytest.fixture(scope="module")
def inv():
    return inventory.load(TESTBED)


def snap(t: float, *, offload: int, by_index: int, backends: int, adds: int, deletes: int, occupancy: int,
         punts: int) -> dict:
    """A snapshot shaped as harness.cellstats.CellCollector.snapshot takes it."""
    def table(hit_bytes: int, miss_bytes: int = 0) -> dict:
        return {"hit_bytes": hit_bytes, "miss_bytes": miss_bytes, "hit_packets": 0, "miss_packets": 0}
    return {
        "time": t, "controlplane_time": t,
        "counters": {"pipeline": "miresga", "tables": {"backends": table(backends), "offload": table(offload),
                                                       "backend_by_index": table(by_index)}},
        "controlplane": {"requests": {"add": adds, "delete": deletes}, "acks": {"OK": adds + deletes},
                         "occupancy": {"offload": occupancy, "frontends": 4},
                         "request_latency_us": {"p50": 1500, "p99": 4200}},
        "p4rt": {"pipeline": "miresga", "tables": {"offload": {"capacity": 65536}, "frontends": {"capacity": 64}}},
        "frontends": {"fe1": {"fast_path": {"punt_c2b_ctrl": {"packets": punts, "bytes": 0},
                                            "punt_b2c_ctrl": {"packets": punts // 2, "bytes": 0},
                                            "c2b_fast": {"packets": 10 ** 6, "bytes": 0}}}},
    }


def test_figures_between_two_snapshots(inv):
    s = lui.SwitchSampler(inv, deploy.SYSTEMS["miresga"])
    a = snap(100.0, offload=1_000, by_index=100, backends=2_000, adds=10, deletes=5, occupancy=3, punts=400)
    b = snap(102.0, offload=9_000_900, by_index=900, backends=10_001_000, adds=250, deletes=205, occupancy=45,
             punts=1_000)
    s.first = a
    f = s.figures(a, b, ["x: timeout"])
    # offloaded: offload hit bytes minus the client ACKs it matched (backend_by_index lookups)
    assert f["offload_share"] == pytest.approx((8_999_900 - 800) / 9_999_000)
    assert f["offloaded_bytes_total"] == 8_999_900 - 800 and f["b2c_bytes_total"] == 9_999_000
    assert f["inserts_per_s"] == 120 and f["deletes_per_s"] == 100
    assert f["inserts_total"] == 240 and f["deletes_total"] == 200 and f["insert_rejected_total"] == 0
    assert f["occupancy"] == 45 and f["occupancy_by_table"] == {"offload": 45} and f["capacity"] == 65536
    assert f["occupancy_peak"] == 45
    assert s.figures(b, a, [])["occupancy_peak"] == 45          # the peak since the UI started stays
    assert f["cp_latency_p50_ms"] == 1.5 and f["cp_latency_p99_ms"] == 4.2
    assert f["punts_per_s"] == (600 + 300) / 2      # punt_* reasons only, not c2b_fast
    assert f["window_s"] == 2.0 and f["errors"] == ["x: timeout"]
    json.dumps(f, allow_nan=False)                 # what is pushed is strict JSON


def test_a_single_snapshot_has_no_rates_but_json_nulls(inv):
    s = lui.SwitchSampler(inv, deploy.SYSTEMS["miresga"])
    a = snap(100.0, offload=0, by_index=0, backends=0, adds=0, deletes=0, occupancy=0, punts=0)
    f = s.figures(a, a, [])
    assert f["offload_share"] is None and f["inserts_per_s"] is None and f["punts_per_s"] is None
    assert f["occupancy"] == 0 and f["capacity"] == 65536
    json.dumps(f, allow_nan=False)


def test_systems_without_switch_state_say_so(inv):
    for name in ("haproxy", "direct"):
        conf = lui.LocustUI(inv, deploy.SYSTEMS[name], lui.default_workload(inv)).ui_file()
        assert conf["switch_state"] is False
        assert "holds no per-connection state" in conf["message"]
        assert conf["catalog"] == {"1k": 1024, "64k": 65536, "1m": 1048576, "10m": 10485760}
    for name in ("miresga", "switch-only"):
        conf = lui.LocustUI(inv, deploy.SYSTEMS[name], lui.default_workload(inv)).ui_file()
        assert conf["switch_state"] is True and conf["message"] == ""


def test_the_initial_workload(inv):
    assert lui.default_workload(inv).name == "1k-close"
    assert lui.default_workload(inv, "1m", "keepalive", "stock").name == "1m-ka100"
    with pytest.raises(ValueError, match="mix t2: the catalog has no object '10k'"):
        lui.default_workload(inv, "t2", "keepalive")
