"""Fixtures of the emulated switch tests. Root-only fixtures skip with the reason elsewhere."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from system.bpf.build import compile_bpf
from system.bpf.loader import BPFFS, load_object, unpin
from system.bpf.syscall import Prog
from system.switch.package import build_package, source_of
from system.switch.tables import FORWARDING, PipelineTables
from system.switch.target import EmulatedSwitch
from system.testing.netns import PacketIO, StarTopology

PIN_ROOT = BPFFS / "mrsc-test"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, BPF programs)")
    if not shutil.which("bpftool") or not shutil.which("tc"):
        pytest.skip("needs bpftool and tc")
    if not BPFFS.is_dir():
        pytest.skip(f"{BPFFS} not mounted: run scripts/setup.sh")


@pytest.fixture(scope="session", autouse=True)
def _remove_pin_root():
    yield
    if PIN_ROOT.is_dir():
        unpin(PIN_ROOT)


@pytest.fixture(scope="session")
def forwarding_object(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bpf") / "forwarding.o"
    compile_bpf(source_of("forwarding"), out)
    return out


@pytest.fixture(scope="session")
def forwarding_package() -> bytes:
    return build_package("forwarding")


@pytest.fixture
def loaded_tables(forwarding_object):
    """The forwarding object loaded and pinned (not attached), ports 1..3 mapped to fake ifindexes."""
    require_root()
    pin = PIN_ROOT / "tables"
    unpin(pin)
    obj = load_object(forwarding_object, pin)
    tables = PipelineTables(FORWARDING, pin)
    prog = Prog.pinned(obj.prog_path(FORWARDING.program))
    try:
        yield tables, prog
    finally:
        prog.close()
        tables.close()
        unpin(pin)


@pytest.fixture(scope="module")
def star():
    """The 3-port star topology with the forwarding pipeline loaded on the switch."""
    require_root()
    topo = StarTopology(prefix="mrsc", ifprefix="mc", nports=3).up()
    switch = EmulatedSwitch(topo.switch_ns, topo.port_map, PIN_ROOT / "switch")
    try:
        switch.load(build_package("forwarding"))
        pio = PacketIO(topo)
        try:
            yield topo, switch, pio
        finally:
            pio.close()
    finally:
        switch.unload()
        topo.down()
