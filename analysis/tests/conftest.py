"""Fixtures: the stored sample run (copied, so nothing writes into the repository) and a builder of
small hand-made run directories whose numbers are known exactly (analysis/tests/rundirs.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analysis.tests.rundirs import make_cell, make_manifest

SAMPLE_RUN = Path(__file__).resolve().parent / "data" / "sample-run"


@pytest.fixture
def sample_run(tmp_path: Path) -> Path:
    """A private copy of analysis/tests/data/sample-run."""
    dst = tmp_path / SAMPLE_RUN.name
    shutil.copytree(SAMPLE_RUN, dst)
    return dst


@pytest.fixture
def run_builder(tmp_path: Path) -> Callable[..., Path]:
    """Returns make(name, cells=[kwargs of make_cell...], emulated=True, fmt=1) -> run directory."""
    def make(name: str = "run", cells: list[dict[str, Any]] | None = None, emulated: bool = True,
             fmt: int = 1) -> Path:
        run_dir = tmp_path / name
        cells = cells or []
        make_manifest(run_dir, [c["cell_id"] for c in cells], emulated=emulated, fmt=fmt)
        for c in cells:
            make_cell(run_dir, **c)
        return run_dir
    return make
