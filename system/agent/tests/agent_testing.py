"""Helpers of the agent tests (a uniquely named module: test files import it, not conftest)."""

from __future__ import annotations

import os
import shutil

import pytest

from system.bpf.loader import BPFFS

PIN_ROOT = BPFFS / "mrse-test"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (BPF programs, network namespaces)")
    if not shutil.which("bpftool") or not shutil.which("tc"):
        pytest.skip("needs bpftool and tc")
    if not BPFFS.is_dir():
        pytest.skip(f"{BPFFS} not mounted: run scripts/setup.sh")
