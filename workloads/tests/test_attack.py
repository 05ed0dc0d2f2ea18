"""The attack tool's packets (fields and checksums, checked by scapy's own dissector), its bounds and
its refusal of targets outside the testbed. Its effect on Miresga: tests/test_miresga_attacks.py."""

from __future__ import annotations

import socket
import zlib

import pytest
from scapy.layers.inet import IP, TCP

from workloads import attack


def test_packets_have_the_fields_and_checksums_asked_for():
    pkt = attack.tcp_packet("198.19.250.7", "198.18.5.100", 40001, 80, 0xDEADBEEF, 0x12345678,
                            attack.ACK | attack.PSH, attack.REQUEST, window=512, ip_id=77)
    ip = IP(pkt)
    assert (ip.src, ip.dst, ip.ttl, ip.id, ip.len, int(ip.flags)) == ("198.19.250.7", "198.18.5.100", 64, 77,
                                                                     len(pkt), 2)
    tcp = ip[TCP]
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, int(tcp.flags), tcp.window) == (40001, 80, 0xDEADBEEF,
                                                                                   0x12345678, 0x18, 512)
    assert bytes(tcp.payload) == attack.REQUEST
    # scapy recomputes both checksums when they are deleted: they must equal ours.
    again = IP(pkt)
    del again.chksum
    del again[TCP].chksum
    again = IP(bytes(again))
    assert (again.chksum, again[TCP].chksum) == (ip.chksum, tcp.chksum)
    syn = IP(attack.tcp_packet("198.19.250.8", "198.18.5.100", 1234, 80, 1, 0, attack.SYN,
                               options=attack.MSS_OPTION))
    assert syn[TCP].options == [("MSS", 1460)] and syn[TCP].dataofs == 6


def test_parse_reads_back_what_tcp_packet_built():
    pkt = attack.tcp_packet("198.18.5.12", "198.18.5.100", 5555, 80, 9, 10, attack.RST, b"xy")
    seg = attack.parse(pkt)
    assert seg == attack.Segment("198.18.5.12", "198.18.5.100", 5555, 80, 9, 10, attack.RST, b"xy")
    assert attack.parse(pkt[:30]) is None
    assert attack.parse(b"\x60" + pkt[1:]) is None          # not IPv4


def test_the_crc_forgery_is_right_against_a_crc_cookie():
    """What cookie-forgery sends would pass a CRC32(endpoint, VIP, secret) cookie: the secret cancels."""
    def crc_cookie(src: str, port: int, secret: int) -> int:
        return zlib.crc32(socket.inet_aton(src) + port.to_bytes(2, "big") + socket.inet_aton("198.18.5.100")
                          + (80).to_bytes(2, "big") + secret.to_bytes(4, "big"))
    for secret in (1, 0xCAFEBABE, 0xFFFFFFFF):
        observed = crc_cookie("198.18.5.12", 20000, secret)
        for port in (20001, 40000, 65535):
            forged = attack.crc_forgery(observed, "198.18.5.12", 20000, "198.18.5.12", port, "198.18.5.100", 80)
            assert forged == crc_cookie("198.18.5.12", port, secret)


@pytest.mark.parametrize("cfg", [
    attack.Config("syn-flood", "8.8.8.8"),
    attack.Config("syn-flood", "198.18.5.100", spoof_net="10.0.0.0/24"),
    attack.Config("rst-sweep", "198.18.5.100"),
    attack.Config("rst-sweep", "198.18.5.100", victim="192.0.2.1"),
    attack.Config("syn-flood", "198.18.5.100", count=0),
    attack.Config("syn-flood", "198.18.5.100", count=attack.MAX_COUNT + 1),
    attack.Config("syn-flood", "198.18.5.100", duration_s=601),
    attack.Config("syn-flood", "198.18.5.100", rate=0),
    attack.Config("slowloris", "198.18.5.100", connections=0),
    attack.Config("rst-sweep", "198.18.5.100", victim="198.18.5.11", ports=(2000, 1000)),
    attack.Config("ping-flood", "198.18.5.100"),
])
def test_out_of_bounds_or_outside_the_testbed_is_refused(cfg):
    with pytest.raises(attack.AttackError):
        cfg.check()


def test_the_cli_refuses_with_a_clear_error_and_exit_2(capsys):
    assert attack.main(["syn-flood", "--vip", "8.8.8.8"]) == 2
    assert "outside 198.18.0.0/15" in capsys.readouterr().err


def test_the_pacer_stops_at_the_count():
    cfg = attack.Config("syn-flood", "198.18.5.100", count=25, rate=1e9, duration_s=600)
    pace = attack.Pacer(cfg, attack.Report("syn-flood"))
    assert sum(1 for _ in iter(pace.go, False)) == 25
