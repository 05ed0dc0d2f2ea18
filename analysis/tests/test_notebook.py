"""The report notebook executes end to end on the sample run (nbclient, python3 kernel of this venv),
and its paired plain-Python copy is in sync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from analysis import figures, load

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture(scope="session")
def python3_kernel() -> str:
    """The python3 kernel spec; installed into this venv (`ipykernel install --sys-prefix`) if absent."""
    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], check=True,
                       capture_output=True)
    return "python3"


def test_notebook_pairs_are_in_sync() -> None:
    ipynb = jupytext.read(NOTEBOOKS / "report.ipynb")
    py = jupytext.read(NOTEBOOKS / "report.py")
    strip = [(c.cell_type, c.source.strip()) for c in ipynb.cells]
    assert strip == [(c.cell_type, c.source.strip()) for c in py.cells]
    assert ipynb.metadata["jupytext"]["formats"] == "ipynb,py:percent"


def test_notebook_executes_on_sample(sample_run: Path, python3_kernel: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRESGA_RUN_DIR", str(sample_run))
    nb = nbformat.read(NOTEBOOKS / "report.ipynb", as_version=4)
    client = NotebookClient(nb, kernel_name=python3_kernel, timeout=120,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    cells = load.cells(sample_run)
    assert f"{sample_run}: {len(cells)} cells" in text and "emulated testbed" in text
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) == len(figures.figures(sample_run)) >= 4
    assert f"{len(images)} figures" in text
    markdown = "".join(o["data"].get("text/markdown", "") for o in outputs if o.output_type == "display_data")
    for system in set(cells["system"]):  # the per-workload tables
        assert f"| {system} |" in markdown
    assert "| pair | workload |" in markdown  # the comparison table
    assert "### Switch: 1k-close" in markdown and "| offloaded share of bytes |" in markdown  # the switch side
    assert "### CPU: 1k-close" in markdown and "This run has no switch-profile sweep." in markdown
    sw = cells[(cells["system"] == "switch-only") & (cells["workload"] == "1k-close")]
    assert f"| switch-only | 8 | 2/2 | {sw['offload_share'].mean() * 100:.1f}%" in markdown
    assert not (sample_run / "figures").exists() and not (sample_run / "report.md").exists()  # read-only
