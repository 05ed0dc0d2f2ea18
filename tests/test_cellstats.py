"""harness/cellstats.py: the per-host BPF listing (real bpftool on real pinned programs, run through
BPF_PROG_TEST_RUN with the kernel's statistics on), window deltas, pin globs per inventory kind, and
the switch-counters script against a real pinned pipeline."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cellstats, inventory
from system.bpf.build import compile_bpf
from system.bpf.loader import BPFFS, load_object, unpin
from system.bpf.syscall import Prog
from system.switch import tables
from system.switch.package import parse_package

ROOT = Path(__file__).resolve().parent.parent
PROG = r"""
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
SEC("tc")
int count_me(struct __sk_buff *skb) { return TC_ACT_OK; }
char LICENSE[] SEC("license") = "GPL";
"""
FRAME = bytes(14 + 20 + 20)


def test_parse_and_delta_rows() -> None:
    text = ("/sys/fs/bpf/mrsg-fe1-frontend/progs/fe_tc\t{\"id\": 7, \"name\": \"fe_tc\", \"run_time_ns\": 5000,"
            " \"run_cnt\": 10}\n\n"
            "/sys/fs/bpf/mrsg-fe1-frontend/progs/gone\t{}\n"          # bpftool failed: skipped
            "garbage line\n")
    start = cellstats.parse_bpf_listing(text)
    assert start == {"/sys/fs/bpf/mrsg-fe1-frontend/progs/fe_tc": {"id": 7, "name": "fe_tc", "run_time_ns": 5000,
                                                                   "run_cnt": 10}}
    end = {"fe1": {"/p/a": {"id": 7, "name": "a", "run_time_ns": 2_005_000, "run_cnt": 110},
                   "/p/b": {"id": 9, "name": "b", "run_time_ns": 1_000_000, "run_cnt": 3}},
           "be1": {"/p/c": {"id": 4, "name": "c", "run_time_ns": 50, "run_cnt": 1}}}
    begin = {"fe1": {"/p/a": {"id": 7, "name": "a", "run_time_ns": 5000, "run_cnt": 10},
                     "/p/b": {"id": 8, "name": "b", "run_time_ns": 9_000_000, "run_cnt": 99}}}  # b reloaded
    rows = {(r["host"], r["program"]): r for r in cellstats.bpf_rows({"fe1": "frontend", "be1": "backend"},
                                                                      begin, end)}
    assert rows[("fe1", "a")]["run_time_ns"] == 2_000_000 and rows[("fe1", "a")]["run_count"] == 100
    assert rows[("fe1", "b")]["run_time_ns"] == 1_000_000 and rows[("fe1", "b")]["run_count"] == 3
    assert rows[("be1", "c")]["role"] == "backend" and rows[("be1", "c")]["run_count"] == 1
    assert cellstats._sections("@@bpf\nx\ny\n@@frontend\n{}\n") == {"bpf": "x\ny", "frontend": "{}"}


def test_pin_globs_per_inventory_kind() -> None:
    inv = inventory.load("local")
    fe = inv.host("fe1")
    assert cellstats.bpf_pin_globs(inv, fe) == ["/sys/fs/bpf/mrsg-fe1/progs/*", "/sys/fs/bpf/mrsg-fe1-*/progs/*"]
    assert cellstats.switch_pin_dir(inv) == "/sys/fs/bpf/mrsg-switch"
    cluster = dataclasses.replace(inv, kind="cluster")
    assert cellstats.bpf_pin_globs(cluster, fe) == ["/sys/fs/bpf/miresga-*/progs/*"]
    assert cellstats.switch_pin_dir(cluster) == "/sys/fs/bpf/miresga-switch"


@pytest.fixture
def pinned(tmp_path: Path):
    """Three pinned copies of a trivial program: mrsc-cs (like a switch), mrsc-cs-agent (like an
    agent on the same host) and mrsc-csx (another host's, which the globs must not match)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (BPF)")
    src = tmp_path / "p.c"
    src.write_text(PROG)
    compile_bpf(src, tmp_path / "p.o")
    dirs = [BPFFS / "mrsc-cs", BPFFS / "mrsc-cs-agent", BPFFS / "mrsc-csx"]
    for d in dirs:
        unpin(d)
        load_object(tmp_path / "p.o", d)
    yield dirs
    for d in dirs:
        unpin(d)


@pytest.mark.root
def test_bpf_listing_counts_real_runs(pinned: list[Path]) -> None:
    cmd = cellstats._bpf_listing_cmd(["/sys/fs/bpf/mrsc-cs/progs/*", "/sys/fs/bpf/mrsc-cs-*/progs/*"])
    sysctl = Path("/proc/sys/kernel/bpf_stats_enabled").read_text()
    # the cluster hosts' holder process: statistics on while it lives (no sysctl change)
    holder = subprocess.Popen([sys.executable, "-c", cellstats._HOLDER_SCRIPT, "60"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and "BPF statistics enabled" in holder.stdout.readline()
        def listing() -> dict:
            out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout
            return cellstats.parse_bpf_listing(out)
        before = listing()
        assert set(before) == {"/sys/fs/bpf/mrsc-cs/progs/count_me", "/sys/fs/bpf/mrsc-cs-agent/progs/count_me"}
        with Prog.pinned(pinned[1] / "progs" / "count_me") as prog:
            for _ in range(7):                          # 7 x 1000 runs: a total no machine runs in 0 ns
                assert prog.test_run(FRAME, repeat=1000)[0] == 0     # TC_ACT_OK
        with Prog.pinned(pinned[2] / "progs" / "count_me") as other:
            other.test_run(FRAME, repeat=5)             # not this host's: must not be counted
        after = listing()
    finally:
        holder.terminate()
        holder.wait(10)
    assert Path("/proc/sys/kernel/bpf_stats_enabled").read_text() == sysctl
    rows = {r["pinned"]: r for r in cellstats.bpf_rows({"h": "backend"}, {"h": before}, {"h": after})}
    agent = rows["/sys/fs/bpf/mrsc-cs-agent/progs/count_me"]
    assert agent["run_count"] == 7000 and agent["program"] == "count_me"
    assert isinstance(agent["run_time_ns"], int) and agent["run_time_ns"] > 0
    assert rows["/sys/fs/bpf/mrsc-cs/progs/count_me"]["run_count"] == 0
    assert len(rows) == 2


@pytest.mark.root
def test_counters_script_reads_a_pinned_pipeline(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (BPF)")
    from system.switch.package import build_package
    pkg = parse_package(build_package("forwarding"))
    obj = tmp_path / "forwarding.o"
    obj.write_bytes(pkg.object_bytes)
    pin = BPFFS / "mrsc-cs-switch"
    unpin(pin)
    load_object(obj, pin)
    try:
        with tables.PipelineTables(tables.FORWARDING, pin) as pt:
            pt.set_port(3, 1)
        out = subprocess.run([sys.executable, "-c", cellstats._COUNTERS_SCRIPT, "forwarding", str(pin)],
                             capture_output=True, text=True, check=True, cwd=ROOT).stdout
    finally:
        unpin(pin)
    data = json.loads(out)
    assert data["pipeline"] == "forwarding" and set(data["tables"]) == {"route"}
    assert data["tables"]["route"] == {"hit_packets": 0, "hit_bytes": 0, "miss_packets": 0, "miss_bytes": 0}
    assert set(data["ports"]) == {"3"} and data["ports"]["3"]["rx_packets"] == 0


@pytest.mark.root
def test_local_collector_holds_the_stats_fd_without_the_sysctl() -> None:
    """On the local testbed the harness process enables the statistics itself (BPF_ENABLE_STATS) and
    releases them at finish(); the global sysctl is never written."""
    if os.geteuid() != 0:
        pytest.skip("needs root (BPF)")
    inv = inventory.load("local")
    sysd = cellstats.dep.SYSTEMS["direct"]
    c = cellstats.CellCollector(dataclasses.replace(inv, switch=dataclasses.replace(inv.switch, target="bridge")),
                                sysd)
    sysctl = Path("/proc/sys/kernel/bpf_stats_enabled").read_text()
    c.begin()
    fd = c._stats_fd
    assert fd is not None and os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-stats"
    c.finish()
    assert c._stats_fd is None and not os.path.exists(f"/proc/self/fd/{fd}") and not c.errors
    assert Path("/proc/sys/kernel/bpf_stats_enabled").read_text() == sysctl
    c.close()


# /proc/stat of a 2-CPU machine, captured (Linux 6.x; the ten columns of the aggregate line).
PROC_STAT_1 = """cpu  86049 1202 60211 4127063 1543 0 20101 7 3 1
cpu0 43000 600 30100 2063500 700 0 15050 3 2 1
cpu1 43049 602 30111 2063563 843 0 5051 4 1 0
intr 1873402 0 9 0 0 0 0 0 0 0 0
ctxt 5012312
btime 1764140000
processes 32001
procs_running 3
"""
PROC_STAT_2 = """cpu  86349 1202 60411 4127263 1553 0 20401 7 3 1
cpu0 43250 600 30200 2063600 705 0 15200 3 2 1
cpu1 43099 602 30211 2063663 848 0 5201 4 1 0
"""


def test_proc_stat_parsing_and_machine_window() -> None:
    a = cellstats.parse_proc_stat(PROC_STAT_1)
    per_cpu = a.pop("per_cpu_busy_s")
    assert a == {"user_s": 860.49, "nice_s": 12.02, "system_s": 602.11, "idle_s": 41270.63, "iowait_s": 15.43,
                 "irq_s": 0.0, "softirq_s": 201.01, "steal_s": 0.07, "cpus": 2}
    # each CPU's busy time: user + nice + system + irq + softirq + steal (not idle, not iowait)
    assert per_cpu == {"0": pytest.approx(887.53), "1": pytest.approx(788.17)}
    a["per_cpu_busy_s"] = per_cpu
    b = cellstats.parse_proc_stat(PROC_STAT_2)
    row = cellstats.machine_row("(machine)", a | {"time": 100.0}, b | {"time": 104.0})
    # 300 user + 200 system + 300 softirq jiffies busy; 200 idle + 10 iowait are not
    assert row == {"host": "(machine)", "cpus": 2, "window_s": 4.0, "user_s": 3.0, "nice_s": 0.0, "system_s": 2.0,
                   "idle_s": 2.0, "iowait_s": 0.1, "irq_s": 0.0, "softirq_s": 3.0, "steal_s": 0.0, "busy_s": 8.0,
                   "per_cpu_busy_s": {"0": 5.0, "1": 3.0}}   # 250 + 100 + 150 and 50 + 100 + 150 jiffies
    # an old kernel's shorter aggregate line (no steal column) still parses, the missing field as 0
    assert cellstats.parse_proc_stat("cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\n")["steal_s"] == 0.0
    with pytest.raises(ValueError, match="no aggregate 'cpu' line"):
        cellstats.parse_proc_stat("intr 1 2 3\n")


def test_this_machines_proc_stat_parses() -> None:
    got = cellstats.parse_proc_stat(Path("/proc/stat").read_text())
    assert got["cpus"] == os.cpu_count() and got["idle_s"] > 0
    assert sorted(got["per_cpu_busy_s"], key=int) == [str(c) for c in range(got["cpus"])]
