"""Network namespaces for tests and benchmarks: a star topology around a switch namespace, and
raw packet I/O inside namespaces (AF_PACKET sockets opened after setns(2)).

Everything created carries the caller's prefix; teardown deletes exactly what was created.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

_libc = ctypes.CDLL(None, use_errno=True)


def sh(*cmd: str, check: bool = True) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {(proc.stderr + proc.stdout).strip()}")
    return proc.stdout


def ns_exec(ns: str, *cmd: str, check: bool = True) -> str:
    return sh("ip", "netns", "exec", ns, *cmd, check=check)


@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Run the calling thread in network namespace `ns` for the duration of the block."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns(back): {os.strerror(err)}")
    finally:
        os.close(target)
        os.close(own)


def existing_netns() -> set[str]:
    return {line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()}


@dataclass
class HostPort:
    port: int          # P4 port number on the switch
    ns: str            # host namespace
    dev: str           # host interface (in ns)
    sw_dev: str        # switch interface (in the switch namespace)
    addr: str          # host IPv4 address
    mac: str           # host interface MAC
    sw_mac: str        # switch port MAC


@dataclass
class StarTopology:
    """A switch namespace `<prefix>-sw` with ports 1..n, each a veth to host namespace
    `<prefix>-h<i>`. Interface names: `<ifprefix>sw<i>` (switch side), `<ifprefix>h<i>` (host).
    Host i has 198.18.<subnet>.<i>/24 and static neighbours for every other host pointing at its
    own switch port's MAC. IPv6 is off everywhere (no ND/MLD noise), no default routes."""

    prefix: str = "mrsc"
    ifprefix: str = "mc"
    nports: int = 3
    subnet: int = 200
    hosts: list[HostPort] = field(default_factory=list)

    @property
    def switch_ns(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def namespaces(self) -> list[str]:
        return [self.switch_ns] + [f"{self.prefix}-h{i}" for i in range(1, self.nports + 1)]

    @property
    def port_map(self) -> dict[int, str]:
        return {h.port: h.sw_dev for h in self.hosts}

    def host(self, port: int) -> HostPort:
        return self.hosts[port - 1]

    def up(self) -> StarTopology:
        self.down()
        try:
            self._up()
        except Exception:
            self.down()
            raise
        return self

    def _up(self) -> None:
        sw = self.switch_ns
        sh("ip", "netns", "add", sw)
        self._quiet(sw)
        for i in range(1, self.nports + 1):
            ns = f"{self.prefix}-h{i}"
            h = HostPort(port=i, ns=ns, dev=f"{self.ifprefix}h{i}", sw_dev=f"{self.ifprefix}sw{i}",
                         addr=f"198.18.{self.subnet}.{i}", mac=f"02:00:{self.subnet:02x}:00:00:{i:02x}",
                         sw_mac=f"02:00:{self.subnet:02x}:ff:00:{i:02x}")
            sh("ip", "netns", "add", ns)
            self._quiet(ns)
            sh("ip", "link", "add", h.dev, "netns", ns, "address", h.mac, "type", "veth",
               "peer", "name", h.sw_dev, "netns", sw, "address", h.sw_mac)
            ns_exec(ns, "ip", "link", "set", "lo", "up")
            ns_exec(ns, "ip", "link", "set", h.dev, "up")
            ns_exec(ns, "ip", "addr", "add", f"{h.addr}/24", "dev", h.dev)
            ns_exec(sw, "ip", "link", "set", h.sw_dev, "up")
            self.hosts.append(h)
        for h in self.hosts:
            for other in self.hosts:
                if other is not h:
                    ns_exec(h.ns, "ip", "neigh", "replace", other.addr, "lladdr", h.sw_mac,
                            "dev", h.dev, "nud", "permanent")

    @staticmethod
    def _quiet(ns: str) -> None:
        for key in ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"):
            ns_exec(ns, "sysctl", "-qw", key)

    def down(self) -> None:
        present = existing_netns()
        for ns in self.namespaces:
            if ns in present:
                sh("ip", "netns", "del", ns)
        self.hosts.clear()

    def routes(self) -> list[tuple[int, int, int, int, int]]:
        """route entries (addr, plen, port, smac, dmac) that connect every host."""
        out = []
        for h in self.hosts:
            out.append((ip_int(h.addr), 32, h.port, mac_int(h.sw_mac), mac_int(h.mac)))
        return out


def ip_int(addr: str) -> int:
    return int.from_bytes(socket.inet_aton(addr), "big")


def mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def mac_str(value: int) -> str:
    return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


class PacketIO:
    """AF_PACKET sockets on the host side of each port: send a frame in, collect frames out."""

    def __init__(self, topo: StarTopology) -> None:
        self.topo = topo
        self.socks: dict[int, socket.socket] = {}
        for h in topo.hosts:
            with in_netns(h.ns):
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((h.dev, 0))
            s.setblocking(False)
            self.socks[h.port] = s

    def close(self) -> None:
        for s in self.socks.values():
            s.close()
        self.socks.clear()

    def drain(self) -> None:
        for s in self.socks.values():
            with contextlib.suppress(BlockingIOError):
                while True:
                    s.recv(65535)

    def send(self, port: int, frame: bytes) -> None:
        self.socks[port].send(frame)

    def collect(self, timeout: float = 0.3) -> dict[int, list[bytes]]:
        """Frames received (not sent) on every host interface within `timeout` seconds."""
        out: dict[int, list[bytes]] = {p: [] for p in self.socks}
        by_fd = {s.fileno(): p for p, s in self.socks.items()}
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(self.socks.values()), [], [], left)
            for s in ready:
                with contextlib.suppress(BlockingIOError):
                    data, addr = s.recvfrom(65535)
                    if addr[2] != PACKET_OUTGOING:
                        out[by_fd[s.fileno()]].append(data)
        return out
