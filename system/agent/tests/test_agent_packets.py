"""The agent's packet cases (agent_cases.py) through BPF_PROG_TEST_RUN: byte-exact packet out
(checksums included: scapy recomputes the expected one in full), the whole flows table after,
and exactly the counters that should move."""

from __future__ import annotations

import pytest
from agent_cases import CASES, LEARNED, AgentCase, C, S, from_b, to_b
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from system.agent.tables import FlowEntry

pytestmark = pytest.mark.root
TC_ACT_OK = 0


def run_case(agent, progs, case: AgentCase):
    agent.flows.clear()
    for endpoint, entry in case.entries.items():
        agent.flows.put(endpoint, entry)
    before = agent.counters()
    retval, data, _ = progs[case.hook].test_run(bytes(case.send))
    after = agent.counters()
    moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    return retval, data, moved


def dump(title: str, raw: bytes) -> str:
    return f"{title}:\n{Ether(raw).show2(dump=True)}"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case_bpf_test_run(case: AgentCase, loaded_agent):
    agent, progs = loaded_agent
    retval, data, moved = run_case(agent, progs, case)
    expected = bytes(case.expected())
    assert retval == TC_ACT_OK
    assert data == expected, "\n".join([dump("sent", bytes(case.send)), dump("out", data),
                                        dump("expected", expected)])
    want_table = case.entries if case.after is None else case.after
    assert agent.flows.entries() == want_table
    prefix = "in" if case.hook == "ingress" else "out"
    assert moved == {f"{prefix}_packets": 1, **case.counts}


def test_checksum_stays_valid_through_a_whole_connection(loaded_agent):
    """SYN, SYN-ACK, data both ways, FINs and the last ACK, as one sequence through both hooks:
    every packet leaves with a valid TCP checksum and the entry is gone at the end."""
    agent, progs = loaded_agent
    agent.flows.clear()
    c_isn, b_isn = 0xFFFFFFF0, 0x00000010   # both wrap within the connection
    steps = [
        ("ingress", to_b("S", seq=c_isn, ack=S)),
        ("egress", from_b("SA", seq=b_isn, ack=(c_isn + 1) & 0xFFFFFFFF)),
        ("ingress", to_b("PA", seq=(c_isn + 1) & 0xFFFFFFFF, ack=S + 1, payload=b"x" * 40)),
        ("egress", from_b("PA", seq=b_isn + 1, ack=(c_isn + 41) & 0xFFFFFFFF, payload=b"y" * 100)),
        ("ingress", to_b("FA", seq=(c_isn + 41) & 0xFFFFFFFF, ack=S + 101)),
        ("egress", from_b("FA", seq=b_isn + 101, ack=(c_isn + 42) & 0xFFFFFFFF)),
        ("ingress", to_b("A", seq=(c_isn + 42) & 0xFFFFFFFF, ack=S + 102)),
    ]
    seqs = []
    for hook, pkt in steps:
        _, data, _ = progs[hook].test_run(bytes(pkt))
        out = Ether(data)
        fresh = out.copy()
        del fresh[TCP].chksum
        assert Ether(bytes(fresh))[TCP].chksum == out[TCP].chksum, f"{hook}: {out.summary()}"
        seqs.append((out[TCP].seq, out[TCP].ack))
        if hook == "ingress" and "S" not in str(pkt[TCP].flags):
            assert out[TCP].ack == (pkt[TCP].ack + b_isn - S) & 0xFFFFFFFF
    assert seqs[1][0] == S                        # the SYN-ACK leaves with seq = s
    assert seqs[3][0] == S + 1                    # back-end data numbered from s
    assert agent.flows.entries() == {}
    assert agent.flows.get(C) is None


def test_prog_stats_count_runs_when_enabled(loaded_agent):
    agent, progs = loaded_agent
    agent.flows.clear()
    agent.flows.put(C, LEARNED)
    agent.enable_stats()
    try:
        before = agent.prog_stats()
        progs["ingress"].test_run(bytes(to_b("A")), repeat=50)
        after = agent.prog_stats()
    finally:
        agent.disable_stats()
    assert after["agent_ingress"].run_cnt - before["agent_ingress"].run_cnt == 50
    assert after["agent_ingress"].run_time_ns > before["agent_ingress"].run_time_ns
    assert after["agent_egress"].run_cnt == before["agent_egress"].run_cnt


def test_flow_entry_round_trips_through_the_map(loaded_agent):
    agent, _ = loaded_agent
    agent.flows.clear()
    entry = FlowEntry(s=0xDEADBEEF, delta=0x80000001, flags=63, fin_in_end=1, fin_out_end=0xFFFFFFFF)
    agent.flows.put(("198.18.60.9", 65535), entry)
    assert agent.flows.get(("198.18.60.9", 65535)) == entry
    assert agent.flows.get(("198.18.60.9", 65534)) is None
    assert entry.flag_names == ["s_learned", "delta_learned", "fin_in", "fin_out", "fin_in_acked",
                                "fin_out_acked"]
    agent.flows.delete(("198.18.60.9", 65535))
    assert agent.flows.entries() == {}
