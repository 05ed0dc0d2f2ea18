"""When the switch last counted a packet of each offload entry: the answer to front-ends' `activity`
requests (docs/controlplane-protocol.md, "Activity of offload entries").

An offloaded connection's client ACKs go from the switch straight to the back-end, so its front-end
cannot tell a running download from a dead connection. The switch can: every `offload` entry has a
direct counter (its packets both ways). The control plane, which may Read over P4Runtime (a
front-end may not: system/switch/p4rt/access.py), reads those counters every `interval` seconds with
the switch-only slow path's reader (system/switchonly/counters.py: one Read RPC per table, an entry
whose packet count changed since the previous read was active at that read, a new entry counts as
active) on a channel of its own (Reads need no arbitration, so the primary's Write stream is not
disturbed). A front-end asks only about the flows whose idle timeout is due; the answer per entry is
how many seconds ago, as of now, the read saw it active (`idle_s`), or None when the switch has no
such entry. Resolution: an entry is seen active up to one `interval` late, so `idle_s` may be up to
one interval short (the connection is kept a little longer, never reset early by it).

When no read succeeded for `stale_after` seconds (the switch away, the pipeline not set yet, Reads
refused) the answer is UNAVAILABLE: the front-end then falls back to its long timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from system.credentials import Credentials
from system.switchonly.counters import CounterReader, Key

ACTIVITY_TABLES = ("offload",)    # the tables whose entries' activity may be asked (keyed by client endpoint)


class ActivityUnavailable(RuntimeError):
    """No recent counter read: the switch's view of the entries is unknown."""


class Activity:
    def __init__(self, switch: str, interval: float = 1.0, device_id: int = 1,
                 tables: tuple[str, ...] = ACTIVITY_TABLES, credentials: Credentials | None = None,
                 clock: Callable[[], float] = time.monotonic, stale_after: float | None = None) -> None:
        if interval <= 0:
            raise ValueError("the activity interval must be > 0")
        self.interval, self.tables, self.clock = interval, tables, clock
        self.stale_after = stale_after if stale_after is not None else 3 * interval + 2.0
        self.reader = CounterReader(switch, self._publish, interval=interval, device_id=device_id, tables=tables,
                                    clock=clock, credentials=credentials)
        self._lock = threading.Lock()
        self._active: dict[Key, float] = {}
        self._read_at: float | None = None
        self.requests = 0          # activity requests answered (any outcome)
        self.keys = 0              # entries asked about
        self.unavailable = 0       # answered UNAVAILABLE (no recent read)

    def _publish(self, active: dict[Key, float]) -> None:
        with self._lock:
            self._active = active
            self._read_at = self.clock()

    def start(self) -> None:
        self.reader.start()

    def close(self) -> None:
        self.reader.close()

    def idle(self, keys: list[Key]) -> tuple[list[float | None], float]:
        """Seconds since the switch last counted a packet of each entry (None: no such entry), and the
        age of the read they come from; ActivityUnavailable when no read is recent enough."""
        now = self.clock()
        with self._lock:
            self.requests += 1
            self.keys += len(keys)
            if self._read_at is None or now - self._read_at > self.stale_after:
                self.unavailable += 1
                age = "no counter read yet" if self._read_at is None else \
                    f"the last counter read is {now - self._read_at:.1f} s old"
                err = self.reader.last_error
                raise ActivityUnavailable(f"{age} (every {self.interval:g} s; {err or 'no error reported'})")
            active, read_at = self._active, self._read_at
        out: list[float | None] = []
        for k in keys:
            t = active.get(k)
            out.append(None if t is None else round(max(0.0, now - t), 3))
        return out, round(now - read_at, 3)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            read_age = None if self._read_at is None else round(self.clock() - self._read_at, 3)
            return {"interval_s": self.interval, "tables": list(self.tables), "requests": self.requests,
                    "keys": self.keys, "unavailable": self.unavailable, "read_age_s": read_age,
                    "reads": self.reader.counters["reads"], "read_errors": self.reader.counters["read_errors"],
                    "entries_seen": self.reader.counters["entries_seen"], "last_error": self.reader.last_error}
