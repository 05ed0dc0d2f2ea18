"""The control channel lets no one in (docs/controlplane-protocol.md, "Authentication"): mutual TLS with
a deployment's certificates, rights per role, refusals counted. The real server and controller; the
switch is unreachable (entry requests a role may make are queued and acknowledged UNAVAILABLE, those it
may not are refused at once)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from system.controlplane import protocol
from system.controlplane.controller import Controller, ControllerConfig
from system.controlplane.server import FrontendServer, StatsFile
from system.credentials import CredentialError, Credentials, local_test_set
from system.frontend.offload import OffloadClient
from system.switch.tables import load_p4info

OPERATOR_TABLES = ("route", "vip", "backends", "backend_by_index", "frontend_bucket", "syn_cookie",
                   "protected_hosts", "trusted_ports")
ROUTE = {"key": {"dst_addr": ["198.18.0.31", 32]}, "action": "forward",
         "params": {"port": 3, "smac": "02:00:00:00:01:03", "dmac": "02:00:00:00:00:31"}}


class Plane:
    def __init__(self, creds: dict[str, Credentials], pipeline: str, stats: Path | None = None) -> None:
        self.controller = Controller(ControllerConfig(switch="127.0.0.1:1", p4info=load_p4info(pipeline),
                                                      device_config=b"t", static=[], request_timeout_s=0.05,
                                                      reconnect_s=0.05))
        self.server = FrontendServer(("127.0.0.1", 0), self.controller, pipeline, credentials=creds["controlplane"])
        self.creds = creds
        self.stats = StatsFile(self.controller, stats, interval=3600) if stats else None
        self.controller.start()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client(self, name: str) -> protocol.Client:
        return protocol.Client(self.server.address, credentials=self.creds[name], name=name)

    def auth(self) -> dict:
        return self.controller.snapshot()["auth"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.controller.stop()
        if self.stats:
            self.stats.stop()


@pytest.fixture
def miresga(creds, tmp_path) -> Iterator[Plane]:
    p = Plane(creds, "miresga", stats=tmp_path / "cp-stats.json")
    try:
        yield p
    finally:
        p.close()


def wait_for(pred, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def _no_reply(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    got = b""
    sock.settimeout(30)
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def test_a_client_without_certificate_gets_nothing(miresga: Plane) -> None:
    for msg in ({"type": "hello", "client": "anon"}, {"type": "cookie_secrets"},
                {"type": "add", "table": "route", **ROUTE}):
        with socket.create_connection(miresga.server.address, timeout=30) as s:
            s.sendall(protocol.encode({"v": 1, "id": 1, **msg}))
            assert _no_reply(s) == b""                    # no hello, no tables, no secret, no ack
    # over TLS but without a client certificate: the handshake fails, nothing is served
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(miresga.creds["frontend"].ca))
    def ask() -> dict | None:
        with (socket.create_connection(miresga.server.address, timeout=30) as raw,
              ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls):
            tls.sendall(protocol.encode({"v": 1, "id": 1, "type": "cookie_secrets"}))
            return protocol.read_frame(tls)
    with pytest.raises(OSError):          # TLS 1.3: the server's alert comes at the first read
        ask()
    # the server closes the connection, then counts the failure: poll
    assert wait_for(lambda: miresga.auth()["handshakes_failed"] == 4), miresga.auth()
    st = miresga.controller.snapshot()
    assert st["auth"]["sessions"] == {}
    assert st["requests"] == {} and st["queued"] == 0


def test_a_certificate_of_another_deployment_is_refused(miresga: Plane, tmp_path: Path) -> None:
    other = local_test_set(tmp_path / "other")            # same names and roles, another CA
    with pytest.raises(ssl.SSLError):
        protocol.Client(miresga.server.address, credentials=other["operator"], timeout=30)
    # nor does a client accept a server of another deployment
    srv = FrontendServer(("127.0.0.1", 0), miresga.controller, "miresga", credentials=other["controlplane"])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            protocol.Client(srv.address, credentials=miresga.creds["frontend"], timeout=30)
    finally:
        srv.shutdown()
        srv.server_close()
    assert wait_for(lambda: miresga.auth()["handshakes_failed"] == 2), miresga.auth()   # one per server


def test_a_frontend_may_offload_and_read_secrets_and_nothing_else(miresga: Plane) -> None:
    cli = miresga.client("frontend")
    try:
        assert cli.server_hello["role"] == "frontend" and cli.server_hello["tables"] == ["offload"]
        assert protocol.parse_cookie_secrets(cli.cookie_secrets())[0] == miresga.controller.secrets.current
        key = {"client_addr": "198.18.0.11", "client_port": 40000}
        # allowed: queued for the (unreachable) switch, so UNAVAILABLE, not refused
        assert cli.add("offload", key, "to_backend", {"index": 1})["code"] == "UNAVAILABLE"
        assert cli.delete("offload", key)["code"] == "UNAVAILABLE"
        refused = [cli.add(t, {"x": 1}, "a", {}) for t in OPERATOR_TABLES]
        refused.append(cli.add("route", ROUTE["key"], ROUTE["action"], ROUTE["params"]))
        refused.append(cli.call({"type": "modify", "table": "offload", "key": key, "action": "to_backend",
                                 "params": {"index": 2}}))
        refused.append(cli.delete("vip", {"dst_addr": "198.18.0.100", "dst_port": 80}))
        for rep in refused:
            assert rep["type"] == "ack" and rep["code"] == "PERMISSION_DENIED", rep
            assert "role frontend" in rep["message"]
        st = cli.stats()
        assert st["type"] == "error" and st["code"] == "PERMISSION_DENIED"
        assert cli.cookie_secrets()["type"] == "cookie_secrets"       # the connection stays usable
    finally:
        cli.close()
    miresga.stats.write()
    auth = json.loads(miresga.stats.path.read_text())["auth"]
    assert auth["refused"] == {"frontend add route": 2, "frontend add vip": 1, "frontend add backends": 1,
                               "frontend add backend_by_index": 1, "frontend add frontend_bucket": 1,
                               "frontend add syn_cookie": 1, "frontend add protected_hosts": 1,
                               "frontend add trusted_ports": 1, "frontend modify offload": 1,
                               "frontend delete vip": 1, "frontend stats": 1}
    assert auth["refused_total"] == 12 and auth["sessions"] == {"frontend": 1}


def test_operator_and_monitor(miresga: Plane) -> None:
    op = miresga.client("operator")
    mon = miresga.client("monitor")
    try:
        assert op.server_hello["tables"] == sorted(("backend_by_index", "backends", "frontend_bucket", "offload",
                                                    "route", "syn_cookie", "vip", "protected_hosts",
                                                    "trusted_ports"))
        assert op.add("route", ROUTE["key"], ROUTE["action"], ROUTE["params"])["code"] == "UNAVAILABLE"
        assert op.stats()["type"] == "stats"
        assert mon.server_hello["tables"] == [] and mon.stats()["type"] == "stats"
        assert mon.cookie_secrets()["code"] == "PERMISSION_DENIED"
        assert mon.add("offload", {"client_addr": "198.18.0.11", "client_port": 1}, "to_backend",
                       {"index": 1})["code"] == "PERMISSION_DENIED"
    finally:
        op.close()
        mon.close()
    assert miresga.auth()["refused"] == {"monitor cookie_secrets": 1, "monitor add offload": 1}


def test_the_slow_path_may_write_conn_tables_only(creds) -> None:
    p = Plane(creds, "switch_only")
    cli = p.client("slowpath")
    try:
        assert cli.server_hello["tables"] == ["conn_in", "conn_out"]
        key = {"backend_addr": "198.18.0.31", "backend_port": 80, "client_addr": "198.18.0.11", "client_port": 1}
        ok = cli.add("conn_out", key, "to_client", {"vip_addr": "198.18.0.100", "vip_port": 80, "seq_delta": 1})
        assert ok["code"] == "UNAVAILABLE"
        for table in ("route", "vip", "backends", "slow_path", "syn_cookie", "protected_hosts", "trusted_ports"):
            assert cli.add(table, {"x": 1}, "a", {})["code"] == "PERMISSION_DENIED"
        assert protocol.parse_cookie_secrets(cli.cookie_secrets())[0] == p.controller.secrets.current
    finally:
        cli.close()
        p.close()


def test_a_replayed_session_is_refused(miresga: Plane) -> None:
    """A recorded TLS session (a front-end's hello and offload add) sent again on a new connection:
    the server's fresh handshake does not match it, nothing is served and no request is counted."""
    up_addr = miresga.server.address
    lsock = socket.create_server(("127.0.0.1", 0))
    recorded: list[bytes] = []

    def proxy() -> None:
        down, _ = lsock.accept()
        up = socket.create_connection(up_addr)

        def pump(a: socket.socket, b: socket.socket, rec: bool) -> None:
            try:
                while data := a.recv(65536):
                    if rec:
                        recorded.append(data)
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        t = threading.Thread(target=pump, args=(up, down, False), daemon=True)
        t.start()
        pump(down, up, True)
        t.join(30)
    th = threading.Thread(target=proxy, daemon=True)
    th.start()
    cli = protocol.Client(lsock.getsockname(), credentials=miresga.creds["frontend"], timeout=30)
    key = {"client_addr": "198.18.0.11", "client_port": 40001}
    assert cli.add("offload", key, "to_backend", {"index": 1})["code"] == "UNAVAILABLE"
    cli.close()
    th.join(30)
    lsock.close()
    before = miresga.controller.snapshot()
    assert before["requests"] == {"add": 1} and recorded
    with socket.create_connection(up_addr, timeout=30) as s:
        s.sendall(b"".join(recorded))
        got = _no_reply(s)
    assert wait_for(lambda: miresga.auth()["handshakes_failed"] == 1), miresga.auth()
    after = miresga.controller.snapshot()
    assert after["requests"] == {"add": 1} and after["acks"] == before["acks"]
    assert after["auth"]["sessions"] == {"frontend": 1}
    assert b"ack" not in got and b"hello" not in got


def test_many_requests_and_acks_cross_one_tls_connection(miresga: Plane) -> None:
    """The front-end's offload client writes while its reader thread takes acks (TLSStream)."""
    cl = OffloadClient(miresga.server.address, credentials=miresga.creds["frontend"], timeout=30)
    n = 3000
    try:
        for i in range(n):
            cl.add(bytes([198, 18, 1 + i // 250, 1 + i % 250]), 40000 + i % 1000, 1)
        deadline = time.monotonic() + 120
        while cl.counters["add_UNAVAILABLE"] < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cl.counters["add_UNAVAILABLE"] == n and cl.counters["failed"] == n
        assert cl.counters["connected"] == 1 and cl.counters["disconnected"] == 0 and cl.pending() == 0
    finally:
        cl.close()
    assert miresga.controller.snapshot()["requests"] == {"add": n}


def test_keys_readable_by_others_are_refused(creds, tmp_path: Path) -> None:
    d = tmp_path / "loose"
    d.mkdir()
    for f in ("ca.crt", "identity.crt", "identity.key"):
        (d / f).write_bytes((creds["frontend"].directory / f).read_bytes())
    os.chmod(d / "identity.key", 0o644)
    with pytest.raises(CredentialError, match="mode 0644"):
        Credentials.load(d)
    os.chmod(d / "identity.key", 0o600)
    assert Credentials.load(d).key == d / "identity.key"


def test_daemons_refuse_to_start_without_credentials_or_insecure(capsys, tmp_path: Path) -> None:
    from system.controlplane.__main__ import main as cp_main
    from system.switch.p4rt.__main__ import main as p4rt_main

    assert cp_main(["--switch", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--port-map", "none.yaml"]) == 2
    assert "--credentials DIR (mutual TLS) or --insecure" in capsys.readouterr().err
    assert p4rt_main(["--ports", "1=lo", "--pin-dir", str(tmp_path)]) == 2
    assert "--credentials DIR (TLS with client certificates) or --insecure" in capsys.readouterr().err


def test_the_control_plane_reaches_p4runtime_over_tls_and_others_do_not(creds, tmp_path: Path) -> None:
    """The real P4Runtime server with TLS (no pipeline set, so no switch namespaces or BPF are
    touched): the control plane's certificate arbitrates as primary through p4runtime-shell's client;
    no certificate, a front-end's, or the slow path's (reads only) cannot."""
    from system.controlplane.switch import SwitchConnection, SwitchRefused, SwitchUnavailable
    from system.switch.p4rt.device import Device
    from system.switch.p4rt.server import P4RuntimeServer
    from system.switch.profiles import load_profile

    server = P4RuntimeServer(Device(None, {1: "lo"}, tmp_path / "pins", load_profile("unlimited")), "127.0.0.1:0",
                             credentials=creds["p4rt"])
    server.start()
    try:
        conn = SwitchConnection(server.address, election_id=(0, 7), credentials=creds["controlplane"])
        conn.connect()                                   # arbitrated, and an empty Write accepted: primary
        assert conn.alive
        conn.close()
        for who in (None, "frontend", "slowpath"):
            other = SwitchConnection(server.address, election_id=(0, 8),
                                     credentials=creds[who] if who else None)
            with pytest.raises((SwitchUnavailable, SwitchRefused)):
                other.connect()
            other.close()
        assert server.access.refused["frontend StreamChannel"] >= 1
        assert server.access.refused["slowpath StreamChannel"] >= 1
    finally:
        server.stop(unload=False)
