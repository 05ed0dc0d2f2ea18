"""The run report: `<run_dir>/report.md`, built from the stored data only.

    python -m analysis.report RUN_DIR      # rebuilds figures/*.png and report.md

Sections: provenance, one table per workload (one row per system and load level, means over the
usable repetitions), the comparisons (analysis.compare), the flagged cells, and the figures.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import compare, figures, load

DASH = "–"


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return format(value, fmt)


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table; `|` in cells is escaped."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    out = [line(header), "|" + "|".join("---" for _ in header) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def provenance(run: load.Run, cells: pd.DataFrame) -> str:
    m = run.manifest
    git = m.get("git") or {}
    commit = str(git.get("commit") or "unknown")
    dirty = git.get("dirty")
    dirty_text = "dirty (uncommitted changes)" if dirty else ("clean" if dirty is False else "unknown")
    py = (m.get("packages") or {}).get("python") or {}
    deb = (m.get("packages") or {}).get("debian") or {}
    pkgs = ", ".join(f"{k} {v}" for k, v in {**py, **deb}.items()) or DASH
    failed = int((cells["status"] != "ok").sum())
    flagged = int((cells["flags"] != "").sum())
    kind = "**emulated testbed**" if run.emulated else "hardware testbed"
    rows = [
        ("run id", f"`{run.run_id}`"),
        ("suite", str(m.get("suite", DASH))),
        ("testbed", f"{m.get('testbed', DASH)} (switch target: {m.get('switch_target', DASH)})"),
        ("results from", kind),
        ("git commit", f"`{commit}`, {dirty_text}"),
        ("started / ended", f"{m.get('started', DASH)} / {m.get('ended', DASH)}"),
        ("cells", f"{len(cells)} ({failed} failed, {flagged} flagged)"),
        ("packages", pkgs),
    ]
    head = [f"# Report: run {run.run_id}" + (" (emulated testbed)" if run.emulated else ""), ""]
    if run.emulated:
        head += ["> These results come from an **emulated testbed** (software switch on one machine), not",
                 "> from the hardware the paper used. Compare shapes and ratios, not absolute numbers.", ""]
    head += [md_table(("", ""), rows), "",
             f"Built by `python -m analysis.report {run.path}` from the stored run directory."]
    return "\n".join(head)


def _flags_text(group: pd.DataFrame) -> str:
    parts = []
    for _, row in group.iterrows():
        if row["flags"]:
            parts.append(f"r{row['repetition']}: {row['flags']}")
    return "; ".join(parts)


def workload_table(cells: pd.DataFrame, workload: str) -> str:
    """One row per system (and load level) of one workload; means over usable repetitions."""
    df = cells[cells["workload"] == workload]
    systems = list(dict.fromkeys(df["system"]))
    rows = []
    for system in systems:
        for users, group in df[df["system"] == system].groupby("users", sort=True, dropna=False):
            use = group[group["usable"].astype(bool)]
            mean = use.mean(numeric_only=True) if len(use) else pd.Series(dtype=float)
            rows.append([
                system, _num(users, "g"), f"{len(use)}/{len(group)}",
                _num(mean.get("rps", math.nan), ".1f"),
                _num(mean.get("goodput_gbps", math.nan), ".3f"),
                _num(mean.get("p50_us", math.nan) / 1000, ".3f"),
                _num(mean.get("p99_us", math.nan) / 1000, ".3f"),
                _num(mean.get("cpu_s_per_req", math.nan), ".3g"),
                _num(mean.get("generator_util", math.nan) * 100, ".0f") + ("%" if len(use) else ""),
                _flags_text(group),
            ])
    header = ("system", "users", "n", "requests/s", "Gbit/s", "p50 ms", "p99 ms", "LB CPU s/request",
              "generator CPU util", "flags")
    first = df.iloc[0] if len(df) else None
    objects = ""
    latency = "all requests"
    if first is not None:
        obj = first["latency_object"]
        latency = "all requests" if obj in ("all", None) or pd.isna(obj) else f"the {obj} requests only"
        objects = f" ({first['connection']})"
    note = (f"Means over usable repetitions (`n` = usable/all; cells with errors or that failed are "
            f"left out). Latency over {latency}.")
    return "\n".join([f"### {workload}{objects}", "", note, "", md_table(header, rows)])


def comparison_table(comp: pd.DataFrame) -> str:
    if comp.empty:
        return "No pair of systems to compare in this run."
    rows = []
    for _, r in comp.iterrows():
        ci = (f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if not math.isnan(r["ci_low"])
              else f"n/a ({r['note']})" if r["note"] else "n/a")
        rows.append([
            f"{r['system']} vs {r['baseline']}", r["workload"], _num(r["users"], "g"), r["size_class"],
            r["metric"], _num(r["ratio"], ".2f"), ci,
            (f"{r['claim']:.1f}x" if not math.isnan(r["claim"]) else DASH),
            f"{r['n_system']}/{r['n_baseline']}",
            ", ".join(f"`{c}`" for c in r["excluded"]) or DASH,
        ])
    header = ("pair", "workload", "users", "sizes", "metric", "ratio", "95% CI", "paper", "n (sys/base)",
              "excluded cells")
    return "\n".join([
        "Ratio of means over usable repetitions (throughput: requests/s; latency: p50 or p99),",
        "95% t-interval on the log ratio. `paper` is the WWW'25 claim for this pair and object size class,",
        "if any.", "",
        md_table(header, rows)])


def flagged_list(cells: pd.DataFrame) -> str:
    flagged = cells[cells["flags"] != ""]
    if flagged.empty:
        return "None."
    lines = []
    for _, r in flagged.iterrows():
        detail = []
        if r["status"] != "ok":
            detail.append(f"status {r['status']}: {r['cell_error'] or 'no error message'}")
        else:
            errs = [f"{c[4:].replace('_', '-')} {int(r[c])}" for c in r.index
                    if c.startswith("err_") and r[c] and not math.isnan(r[c])]
            if r["errors"]:
                detail.append(f"{int(r['failed'])} failed of {int(r['requests'])} requests "
                              f"({', '.join(errs)})")
            if r["generator_saturated"]:
                detail.append(f"generator CPU util {r['generator_util'] * 100:.0f}% (>= 90%)")
        lines.append(f"- `{r['cell_id']}`: {r['flags']}; " + "; ".join(detail))
    return "\n".join(lines)


def build_report(run_dir: str | Path, figure_paths: list[Path] | None = None) -> Path:
    """Write `<run_dir>/report.md` (building the figures first unless their paths are given)."""
    run = load.load_run(run_dir)
    if figure_paths is None:
        figure_paths = figures.build_figures(run.path)
    cells = load.cells(run)
    comp = compare.compare_all(cells)
    parts = [provenance(run, cells), "", "## Results per workload", ""]
    for wl in dict.fromkeys(cells["workload"].dropna()):
        if wl:
            parts += [workload_table(cells, wl), ""]
    parts += ["## Comparisons", "", comparison_table(comp), "",
              "## Flagged cells", "", flagged_list(cells), "", "## Figures", ""]
    if figure_paths:
        for p in figure_paths:
            try:
                rel = Path(p).relative_to(run.path)
            except ValueError:
                rel = Path("figures") / Path(p).name
            parts += [f"![{rel.stem}]({rel.as_posix()})", ""]
    else:
        parts += ["No figures.", ""]
    out = run.path / "report.md"
    out.write_text("\n".join(parts))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild figures and report.md of a run directory.")
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    paths = figures.build_figures(args.run_dir)
    report = build_report(args.run_dir, paths)
    for p in [*paths, report]:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
