"""The front-end's I/O loop: frames punted by the fast path in, engine, frames out.

Reads the punt device with an AF_PACKET socket (only frames the program redirected there, i.e. the
device's outgoing frames), sends with an AF_PACKET socket on the data interface (protocol 0: it
receives nothing), runs the engine's timers every `tick` seconds and writes a stats JSON file.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import threading
import time
from pathlib import Path

from system.frontend.engine import FrontEnd
from system.frontend.fastpath import FastPath
from system.testing.netns import in_netns

PACKET_OUTGOING = 4
MAX_BATCH = 256      # frames handled per poll before timers and acks get their turn
RX_BUFFER = 1 << 18  # a punted GSO packet can exceed 64 KiB


class Daemon:
    def __init__(self, engine: FrontEnd, fastpath: FastPath, tick: float = 0.05,
                 stats_file: Path | None = None, offload=None, secrets_source=None) -> None:
        self.engine, self.fastpath, self.tick = engine, fastpath, tick
        self.stats_file, self.offload = stats_file, offload
        self.secrets_source = secrets_source     # cpsecrets.SecretsFetcher (its counters go in stats)
        self.rx = fastpath.open_punt_socket()
        self.rx.setblocking(False)
        ctx = in_netns(fastpath.netns) if fastpath.netns else contextlib.nullcontext()
        with ctx:
            self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.tx.bind((fastpath.data_dev, 0))
        self.sent = 0
        self.send_errors = 0
        # One receive buffer: recvfrom(n) would allocate (and, past malloc's mmap threshold, map) n bytes
        # per frame.
        self.rx_buf = bytearray(RX_BUFFER)
        self.rx_view = memoryview(self.rx_buf)
        # Offload delete acks arrive on the offload client's thread: it wakes this loop through an eventfd
        # and the loop hands them to the engine (held re-steer SYNs go out then).
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.wakeups = 0
        if offload is not None:
            engine.watch_offload_deletes(self.wake)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.eventfd_write(self.wake_fd, 1)

    def send(self, frames: list[bytes]) -> None:
        for f in frames:
            try:
                self.tx.send(f)
                self.sent += 1
            except OSError:
                self.send_errors += 1

    def poll(self, timeout: float) -> int:
        """Handle the frames that arrive within `timeout` seconds; returns how many."""
        n = 0
        ready, _, _ = select.select([self.rx, self.wake_fd], [], [], timeout)
        if self.wake_fd in ready:
            with contextlib.suppress(OSError):
                os.eventfd_read(self.wake_fd)
            self.wakeups += 1
            self.send(self.engine.offload_acked())
        if self.rx not in ready:
            return 0
        while n < MAX_BATCH:
            try:
                size, addr = self.rx.recvfrom_into(self.rx_buf)
            except BlockingIOError:
                break
            if addr[2] != PACKET_OUTGOING:
                continue
            n += 1
            self.send(self.engine.handle(bytes(self.rx_view[:size])))
        return n

    def stats(self) -> dict:
        out = {"engine": self.engine.stats(), "fast_path": self.fastpath.counters(),
               "io": {"sent": self.sent, "send_errors": self.send_errors, "wakeups": self.wakeups},
               "last_error": self.engine.last_error}
        if self.offload is not None:
            out["offload"] = dict(self.offload.counters)
        if self.secrets_source is not None:
            out["cookie_secrets"] = dict(self.secrets_source.counters)
        return out

    def run(self, stop: threading.Event) -> None:
        next_tick = next_stats = time.monotonic()
        while not stop.is_set():
            self.poll(self.tick)
            now = time.monotonic()
            if now >= next_tick:
                self.send(self.engine.tick())
                next_tick = now + self.tick
            if self.stats_file is not None and now >= next_stats:
                tmp = self.stats_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.stats(), indent=1, sort_keys=True))
                tmp.replace(self.stats_file)
                next_stats = now + 1.0

    def close(self) -> None:
        self.rx.close()
        self.tx.close()
        os.close(self.wake_fd)
