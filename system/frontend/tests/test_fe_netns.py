"""The front-end in a network namespace: the real TC program on a veth, the daemon reading the punt
device, frames injected as the switch would deliver them and captured on the switch side.

Topology: `mrsh-sw` (plays the switch: injects and captures on mhsw0) <-> `mrsh-fe` (mhfe0, the
front-end's data interface; the VIP is also a local address there, so the kernel would answer with
RSTs if the fast path let it see the segments)."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from conftest import (
    BACKENDS,
    C_ISN,
    CLIENT,
    CLIENT_PORT,
    FE_MAC,
    VIP,
    VIP_PORT,
    backend_seg,
    client_seg,
    cookie,
    require_root,
)
from conftest import make_engine as _make_engine
from system.frontend.daemon import Daemon
from system.frontend.fastpath import FLOW_F_B2C, FLOW_F_C2B_ACK, FastPath
from system.frontend.flows import State
from system.testing.netns import existing_netns, in_netns, ns_exec, sh

pytestmark = pytest.mark.root

SW_NS, FE_NS = "mrsh-sw", "mrsh-fe"
PIN = Path(f"/sys/fs/bpf/mrsh-fe-ns-{os.getpid()}")
BE1 = BACKENDS["be1"]
S = cookie()
REQ = b"GET /obj/1k HTTP/1.1\r\nHost: t\r\n\r\n"


def _down() -> None:
    present = existing_netns()
    for ns in (SW_NS, FE_NS):
        if ns in present:
            sh("ip", "netns", "del", ns)


@pytest.fixture(scope="module")
def world():
    require_root()
    _down()
    try:
        for ns in (SW_NS, FE_NS):
            sh("ip", "netns", "add", ns)
            ns_exec(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            ns_exec(ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "link", "add", "mhfe0", "netns", FE_NS, "address", FE_MAC, "type", "veth",
           "peer", "name", "mhsw0", "netns", SW_NS)
        ns_exec(FE_NS, "ip", "addr", "add", "198.18.7.21/24", "dev", "mhfe0")
        ns_exec(FE_NS, "ip", "addr", "add", f"{VIP}/32", "dev", "lo")
        for ns, dev in ((FE_NS, "mhfe0"), (SW_NS, "mhsw0"), (FE_NS, "lo")):
            ns_exec(ns, "ip", "link", "set", dev, "up")
        fastpath = FastPath(FE_NS, "mhfe0", "mhpunt", PIN)
        fastpath.start(VIP, VIP_PORT)
        for b in BACKENDS.values():
            fastpath.add_backend(b.ip, b.port, b.index)
        engine = _make_engine(fastpath=fastpath)
        daemon = Daemon(engine, fastpath, tick=0.02)
        stop = threading.Event()
        thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
        thread.start()
        with in_netns(SW_NS):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        sock.bind(("mhsw0", 0))
        sock.setblocking(False)
        yield engine, fastpath, sock
        sock.close()
        stop.set()
        thread.join(timeout=5)
        daemon.close()
        fastpath.stop()
    finally:
        _down()
    assert not PIN.exists() and not {SW_NS, FE_NS} & existing_netns()


def exchange(sock: socket.socket, frame: bytes, wait: float = 0.4) -> list[Ether]:
    """Send `frame` into the front-end; the IPv4 frames that come back within `wait` seconds."""
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(65535)
    sock.send(frame)
    out, deadline = [], time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            data, addr = sock.recvfrom(65535)
            if addr[2] != socket.PACKET_OUTGOING and data[12:14] == b"\x08\x00":
                out.append(Ether(data))
    return out


def fast(fastpath: FastPath, name: str) -> int:
    return fastpath.counters()[name]["packets"]


def test_handshake_replay_and_fast_path_both_ways(world):
    engine, fastpath, sock = world
    (syn,) = exchange(sock, client_seg(REQ))
    assert syn[TCP].flags == "S" and (syn[IP].dst, syn[TCP].dport) == (BE1.ip, BE1.port)
    assert (syn[IP].src, syn[TCP].sport, syn[TCP].seq, syn[TCP].ack) == (CLIENT, CLIENT_PORT, C_ISN, S)
    assert [o for o in syn[TCP].options if o[0] != "NOP"] == [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]
    (replay,) = exchange(sock, backend_seg(BE1, "SA", seq=S, ack=C_ISN + 1))
    assert replay[TCP].flags == "PA" and bytes(replay[TCP].payload) == REQ and replay[TCP].ack == S + 1

    seen_by_user_space = engine.counters["from_client"]
    c2b_before = fast(fastpath, "c2b_fast")
    (ack,) = exchange(sock, client_seg(b"", flags="A", seq_off=len(REQ), ack=S + 1))
    assert (ack[IP].dst, ack[TCP].dport, ack[Ether].dst) == (BE1.ip, BE1.port, BE1.mac)
    assert fast(fastpath, "c2b_fast") == c2b_before + 1 and engine.counters["from_client"] == seen_by_user_space

    head = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n"
    (first,) = exchange(sock, backend_seg(BE1, "PA", seq=S + 1, ack=C_ISN + 1 + len(REQ), payload=head + b"a" * 100))
    assert (first[IP].src, first[TCP].sport) == (VIP, VIP_PORT) and engine.counters["offload_auto_small"] == 1
    b2c_before = fast(fastpath, "b2c_fast")
    (second,) = exchange(sock, backend_seg(BE1, "PA", seq=S + 1 + len(head) + 100, ack=C_ISN + 1 + len(REQ),
                                           payload=b"b" * 1400))
    assert (second[IP].src, second[TCP].sport, second[IP].dst) == (VIP, VIP_PORT, CLIENT)
    assert bytes(second[TCP].payload) == b"b" * 1400 and fast(fastpath, "b2c_fast") == b2c_before + 1
    fresh = Ether(bytes(second))
    del fresh[TCP].chksum
    assert Ether(bytes(fresh))[TCP].chksum == second[TCP].chksum

    # FIN: forwarded by user space; the closing handshake's ACKs keep crossing the kernel.
    end = S + 1 + len(head) + 1500
    (fin,) = exchange(sock, client_seg(b"", flags="FA", seq_off=len(REQ), ack=end))
    assert fin[TCP].flags == "FA" and fin[IP].dst == BE1.ip
    assert fastpath.get_flow(bytes([198, 18, 7, 11]), CLIENT_PORT).flags == FLOW_F_C2B_ACK | FLOW_F_B2C
    seen_by_user_space = engine.counters["from_backend"]
    (ack,) = exchange(sock, backend_seg(BE1, "A", seq=end, ack=C_ISN + 2 + len(REQ)))
    assert (ack[IP].src, ack[TCP].sport) == (VIP, VIP_PORT) and engine.counters["from_backend"] == seen_by_user_space
    # The back-end's FIN: both FINs seen -> closed; only the back-end's last ACKs still cross the kernel.
    (bfin,) = exchange(sock, backend_seg(BE1, "FA", seq=end, ack=C_ISN + 2 + len(REQ)))
    assert bfin[TCP].flags == "FA" and (bfin[IP].src, bfin[IP].dst) == (VIP, CLIENT)
    assert engine.flows[(bytes([198, 18, 7, 11]), CLIENT_PORT)].state is State.CLOSED
    assert fastpath.get_flow(bytes([198, 18, 7, 11]), CLIENT_PORT).flags == FLOW_F_B2C
    (last,) = exchange(sock, client_seg(b"", flags="A", seq_off=len(REQ) + 1, ack=end + 1))
    assert last[IP].dst == BE1.ip and engine.counters["forwarded_c2b"] >= 1


def test_404_and_400_come_from_the_vip_and_the_kernel_stays_silent(world):
    _engine, _, sock = world
    port = CLIENT_PORT + 1
    req = b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
    (resp,) = exchange(sock, client_seg(req, port=port, s=cookie(port=port)))
    assert (resp[IP].src, resp[TCP].sport, resp[TCP].dport) == (VIP, VIP_PORT, port)
    assert resp[TCP].seq == cookie(port=port) + 1 and resp[TCP].ack == C_ISN + 1 + len(req)
    assert bytes(resp[TCP].payload).startswith(b"HTTP/1.1 404 Not Found")
    port += 1
    # (a valid request line, a malformed header: refused at once; a first segment that does not start
    # with a request line waits unsure_grace for an earlier one, test_fe_engine.py)
    (resp,) = exchange(sock, client_seg(b"GET / HTTP/1.1\r\nHost t\r\n\r\n", port=port, s=cookie(port=port)))
    assert bytes(resp[TCP].payload).startswith(b"HTTP/1.1 400 Bad Request") and "R" not in str(resp[TCP].flags)


def test_bad_cookie_gets_no_answer_at_all(world):
    engine, _, sock = world
    before = engine.counters["bad_cookie"]
    assert exchange(sock, client_seg(REQ, port=CLIENT_PORT + 9, s=12345)) == []
    assert engine.counters["bad_cookie"] == before + 1
