"""The slow path's I/O loop on the switch CPU: frames from the CPU port in, engine, frames out.

Every frame the switch sends to its CPU port arrives on the netdev `cpu0` (the emulated target's
veth peer of P4 port 64, or the Tofino's CPU PCIe netdev); the slow path reads it with an AF_PACKET
socket and sends on the same socket, so its frames enter the pipeline at the CPU port (there is no
fast-path program: docs/switch-only-datapath.md). Conn-table acks come from the control-plane
client's thread: it queues them and wakes this loop through an eventfd, and the loop hands finished
installs to the engine (the held request goes out at once). Timers run every `tick` seconds; the
stats JSON is rewritten every second.
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
from typing import Any

from system.frontend.engine import FrontEnd
from system.switchonly.conntable import ConnTable
from system.testing.netns import in_netns

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
PACKET_IGNORE_OUTGOING = 23          # linux/if_packet.h: our own sends are not looped back to us
SOL_PACKET = 263


def open_cpu_socket(dev: str, netns: str | None = None, rcvbuf: int = 8 << 20) -> socket.socket:
    ctx = in_netns(netns) if netns else contextlib.nullcontext()
    with ctx:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.bind((dev, ETH_P_ALL))
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"cannot bind an AF_PACKET socket to {dev!r}"
                          f"{f' in namespace {netns}' if netns else ''}: {e.strerror}") from None
    with contextlib.suppress(OSError):
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    return sock


class SlowPath:
    def __init__(self, engine: FrontEnd, conn_table: ConnTable, sock: socket.socket, tick: float = 0.05,
                 stats_file: Path | None = None, extra_stats: dict[str, Any] | None = None) -> None:
        self.engine, self.conn_table, self.sock, self.tick = engine, conn_table, sock, tick
        self.stats_file = stats_file
        self.extra_stats = extra_stats or {}       # name -> object with `.counters` (control-plane clients)
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.io = {"received": 0, "sent": 0, "send_errors": 0, "wakeups": 0}

    def wake(self) -> None:
        """Thread-safe: makes `poll` return at once (an ack arrived)."""
        with contextlib.suppress(OSError):
            os.eventfd_write(self.wake_fd, 1)

    def send(self, frames: list[bytes]) -> None:
        for f in frames:
            try:
                self.sock.send(f)
                self.io["sent"] += 1
            except OSError:
                self.io["send_errors"] += 1

    def poll(self, timeout: float) -> int:
        """Handle the frames and acks that arrive within `timeout` seconds; returns the frames handled."""
        ready, _, _ = select.select([self.sock, self.wake_fd], [], [], timeout)
        if self.wake_fd in ready:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self.wake_fd)
            self.io["wakeups"] += 1
        self.apply_acks()
        n = 0
        if self.sock in ready:
            while n < 4096:
                try:
                    frame, addr = self.sock.recvfrom(1 << 17)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                n += 1
                self.send(self.engine.handle(frame))
            self.io["received"] += n
            self.apply_acks()
        return n

    def apply_acks(self) -> None:
        for ip, port, ok in self.conn_table.drain():
            self.send(self.engine.install_done(ip, port, ok))

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"engine": self.engine.stats(), "io": dict(self.io), **self.conn_table.stats(),
                               "time": time.time()}
        for name, obj in self.extra_stats.items():
            out[name] = dict(obj.counters)
        return out

    def write_stats(self) -> None:
        if self.stats_file is None:
            return
        tmp = self.stats_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.stats(), indent=1, sort_keys=True))
        tmp.replace(self.stats_file)

    def run(self, stop: threading.Event) -> None:
        next_tick = next_stats = time.monotonic()
        while not stop.is_set():
            self.poll(self.tick)
            now = time.monotonic()
            if now >= next_tick:
                self.send(self.engine.tick())
                next_tick = now + self.tick
            if now >= next_stats:
                self.write_stats()
                next_stats = now + 1.0
        self.write_stats()

    def close(self) -> None:
        self.sock.close()
        os.close(self.wake_fd)
