"""The front-end engine with the switch-only hooks (no agent, conn table): sequence translation in
both directions (wraparound included), the request held until both entries are in, relaying when an
install fails, no re-steering of keep-alive requests, entries removed after the linger or on idle.
Frames in and out are checked field by field with scapy, checksums recomputed."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from so_testing import (
    BACKENDS,
    C_ISN,
    CLIENT,
    CLIENT_PORT,
    MASK,
    VIP,
    VIP_PORT,
    Clock,
    RecordingTable,
    backend_seg,
    client_seg,
    cookie,
    frames,
    make_engine,
)

from system.frontend.flows import State
from system.frontend.packets import ip_bytes

REQ = b"GET /obj/1k HTTP/1.1\r\nHost: t\r\n\r\n"
S = cookie()
C = C_ISN
BE1, BE2 = BACKENDS["be1"], BACKENDS["be2"]
KEY = (ip_bytes(CLIENT), CLIENT_PORT)


def open_to_synack(fe, b: int, req: bytes = REQ):
    """Client request -> crafted SYN; back-end SYN-ACK (seq = b) -> nothing out (held)."""
    (syn,) = frames(fe.handle(client_seg(req)))
    assert syn[TCP].flags == "S" and syn[TCP].seq == C and bytes(syn[TCP].payload) == b""
    assert "SAckOK" not in dict(syn[TCP].options)              # never SACK in switch-only
    assert frames(fe.handle(backend_seg(BE1, "SA", seq=b, ack=C + 1))) == []
    return syn


@pytest.mark.parametrize("b", [0x12345678, (S - 5) & MASK, 0xFFFFFFF0])
def test_delta_learned_and_request_held_until_installed(b):
    table, clock = RecordingTable(), Clock()
    fe = make_engine(table, clock)
    open_to_synack(fe, b)
    delta = (b - S) & MASK
    assert table.installed == [(KEY, delta, "be1")]
    assert fe.flows[KEY].state is State.INSTALLING
    # Held: the back-end's SYN-ACK retransmission and the SYN timer send nothing meanwhile.
    assert fe.handle(backend_seg(BE1, "SA", seq=b, ack=C + 1)) == []
    clock.t += 1.5
    assert fe.tick() == []
    (req,) = frames(fe.install_done(*KEY, True))
    assert (req[IP].src, req[IP].dst, req[TCP].sport, req[TCP].dport) == (CLIENT, BE1.ip, CLIENT_PORT, BE1.port)
    assert req[TCP].flags == "PA" and req[TCP].seq == C + 1 and req[TCP].ack == (b + 1) & MASK
    assert bytes(req[TCP].payload) == REQ
    assert fe.flows[KEY].state is State.ESTABLISHED and fe.flows[KEY].installed
    assert fe.counters["conn_installed"] == 1 and fe.counters["synack_seq_not_translated"] == 0
    assert fe.install_done(*KEY, True) == []          # a late duplicate changes nothing
    assert fe.counters["install_done_without_flow"] == 1


def test_translation_both_ways_across_the_wrap():
    b = 0xFFFFFFF0                         # the response's sequence numbers wrap past 2^32
    table = RecordingTable()
    fe = make_engine(table)
    open_to_synack(fe, b)
    frames(fe.install_done(*KEY, False))   # relayed: every segment crosses the slow path
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40
    (out,) = frames(fe.handle(backend_seg(BE1, "PA", seq=b + 1, ack=C + 1 + len(REQ), payload=resp)))
    assert (out[IP].src, out[TCP].sport, out[IP].dst, out[TCP].dport) == (VIP, VIP_PORT, CLIENT, CLIENT_PORT)
    assert out[TCP].seq == (S + 1) & MASK and out[TCP].ack == C + 1 + len(REQ)
    assert bytes(out[TCP].payload) == resp
    (ack,) = frames(fe.handle(client_seg(b"", flags="A", seq_off=len(REQ), ack_off=1 + len(resp))))
    assert ack[IP].dst == BE1.ip and ack[TCP].ack == (b + 1 + len(resp)) & MASK   # 0x..F0 + 1 + 80 wraps
    assert ack[TCP].ack < 0x100
    # FINs both ways, translated.
    (fin_b,) = frames(fe.handle(backend_seg(BE1, "FA", seq=b + 1 + len(resp), ack=C + 1 + len(REQ))))
    assert fin_b[TCP].seq == (S + 1 + len(resp)) & MASK and fin_b[TCP].flags == "FA"
    (fin_c,) = frames(fe.handle(client_seg(b"", flags="FA", seq_off=len(REQ), ack_off=2 + len(resp))))
    assert fin_c[TCP].flags == "FA" and fin_c[TCP].ack == (b + 2 + len(resp)) & MASK
    assert fe.counters["conn_relayed"] == 1


def test_relay_on_install_failure_keeps_keepalive_on_the_same_backend():
    table = RecordingTable()
    fe = make_engine(table)
    b = 777
    open_to_synack(fe, b)
    (req,) = frames(fe.install_done(*KEY, False))
    assert bytes(req[TCP].payload) == REQ and not fe.flows[KEY].installed
    # A second request on the connection would match pool "two" (be2): it stays on be1, unparsed.
    second = b"GET /two/x HTTP/1.1\r\nHost: t\r\n\r\n"
    (fwd,) = frames(fe.handle(client_seg(second, seq_off=len(REQ), ack_off=1)))
    assert fwd[IP].dst == BE1.ip and fwd[TCP].seq == C + 1 + len(REQ) and bytes(fwd[TCP].payload) == second
    assert fwd[TCP].ack == b + 1
    assert fe.counters["resteered"] == 0 and fe.counters["backend_syn_sent"] == 1 and len(table.installed) == 1


def test_relayed_connection_closes_on_acked_fins_and_removes_after_linger():
    table, clock = RecordingTable(), Clock()
    fe = make_engine(table, clock, linger=2.0)
    b = 5000
    open_to_synack(fe, b)
    fe.install_done(*KEY, False)
    fe.handle(client_seg(b"", flags="FA", seq_off=len(REQ)))
    fe.handle(backend_seg(BE1, "FA", seq=b + 1, ack=C + 2 + len(REQ)))
    assert fe.flows[KEY].state is not State.CLOSED           # the client has not acked the server's FIN
    fe.handle(client_seg(b"", flags="A", seq_off=len(REQ) + 1, ack_off=2))
    assert fe.flows[KEY].state is State.CLOSED and table.removed == []
    clock.t += 2.1
    fe.tick()
    assert table.removed == [KEY] and KEY not in fe.flows


def test_installed_connection_closes_on_both_fins_and_entries_go_after_linger():
    """Pure ACKs of an installed connection never reach the CPU: both FINs seen closes it."""
    table, clock = RecordingTable(), Clock()
    fe = make_engine(table, clock, linger=2.0)
    b = 0xFFFFFFFE
    open_to_synack(fe, b)
    fe.install_done(*KEY, True)
    (fin_b,) = frames(fe.handle(backend_seg(BE1, "FA", seq=b + 1 + 100, ack=C + 1 + len(REQ))))
    assert fin_b[TCP].seq == (S + 1 + 100) & MASK
    (fin_c,) = frames(fe.handle(client_seg(b"", flags="FA", seq_off=len(REQ), ack_off=102)))
    assert fin_c[TCP].ack == (b + 102) & MASK
    assert fe.flows[KEY].state is State.CLOSED
    clock.t += 1.0
    fe.tick()
    assert table.removed == []                             # the final ACK still crosses the switch
    # a retransmitted FIN during the linger is still forwarded, translated
    (again,) = frames(fe.handle(backend_seg(BE1, "FA", seq=b + 101, ack=C + 2 + len(REQ))))
    assert again[TCP].seq == (S + 101) & MASK and again[IP].src == VIP
    clock.t += 1.1
    fe.tick()
    assert table.removed == [KEY] and fe.flows == {}


def test_client_rst_while_installing_removes_and_resets_backend():
    table = RecordingTable()
    fe = make_engine(table)
    open_to_synack(fe, 4242)
    (rst,) = frames(fe.handle(client_seg(b"", flags="R", seq_off=len(REQ))))
    assert rst[TCP].flags == "R" and rst[IP].dst == BE1.ip
    assert table.removed == [KEY] and fe.flows == {}
    assert fe.install_done(*KEY, True) == []


def test_body_arriving_while_installing_goes_with_the_request():
    table = RecordingTable()
    fe = make_engine(table)
    head = b"POST /obj/up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
    open_to_synack(fe, 99, req=head)
    assert frames(fe.handle(client_seg(b"hello", seq_off=len(head)))) == []
    (req,) = frames(fe.install_done(*KEY, True))
    assert bytes(req[TCP].payload) == head + b"hello"


def test_install_timeout_relays():
    table, clock = RecordingTable(), Clock()
    fe = make_engine(table, clock, install_timeout=3.0)
    open_to_synack(fe, 1234)
    clock.t += 3.1
    (req,) = frames(fe.tick())
    assert bytes(req[TCP].payload) == REQ and req[TCP].ack == 1235
    assert fe.counters["install_timeout"] == 1 and fe.counters["conn_relayed"] == 1


def test_idle_installed_connection_is_judged_by_the_switch_counters():
    table, clock = RecordingTable(), Clock()
    fe = make_engine(table, clock, idle_timeout=10.0)
    open_to_synack(fe, 1234)
    fe.install_done(*KEY, True)
    clock.t += 8
    table.active[KEY] = clock.t              # the entries counted packets just now
    clock.t += 8
    assert fe.tick() == [] and KEY in fe.flows
    clock.t += 3
    out = frames(fe.tick())
    assert sorted(p[IP].dst for p in out) == sorted([BE1.ip, CLIENT]) and all(p[TCP].flags == "R" for p in out)
    assert table.removed == [KEY] and fe.counters["timeout_established"] == 1


def test_rule_offload_modes_do_not_apply():
    """Pool "two" has offload: always; in switch-only that means nothing beyond the install."""
    table = RecordingTable()
    fe = make_engine(table)
    req = b"GET /two/x HTTP/1.1\r\nHost: t\r\n\r\n"
    (syn,) = frames(fe.handle(client_seg(req)))
    assert syn[IP].dst == BE2.ip
    fe.handle(backend_seg(BE2, "SA", seq=10, ack=C + 1))
    fe.install_done(*KEY, True)
    assert fe.counters["offload_add"] == 0 and not fe.flows[KEY].offloaded


def test_no_rule_is_answered_404_and_nothing_installed():
    table = RecordingTable()
    fe = make_engine(table)
    (resp,) = frames(fe.handle(client_seg(b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n")))
    assert bytes(resp[TCP].payload).startswith(b"HTTP/1.1 404") and resp[IP].src == VIP
    assert table.installed == []
