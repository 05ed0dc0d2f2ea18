"""Parsing that cannot be crashed (issue 10): Hypothesis fuzzes the HTTP parser and the frame
handler. The property: every input ends in a result or the parser's own refusal (HttpError), and
the engine's per-frame guard never has to catch anything (`frame_errors` stays 0: the guard is the
last line, not the way bad input is handled). Runs are derandomised (the same examples on every
machine) and without deadlines. Every input that ever broke something is kept below as an
explicit regression case (`REGRESSIONS`, `@example`)."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")     # pinned in pyproject.toml's dev extra

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

from conftest import BACKENDS, C_ISN, backend_seg, client_seg, cookie, make_engine  # noqa: E402
from system.frontend.httpparse import (  # noqa: E402
    ChunkScanner,
    HttpError,
    Request,
    RequestParser,
    normalise_path,
    parse_request_head,
    parse_response_head,
)

FUZZ = settings(derandomize=True, deadline=None, database=None, max_examples=400,
                suppress_health_check=[HealthCheck.too_slow])

# Inputs that once stopped the front-end or were refused wrongly: each stays a test.
REGRESSIONS = [
    b"POST /obj/1k HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n",     # '²': isdigit, int() raised
    b"POST /obj/1k HTTP/1.1\r\nHost: x\r\nContent-Length: \xd9\xa3\r\n\r\n",  # Arabic-Indic 3 (UTF-8)
    b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://h HTTP/1.1\r\n\r\n",
]

VALID = b"POST /obj/1k?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"
PIECES = [b"GET", b"POST", b" ", b"/", b"/obj/", b"%", b"%2e", b"..", b"?", b"http://h", b" HTTP/1.1", b" HTTP/1.0",
          b"\r\n", b"\n", b"\r", b"Host: t", b":", b"Content-Length: ", b"Transfer-Encoding: chunked",
          b"0", b"15", b"\xb2", b"\xff", b"\x00", b"\t", b"chunked", b",", b"\r\n\r\n"]
requestish = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
    st.tuples(st.integers(0, len(VALID)), st.binary(max_size=8)).map(lambda t: VALID[:t[0]] + t[1] + VALID[t[0]:]),
)


def _parse_or_refuse(data: bytes) -> None:
    try:
        parse_request_head(data)
    except HttpError as e:
        assert e.status in (400, 431, 505)


@pytest.mark.parametrize("data", REGRESSIONS)
def test_regressions_are_refused_with_400(data):
    with pytest.raises(HttpError) as e:
        parse_request_head(data)
    assert e.value.status == 400


@FUZZ
@given(requestish)
@example(REGRESSIONS[0])
def test_request_head_parser_returns_or_refuses(data):
    _parse_or_refuse(data)


@FUZZ
@given(requestish, st.lists(st.integers(1, 40), max_size=10))
def test_incremental_parser_agrees_with_the_whole_parse(data, cuts):
    """Fed in pieces, the parser ends where the whole parse does: the same request or refusal."""
    try:
        whole = parse_request_head(data)
    except HttpError as e:
        whole = e.status
    p, got, at = RequestParser(), None, 0
    for n in [*cuts, len(data)]:
        piece, at = data[at:at + n], at + n
        try:
            got = p.feed(piece)
        except HttpError as e:
            got = e.status
            break
        if got is not None:
            break
    if isinstance(got, Request):
        # (A refusal may come earlier in pieces: an unfinished request line is checked as it grows.)
        assert isinstance(whole, Request) and (got.head_len, got.path) == (whole.head_len, whole.path)


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=10))
@example(b"5\r\nhello\r\n0\r\n\r\n", [])
def test_chunk_scanner_returns_or_refuses(data, cuts):
    scanner, at = ChunkScanner(), 0
    try:
        for n in [*cuts, len(data)]:
            end = scanner.feed(data[at:at + n])
            if end is not None:
                assert 0 <= end <= len(data[at:at + n])
                break
            at += n
    except HttpError as e:
        assert e.status == 400


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.lists(st.sampled_from(
    [b"HTTP/1.1 ", b"200", b" OK", b"\r\n", b"Content-Length: ", b"12", b"\xb2", b"\r\n\r\n", b","]),
    max_size=20).map(b"".join)))
def test_response_head_parser_never_raises(data):
    head = parse_response_head(data)
    assert head is None or 0 <= head.status <= 999


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("/.%2eEfF0a?#x\u00e9")), max_size=40))
def test_normalised_paths_have_no_dot_segments_and_are_stable(text):
    path = "/" + text
    try:
        norm = normalise_path(path)
    except HttpError as e:
        assert e.status == 400
        return
    p = norm.split("?")[0]
    assert p.startswith("/") and "//" not in p
    assert "/./" not in p + "/" and "/../" not in p + "/"
    if "%" not in p:
        assert normalise_path(norm) == norm        # decoding once is all: no second meaning


# ----------------------------------------------------------------- the frame handler

flags = st.sampled_from(["A", "PA", "FA", "FPA", "R", "RA", "S", "SA", "", "UA", "FRA"])
client_frames = st.builds(
    lambda payload, fl, off, ack, port: client_seg(payload, flags=fl, seq_off=off, port=port,
                                                   ack=None if ack is None else ack & 0xFFFFFFFF),
    requestish, flags, st.integers(-20000, 20000).map(lambda o: o if o >= -C_ISN else 0),
    st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)), st.sampled_from([40001, 40002]))
backend_frames = st.builds(
    lambda be, fl, seq, ack, payload, port: backend_seg(BACKENDS[be], fl or "A", seq & 0xFFFFFFFF,
                                                        ack & 0xFFFFFFFF, payload, port),
    st.sampled_from(sorted(BACKENDS)), flags, st.integers(0, 0xFFFFFFFF).map(lambda x: x) | st.just(cookie()),
    st.integers(0, 0xFFFFFFFF) | st.just(C_ISN + 1),
    st.sampled_from([b"", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                     b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"]),
    st.sampled_from([40001, 40002]))
raw_frames = st.binary(max_size=120)


class FlakyOffload:
    """An offload client whose deletes are acknowledged at once, every other one refused; activity
    queries answered at once in turn: active just now, no such entry, UNAVAILABLE."""

    def __init__(self) -> None:
        self.n = 0
        self.asked = 0

    def activity(self, keys, on_reply) -> None:
        self.asked += 1
        turn = self.asked % 3
        if turn == 0:
            on_reply(None, "UNAVAILABLE")
        else:
            on_reply([0.0 if turn == 1 else None for _ in keys], "OK")

    def add(self, ip: bytes, port: int, index: int) -> None:
        pass

    def delete(self, ip: bytes, port: int, on_ack=None) -> None:
        self.n += 1
        if on_ack is not None:
            on_ack("OK" if self.n % 2 else "UNAVAILABLE", 0.0)


@FUZZ
@given(st.lists(st.one_of(client_frames, backend_frames, raw_frames), max_size=25),
       st.lists(st.floats(0, 30), max_size=25))
@example([client_seg(REGRESSIONS[0])], [])
@example([client_seg(b"GET /obj/1 HTTP/1.1\r\nHost: t\r\n\r\n"),
          backend_seg(BACKENDS["be1"], "SA", cookie(), C_ISN + 1), client_seg(REGRESSIONS[0], seq_off=33)], [])
@example([client_seg(b"GET /big/x HTTP/1.1\r\nHost: t\r\n\r\n"),       # offloaded, then idle: activity
           backend_seg(BACKENDS["be1"], "SA", cookie(), C_ISN + 1), b"", b"", b"", b""],   # asked, answered
          [0.01, 121, 0.1, 121, 0.1, 700])
@pytest.mark.parametrize("cfg", [{"fastopen": True}, {"learn_delta": True}, {"pin_backend": True}], ids=str)
def test_frame_handler_never_needs_its_guard(cfg, frames, waits):
    """Any sequence of frames (valid cookies or not, any flags and numbers, truncated garbage),
    with timers between them, with an offload client that fails every other delete: the engine
    answers with well-formed frames and its per-frame guard never fires."""
    t = [1000.0]
    offload = FlakyOffload()
    fe = make_engine(clock=lambda: t[0], offload=offload, activity=offload, **cfg)
    fe.watch_offload_deletes(lambda: None)
    for i, frame in enumerate(frames):
        for out in fe.handle(frame):
            pkt = Ether(out)
            assert IP in pkt and TCP in pkt
        t[0] += waits[i] if i < len(waits) else 0.01
        fe.tick()
        fe.offload_acked()
        assert fe.counters["frame_errors"] == 0, fe.last_error
    assert len(fe.flows) <= fe.cfg.max_flows
