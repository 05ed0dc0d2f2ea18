"""The switch benchmark's deployments check (issue 17) runs end to end: a fresh star with the
forwarding pipeline and a direct veth pair, a bulk TCP stream through each, every byte delivered,
the switch program's run time counted, and nothing left behind. Figures are the benchmark's, not
asserted here (python -m system.switch.bench --deployments 5)."""

from __future__ import annotations

import os

import pytest

from system.bpf.syscall import enable_stats
from system.switch import bench
from system.testing.netns import existing_netns


def test_median_of_paired_rounds() -> None:
    assert bench._median([3.0, 1.0, 2.0]) == 2.0
    assert bench._median([4.0, 1.0, 3.0, 2.0]) == 2.5


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and BPF")
def test_one_deployment_measures_both_paths_and_cleans_up() -> None:
    fd = enable_stats()
    try:
        (row,) = bench.deployments(1, 2, 0.5)
    finally:
        os.close(fd)
    assert row["deployment"] == 1 and row["rounds"] == 2 and row["complete"]
    assert len(row["switch_runs_gbit_s"]) == len(row["veth_runs_gbit_s"]) == len(row["round_ratios"]) == 2
    assert all(x > 0 for x in row["switch_runs_gbit_s"] + row["veth_runs_gbit_s"])
    assert row["ratio"] == bench._median(row["round_ratios"])
    assert row["bpf_ns_per_run"] > 0              # the stream crossed the switch's program
    assert row["within"] == (row["ratio"] >= 1 - bench.WITHIN)
    assert not {n for n in existing_netns() if n.startswith(("mrsc-bn", "mrsc-bd"))}
