"""HTTP request parsing: split over segments, malformed, oversized; the response head's length."""

from __future__ import annotations

import pytest

from system.frontend.httpparse import HttpError, RequestParser, parse_request_head, parse_response_head

REQ = b"GET /obj/1k?x=1 HTTP/1.1\r\nHost: www.example:80\r\nUser-Agent: t\r\n\r\n"


def test_complete_request_fields():
    r = parse_request_head(REQ)
    assert (r.method, r.target, r.version, r.host) == ("GET", "/obj/1k?x=1", "HTTP/1.1", "www.example:80")
    assert r.head_len == len(REQ) and r.content_length == 0 and r.keep_alive


@pytest.mark.parametrize("cut", [1, 3, 10, 25, len(REQ) - 3, len(REQ) - 1])
def test_split_anywhere_completes_only_at_the_end(cut):
    p = RequestParser()
    assert p.feed(REQ[:cut]) is None
    r = p.feed(REQ[cut:])
    assert r is not None and r.target == "/obj/1k?x=1" and r.head_len == len(REQ)


def test_byte_by_byte():
    p = RequestParser()
    results = [p.feed(REQ[i:i + 1]) for i in range(len(REQ))]
    assert all(r is None for r in results[:-1]) and results[-1].host == "www.example:80"


def test_body_length_and_connection_close():
    r = parse_request_head(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 300\r\nConnection: close\r\n\r\nxx")
    assert r.content_length == 300 and not r.keep_alive and r.total_len == r.head_len + 300


def test_http10_default_close_and_keepalive_token():
    assert not parse_request_head(b"GET / HTTP/1.0\r\n\r\n").keep_alive
    assert parse_request_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive


@pytest.mark.parametrize("raw,status", [
    (b"GET /\r\n\r\n", 400),
    (b"GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET nope HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET ftp://x/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),                                   # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"GET / FTP/1.0\r\nHost: a\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: \u00b2\r\n\r\n".encode(), 400),
    ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: \u0661\r\n\r\n".encode(), 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
    (b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400),
])
def test_malformed(raw, status):
    with pytest.raises(HttpError) as e:
        parse_request_head(raw)
    assert e.value.status == status


def test_garbage_is_rejected_before_the_head_ends():
    p = RequestParser()
    with pytest.raises(HttpError) as e:
        p.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS client hello")
    assert e.value.status == 400


def test_oversized_head_is_431_even_when_split():
    p = RequestParser(limit=8192)
    assert p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n") is None
    filler = b"X-Pad: " + b"a" * 4000 + b"\r\n"
    assert p.feed(filler) is None
    with pytest.raises(HttpError) as e:
        p.feed(filler * 2)
    assert e.value.status == 431


def test_head_exactly_at_the_limit_is_accepted():
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: "
    pad = 8192 - len(head) - 4
    raw = head + b"p" * pad + b"\r\n\r\n"
    assert len(raw) == 8192 and parse_request_head(raw, 8192).head_len == 8192
    with pytest.raises(HttpError):
        parse_request_head(head + b"p" * (pad + 1) + b"\r\n\r\n", 8192)


def test_response_head_content_length():
    h = parse_response_head(b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 1048576\r\n\r\nbody")
    assert (h.status, h.content_length) == (200, 1048576)
    assert parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").content_length is None
    assert parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Len").content_length is None
    assert parse_response_head(b"garbage") is None


def test_default_bound_is_16k_and_stated():
    from system.frontend.httpparse import MAX_HEAD
    assert MAX_HEAD == 16384
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 7000 + b"\r\nX-Two: " + b"q" * 7000 + b"\r\n\r\n"
    assert parse_request_head(head).head_len == len(head)


@pytest.mark.parametrize("raw", [
    b"GET /obj/1k HTTP/1.1\nHost: t\n\n",
    b"GET /obj/1k HTTP/1.1\r\nHost: t\n\r\n",
    b"GET /obj/1k HTTP/1.1\nHost: t\r\n\r\n",
    b"\r\n\nGET /obj/1k HTTP/1.1\r\nHost: t\r\n\r\n",
])
def test_bare_lf_and_leading_empty_lines(raw):
    r = parse_request_head(raw)
    assert (r.method, r.path, r.host, r.head_len) == ("GET", "/obj/1k", "t", len(raw))


def test_bare_lf_split_across_feeds():
    raw = b"GET /obj/1k HTTP/1.1\nHost: t\nX: y\n\n"
    for cut in range(1, len(raw)):
        p = RequestParser()
        assert p.feed(raw[:cut]) is None
        assert p.feed(raw[cut:]).head_len == len(raw)


@pytest.mark.parametrize("target,host,path", [
    (b"http://img.example/obj/1k", "img.example", "/obj/1k"),
    (b"http://img.example:8080/obj/1k?x=1", "img.example:8080", "/obj/1k?x=1"),
    (b"HTTP://img.example", "img.example", "/"),
    (b"https://a.b?q", "a.b", "/?q"),
])
def test_absolute_form_host_comes_from_the_target(target, host, path):
    r = parse_request_head(b"GET " + target + b" HTTP/1.1\r\nHost: other\r\n\r\n")
    assert (r.host, r.path, r.target) == (host, path, target.decode())


def test_http10_without_host_and_expect_continue():
    r = parse_request_head(b"GET /obj/1k HTTP/1.0\r\n\r\n")
    assert r.host is None and r.version == "HTTP/1.0"
    r = parse_request_head(b"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert r.expect_continue and r.content_length == 5


def test_chunked_request_head():
    r = parse_request_head(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n")
    assert r.chunked and r.content_length == 0 and r.total_len == r.head_len


CHUNKED = b"5\r\nhello\r\n1a;ext=1\r\n" + b"z" * 26 + b"\r\n0\r\nTrailer: x\r\n\r\n"


@pytest.mark.parametrize("body", [CHUNKED, CHUNKED.replace(b"\r\n", b"\n"), b"0\r\n\r\n"])
def test_chunk_scanner_finds_the_end_however_the_body_is_cut(body):
    from system.frontend.httpparse import ChunkScanner
    nxt = b"GET /next HTTP/1.1\r\n"
    for cut in range(1, len(body)):
        sc = ChunkScanner()
        assert sc.feed(body[:cut]) is None
        assert sc.feed(body[cut:] + nxt) == len(body) - cut
    sc = ChunkScanner()
    assert all(sc.feed(body[i:i + 1]) is None for i in range(len(body) - 1))
    assert sc.feed(body[-1:] + nxt) == 1


@pytest.mark.parametrize("body", [b"x\r\n", b"5\r\nhelloX\r\n", b"-1\r\n", b"5\rhello\r\n", "\u00b2\r\n".encode(),
                                  b"f" * 5000])
def test_chunk_scanner_refuses_malformed_framing(body):
    from system.frontend.httpparse import ChunkScanner
    with pytest.raises(HttpError) as e:
        ChunkScanner().feed(body)
    assert e.value.status == 400


def test_response_head_digits_only():
    assert parse_response_head("HTTP/1.1 2\u00b200 OK\r\n\r\n".encode()) is None
    h = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n")
    assert h.content_length == 7


SEEDS = [
    b"GET /obj/1k HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /up HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n\n5\nhello\n0\n\n",
    b"GET http://h:8/x?y HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n",
]
NASTY = [b"\r", b"\n", b"\x00", b"\xc2\xb2", b"\xd9\xa1", b":", b" ", b"\t", b",", b"-", b"0", b"f", b";", b"\x7f",
         b"Content-Length: ", b"Transfer-Encoding: chunked", b"HTTP/", b"http://", b"\r\n\r\n", b"\xff" * 3]


def _mutants(n: int, seed: int):
    import random
    rnd = random.Random(seed)
    for _ in range(n):
        data = bytearray(rnd.choice(SEEDS))
        for _ in range(rnd.randint(1, 6)):
            at = rnd.randrange(len(data) + 1)
            op = rnd.random()
            if op < 0.4:
                data[at:at] = rnd.choice(NASTY)
            elif op < 0.7:
                del data[at:at + rnd.randint(1, 4)]
            else:
                data[at:at + 1] = bytes([rnd.randrange(256)])
        yield bytes(data)


def test_mutated_requests_raise_nothing_but_http_errors():
    """A seeded fuzz (no wall clock, same inputs every run): the parser and the chunk scanner either
    answer or raise HttpError with a status the front-end sends."""
    from system.frontend.httpparse import ChunkScanner
    for data in _mutants(3000, seed=15):
        try:
            r = parse_request_head(data)
            if r is not None and r.chunked:
                ChunkScanner().feed(data[r.head_len:])
        except HttpError as e:
            assert e.status in (400, 431, 505)


@pytest.mark.parametrize("target,path", [
    ("/%61pi/x", "/api/x"),                 # an unreserved letter escaped
    ("/%2e%2E/api", "/api"),                # escaped dot segments above the root
    ("/x/../api/./y", "/api/y"),
    ("/x/..", "/"),
    ("/a/./", "/a/"),
    ("//api///v1", "/api/v1"),              # nginx's merge_slashes
    ("/%2Fapi", "/api"),                    # an escaped slash is a slash to nginx
    ("/a%3fb?q=%61/../x", "/a%3Fb?q=%61/../x"),  # an escaped '?' stays one; the query is as sent
    ("/%7Euser%20x", "/~user x"),
    ("/caf%C3%A9", "/caf\u00c3\u00a9"),       # bytes beyond ASCII: one character each (Latin-1)
])
def test_path_is_normalised_for_the_rules_and_the_target_is_kept(target, path):
    r = parse_request_head(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert (r.path, r.target) == (path, target)


def test_absolute_form_path_is_normalised_too():
    r = parse_request_head(b"GET http://h/x/%2e%2e/%61pi HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (r.host, r.path) == ("h", "/api")


@pytest.mark.parametrize("target", [b"/a%zzb", b"/a%4", b"/a%", b"/a%00b", b"/a%2"])
def test_malformed_escape_or_nul_in_the_path_is_refused(target):
    with pytest.raises(HttpError) as e:
        parse_request_head(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert e.value.status == 400
