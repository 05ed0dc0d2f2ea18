"""Cookie validation (issue 10): the keyed cookie of system/switch/cookie.py, the current and the
previous slot accepted and older ones refused, every bit authenticated, the CRC-era forgery refused."""

from __future__ import annotations

import random
import zlib

import pytest

from system.frontend import syncookie
from system.frontend.packets import ip_bytes
from system.switch import cookie as sw

CIP, CPORT, VIP, VPORT = ip_bytes("198.18.0.11"), 40000, ip_bytes("198.18.0.100"), 80
KEY = 0x0123456789ABCDEF


def _ack(c: int) -> int:
    return (c + 1) & 0xFFFFFFFF


def test_encode_is_the_reference_format():
    c = syncookie.encode(CIP, CPORT, VIP, VPORT, KEY, mss_idx=2, sack_ok=True, wscale_code=9, slot=6)
    words = (0xC612000B, 0xC6120064, 40000 << 16 | 80, 6 << 8 | (2 << 5 | 1 << 4 | 9))
    mac = sw.halfsiphash24(KEY.to_bytes(8, "little"), b"".join(w.to_bytes(4, "little") for w in words))
    assert c == (mac & 0xFFFFFF00) | (0 << 7) | (2 << 5) | (1 << 4) | 9


@pytest.mark.parametrize("mss_idx,sack,ws", [(0, False, 15), (1, True, 0), (2, False, 14), (3, True, 7)])
def test_valid_cookie_decodes_the_clients_options(mss_idx, sack, ws):
    secrets = syncookie.Secrets(KEY)
    c = syncookie.encode(CIP, CPORT, VIP, VPORT, KEY, mss_idx, sack, ws)
    info = syncookie.validate(_ack(c), CIP, CPORT, VIP, VPORT, secrets)
    assert info is not None and info.s == c
    assert info.mss == syncookie.MSS_TABLE[mss_idx] and info.sack_ok == sack
    assert info.wscale == (None if ws == 15 else ws)


def test_current_and_previous_slot_accepted_older_refused():
    """A SYN answered in slot n completes in slot n+1 (after one rotation), not in slot n+2."""
    secrets = syncookie.Secrets(0x1111, slot=40)
    c = syncookie.encode(CIP, CPORT, VIP, VPORT, 0x1111, 3, True, 7, slot=40)
    assert syncookie.validate(_ack(c), CIP, CPORT, VIP, VPORT, secrets) is not None
    secrets.rotate(0x2222)
    assert secrets.values() == ((0x2222, 41), (0x1111, 40))
    assert syncookie.validate(_ack(c), CIP, CPORT, VIP, VPORT, secrets) is not None
    secrets.rotate(0x3333)
    assert syncookie.validate(_ack(c), CIP, CPORT, VIP, VPORT, secrets) is None
    # the same key in an older slot is refused too: the slot is in the MAC
    old = syncookie.encode(CIP, CPORT, VIP, VPORT, 0x3333, 3, True, 7, slot=40)
    assert syncookie.validate(_ack(old), CIP, CPORT, VIP, VPORT, secrets) is None


def test_every_bit_is_authenticated():
    """Any single flipped bit -- MAC, slot parity, MSS class, SACK, window scale -- is refused."""
    secrets = syncookie.Secrets(KEY, 0x77, slot=9)
    for slot in (9, 8):
        key = KEY if slot == 9 else 0x77
        c = syncookie.encode(CIP, CPORT, VIP, VPORT, key, 3, True, 7, slot=slot)
        assert syncookie.validate(_ack(c), CIP, CPORT, VIP, VPORT, secrets) is not None
        for bit in range(32):
            assert syncookie.validate(_ack(c ^ (1 << bit)), CIP, CPORT, VIP, VPORT, secrets) is None, bit
        assert syncookie.validate(_ack(c), CIP, CPORT + 1, VIP, VPORT, secrets) is None
        assert syncookie.validate(_ack(c), ip_bytes("198.18.0.12"), CPORT, VIP, VPORT, secrets) is None
        assert syncookie.validate(_ack(c), CIP, CPORT, VIP, VPORT + 1, secrets) is None


def test_the_crc_forgery_from_one_observed_synack_is_refused():
    """The attack on the CRC32 cookie: CRC is affine, so for equal-length inputs
    crc(a) ^ crc(b) ^ crc(c) == crc(a ^ b ^ c); one observed SYN-ACK (cookie of endpoint A) gives
    the cookie of any source B as obs ^ crc(A-input with key 0) ^ crc(B-input with key 0). Against
    the CRC cookie it works every time (checked below); against the keyed cookie none is accepted."""
    rng = random.Random(1010)

    def crc_input(ip: bytes, port: int, secret: int) -> bytes:
        return ip + port.to_bytes(2, "big") + VIP + VPORT.to_bytes(2, "big") + secret.to_bytes(4, "big")

    secret = rng.getrandbits(32)
    observed_crc = zlib.crc32(crc_input(CIP, CPORT, secret))
    secrets = syncookie.Secrets(KEY, 0x5555, slot=3)
    observed = syncookie.encode(CIP, CPORT, VIP, VPORT, KEY, 3, True, 7, slot=3)
    forged_ok = 0
    for _ in range(1000):
        src, port = rng.getrandbits(32).to_bytes(4, "big"), rng.randrange(1, 65536)
        delta = zlib.crc32(crc_input(CIP, CPORT, 0)) ^ zlib.crc32(crc_input(src, port, 0))
        assert observed_crc ^ delta == zlib.crc32(crc_input(src, port, secret))   # the CRC falls
        forged = (observed ^ delta) & 0xFFFFFF80 | (observed & 0x7F)
        forged_ok += syncookie.validate(_ack(forged), src, port, VIP, VPORT, secrets) is not None
        # and the observed cookie itself, replayed for another source
        forged_ok += syncookie.validate(_ack(observed), src, port, VIP, VPORT, secrets) is not None
    assert forged_ok == 0


def test_agrees_with_the_switch_reference_for_random_endpoints_slots_and_low_bits():
    rng = random.Random(20261206)
    for _ in range(500):
        key, slot = rng.getrandbits(64), rng.getrandbits(32)
        cip, port, vport = rng.getrandbits(32), rng.randrange(1, 65536), rng.randrange(1, 65536)
        mss, sack, ws = rng.choice([None, 536, 1300, 1440, 1460]), rng.random() < 0.5, \
            rng.choice([None, 0, 7, 14])
        theirs = sw.encode(cip, port, "198.18.0.100", vport, key, slot,
                           sw.SynOptions(mss=mss, sack_ok=sack, wscale=ws))
        ours = syncookie.encode(cip.to_bytes(4, "big"), port, VIP, vport, key, syncookie.mss_index(mss), sack,
                                15 if ws is None else ws, slot=slot)
        assert theirs == ours
        secrets = syncookie.Secrets(rng.getrandbits(64), key, slot=slot + 1)     # answered last slot
        info = syncookie.validate(_ack(theirs), cip.to_bytes(4, "big"), port, VIP, vport, secrets)
        assert info is not None and info.s == theirs and info.wscale == ws and info.sack_ok == sack


@pytest.mark.parametrize("mss,idx", [(None, 0), (500, 0), (536, 0), (1219, 0), (1220, 1), (1459, 2),
                                     (1460, 3), (9000, 3)])
def test_mss_index(mss, idx):
    assert syncookie.mss_index(mss) == idx
