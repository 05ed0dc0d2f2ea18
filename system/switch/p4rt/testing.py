"""Test support shared by the P4Runtime server's and the control plane's tests (root only).

`SwitchNamespaces` builds the emulated switch's namespace `mrsi-sw` with veth ports `misw<N>`
whose peers `mih<N>` sit in host namespaces `mrsi-h<N>` (198.18.200.<N>/24), and removes exactly
those namespaces at the end. Everything is prefixed `mrsi-`/`mi` (this component's test prefix);
`prefix` picks another one (the benchmark's own, so it never clashes with a test run).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SW_NS = "mrsi-sw"
PIN_ROOT = Path("/sys/fs/bpf")
ROOT = Path(__file__).resolve().parents[3]


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check)


def root_reason() -> str | None:
    """Why root-only tests cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, BPF)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs iproute2 (ip, tc)"
    if not PIN_ROOT.is_dir():
        return "needs the BPF file system at /sys/fs/bpf"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SwitchNamespaces:
    n_ports: int = 2
    prefix: str = "mrsi"
    created: list[str] = field(default_factory=list)

    @property
    def sw_ns(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def ports(self) -> dict[int, str]:
        return {i: f"misw{i}" for i in range(1, self.n_ports + 1)}

    def host_ns(self, i: int) -> str:
        return f"{self.prefix}-h{i}"

    def host_ip(self, i: int) -> str:
        return f"198.18.200.{i}"

    def mac(self, ns: str, dev: str) -> str:
        return sh("ip", "-n", ns, "-br", "link", "show", dev).stdout.split()[2]

    def up(self) -> SwitchNamespaces:
        self.down()
        for ns in [self.sw_ns, *(self.host_ns(i) for i in range(1, self.n_ports + 1))]:
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for i in range(1, self.n_ports + 1):
            h = self.host_ns(i)
            sh("ip", "-n", self.sw_ns, "link", "add", f"misw{i}", "type", "veth", "peer", "name", f"mih{i}",
               "netns", h)
            sh("ip", "-n", self.sw_ns, "link", "set", f"misw{i}", "up")
            sh("ip", "-n", h, "addr", "add", f"{self.host_ip(i)}/24", "dev", f"mih{i}")
            sh("ip", "-n", h, "link", "set", f"mih{i}", "up")
        # Static neighbours: the switch answers no ARP; each host sends to its switch port's MAC.
        for i in range(1, self.n_ports + 1):
            sw_mac = self.mac(self.sw_ns, f"misw{i}")
            for j in range(1, self.n_ports + 1):
                if j != i:
                    sh("ip", "-n", self.host_ns(i), "neigh", "replace", self.host_ip(j), "lladdr", sw_mac,
                       "dev", f"mih{i}", "nud", "permanent")
        return self

    def down(self) -> None:
        names = set(self.created) | {self.sw_ns} | {self.host_ns(i) for i in range(1, self.n_ports + 1)}
        existing = set(sh("ip", "netns", "list").stdout.split())
        for ns in sorted(names & existing):
            sh("ip", "netns", "del", ns, check=False)
        self.created.clear()

    def ping(self, src: int, dst: int) -> bool:
        r = sh("ip", "netns", "exec", self.host_ns(src), "ping", "-c", "1", "-W", "1", self.host_ip(dst),
               check=False)
        return r.returncode == 0


def make_server(switch_ns: SwitchNamespaces, profile: str = "unlimited", tag: str = "p4rt",
                stats_file: Path | None = None, credentials: Any = None) -> Any:
    """A started in-process P4RuntimeServer on a free loopback port (pins under <prefix>-<tag>)."""
    from system.switch.p4rt.device import Device
    from system.switch.p4rt.server import P4RuntimeServer
    from system.switch.profiles import load_profile

    device = Device(switch_ns.sw_ns, switch_ns.ports, PIN_ROOT / f"{switch_ns.prefix}-{tag}",
                    load_profile(profile))
    server = P4RuntimeServer(device, "127.0.0.1:0", stats_file=stats_file, credentials=credentials)
    server.start()
    return server


@dataclass
class SwitchProcess:
    """`python -m system.switch.p4rt` in a subprocess, ended by its PID."""

    ns: SwitchNamespaces
    port: int
    profile: str = "unlimited"
    pin_dir: Path = None  # type: ignore[assignment]   # default: PIN_ROOT/<ns.prefix>-cp
    log: Path | None = None
    stats_file: Path | None = None           # the server's --stats-file
    # A deployment's identities (system/credentials.local_test_set): the server runs with "p4rt"'s
    # (TLS, client certificates required), clients connect with "controlplane"'s; None: --insecure.
    identities: dict[str, Any] | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.pin_dir is None:
            self.pin_dir = PIN_ROOT / f"{self.ns.prefix}-cp"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def creds(self, name: str) -> Any:
        """Identity `name`'s Credentials (None when the server runs --insecure)."""
        return self.identities[name] if self.identities else None

    def start(self) -> SwitchProcess:
        ports = ",".join(f"{n}={dev}" for n, dev in self.ns.ports.items())
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "system.switch.p4rt", "--address", self.address, "--netns", self.ns.sw_ns,
             "--ports", ports, "--pin-dir", str(self.pin_dir), "--profile", self.profile,
             *(["--stats-file", str(self.stats_file)] if self.stats_file else []),
             *(["--credentials", str(self.identities["p4rt"].directory)] if self.identities else ["--insecure"])],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        import grpc
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"P4Runtime server exited with {self.proc.returncode}")
            if self.identities:
                channel = grpc.secure_channel(self.address,
                                              self.identities["controlplane"].grpc_channel_credentials())
            else:
                channel = grpc.insecure_channel(self.address)
            with channel as ch:
                try:
                    grpc.channel_ready_future(ch).result(timeout=0.2)
                    return self
                except grpc.FutureTimeoutError:
                    pass
        raise RuntimeError("P4Runtime server did not start")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
