"""The lean HTTP/1.1 client: plain sockets, one reused receive buffer, byte-exact verification.

Used by the locustfile's lean user class (where Locust has monkey-patched `socket` with gevent) and
usable without Locust (tests, probes). One `LeanConnection` is one user's connection slot: it
connects on demand, sends GETs, parses the status line and headers, reads the body with
`recv_into` into a 256 KiB buffer and compares it with the expected content without copying
(`bytes.startswith(memoryview_chunk, offset)` is a memcmp; a memoryview == memoryview comparison
goes item by item and is 20x slower).

Every request returns a `Result` whose fields are the columns of `requests/<host>-<n>.csv`
(docs/run-directory.md); errors are classified, never raised.
"""

from __future__ import annotations

import random
import socket
import time
from dataclasses import dataclass

from workloads.catalog import object_bytes
from workloads.spec import Target, WorkloadObject

BUFFER = 256 * 1024
WINDOW = 4 * 1024
MAX_HEADER = 64 * 1024

# Expected content, per object, per process (the catalog is small: ~12 MB by default).
_EXPECTED: dict[tuple[str, int], bytes] = {}


def expected_bytes(name: str, size: int) -> bytes:
    key = (name, size)
    data = _EXPECTED.get(key)
    if data is None:
        data = _EXPECTED[key] = object_bytes(name, size)
    return data


@dataclass(slots=True)
class Result:
    start: float            # epoch seconds when the request began (connect included)
    latency_us: int
    object: str
    expected_bytes: int
    bytes: int
    status: int
    ok: int
    error: str
    new_connection: int
    queue_us: int = 0       # open loop: from the intended send time to `start` (0 in a closed loop)
    connect_us: int = -1    # connect() of a new connection (-1: the connection was reused, or none)
    ttfb_us: int = -1       # from `start` to the first response byte (-1: none arrived)


class _Failure(Exception):
    """A classified failure inside one request (the error column's value)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def classify(exc: BaseException) -> str:
    """The error column for a socket-level exception."""
    if isinstance(exc, _Failure):
        return exc.error
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    text = type(exc).__name__ if not str(exc) else f"{type(exc).__name__} {exc}"
    return "other:" + text.replace(",", ";").replace("\n", " ")[:80]


def sample_windows(size: int, rng: random.Random) -> list[tuple[int, int]]:
    """The byte ranges sampled verification checks: the first, the last and one random 4 KiB."""
    if size <= 3 * WINDOW:
        return [(0, size)] if size else []
    mid = rng.randrange(WINDOW, size - 2 * WINDOW)
    return [(0, WINDOW), (mid, mid + WINDOW), (size - WINDOW, size)]


class LeanConnection:
    """One client connection slot: keep-alive for up to ``requests_per_connection`` requests."""

    def __init__(self, target: Target, *, keepalive: bool, requests_per_connection: int = 1,
                 verify: str = "full", timeout_s: float = 10.0, rng: random.Random | None = None) -> None:
        self.address = (target.address, target.port)
        self.family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
        self.host_header = target.host_header.encode()
        self.keepalive = keepalive
        self.per_connection = requests_per_connection if keepalive else 1
        self.full = verify == "full"
        self.timeout_s = timeout_s
        self.rng = rng or random.Random(0)
        self.sock: socket.socket | None = None
        self.used = 0  # requests sent on the current connection
        self.buf = bytearray(BUFFER)
        self.view = memoryview(self.buf)
        self._requests: dict[tuple[str, bool], bytes] = {}

    # -- connection -----------------------------------------------------------------------------

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self.used = 0

    def _connect(self) -> None:
        # The target is an IP address (spec.Target): no resolver call (gevent's is a thread pool).
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.settimeout(self.timeout_s)
        try:
            s.connect(self.address)
        except OSError as e:
            s.close()
            raise _Failure("connect") from e
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self.used = 0

    def _request_bytes(self, path: str, last: bool) -> bytes:
        key = (path, last)
        req = self._requests.get(key)
        if req is None:
            lines = [f"GET {path} HTTP/1.1", "Host: " + self.host_header.decode(), "User-Agent: miresga-lean",
                     "Accept-Encoding: identity"]
            if last:
                lines.append("Connection: close")
            req = self._requests[key] = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return req

    # -- one request ----------------------------------------------------------------------------

    def get(self, obj: WorkloadObject, intended_ns: int | None = None) -> Result:
        """Fetches one object and verifies it. Never raises for network or HTTP errors.

        ``intended_ns`` (open loop): the `time.perf_counter_ns()` at which the request was due; the
        result's ``queue_us`` is how late it was actually sent (latency from the intended time is
        ``queue_us + latency_us``)."""
        start = time.time()
        t0 = time.perf_counter_ns()
        queue = 0 if intended_ns is None else max(0, (t0 - intended_ns) // 1000)
        new = self.sock is None
        # status, body bytes received, connect ns, first-byte ns: kept when a failure interrupts
        state = [0, 0, -1, -1]
        try:
            if new:
                self._connect()
                state[2] = time.perf_counter_ns() - t0
            self._exchange(obj, state, t0)
            error = "" if state[0] == 200 else f"http-{state[0]}"
        except _Failure as f:
            error = f.error
            self.close()
        except OSError as e:
            error = classify(e)
            self.close()
        latency = (time.perf_counter_ns() - t0) // 1000
        ok = 1 if not error else 0
        connect = state[2] // 1000 if state[2] >= 0 else -1
        ttfb = state[3] // 1000 if state[3] >= 0 else -1
        return Result(start, latency, obj.name, obj.size, state[1], state[0], ok, error, 1 if new else 0,
                      queue, connect, ttfb)

    def _exchange(self, obj: WorkloadObject, state: list[int], t0: int) -> None:
        sock = self.sock
        assert sock is not None
        self.used += 1
        last = self.used >= self.per_connection
        sock.sendall(self._request_bytes(obj.path, last))

        buf, view = self.buf, self.view
        got = 0
        while True:
            n = sock.recv_into(view[got:MAX_HEADER])
            if n == 0:
                raise _Failure("other:closed-before-response" if got == 0 else "other:closed-in-headers")
            if got == 0:
                state[3] = time.perf_counter_ns() - t0
            got += n
            end = buf.find(b"\r\n\r\n", 0, got)
            if end >= 0:
                break
            if got >= MAX_HEADER:
                raise _Failure("other:header-too-large")
        status, length, server_closes = self._parse_head(bytes(view[:end]))
        state[0] = status
        body_start = end + 4
        if length is None:
            raise _Failure("other:no-content-length")

        # Body: the bytes after the header in the first read, then recv_into the whole buffer.
        expected = None
        windows: list[tuple[int, int]] = []
        if status == 200:
            expected = expected_bytes(obj.name, obj.size)
            if not self.full:
                windows = sample_windows(obj.size, self.rng)
        wrong = False
        first = min(got - body_start, length)
        if got - body_start > length:
            server_closes = True  # unexpected extra bytes: the stream is out of sync
        off = 0
        if first:
            wrong |= not self._check(expected, windows, view[body_start:body_start + first], 0)
            off = first
        state[1] = off
        while off < length:
            n = sock.recv_into(view, min(BUFFER, length - off))
            if n == 0:
                raise _Failure("short-body")
            if expected is not None and not wrong:
                wrong = not self._check(expected, windows, view[:n], off)
            off += n
            state[1] = off

        if server_closes or self.used >= self.per_connection:
            self.close()
        if status == 200:
            if length < obj.size:
                raise _Failure("short-body")
            if wrong or length != obj.size:
                raise _Failure("wrong-bytes")

    def _check(self, expected: bytes | None, windows: list[tuple[int, int]], chunk: memoryview,
               off: int) -> bool:
        if expected is None:
            return True
        n = len(chunk)
        if off + n > len(expected):
            return False
        if self.full:
            return expected.startswith(chunk, off)
        for ws, we in windows:
            lo, hi = max(ws, off), min(we, off + n)
            if lo < hi and not expected.startswith(chunk[lo - off:hi - off], lo):
                return False
        return True

    @staticmethod
    def _parse_head(head: bytes) -> tuple[int, int | None, bool]:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise _Failure("other:bad-status-line")
        status = int(parts[1])
        length: int | None = None
        closes = parts[0] == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                v = value.strip()
                if not v.isdigit():
                    raise _Failure("other:bad-content-length")
                length = int(v)
            elif key == b"transfer-encoding":
                raise _Failure("other:chunked")
            elif key == b"connection":
                tokens = value.strip().lower()
                if tokens == b"close":
                    closes = True
                elif tokens == b"keep-alive":
                    closes = False
        return status, length, closes
