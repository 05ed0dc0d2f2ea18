"""Runners that play PacketCases against the emulated switch.

- VethRunner: the loaded switch (system.switch.target) in a StarTopology; frames are sent and
  captured on the host side of each port with AF_PACKET sockets.
- TestRunRunner: BPF_PROG_TEST_RUN on the pinned program, no namespaces; the egress port is read
  from the tx counters. Also a micro-benchmark (mean ns per run).

Both install a case's entries through the tables facade, run it, and delete them again (also on
failure). `verify` turns an Outcome into an AssertionError that prints the packets and saves pcaps.
"""

from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import wrpcap

from system.bpf.syscall import Prog
from system.switch.tables import PipelineTables
from system.testing.cases import Dropped, Forwarded, PacketCase
from system.testing.netns import PacketIO

TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7
FAKE_IFINDEX_BASE = 9000  # test-run ports: P4 port i <-> ifindex 9000 + i (no device needed)


@dataclass
class Outcome:
    out: dict[int, list[Packet]] = field(default_factory=dict)   # port -> packets out
    drops: dict[str, int] = field(default_factory=dict)          # reason -> packets (delta)
    rx: dict[int, int] = field(default_factory=dict)             # port -> rx packets (delta)
    tx: dict[int, int] = field(default_factory=dict)             # port -> tx packets (delta)
    retval: int | None = None
    duration_ns: int | None = None


def _related(out: bytes, sent: bytes) -> bool:
    """Is `out` the sent frame after forwarding (not unrelated traffic)?"""
    if len(out) < len(sent) or out[12:14] != sent[12:14]:
        return False
    if sent[12:14] == b"\x08\x00" and len(sent) >= 34:
        # Same IPv4 id, protocol, addresses and payload; TTL and checksum may differ.
        return out[18:20] == sent[18:20] and out[23] == sent[23] and out[26:len(sent)] == sent[26:]
    return out[14:len(sent)] == sent[14:]


def _snapshot(tables: PipelineTables) -> tuple[dict[str, int], dict[int, dict[str, int]]]:
    drops = {r: c["packets"] for r, c in tables.drop_counters().items()}
    return drops, tables.port_counters()


def _delta(before, after) -> tuple[dict[str, int], dict[int, int], dict[int, int]]:
    (d0, p0), (d1, p1) = before, after
    drops = {r: d1[r] - d0[r] for r in d1 if d1[r] != d0[r]}
    rx = {p: p1[p]["rx_packets"] - p0[p]["rx_packets"] for p in p1
          if p1[p]["rx_packets"] != p0[p]["rx_packets"]}
    tx = {p: p1[p]["tx_packets"] - p0[p]["tx_packets"] for p in p1
          if p1[p]["tx_packets"] != p0[p]["tx_packets"]}
    return drops, rx, tx


class _EntriesInstalled:
    def __init__(self, tables: PipelineTables, case: PacketCase) -> None:
        self.tables, self.case, self.done = tables, case, []

    def __enter__(self) -> None:
        for e in self.case.entries:
            self.tables.insert(e.table, e.key, e.action, e.params)
            self.done.append(e)

    def __exit__(self, *exc: object) -> None:
        for e in reversed(self.done):
            self.tables.delete(e.table, e.key)


class VethRunner:
    def __init__(self, tables: PipelineTables, pio: PacketIO) -> None:
        self.tables, self.pio = tables, pio

    def run(self, case: PacketCase, timeout: float = 0.3) -> Outcome:
        sent = bytes(case.send)
        with _EntriesInstalled(self.tables, case):
            self.pio.drain()
            before = _snapshot(self.tables)
            self.pio.send(case.in_port, sent)
            frames = self.pio.collect(timeout)
            after = _snapshot(self.tables)
        drops, rx, tx = _delta(before, after)
        out = {p: [Ether(f) for f in fs if _related(f, sent)] for p, fs in frames.items()}
        return Outcome(out={p: v for p, v in out.items() if v}, drops=drops, rx=rx, tx=tx)


class TestRunRunner:
    """Runs cases with BPF_PROG_TEST_RUN on `prog`; `tables` must have ports 1..n mapped to
    FAKE_IFINDEX_BASE + port (see `map_fake_ports`)."""

    __test__ = False  # not a pytest class

    def __init__(self, tables: PipelineTables, prog: Prog) -> None:
        self.tables, self.prog = tables, prog

    @staticmethod
    def map_fake_ports(tables: PipelineTables, nports: int) -> None:
        for port in range(1, nports + 1):
            tables.set_port(port, FAKE_IFINDEX_BASE + port)

    @staticmethod
    def ctx_for(in_port: int) -> bytes:
        # struct __sk_buff up to ifindex: ingress_ifindex at offset 36 (the only field set).
        ctx = bytearray(40)
        struct.pack_into("<I", ctx, 36, FAKE_IFINDEX_BASE + in_port)
        return bytes(ctx)

    def run(self, case: PacketCase, repeat: int = 1) -> Outcome:
        sent = bytes(case.send)
        with _EntriesInstalled(self.tables, case):
            before = _snapshot(self.tables)
            retval, data, duration = self.prog.test_run(sent, repeat=repeat, ctx=self.ctx_for(case.in_port))
            after = _snapshot(self.tables)
        drops, rx, tx = _delta(before, after)
        out: dict[int, list[Packet]] = {}
        if retval == TC_ACT_REDIRECT and len(tx) == 1:
            port = next(iter(tx))
            out[port] = [Ether(data)]
        return Outcome(out=out, drops=drops, rx=rx, tx=tx, retval=retval, duration_ns=duration)


def _dump(case: PacketCase, outcome: Outcome) -> str:
    lines = [f"case: {case.description}", f"sent on port {case.in_port}:", case.send.show2(dump=True)]
    for port, pkts in outcome.out.items():
        for p in pkts:
            lines += [f"out on port {port}:", p.show2(dump=True)]
    lines.append(f"drops={outcome.drops} rx={outcome.rx} tx={outcome.tx} retval={outcome.retval}")
    pcap_dir = Path(tempfile.mkdtemp(prefix="mrsc-case-"))
    wrpcap(str(pcap_dir / "sent.pcap"), [case.send])
    for port, pkts in outcome.out.items():
        wrpcap(str(pcap_dir / f"out-port{port}.pcap"), pkts)
    lines.append(f"pcaps saved in {pcap_dir}")
    return "\n".join(lines)


def verify(case: PacketCase, outcome: Outcome, repeat: int = 1) -> None:
    """Raise AssertionError (with packets printed and pcaps saved) unless the outcome matches."""
    exp = case.expect
    problems = []
    if outcome.rx.get(case.in_port, 0) != repeat:
        problems.append(f"rx on port {case.in_port} counted {outcome.rx.get(case.in_port, 0)}, want {repeat}")
    if isinstance(exp, Forwarded):
        if set(outcome.out) != {exp.port} or len(outcome.out[exp.port]) != 1:
            problems.append(f"want one packet out on port {exp.port}, got "
                            f"{ {p: len(v) for p, v in outcome.out.items()} }")
        elif exp.check is not None and not exp.check(outcome.out[exp.port][0], Ether(bytes(case.send))):
            problems.append("packet out fails the case's check")
        if outcome.drops:
            problems.append(f"unexpected drops {outcome.drops}")
        if outcome.tx != {exp.port: repeat}:
            problems.append(f"tx counters {outcome.tx}, want {{{exp.port}: {repeat}}}")
    elif isinstance(exp, Dropped):
        if outcome.out:
            problems.append(f"want a drop, got packets out on ports {sorted(outcome.out)}")
        if outcome.drops != {exp.reason: repeat}:
            problems.append(f"drop counters {outcome.drops}, want {{{exp.reason!r}: {repeat}}}")
        if outcome.tx:
            problems.append(f"tx counters moved: {outcome.tx}")
    if problems:
        raise AssertionError("; ".join(problems) + "\n" + _dump(case, outcome))


