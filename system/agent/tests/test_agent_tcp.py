"""Real kernels on both ends, the agent in between (design in system/agent/pair.py).

The client is a kernel TCP socket in namespace mrse-cli; a test-only TC program on its egress puts
s (0xFFFFF000) into its SYN's ack field, as the front-end's crafted SYN would carry it, and
translates nothing else. The back-end (mrse-srv) runs the agent and a kernel TCP server. The agent
learns s from the SYN, delta = b - s from its kernel's SYN-ACK, and makes that SYN-ACK leave with
seq = s; the client kernel therefore numbers the server's bytes from s while the server numbers
them from b (random): a multi-megabyte download arrives byte-exact only if every seq on egress and
every ack (and SACK edge) on ingress is translated. A second test drops one server segment once at
the client so that SACK blocks flow and must be translated for the server to accept them
(TcpExtTCPSACKDiscard stays 0, a SACK recovery happens). Teardown leaves no namespace, pin or
filter.
"""

from __future__ import annotations

import threading
import time

import pytest
from agent_testing import require_root

from system.agent.pair import TcpPair
from system.bpf.loader import BPFFS, tc_filters
from system.testing.netns import existing_netns

pytestmark = pytest.mark.root
SIZE = 4 << 20


def _download_holding(pair: TcpPair, size: int):
    """Run a transfer; while the connection is still open, read the agent's entries."""
    hold, received = threading.Event(), threading.Event()
    out: dict = {}
    worker = threading.Thread(target=lambda: out.setdefault("t", pair.transfer(size, hold=hold,
                                                                             received=received)))
    worker.start()
    try:
        assert received.wait(30), "download did not complete"
        during = pair.agent.entries()
    finally:
        hold.set()
        worker.join(40)
    return out["t"], during


def _wait_empty(pair: TcpPair, seconds: float = 3.0) -> dict:
    deadline = time.monotonic() + seconds
    while (entries := pair.agent.entries()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return entries


@pytest.fixture
def pair_factory():
    require_root()
    made: list[TcpPair] = []

    def make(**kw) -> TcpPair:
        pair = TcpPair(**kw).up()
        made.append(pair)
        return pair

    yield make
    for pair in made:
        pair.down()
        assert not {pair.client_ns, pair.server_ns} & existing_netns()
        assert not pair.pin_root.exists()


def test_download_through_agent_is_byte_exact_with_nonzero_delta(pair_factory):
    pair = pair_factory()
    assert "agent_ingress" in tc_filters(pair.server_ns, pair.server_dev, "ingress")
    assert "agent_egress" in tc_filters(pair.server_ns, pair.server_dev, "egress")
    transfer, during = _download_holding(pair, SIZE)
    assert transfer.ok, transfer
    hs = transfer.handshake
    assert hs.syn_ack_field == pair.client_s          # the SYN carried s (client test hook)
    assert hs.synack_seq == pair.client_s             # the back-end's SYN-ACK arrived with seq = s
    endpoint = (pair.client_ip, hs.client_port)
    assert set(during) == {endpoint}
    entry = during[endpoint]
    assert entry.s == pair.client_s and entry.delta != 0
    assert entry.flag_names == ["s_learned", "delta_learned"]
    assert _wait_empty(pair) == {}                    # both FINs seen and acknowledged
    c = pair.agent.counters()
    assert c["in_syn_learned"] == 1 and c["out_synack_learned"] == 1
    assert c["out_translated"] == c["out_packets"] >= 2   # GSO packets count once
    assert c["in_translated"] == c["in_packets"] - 1      # all but the SYN
    assert c["removed_closed"] == 1 and c["helper_errors"] == 0 and c["in_malformed"] == 0


def test_sack_blocks_are_translated_for_the_server(pair_factory):
    pair = pair_factory(drop_at=1_000_000)
    before = pair.netstat(pair.server_ns)
    transfer, _ = _download_holding(pair, SIZE)
    after = pair.netstat(pair.server_ns)
    assert transfer.ok, transfer
    c = pair.agent.counters()
    assert c["in_sack_edges"] >= 2
    assert after.get("TCPSACKDiscard", 0) == before.get("TCPSACKDiscard", 0)
    assert after.get("TCPSackRecovery", 0) > before.get("TCPSackRecovery", 0)
    assert _wait_empty(pair) == {}


def test_port_reuse_relearns(pair_factory):
    """Two connections from the same client endpoint in a row (SO_REUSEADDR + bind): the second
    connection's SYN learns its own s and SYN-ACK its own delta (b differs); both downloads are
    byte-exact. (Replacing a live entry is the packet case "port reuse: ...".)"""
    pair = pair_factory()
    first = pair.transfer(256 << 10, seed=1)
    assert first.ok, first
    port = first.handshake.client_port
    second = pair.transfer(256 << 10, seed=2, client_port=port)
    assert second.ok, second
    assert second.handshake.client_port == port
    c = pair.agent.counters()
    # A SYN that the server's TIME_WAIT socket refuses is retried: at least two learned.
    assert c["in_syn_learned"] >= 2 and c["out_synack_learned"] >= 2
    assert c["in_syn_relearned"] == c["in_syn_learned"] - 2
    assert _wait_empty(pair) == {}


def test_nothing_left_behind(pair_factory):
    pair = pair_factory()
    pair.down()
    assert not {pair.client_ns, pair.server_ns} & existing_netns()
    assert not [p for p in BPFFS.iterdir() if p.name.startswith("mrse-pair")]
