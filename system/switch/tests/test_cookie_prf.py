"""The cookie's PRF (system/switch/cookie.py halfsiphash24) against the known-answer vectors of the
HalfSipHash reference implementation (Aumasson, github.com/veorq/SipHash, vectors.h
`vectors_hsip32`: key 00 01 .. 07, message 00 01 .. (n-1), 32-bit output read little-endian)."""

from __future__ import annotations

import pytest

from system.switch import cookie

VECTORS_HSIP32 = (
    0x5B9F35A9, 0xB85A4727, 0x03A662FA, 0x04E7FE8A, 0x89466E2A, 0x69B6FAC5, 0x23FC6358, 0xC563CF8B,
    0x8F84B8D0, 0x79E706F8, 0x3479B094, 0x50300808, 0x2F87F057, 0xFF63E677, 0x7CF8FFD6, 0x972BFE74,
    0x84ACB5D9, 0x5B6474C4, 0x9B8D5B46, 0x87E3EF7B, 0x45104DE3,
)


@pytest.mark.parametrize("n", range(len(VECTORS_HSIP32)))
def test_halfsiphash24_known_answers(n):
    assert cookie.halfsiphash24(bytes(range(8)), bytes(range(n))) == VECTORS_HSIP32[n]


def test_the_cookie_input_is_vector_16():
    """The cookie hashes exactly 16 bytes: the words m0..m3 that serialise to 00 01 .. 0f give
    vector 16 (so the word order and byte order of the README's format are the reference's)."""
    words = [int.from_bytes(bytes(range(i, i + 4)), "little") for i in (0, 4, 8, 12)]
    ip, vip = words[0], words[1]
    cport, vport = words[2] >> 16, words[2] & 0xFFFF
    slot, low7 = words[3] >> 8, words[3] & 0xFF
    assert low7 < 0x80 and cookie.prf_words(ip, cport, vip, vport, slot, low7) == tuple(words)
    assert cookie.cookie_mac(ip, cport, vip, vport, 0x0706050403020100, slot, low7) == VECTORS_HSIP32[16]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="8-byte key"):
        cookie.halfsiphash24(bytes(7), b"")
    with pytest.raises(ValueError, match="key"):
        cookie.make("198.18.0.1", 1, "198.18.0.2", 2, 1 << 64, 0, 0)
    with pytest.raises(ValueError, match="low bits"):
        cookie.make("198.18.0.1", 1, "198.18.0.2", 2, 1, 0, 0x80)
