"""Bounded, incremental parsing of HTTP/1.x request heads and chunked bodies (and the first response
segment's head).

`RequestParser.feed(bytes)` accumulates a request that may arrive split over any number of segments
and returns None until the head is complete, then a `Request`; it raises `HttpError(status)` for a
malformed request (400), a head over the limit (431) or an unsupported version (505). What routing
and framing need is extracted: method, target (its path for the rules, and the host of an
absolute-form target), Host, the body's framing (Content-Length or chunked), Connection.
`ChunkScanner` finds the end of a chunked body fed in pieces. `parse_response_head` reads the
Content-Length of a response from its first segment.

What is accepted, as real clients send it (RFC 9112): lines ended by CRLF or a bare LF (a CR
anywhere else is refused), empty lines before the request line, origin-form, absolute-form
(`http://host/path`: the host comes from the target, RFC 9112 3.2.2) and `*` targets, HTTP/1.0 with or
without Host. What is refused with 400: obsolete line folding, a header name that is not a token,
control characters in values, Content-Length that is not 1-15 ASCII digits, more than one
Content-Length (duplicated or conflicting: request smuggling), Content-Length together with
Transfer-Encoding, a Transfer-Encoding whose last coding is not chunked, more than one Host.
Numbers are ASCII digits only (`str.isdigit` accepts '²', which `int()` then refuses).

The path the rules see (`Request.path`) is normalised as the back-end (nginx) resolves it, so that a
prefix rule cannot be passed by spelling: percent-escapes decoded (`/%61pi` is `/api`; `%3F` and
`%23` stay escaped: they are not query or fragment delimiters), repeated slashes merged (nginx's
`merge_slashes`), dot segments removed (RFC 3986 5.2.4; `..` above the root stays at the root); the
query is kept as sent. A malformed escape (`%zz`, `%4`) or an escaped NUL is refused with 400, as
nginx refuses them. The target is forwarded to the back-end unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD = 16384       # the stated bound of a request head (request line + headers + blank line)
MAX_CHUNK_LINE = 4096  # a chunk-size line (with extensions) or a trailer line
TOKEN_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
_DIGITS = re.compile(r"[0-9]{1,15}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_ABSOLUTE = re.compile(rb"(?i)https?://([^/?#@]*)([^#]*)")
_LEADING_EMPTY = re.compile(rb"(?:\r?\n)*")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})?")
_SLASHES = re.compile(r"/{2,}")


class HttpError(ValueError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Request:
    method: str
    target: str            # as sent (forwarded unchanged)
    path: str              # the origin-form path (and query) the rules match, normalised (normalise_path):
                           # the target's path for absolute-form
    version: str
    host: str | None       # the absolute-form target's authority, else the Host header
    content_length: int    # 0 when chunked
    chunked: bool          # the body is chunked: its end is found by a ChunkScanner
    keep_alive: bool
    expect_continue: bool
    head_len: int          # bytes of the request line and headers, blank line (and leading empty lines) included

    @property
    def total_len(self) -> int:
        """Head and body (a chunked body's length is not known from the head: 0 for it)."""
        return self.head_len + self.content_length


def normalise_path(path: str) -> str:
    """The path (and query) of an origin-form target as the rules match it: see the module's
    docstring. `*` and other paths not starting with / are returned as they are."""
    if not path.startswith("/"):
        return path
    p, sep, query = path.partition("?")

    def unescape(m: re.Match[str]) -> str:
        if m.group(1) is None:
            raise HttpError(400, "malformed percent-encoding in the path")
        c = chr(int(m.group(1), 16))
        if c == "\0":
            raise HttpError(400, "NUL in the path")
        return m.group(0).upper() if c in "?#" else c

    p = _SLASHES.sub("/", _ESCAPE.sub(unescape, p))
    segs = p.split("/")[1:]
    out: list[str] = []
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        if seg in (".", ".."):
            if seg == ".." and out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out) + sep + query


def _is_digits(v: str) -> bool:
    return _DIGITS.fullmatch(v) is not None


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
        text = value.strip(b" \t").decode("latin-1")
        if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in text):
            raise HttpError(status_on_error, "control character in a header value")
        out.setdefault(name.decode("ascii").lower(), []).append(text)
    return out


def _content_length(headers: dict[str, list[str]], status_on_error: int, strict: bool = True) -> int:
    """The one Content-Length; with `strict` (requests) a repeated one, even with the same value, is
    refused, as a list of values is (RFC 9110 8.6 allows merging identical values; a smuggling
    defence is worth more than accepting what no honest client sends)."""
    values = headers.get("content-length", [])
    if not values:
        return 0
    parts = [v.strip() for value in values for v in value.split(",")]
    if len(parts) != 1 and (strict or len(set(parts)) != 1):
        raise HttpError(status_on_error, "more than one Content-Length")
    v = parts[0]
    if not _is_digits(v):
        raise HttpError(status_on_error, f"invalid Content-Length {v[:20]!r}")
    return int(v)


def _chunked(headers: dict[str, list[str]]) -> bool:
    values = headers.get("transfer-encoding")
    if not values:
        return False
    codings = [c.strip().lower() for v in values for c in v.split(",") if c.strip()]
    if not codings or codings[-1] != "chunked" or codings.count("chunked") != 1:
        raise HttpError(400, "Transfer-Encoding whose final coding is not chunked (once)")
    if "content-length" in headers:
        raise HttpError(400, "both Transfer-Encoding and Content-Length")
    return True


def head_end(data: bytes) -> int:
    """Bytes of the head at the start of `data` (through its blank line), -1 if not complete."""
    start = _LEADING_EMPTY.match(data).end()
    m = _HEAD_END.search(data, start)
    return -1 if m is None else m.end()


def request_line_valid(data: bytes) -> bool:
    """Does `data` start (after leading empty lines) with a whole, valid request line? Such a
    buffer starts a request stream, even if a later line of its head is refused."""
    start = _LEADING_EMPTY.match(data).end()
    m = _LINE_END.search(data, start)
    if m is None:
        return False
    try:
        _check_request_line(data[start:m.start()], complete=True)
    except HttpError:
        return False
    return True


def parse_request_head(data: bytes, limit: int = MAX_HEAD) -> Request | None:
    """The request whose head starts `data`, None if the head is not complete yet."""
    start = _LEADING_EMPTY.match(data).end()
    m = _HEAD_END.search(data, start)
    if m is None:
        if len(data) >= limit:
            raise HttpError(431, f"request head exceeds {limit} bytes")
        first = _LINE_END.split(data[start:], 1)
        if len(first) > 1 or len(first[0]) > 16:
            _check_request_line(first[0], complete=len(first) > 1)
        return None
    head_len = m.end()
    if head_len > limit:
        raise HttpError(431, f"request head of {head_len} bytes exceeds {limit}")
    lines = _LINE_END.split(data[start:m.start()])
    if any(b"\r" in line for line in lines):
        raise HttpError(400, "CR not followed by LF")
    method, target, version = _check_request_line(lines[0], complete=True)
    headers = _headers(lines[1:], 400)
    hosts = headers.get("host", [])
    if len(hosts) > 1:
        raise HttpError(400, "more than one Host header")
    if version == "HTTP/1.1" and not hosts:
        raise HttpError(400, "HTTP/1.1 request without Host")
    host = hosts[0] if hosts else None
    path = target
    absolute = _ABSOLUTE.fullmatch(target.encode("ascii"))
    if absolute is not None:
        host = absolute.group(1).decode("ascii") or host
        path = absolute.group(2).decode("ascii") or "/"
        if not path.startswith(("/", "?")):
            raise HttpError(400, "malformed absolute-form target")
        if path.startswith("?"):
            path = "/" + path
    path = normalise_path(path)
    chunked = _chunked(headers)
    conn = ",".join(headers.get("connection", [])).lower()
    tokens = {t.strip() for t in conn.split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    expect = ",".join(headers.get("expect", [])).strip().lower() == "100-continue"
    return Request(method=method, target=target, path=path, version=version, host=host,
                   content_length=_content_length(headers, 400), chunked=chunked, keep_alive=keep_alive,
                   expect_continue=expect, head_len=head_len)


def _check_request_line(line: bytes, complete: bool) -> tuple[str, str, str]:
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
    if not (target.startswith(b"/") or (target == b"*" and method == b"OPTIONS")
            or _ABSOLUTE.fullmatch(target)):
        raise HttpError(400, "request target is neither origin-form nor absolute-form")
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        if re.fullmatch(rb"HTTP/[0-9]\.[0-9]", version):
            raise HttpError(505, f"HTTP version {version.decode('latin-1')} not supported")
        raise HttpError(400, "malformed HTTP version")
    return method.decode("ascii"), target.decode("ascii"), version.decode("ascii")


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


class ChunkScanner:
    """Finds the end of a chunked body (RFC 9112 7.1) fed in pieces, in order, without keeping it:
    `feed(data)` returns None while the body goes on (all of `data` is body), else how many bytes
    of `data` end it (the rest is the next request). Bare LF line ends are accepted as in heads;
    malformed framing raises HttpError(400)."""

    def __init__(self) -> None:
        self.state = "size"          # size, data, data_end, trailer
        self.line = bytearray()      # the current size or trailer line
        self.left = 0                # data bytes left in the current chunk
        self.done = False

    def feed(self, data: bytes) -> int | None:
        i, n = 0, len(data)
        while i < n:
            if self.state == "data":
                take = min(self.left, n - i)
                self.left -= take
                i += take
                if self.left == 0:
                    self.state = "data_end"
                continue
            nl = data.find(b"\n", i)
            piece = data[i:] if nl < 0 else data[i:nl]
            self.line += piece
            if len(self.line) > MAX_CHUNK_LINE:
                raise HttpError(400, "chunk line too long")
            if nl < 0:
                return None
            i = nl + 1
            line = bytes(self.line[:-1] if self.line.endswith(b"\r") else self.line)
            self.line.clear()
            if b"\r" in line:
                raise HttpError(400, "CR not followed by LF in chunked framing")
            if self.state == "data_end":
                if line:
                    raise HttpError(400, "chunk data longer than its size")
                self.state = "size"
            elif self.state == "size":
                size = line.split(b";", 1)[0].strip(b" \t")
                if not _HEX.fullmatch(size):
                    raise HttpError(400, f"malformed chunk size {size[:20]!r}")
                self.left = int(size, 16)
                self.state = "data" if self.left else "trailer"
            elif not line:            # trailer section ends with an empty line
                self.done = True
                return i
        return None


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
    if len(parts) < 2 or not re.fullmatch(rb"[0-9]{3}", parts[1]):
        return None
    status = int(parts[1])
    if end < 0:
        return ResponseHead(status=status, content_length=None)
    try:
        headers = _headers(lines[1:], 502)
        if "transfer-encoding" in headers or "content-length" not in headers:
            return ResponseHead(status=status, content_length=None)
        return ResponseHead(status=status, content_length=_content_length(headers, 502, strict=False))
    except HttpError:
        return ResponseHead(status=status, content_length=None)
