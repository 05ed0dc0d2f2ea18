"""The emulated switch over veth: loading, TCP end to end with a byte-exact body, teardown."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from system.bpf import loader
from system.switch.package import build_package, parse_package
from system.switch.target import EmulatedSwitch
from system.switch.tests.conftest import PIN_ROOT, require_root
from system.testing.netns import StarTopology, existing_netns, ip_int, mac_int, ns_exec

pytestmark = pytest.mark.root


def install_routes(topo: StarTopology, switch: EmulatedSwitch) -> list[dict]:
    keys = []
    for h in topo.hosts:
        key = {"dst_addr": (ip_int(h.addr), 32)}
        switch.tables.insert("route", key, "forward",
                             {"port": h.port, "smac": mac_int(h.sw_mac), "dmac": mac_int(h.mac)})
        keys.append(key)
    return keys


def test_load_attaches_every_port_and_fills_the_port_map(star):
    topo, switch, _ = star
    assert switch.loaded and switch.package.pipeline == "forwarding"
    ports = switch.tables.configured_ports()
    assert sorted(ports) == [1, 2, 3]
    # every port's veth peer is a host's interface in its own namespace: delivered into directly
    assert switch.tables.peer_ports() == {1, 2, 3}
    for h in topo.hosts:
        assert ports[h.port] == loader.ifindex(topo.switch_ns, h.sw_dev)
        filters = loader.tc_filters(topo.switch_ns, h.sw_dev, "ingress")
        assert "pipe_ingress" in filters and "direct-action" in filters


def test_tcp_end_to_end_byte_exact(star, tmp_path):
    topo, switch, _ = star
    keys = install_routes(topo, switch)
    body = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "obj.bin").write_bytes(body)
    server_host, client_host = topo.host(2), topo.host(1)
    before = switch.tables.port_counters()
    srv = subprocess.Popen(
        ["ip", "netns", "exec", server_host.ns, sys.executable, "-m", "http.server", "8080",
         "--bind", server_host.addr, "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        out = tmp_path / "got.bin"
        deadline = time.monotonic() + 60   # wait for the server to listen (a failure guard, not a bound)
        while True:
            r = subprocess.run(["ip", "netns", "exec", client_host.ns, "curl", "-sS", "-o", str(out),
                                "--max-time", "30", f"http://{server_host.addr}:8080/obj.bin"],
                               capture_output=True, text=True, check=False)
            if r.returncode != 7 or time.monotonic() > deadline:  # 7: connection refused, server not up yet
                break
            time.sleep(0.1)
        assert r.returncode == 0, r.stderr
        assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(body).hexdigest()
    finally:
        os.killpg(srv.pid, signal.SIGTERM)
        srv.wait(timeout=5)
        for key in keys:
            switch.tables.delete("route", key)
    after = switch.tables.port_counters()
    # Every byte crossed the switch: port 2 received at least the body, port 1 sent it out.
    assert after[2]["rx_bytes"] - before[2]["rx_bytes"] > len(body)
    assert after[1]["tx_bytes"] - before[1]["tx_bytes"] > len(body)


def _tx_packets(ns: str, dev: str) -> int:
    (link,) = json.loads(ns_exec(ns, "ip", "-s", "-j", "link", "show", "dev", dev))
    return link["stats64"]["tx"]["packets"]


def test_frames_for_the_host_are_delivered_into_its_interface(star):
    """A frame routed to the host's own MAC goes straight into the host's interface
    (bpf_redirect_peer: the switch-side veth transmits nothing); a frame for another MAC takes the
    veth transmit, so the host classifies it as another host's, as a NIC would, and does not take it."""
    topo, switch, pio = star
    src, dst = topo.host(1), topo.host(2)
    key = {"dst_addr": (ip_int(dst.addr), 32)}
    udp = (Ether(src=src.mac, dst=src.sw_mac) / IP(src=src.addr, dst=dst.addr, ttl=64)
           / UDP(sport=40000, dport=9) / Raw(b"peer-delivery"))
    for dmac, via_veth_tx in ((dst.mac, 0), ("02:cc:00:00:00:99", 1)):
        switch.tables.insert("route", key, "forward",
                             {"port": dst.port, "smac": mac_int(dst.sw_mac), "dmac": mac_int(dmac)})
        try:
            pio.drain()
            tx_before = _tx_packets(topo.switch_ns, dst.sw_dev)
            taken_before = _udp_no_ports(dst.ns)
            pio.send(src.port, bytes(udp))
            got = [f for f in pio.collect()[dst.port] if Raw in Ether(f) and Ether(f)[Raw].load == b"peer-delivery"]
            assert len(got) == 1 and Ether(got[0]).dst == dmac
            assert _tx_packets(topo.switch_ns, dst.sw_dev) - tx_before == via_veth_tx
            # the host's UDP took the datagram (no socket on port 9: NoPorts) only when addressed to it
            assert _udp_no_ports(dst.ns) - taken_before == 1 - via_veth_tx
        finally:
            switch.tables.delete("route", key)


def _udp_no_ports(ns: str) -> int:
    """The namespace's Udp NoPorts counter (/proc/net/snmp): datagrams its stack took for a port
    nobody listens on."""
    lines = [ln.split() for ln in ns_exec(ns, "cat", "/proc/net/snmp").splitlines() if ln.startswith("Udp:")]
    return int(lines[1][lines[0].index("NoPorts")])


def test_without_routes_nothing_passes(star):
    topo, switch, _ = star
    r = ns_exec(topo.host(1).ns, "ping", "-c", "1", "-W", "1", topo.host(2).addr, check=False)
    assert "1 received" not in r
    assert switch.tables.drop_counters()["table_miss"]["packets"] >= 1


def test_unload_leaves_nothing_behind():
    require_root()
    topo = StarTopology(prefix="mrsc-td", ifprefix="mct", nports=2, subnet=210).up()
    try:
        pin = PIN_ROOT / "teardown"
        sw = EmulatedSwitch(topo.switch_ns, topo.port_map, pin)
        sw.load(build_package("forwarding"))
        assert any(pin.iterdir())
        sw.unload()
        assert not sw.loaded and not pin.exists()
        for h in topo.hosts:
            assert loader.tc_filters(topo.switch_ns, h.sw_dev, "ingress") == ""
            assert "clsact" not in loader._run(
                loader.in_netns(topo.switch_ns, ["tc", "qdisc", "show", "dev", h.sw_dev]), "tc")
        sw.unload()  # idempotent
    finally:
        topo.down()
    assert not {ns for ns in existing_netns() if ns.startswith("mrsc-td")}


@pytest.mark.parametrize("garbage,what", [
    (b"", "bad magic"),
    (b"hello world, not a package", "bad magic"),
    (b"MRSGPKG1\x00\x00\x10\x00{}", "truncated"),
    (b"MRSGPKG1\x00\x00\x00\x02{x", "not JSON"),
])
def test_parse_package_rejects_garbage(garbage, what):
    with pytest.raises(ValueError, match=what):
        parse_package(garbage)


def test_package_round_trip_and_corruption(forwarding_package):
    pkg = parse_package(forwarding_package)
    assert pkg.pipeline == "forwarding" and pkg.object_bytes.startswith(b"\x7fELF")
    assert build_package("forwarding") == forwarding_package, "packages must be deterministic"
    corrupt = bytearray(forwarding_package)
    corrupt[-100] ^= 0xFF
    with pytest.raises(ValueError, match="hash mismatch"):
        parse_package(bytes(corrupt))
    with pytest.raises(ValueError, match="object is"):
        parse_package(forwarding_package[:-1])
