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
