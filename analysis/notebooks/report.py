# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Miresga run report
#
# Loads one run directory (docs/run-directory.md) and reproduces the tables and every figure of
# `report.md`. The run directory is taken from the environment variable `MIRESGA_RUN_DIR`; without
# it, the small stored sample run (`analysis/tests/data/sample-run`, synthetic) is used.
# This notebook only reads stored data: it never runs experiments and writes nothing.

# %%
import importlib.util
import io
import os
import sys
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

if importlib.util.find_spec("analysis") is None:  # not installed: use the work tree this notebook is in
    here = Path.cwd().resolve()
    root = next((d for d in (here, *here.parents) if (d / "analysis" / "load.py").is_file()), None)
    if root is None:
        raise RuntimeError(f"cannot find the analysis package above {here}; run from the repository")
    sys.path.insert(0, str(root))

from analysis import compare, figures, load, report

SAMPLE_RUN = Path(load.__file__).resolve().parent / "tests" / "data" / "sample-run"
RUN_DIR = Path(os.environ.get("MIRESGA_RUN_DIR") or SAMPLE_RUN)
run = load.load_run(RUN_DIR)
cells = load.cells(run)
reqs = load.requests(run)
label = figures.run_label(run)
pd.set_option("display.max_columns", 60)
pd.set_option("display.width", 200)
print(f"{RUN_DIR}: {len(cells)} cells, {len(reqs)} requests in the measurement windows; {label}")

# %% [markdown]
# ## Provenance

# %%
display(Markdown(report.provenance(run, cells)))

# %% [markdown]
# ## One row per cell

# %%
display(cells[["cell_id", "status", "requests", "ok", "failed", "rps", "goodput_gbps", "p50_us", "p99_us",
               "lb_cpu_s", "cpu_s_per_req", "generator_util", "flags"]])

# %% [markdown]
# ## Results per workload (as in report.md)

# %%
for workload in dict.fromkeys(cells["workload"].dropna()):
    display(Markdown(report.workload_table(cells, workload)))

# %% [markdown]
# ## Latency per object (µs, ok requests in the window)

# %%
display(load.latency_by_object(run))

# %% [markdown]
# ## Comparisons against the baselines, beside the paper's claims

# %%
comparison = compare.compare_all(cells)
display(Markdown(report.comparison_table(comparison)))
display(comparison)

# %% [markdown]
# ## The switch: offloaded share, insertions, insertion latency, occupancy, relayed connections
#
# Per cell from `cells/<id>/switch/` (definitions in docs/run-directory.md and
# `analysis/switchstats.py`); NaN where a system has no switch data or the run predates it.

# %%
display(Markdown(report.switch_section(cells)))
display(cells[["cell_id", "switch_profile", "offload_share", "inserts_per_s", "deletes_per_s", "insert_rejected",
               "cp_latency_p50_ms", "cp_latency_p99_ms", "install_latency_p50_ms", "install_latency_p99_ms",
               "occupancy_peak", "table_capacity", "relayed_table_full"]])

# %% [markdown]
# ### Table occupancy and insertions over time (the control plane's samples, about one a second)

# %%
series = load.switch_series(run)
if series.empty:
    print("no control-plane samples in this run")
else:
    conn = series[series["conn_table"].astype(bool)]
    display(conn.groupby(["cell_id", "table"])["entries"].agg(["min", "max", "count"]))

# %% [markdown]
# ## CPU per request by part (front-end and its eBPF, agents, slow path, switch data plane)

# %%
display(Markdown(report.cpu_section(cells)))

# %% [markdown]
# ## Insertion-rate sweep (runs with a `switch_profiles` axis)

# %%
sweep = report.sweep_section(cells)
display(Markdown(sweep) if sweep else Markdown("This run has no switch-profile sweep."))

# %% [markdown]
# ## Flagged cells

# %%
display(Markdown(report.flagged_list(cells)))

# %% [markdown]
# ## Figures
#
# The same figures `analysis/figures.py` writes into `<run>/figures/`, rebuilt here from the data.


# %%
def show(fig) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    display(Image(data=buf.getvalue()))


shown = figures.figures(run)
for name, fig in shown.items():
    display(Markdown(f"### {name}"))
    show(fig)
print(f"{len(shown)} figures")
