"""Ethernet/IPv4/TCP frames as the front-end sees and sends them: parsing, building, checksums.

Plain `struct` code (scapy is for tests): the front-end parses every punted frame. A `Segment` is a
parsed frame; `build()` turns one back into bytes with fresh IPv4 and TCP checksums. TCP options are
parsed, never assumed: any order, NOPs, unknown kinds skipped, at most 40 bytes.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, fields, replace

ETH_P_IP = 0x0800
PROTO_TCP = 6

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

OPT_EOL, OPT_NOP, OPT_MSS, OPT_WSCALE, OPT_SACK_OK, OPT_SACK = 0, 1, 2, 3, 4, 5


class PacketError(ValueError):
    """The frame is not a well-formed Ethernet/IPv4/TCP frame."""


def ip_bytes(addr: str) -> bytes:
    return socket.inet_aton(addr)


def ip_str(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def seq_add(a: int, b: int) -> int:
    return (a + b) & 0xFFFFFFFF


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed 32-bit distance (RFC 1982 style)."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d & 0x80000000 else d


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@dataclass(frozen=True)
class TcpOptions:
    mss: int | None = None
    wscale: int | None = None
    sack_ok: bool = False


def parse_options(raw: bytes) -> TcpOptions:
    """MSS, window scale and SACK-permitted from a TCP option area (malformed tails are ignored)."""
    mss = wscale = None
    sack = False
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= len(raw):
            break
        length = raw[i + 1]
        if length < 2 or i + length > len(raw):
            break
        body = raw[i + 2:i + length]
        if kind == OPT_MSS and length == 4:
            mss = struct.unpack("!H", body)[0]
        elif kind == OPT_WSCALE and length == 3:
            wscale = min(body[0], 14)
        elif kind == OPT_SACK_OK and length == 2:
            sack = True
        i += length
    return TcpOptions(mss=mss, wscale=wscale, sack_ok=sack)


def syn_options(mss: int, sack_ok: bool, wscale: int | None) -> bytes:
    """Options of a crafted SYN: MSS, SACK-permitted, window scale; NOP-padded to 4 bytes."""
    out = struct.pack("!BBH", OPT_MSS, 4, mss)
    if sack_ok:
        out += bytes([OPT_NOP, OPT_NOP, OPT_SACK_OK, 2])
    if wscale is not None:
        out += bytes([OPT_NOP, OPT_WSCALE, 3, wscale])
    return out


@dataclass(frozen=True)
class Segment:
    eth_src: bytes
    eth_dst: bytes
    src: bytes          # IPv4 source, 4 bytes
    dst: bytes          # IPv4 destination, 4 bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    options: bytes = b""
    payload: bytes = b""
    ttl: int = 64
    ip_id: int = 0
    tos: int = 0

    @property
    def syn(self) -> bool:
        return bool(self.flags & SYN)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FIN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & RST)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & ACK)

    @property
    def end_seq(self) -> int:
        """Sequence number after this segment (SYN and FIN count one each)."""
        return seq_add(self.seq, len(self.payload) + (1 if self.syn else 0) + (1 if self.fin else 0))

    def with_(self, **kw) -> Segment:
        """A copy with some fields changed (dataclasses.replace, without its per-call field walk: the
        front-end copies a segment for most frames it forwards)."""
        unknown = kw.keys() - _SEGMENT_FIELDS
        if unknown:
            return replace(self, **kw)      # raises the usual TypeError
        new = object.__new__(Segment)
        d = new.__dict__
        d.update(self.__dict__)
        d.update(kw)
        return new

    def __str__(self) -> str:
        names = "".join(c for bit, c in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "A"))
                        if self.flags & bit)
        return (f"{ip_str(self.src)}:{self.sport} > {ip_str(self.dst)}:{self.dport} [{names}] "
                f"seq={self.seq} ack={self.ack} len={len(self.payload)}")


_SEGMENT_FIELDS = frozenset(f.name for f in fields(Segment))


def parse(frame: bytes) -> Segment:
    """Parse an Ethernet/IPv4/TCP frame; raises PacketError for anything else."""
    if len(frame) < 14 + 20 + 20:
        raise PacketError(f"frame of {len(frame)} bytes is too short for Ethernet/IPv4/TCP")
    if struct.unpack_from("!H", frame, 12)[0] != ETH_P_IP:
        raise PacketError("not IPv4")
    vihl, tos, tot_len, ip_id, frag, ttl, proto = struct.unpack_from("!BBHHHBB", frame, 14)
    ihl = (vihl & 0xF) * 4
    if vihl >> 4 != 4 or ihl < 20:
        raise PacketError("bad IPv4 version or header length")
    if proto != PROTO_TCP:
        raise PacketError(f"IP protocol {proto} is not TCP")
    if frag & 0x3FFF:
        raise PacketError("IPv4 fragment")
    # GSO super-packets from the kernel may carry tot_len 0 or a length above 64 KiB: trust the frame.
    end = 14 + tot_len if 0 < tot_len <= len(frame) - 14 else len(frame)
    t = 14 + ihl
    if end < t + 20:
        raise PacketError("truncated TCP header")
    sport, dport, seq, ack, off, flags, window = struct.unpack_from("!HHIIBBH", frame, t)
    doff = (off >> 4) * 4
    if doff < 20 or t + doff > end:
        raise PacketError("bad TCP data offset")
    return Segment(eth_dst=frame[0:6], eth_src=frame[6:12], src=frame[26:30], dst=frame[30:34],
                   sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=window,
                   options=frame[t + 20:t + doff], payload=frame[t + doff:end], ttl=ttl, ip_id=ip_id,
                   tos=tos)


def tcp_checksum(src: bytes, dst: bytes, tcp: bytes) -> int:
    pseudo = src + dst + struct.pack("!BBH", 0, PROTO_TCP, len(tcp))
    return checksum(pseudo + tcp)


def build(seg: Segment) -> bytes:
    """Serialize with IPv4 DF set and fresh checksums (options padded with NOPs to 4 bytes)."""
    opts = seg.options + b"\x01" * (-len(seg.options) % 4)
    if len(opts) > 40:
        raise PacketError("TCP options longer than 40 bytes")
    tcp = struct.pack("!HHIIBBHHH", seg.sport, seg.dport, seg.seq, seg.ack, ((20 + len(opts)) // 4) << 4,
                      seg.flags, seg.window, 0, 0) + opts + seg.payload
    csum = tcp_checksum(seg.src, seg.dst, tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, seg.tos, 20 + len(tcp), seg.ip_id, 0x4000, seg.ttl, PROTO_TCP, 0,
                     seg.src, seg.dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return seg.eth_dst + seg.eth_src + struct.pack("!H", ETH_P_IP) + ip + tcp


def split(seg: Segment, mss: int) -> list[Segment]:
    """Cut a (GSO) segment's payload into pieces of at most `mss` bytes; FIN/PSH stay on the last."""
    if len(seg.payload) <= mss:
        return [seg]
    out = []
    last_flags = seg.flags
    body_flags = seg.flags & ~(FIN | PSH)
    for off in range(0, len(seg.payload), mss):
        piece = seg.payload[off:off + mss]
        is_last = off + mss >= len(seg.payload)
        out.append(seg.with_(seq=seq_add(seg.seq, off), payload=piece, flags=last_flags if is_last else body_flags))
    return out
