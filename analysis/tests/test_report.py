"""analysis.report: provenance, one row per system per workload with the loader's numbers, comparisons,
flagged cells, figure links; and a failed cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis import load, report


def _section(text: str, title: str) -> str:
    start = text.index(title)
    nxt = text.find("\n## ", start + len(title))
    nxt3 = text.find("\n### ", start + len(title))
    ends = [e for e in (nxt, nxt3) if e != -1]
    return text[start:min(ends) if ends else len(text)]


def _table_rows(section: str) -> list[list[str]]:
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def test_report_on_sample(sample_run: Path) -> None:
    path = report.build_report(sample_run)
    assert path == sample_run / "report.md"
    text = path.read_text()
    manifest = json.loads((sample_run / "manifest.json").read_text())
    assert text.startswith(f"# Report: run {manifest['run_id']} (emulated testbed)")
    assert manifest["git"]["commit"] in text and "dirty" in text
    assert manifest["started"] in text and manifest["suite"] in text
    cells = load.cells(sample_run)
    for workload, group in cells.groupby("workload"):
        rows = _table_rows(_section(text, f"### {workload} "))
        assert [r[0] for r in rows] == list(dict.fromkeys(group["system"]))
        for r in rows:
            sel = group[(group["system"] == r[0]) & group["usable"]]
            assert r[2] == f"{len(sel)}/{(group['system'] == r[0]).sum()}"
            assert r[3] == f"{sel['rps'].mean():.1f}"
            assert r[4] == f"{sel['goodput_gbps'].mean():.3f}"
            assert r[5] == f"{sel['p50_us'].mean() / 1000:.3f}"
            assert r[6] == f"{sel['p99_us'].mean() / 1000:.3f}"
            assert r[8] == f"{sel['generator_util'].mean() * 100:.0f}%"
    comp = _table_rows(_section(text, "## Comparisons"))
    assert len(comp) == 3 * cells["workload"].nunique() * 5
    assert {r[0] for r in comp} == {"miresga vs haproxy", "miresga vs switch-only", "miresga vs direct",
                                    "haproxy vs direct", "switch-only vs direct"}
    paper = {(r[0], r[1], r[4]): r[7] for r in comp}
    assert paper[("miresga vs switch-only", "1k-close", "throughput")] == "5.0x"
    assert paper[("miresga vs switch-only", "1k-close", "latency_p50")] == "0.2x"
    assert paper[("miresga vs haproxy", "1k-close", "throughput")] == "3.9x"
    flagged = _section(text, "## Flagged cells")
    for _, c in cells[cells["flags"] != ""].iterrows():
        assert f"`{c['cell_id']}`: {c['flags']}" in flagged
    assert ("- `miresga--t2-mix--u8--r1`: switch-bound; the emulated switch's eBPF used 31% of one core "
            "(> 25%): the cell measured the emulator") in flagged
    for png in (sample_run / "figures").glob("*.png"):
        assert f"(figures/{png.name})" in text


def test_main_rebuilds_report_and_figures(sample_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main([str(sample_run)]) == 0
    printed = capsys.readouterr().out.split()
    assert str(sample_run / "report.md") in printed
    assert any(p.endswith(".png") for p in printed)
    assert (sample_run / "figures" / "cpu-cost.png").is_file()


def test_report_with_failed_cell(sample_run: Path) -> None:
    victim = json.loads((sample_run / "manifest.json").read_text())["cells"][0]
    cdir = sample_run / "cells" / victim
    spec = json.loads((cdir / "cell.json").read_text())
    spec.update(status="failed", error="haproxy did not start")
    (cdir / "cell.json").write_text(json.dumps(spec))
    shutil.rmtree(cdir / "requests")
    text = report.build_report(sample_run).read_text()
    assert f"`{victim}`: failed; status failed: haproxy did not start" in text
    assert "1 failed" in text
    rows = _table_rows(_section(text, f"### {spec['workload']['name']} "))
    row = next(r for r in rows if r[0] == spec["system"])
    cells = load.cells(sample_run)
    group = cells[(cells["workload"] == spec["workload"]["name"]) & (cells["system"] == spec["system"])]
    assert row[2] == f"{int(group['usable'].sum())}/{len(group)}"
    assert int(group["usable"].sum()) == len(group) - 1 - int((group["flags"].str.contains("errors")).sum())
    assert f"r{spec['repetition']}: failed" in row[9]


def test_md_table_escapes_pipes() -> None:
    assert report.md_table(("a", "b"), [("x|y", "1")]).splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]


def test_incomplete_run_says_so_and_marks_pairs_lacking_a_side(sample_run: Path) -> None:
    """An interrupted run (harness/interrupt.py): 6 of 16 planned cells ran; the header says
    "incomplete: 6 of 16 cells" and names the missing ones; comparisons whose cells on one side did
    not run are rows that say which side is lacking; the tables cover what ran."""
    mpath = sample_run / "manifest.json"
    manifest = json.loads(mpath.read_text())
    planned = manifest["cells"]
    ran = planned[:6]               # haproxy x 4, direct 1k-close x 2: direct t2-mix never ran
    manifest |= {"planned": planned, "cells": ran, "state": "interrupted",
                 "interruption": {"signal": "SIGINT", "at": "2026-11-26T08:16:00Z", "cell": planned[6]}}
    mpath.write_text(json.dumps(manifest))
    text = report.build_report(sample_run, figure_paths=[]).read_text()
    head = text.split("## Results per workload")[0]
    assert "**incomplete: 6 of 16 cells** (interrupted by SIGINT during `direct--t2-mix--u8--r1`)" in head
    missing = head.split("Missing: ")[1].split(".\n")[0]
    assert missing == ", ".join(f"`{c}`" for c in planned[6:])
    assert f"fab run-suite --resume {sample_run}" in head
    assert "| state | interrupted (SIGINT at 2026-11-26T08:16:00Z) |" in head
    flagged = int((load.cells(sample_run)["flags"] != "").sum())
    assert f"| cells | 6 (0 failed, {flagged} flagged) of 16 planned |" in head
    rows = _table_rows(_section(text, "## Comparisons"))
    lacking = {(r[0], r[1]): r[6] for r in rows if r[6].startswith("lacks a side")}
    # haproxy vs direct: t2-mix has no direct cell; miresga and switch-only never ran at all
    assert lacking[("haproxy vs direct", "t2-mix")] == "lacks a side: no direct cells (not run)"
    assert lacking[("miresga vs haproxy", "1k-close")] == "lacks a side: no miresga cells (not run)"
    assert lacking[("miresga vs direct", "t2-mix")] == "lacks a side: no miresga and no direct cells (not run)"
    assert ("haproxy vs direct", "1k-close") not in lacking            # both sides ran: a real ratio
    assert any(r[0] == "haproxy vs direct" and r[1] == "1k-close" and r[5] != "–" for r in rows)
    # miresga vs its 3 baselines and switch-only vs direct on both workloads, haproxy vs direct on t2-mix
    assert len(lacking) == 4 * 2 + 1
    t2 = _table_rows(_section(text, "### t2-mix "))
    assert [r[0] for r in t2] == ["haproxy"]


def test_complete_run_has_no_notice(sample_run: Path) -> None:
    text = report.build_report(sample_run, figure_paths=[]).read_text()
    assert "incomplete" not in text and "lacks a side" not in text
    assert "| state | complete |" in text
