"""Loss and reordering on a link without netem (this kernel has no sch_netem): `bpf/impair.c`.

`Impairment(netns, dev, direction, Spec(...))` attaches the program with tcx (the kernel's
multi-program tc hook) to the device's ingress or egress, so it runs before any legacy tc clsact
program already there (the back-end agent, the switch pipeline, the front-end) and leaves it alone.
Segments are chosen deterministically: every matched TCP segment takes the next value of a counter
(+ `offset`); `drop_every` / `delay_every` divide it (and `drop_permille` adds random drops).

Reordering (egress only) uses a delay line instead of a qdisc: prio is not built into this kernel
either, and a token bucket (tbf, htb) cannot hold back a segment that arrives at an idle bucket. The
program redirects each chosen segment to a veth `ixd<ifindex>` in the same namespace; a thread here
reads the veth's outgoing frames (AF_PACKET with virtio-net headers, so GSO packets and partial
checksums survive), holds each one `delay_ms` and sends it again on the device with a mark, which the
program recognises, clears and lets through. Meanwhile later segments of the flow go out: the
receiver gets them out of order. The program counts, per held segment, whether a later matched
segment of its flow passed while it was held (`reordered`): proof that reordering happened.

`detach()` removes exactly what `attach()` created (the tcx program, the delay line, the pins) and
sends the frames still held. Counters count skbs: a GSO packet is one segment here.

CLI: `python -m system.testing.impair --netns NS --dev eth0 --drop-every 20 --delay-every 7`
(prints counters every second; detaches on Ctrl-C, SIGTERM or after --seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import heapq
import json
import os
import select
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from system.bpf import loader
from system.bpf.build import compile_bpf
from system.bpf.syscall import BpfError, Map, Prog, bpf
from system.testing.netns import in_netns

SOURCE = Path(__file__).resolve().parent / "bpf" / "impair.c"
PROG = "impair_tc"
MARK = 0x1A4D9E1          # skb->mark of re-injected frames (nothing else in the testbed sets marks)

BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_QUERY = 16
TCX = {"ingress": 46, "egress": 47}   # BPF_TCX_INGRESS, BPF_TCX_EGRESS

CONFIG = struct.Struct("=8I")
COUNTER_FIELDS = ("packets", "tcp", "matched", "dropped", "delayed", "redirect_errors", "reinjected",
                  "reordered", "not_reordered", "passed", "unmatched")
COUNTERS = struct.Struct(f"={len(COUNTER_FIELDS)}Q")

SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_OUTGOING = 4
ETH_P_ALL = 0x0003


class ImpairError(RuntimeError):
    pass


@dataclass(frozen=True)
class Spec:
    """What to do to matched segments (see bpf/impair.c)."""
    drop_every: int = 0        # drop every Nth matched segment (0: off)
    drop_permille: int = 0     # plus random drops, per 1000 matched segments (0: off)
    delay_every: int = 0       # hold every Nth matched segment (0: off; egress only)
    delay_ms: float = 5.0      # how long a held segment is held
    offset: int = 0            # the seed: shifts which segments the counters hit
    match: str = "data"        # data: segments with payload; all: every segment but SYN and RST
    port: int = 0              # only segments to or from this TCP port (0: any)

    def validate(self, direction: str) -> None:
        for name in ("drop_every", "drop_permille", "delay_every", "offset", "port"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, not {v!r}")
        if self.drop_every == 1 or self.delay_every == 1:
            raise ValueError("drop_every/delay_every 1 would hit every segment: nothing could get through")
        if self.drop_permille > 500:
            raise ValueError(f"drop_permille {self.drop_permille} > 500: connections would not finish")
        if self.port > 65535:
            raise ValueError(f"port {self.port} is not a TCP port")
        if self.match not in ("data", "all"):
            raise ValueError(f"match must be 'data' or 'all', not {self.match!r}")
        if not 0 < self.delay_ms <= 1000:
            raise ValueError(f"delay_ms must be in (0, 1000], not {self.delay_ms}")
        if self.delay_every and direction != "egress":
            raise ValueError("reordering (delay_every) needs the egress direction: held frames are sent "
                             "again on the device, which only reaches its egress")


# ---------------------------------------------------------------------------------------------
# tcx attach / detach / query (bpf(2) BPF_PROG_ATTACH with target_ifindex, kernel >= 6.6)


class _AttachAttr(ctypes.Structure):
    _fields_ = [("target_ifindex", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32), ("relative_fd", ctypes.c_uint32),
                ("expected_revision", ctypes.c_uint64)]


class _QueryAttr(ctypes.Structure):
    _fields_ = [("target_ifindex", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("prog_ids", ctypes.c_uint64), ("count", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("prog_attach_flags", ctypes.c_uint64), ("link_ids", ctypes.c_uint64),
                ("link_attach_flags", ctypes.c_uint64), ("revision", ctypes.c_uint64)]


def _ns(netns: str | None) -> contextlib.AbstractContextManager[None]:
    return in_netns(netns) if netns else contextlib.nullcontext()


def tcx_attach(netns: str | None, dev: str, prog_fd: int, direction: str) -> None:
    ifindex = loader.ifindex(netns, dev)
    with _ns(netns):     # the ifindex is resolved in the calling thread's namespace
        bpf(BPF_PROG_ATTACH, _AttachAttr(target_ifindex=ifindex, attach_bpf_fd=prog_fd,
                                         attach_type=TCX[direction]), f"tcx attach to {dev} {direction}")


def tcx_detach(netns: str | None, dev: str, prog_fd: int, direction: str) -> None:
    ifindex = loader.ifindex(netns, dev)
    with _ns(netns):
        bpf(BPF_PROG_DETACH, _AttachAttr(target_ifindex=ifindex, attach_bpf_fd=prog_fd,
                                         attach_type=TCX[direction]), f"tcx detach from {dev} {direction}")


def tcx_programs(netns: str | None, dev: str, direction: str) -> list[int]:
    """IDs of the programs attached with tcx to a hook of `dev` ([] when none)."""
    ifindex = loader.ifindex(netns, dev)
    ids = (ctypes.c_uint32 * 64)()
    attr = _QueryAttr(target_ifindex=ifindex, attach_type=TCX[direction], prog_ids=ctypes.addressof(ids),
                      count=64)
    with _ns(netns):
        try:
            bpf(BPF_PROG_QUERY, attr, f"tcx query of {dev} {direction}")
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return []
            raise
    return list(ids[: attr.count])


# ---------------------------------------------------------------------------------------------
# The delay line


def _run(cmd: list[str], netns: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(loader.in_netns(netns, cmd), capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        raise ImpairError(f"{' '.join(cmd)} (netns {netns or 'current'}) failed: {(p.stderr + p.stdout).strip()}")
    return p


@dataclass
class DelayLine:
    """A veth pair (`name`, `name`p) and a thread: frames the program redirects to `name` are held
    `delay_s`, then sent on `dev` with `mark` (they re-enter the device's egress)."""
    netns: str | None
    dev: str
    name: str
    delay_s: float
    mark: int = MARK
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("held", "released", "send_errors", "ignored"), 0))
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _rx: socket.socket | None = None
    _tx: socket.socket | None = None

    @property
    def peer(self) -> str:
        return self.name + "p"

    def start(self) -> int:
        """Creates the veth pair and the sockets, starts the thread; returns the veth's ifindex."""
        _run(["ip", "link", "del", self.name], self.netns, check=False)   # a crashed run's leftover
        _run(["ip", "link", "add", self.name, "type", "veth", "peer", "name", self.peer], self.netns)
        try:
            for d in (self.name, self.peer):
                # No IPv6 on the line (no router solicitations in the held stream); frames reaching
                # the peer are for other MACs and dropped there.
                _run(["sysctl", "-qw", f"net.ipv6.conf.{d}.disable_ipv6=1"], self.netns, check=False)
                _run(["ip", "link", "set", d, "up"], self.netns)
            with _ns(self.netns):
                rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                rx.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
                rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
                rx.bind((self.name, ETH_P_ALL))
                tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                tx.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
                tx.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.mark)
                tx.bind((self.dev, 0))
            rx.setblocking(False)
            self._rx, self._tx = rx, tx
            index = loader.ifindex(self.netns, self.name)
        except Exception:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._loop, name=f"impair-delay-{self.dev}", daemon=True)
        self._thread.start()
        return index

    def _loop(self) -> None:
        assert self._rx is not None and self._tx is not None
        heap: list[tuple[float, int, bytes]] = []
        n = 0
        while True:
            stopping = self._stop.is_set()
            now = time.monotonic()
            while heap and (stopping or heap[0][0] <= now):
                _, _, frame = heapq.heappop(heap)
                try:
                    self._tx.send(frame)
                    self.counters["released"] += 1
                except OSError:
                    self.counters["send_errors"] += 1
            if stopping:
                return
            timeout = min(0.05, max(0.0, heap[0][0] - now)) if heap else 0.05
            if not select.select([self._rx], [], [], timeout)[0]:
                continue
            while True:
                try:
                    frame, addr = self._rx.recvfrom(1 << 18)
                except BlockingIOError:
                    break
                except OSError:
                    self.counters["ignored"] += 1
                    break
                if addr[2] != PACKET_OUTGOING:
                    self.counters["ignored"] += 1
                    continue
                n += 1
                heapq.heappush(heap, (time.monotonic() + self.delay_s, n, frame))
                self.counters["held"] += 1

    def stop(self) -> None:
        """Sends what is still held, closes the sockets and deletes the veth pair."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for s in (self._rx, self._tx):
            if s is not None:
                s.close()
        self._rx = self._tx = None
        _run(["ip", "link", "del", self.name], self.netns, check=False)


# ---------------------------------------------------------------------------------------------
# The impairment


def default_pin_dir(netns: str | None, dev: str, direction: str) -> Path:
    return loader.BPFFS / f"{netns or 'root'}-impair-{dev}-{direction}"


class Impairment:
    """One impaired hook: `attach()`, `counters()`, `detach()` (or use it as a context manager)."""

    def __init__(self, netns: str | None, dev: str, direction: str = "egress", spec: Spec | None = None,
                 pin_dir: Path | None = None) -> None:
        if direction not in TCX:
            raise ValueError(f"direction must be ingress or egress, not {direction!r}")
        self.netns, self.dev, self.direction = netns, dev, direction
        self.spec = spec or Spec()
        self.spec.validate(direction)
        self.pin_dir = Path(pin_dir) if pin_dir else default_pin_dir(netns, dev, direction)
        self._prog: Prog | None = None
        self._config: Map | None = None
        self._counters: Map | None = None
        self._line: DelayLine | None = None
        self._attached = False
        self.final: dict[str, int] | None = None   # the counters at detach

    def attach(self) -> Impairment:
        if self._prog is not None:
            raise ImpairError(f"impairment on {self.dev} {self.direction} is attached already")
        ifindex = loader.ifindex(self.netns, self.dev)   # fails clearly on a wrong namespace/device
        loader.unpin(self.pin_dir)                       # leftovers of a crashed run
        try:
            with tempfile.TemporaryDirectory(prefix="mrs-impair-") as tmp:
                obj = compile_bpf(SOURCE, Path(tmp) / "impair.o").object_path
                loaded = loader.load_object(obj, self.pin_dir)
            self._prog = Prog.pinned(loaded.prog_path(PROG))
            self._config = Map.pinned(loaded.map_path("config"))
            self._counters = Map.pinned(loaded.map_path("counters"))
            line_index = 0
            if self.spec.delay_every:
                self._line = DelayLine(self.netns, self.dev, f"ixd{ifindex}", self.spec.delay_ms / 1000)
                line_index = self._line.start()
            s = self.spec
            self._config.update(struct.pack("=I", 0), CONFIG.pack(
                s.drop_every, s.drop_permille, s.delay_every, line_index, s.offset, int(s.match == "all"),
                s.port, MARK))
            tcx_attach(self.netns, self.dev, self._prog.fd, self.direction)
            self._attached = True
        except Exception:
            self.detach()
            raise
        return self

    def counters(self) -> dict[str, int]:
        if self._counters is None:
            if self.final is not None:
                return dict(self.final)
            raise ImpairError("not attached")
        raw = self._counters.lookup(struct.pack("=I", 0)) or bytes(COUNTERS.size)
        out = dict(zip(COUNTER_FIELDS, COUNTERS.unpack(raw[: COUNTERS.size]), strict=True))
        if self._line is not None:
            out.update({f"line_{k}": v for k, v in self._line.counters.items()})
        return out

    def detach(self) -> dict[str, int]:
        """Removes the program, the delay line and the pins; returns the final counters.

        Diverting stops first and the delay line sends what it holds while the program is still
        attached, so every held frame is re-injected and counted."""
        if self._line is not None:
            if self._attached and self._config is not None:
                raw = self._config.lookup(struct.pack("=I", 0))
                if raw is not None:
                    cfg = list(CONFIG.unpack(raw[: CONFIG.size]))
                    cfg[2] = 0                     # delay_every: divert nothing more
                    self._config.update(struct.pack("=I", 0), CONFIG.pack(*cfg))
            self._line.stop()
        if self._attached and self._prog is not None:
            try:
                tcx_detach(self.netns, self.dev, self._prog.fd, self.direction)
            except (BpfError, loader.LoaderError) as e:   # the device or namespace is gone already
                if not isinstance(e, loader.LoaderError) and e.errno not in (errno.ENOENT, errno.ENODEV):
                    raise
            self._attached = False
        if self._counters is not None:
            self.final = self.counters()
        for obj in (self._prog, self._config, self._counters):
            if obj is not None:
                obj.close()
        self._prog = self._config = self._counters = None
        self._line = None
        loader.unpin(self.pin_dir)
        return dict(self.final or {})

    def __enter__(self) -> Impairment:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()


@contextlib.contextmanager
def impaired(*impairments: Impairment) -> Iterator[list[Impairment]]:
    """Attaches several impairments, detaches all of them at the end (also on errors)."""
    done: list[Impairment] = []
    try:
        for imp in impairments:
            done.append(imp.attach())
        yield done
    finally:
        for imp in reversed(done):
            imp.detach()


# ---------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m system.testing.impair", description=__doc__.splitlines()[0])
    ap.add_argument("--netns", help="network namespace of the device (default: the current one)")
    ap.add_argument("--dev", required=True)
    ap.add_argument("--direction", choices=sorted(TCX), default="egress")
    ap.add_argument("--drop-every", type=int, default=0, metavar="N")
    ap.add_argument("--drop-permille", type=int, default=0, metavar="P")
    ap.add_argument("--delay-every", type=int, default=0, metavar="N", help="reorder: hold every Nth segment")
    ap.add_argument("--delay-ms", type=float, default=5.0)
    ap.add_argument("--offset", type=int, default=0, help="seed: shifts which segments are hit")
    ap.add_argument("--match", choices=("data", "all"), default="data")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=0, help="detach after this long (0: on a signal)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between counter lines")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        ap.error("needs root (bpf, namespaces)")
    try:
        spec = Spec(drop_every=args.drop_every, drop_permille=args.drop_permille, delay_every=args.delay_every,
                    delay_ms=args.delay_ms, offset=args.offset, match=args.match, port=args.port)
        imp = Impairment(args.netns, args.dev, args.direction, spec)
    except ValueError as e:
        ap.error(str(e))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        imp.attach()
    except (ImpairError, OSError, loader.LoaderError) as e:
        print(f"error: {e}", flush=True)
        return 1
    print(json.dumps({"attached": f"{args.netns or '-'}/{args.dev} {args.direction}", "spec": asdict(spec)}),
          flush=True)
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
    try:
        while not stop.wait(args.interval):
            print(json.dumps(imp.counters()), flush=True)
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        final = imp.detach()
    print(json.dumps({"detached": True, **final}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
