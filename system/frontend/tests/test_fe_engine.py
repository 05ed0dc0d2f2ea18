"""The connection logic, frame in -> frames out, without namespaces (fast path absent: user space
forwards everything). Frames are checked field by field with scapy, checksums recomputed."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from conftest import (
    BACKENDS,
    C_ISN,
    CLIENT,
    CLIENT_PORT,
    FE_MAC,
    SECRET,
    SWITCH_MAC,
    VIP,
    VIP_PORT,
    backend_seg,
    client_seg,
    cookie,
    make_engine,
)
from system.frontend import syncookie
from system.frontend.flows import State

REQ = b"GET /obj/1k HTTP/1.1\r\nHost: t\r\n\r\n"
S = cookie()
C = C_ISN
BE1, BE2 = BACKENDS["be1"], BACKENDS["be2"]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def add(self, ip: bytes, port: int, index: int) -> None:
        self.calls.append(("add", ip, port, index))

    def delete(self, ip: bytes, port: int) -> None:
        self.calls.append(("delete", ip, port))


def checksums_ok(p: Ether) -> bool:
    fresh = Ether(bytes(p))
    ip_c, tcp_c = fresh[IP].chksum, fresh[TCP].chksum
    fresh[IP].chksum = None
    fresh[TCP].chksum = None
    again = Ether(bytes(fresh))
    return again[IP].chksum == ip_c and again[TCP].chksum == tcp_c


def run(fe, frame: bytes) -> list[Ether]:
    out = [Ether(f) for f in fe.handle(frame)]
    assert all(checksums_ok(p) for p in out)
    return out


def options(p: Ether) -> dict:
    return dict((k, v) for k, v in p[TCP].options if k != "NOP")


def establish(fe, req: bytes = REQ, be=BE1) -> list[Ether]:
    (syn,) = run(fe, client_seg(req))
    assert syn[IP].dst == be.ip
    return run(fe, backend_seg(be, "SA", seq=S, ack=C + 1))


def assert_stateless_rst(out: list[Ether], seq: int, port: int = CLIENT_PORT) -> None:
    """One RST as a closed port answers a segment with ACK (RFC 793): seq = its ack, no ACK flag."""
    (rst,) = out
    assert (rst[Ether].src, rst[Ether].dst) == (FE_MAC, SWITCH_MAC)
    assert (rst[IP].src, rst[TCP].sport, rst[IP].dst, rst[TCP].dport) == (VIP, VIP_PORT, CLIENT, port)
    assert rst[TCP].flags == "R" and rst[TCP].seq == seq & 0xFFFFFFFF and rst[TCP].ack == 0
    assert bytes(rst[TCP].payload) == b""


def test_bad_cookie_opens_nothing_is_counted_and_reset_when_it_comes_again():
    """Issue 10: the first sighting gets no answer (its cookie may be of a secret rotated in since
    the last fetch: the failure triggers a refetch, the retransmission passes); the same endpoint's
    data again unknown_rst_after later gets a RST; earlier, nothing."""
    clock = Clock()
    fe = make_engine(clock=clock)
    bad = S ^ 0x100
    assert run(fe, client_seg(REQ, s=bad)) == []
    clock.t += 0.4
    assert run(fe, client_seg(REQ, s=bad)) == []                 # too early
    clock.t += 0.1
    assert_stateless_rst(run(fe, client_seg(REQ, s=bad)), seq=bad + 1)
    assert fe.counters["bad_cookie"] == 3 and fe.counters["rst_unknown_flow"] == 1 and fe.flows == {}
    assert run(fe, client_seg(REQ, s=bad)) == []                 # forgotten once answered: a first again
    assert fe.counters["unknown_first_seen"] == 2


def test_retransmission_passes_once_the_rotated_secret_is_fetched():
    """A cookie of a secret the front-end has not fetched yet: no RST on the first sighting; after
    the fetch the retransmission opens the flow and the endpoint is forgotten as unknown."""
    clock = Clock()
    fe = make_engine(clock=clock)
    newer = 0x7777777
    s_new = cookie(secret=newer)
    assert run(fe, client_seg(REQ, s=s_new)) == []
    fe.secrets = syncookie.Secrets(newer, SECRET)                # what cpsecrets.py's refetch does
    clock.t += 1.0
    (syn,) = run(fe, client_seg(REQ, s=s_new))
    assert syn[TCP].flags == "S" and syn[TCP].ack == s_new and fe.counters["rst_unknown_flow"] == 0
    assert fe._unknown == {}


def test_data_of_a_restarted_front_end_is_reset_on_its_retransmission():
    """Issue 10: a front-end that restarted knows none of its old flows; the client's next data
    (mid-stream: its ack is past the cookie) is reset when the client retransmits it (seq = its
    ack: the RST is in the client's window), not ignored for minutes. A FIN too; a pure ACK (a
    handshake's last ACK looks the same) gets nothing; nothing opens."""
    old = make_engine()
    establish(old)
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    run(old, backend_seg(BE1, "PA", seq=S + 1, ack=C + 1 + len(REQ), payload=resp))
    clock = Clock()
    fe = make_engine(clock=clock)                        # the restarted front-end
    a = S + 1 + len(resp)
    data = client_seg(REQ, seq_off=len(REQ), ack=a)
    fin = client_seg(b"", flags="FA", seq_off=len(REQ), ack=a, port=CLIENT_PORT + 1)
    assert run(fe, data) == [] and run(fe, fin) == []
    clock.t += 0.6                                       # the client's retransmission timeout
    assert_stateless_rst(run(fe, data), seq=a)
    assert_stateless_rst(run(fe, fin), seq=a, port=CLIENT_PORT + 1)
    assert run(fe, client_seg(b"", flags="A", seq_off=2 * len(REQ), ack=a)) == []
    assert fe.flows == {} and fe.counters["rst_unknown_flow"] == 2 and fe.counters["ack_without_flow"] == 1


def test_unknown_flow_state_and_rsts_are_bounded():
    clock = Clock()
    fe = make_engine(clock=clock, stateless_rst_rate=2, max_unknown=3)
    bad = S ^ 0x100
    for i in range(4):                                   # a fourth endpoint forgets the first
        assert run(fe, client_seg(REQ, port=41000 + i, s=bad)) == []
    assert len(fe._unknown) == 3 and fe.counters["unknown_forgotten_full"] == 1
    clock.t += 1.0
    outs = [run(fe, client_seg(REQ, port=port, s=bad)) for port in (41003, 41002, 41001, 41000)]
    assert [len(o) for o in outs] == [1, 1, 0, 0]        # two tokens; 41000 was forgotten: a first again
    assert fe.counters["rst_unknown_flow"] == 2 and fe.counters["rst_unknown_flow_suppressed"] == 1
    clock.t += 0.5                                       # one token back (2 per second)
    assert_stateless_rst(run(fe, client_seg(REQ, port=41001, s=bad)), seq=bad + 1, port=41001)
    assert fe.flows == {} and len(fe._unknown) <= 3


def test_stray_ack_and_syn_are_dropped_without_state():
    fe = make_engine()
    assert run(fe, client_seg(b"", flags="A")) == []
    assert run(fe, client_seg(b"", flags="S")) == []
    assert fe.flows == {} and fe.counters["ack_without_flow"] == 1


def test_first_data_segment_becomes_the_backend_syn():
    fe = make_engine()
    (syn,) = run(fe, client_seg(REQ))
    assert (syn[Ether].src, syn[Ether].dst) == (FE_MAC, BE1.mac)
    assert (syn[IP].src, syn[IP].dst, syn[TCP].sport, syn[TCP].dport) == (CLIENT, BE1.ip, CLIENT_PORT, BE1.port)
    assert syn[TCP].flags == "S" and syn[TCP].seq == C and syn[TCP].ack == S
    assert options(syn) == {"MSS": 1460, "SAckOK": b"", "WScale": 7}
    assert bytes(syn[TCP].payload) == b""
    assert fe.flows[(bytes([198, 18, 7, 11]), CLIENT_PORT)].state is State.BACKEND_SYN


def test_syn_options_follow_the_cookie_bits():
    fe = make_engine()
    s = cookie(mss_idx=1, sack=False, wscale=15)
    (syn,) = run(fe, client_seg(REQ, s=s))
    assert options(syn) == {"MSS": 1220} and syn[TCP].ack == s


def test_replay_after_syn_ack_then_splice_both_ways():
    fe = make_engine()
    (replay,) = establish(fe)
    assert replay[TCP].flags == "PA" and replay[TCP].seq == C + 1 and replay[TCP].ack == S + 1
    assert bytes(replay[TCP].payload) == REQ and replay[TCP].window == 502
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    (out,) = run(fe, backend_seg(BE1, "PA", seq=S + 1, ack=C + 1 + len(REQ), payload=resp))
    assert (out[IP].src, out[TCP].sport, out[IP].dst, out[TCP].dport) == (VIP, VIP_PORT, CLIENT, CLIENT_PORT)
    assert (out[Ether].src, out[Ether].dst) == (FE_MAC, SWITCH_MAC)
    assert out[TCP].seq == S + 1 and bytes(out[TCP].payload) == resp
    (ack,) = run(fe, client_seg(b"", flags="A", seq_off=len(REQ), ack=S + 1 + len(resp)))
    assert (ack[IP].dst, ack[TCP].dport, ack[TCP].ack) == (BE1.ip, BE1.port, S + 1 + len(resp))
    assert fe.counters["offload_auto_small"] == 1 and fe.counters["offload_add"] == 0


def test_fastopen_carries_the_request_in_the_syn():
    fe = make_engine(fastopen=True)
    (syn,) = run(fe, client_seg(REQ))
    assert syn[TCP].flags == "S" and bytes(syn[TCP].payload) == REQ
    (ack,) = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1 + len(REQ)))
    assert ack[TCP].flags == "A" and ack[TCP].seq == C + 1 + len(REQ) and bytes(ack[TCP].payload) == b""
    assert fe.counters["fastopen_accepted"] == 1


def test_fastopen_refused_falls_back_to_replay():
    fe = make_engine(fastopen=True)
    run(fe, client_seg(REQ))
    (replay,) = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == REQ and replay[TCP].seq == C + 1
    assert fe.counters["fastopen_refused"] == 1


def test_split_request_is_acked_then_sent_once_complete():
    fe = make_engine()
    assert run(fe, client_seg(REQ[:10])) == []          # not acknowledged before its request line is whole
    (ack,) = run(fe, client_seg(REQ[10:24], seq_off=10))
    assert (ack[IP].src, ack[TCP].sport, ack[TCP].flags) == (VIP, VIP_PORT, "A")
    assert ack[TCP].seq == S + 1 and ack[TCP].ack == C + 1 + 24 and ack[TCP].window == 512
    (syn,) = run(fe, client_seg(REQ[24:], seq_off=24))
    assert syn[TCP].flags == "S" and syn[TCP].seq == C
    (replay,) = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == REQ


def _local_response(out: list[Ether]) -> tuple[Ether, bytes]:
    (p,) = out
    assert (p[IP].src, p[TCP].sport, p[IP].dst) == (VIP, VIP_PORT, CLIENT)
    assert p[TCP].flags == "FPA" and p[TCP].seq == S + 1
    return p, bytes(p[TCP].payload)


def test_no_rule_is_answered_404_from_the_vip():
    fe = make_engine()
    req = b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n"
    p, body = _local_response(run(fe, client_seg(req)))
    assert body.startswith(b"HTTP/1.1 404 Not Found\r\n") and b"Connection: close" in body
    assert p[TCP].ack == C + 1 + len(req)
    assert fe.counters["http_404"] == 1
    # The client acknowledges our FIN and sends its own: we acknowledge it and the flow closes.
    end = S + 1 + len(body) + 1
    assert run(fe, client_seg(b"", flags="A", seq_off=len(req), ack=end)) == []
    (last,) = run(fe, client_seg(b"", flags="FA", seq_off=len(req), ack=end))
    assert last[TCP].flags == "A" and last[TCP].ack == C + 1 + len(req) + 1 and last[TCP].seq == end
    assert fe.flows[(bytes([198, 18, 7, 11]), CLIENT_PORT)].state is State.CLOSED


def test_malformed_request_is_answered_400():
    """A first segment that does not start with a request line may be a later one whose predecessor
    was lost: the 400 waits `unsure_grace` for an earlier segment."""
    clock = Clock()
    fe = make_engine(clock=clock, unsure_grace=1.0)
    assert run(fe, client_seg(b"HELLO WORLD\r\n\r\n")) == []
    clock.t += 0.5
    assert fe.tick() == []
    clock.t += 0.6
    _, body = _local_response([Ether(f) for f in fe.tick()])
    assert body.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    bad_header = b"GET / HTTP/1.1\r\nHost t\r\n\r\n"
    (p,) = run(fe, client_seg(bad_header, port=40002, s=cookie(port=40002)))
    assert bytes(p[TCP].payload).startswith(b"HTTP/1.1 400 ")     # a valid request line: answered at once


def test_oversized_split_request_is_answered_431():
    fe = make_engine()
    head = b"GET /obj/1k HTTP/1.1\r\nHost: t\r\n"
    pad = b"X-Pad: " + b"p" * 1400 + b"\r\n"
    off, outs = 0, []
    for chunk in [head] + [pad] * 12:
        outs = run(fe, client_seg(chunk, seq_off=off))
        off += len(chunk)
    _, body = _local_response(outs)
    assert body.startswith(b"HTTP/1.1 431 ")


def test_no_healthy_backend_is_503():
    fe = make_engine()
    fe.balancer.set_health("be1", False)
    fe.balancer.set_health("be2", False)
    _, body = _local_response(run(fe, client_seg(REQ)))
    assert body.startswith(b"HTTP/1.1 503 Service Unavailable")


def test_backend_syn_retransmitted_then_503():
    clock = Clock()
    fe = make_engine(clock=clock, syn_rto=1.0, syn_retries=2)
    (syn,) = run(fe, client_seg(REQ))
    clock.t += 0.5
    assert fe.tick() == []
    clock.t += 0.6
    (again,) = [Ether(f) for f in fe.tick()]
    assert bytes(again)[14:] == bytes(syn)[14:]
    clock.t += 2.1
    assert len(fe.tick()) == 1
    clock.t += 4.1
    (resp,) = [Ether(f) for f in fe.tick()]
    assert bytes(resp[TCP].payload).startswith(b"HTTP/1.1 503") and resp[TCP].seq == S + 1
    assert fe.counters["backend_syn_retransmitted"] == 2 and fe.counters["backend_syn_timeout"] == 1


def test_backend_rst_to_syn_gives_503():
    fe = make_engine()
    run(fe, client_seg(REQ))
    _, body = _local_response(run(fe, backend_seg(BE1, "RA", seq=0, ack=C + 1)))
    assert body.startswith(b"HTTP/1.1 503")


def test_graceful_close_forwards_both_fins_and_lingers():
    clock = Clock()
    fe = make_engine(clock=clock, linger=2.0)
    establish(fe)
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    run(fe, backend_seg(BE1, "PA", seq=S + 1, ack=C + 1 + len(REQ), payload=resp))
    (fin,) = run(fe, client_seg(b"", flags="FA", seq_off=len(REQ), ack=S + 1 + len(resp)))
    assert fin[TCP].flags == "FA" and fin[IP].dst == BE1.ip and fin[TCP].seq == C + 1 + len(REQ)
    (bfin,) = run(fe, backend_seg(BE1, "FA", seq=S + 1 + len(resp), ack=C + 2 + len(REQ)))
    assert bfin[TCP].flags == "FA" and bfin[IP].src == VIP
    key = (bytes([198, 18, 7, 11]), CLIENT_PORT)
    assert fe.flows[key].state is State.ESTABLISHED
    (last,) = run(fe, client_seg(b"", flags="A", seq_off=len(REQ) + 1, ack=S + 2 + len(resp)))
    assert last[IP].dst == BE1.ip
    assert fe.flows[key].state is State.CLOSED and fe.counters["closed_gracefully"] == 1
    clock.t += 2.5
    fe.tick()
    assert key not in fe.flows and fe.balancer.connections["be1"] == 0


def test_half_close_keeps_the_response_flowing():
    fe = make_engine()
    establish(fe)
    run(fe, client_seg(b"", flags="FA", seq_off=len(REQ), ack=S + 1))
    (data,) = run(fe, backend_seg(BE1, "PA", seq=S + 1, ack=C + 2 + len(REQ), payload=b"x" * 100))
    assert bytes(data[TCP].payload) == b"x" * 100 and data[IP].src == VIP


def test_auto_offload_on_large_content_length():
    rec = Recorder()
    fe = make_engine(offload=rec)
    establish(fe)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n"
    run(fe, backend_seg(BE1, "A", seq=S + 1, ack=C + 1 + len(REQ), payload=head + b"a" * 100))
    assert rec.calls == [("add", bytes([198, 18, 7, 11]), CLIENT_PORT, BE1.index)]
    # Close: both FINs seen on an offloaded flow -> the entry is deleted.
    run(fe, client_seg(b"", flags="FA", seq_off=len(REQ), ack=S + 1))
    run(fe, backend_seg(BE1, "FA", seq=S + 1 + 1048576 + len(head), ack=C + 2 + len(REQ)))
    assert rec.calls[-1] == ("delete", bytes([198, 18, 7, 11]), CLIENT_PORT)


def test_always_offload_at_establishment():
    rec = Recorder()
    fe = make_engine(offload=rec)
    req = b"GET /big/x HTTP/1.1\r\nHost: t\r\n\r\n"
    establish(fe, req)
    assert rec.calls == [("add", bytes([198, 18, 7, 11]), CLIENT_PORT, BE1.index)]


def test_keepalive_request_to_another_pool_is_resteered():
    fe = make_engine()
    establish(fe)                                       # be1 (round robin's first)
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    run(fe, backend_seg(BE1, "PA", seq=S + 1, ack=C + 1 + len(REQ), payload=resp))
    req2 = b"GET /two/y HTTP/1.1\r\nHost: t\r\n\r\n"        # pool "one": be2 only
    a = S + 1 + len(resp)
    rst, syn = run(fe, client_seg(req2, seq_off=len(REQ), ack=a))
    assert rst[IP].dst == BE1.ip and rst[TCP].flags == "R" and rst[TCP].seq == C + 1 + len(REQ)
    assert syn[IP].dst == BE2.ip and syn[TCP].flags == "S"
    assert syn[TCP].seq == C + len(REQ) and syn[TCP].ack == a - 1
    (replay,) = run(fe, backend_seg(BE2, "SA", seq=a - 1, ack=C + 1 + len(REQ)))
    assert replay[IP].dst == BE2.ip and replay[TCP].ack == a and bytes(replay[TCP].payload) == req2
    assert fe.counters["resteered"] == 1


def test_resteered_offloaded_flow_passes_acks_reset_by_the_old_backend_on():
    """Until the switch has deleted the old offload entry, the client's ACKs of the new response go
    to the old back-end, which resets them (RST seq = the ACK's number): the front-end passes that
    number on to the new back-end instead of letting it wait for a retransmission timeout."""
    rec = Recorder()
    fe = make_engine(offload=rec)
    req = b"GET /big/x HTTP/1.1\r\nHost: t\r\n\r\n"              # offload always: be1's entry added
    establish(fe, req)
    a = S + 1 + 5000                                             # the client got 5000 bytes from be1
    req2 = b"GET /two/y HTTP/1.1\r\nHost: t\r\n\r\n"            # pool "one": be2
    run(fe, client_seg(req2, seq_off=len(req), ack=a))
    assert rec.calls[-1] == ("delete", bytes([198, 18, 7, 11]), CLIENT_PORT)
    # While be2's handshake is pending, nothing is passed on (be2's agent has no delta yet).
    assert run(fe, backend_seg(BE1, "R", seq=a + 100, ack=0)) == []
    run(fe, backend_seg(BE2, "SA", seq=a - 1, ack=C + 1 + len(req)))
    (ack,) = run(fe, backend_seg(BE1, "R", seq=a + 2920, ack=0))
    assert ack[IP].dst == BE2.ip and ack[TCP].flags == "A" and ack[TCP].ack == a + 2920
    assert ack[TCP].seq == C + 1 + len(req) + len(req2) and ack[IP].src == CLIENT
    assert fe.counters["misdirected_ack_relayed"] == 1
    # An RST acknowledging nothing of be2's data (or answering a segment with ACK) is not passed on.
    assert run(fe, backend_seg(BE1, "R", seq=a, ack=0)) == []
    assert run(fe, backend_seg(BE1, "RA", seq=a + 10, ack=C + 1)) == []


def test_keepalive_request_to_the_same_backend_is_forwarded():
    fe = make_engine()
    establish(fe, b"GET /two/a HTTP/1.1\r\nHost: t\r\n\r\n", be=BE2)
    n = len(b"GET /two/a HTTP/1.1\r\nHost: t\r\n\r\n")
    req2 = b"GET /two/b HTTP/1.1\r\nHost: t\r\n\r\n"
    (fwd,) = run(fe, client_seg(req2, seq_off=n, ack=S + 50))
    assert fwd[IP].dst == BE2.ip and fwd[TCP].seq == C + 1 + n and bytes(fwd[TCP].payload) == req2
    assert fwd[TCP].ack == S + 50


def test_keepalive_request_without_rule_resets_backend_and_answers_404():
    fe = make_engine()
    establish(fe)
    rst, resp = run(fe, client_seg(b"GET /zzz HTTP/1.1\r\nHost: t\r\n\r\n", seq_off=len(REQ), ack=S + 9))
    assert rst[IP].dst == BE1.ip and rst[TCP].flags == "R"
    assert resp[IP].src == VIP and resp[TCP].seq == S + 9 and bytes(resp[TCP].payload).startswith(b"HTTP/1.1 404")


def test_idle_timeout_resets_both_sides():
    clock = Clock()
    fe = make_engine(clock=clock, idle_timeout=5.0)
    establish(fe)
    clock.t += 6
    out = [Ether(f) for f in fe.tick()]
    assert {(p[IP].dst, str(p[TCP].flags)) for p in out} == {(BE1.ip, "R"), (CLIENT, "R")}
    assert fe.flows == {} and fe.counters["timeout_established"] == 1


def test_request_body_beyond_the_first_segment_is_forwarded():
    fe = make_engine()
    req = b"PUT /two/up HTTP/1.1\r\nHost: t\r\nContent-Length: 3000\r\n\r\n"
    body = bytes(range(256)) * 12
    run(fe, client_seg(req + body[:1000]))
    (replay,) = run(fe, backend_seg(BE2, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == req + body[:1000]
    a, b = run(fe, client_seg(body[1000:3000], seq_off=len(req) + 1000))   # cut at 1460 bytes
    assert {a[IP].dst, b[IP].dst} == {BE2.ip} and b[TCP].seq == a[TCP].seq + 1460
    assert bytes(a[TCP].payload) + bytes(b[TCP].payload) == body[1000:3000]
    # The next request starts after the body: it is parsed again.
    (fwd,) = run(fe, client_seg(b"GET /two/n HTTP/1.1\r\nHost: t\r\n\r\n", seq_off=len(req) + 3000))
    assert fwd[TCP].seq == C + 1 + len(req) + 3000 and fe.counters["requests_forwarded"] == 1


class AckedRecorder(Recorder):
    """An offload client whose deletes are acknowledged when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.pending_acks: list = []

    def delete(self, ip: bytes, port: int, on_ack=None) -> None:
        super().delete(ip, port)
        self.pending_acks.append(on_ack)


def test_resteer_of_an_offloaded_flow_waits_for_the_offload_delete():
    """Until the switch's entry is gone it sends the client's ACKs to the old back-end: the SYN to the
    new back-end (whose response those ACKs acknowledge) waits for the delete's ack."""
    rec = AckedRecorder()
    fe = make_engine(offload=rec)
    wakes = []
    fe.watch_offload_deletes(lambda: wakes.append(1))
    establish(fe)                                                     # be1
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    run(fe, backend_seg(BE1, "A", seq=S + 1, ack=C + 1 + len(REQ), payload=head))
    assert rec.calls[-1][0] == "add"
    a = S + 1 + len(head) + 100000
    (rst,) = run(fe, client_seg(REQ, seq_off=len(REQ), ack=a))      # round robin: be2 -> re-steer
    assert rst[IP].dst == BE1.ip and rst[TCP].flags == "R"
    assert rec.calls[-1][0] == "delete" and fe.counters["syn_held_for_offload_delete"] == 1
    assert fe.offload_acked() == []                                   # nothing acknowledged yet
    rec.pending_acks[-1]("OK", 0.002)                                 # the ack (on the client's thread)
    assert wakes == [1]
    (syn,) = [Ether(f) for f in fe.offload_acked()]
    assert syn[IP].dst == BE2.ip and syn[TCP].flags == "S" and syn[TCP].seq == C + len(REQ)
    assert syn[TCP].ack == a - 1 and bytes(syn[TCP].payload) == b""
    assert fe.counters["syn_released_after_offload_delete"] == 1 and fe.offload_acked() == []


def test_held_syn_goes_anyway_when_the_delete_is_never_acknowledged():
    rec = AckedRecorder()
    clock = Clock()
    fe = make_engine(offload=rec, clock=clock, offload_delete_wait=0.5)
    fe.watch_offload_deletes(lambda: None)
    establish(fe)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    run(fe, backend_seg(BE1, "A", seq=S + 1, ack=C + 1 + len(REQ), payload=head))
    run(fe, client_seg(REQ, seq_off=len(REQ), ack=S + 1 + len(head) + 100000))
    clock.t += 0.2
    assert fe.tick() == []
    clock.t += 0.4
    (syn,) = [Ether(f) for f in fe.tick()]
    assert syn[IP].dst == BE2.ip and syn[TCP].flags == "S" and fe.counters["offload_delete_wait_timeout"] == 1


def test_reused_client_port_of_a_lingering_closed_flow_opens_a_new_connection():
    """Linux clients reuse a port as soon as their side is closed (the server holds TIME_WAIT): the
    closed flow's linger must neither swallow the new connection's request nor forward its handshake
    ACK to the old back-end."""
    fe = make_engine()
    establish(fe)
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    run(fe, backend_seg(BE1, "FPA", seq=S + 1, ack=C + 1 + len(REQ), payload=resp))
    run(fe, client_seg(b"", flags="A", seq_off=len(REQ), ack=S + 2 + len(resp)))
    run(fe, client_seg(b"", flags="FA", seq_off=len(REQ), ack=S + 2 + len(resp)))
    run(fe, backend_seg(BE1, "A", seq=S + 2 + len(resp), ack=C + 2 + len(REQ)))
    key = (bytes([198, 18, 7, 11]), CLIENT_PORT)
    assert fe.flows[key].state is State.CLOSED
    new = 37_000_000                                  # the new connection's ISN is further on
    assert run(fe, client_seg(b"", flags="A", seq_off=new)) == []     # its handshake ACK
    assert fe.counters["closed_stray"] == 1
    (syn,) = run(fe, client_seg(REQ, seq_off=new))
    assert syn[TCP].flags == "S" and syn[TCP].seq == C + new and syn[TCP].ack == S
    assert fe.counters["port_reused"] == 1 and fe.flows[key].state is State.BACKEND_SYN


# ---------------------------------------------------------------------------------------------
# HTTP as clients send it (issue 15)

KEY = (bytes([198, 18, 7, 11]), CLIENT_PORT)
BIG = b"GET /obj/1k HTTP/1.1\r\nHost: t\r\nCookie: " + b"c" * 6990 + b"\r\n\r\n"


def _feed(fe, data: bytes, pieces: list[int] | None = None, order=None) -> list[list[Ether]]:
    """`data` cut into segments of `pieces` sizes (default: five), sent in `order` (indexes)."""
    sizes = pieces or [-(-len(data) // 5)] * 5
    segs, off = [], 0
    for n in sizes:
        segs.append((off, data[off:off + n]))
        off += n
    return [run(fe, client_seg(segs[i][1], seq_off=segs[i][0])) for i in (order or range(len(segs)))]


def test_7k_head_in_five_segments_gives_a_syn_that_fits_the_mss():
    """The hang of issue 15: with fast-open the SYN carried 1460 payload bytes besides 12 bytes of
    options, a frame over the MTU that never arrived. Its payload now leaves room for the options."""
    fe = make_engine(fastopen=True)
    outs = _feed(fe, BIG)
    assert all(len(o) == 1 and o[0][TCP].flags == "A" for o in outs[:-1])
    (syn,) = outs[-1]
    assert syn[TCP].flags == "S" and len(syn[IP]) <= 1500
    n = len(bytes(syn[TCP].payload))
    assert n == 1460 - 12 and bytes(syn[TCP].payload) == BIG[:n]
    replay = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1 + n))
    assert b"".join(bytes(p[TCP].payload) for p in replay) == BIG[n:]
    assert all(len(p[IP]) <= 1500 for p in replay)


def test_small_mss_class_bounds_the_syn_payload():
    fe = make_engine(fastopen=True)
    s = cookie(mss_idx=0)
    (syn,) = run(fe, client_seg(BIG[:500], s=s))[-1:] or [None]
    assert syn[TCP].flags == "A"
    out = run(fe, client_seg(BIG[500:], seq_off=500, s=s))
    (syn,) = out
    opts = len(bytes(syn[TCP])) - 20 - len(bytes(syn[TCP].payload))
    assert syn[TCP].flags == "S" and len(bytes(syn[TCP].payload)) + opts == options(syn)["MSS"]


def test_reordered_head_segments_are_reassembled():
    fe = make_engine()
    outs = _feed(fe, BIG, order=[0, 2, 4, 3, 1])
    dup = outs[1][0]
    assert dup[TCP].flags == "A" and dup[TCP].ack == C + 1 + 1407       # a duplicate ACK for the gap
    (syn,) = outs[-1]
    assert syn[TCP].flags == "S" and fe.counters["request_out_of_order"] == 3
    (replay, *more) = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) + b"".join(bytes(p[TCP].payload) for p in more) == BIG


def test_lost_head_segment_is_waited_for():
    fe = make_engine()
    outs = _feed(fe, BIG, order=[0, 1, 3, 4])
    assert all(p[TCP].flags == "A" for o in outs for p in o)
    assert fe.flows[KEY].state is State.REQUEST
    (syn,) = run(fe, client_seg(BIG[2814:4221], seq_off=2814))        # the retransmission
    assert syn[TCP].flags == "S"


def test_partial_head_acks_keep_the_window_open():
    fe = make_engine()
    for o in _feed(fe, BIG[:-100]):
        (ack,) = o
        assert ack[TCP].window == 512 and ack[TCP].flags == "A"


def test_pipelined_requests_are_evaluated_one_by_one():
    """Three requests in one segment: the replay carries only the first, the second and third are
    parsed in turn, matched against the rules and (the pool allowing it) kept on the back-end that
    owes the earlier responses; a request for another pool is not sent to this back-end."""
    fe = make_engine()
    r1, r2, r3 = REQ, b"GET /obj/64k HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    (syn,) = run(fe, client_seg(r1 + r2 + r3))
    assert syn[IP].dst == BE1.ip
    replay, fwd2, fwd3 = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == r1
    assert (fwd2[IP].dst, fwd2[TCP].seq, bytes(fwd2[TCP].payload)) == (BE1.ip, C + 1 + len(r1), r2)
    assert (fwd3[IP].dst, fwd3[TCP].seq, bytes(fwd3[TCP].payload)) == (BE1.ip, C + 1 + len(r1 + r2), r3)
    assert fe.counters["requests"] == 3 and fe.counters["pipelined_kept_backend"] == 1   # r2: round robin's be2
    assert fe.counters["resteered"] == 0


def test_pipelined_head_cut_between_segments():
    fe = make_engine()
    r2 = b"GET /obj/64k HTTP/1.1\r\nHost: t\r\n\r\n"
    run(fe, client_seg(REQ + r2[:9]))
    (replay,) = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == REQ
    (fwd,) = run(fe, client_seg(r2[9:], seq_off=len(REQ) + 9))
    assert fwd[IP].dst == BE1.ip and bytes(fwd[TCP].payload) == r2 and fwd[TCP].seq == C + 1 + len(REQ)


def test_chunked_body_is_forwarded_and_its_end_found():
    fe = make_engine()
    head = b"POST /two/up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"5\r\nhello\r\n" + b"400\r\n" + b"z" * 1024 + b"\r\n" + b"0\r\n\r\n"
    nxt = b"GET /two/b HTTP/1.1\r\nHost: t\r\n\r\n"
    (syn,) = run(fe, client_seg(head + body[:7]))
    assert syn[TCP].flags == "S" and syn[IP].dst == BE2.ip
    (replay,) = run(fe, backend_seg(BE2, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == head + body[:7]
    (mid,) = run(fe, client_seg(body[7:900], seq_off=len(head) + 7))
    assert mid[IP].dst == BE2.ip and bytes(mid[TCP].payload) == body[7:900]
    assert run(fe, client_seg(body[1000:], seq_off=len(head) + 1000)) == []     # after a gap: waits
    out = run(fe, client_seg(body[900:] + nxt, seq_off=len(head) + 900, ack=S + 50))
    assert bytes(out[0][TCP].payload) == body[900:] and out[0][IP].dst == BE2.ip
    assert bytes(out[1][TCP].payload) == nxt and out[1][TCP].seq == C + 1 + len(head) + len(body)
    assert fe.counters["requests"] == 2 and fe.counters["body_out_of_order"] == 1


def test_malformed_chunked_body_resets_both_sides():
    fe = make_engine()
    head = b"POST /two/up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    run(fe, client_seg(head))
    run(fe, backend_seg(BE2, "SA", seq=S, ack=C + 1))
    out = run(fe, client_seg(b"zz\r\n", seq_off=len(head)))
    assert {(p[IP].dst, str(p[TCP].flags)) for p in out} == {(BE2.ip, "R"), (CLIENT, "R")}
    assert KEY not in fe.flows


def test_head_request_is_never_offloaded():
    rec = Recorder()
    fe = make_engine(offload=rec)
    req = b"HEAD /big/x HTTP/1.1\r\nHost: t\r\n\r\n"
    establish(fe, req)                                                  # rule: offload always
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n"
    (p,) = run(fe, backend_seg(BE1, "A", seq=S + 1, ack=C + 1 + len(req), payload=head))
    assert p[IP].dst == CLIENT and bytes(p[TCP].payload) == head
    assert rec.calls == [] and fe.counters["offload_add"] == 0
    establish(make_engine(offload=rec), b"GET /big/x HTTP/1.1\r\nHost: t\r\n\r\n")   # the GET is offloaded
    assert [c[0] for c in rec.calls] == ["add"]


def test_interim_response_does_not_decide_the_offload():
    rec = Recorder()
    fe = make_engine(offload=rec)
    req = b"GET /obj/x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    establish(fe, req)
    run(fe, backend_seg(BE1, "A", seq=S + 1, ack=C + 1 + len(req), payload=b"HTTP/1.1 100 Continue\r\n\r\n"))
    assert rec.calls == []
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n"
    run(fe, backend_seg(BE1, "A", seq=S + 26, ack=C + 4 + len(req), payload=head))
    assert rec.calls == [("add", KEY[0], CLIENT_PORT, BE1.index)]


def test_absolute_form_is_routed_by_its_path_and_forwarded_as_sent():
    fe = make_engine()
    req = b"GET http://t/two/x HTTP/1.1\r\nHost: t\r\n\r\n"
    (syn,) = run(fe, client_seg(req))
    assert syn[IP].dst == BE2.ip                                     # rule /two/ -> pool one
    (replay,) = run(fe, backend_seg(BE2, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == req


def test_non_ascii_content_length_is_400_and_the_engine_goes_on():
    fe = make_engine()
    req = "GET /obj/1k HTTP/1.1\r\nHost: t\r\nContent-Length: \u00b2\r\n\r\n".encode()
    _, body = _local_response(run(fe, client_seg(req)))
    assert body.startswith(b"HTTP/1.1 400 ")
    (syn,) = run(fe, client_seg(REQ, port=40002, s=cookie(port=40002)))
    assert syn[TCP].flags == "S" and fe.counters["frame_errors"] == 0


def test_a_failure_in_one_frame_resets_that_flow_and_nothing_else():
    fe = make_engine()
    establish(fe)

    def broken(*a):
        raise RuntimeError("a bug")

    fe.balancer.choose = broken
    out = run(fe, client_seg(REQ, port=40002, s=cookie(port=40002)))   # the new flow fails
    assert [str(p[TCP].flags) for p in out] == ["R"] and out[0][TCP].dport == 40002
    assert fe.counters["frame_errors"] == 1 and "a bug" in fe.last_error
    assert (KEY[0], 40002) not in fe.flows and KEY in fe.flows
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    (p,) = run(fe, backend_seg(BE1, "PA", seq=S + 1, ack=C + 1 + len(REQ), payload=resp))
    assert p[IP].dst == CLIENT and bytes(p[TCP].payload) == resp


def test_incomplete_head_is_answered_408_from_its_first_byte():
    clock = Clock()
    fe = make_engine(clock=clock, request_timeout=10.0)
    run(fe, client_seg(REQ[:5]))
    for i in range(1, 5):                   # slowloris: a byte now and then does not extend it
        clock.t += 2.4
        assert fe.tick() == []
        run(fe, client_seg(REQ[4 + i:5 + i], seq_off=4 + i))
    clock.t += 0.5
    (resp,) = [Ether(f) for f in fe.tick()]
    assert bytes(resp[TCP].payload).startswith(b"HTTP/1.1 408 ") and resp[TCP].flags == "FPA"
    clock.t += 10.5
    (rst,) = [Ether(f) for f in fe.tick()]   # never acknowledged: reset, not a silent end
    assert rst[TCP].flags == "R" and KEY not in fe.flows


def test_mutated_requests_in_random_segments_never_break_the_engine():
    """Mutated requests, cut into random segments, some out of order, through one engine: every
    frame is handled without tripping the guard (frame_errors stays 0)."""
    import random

    from test_fe_http import _mutants
    rnd = random.Random(15)
    fe = make_engine(fastopen=True)
    for i, data in enumerate(_mutants(300, seed=16)):
        port = 20000 + i
        s = cookie(port=port)
        cuts = sorted(rnd.sample(range(1, len(data)), min(3, len(data) - 1))) if len(data) > 1 else []
        pieces = [(a, data[a:b]) for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        if rnd.random() < 0.3:
            rnd.shuffle(pieces)
        for off, p in pieces:
            run(fe, client_seg(p, seq_off=off, port=port, s=s))
        flow = fe.flows.get((bytes([198, 18, 7, 11]), port))
        if flow is not None and flow.state is State.BACKEND_SYN:
            run(fe, backend_seg(flow.backend, "SA", seq=s, ack=C + 1 + len(flow.syn_payload), port=port))
            run(fe, client_seg(b"0\r\n\r\nGET /obj/1k HTTP/1.1\r\nHost: t\r\n\r\n", seq_off=len(data), port=port, s=s))
    assert fe.counters["frame_errors"] == 0, fe.last_error
    assert fe.counters["http_400"] > 30 and fe.counters["requests"] > 5      # both paths were taken


def test_pipelined_request_without_rule_is_answered_after_the_backends_last_response():
    """GET then a request no rule matches, in one segment: the back-end gets the first and a FIN;
    its response is passed on, and the 404 starts where that response (its FIN) ends."""
    fe = make_engine()
    bad = b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n"
    run(fe, client_seg(REQ + bad))
    replay, fin = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == REQ
    assert fin[TCP].flags == "FA" and fin[IP].dst == BE1.ip and fin[TCP].seq == C + 1 + len(REQ)
    assert fe.counters["pipelined_deferred"] == 1
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    data, rst, answer = run(fe, backend_seg(BE1, "FPA", seq=S + 1, ack=C + 2 + len(REQ), payload=resp))
    assert data[IP].src == VIP and data[TCP].flags == "PA" and bytes(data[TCP].payload) == resp
    assert rst[IP].dst == BE1.ip and rst[TCP].flags == "R" and rst[TCP].seq == C + 2 + len(REQ)
    assert answer[IP].src == VIP and answer[TCP].seq == S + 1 + len(resp)
    assert bytes(answer[TCP].payload).startswith(b"HTTP/1.1 404 ") and answer[TCP].ack == C + 1 + len(REQ + bad)


def test_pipelined_request_for_another_pool_waits_then_resteers():
    fe = make_engine()
    r2 = b"GET /two/x HTTP/1.1\r\nHost: t\r\n\r\n"                  # pool "one": be2 only
    run(fe, client_seg(REQ))
    run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    (fin,) = run(fe, client_seg(r2, seq_off=len(REQ), ack=S + 1))     # nothing of response 1 yet
    assert fin[TCP].flags == "FA" and fin[IP].dst == BE1.ip
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    end = S + 1 + len(resp)
    data, rst, syn = run(fe, backend_seg(BE1, "FPA", seq=S + 1, ack=C + 2 + len(REQ), payload=resp))
    assert bytes(data[TCP].payload) == resp and rst[TCP].flags == "R"
    assert syn[IP].dst == BE2.ip and syn[TCP].flags == "S" and syn[TCP].ack == end - 1
    assert syn[TCP].seq == C + len(REQ)
    (replay,) = run(fe, backend_seg(BE2, "SA", seq=end - 1, ack=C + 1 + len(REQ)))
    assert bytes(replay[TCP].payload) == r2 and replay[TCP].ack == end


def test_deferred_request_whose_backend_never_closes_is_reset():
    clock = Clock()
    fe = make_engine(clock=clock, request_timeout=10.0)
    run(fe, client_seg(REQ + b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n"))
    run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    clock.t += 10.5
    out = [Ether(f) for f in fe.tick()]
    assert {(p[IP].dst, str(p[TCP].flags)) for p in out} == {(BE1.ip, "R"), (CLIENT, "R")} and KEY not in fe.flows


def test_local_answer_to_head_has_no_body():
    fe = make_engine()
    _, data = _local_response(run(fe, client_seg(b"HEAD /nothing HTTP/1.1\r\nHost: t\r\n\r\n")))
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 ") and b"Content-Length: " in head and body == b""


def test_deferred_chunked_request_keeps_its_body_for_the_new_backend():
    fe = make_engine()
    head = b"POST /two/up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    run(fe, client_seg(REQ + head + body[:5]))                        # GET (be1), then POST for be2
    replay, fin = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == REQ and fin[TCP].flags == "FA"
    at = len(REQ + head) + 5
    assert run(fe, client_seg(body[5:12], seq_off=at)) == []          # buffered while deferred
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    _, _, syn = run(fe, backend_seg(BE1, "FPA", seq=S + 1, ack=C + 2 + len(REQ), payload=resp))
    assert syn[IP].dst == BE2.ip and syn[TCP].flags == "S"
    (replay2,) = run(fe, backend_seg(BE2, "SA", seq=S + len(resp), ack=C + 1 + len(REQ)))
    assert bytes(replay2[TCP].payload) == head + body[:12]
    nxt = b"GET /two/z HTTP/1.1\r\nHost: t\r\n\r\n"
    rest, fwd = run(fe, client_seg(body[12:] + nxt, seq_off=at + 7, ack=S + 1 + len(resp)))
    assert bytes(rest[TCP].payload) == body[12:] and rest[IP].dst == BE2.ip
    assert bytes(fwd[TCP].payload) == nxt and fwd[IP].dst == BE2.ip


def test_lost_first_segment_rebases_the_flow():
    """The segment that opens the flow is the second of the request (the first was lost): nothing is
    acknowledged or answered; the retransmitted first re-bases the flow and the request goes out whole."""
    fe = make_engine()
    assert run(fe, client_seg(BIG[1407:2814], seq_off=1407)) == []
    assert run(fe, client_seg(BIG[2814:4221], seq_off=2814)) == []
    assert fe.flows[KEY].state is State.REQUEST and not fe.flows[KEY].confirmed
    (ack,) = run(fe, client_seg(BIG[:1407]))
    assert ack[TCP].ack == C + 1 + 4221 and fe.counters["request_rebased"] == 1
    (syn,) = run(fe, client_seg(BIG[4221:], seq_off=4221))
    assert syn[TCP].flags == "S" and syn[TCP].seq == C
    (replay, *more) = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) + b"".join(bytes(p[TCP].payload) for p in more) == BIG


def test_lost_first_segment_of_pipelined_requests():
    fe = make_engine()
    r2 = b"GET /obj/64k HTTP/1.1\r\nHost: t\r\n\r\n"
    assert run(fe, client_seg(r2[20:], seq_off=len(REQ) + 20)) == []
    (syn,) = run(fe, client_seg(REQ + r2[:20]))
    assert syn[TCP].flags == "S" and syn[TCP].seq == C
    replay, fwd = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == REQ and bytes(fwd[TCP].payload) == r2


def test_rules_see_the_normalised_path_and_the_backend_the_target_as_sent():
    """Issue 10: `/%74wo/x` is `/two/x` to nginx, so it takes the `/two/` rule (pool one: be2) and
    `/two/%2e%2e/obj/1k` is `/obj/1k` (pool web: be1), not 404 nor the `/two/` pool; the replay
    carries the request byte for byte as the client sent it."""
    fe = make_engine()
    req = b"GET /%74wo/x HTTP/1.1\r\nHost: t\r\n\r\n"
    (syn,) = run(fe, client_seg(req))
    assert syn[IP].dst == BE2.ip and fe.flows[KEY].rule.name == "pinned"
    (replay,) = run(fe, backend_seg(BE2, "SA", seq=S, ack=C + 1))
    assert bytes(replay[TCP].payload) == req
    fe2 = make_engine()
    req2 = b"GET /two/%2e%2e/obj/1k HTTP/1.1\r\nHost: t\r\n\r\n"
    (syn,) = run(fe2, client_seg(req2))
    assert syn[IP].dst == BE1.ip and fe2.flows[KEY].rule.name == "objects"
    assert fe2.counters["http_404"] == 0


def test_malformed_escape_in_the_path_is_answered_400():
    fe = make_engine()
    _, body = _local_response(run(fe, client_seg(b"GET /obj/%zz HTTP/1.1\r\nHost: t\r\n\r\n")))
    assert body.startswith(b"HTTP/1.1 400 ") and fe.counters["http_400"] == 1


# ----------------------------------------------------------------- RFC 5961: client RSTs and FINs

def test_rst_in_window_gets_a_challenge_ack_and_changes_nothing():
    """Issue 10: a RST near what the front-end expects (a blind attacker's guess) resets nothing:
    the client gets a challenge ACK (seq = what it acknowledged, ack = the exact number expected)
    and the flow, its acknowledged position and its window stay; a RST of exactly that number
    (what a client that really reset answers) ends the flow."""
    fe = make_engine()
    partial = REQ[:24]                                  # a whole request line: acknowledged
    (ack,) = run(fe, client_seg(partial))
    assert ack[TCP].ack == C + 1 + len(partial)
    (ch,) = run(fe, client_seg(b"", flags="RA", seq_off=len(partial) + 700, ack=S + 77, window=1))
    assert (ch[IP].src, ch[TCP].sport, ch[IP].dst, ch[TCP].dport) == (VIP, VIP_PORT, CLIENT, CLIENT_PORT)
    assert ch[TCP].flags == "A" and ch[TCP].seq == S + 1 and ch[TCP].ack == C + 1 + len(partial)
    flow = fe.flows[KEY]
    assert flow.state is State.REQUEST and flow.server_next == S + 1 and flow.client_window == 502
    assert fe.counters["rst_challenged"] == 1
    assert run(fe, client_seg(b"", flags="R", seq_off=len(partial))) == []
    assert KEY not in fe.flows and fe.counters["removed_client_rst"] == 1


def test_rst_outside_the_window_is_dropped_silently():
    fe = make_engine()
    establish(fe)
    for off in (len(REQ) + (1 << 20) + 5, len(REQ) - 1, 1 << 31):
        assert run(fe, client_seg(b"", flags="R", seq_off=off)) == []
    assert fe.flows[KEY].state is State.ESTABLISHED and fe.counters["rst_outside_window"] == 3


def test_established_rst_exact_goes_to_the_backend_in_window_is_challenged_by_the_front_end():
    fe = make_engine()
    establish(fe)
    (ch,) = run(fe, client_seg(b"", flags="R", seq_off=len(REQ) + 1000))
    assert ch[IP].dst == CLIENT and ch[TCP].flags == "A" and ch[TCP].ack == C + 1 + len(REQ)
    assert fe.counters["forwarded_c2b"] == 0 and fe.flows[KEY].state is State.ESTABLISHED
    (rst,) = run(fe, client_seg(b"", flags="R", seq_off=len(REQ)))
    assert (rst[IP].dst, rst[TCP].dport, rst[TCP].flags, rst[TCP].seq) == (BE1.ip, BE1.port, "R", C + 1 + len(REQ))
    assert KEY not in fe.flows


def test_rst_at_the_end_of_a_body_crossing_the_fast_path_is_exact():
    """A body the kernel fast path forwards moves the client past sent_upto unseen: a RST at the
    request's end is exact too, one inside the body's range is challenged."""
    fe = make_engine()
    head = b"POST /two/up HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n"
    run(fe, client_seg(head))
    run(fe, backend_seg(BE2, "SA", seq=S, ack=C + 1))
    end = len(head) + 5000
    (ch,) = run(fe, client_seg(b"", flags="R", seq_off=len(head) + 100))
    assert ch[TCP].flags == "A" and ch[TCP].ack == C + 1 + len(head)
    (rst,) = run(fe, client_seg(b"", flags="R", seq_off=end))
    assert rst[IP].dst == BE2.ip and rst[TCP].seq == C + 1 + end and KEY not in fe.flows


def test_fin_outside_the_window_is_dropped_a_retransmitted_one_still_passes():
    fe = make_engine()
    establish(fe)
    assert run(fe, client_seg(b"", flags="FA", seq_off=len(REQ) + (1 << 24))) == []
    flow = fe.flows[KEY]
    assert flow.fin_c is None and fe.counters["fin_outside_window"] == 1 and fe.counters["client_fin"] == 0
    for _ in range(2):                                  # the FIN, then its retransmission
        (fin,) = run(fe, client_seg(b"", flags="FA", seq_off=len(REQ)))
        assert fin[IP].dst == BE1.ip and fin[TCP].flags == "FA" and fin[TCP].seq == C + 1 + len(REQ)
    assert flow.fin_c == C + 1 + len(REQ) and fe.counters["client_fin"] == 2


def test_rst_on_a_local_answer_is_checked_too():
    fe = make_engine()
    req = b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n"
    run(fe, client_seg(req))                            # 404, state LOCAL
    assert run(fe, client_seg(b"", flags="R", seq_off=len(req) + (1 << 21))) == []
    (ch,) = run(fe, client_seg(b"", flags="R", seq_off=len(req) + 3))
    assert ch[TCP].flags == "A" and ch[TCP].ack == C + 1 + len(req)
    assert fe.flows[KEY].state is State.LOCAL
    assert run(fe, client_seg(b"", flags="R", seq_off=len(req))) == [] and KEY not in fe.flows


def test_challenge_acks_share_the_bound_of_unsolicited_answers():
    clock = Clock()
    fe = make_engine(clock=clock, stateless_rst_rate=1)
    establish(fe)
    assert len(run(fe, client_seg(b"", flags="R", seq_off=len(REQ) + 9))) == 1
    assert run(fe, client_seg(b"", flags="R", seq_off=len(REQ) + 9)) == []
    assert fe.counters["challenge_ack_suppressed"] == 1 and fe.flows[KEY].state is State.ESTABLISHED


# ----------------------------------------------------------------- bounded state (issue 10)

def test_a_full_flow_table_refuses_new_connections_with_a_rst_and_keeps_the_others():
    fe = make_engine(max_flows=2)
    for port in (41000, 41001):
        (syn,) = run(fe, client_seg(REQ, port=port))
        assert syn[TCP].flags == "S"
    s3 = cookie(port=41002)
    (rst,) = run(fe, client_seg(REQ, port=41002))
    assert (rst[IP].dst, rst[TCP].dport, rst[TCP].flags, rst[TCP].seq, rst[TCP].ack) == (CLIENT, 41002, "R", s3 + 1, 0)
    assert len(fe.flows) == 2 and fe.counters["flows_full_refused"] == 1
    # The flows in the table go on: the first one's SYN-ACK gets the replay.
    (replay,) = run(fe, backend_seg(BE1, "SA", seq=S, ack=C + 1, port=41000))
    assert bytes(replay[TCP].payload) == REQ
    run(fe, client_seg(b"", flags="R", seq_off=len(REQ), port=41001))    # one leaves (its exact RST)
    assert len(fe.flows) == 1
    (syn,) = run(fe, client_seg(REQ, port=41002))
    assert syn[TCP].flags == "S" and len(fe.flows) == 2


def _resteer_waiting_for_delete(**cfg):
    rec = AckedRecorder()
    clock = Clock()
    fe = make_engine(offload=rec, clock=clock, offload_delete_wait=100.0, **cfg)
    fe.watch_offload_deletes(lambda: None)
    establish(fe)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    run(fe, backend_seg(BE1, "A", seq=S + 1, ack=C + 1 + len(REQ), payload=head))
    run(fe, client_seg(REQ, seq_off=len(REQ), ack=S + 1 + len(head) + 100000))     # re-steer to be2
    assert [c[0] for c in rec.calls] == ["add", "delete"]
    return fe, rec, clock


def test_a_failed_offload_delete_is_sent_again_and_the_held_syn_waits_for_it():
    """Issue 10: a delete refused (UNAVAILABLE: the switch was away) leaves the switch sending the
    client's ACKs to the old back-end: it is sent again after 0.1 s, and the re-steer's SYN waits
    for its success."""
    fe, rec, clock = _resteer_waiting_for_delete()
    rec.pending_acks[-1]("UNAVAILABLE", 0.0)
    assert fe.offload_acked() == [] and fe.counters["offload_delete_failed_UNAVAILABLE"] == 1
    clock.t += 0.05
    assert fe.tick() == [] and [c[0] for c in rec.calls] == ["add", "delete"]
    clock.t += 0.06
    assert fe.tick() == []
    assert rec.calls[-1] == ("delete", bytes([198, 18, 7, 11]), CLIENT_PORT)
    assert len(rec.calls) == 3 and fe.counters["offload_delete_retried"] == 1
    rec.pending_acks[-1]("OK", 0.001)
    (syn,) = [Ether(f) for f in fe.offload_acked()]
    assert syn[IP].dst == BE2.ip and syn[TCP].flags == "S"
    assert fe._delete_retry == {} and fe._deletes_in_flight == {}


def test_offload_delete_retries_are_bounded():
    fe, rec, clock = _resteer_waiting_for_delete(offload_delete_retries=1)
    rec.pending_acks[-1]("UNAVAILABLE", 0.0)
    assert fe.offload_acked() == []
    clock.t += 0.2
    fe.tick()
    rec.pending_acks[-1]("RESOURCE_EXHAUSTED", 0.0)
    (syn,) = [Ether(f) for f in fe.offload_acked()]      # given up: the SYN goes (as after the wait)
    assert syn[IP].dst == BE2.ip and fe.counters["offload_delete_gave_up"] == 1
    assert len(rec.calls) == 3 and fe._delete_retry == {} and fe._deletes_in_flight == {}


def test_not_found_is_a_successful_delete():
    fe, rec, _ = _resteer_waiting_for_delete()
    rec.pending_acks[-1]("NOT_FOUND", 0.0)
    (syn,) = [Ether(f) for f in fe.offload_acked()]
    assert syn[IP].dst == BE2.ip and fe._delete_retry == {}
