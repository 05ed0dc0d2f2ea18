"""Polling for an event in tests: one helper, one hang guard (no wall-clock bound on speed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

# How long a poll may go on before the test gives up: a guard against a stuck daemon hanging the
# run, not a bound on speed (the daemons rewrite their stats every second).
HANG_GUARD_S = 300.0
T = TypeVar("T")


def poll_until(read: Callable[[], T], done: Callable[[T], bool], what: str, period: float = 0.1) -> T:
    """`read()` again until `done` holds for its value, which is returned. Gives up (AssertionError
    naming `what` and the last value) only after HANG_GUARD_S: a stuck daemon, not a slow machine."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not done(value := read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (hang guard, {HANG_GUARD_S:g} s): {str(value)[-500:]}")
        time.sleep(period)
    return value
