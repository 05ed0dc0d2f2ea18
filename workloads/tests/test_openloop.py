"""Open-loop load: the schedule (deterministic seeds), and latency from the intended send time
against a server that stalls one response, beside a closed loop on the same server.

The assertions are on the recorded times of each request (intended send = start - queue_us,
actual send = start, completion = start + latency_us), never on how fast this machine is: the
only durations used are the server's stall (a lower bound it guarantees) and the schedule's own
spacing."""

from __future__ import annotations

import itertools
import random
import threading

import pytest

from workloads.lean import LeanConnection, Result
from workloads.openloop import LATE_US, OpenLoop, Schedule
from workloads.spec import Target, WorkloadObject
from workloads.testserver import StallingServer

CATALOG = {"1k": 1024}
STALL_S = 0.5
RATE = 100.0          # 10 ms between intended sends
COUNT = 60
SLOW = 10             # the 11th request is the one the server stalls
FAST = WorkloadObject("1k", "/obj/1k", 1024)
STALLED = WorkloadObject("1k", "/stall/1k", 1024)
CLOCKS_S = 1e-3       # start is time.time(), durations perf_counter: tolerate their drift over a request


def test_constant_schedule_is_evenly_spaced_from_a_seeded_phase() -> None:
    offs = Schedule(250.0, "constant", random.Random(3)).offsets(1000)
    interval = 1e9 / 250
    phase = random.Random(3).random() * interval
    assert offs == [round(phase + k * interval) for k in range(1000)]
    assert 0 <= offs[0] < interval
    assert Schedule(250.0, "constant", random.Random(4)).offsets(3) != offs[:3]


def test_poisson_schedule_is_reproducible_with_the_right_mean() -> None:
    offs = Schedule(1000.0, "poisson", random.Random(7)).offsets(20000)
    assert offs == Schedule(1000.0, "poisson", random.Random(7)).offsets(20000)
    gaps = [b - a for a, b in zip([0, *offs], offs, strict=False)]
    assert all(g >= 0 for g in gaps)
    mean = sum(gaps) / len(gaps)
    assert abs(mean - 1e6) / 1e6 < 0.02              # exponential gaps of mean 1/rate (1 ms)
    # an exponential's standard deviation equals its mean (a constant schedule's would be 0)
    sd = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5
    assert abs(sd - mean) / mean < 0.05


@pytest.mark.parametrize(("rate", "arrival"), [(0, "constant"), (-1.0, "poisson"), (10.0, "bursty")])
def test_schedule_rejects_bad_parameters(rate: float, arrival: str) -> None:
    with pytest.raises(ValueError):
        Schedule(rate, arrival)


def _choose_slow_at(index: int):
    n = iter(range(10**9))
    return lambda: STALLED if next(n) == index else FAST


def test_open_loop_latency_counts_the_stall_for_every_request_due_during_it() -> None:
    results: list[Result] = []
    lock = threading.Lock()

    def record(r: Result) -> None:
        with lock:
            results.append(r)

    with StallingServer(CATALOG, stall_s=STALL_S) as server:
        target = Target("127.0.0.1", server.port)
        schedule = Schedule(RATE, "constant", random.Random(1))
        loop = OpenLoop(schedule, lambda: LeanConnection(target, keepalive=False, timeout_s=30),
                        _choose_slow_at(SLOW), record, max_connections=COUNT)
        stats = loop.run(count=COUNT)
        loop.close()
    assert stats.sent == stats.completed == len(results) == COUNT
    assert all(r.ok for r in results), {r.error for r in results}
    # The intended send times are the schedule, whatever the server did.
    intended = sorted(r.start - r.queue_us / 1e6 for r in results)
    offsets = Schedule(RATE, "constant", random.Random(1)).offsets(COUNT)
    for i in range(COUNT):
        assert intended[i] - intended[0] == pytest.approx((offsets[i] - offsets[0]) / 1e9, abs=CLOCKS_S)
    # The stalled request (the slowest) began the stall; every request due within half the stall
    # after it was sent on a new connection without waiting for it...
    slow = max(results, key=lambda r: r.latency_us)
    assert slow.latency_us >= STALL_S * 1e6
    slow_intended = slow.start - slow.queue_us / 1e6
    slow_done = slow.start + slow.latency_us / 1e6
    due_in_stall = [r for r in results if 0 < r.start - r.queue_us / 1e6 - slow_intended <= STALL_S / 2]
    assert len(due_in_stall) >= int(RATE * STALL_S / 2) - 1
    assert stats.max_in_flight >= 2
    assert sum(1 for r in due_in_stall if r.start < slow_done) >= 1
    # ...and its latency, measured from its intended time, includes the rest of the stall: the serial
    # server answered it only after the stalled response.
    for r in due_in_stall:
        open_latency_s = (r.queue_us + r.latency_us) / 1e6
        assert r.start - r.queue_us / 1e6 + open_latency_s >= slow.start + STALL_S - CLOCKS_S
        assert open_latency_s >= STALL_S / 2 - CLOCKS_S
    assert stats.late == sum(1 for r in results if r.queue_us > LATE_US)


def test_closed_loop_waits_for_the_stall_so_it_reaches_one_sample() -> None:
    with StallingServer(CATALOG, stall_s=STALL_S) as server:
        conn = LeanConnection(Target("127.0.0.1", server.port), keepalive=False, timeout_s=30)
        choose = _choose_slow_at(SLOW)
        results = [conn.get(choose()) for _ in range(COUNT)]
    assert all(r.ok and r.queue_us == 0 for r in results)
    slow = results[SLOW]
    assert slow.latency_us >= STALL_S * 1e6
    # Coordinated: every request was sent only after the previous one completed, so none of the
    # requests after the stall was sent during it, and none of their latencies contains any of it.
    for prev, nxt in itertools.pairwise(results):
        assert nxt.start >= prev.start + prev.latency_us / 1e6 - CLOCKS_S
    slow_done = slow.start + slow.latency_us / 1e6
    for r in results[SLOW + 1:]:
        assert r.start >= slow_done - CLOCKS_S
