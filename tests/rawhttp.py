"""A raw-bytes HTTP/1.x client for conformance tests: sends exactly the given bytes (each part as its
own TCP segment) and reads the answers back as (status, body) pairs.

Not a test module: pytest imports it from the tests' directory. No third-party HTTP client is
used on purpose: they normalise what they send (line endings, framing), which is what is tested.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Answer:
    """What came back for one connection: the responses in order (1xx included), and how it ended."""
    responses: tuple[tuple[int, bytes], ...]
    end: str             # "complete" (all expected answers), "closed", "reset", "timeout"

    @property
    def statuses(self) -> tuple[int, ...]:
        return tuple(s for s, _ in self.responses)

    def brief(self) -> str:
        parts = [f"{s} ({len(b)} B)" for s, b in self.responses]
        return ", ".join(parts) + ("" if self.end == "complete" else f" [{self.end}]") if parts else f"[{self.end}]"


@dataclass
class _Reader:
    heads: list[bool]                      # per expected final response: to a HEAD request (no body)
    buf: bytearray = field(default_factory=bytearray)
    out: list[tuple[int, bytes]] = field(default_factory=list)

    def finals(self) -> int:
        return sum(1 for s, _ in self.out if s >= 200)

    def parse(self) -> None:
        """Takes every complete response off the front of the buffer."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else -1
            hdrs: dict[bytes, bytes] = {}
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                hdrs[k.strip().lower()] = v.strip()
            pos = end + 4
            idx = self.finals()
            no_body = (100 <= status < 200 or status in (204, 304)
                       or (status >= 200 and idx < len(self.heads) and self.heads[idx]))
            if no_body:
                body = b""
            elif hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
                got = _dechunk(bytes(self.buf[pos:]))
                if got is None:
                    return
                body, used = got
                pos += used
            elif b"content-length" in hdrs:
                n = int(hdrs[b"content-length"])
                if len(self.buf) - pos < n:
                    return
                body = bytes(self.buf[pos:pos + n])
                pos += n
            else:
                return          # close-delimited: taken at the end of the connection
            self.out.append((status, body))
            del self.buf[:pos]


def _dechunk(data: bytes) -> tuple[bytes, int] | None:
    body, pos = bytearray(), 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(data[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            end = data.find(b"\r\n\r\n", pos - 2)
            return (bytes(body), end + 4) if end >= 0 else None
        if len(data) < pos + size + 2:
            return None
        body += data[pos:pos + size]
        pos += size + 2


def exchange(addr: tuple[str, int], steps: list[bytes | int], heads: list[bool], *,
             timeout: float = 5.0) -> Answer:
    """Connects and plays `steps`: bytes are sent at once as their own segment (TCP_NODELAY, one
    send each); an int n waits until n responses (1xx included) came back. Then reads until one
    final response per entry of `heads` (True: to a HEAD request, no body), the peer's close or
    reset, or `timeout` seconds from the start."""
    rd = _Reader(heads=heads)
    deadline = time.monotonic() + timeout
    s = socket.create_connection(addr, timeout=timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for step in steps:
            if isinstance(step, int):
                end = _read(s, rd, deadline, until=lambda n=step: len(rd.out) >= n)
                if end != "complete":
                    return Answer(tuple(rd.out), end)
            else:
                try:
                    s.sendall(step)
                except (BrokenPipeError, ConnectionResetError):
                    break           # answered and closed early (e.g. a 431 before the whole head)
        end = _read(s, rd, deadline, until=lambda: rd.finals() >= len(heads))
        return Answer(tuple(rd.out), end)
    finally:
        s.close()


def _read(s: socket.socket, rd: _Reader, deadline: float, until) -> str:
    while not until():
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except TimeoutError:
            return "timeout"
        except ConnectionResetError:
            return "reset"
        if not data:
            if rd.buf and rd.buf.find(b"\r\n\r\n") >= 0:        # a close-delimited body
                head, _, body = bytes(rd.buf).partition(b"\r\n\r\n")
                parts = head.split(b" ", 2)
                rd.out.append((int(parts[1]) if parts[1].isdigit() else -1, body))
                rd.buf.clear()
            return "complete" if until() else "closed"
        rd.buf += data
        rd.parse()
    return "complete"
