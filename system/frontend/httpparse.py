"""Bounded, incremental parsing of HTTP/1.x request heads (and the first response segment's head).

`RequestParser.feed(bytes)` accumulates a request that may arrive split over several segments and
returns None until the head is complete, then a `Request`; it raises `HttpError(status)` for a
malformed request (400), a head over the limit (431), an unsupported framing (501) or an unsupported
version (505). Only what routing needs is extracted: method, target, Host, Content-Length,
Connection. `parse_response_head` reads the Content-Length of a response from its first segment.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD = 8192
TOKEN_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class HttpError(ValueError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    host: str | None
    content_length: int
    keep_alive: bool
    head_len: int          # bytes of the request line and headers, blank line included

    @property
    def total_len(self) -> int:
        return self.head_len + self.content_length


def _headers(lines: list[bytes], status_on_error: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in lines:
        if not line:
            continue
        if line[0] in b" \t":
            raise HttpError(status_on_error, "obsolete header line folding")
        name, sep, value = line.partition(b":")
        if not sep or not name or any(c not in TOKEN_CHARS for c in name):
            raise HttpError(status_on_error, f"malformed header line {line[:40]!r}")
        try:
            text = value.strip(b" \t").decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise HttpError(status_on_error, "undecodable header") from None
        if any(ord(c) < 0x20 and c != "\t" for c in text):
            raise HttpError(status_on_error, "control character in a header value")
        out.setdefault(name.decode().lower(), []).append(text)
    return out


def _content_length(headers: dict[str, list[str]], status_on_error: int) -> int:
    values = headers.get("content-length", [])
    if not values:
        return 0
    parts = {v.strip() for value in values for v in value.split(",")}
    if len(parts) != 1:
        raise HttpError(status_on_error, "conflicting Content-Length values")
    (v,) = parts
    if not v.isdigit() or len(v) > 15:
        raise HttpError(status_on_error, f"invalid Content-Length {v!r}")
    return int(v)


def parse_request_head(data: bytes, limit: int = MAX_HEAD) -> Request | None:
    """The request whose head starts `data`, None if the head is not complete yet."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) >= limit:
            raise HttpError(431, f"request head exceeds {limit} bytes")
        first = data.split(b"\r\n", 1)[0]
        if b"\r\n" in data or len(first) > 16:
            _check_request_line_prefix(first, complete=b"\r\n" in data)
        return None
    head_len = end + 4
    if head_len > limit:
        raise HttpError(431, f"request head of {head_len} bytes exceeds {limit}")
    lines = data[:end].split(b"\r\n")
    method, target, version = _check_request_line_prefix(lines[0], complete=True)
    headers = _headers(lines[1:], 400)
    if "transfer-encoding" in headers:
        raise HttpError(501, "Transfer-Encoding in requests is not supported")
    hosts = headers.get("host", [])
    if len(hosts) > 1:
        raise HttpError(400, "more than one Host header")
    if version == "HTTP/1.1" and not hosts:
        raise HttpError(400, "HTTP/1.1 request without Host")
    conn = ",".join(headers.get("connection", [])).lower()
    tokens = {t.strip() for t in conn.split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    return Request(method=method, target=target, version=version, host=hosts[0] if hosts else None,
                   content_length=_content_length(headers, 400), keep_alive=keep_alive, head_len=head_len)


def _check_request_line_prefix(line: bytes, complete: bool) -> tuple[str, str, str]:
    parts = line.split(b" ")
    method = parts[0]
    if not method or any(c not in TOKEN_CHARS for c in method):
        raise HttpError(400, "malformed request method")
    if not complete:
        return "", "", ""
    if len(parts) != 3:
        raise HttpError(400, "request line is not METHOD SP TARGET SP VERSION")
    target, version = parts[1], parts[2]
    if not target or any(c <= 0x20 or c >= 0x7F for c in target):
        raise HttpError(400, "malformed request target")
    if not (target.startswith(b"/") or target == b"*"):
        if target.startswith((b"http://", b"https://")):
            raise HttpError(400, "absolute-form targets are for proxies")
        raise HttpError(400, "request target must start with /")
    if not version.startswith(b"HTTP/1.") or version not in (b"HTTP/1.0", b"HTTP/1.1"):
        if version.startswith(b"HTTP/"):
            raise HttpError(505, f"HTTP version {version.decode('latin-1')} not supported")
        raise HttpError(400, "malformed HTTP version")
    return method.decode(), target.decode(), version.decode()


class RequestParser:
    """Accumulates the bytes of one request until its head is complete (bounded by `limit`)."""

    def __init__(self, limit: int = MAX_HEAD) -> None:
        self.limit = limit
        self.buf = bytearray()

    def feed(self, data: bytes) -> Request | None:
        self.buf += data
        return parse_request_head(bytes(self.buf[: self.limit + 4]), self.limit)

    def reset(self) -> None:
        self.buf.clear()


@dataclass(frozen=True)
class ResponseHead:
    status: int
    content_length: int | None     # None: absent (chunked or close-delimited) or head not complete


def parse_response_head(data: bytes) -> ResponseHead | None:
    """The status and Content-Length of a response starting `data`; None if it is not a response."""
    if not data.startswith(b"HTTP/1."):
        return None
    end = data.find(b"\r\n\r\n")
    head = data[: end if end >= 0 else len(data)]
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    status = int(parts[1])
    if end < 0:
        return ResponseHead(status=status, content_length=None)
    try:
        headers = _headers(lines[1:], 502)
        if "transfer-encoding" in headers:
            return ResponseHead(status=status, content_length=None)
        if "content-length" not in headers:
            return ResponseHead(status=status, content_length=None)
        return ResponseHead(status=status, content_length=_content_length(headers, 502))
    except HttpError:
        return ResponseHead(status=status, content_length=None)
