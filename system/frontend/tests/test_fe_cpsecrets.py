"""Cookie secrets fetched from a running control plane (its real TCP server and controller; no
switch needed for `cookie_secrets`): validation of cookies computed by system/switch/cookie.py,
periodic refresh after a rotation, refresh on validation failures, errors when it is unreachable."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from system.controlplane.controller import Controller, ControllerConfig
from system.controlplane.server import FrontendServer
from system.frontend import syncookie
from system.frontend.cpsecrets import SecretsFetcher, SecretsUnavailable
from system.frontend.packets import ip_bytes
from system.switch import cookie
from system.switch.tables import load_p4info

VIP, VIP_PORT = "198.18.7.100", 80
CLIENT = "198.18.7.11"


@pytest.fixture(autouse=True)
def _identity(creds, monkeypatch) -> None:
    """Every fetcher here is a front-end with its certificate (mutual TLS, system/credentials.py)."""
    init = SecretsFetcher.__init__

    def with_credentials(self, *a, **kw) -> None:
        init(self, *a, **{"credentials": creds["frontend"], **kw})
    monkeypatch.setattr(SecretsFetcher, "__init__", with_credentials)


@pytest.fixture
def controlplane(creds) -> Iterator[tuple[Controller, tuple[str, int]]]:
    cfg = ControllerConfig(switch="127.0.0.1:1", p4info=load_p4info("miresga"), device_config=b"t", static=[],
                           cookie_rotation_s=60)
    ctl = Controller(cfg)                 # not started: the secrets exist without a switch
    srv = FrontendServer(("127.0.0.1", 0), ctl, "miresga", credentials=creds["controlplane"])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield ctl, srv.address
    finally:
        srv.shutdown()
        srv.server_close()


def switch_cookie(key: int, slot: int, port: int, opts: cookie.SynOptions) -> int:
    return cookie.encode(CLIENT, port, VIP, VIP_PORT, key, slot, opts)


def accepts(secrets: syncookie.Secrets, s: int, port: int) -> syncookie.CookieInfo | None:
    return syncookie.validate((s + 1) & 0xFFFFFFFF, ip_bytes(CLIENT), port, ip_bytes(VIP), VIP_PORT, secrets)


def wait_for(pred, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_fetched_secret_validates_the_switch_cookie(controlplane) -> None:
    ctl, addr = controlplane
    f = SecretsFetcher(addr)
    try:
        secrets = f.wait_first(5)
        assert secrets.values() == ((ctl.secrets.current, 1),)
        opts = cookie.SynOptions(mss=1440, sack_ok=True, wscale=7)
        info = accepts(secrets, switch_cookie(ctl.secrets.current, 1, 40001, opts), 40001)
        assert info is not None and (info.mss, info.sack_ok, info.wscale) == (1440, True, 7)
        other = ctl.secrets.current ^ 0x80000000
        assert accepts(secrets, switch_cookie(other, 1, 40001, opts), 40001) is None
        assert accepts(secrets, switch_cookie(ctl.secrets.current, 3, 40001, opts), 40001) is None
        assert f.counters["fetches"] == 1 and f.counters["connected"] == 1
    finally:
        f.close()


def test_periodic_refresh_follows_rotations(controlplane) -> None:
    ctl, addr = controlplane
    f = SecretsFetcher(addr, interval=0.1)
    try:
        secrets = f.wait_first(5)
        s0 = ctl.secrets.current
        f.start()
        opts = cookie.SynOptions()
        s1 = ctl.secrets.rotate()
        assert wait_for(lambda: secrets.values() == ((s1, 2), (s0, 1)))
        assert accepts(secrets, switch_cookie(s0, 1, 40002, opts), 40002) is not None     # previous
        assert accepts(secrets, switch_cookie(s1, 2, 40002, opts), 40002) is not None     # current
        s2 = ctl.secrets.rotate()
        assert wait_for(lambda: secrets.values() == ((s2, 3), (s1, 2)))
        assert accepts(secrets, switch_cookie(s0, 1, 40002, opts), 40002) is None         # two periods old
        assert f.counters["changes"] == 2 and f.counters["connected"] == 1   # one connection throughout
    finally:
        f.close()


def test_validation_failures_trigger_a_refetch_before_the_interval(controlplane) -> None:
    ctl, addr = controlplane
    failures: Counter[str] = Counter()
    f = SecretsFetcher(addr, interval=60, min_refetch_s=0.05, failures=lambda: failures["bad_cookie"])
    try:
        secrets = f.wait_first(5)
        f.start()
        new = ctl.secrets.rotate()
        time.sleep(0.3)
        assert secrets.values()[0][0] != new              # the interval (60 s) has not passed
        failures["bad_cookie"] += 1                       # a cookie matched neither secret
        assert wait_for(lambda: secrets.values()[0] == (new, 2), timeout=60)
        assert f.counters["failure_refetches"] == 1 and f.counters["fetches"] == 2
    finally:
        f.close()


def test_unreachable_control_plane_raises_and_counts() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = s.getsockname()             # closed again: nobody listens there
    f = SecretsFetcher(addr, timeout=0.2)
    with pytest.raises(SecretsUnavailable, match="no cookie secrets from the control plane"):
        f.wait_first(0.5, retry_s=0.1)                # gives up (it retried, then raised)
    assert f.counters["fetch_errors"] >= 2 and f.secrets is None
    f.close()


def test_a_pipeline_without_cookie_is_reported(creds) -> None:
    ctl = Controller(ControllerConfig(switch="127.0.0.1:1", p4info=load_p4info("forwarding"), device_config=b"t",
                                      static=[]))
    srv = FrontendServer(("127.0.0.1", 0), ctl, "forwarding", credentials=creds["controlplane"])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    f = SecretsFetcher(srv.address)
    try:
        with pytest.raises(SecretsUnavailable, match="syn_cookie"):
            f.wait_first(0.3, retry_s=0.1)
    finally:
        f.close()
        srv.shutdown()
        srv.server_close()


def test_secrets_survive_a_control_plane_outage(controlplane) -> None:
    _, addr = controlplane
    f = SecretsFetcher(addr, interval=0.05, timeout=0.5)
    secrets = f.wait_first(5)
    before = secrets.values()
    f.start()
    try:
        f.address = ("127.0.0.1", 1)       # as if the control plane went away: fetches fail
        with f._lock:
            f._drop()
        assert wait_for(lambda: f.counters["fetch_errors"] >= 2)
        assert secrets.values() == before   # the last secrets stay in use
        f.address = addr                    # back: one reconnect, fetches resume
        assert wait_for(lambda: f.counters["connected"] == 2)
    finally:
        f.close()


def test_cli_without_secrets_source_or_unreachable_control_plane(capsys) -> None:
    from system.frontend.__main__ import main

    base = ["--dev", "mi-none", "--own-mac", "02:00:00:00:00:01", "--client-next-hop-mac", "02:00:00:00:00:02",
            "--vip", VIP, "--backend", "be1=198.18.7.31:80:1:02:00:00:00:00:03"]
    with pytest.raises(SystemExit):
        main(base)                                   # no --controlplane, --secret or --secrets-file
    assert "give --controlplane" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main([*base, "--controlplane", f"127.0.0.1:{port}", "--secrets-wait", "0.3"]) == 1
    assert "no cookie secrets from the control plane" in capsys.readouterr().err
