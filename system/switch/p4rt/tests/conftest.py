"""Fixtures: the switch namespaces, the pipeline files, a running P4Runtime server, p4runtime-shell."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from system.switch.p4rt.testing import SwitchNamespaces, make_server, root_reason


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


@pytest.fixture(scope="session")
def pipeline_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(p4info text file, pipeline package file) of the `forwarding` pipeline."""
    from system.switch.package import build_package
    from system.switch.tables import P4SRC

    d = tmp_path_factory.mktemp("pipeline")
    pkg = d / "forwarding.pkg"
    pkg.write_bytes(build_package("forwarding"))
    return P4SRC / "forwarding.p4info.txtpb", pkg


@pytest.fixture
def server(switch_ns: SwitchNamespaces) -> Iterator:
    srv = make_server(switch_ns)
    try:
        yield srv
    finally:
        srv.stop()
        assert not srv.device.pin_dir.exists(), "pins left behind"


@pytest.fixture
def shell(server, pipeline_files: tuple[Path, Path]) -> Iterator:
    """p4runtime-shell connected to `server` as primary with the forwarding pipeline set."""
    import p4runtime_sh.shell as sh

    p4info, pkg = pipeline_files
    sh.setup(device_id=1, grpc_addr=server.address, election_id=(0, 10),
             config=sh.FwdPipeConfig(str(p4info), str(pkg)), verbose=False)
    try:
        yield sh
    finally:
        sh.teardown()
