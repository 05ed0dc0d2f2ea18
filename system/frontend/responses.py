"""HTTP error responses the front-end sends itself, speaking for the VIP (always with a close)."""

from __future__ import annotations

REASONS = {400: "Bad Request", 404: "Not Found", 408: "Request Timeout", 431: "Request Header Fields Too Large",
           501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported"}


def error_response(status: int, detail: str = "", head: bool = False) -> bytes:
    """The answer's bytes; `head`: to a HEAD request, so the body is announced but not sent."""
    reason = REASONS.get(status, "Error")
    body = f"{status} {reason}\n{detail}\n".encode() if detail else f"{status} {reason}\n".encode()
    text = (f"HTTP/1.1 {status} {reason}\r\n"
            "Server: miresga-frontend\r\n"
            "Content-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return text.encode() + (b"" if head else body)
