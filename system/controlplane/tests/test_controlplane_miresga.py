"""The control plane with pipeline `miresga`: static tables, the SYN cookie secret (set, rotated,
re-installed after a switch restart), the `cookie_secrets` request, and the switch's SYN-ACK carrying
a cookie the front-end validates with the secrets it fetched."""

from __future__ import annotations

import copy
import ipaddress
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import yaml

from harness.inventory import load as load_inventory
from harness.inventory import parse as parse_inventory
from harness.inventory import resolve_path
from system.controlplane import protocol
from system.controlplane.controller import Controller, ControllerConfig, CookieSecrets
from system.controlplane.server import FrontendServer
from system.controlplane.static import parse_port_map, static_entries
from system.controlplane.switch import EntryCodec
from system.switch import cookie
from system.switch.p4rt.testing import SW_NS
from system.switch.tables import MIRESGA, PipelineTables, load_p4info

PORT_MAP = {
    "client1": {"port": 1, "mac": "02:00:00:00:00:11", "switch_mac": "02:00:00:00:01:01"},
    "fe1": {"port": 2, "mac": "02:00:00:00:00:21", "switch_mac": "02:00:00:00:01:02"},
    "be1": {"port": 3, "mac": "02:00:00:00:00:31", "switch_mac": "02:00:00:00:01:03"},
    "be2": {"port": 4, "mac": "02:00:00:00:00:32", "switch_mac": "02:00:00:00:01:04"},
    "atk1": {"port": 5, "mac": "02:00:00:00:00:12", "switch_mac": "02:00:00:00:01:05"},
}
VIP = int(ipaddress.IPv4Address("198.18.0.100"))


def ip(a: str) -> int:
    return int(ipaddress.IPv4Address(a))


def mac(m: str) -> int:
    return int(m.replace(":", ""), 16)


def by_table(entries: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for t, k, a, p in entries:
        out.setdefault(t, []).append((k, a, p))
    return out


# -- static entries (no switch) --------------------------------------------------------------------

def test_miresga_static_entries_of_the_local_inventory() -> None:
    entries = static_entries("miresga", load_inventory("local"), parse_port_map(PORT_MAP))
    t = by_table(entries)
    assert Counter({k: len(v) for k, v in t.items()}) == Counter(
        {"route": 5, "vip": 1, "backends": 2, "frontend_bucket": cookie.FRONTEND_BUCKETS, "backend_by_index": 2,
         "protected_hosts": 2, "trusted_ports": 3})
    assert ({"dst_addr": ["198.18.0.31", 32]}, "forward",
            {"port": 3, "smac": "02:00:00:00:01:03", "dmac": "02:00:00:00:00:31"}) in t["route"]
    assert t["vip"] == [({"dst_addr": "198.18.0.100", "dst_port": 80}, "mark_vip", {})]
    assert t["backends"] == [
        ({"src_addr": "198.18.0.31", "src_port": 80}, "mark_backend", {"vip_addr": "198.18.0.100", "vip_port": 80}),
        ({"src_addr": "198.18.0.32", "src_port": 80}, "mark_backend", {"vip_addr": "198.18.0.100", "vip_port": 80})]
    assert [k["bucket"] for k, _, _ in t["frontend_bucket"]] == list(range(cookie.FRONTEND_BUCKETS))
    assert {(a, p["port"], p["dmac"]) for _, a, p in t["frontend_bucket"]} == {("to_frontend", 2, "02:00:00:00:00:21")}
    assert t["backend_by_index"] == [
        ({"index": 1}, "set_backend",
         {"port": 3, "dmac": "02:00:00:00:00:31", "dst_addr": "198.18.0.31", "dst_port": 80}),
        ({"index": 2}, "set_backend",
         {"port": 4, "dmac": "02:00:00:00:00:32", "dst_addr": "198.18.0.32", "dst_port": 80})]
    # the guard: the back-ends' addresses, admitted from the front-end's and the back-ends' ports only
    assert t["protected_hosts"] == [({"dst_addr": "198.18.0.31"}, "mark_protected", {}),
                                    ({"dst_addr": "198.18.0.32"}, "mark_protected", {})]
    assert t["trusted_ports"] == [({"port": p}, "mark_trusted", {}) for p in (2, 3, 4)]   # not client1's 1
    codec = EntryCodec(load_p4info("miresga"))          # every entry encodes against the P4Info
    ups = [codec.update("add", *e) for e in entries]
    assert len({codec.entry_key(u.entity.table_entry) for u in ups}) == len(entries)


def test_frontend_buckets_are_spread_round_robin_over_the_frontends() -> None:
    data = yaml.safe_load(resolve_path("local").read_text())
    data = copy.deepcopy(data)
    data["hosts"].append({"name": "fe2", "role": "frontend", "data": "198.18.0.22", "mgmt": "198.19.0.22"})
    inv = parse_inventory(data, resolve_path("local"))
    pm = dict(PORT_MAP, fe2={"port": 6, "mac": "02:00:00:00:00:22", "switch_mac": "02:00:00:00:01:06"})
    buckets = by_table(static_entries("miresga", inv, parse_port_map(pm)))["frontend_bucket"]
    ports = [p["port"] for _, _, p in sorted(buckets, key=lambda e: e[0]["bucket"])]
    assert ports == [2, 6] * (cookie.FRONTEND_BUCKETS // 2)
    assert Counter(p["dmac"] for _, _, p in buckets) == {"02:00:00:00:00:21": 128, "02:00:00:00:00:22": 128}


def test_miresga_static_entries_need_every_frontend_in_the_port_map() -> None:
    pm = {k: v for k, v in PORT_MAP.items() if k != "fe1"}
    with pytest.raises(ValueError, match=r"fe1 .* has no entry in the port map"):
        static_entries("miresga", load_inventory("local"), parse_port_map(pm))


# -- cookie_secrets over the protocol (controller not connected to any switch) -----------------------

def _controller(pipeline: str, switch: str = "127.0.0.1:1", **kw) -> Controller:
    cfg = ControllerConfig(switch=switch, p4info=load_p4info(pipeline), device_config=b"unused", static=[], **kw)
    return Controller(cfg)


@pytest.fixture
def cp_miresga(creds) -> Iterator[tuple[Controller, FrontendServer]]:
    ctl = _controller("miresga", cookie_rotation_s=60)
    srv = FrontendServer(("127.0.0.1", 0), ctl, "miresga", credentials=creds["controlplane"])
    srv.creds = creds
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield ctl, srv
    finally:
        srv.shutdown()
        srv.server_close()


def test_cookie_secrets_round_trip(cp_miresga) -> None:
    ctl, srv = cp_miresga
    cli = protocol.Client(srv.address, credentials=srv.creds["operator"])
    try:
        t0 = time.time()
        rep = cli.cookie_secrets()
        assert set(rep) == {"v", "type", "id", "current", "previous", "slot", "rotated_at", "rotation_s"}
        assert rep["type"] == "cookie_secrets" and rep["v"] == 1
        assert rep["current"] == ctl.secrets.current and rep["previous"] is None
        assert rep["rotation_s"] == 60 and isinstance(rep["rotation_s"], int)
        assert rep["slot"] == 1
        assert rep["rotated_at"] <= t0 and protocol.parse_cookie_secrets(rep) == (ctl.secrets.current, None, 1)
        first = rep["current"]
        new = ctl.secrets.rotate()
        rep = cli.cookie_secrets()
        assert (rep["current"], rep["previous"], rep["slot"]) == (new, first, 2) and new != first
        assert rep["rotated_at"] >= t0
        assert cli.stats()["stats"]["cookie"]["rotations"] == 1
    finally:
        cli.close()


def test_keys_are_random_64_bit_values_never_zero() -> None:
    drawn = {_controller("miresga").secrets.current for _ in range(20)}
    assert len(drawn) == 20 and all(0 < s < 1 << 64 for s in drawn)
    assert any(s >= 1 << 32 for s in drawn)            # 64 bits drawn, not 32
    draws = iter([0, 0, 5, 5, 0, 9])                    # a zero key is drawn again, never used
    sec = CookieSecrets(60, draw=lambda: next(draws))
    assert (sec.current, sec.slot) == (5, 1)
    assert sec.rotate() == 9 and (sec.current, sec.previous, sec.slot) == (9, 5, 2)


def test_cookie_secrets_without_a_cookie_table_is_an_error_that_keeps_the_connection(creds) -> None:
    ctl = _controller("forwarding")
    assert ctl.cookie_secrets() is None
    srv = FrontendServer(("127.0.0.1", 0), ctl, "forwarding", credentials=creds["controlplane"])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cli = protocol.Client(srv.address, credentials=creds["operator"])
    try:
        rep = cli.cookie_secrets()
        assert rep["type"] == "error" and rep["code"] == "FAILED_PRECONDITION" and "syn_cookie" in rep["message"]
        with pytest.raises(protocol.ProtocolError, match="expected a cookie_secrets reply"):
            protocol.parse_cookie_secrets(rep)
        assert cli.stats()["type"] == "stats"            # the connection is still usable
    finally:
        cli.close()
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("bad", [{"current": -1}, {"current": 1 << 64}, {"current": "7"}, {"current": True},
                                 {"current": 0}, {"current": 1, "previous": 2.5}, {},
                                 {"current": 1, "slot": -1}, {"current": 1, "slot": 1 << 32},
                                 {"current": 1, "slot": None}])
def test_parse_cookie_secrets_refuses_malformed_replies(bad: dict) -> None:
    with pytest.raises(protocol.ProtocolError, match=r"64-bit|32-bit"):
        protocol.parse_cookie_secrets({"type": "cookie_secrets", "slot": 1, **bad})


def test_rotation_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cookie_rotation_s"):
        _controller("miresga", cookie_rotation_s=0)


# -- with the real switch (P4Runtime server subprocess, emulated target) ----------------------------

@pytest.fixture(scope="module")
def miresga_pipeline() -> tuple[object, bytes]:
    from system.switch.package import build_package

    return load_p4info("miresga"), build_package("miresga")


class MiresgaCP:
    def __init__(self, switch_proc, pipeline, rotation_s: float = 60.0, port_map: dict | None = None) -> None:
        p4info, package = pipeline
        static = static_entries("miresga", load_inventory("local"), parse_port_map(port_map or PORT_MAP))
        self.static = static
        self.controller = Controller(ControllerConfig(
            switch=switch_proc.address, p4info=p4info, device_config=package, static=static, window_s=0.002,
            reconnect_s=0.2, request_timeout_s=30, cookie_rotation_s=rotation_s,
            credentials=switch_proc.creds("controlplane")))
        self.server = FrontendServer(("127.0.0.1", 0), self.controller, "miresga",
                                     credentials=switch_proc.creds("controlplane"))
        self.switch_proc = switch_proc
        self.controller.start()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        assert self.controller.connected.wait(30), "control plane did not connect"

    def tables(self) -> PipelineTables:
        return PipelineTables(MIRESGA, self.switch_proc.pin_dir)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.controller.stop()


def wait_for(pred, timeout: float = 60.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.mark.root
def test_static_tables_secret_and_offload_in_the_switch(switch_proc, miresga_pipeline) -> None:
    c = MiresgaCP(switch_proc, miresga_pipeline)
    try:
        with c.tables() as t:
            counts = {name: t.count(name) for name in
                      ("route", "vip", "backends", "frontend_bucket", "backend_by_index", "offload",
                       "protected_hosts", "trusted_ports")}
            assert counts == {"route": 5, "vip": 1, "backends": 2, "frontend_bucket": 256, "backend_by_index": 2,
                              "offload": 0, "protected_hosts": 2, "trusted_ports": 3}
            assert t.get("protected_hosts", {"dst_addr": ip("198.18.0.32")}).action == "mark_protected"
            assert {e.key["port"] for e in t.read("trusted_ports")} == {2, 3, 4}
            assert t.get("vip", {"dst_addr": VIP, "dst_port": 80}).action == "mark_vip"
            e = t.get("backend_by_index", {"index": 2})
            assert e.action == "set_backend" and e.params == {
                "port": 4, "dmac": mac("02:00:00:00:00:32"), "dst_addr": ip("198.18.0.32"), "dst_port": 80}
            e = t.get("backends", {"src_addr": ip("198.18.0.31"), "src_port": 80})
            assert e.params == {"vip_addr": VIP, "vip_port": 80}
            e = t.get("frontend_bucket", {"bucket": 255})
            assert e.params == {"port": 2, "dmac": mac("02:00:00:00:00:21")}
            d = t.get_default("syn_cookie")
            assert d.action == "set_cookie_secret" and \
                d.params == {"key": c.controller.secrets.current, "slot": c.controller.secrets.slot}
        # an offload add in the front-end's format (system/frontend/offload.py), then its delete
        cli = protocol.Client(c.server.address, credentials=switch_proc.creds("frontend"))
        try:
            key = {"client_addr": "198.18.0.11", "client_port": 40000}
            rep = cli.add("offload", key, "to_backend", {"index": 2})
            assert rep["code"] == "OK", rep
            with c.tables() as t:
                assert t.get("offload", {"client_addr": ip("198.18.0.11"), "client_port": 40000}).params == {"index": 2}
            assert cli.delete("offload", key)["code"] == "OK"
            with c.tables() as t:
                assert t.count("offload") == 0
            assert cli.stats()["code"] == "PERMISSION_DENIED"      # a front-end may not read the stats
            st = c.controller.snapshot()
            assert st["cookie"]["installs"] == 1 and st["cookie"]["rotations"] == 0
        finally:
            cli.close()
    finally:
        c.close()


@pytest.mark.root
def test_secret_rotates_and_is_reinstalled_after_a_switch_restart(switch_proc, miresga_pipeline) -> None:
    c = MiresgaCP(switch_proc, miresga_pipeline, rotation_s=1.0)
    sec = c.controller.secrets
    try:
        first = sec.current
        assert wait_for(lambda: sec.installs >= 2, timeout=60), "no rotation within 60 s"
        cur, prev = sec.current, sec.previous
        assert prev == first and cur != first
        with c.tables() as t:
            got = t.get_default("syn_cookie").params["key"]
        assert got in (cur, sec.current)   # a further rotation may have happened meanwhile
        switch_proc.stop()                 # the switch loses its tables and its secret
        assert wait_for(lambda: not c.controller.connected.is_set(), timeout=60)
        switch_proc.start()
        assert c.controller.connected.wait(30)
        assert wait_for(lambda: c.controller.connected.is_set() and sec.installs >= 3, timeout=60)
        with c.tables() as t:
            assert wait_for(lambda: t.get_default("syn_cookie").params == {"key": sec.current, "slot": sec.slot},
                            timeout=60)
            assert t.count("frontend_bucket") == 256
    finally:
        c.close()


def _syn_exchange(switch_ns, src: int, sport: int, options: list) -> tuple[object, object]:
    """Sends a SYN from host `src` to the VIP through the switch; returns (SYN, SYN-ACK) as scapy packets."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from system.testing.netns import in_netns

    h_ns, dev = switch_ns.host_ns(src), f"mih{src}"
    syn = (Ether(src=switch_ns.mac(h_ns, dev), dst=switch_ns.mac(SW_NS, f"misw{src}"))
           / IP(src=switch_ns.host_ip(src), dst="198.18.0.100")
           / TCP(sport=sport, dport=80, flags="S", seq=random.getrandbits(32), options=options))
    with in_netns(h_ns):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    try:
        s.bind((dev, 0))
        s.settimeout(0.2)
        s.send(bytes(syn))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                frame = s.recv(2048)
            except TimeoutError:
                continue
            p = Ether(frame)
            if TCP in p and p[TCP].dport == sport and p[TCP].flags == "SA":
                return syn, p
    finally:
        s.close()
    raise AssertionError("no SYN-ACK from the switch within 3 s")


@pytest.mark.root
def test_switch_cookie_validates_with_the_secrets_a_frontend_fetched(switch_proc, switch_ns,
                                                                      miresga_pipeline) -> None:
    """Control plane -> P4Runtime default entry -> eBPF SYN-ACK cookie -> front-end's fetched secrets."""
    from scapy.layers.inet import TCP

    from system.frontend import syncookie
    from system.frontend.cpsecrets import SecretsFetcher
    from system.frontend.packets import ip_bytes

    c = MiresgaCP(switch_proc, miresga_pipeline)
    fetcher = SecretsFetcher(c.server.address, interval=0.2, credentials=switch_proc.creds("frontend"))
    try:
        secrets = fetcher.wait_first(5)
        fetcher.start()
        opts = [("MSS", 1460), ("NOP", None), ("WScale", 9), ("SAckOK", b"")]
        syn, synack = _syn_exchange(switch_ns, 1, 41001, opts)
        s = synack[TCP].seq
        assert synack[TCP].ack == (syn[TCP].seq + 1) & 0xFFFFFFFF
        client = ip_bytes(switch_ns.host_ip(1))
        vip = ip_bytes("198.18.0.100")
        info = syncookie.validate((s + 1) & 0xFFFFFFFF, client, 41001, vip, 80, secrets)
        assert info is not None and (info.mss, info.sack_ok, info.wscale) == (1460, True, 9)
        assert s == cookie.encode(switch_ns.host_ip(1), 41001, "198.18.0.100", 80, c.controller.secrets.current,
                                  c.controller.secrets.slot, cookie.SynOptions(mss=1460, sack_ok=True, wscale=9))
        # after a rotation, the fetched secrets still accept the old cookie (previous) and the new ones
        c.controller.secrets.due = 0.0
        assert wait_for(lambda: c.controller.secrets.rotations == 1 and c.controller.secrets.installs == 2)
        assert wait_for(lambda: len(secrets.values()) == 2, timeout=60)
        assert syncookie.validate((s + 1) & 0xFFFFFFFF, client, 41001, vip, 80, secrets) is not None
        _, synack2 = _syn_exchange(switch_ns, 1, 41002, [("MSS", 536)])
        s2 = synack2[TCP].seq
        info2 = syncookie.validate((s2 + 1) & 0xFFFFFFFF, client, 41002, vip, 80, secrets)
        assert info2 is not None and (info2.mss, info2.sack_ok, info2.wscale) == (536, False, None)
        old_key, old_slot = secrets.values()[1]
        only_old = syncookie.Secrets(old_key, slot=old_slot)
        assert syncookie.validate((s2 + 1) & 0xFFFFFFFF, client, 41002, vip, 80, only_old) is None
    finally:
        fetcher.close()
        c.close()


@pytest.mark.root
def test_daemon_cli_serves_and_rotates_the_secret(switch_proc, tmp_path) -> None:
    """`python -m system.controlplane --pipeline miresga` as deploy runs it, ended by its PID."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from system.switch.p4rt.testing import ROOT, free_port

    pm = tmp_path / "ports.yaml"
    pm.write_text(yaml.safe_dump(PORT_MAP))
    stats, port = tmp_path / "cp.json", free_port()
    log = (tmp_path / "cp.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "system.controlplane", "--inventory", "local",
                             "--switch", switch_proc.address, "--listen", f"127.0.0.1:{port}", "--pipeline", "miresga",
                             "--port-map", str(pm), "--stats-file", str(stats), "--cookie-rotation-s", "1",
                             "--credentials", str(switch_proc.creds("controlplane").directory)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        def ready() -> bool:
            try:
                st = json.loads(stats.read_text())
            except (OSError, ValueError):
                return False
            return st.get("connected") is True and st.get("cookie", {}).get("installs", 0) >= 1
        assert wait_for(ready, timeout=30), (tmp_path / "cp.log").read_text()
        cli = protocol.Client(("127.0.0.1", port), credentials=switch_proc.creds("frontend"))
        try:
            first = cli.cookie_secrets()
            assert first["rotation_s"] == 1
            assert wait_for(lambda: cli.cookie_secrets()["previous"] == first["current"], timeout=60)
            with PipelineTables(MIRESGA, switch_proc.pin_dir) as t:
                def in_switch() -> bool:
                    rep = cli.cookie_secrets()
                    return t.get_default("syn_cookie").params == {"key": rep["current"], "slot": rep["slot"]}
                assert wait_for(in_switch, timeout=60)
                assert t.count("frontend_bucket") == 256 and t.count("backend_by_index") == 2
            assert wait_for(lambda: json.loads(stats.read_text())["cookie"]["rotations"] >= 1, timeout=60)
            assert str(first["current"]) not in stats.read_text()      # secrets stay out of the stats
        finally:
            cli.close()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        log.close()
    assert rc == 0
