"""The switch's SYN cookie and front-end bucket hash (docs/miresga-datapath.md), in Python.

The one reference of the keyed SYN cookie (issue 10; format in system/switch/README.md, "The SYN
cookie"). The switch pipelines (system/switch/bpf/miresga_synack.h, p4src/include/synack.p4) compute
it, the front-end (system/frontend/syncookie.py) and the switch-only slow path check it;
system/switch/tests/ check the eBPF program against this module bit for bit.

    cookie = (MAC & 0xFFFFFF00) | (slot & 1) << 7 | mss_idx << 5 | sack_ok << 4 | wscale_code
    MAC    = HalfSipHash-2-4(key, LE32(m0) | LE32(m1) | LE32(m2) | LE32(m3))      (32-bit output)
      m0 = client_ip, m1 = vip (IPv4 addresses as 32-bit numbers: 198.18.0.1 = 0xC6120001)
      m2 = client_port << 16 | vip_port, m3 = (slot mod 2^24) << 8 | low7
    key: 64 bits, k0 = key & 0xFFFFFFFF, k1 = key >> 32 (the reference's k[0..7] little-endian)

The MAC covers every bit of the cookie but the slot parity, and the parity only picks which of the
two accepted slots the checker recomputes: changing any bit, or the endpoint, fails the check.
The bucket hash stays zlib's CRC32 (IEEE 802.3): it is load spreading, not authentication.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

MSS_TABLE = (536, 1220, 1440, 1460)
SWITCH_MSS = 1460          # the MSS the switch announces in its SYN-ACK
SWITCH_WSCALE = 7          # the window-scale shift the switch announces (back-ends must match)
SWITCH_WINDOW = 65535      # the SYN-ACK's window field (never scaled)
NO_WSCALE = 15             # wscale_code when the client sent no window-scale option
MAX_WSCALE = 14            # RFC 7323: larger shifts are treated as 14
MAC_MASK = 0xFFFFFF00      # the cookie bits that are the MAC's top 24 bits
SLOT_BIT = 0x80            # the slot's parity
LOW_MASK = 0x7F            # mss_idx << 5 | sack_ok << 4 | wscale_code
KEY_BITS = 64
SLOT_BITS = 24             # the slot counter as the PRF reads it (m3); wraps after 2^24 slots
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


_M32 = 0xFFFFFFFF


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (32 - b))) & _M32


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _M32
    v1 = _rotl(v1, 5) ^ v0
    v0 = _rotl(v0, 16)
    v2 = (v2 + v3) & _M32
    v3 = _rotl(v3, 8) ^ v2
    v0 = (v0 + v3) & _M32
    v3 = _rotl(v3, 7) ^ v0
    v2 = (v2 + v1) & _M32
    v1 = _rotl(v1, 13) ^ v2
    v2 = _rotl(v2, 16)
    return v0, v1, v2, v3


def halfsiphash24(key: bytes, data: bytes) -> int:
    """HalfSipHash-2-4 with a 32-bit output (Aumasson's reference `halfsiphash`, outlen 4), as the
    little-endian integer of its 4 output bytes. `key`: 8 bytes."""
    if len(key) != 8:
        raise ValueError(f"HalfSipHash needs an 8-byte key, got {len(key)} bytes")
    k0, k1 = int.from_bytes(key[:4], "little"), int.from_bytes(key[4:], "little")
    v0, v1, v2, v3 = k0, k1, 0x6C796765 ^ k0, 0x74656462 ^ k1
    tail = len(data) % 4
    blocks = [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data) - tail, 4)]
    blocks.append(((len(data) & 0xFF) << 24) | int.from_bytes(data[len(data) - tail:], "little"))
    for m in blocks:
        v3 ^= m
        v0, v1, v2, v3 = _sipround(*_sipround(v0, v1, v2, v3))
        v0 ^= m
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v1 ^ v3


def prf_words(client_ip: Address, client_port: int, vip: Address, vip_port: int, slot: int,
              low7: int) -> tuple[int, int, int, int]:
    """The PRF's four input words m0..m3 (each hashed as 4 little-endian bytes)."""
    return (_check("client_ip", _ip(client_ip), 32), _check("vip", _ip(vip), 32),
            _check("client_port", client_port, 16) << 16 | _check("vip_port", vip_port, 16),
            (slot % (1 << SLOT_BITS)) << 8 | _check("low bits", low7, 7))


def cookie_mac(client_ip: Address, client_port: int, vip: Address, vip_port: int, key: int, slot: int,
               low7: int) -> int:
    """HalfSipHash-2-4 under `key` of the cookie's input (module docstring)."""
    words = prf_words(client_ip, client_port, vip, vip_port, slot, low7)
    data = b"".join(w.to_bytes(4, "little") for w in words)
    return halfsiphash24(_check("key", key, KEY_BITS).to_bytes(8, "little"), data)


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


def make(client_ip: Address, client_port: int, vip: Address, vip_port: int, key: int, slot: int,
         low7: int) -> int:
    """The cookie for these low bits (module docstring)."""
    mac = cookie_mac(client_ip, client_port, vip, vip_port, key, slot, low7)
    return (mac & MAC_MASK) | (slot & 1) << 7 | low7


def encode(client_ip: Address, client_port: int, vip: Address, vip_port: int, key: int, slot: int,
           opts: SynOptions) -> int:
    """The cookie (the switch's ISN `s`) for a client SYN, under `key` in `slot`."""
    return make(client_ip, client_port, vip, vip_port, key, slot, opts.low_bits())


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
          keys: Iterable[tuple[int, int]]) -> Decoded | None:
    """Validate a cookie against the accepted (key, slot) pairs (the current and the previous slot);
    its decoded bits, or None. Only a pair whose slot parity is the cookie's is recomputed."""
    parity = (cookie >> 7) & 1
    for key, slot in keys:
        if slot & 1 == parity and \
                make(client_ip, client_port, vip, vip_port, key, slot, cookie & LOW_MASK) == cookie:
            return decode_bits(cookie)
    return None


def synack_options(opts: SynOptions) -> bytes:
    """The 12 option bytes of the switch's SYN-ACK (fixed layout of the contract)."""
    return (bytes([2, 4]) + SWITCH_MSS.to_bytes(2, "big")
            + (bytes([4, 2]) if opts.sack_ok else bytes([1, 1]))
            + bytes([1])
            + (bytes([3, 3, SWITCH_WSCALE]) if opts.wscale is not None else bytes([1, 1, 1]))
            + bytes([1, 1]))
