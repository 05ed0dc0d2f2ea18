"""Validation of the switch's SYN cookie (system/switch/README.md, "The SYN cookie").

A client's first data segment acknowledges `cookie + 1`. The cookie is a keyed MAC (HalfSipHash-2-4)
of the client and VIP endpoints, a time slot and the cookie's low 7 bits (MSS class, SACK-permitted,
window scale); bit 7 is the slot's parity. The front-end knows the key of the current slot and of
the previous one (the control plane's `cookie_secrets`); the parity picks which one to recompute.
On a match the low bits are trusted and decoded. `system.switch.cookie` is the one reference.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from system.switch import cookie as switch_cookie
from system.switch.cookie import MAC_MASK, mss_index

__all__ = ["FIRST_SLOT", "MAC_MASK", "MSS_TABLE", "WSCALE_NONE", "CookieInfo", "Secrets", "encode",
           "mss_index", "validate"]

MSS_TABLE = tuple(switch_cookie.MSS_TABLE)
WSCALE_NONE = switch_cookie.NO_WSCALE
FIRST_SLOT = 1            # the control plane's first slot (system/controlplane/controller.py)


def encode(client_ip: bytes, client_port: int, vip: bytes, vip_port: int, key: int,
           mss_idx: int, sack_ok: bool, wscale_code: int, slot: int = FIRST_SLOT) -> int:
    """The switch's ISN for this endpoint under `key` in `slot` (used by tests to play the switch)."""
    low = (mss_idx << 5) | (int(sack_ok) << 4) | wscale_code
    return switch_cookie.make(int.from_bytes(client_ip, "big"), client_port, int.from_bytes(vip, "big"),
                              vip_port, key, slot, low)


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
    """The cookie keys of the current slot and of the previous one (thread-safe; rotated by the
    control plane: every rotation advances the slot by one and draws a new key)."""

    def __init__(self, current: int, previous: int | None = None, slot: int = FIRST_SLOT) -> None:
        self._lock = threading.Lock()
        self._current, self._previous, self._slot = current, previous, slot

    def set(self, current: int, previous: int | None, slot: int = FIRST_SLOT) -> None:
        with self._lock:
            self._current, self._previous, self._slot = current, previous, slot

    def rotate(self, new: int) -> None:
        with self._lock:
            self._current, self._previous, self._slot = new, self._current, self._slot + 1

    @property
    def slot(self) -> int:
        with self._lock:
            return self._slot

    def values(self) -> tuple[tuple[int, int], ...]:
        """The accepted (key, slot) pairs: the current slot's, then the previous one's."""
        with self._lock:
            cur = (self._current, self._slot)
            return (cur,) if self._previous is None else (cur, (self._previous, self._slot - 1))


def validate(ack: int, client_ip: bytes, client_port: int, vip: bytes, vip_port: int,
             secrets: Secrets) -> CookieInfo | None:
    """The decoded cookie if `ack - 1` is the cookie of this endpoint in an accepted slot, else None."""
    cookie = (ack - 1) & 0xFFFFFFFF
    if switch_cookie.check(cookie, int.from_bytes(client_ip, "big"), client_port,
                           int.from_bytes(vip, "big"), vip_port, secrets.values()) is None:
        return None
    return CookieInfo.decode(cookie)
