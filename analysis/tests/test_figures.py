"""analysis.figures: every figure is written, non-empty, and labelled emulated when it is."""

from __future__ import annotations

from pathlib import Path

from analysis import figures, load
from analysis.tests.rundirs import T0, request_row, workload

PNG = b"\x89PNG\r\n\x1a\n"


def test_build_figures_on_sample(sample_run: Path) -> None:
    paths = figures.build_figures(sample_run)
    names = {p.name for p in paths}
    workloads = set(load.cells(sample_run)["workload"])
    expected = {"throughput-vs-size.png", "cpu-cost.png", *(f"latency-cdf-{w}.png" for w in workloads),
                *(f"switch-occupancy-{w}.png" for w in workloads)}
    assert expected <= names
    assert "throughput-latency.png" not in names  # a single load level
    assert "insertion-sweep.png" not in names     # a single switch profile
    for p in paths:
        assert p.parent == sample_run / "figures"
        data = p.read_bytes()
        assert data[:8] == PNG and len(data) > 10_000


def test_titles_say_emulated(sample_run: Path) -> None:
    figs = figures.figures(sample_run)
    assert figs
    for name, fig in figs.items():
        assert "emulated testbed" in fig.get_suptitle(), name


def _levels_run(run_builder, emulated: bool) -> Path:
    cells = []
    for system, base in (("haproxy", 800), ("direct", 400)):
        for users, n in ((4, 40), (16, 80)):
            rows = [request_row(T0 + 3.9 * i / n, base * users // 4 + i) for i in range(n)]
            cells.append({"cell_id": f"{system}--1k--u{users}--r1", "system": system,
                          "wl": workload("1k", {"1k": 1024}), "rows": {"client1-1": rows}, "users": users})
    return run_builder(cells=cells, emulated=emulated)


def test_throughput_latency_with_several_load_levels(run_builder) -> None:
    run = _levels_run(run_builder, emulated=False)
    paths = {p.name: p for p in figures.build_figures(run)}
    assert "throughput-latency.png" in paths and paths["throughput-latency.png"].stat().st_size > 10_000
    assert "cpu-cost.png" not in paths  # no cpu.json: nothing to draw
    fig = figures.figures(run)["throughput-latency"]
    assert "hardware testbed" in fig.get_suptitle() and "emulated" not in fig.get_suptitle()
    ax = fig.axes[0]
    xs = sorted(x for line in ax.get_lines() for x in line.get_xdata())
    assert xs == sorted([40 / 4, 80 / 4] * 2)  # requests/s of each load level, per system
