"""Validation of the switch's SYN cookie (docs/miresga-datapath.md, "The SYN cookie").

A client's first data segment acknowledges `cookie + 1`. The front-end recomputes the cookie's hash
bits for the client endpoint with the current and the previous secret; on a match the low 7 bits
(MSS class, SACK-permitted, window scale) are trusted and decoded. `system.switch.cookie` (the
switch's encoder) is used when it is importable; the formula below is the contract's, and a test
checks that both agree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from system.switch import cookie as switch_cookie
from system.switch.cookie import HASH_MASK, mss_index

__all__ = ["HASH_MASK", "MSS_TABLE", "WSCALE_NONE", "CookieInfo", "Secrets", "cookie_hash", "encode", "mss_index"]

MSS_TABLE = tuple(switch_cookie.MSS_TABLE)
WSCALE_NONE = switch_cookie.NO_WSCALE


def cookie_hash(client_ip: bytes, client_port: int, vip: bytes, vip_port: int, secret: int) -> int:
    """The switch's cookie hash (system/switch/cookie.py) for addresses as packed bytes."""
    return switch_cookie.cookie_hash(int.from_bytes(client_ip, "big"), client_port,
                                     int.from_bytes(vip, "big"), vip_port, secret)


def encode(client_ip: bytes, client_port: int, vip: bytes, vip_port: int, secret: int,
           mss_idx: int, sack_ok: bool, wscale_code: int) -> int:
    """The switch's ISN for this endpoint (used by tests to play the switch)."""
    h = cookie_hash(client_ip, client_port, vip, vip_port, secret)
    return (h & HASH_MASK) | (mss_idx << 5) | (int(sack_ok) << 4) | wscale_code


@dataclass(frozen=True)
class CookieInfo:
    """What the cookie's low bits say about the client's SYN."""

    s: int                 # the switch's ISN
    mss: int               # MSS_TABLE[mss_idx]
    sack_ok: bool
    wscale: int | None     # the client's shift, None when it sent no window scale option

    @classmethod
    def decode(cls, cookie: int) -> CookieInfo:
        code = cookie & 0xF
        return cls(s=cookie, mss=MSS_TABLE[(cookie >> 5) & 3], sack_ok=bool(cookie & 0x10),
                   wscale=None if code == WSCALE_NONE else min(code, 14))


class Secrets:
    """The current and previous cookie secrets (thread-safe; rotated by the control plane)."""

    def __init__(self, current: int, previous: int | None = None) -> None:
        self._lock = threading.Lock()
        self._current, self._previous = current, previous

    def set(self, current: int, previous: int | None) -> None:
        with self._lock:
            self._current, self._previous = current, previous

    def rotate(self, new: int) -> None:
        with self._lock:
            self._current, self._previous = new, self._current

    def values(self) -> tuple[int, ...]:
        with self._lock:
            return (self._current,) if self._previous is None else (self._current, self._previous)


def validate(ack: int, client_ip: bytes, client_port: int, vip: bytes, vip_port: int,
             secrets: Secrets) -> CookieInfo | None:
    """The decoded cookie if `ack - 1` is the cookie of this endpoint under a valid secret, else None."""
    cookie = (ack - 1) & 0xFFFFFFFF
    for secret in secrets.values():
        if (cookie_hash(client_ip, client_port, vip, vip_port, secret) & HASH_MASK) == (cookie & HASH_MASK):
            return CookieInfo.decode(cookie)
    return None
