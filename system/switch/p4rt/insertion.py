"""The insertion model of a switch profile: fixed latency per Write plus a token bucket of updates.

A Write that touches `n` table entries takes, in the model, its fixed latency plus whatever the
bucket needs to refill for `n` tokens (`delay_for(n)`, which takes the tokens). The server calls it
with the switch's write lock held when the Write starts, applies the updates, then sleeps only what
is left of that time (`finish(start + delay)`): the emulated target's own cost of applying the
updates is part of the modelled time instead of being added to it, so the sustained rate is the
profile's whenever the target is faster than the model (and the target's when it is not, which
the server counts). `pace(n)` is the two in one, for a Write with nothing to apply. The bucket may
go into debt by one batch, so a batch larger than the burst is admitted after waiting for its
deficit (never refused). Time is accounted against deadlines, so a sleep that overshoots is credited
to the next Write and the sustained rate stays at `rate` on average.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from system.switch.profiles import InsertionModel


class InsertionPacer:
    def __init__(self, model: InsertionModel, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.model = model
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(model.burst or 0)
        self._stamp = clock()

    def delay_for(self, n: int) -> float:
        """Takes `n` tokens and returns how long the caller must wait (seconds), without sleeping."""
        m = self.model
        wait = m.write_latency_us / 1e6 if n > 0 else 0.0
        if m.rate is None or n <= 0:
            return wait
        with self._lock:
            now = self._clock()
            self._tokens = min(float(m.burst or 0), self._tokens + (now - self._stamp) * m.rate)
            self._stamp = now
            self._tokens -= n
            if self._tokens < 0:
                wait += -self._tokens / m.rate
        return wait

    def now(self) -> float:
        return self._clock()

    def finish(self, deadline: float) -> float:
        """Sleeps until `deadline` (this pacer's clock) if it is ahead; returns the time slept."""
        wait = deadline - self._clock()
        if wait <= 0:
            return 0.0
        self._sleep(wait)
        return wait

    def pace(self, n: int) -> float:
        wait = self.delay_for(n)
        if wait > 0:
            self._sleep(wait)
        return wait
