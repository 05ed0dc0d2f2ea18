"""P4Runtime over TLS with client certificates (issue 18): only a client with a certificate of the
deployment's CA gets a channel; p4runtime-shell works against the server with its SSL options."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from system.credentials import local_test_set
from system.switch.p4rt.testing import SwitchNamespaces, make_server

pytestmark = pytest.mark.root


@pytest.fixture
def tls_server(switch_ns: SwitchNamespaces, creds) -> Iterator:
    srv = make_server(switch_ns, tag="p4rt-tls", credentials=creds["p4rt"])
    try:
        yield srv
    finally:
        srv.stop()


def _caps(channel: grpc.Channel) -> str:
    """The server's P4Runtime API version, or the gRPC code name of the failure."""
    try:
        return p4runtime_pb2_grpc.P4RuntimeStub(channel).Capabilities(
            p4runtime_pb2.CapabilitiesRequest(), timeout=10).p4runtime_api_version
    except grpc.RpcError as e:
        return e.code().name


def test_only_clients_with_a_certificate_of_the_ca_get_a_channel(tls_server, creds, tmp_path: Path) -> None:
    addr = tls_server.address
    with grpc.insecure_channel(addr) as ch:
        assert _caps(ch) == "UNAVAILABLE"
    no_cert = grpc.ssl_channel_credentials(root_certificates=creds["p4rt"].ca.read_bytes())
    with grpc.secure_channel(addr, no_cert) as ch:
        assert _caps(ch) == "UNAVAILABLE"
    other = local_test_set(tmp_path / "other")         # another deployment's CA
    with grpc.secure_channel(addr, other["controlplane"].grpc_channel_credentials()) as ch:
        assert _caps(ch) == "UNAVAILABLE"
    with grpc.secure_channel(addr, creds["controlplane"].grpc_channel_credentials()) as ch:
        assert _caps(ch).startswith("1.")


def test_p4runtime_shell_over_tls(tls_server, creds, pipeline_files) -> None:
    import p4runtime_sh.shell as sh

    p4info, pkg = pipeline_files
    c = creds["operator"]
    sh.setup(device_id=1, grpc_addr=tls_server.address, election_id=(0, 10),
             config=sh.FwdPipeConfig(str(p4info), str(pkg)), verbose=False,
             ssl_options=c.p4runtime_sh_options())
    try:
        te = sh.TableEntry("route")(action="forward")
        te.match["dst_addr"] = "198.18.9.0/24"
        te.action["port"] = "1"
        te.action["smac"] = "02:00:00:00:00:01"
        te.action["dmac"] = "02:00:00:00:00:02"
        te.insert()
        assert [e.match["dst_addr"] for e in sh.TableEntry("route").read()] != []
    finally:
        sh.teardown()


def test_roles_on_p4runtime(tls_server, creds) -> None:
    """The slow path may read (its idle timeout reads counters) but not write; a front-end's
    certificate gets nothing; the control plane everything."""
    def call(who: str, method: str, request) -> str:
        with grpc.secure_channel(tls_server.address, creds[who].grpc_channel_credentials()) as ch:
            try:
                rep = getattr(p4runtime_pb2_grpc.P4RuntimeStub(ch), method)(request, timeout=10)
                list(rep) if method == "Read" else None
                return "OK"
            except grpc.RpcError as e:
                return e.code().name
    empty_write = p4runtime_pb2.WriteRequest(device_id=1, election_id=p4runtime_pb2.Uint128(low=5))
    read = p4runtime_pb2.ReadRequest(device_id=1, entities=[p4runtime_pb2.Entity(
        table_entry=p4runtime_pb2.TableEntry())])
    caps = p4runtime_pb2.CapabilitiesRequest()
    assert call("controlplane", "Capabilities", caps) == "OK"
    assert call("slowpath", "Capabilities", caps) == "OK"
    assert call("slowpath", "Write", empty_write) == "PERMISSION_DENIED"
    assert call("frontend", "Capabilities", caps) == "PERMISSION_DENIED"
    assert call("frontend", "Read", read) == "PERMISSION_DENIED"
    assert call("frontend", "Write", empty_write) == "PERMISSION_DENIED"
    assert tls_server.access.refused == {"slowpath Write": 1, "frontend Capabilities": 1, "frontend Read": 1,
                                         "frontend Write": 1}
