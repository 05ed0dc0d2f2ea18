"""The switch's SYN cookie and front-end bucket hash (docs/miresga-datapath.md), in Python.

The switch pipeline `miresga` (system/switch/bpf/miresga.c, p4src/miresga.p4) computes the same
values; system/switch/tests/test_miresga_cookie.py checks the eBPF program against this module.

    h      = CRC32(client_ip[4] | client_port[2] | vip[4] | vip_port[2] | secret[4])  big-endian
    cookie = (h & 0xFFFFFF80) | (mss_idx << 5) | (sack_ok << 4) | wscale_code

CRC32 is zlib's (IEEE 802.3, reflected, init and final xor 0xFFFFFFFF).
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass

MSS_TABLE = (536, 1220, 1440, 1460)
SWITCH_MSS = 1460          # the MSS the switch announces in its SYN-ACK
SWITCH_WSCALE = 7          # the window-scale shift the switch announces (back-ends must match)
SWITCH_WINDOW = 65535      # the SYN-ACK's window field (never scaled)
NO_WSCALE = 15             # wscale_code when the client sent no window-scale option
MAX_WSCALE = 14            # RFC 7323: larger shifts are treated as 14
HASH_MASK = 0xFFFFFF80
FRONTEND_BUCKETS = 256     # N of frontend_bucket: CRC32(client_ip | client_port) mod N

Address = int | str | ipaddress.IPv4Address


def _ip(addr: Address) -> int:
    return int(ipaddress.IPv4Address(addr)) if not isinstance(addr, int) else addr


def _check(what: str, value: int, bits: int) -> int:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{what}={value} does not fit in {bits} bits")
    return value


def crc32_endpoint(client_ip: Address, client_port: int) -> int:
    """CRC32(client_ip | client_port), the front-end bucket hash before `mod N`."""
    data = _check("client_ip", _ip(client_ip), 32).to_bytes(4, "big") + \
        _check("client_port", client_port, 16).to_bytes(2, "big")
    return zlib.crc32(data)


def frontend_bucket(client_ip: Address, client_port: int, buckets: int = FRONTEND_BUCKETS) -> int:
    """The frontend_bucket index the switch uses for a client endpoint."""
    return crc32_endpoint(client_ip, client_port) % buckets


def cookie_hash(client_ip: Address, client_port: int, vip: Address, vip_port: int, secret: int) -> int:
    data = (_check("client_ip", _ip(client_ip), 32).to_bytes(4, "big")
            + _check("client_port", client_port, 16).to_bytes(2, "big")
            + _check("vip", _ip(vip), 32).to_bytes(4, "big")
            + _check("vip_port", vip_port, 16).to_bytes(2, "big")
            + _check("secret", secret, 32).to_bytes(4, "big"))
    return zlib.crc32(data)


def mss_index(mss: int | None) -> int:
    """Index of the largest MSS_TABLE value <= mss; 0 (536) without an MSS option or below 536."""
    if mss is None:
        return 0
    idx = 0
    for i, v in enumerate(MSS_TABLE):
        if v <= mss:
            idx = i
    return idx


def wscale_code(wscale: int | None) -> int:
    """The client's shift clamped to 0..14, or 15 (NO_WSCALE) when it sent none."""
    return NO_WSCALE if wscale is None else min(wscale, MAX_WSCALE)


@dataclass(frozen=True)
class SynOptions:
    """What the cookie carries of the client's SYN options."""

    mss: int | None = None        # the client's MSS option value
    sack_ok: bool = False
    wscale: int | None = None     # the client's window-scale shift

    @classmethod
    def parse(cls, options: bytes) -> SynOptions:
        """Parse raw TCP option bytes as the switch does (p4src/include/miresga_parser.p4, the eBPF
        twin's syn_parse_options): 32-bit words, at most 10, each one of the layouts the common
        stacks use (listed in miresga_parser.p4); the walk ends at the area's end or at the first word it does not
        recognise, keeping what it found. The MSS word counts as word 0 only; a second window
        scale word ends the walk; the two words after a timestamps word are its values."""
        mss = wscale = None
        sack = False
        words = [int.from_bytes(options[i:i + 4], "big") for i in range(0, min(len(options), 40) - 3, 4)]
        i = 0
        while i < len(words):
            w = words[i]
            if i == 0 and w >> 16 == 0x0204:
                mss = w & 0xFFFF
            elif w >> 8 == 0x010303 and wscale is None:
                wscale = w & 0xFF
            elif w in (0x01010402, 0x04020000):
                sack = True
                if w == 0x04020000:
                    break
            elif w == 0x0402080A:
                sack = True
                i += 2
            elif w == 0x0101080A:
                i += 2
            elif w != 0x01010101:
                break
            i += 1
        return cls(mss=mss, sack_ok=sack, wscale=wscale)

    def low_bits(self) -> int:
        return (mss_index(self.mss) << 5) | (int(self.sack_ok) << 4) | wscale_code(self.wscale)


def encode(client_ip: Address, client_port: int, vip: Address, vip_port: int, secret: int,
           opts: SynOptions) -> int:
    """The cookie (the switch's ISN `s`) for a client SYN."""
    return (cookie_hash(client_ip, client_port, vip, vip_port, secret) & HASH_MASK) | opts.low_bits()


@dataclass(frozen=True)
class Decoded:
    mss: int                 # MSS_TABLE[mss_idx]
    mss_idx: int
    sack_ok: bool
    wscale: int | None       # the client's shift, None when it sent no window-scale option


def decode_bits(cookie: int) -> Decoded:
    """The low 7 bits of a cookie (trust them only after `check`)."""
    idx, sack, ws = (cookie >> 5) & 3, (cookie >> 4) & 1, cookie & 0xF
    return Decoded(mss=MSS_TABLE[idx], mss_idx=idx, sack_ok=bool(sack),
                   wscale=None if ws == NO_WSCALE else ws)


def check(cookie: int, client_ip: Address, client_port: int, vip: Address, vip_port: int,
          secrets: tuple[int, ...] | list[int]) -> Decoded | None:
    """Validate a cookie against the current and previous secrets; its decoded bits, or None."""
    for secret in secrets:
        h = cookie_hash(client_ip, client_port, vip, vip_port, secret) & HASH_MASK
        if cookie & HASH_MASK == h:
            return decode_bits(cookie)
    return None


def synack_options(opts: SynOptions) -> bytes:
    """The 12 option bytes of the switch's SYN-ACK (fixed layout of the contract)."""
    return (bytes([2, 4]) + SWITCH_MSS.to_bytes(2, "big")
            + (bytes([4, 2]) if opts.sack_ok else bytes([1, 1]))
            + bytes([1])
            + (bytes([3, 3, SWITCH_WSCALE]) if opts.wscale is not None else bytes([1, 1, 1]))
            + bytes([1, 1]))
