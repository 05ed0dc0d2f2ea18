"""Open-loop load: a schedule of intended send times, and a driver that keeps to it.

A closed-loop client sends its next request only when the previous one has finished, so while the
system stalls it stops sending and the stall reaches one sample instead of all the requests that
would have been due (coordinated omission). Here each arrival stream has a schedule fixed in
advance (`Schedule`: constant or Poisson arrivals at a rate), and `OpenLoop` sends every request at
its intended time on whichever connection is free, opening a new one when none is: a stalled
request never delays the next one's send. Each result carries ``queue_us``, how late the request
was actually sent; the latency a user would see is measured from the intended time:
``queue_us + latency_us``.

The generator itself can fall behind (its CPU saturated, or ``max_connections`` requests in flight):
then ``queue_us`` grows, `StreamStats` counts the late sends, and the analysis flags the cell
`generator-behind` (analysis/load.py). The driver uses `threading` primitives, which Locust's gevent
monkey-patching turns into greenlet ones; the locustfile passes ``gevent.spawn`` as ``spawn``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from workloads.lean import LeanConnection, Result
from workloads.spec import WorkloadObject

ARRIVALS = ("constant", "poisson")
LATE_US = 10_000   # a send this much after its intended time counts as the generator falling behind


class Schedule:
    """Intended send times of one arrival stream, as nanosecond offsets from the stream's start.

    ``constant``: one request every 1/rate s, starting at a random phase in [0, 1/rate) (so that
    several streams of the same rate do not send in lockstep). ``poisson``: exponential gaps of mean
    1/rate s. ``rng`` makes both reproducible.
    """

    def __init__(self, rate: float, arrival: str = "constant", rng: random.Random | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        if arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}, not {arrival!r}")
        self.rate = float(rate)
        self.arrival = arrival
        self.rng = rng or random.Random(0)

    def __iter__(self) -> Iterator[int]:
        interval = 1e9 / self.rate
        if self.arrival == "constant":
            phase = self.rng.random() * interval
            k = 0
            while True:
                yield round(phase + k * interval)
                k += 1
        t = 0.0
        while True:
            t += self.rng.expovariate(self.rate) * 1e9
            yield round(t)

    def offsets(self, n: int) -> list[int]:
        """The first ``n`` intended offsets (ns)."""
        it = iter(self)
        return [next(it) for _ in range(n)]


@dataclass
class StreamStats:
    """What one stream did: requests scheduled and sent, sends later than LATE_US, the worst lateness,
    the most requests in flight at once, and how often a send waited for a free connection slot."""

    sent: int = 0
    late: int = 0
    max_queue_us: int = 0
    max_in_flight: int = 0
    waited_for_slot: int = 0
    completed: int = 0


def _thread(fn: Callable[..., None], *args: object) -> None:
    threading.Thread(target=fn, args=args, daemon=True).start()


class OpenLoop:
    """Sends requests at a `Schedule`'s intended times; `run` returns when ``count`` requests were
    sent, ``duration_s`` passed or ``stopping()`` says so (Locust: the user is being stopped).

    ``connect()`` makes a new connection slot (a `LeanConnection`); idle slots are reused (keep-alive
    workloads keep their connections), at most ``max_connections`` are in flight; ``choose()`` picks
    the object; ``record(result)`` receives every result, from the request's thread or greenlet.
    """

    def __init__(self, schedule: Schedule, connect: Callable[[], LeanConnection],
                 choose: Callable[[], WorkloadObject], record: Callable[[Result], None],
                 max_connections: int = 128, spawn: Callable[..., object] = _thread) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, not {max_connections}")
        self.schedule = schedule
        self.connect = connect
        self.choose = choose
        self.record = record
        self.max_connections = max_connections
        self.spawn = spawn
        self.stats = StreamStats()
        self._idle: list[LeanConnection] = []
        self._in_flight = 0
        self._cond = threading.Condition()

    def run(self, count: int | None = None, duration_s: float | None = None, drain_s: float = 30.0,
            stopping: Callable[[], bool] | None = None) -> StreamStats:
        """Keeps the schedule until ``count`` sends, ``duration_s`` or ``stopping()`` (checked before
        each send); then waits (up to ``drain_s``) for the requests in flight."""
        t0 = time.perf_counter_ns()
        end = None if duration_s is None else t0 + int(duration_s * 1e9)
        for i, offset in enumerate(self.schedule):
            if count is not None and i >= count:
                break
            due = t0 + offset
            if end is not None and due >= end:
                break
            wait = due - time.perf_counter_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            if stopping is not None and stopping():
                break
            conn = self._take()
            self.stats.sent += 1
            self.spawn(self._one, conn, self.choose(), due)
        self.drain(drain_s)
        return self.stats

    def drain(self, timeout_s: float) -> bool:
        """Waits for the requests in flight; False if some were still running after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        with self._cond:
            for c in self._idle:
                c.close()
            self._idle.clear()

    def _take(self) -> LeanConnection:
        with self._cond:
            if self._in_flight >= self.max_connections:
                self.stats.waited_for_slot += 1
                while self._in_flight >= self.max_connections:
                    self._cond.wait()
            self._in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
            return self._idle.pop() if self._idle else self.connect()

    def _one(self, conn: LeanConnection, obj: WorkloadObject, due: int) -> None:
        try:
            r = conn.get(obj, intended_ns=due)
            if r.queue_us > LATE_US:
                self.stats.late += 1
            self.stats.max_queue_us = max(self.stats.max_queue_us, r.queue_us)
            self.record(r)
        finally:
            with self._cond:
                self.stats.completed += 1
                self._idle.append(conn)
                self._in_flight -= 1
                self._cond.notify_all()
