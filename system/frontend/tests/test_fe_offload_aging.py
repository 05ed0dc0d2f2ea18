"""Offloaded connections aged by the switch's counters (issue 10, "Bounded state"): an offloaded
flow whose idle timeout is due is asked about (request `activity`, answered by the control plane from
the offload entries' direct counters) and reset only when the switch saw no packet of it either;
without an answer the long timeout of before applies. Fake clock; a fake activity source that
answers when the test says so (the real one: system/controlplane/tests/test_controlplane_activity.py)."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from conftest import BACKENDS, C_ISN, CLIENT, CLIENT_PORT, backend_seg, client_seg, cookie, make_engine
from system.frontend.packets import ip_bytes

BIG = b"GET /big/x HTTP/1.1\r\nHost: t\r\n\r\n"        # rule "always": offloaded at establishment
BE1 = BACKENDS["be1"]
CIP = ip_bytes(CLIENT)
IDLE, LONG = 5.0, 50.0


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Offload:
    """Records offload adds and deletes."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def add(self, ip: bytes, port: int, index: int) -> None:
        self.calls.append(("add", ip, port, index))

    def delete(self, ip: bytes, port: int, on_ack=None) -> None:
        self.calls.append(("delete", ip, port))


class Activity:
    """Queries are kept until the test answers them (`answer`); `unreachable`: answered at once with
    UNAVAILABLE, as the offload client does without a connection."""

    def __init__(self, unreachable: bool = False) -> None:
        self.queries: list[tuple[list, object]] = []
        self.unreachable = unreachable

    def activity(self, keys, on_reply) -> None:
        self.queries.append((list(keys), on_reply))
        if self.unreachable:
            on_reply(None, "UNAVAILABLE")

    def answer(self, idle, code: str = "OK", i: int = -1) -> None:
        self.queries[i][1](idle, code)


def setup(port: int = CLIENT_PORT, **cfg):
    clock, off, act = Clock(), Offload(), Activity(cfg.pop("unreachable", False))
    fe = make_engine(offload=off, clock=clock, activity=act, idle_timeout=IDLE, offloaded_idle_timeout=LONG, **cfg)
    establish(fe, port)
    assert off.calls == [("add", CIP, port, BE1.index)]
    return fe, clock, off, act


def establish(fe, port: int = CLIENT_PORT) -> None:
    s = cookie(port=port)
    (syn,) = [Ether(f) for f in fe.handle(client_seg(BIG, port=port, s=s))]
    assert syn[IP].dst == BE1.ip
    fe.handle(backend_seg(BE1, "SA", seq=s, ack=C_ISN + 1, port=port))


def resets(frames: list[bytes]) -> set[tuple[str, str]]:
    return {(p[IP].dst, str(p[TCP].flags)) for p in (Ether(f) for f in frames)}


def test_offloaded_flow_is_kept_while_the_switch_counts_its_packets_then_reset_when_it_does_not():
    fe, clock, off, act = setup()
    clock.t += IDLE - 0.1
    assert fe.tick() == [] and act.queries == []                  # not due: nothing asked
    clock.t += 0.2
    assert fe.tick() == [] and [q[0] for q in act.queries] == [[(CIP, CLIENT_PORT)]]   # due: asked, kept
    clock.t += 1.0
    assert fe.tick() == [] and len(act.queries) == 1              # asked once, the answer is awaited
    act.answer([0.5])                                             # the switch counted a packet 0.5 s ago
    assert fe.tick() == [] and fe.counters["offload_kept_active"] == 1 and len(fe.flows) == 1
    clock.t += IDLE - 1.0
    assert fe.tick() == [] and len(act.queries) == 1              # active 0.5 s before that answer: not due
    clock.t += 1.0
    assert fe.tick() == [] and len(act.queries) == 2              # due again: asked again
    act.answer([IDLE + 0.5])                                      # nothing since the last time
    out = fe.tick()
    assert resets(out) == {(BE1.ip, "R"), (CLIENT, "R")} and fe.flows == {}
    assert fe.counters["offload_idle_confirmed"] == 1 and fe.counters["timeout_established"] == 1
    assert off.calls[-1] == ("delete", CIP, CLIENT_PORT)          # its switch entry goes with it
    assert fe._activity_pending == {}


def test_an_entry_the_switch_does_not_have_is_idle():
    fe, clock, _, act = setup()
    clock.t += IDLE
    fe.tick()
    act.answer([None])
    assert resets(fe.tick()) == {(BE1.ip, "R"), (CLIENT, "R")} and fe.flows == {}
    assert fe.counters["offload_idle_confirmed"] == 1 and fe.counters["offload_kept_active"] == 0


def test_a_segment_seen_while_the_answer_is_on_its_way_keeps_the_flow():
    fe, clock, _, act = setup()
    clock.t += IDLE
    fe.tick()
    clock.t += 0.5
    fe.handle(client_seg(b"", flags="A", seq_off=len(BIG), ack=cookie() + 1 + 100))   # e.g. a window update
    act.answer([IDLE + 0.5])
    assert fe.tick() == [] and len(fe.flows) == 1


def test_unknown_activity_falls_back_to_the_long_timeout_and_is_counted():
    """The control plane unreachable: every query fails at once; the flow is asked about again an
    idle timeout later (not every tick) and reset only after offloaded_idle_timeout, as before."""
    fe, clock, _, act = setup(unreachable=True)
    t0 = clock.t
    while clock.t - t0 < LONG - 0.05:
        clock.t += 0.1
        assert fe.tick() == [], f"reset after {clock.t - t0:.1f} s"
    assert 8 <= len(act.queries) <= 10                            # once per idle timeout after the first
    assert fe.counters["offload_activity_unknown"] == len(act.queries)
    assert fe.counters["offload_activity_failed_UNAVAILABLE"] == len(act.queries)
    clock.t += 0.1
    assert resets(fe.tick()) == {(BE1.ip, "R"), (CLIENT, "R")} and fe.flows == {}


def test_an_unanswered_query_times_out_and_its_late_answer_is_ignored():
    fe, clock, _, act = setup(activity_timeout=2.0)
    clock.t += IDLE
    fe.tick()
    clock.t += 1.9
    assert fe.tick() == [] and fe.counters["offload_activity_timeout"] == 0
    clock.t += 0.2
    assert fe.tick() == [] and fe.counters["offload_activity_timeout"] == 1
    assert fe.counters["offload_activity_unknown"] == 1 and fe._activity_pending == {}
    act.answer([None], i=0)                                       # the late answer: stale, changes nothing
    assert fe.tick() == [] and fe.counters["offload_activity_stale"] == 1 and len(fe.flows) == 1


def test_queries_in_flight_are_bounded():
    clock, off, act = Clock(), Offload(), Activity()
    fe = make_engine(offload=off, clock=clock, activity=act, idle_timeout=IDLE, max_activity_pending=2)
    ports = [CLIENT_PORT + i for i in range(3)]
    for p in ports:
        establish(fe, p)
    clock.t += IDLE
    fe.tick()
    assert [len(q[0]) for q in act.queries] == [2]               # one query for the flows due in one tick
    assert fe.counters["offload_activity_deferred"] == 1 and len(fe._activity_pending) == 2
    act.answer([0.0, 0.0])
    fe.tick()                                                     # answers applied, then the third asked
    assert [len(q[0]) for q in act.queries] == [2, 1] and fe.counters["offload_kept_active"] == 2


def test_a_removed_flow_forgets_its_query():
    fe, clock, _, act = setup()
    clock.t += IDLE
    fe.tick()
    fe.handle(client_seg(b"", flags="R", seq_off=len(BIG), ack=0))
    assert fe.flows == {} and fe._activity_pending == {}
    act.answer([0.0])
    assert fe.tick() == [] and fe.counters["offload_activity_stale"] == 1


def test_without_an_activity_source_offloaded_flows_get_the_long_timeout():
    clock, off = Clock(), Offload()
    fe = make_engine(offload=off, clock=clock, idle_timeout=IDLE, offloaded_idle_timeout=LONG)
    establish(fe)
    clock.t += LONG - 0.1
    assert fe.tick() == []
    clock.t += 0.2
    assert resets(fe.tick()) == {(BE1.ip, "R"), (CLIENT, "R")} and fe.flows == {}
