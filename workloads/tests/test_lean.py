"""The lean client against a real nginx on loopback and a server that fails on purpose."""

from __future__ import annotations

import random
import socket

import pytest

from workloads.catalog import object_bytes, write_catalog
from workloads.lean import LeanConnection, sample_windows
from workloads.raw import COLUMNS, RawWriter, read_raw
from workloads.spec import Target, WorkloadObject
from workloads.testserver import LoopbackNginx, MisbehavingServer

CATALOG = {"1k": 1024, "10k": 10240, "1m": 1 << 20, "10m": 10 << 20}


def obj(name: str, size: int | None = None, path: str | None = None) -> WorkloadObject:
    return WorkloadObject(name, path or f"/obj/{name}", CATALOG.get(name, 0) if size is None else size)


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    root = tmp_path_factory.mktemp("nginx")
    write_catalog(root / "obj", CATALOG)
    # Corrupted copies: one byte changed in the middle, at the start; a truncated file.
    data = bytearray(object_bytes("1m", 1 << 20))
    data[500_000] ^= 0xFF
    (root / "obj" / "1m-mid").write_bytes(data)
    data = bytearray(object_bytes("1m", 1 << 20))
    data[0] ^= 0x01
    (root / "obj" / "1m-first").write_bytes(data)
    (root / "obj" / "1m-short").write_bytes(object_bytes("1m", 1 << 20)[:-1])
    with LoopbackNginx(root, access_log=True) as server:
        yield server


def conn(port: int, **kw) -> LeanConnection:
    kw.setdefault("keepalive", False)
    return LeanConnection(Target("127.0.0.1", port), **kw)


def test_full_verification_of_every_object_keepalive(nginx) -> None:
    c = conn(nginx.port, keepalive=True, requests_per_connection=3, verify="full")
    results = [c.get(obj(n)) for n in ("1k", "10k", "1m", "10m", "1k", "10m")]
    c.close()
    for r, n in zip(results, ("1k", "10k", "1m", "10m", "1k", "10m"), strict=True):
        assert (r.object, r.ok, r.error, r.status, r.bytes, r.expected_bytes) == \
               (n, 1, "", 200, CATALOG[n], CATALOG[n])
        assert r.latency_us > 0
    assert [r.new_connection for r in results] == [1, 0, 0, 1, 0, 0]
    # Setup apart: connect time only on new connections; first byte inside the total; no schedule.
    assert [r.connect_us >= 0 for r in results] == [True, False, False, True, False, False]
    assert all(max(r.connect_us, 0) <= r.ttfb_us <= r.latency_us and r.queue_us == 0 for r in results)
    # nginx saw two connections of three requests each (its access log: $connection $connection_requests).
    lines = nginx.access_log_path.read_text().split("\n")[-7:-1]
    assert [int(line.split()[1]) for line in lines] == [1, 2, 3, 1, 2, 3]
    assert len({line.split()[0] for line in lines}) == 2


def test_close_mode_sends_connection_close(nginx) -> None:
    c = conn(nginx.port, verify="full")
    results = [c.get(obj("1k")) for _ in range(3)]
    assert all(r.ok and r.new_connection for r in results)
    assert c.sock is None
    lines = nginx.access_log_path.read_text().split("\n")[-4:-1]
    assert len({line.split()[0] for line in lines}) == 3


def test_wrong_bytes_full_and_sampled(nginx) -> None:
    full = conn(nginx.port, verify="full")
    sampled = conn(nginx.port, verify="sampled", rng=random.Random(7))
    r = full.get(obj("1m", path="/obj/1m-mid"))
    assert (r.ok, r.error, r.status, r.bytes) == (0, "wrong-bytes", 200, 1 << 20)
    r = sampled.get(obj("1m", path="/obj/1m-first"))
    assert (r.ok, r.error, r.bytes) == (0, "wrong-bytes", 1 << 20)
    # Sampled verification checks three 4 KiB windows only: a byte outside them goes unnoticed...
    windows = sample_windows(1 << 20, random.Random(7))
    assert not any(ws <= 500_000 < we for ws, we in windows)
    assert sampled.get(obj("1m", path="/obj/1m-mid")).ok == 1
    # ...but another object of the same size never passes: every block of every object differs.
    (nginx.obj_dir / "1m-other").write_bytes(object_bytes("other", 1 << 20))
    assert sampled.get(obj("1m", path="/obj/1m-other")).error == "wrong-bytes"
    assert sampled.get(obj("1m")).ok == 1


def test_short_file_is_short_body(nginx) -> None:
    r = conn(nginx.port, verify="full").get(obj("1m", path="/obj/1m-short"))
    assert (r.ok, r.error, r.status, r.bytes) == (0, "short-body", 200, (1 << 20) - 1)


def test_http_error_keeps_the_connection(nginx) -> None:
    c = conn(nginx.port, keepalive=True, requests_per_connection=10)
    r = c.get(obj("nope", 10))
    assert (r.ok, r.error, r.status) == (0, "http-404", 404)
    r = c.get(obj("1k"))
    assert (r.ok, r.new_connection) == (1, 0)
    c.close()


def test_connect_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        r = conn(port).get(obj("1k"))
    assert (r.ok, r.error, r.status, r.bytes, r.new_connection) == (0, "connect", 0, 0, 1)
    assert (r.connect_us, r.ttfb_us) == (-1, -1)


@pytest.mark.parametrize(("mode", "error", "status", "nbytes"), [
    ("cut", "short-body", 200, 512 * 1024),
    ("chunked", "other:chunked", 0, 0),
    ("reset", "reset", 200, 1000),
    ("silent", "timeout", 0, 0),
    ("close", "other:closed-before-response", 0, 0),
])
def test_misbehaving_server(mode, error, status, nbytes) -> None:
    with MisbehavingServer({"1m": 1 << 20}) as server:
        c = conn(server.port, keepalive=True, requests_per_connection=5, timeout_s=0.5)
        r = c.get(WorkloadObject("1m", f"/{mode}/1m", 1 << 20))
        assert (r.ok, r.error, r.bytes) == (0, error, nbytes)
        assert r.status == status
        assert c.sock is None  # a failed connection is never reused
        if mode == "silent":
            assert r.latency_us >= 400_000          # it waited for the timeout (0.5 s) before giving up


def test_sample_windows() -> None:
    rng = random.Random(1)
    assert sample_windows(0, rng) == []
    assert sample_windows(1024, rng) == [(0, 1024)]
    for _ in range(100):
        (a0, a1), (m0, m1), (z0, z1) = sample_windows(1 << 20, rng)
        assert (a0, a1, z0, z1) == (0, 4096, (1 << 20) - 4096, 1 << 20)
        assert m0 >= 4096 and m1 <= (1 << 20) - 4096 and m1 - m0 == 4096


def test_raw_writer_buffers_and_writes_exact_columns(tmp_path) -> None:
    p = tmp_path / "requests" / "client1-0.csv"
    w = RawWriter(p, flush_rows=3, flush_s=3600)
    w.add(1764144903.123456, 250, "1k", 1024, 1024, 200, 1, "", 1, 12, 40, 200)
    w.add(1764144903.5, 99, "1k", 1024, 3, 200, 0, "short-body", 0)
    assert not p.exists()  # buffered: nothing written yet
    w.add(1764144904.0, 7, "10m", 10, 0, 0, 0, "other:a, b\nc", 1)
    assert p.exists()
    w.flush()
    w.flush()
    assert p.read_text().splitlines() == [
        ",".join(COLUMNS),
        "1764144903.123456,250,1k,1024,1024,200,1,,1,12,40,200",
        "1764144903.500000,99,1k,1024,3,200,0,short-body,0,0,,",
        "1764144904.000000,7,10m,10,0,0,0,other:a; b c,1,0,,",
    ]
    rows = read_raw(p)
    assert rows[1] == {"start": 1764144903.5, "latency_us": 99, "object": "1k", "expected_bytes": 1024,
                       "bytes": 3, "status": 200, "ok": 0, "error": "short-body", "new_connection": 0,
                       "queue_us": 0, "connect_us": None, "ttfb_us": None}
    assert (rows[0]["queue_us"], rows[0]["connect_us"], rows[0]["ttfb_us"]) == (12, 40, 200)
