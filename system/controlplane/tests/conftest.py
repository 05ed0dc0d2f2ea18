"""Fixtures: the switch namespaces, a P4Runtime server subprocess (restartable), the control plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from system.switch.p4rt.testing import SwitchNamespaces, SwitchProcess, free_port, root_reason


@pytest.fixture(scope="module")
def switch_ns() -> Iterator[SwitchNamespaces]:
    reason = root_reason()
    if reason:
        print(f"skipping: {reason}")
        pytest.skip(reason)
    ns = SwitchNamespaces().up()
    try:
        yield ns
    finally:
        ns.down()


@pytest.fixture
def switch_proc(switch_ns: SwitchNamespaces, tmp_path: Path, creds) -> Iterator[SwitchProcess]:
    """The P4Runtime server over TLS with client certificates (identities: the `creds` fixture)."""
    sp = SwitchProcess(switch_ns, free_port(), log=tmp_path / "p4rt.log", identities=creds).start()
    try:
        yield sp
    finally:
        sp.stop()
        assert not sp.pin_dir.exists(), "pins left behind"


@pytest.fixture(scope="session")
def forwarding() -> tuple[object, bytes]:
    """(P4Info, pipeline package) of the forwarding pipeline."""
    from system.switch.package import build_package
    from system.switch.tables import load_p4info

    return load_p4info("forwarding"), build_package("forwarding")
