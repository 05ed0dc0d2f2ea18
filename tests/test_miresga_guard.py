"""The switch guards the back-ends (issue 10; docs/miresga-datapath.md "The guard"), end to end on
the local testbed tests/data/testbed.yaml (ittest) with Miresga deployed: the client host sends
SYNs, a SYN with a chosen ack, a RST, data, UDP and ICMP straight at a back-end's data address;
the switch drops exactly those (drop reason `untrusted_port`), the back-end's interface never sees
one of them while it does see a trusted front-end's SYN, and a curl through the VIP still returns
the byte-exact object. A RST aimed at the back-end for a live connection, with the sequence number
the back-end expects, is dropped too and the transfer completes byte for byte.

Packets are crafted and captured by tests/guard_probe.py (scapy) inside the hosts' namespaces.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from miresga_testbed import client_ns, curl, expected, log, miresga_testbed, poll_until, vip_url

from harness import testbed
from harness.cellstats import switch_pin_dir
from harness.inventory import CatalogObject, Host, Inventory
from system.switch.tables import MIRESGA, PipelineTables
from workloads.catalog import object_bytes

pytestmark = [pytest.mark.root, pytest.mark.testbed]

PROBE = Path(__file__).parent / "guard_probe.py"
STOP_PORT = 9          # guard_probe.STOP_PORT: a trusted SYN to it ends a capture
ATTACK_SPORT = 41999


@pytest.fixture(scope="module")
def inv():
    with miresga_testbed("testbed.yaml") as inv:
        yield inv


def obj(inv: Inventory, name: str) -> CatalogObject:
    return next(o for o in inv.catalog if o.name == name)


def untrusted_drops(inv: Inventory) -> int:
    with PipelineTables(MIRESGA, Path(switch_pin_dir(inv))) as t:
        return t.drop_counters()["untrusted_port"]["packets"]


def probe(host: Host, *args: str, timeout: float = 330) -> str:
    p = subprocess.run(["ip", "netns", "exec", testbed.netns(host), sys.executable, str(PROBE), *args],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"guard_probe {args[0]} on {host.name} failed: {p.stderr[-2000:]}"
    return p.stdout


def send(host: Host, packets: list[dict]) -> int:
    return int(probe(host, "send", json.dumps(packets)).strip())


class Capture:
    """guard_probe sniff on a host's data interface, from start() until a trusted SYN to STOP_PORT."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.proc = subprocess.Popen(["ip", "netns", "exec", testbed.netns(host), sys.executable, str(PROBE),
                                      "sniff", host.data_interface], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()      # blocks until the sniffer runs
        assert first == "ready", f"capture on {host.name} did not start: {first!r}"

    def finish(self) -> list[dict]:
        out, _ = self.proc.communicate(timeout=330)
        assert self.proc.returncode == 0, f"capture on {self.host.name} failed"
        return json.loads(out)


def attack(be: Host, vport: int) -> list[dict]:
    """What a client sends straight at a back-end: every kind the guard must stop."""
    d = str(be.data_address)
    tcp = {"dst": d, "proto": "tcp", "sport": ATTACK_SPORT, "dport": vport}
    return [
        tcp | {"flags": "S", "seq": 1000},
        tcp | {"flags": "S", "seq": 1001},
        tcp | {"flags": "S", "seq": 2000, "ack": 0x77770001},     # SYN with a chosen ack field
        tcp | {"flags": "R", "seq": 3000},
        tcp | {"flags": "PA", "seq": 4000, "ack": 1, "payload": "GET /1k HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"dst": d, "proto": "udp", "sport": ATTACK_SPORT, "dport": 53, "payload": "udp"},
        {"dst": d, "proto": "icmp", "sport": 7, "payload": "ping"},
    ]


def test_a_client_cannot_reach_a_backend_directly_but_the_frontend_can(inv):
    client, fe, be = inv.clients[0], inv.frontends[0], inv.backends[0]
    cap = Capture(be)
    before = untrusted_drops(inv)
    sent = send(client, attack(be, inv.vip_port))
    assert sent == 7
    # the switch counts every one of them under untrusted_port: exactly those, no more
    got = poll_until(lambda: untrusted_drops(inv) - before, lambda n: n >= sent, "the guard's drops")
    assert got == sent, f"untrusted_port grew by {got}, {sent} packets sent"
    # the front-end's port is trusted: its SYN reaches the back-end (and ends the capture)
    assert send(fe, [{"dst": str(be.data_address), "proto": "tcp", "sport": ATTACK_SPORT,
                      "dport": STOP_PORT, "flags": "S", "seq": 5000}]) == 1
    seen = cap.finish()
    from_fe = [p for p in seen if p["src"] == str(fe.data_address) and p.get("dport") == STOP_PORT]
    from_client = [p for p in seen if p["src"] == str(client.data_address)]
    log(f"guard: {sent} packets from {client.name} at {be.name} dropped; {be.name} captured "
        f"{len(seen)} frames, {len(from_fe)} the front-end's SYN, {len(from_client)} from the client")
    assert len(from_fe) == 1 and from_fe[0]["flags"] == "S"
    assert from_client == []
    assert untrusted_drops(inv) - before == sent            # the front-end's SYN was not dropped
    # the VIP still serves the client, byte for byte
    assert curl(inv, obj(inv, "64k").path) == expected([obj(inv, "64k")])


def _slow_download(inv: Inventory, o: CatalogObject) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", client_ns(inv), "curl", "-sS", "-f", "--max-time", "200",
                             "--limit-rate", "100k", vip_url(inv, o.path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _client_port(inv: Inventory) -> int | None:
    out = subprocess.run(["ip", "netns", "exec", client_ns(inv), "ss", "-Htn", "state", "established",
                          "dst", str(inv.vip)], capture_output=True, text=True).stdout.split()
    return int(out[2].rsplit(":", 1)[1]) if len(out) >= 3 else None


def _backend_sockets(inv: Inventory, client: Host, cport: int) -> list[str]:
    """The back-ends whose socket for the client endpoint is established now."""
    peer = f"{client.data_address}:{cport}"
    return [b.name for b in inv.backends
            if subprocess.run(["ip", "netns", "exec", testbed.netns(b), "ss", "-Htn", "state", "established",
                               "dst", peer], capture_output=True, text=True).stdout.strip()]


def _rsts(inv: Inventory, cport: int, seq: int) -> list[dict]:
    """A RST and a RST+ACK for the client endpoint's connection at every back-end, with the exact
    sequence number the back-end expects (RFC 5961: an exact match resets)."""
    return [{"dst": str(b.data_address), "proto": "tcp", "sport": cport, "dport": inv.vip_port,
             "flags": flags, "seq": seq} for b in inv.backends for flags in ("R", "RA")]


def test_a_reset_at_the_backend_for_a_live_connection_is_dropped(inv):
    """The client's own connection through the VIP (a rate-limited 1 MB download); RSTs for it sent
    straight at every back-end with the sequence number the client is at (the back-end's socket
    expects exactly that: the front-end's crafted SYN keeps the client's numbers) are dropped, the
    back-end's socket stays, and the transfer completes byte for byte. Then the same RSTs with the
    guard's protected_hosts entries removed kill the back-end's socket: the RSTs were real ones."""
    client = inv.clients[0]
    big = obj(inv, "1m")
    proc = _slow_download(inv, big)
    try:
        cport = poll_until(lambda: _client_port(inv), lambda p: p is not None, "the client's connection")
        assert cport is not None
        holders = poll_until(lambda: _backend_sockets(inv, client, cport), bool, "the back-end's socket")
        seq = int(probe(client, "seq", client.data_interface, str(inv.vip), str(cport)).strip())
        before = untrusted_drops(inv)
        rsts = _rsts(inv, cport, seq)
        assert send(client, rsts) == len(rsts)
        got = poll_until(lambda: untrusted_drops(inv) - before, lambda n: n >= len(rsts), "the guard's drops")
        assert got == len(rsts)
        assert _backend_sockets(inv, client, cport) == holders
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    log(f"guard: {len(rsts)} RSTs at the back-ends for port {cport} (seq {seq}, socket on {holders}) "
        f"dropped; the transfer of {big.size} bytes completed")
    assert proc.returncode == 0, err.decode(errors="replace")
    assert out == object_bytes(big.name, big.size)

    # The same attack without the guard's entries resets the back-end's socket.
    pin = Path(switch_pin_dir(inv))
    with PipelineTables(MIRESGA, pin) as t:
        removed = t.read("protected_hosts")
        assert {e.key["dst_addr"] for e in removed} == {int(b.data_address) for b in inv.backends}
        for e in removed:
            t.delete("protected_hosts", e.key)
    proc = _slow_download(inv, big)
    try:
        cport = poll_until(lambda: _client_port(inv), lambda p: p is not None, "the client's connection")
        assert cport is not None
        poll_until(lambda: _backend_sockets(inv, client, cport), bool, "the back-end's socket")
        seq = int(probe(client, "seq", client.data_interface, str(inv.vip), str(cport)).strip())
        before = untrusted_drops(inv)
        assert send(client, _rsts(inv, cport, seq)) == len(rsts)
        poll_until(lambda: _backend_sockets(inv, client, cport), lambda h: h == [],
                   "the unguarded RST to reset the back-end's socket")
        assert untrusted_drops(inv) == before
        log(f"guard: without protected_hosts the same RSTs reset the back-end's socket of port {cport}")
    finally:
        proc.kill()
        proc.communicate()
        with PipelineTables(MIRESGA, pin) as t:
            for e in removed:
                t.insert("protected_hosts", e.key, e.action, e.params)
