"""The front-end's eBPF fast path (bpf/frontend.c): build, load, attach, and a small facade.

`FastPath.start()` compiles and loads the object under a pin directory, creates the punt veth pair
(user space reads the punt device with an AF_PACKET socket), attaches `fe_ingress` to the data
interface's TC ingress and `fe_sink` to the punt peer, and writes the configuration. Callers use
`set_flow`/`delete_flow`/`counters`, never raw map bytes. `stop()` undoes all of it.
The struct formats below mirror bpf/structs.h and are checked against the compiled object's maps.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from system.bpf import loader
from system.bpf.build import compile_bpf
from system.bpf.syscall import Map
from system.frontend.packets import ip_bytes

BPF_DIR = Path(__file__).resolve().parent / "bpf"
SOURCE = BPF_DIR / "frontend.c"

# consts.h
FLOW_F_C2B_ACK = 0x1
FLOW_F_B2C = 0x2
FLOW_F_C2B_DATA = 0x4
REASONS = ("c2b_fast", "b2c_fast", "punt_c2b_no_flow", "punt_c2b_ctrl", "punt_c2b_data", "punt_c2b_slow",
           "punt_b2c_no_flow", "punt_b2c_ctrl", "punt_b2c_slow", "pass", "error", "no_config", "sink")

# structs.h (little-endian host; network-order fields packed as raw bytes)
ENDPOINT = struct.Struct("<4s2sH")                    # struct endpoint, 8 bytes
FLOW_VALUE = struct.Struct("<4s2sH6s6s6sHIIIQ")        # struct flow_value, 48 bytes
FE_CONFIG = struct.Struct("<4s2sHII")                 # struct fe_config, 16 bytes
FE_COUNTER = struct.Struct("<QQ")                     # struct fe_counter, 16 bytes
MAP_LAYOUT = {"flows": (ENDPOINT.size, FLOW_VALUE.size), "backends": (ENDPOINT.size, 4),
              "fe_config": (4, FE_CONFIG.size), "fe_counters": (4, FE_COUNTER.size)}


def endpoint_key(addr: bytes, port: int) -> bytes:
    return ENDPOINT.pack(addr, struct.pack("!H", port), 0)


@dataclass(frozen=True)
class FlowEntry:
    backend_ip: bytes
    backend_port: int
    flags: int
    backend_mac: bytes
    client_mac: bytes
    own_mac: bytes
    data_start: int = 0
    data_end: int = 0
    last_ns: int = 0

    def pack(self) -> bytes:
        return FLOW_VALUE.pack(self.backend_ip, struct.pack("!H", self.backend_port), self.flags,
                               self.backend_mac, self.client_mac, self.own_mac, 0, self.data_start,
                               self.data_end, 0, self.last_ns)

    @classmethod
    def unpack(cls, raw: bytes) -> FlowEntry:
        ip, port, flags, bmac, cmac, omac, _pad, start, end, _pad2, last = FLOW_VALUE.unpack(raw)
        return cls(ip, struct.unpack("!H", port)[0], flags, bmac, cmac, omac, start, end, last)


def _sh(netns: str | None, *cmd: str) -> str:
    argv = loader.in_netns(netns, list(cmd))
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise loader.LoaderError(f"{' '.join(argv)} failed: {(proc.stderr + proc.stdout).strip()}")
    return proc.stdout


def build_object(out_dir: Path | None = None) -> Path:
    """Compile bpf/frontend.c (cached by the sources' hash) and return the object's path."""
    digest = hashlib.sha256()
    for f in sorted(BPF_DIR.glob("*.[ch]")):
        digest.update(f.name.encode() + f.read_bytes())
    out_dir = out_dir or Path(tempfile.gettempdir()) / "miresga-frontend-bpf"
    out = out_dir / f"frontend-{digest.hexdigest()[:16]}.o"
    if not out.exists():
        tmp = out.with_suffix(".tmp.o")
        compile_bpf(SOURCE, tmp)
        tmp.replace(out)
    return out


class FastPath:
    """The fast path of one front-end on `data_dev` in namespace `netns` (None: the current one)."""

    def __init__(self, netns: str | None, data_dev: str, punt_dev: str, pin_dir: Path) -> None:
        self.netns, self.data_dev, self.punt_dev, self.pin_dir = netns, data_dev, punt_dev, Path(pin_dir)
        self.punt_peer = punt_dev + "p"
        self.loaded: loader.LoadedObject | None = None
        self.maps: dict[str, Map] = {}
        # Endpoints this process wrote to `flows` and has not deleted: a delete of anything else is a
        # no-op (the engine deletes at FIN, close and removal), so no system call is spent on it.
        self._written: set[bytes] = set()

    def _ip(self, *args: str) -> None:
        _sh(self.netns, "ip", *args)

    def start(self, vip: str, vip_port: int) -> None:
        obj = build_object()
        self.stop()
        try:
            self.loaded = loader.load_object(obj, self.pin_dir)
            for name in MAP_LAYOUT:
                self.maps[name] = Map.pinned(self.loaded.map_path(name))
            self._ip("link", "add", self.punt_dev, "type", "veth", "peer", "name", self.punt_peer)
            for dev in (self.punt_dev, self.punt_peer):
                _sh(self.netns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
                self._ip("link", "set", dev, "up")
            loader.attach_tc(self.netns, self.punt_peer, self.loaded.prog_path("fe_sink"), "ingress")
            punt_ifindex = loader.ifindex(self.netns, self.punt_dev)
            self.maps["fe_config"].update(struct.pack("<I", 0), FE_CONFIG.pack(
                ip_bytes(vip), struct.pack("!H", vip_port), 0, punt_ifindex, 1))
            loader.attach_tc(self.netns, self.data_dev, self.loaded.prog_path("fe_ingress"), "ingress")
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        for m in self.maps.values():
            m.close()
        self.maps.clear()
        self._written.clear()
        with contextlib.suppress(loader.LoaderError):
            loader.detach_tc(self.netns, self.data_dev)
        out = _sh(self.netns, "ip", "-o", "link", "show")
        if f" {self.punt_dev}@" in out or f" {self.punt_dev}:" in out:
            self._ip("link", "del", self.punt_dev)
        loader.unpin(self.pin_dir)
        self.loaded = None

    def add_backend(self, ip: str, port: int, index: int) -> None:
        self.maps["backends"].update(endpoint_key(ip_bytes(ip), port), struct.pack("<I", index))

    def set_flow(self, client_ip: bytes, client_port: int, entry: FlowEntry) -> None:
        if entry.last_ns == 0:
            entry = FlowEntry(**{**entry.__dict__, "last_ns": time.monotonic_ns()})
        key = endpoint_key(client_ip, client_port)
        self.maps["flows"].update(key, entry.pack())
        self._written.add(key)

    def get_flow(self, client_ip: bytes, client_port: int) -> FlowEntry | None:
        raw = self.maps["flows"].lookup(endpoint_key(client_ip, client_port))
        return FlowEntry.unpack(raw) if raw is not None else None

    def delete_flow(self, client_ip: bytes, client_port: int) -> None:
        key = endpoint_key(client_ip, client_port)
        if key not in self._written:
            return
        self._written.discard(key)
        with contextlib.suppress(OSError):
            self.maps["flows"].delete(key)

    def last_seen_ns(self, client_ip: bytes, client_port: int) -> int | None:
        e = self.get_flow(client_ip, client_port)
        return e.last_ns if e else None

    def counters(self) -> dict[str, dict[str, int]]:
        m = self.maps["fe_counters"]
        out = {}
        for i, name in enumerate(REASONS):
            vals = [FE_COUNTER.unpack(v) for v in m.lookup_percpu(struct.pack("<I", i))]
            out[name] = {"packets": sum(v[0] for v in vals), "bytes": sum(v[1] for v in vals)}
        return out

    def open_punt_socket(self) -> socket.socket:
        """An AF_PACKET socket on the punt device (frames the program handed to user space)."""
        from system.testing.netns import in_netns
        ctx = in_netns(self.netns) if self.netns else contextlib.nullcontext()
        with ctx:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            s.bind((self.punt_dev, 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        return s
