"""A real TCP connection through the agent: two namespaces joined by a veth pair.

`<prefix>-cli` (interface `<ifprefix>c0`, 198.18.<subnet>.1) plays client and front-end at once;
`<prefix>-srv` (`<ifprefix>s0`, .2) is the back-end, with the agent on its interface and a kernel
TCP server. A real kernel client cannot put `s` into its SYN's ack field, so a test-only TC program
on the client's egress (tests/bpf/client_hooks.c) does it, as the front-end would; the client
kernel then takes the SYN-ACK's seq, which the agent has made `s`, as the server's ISN. From then
on every server->client byte is numbered from `b` by the server and from `s` by the client, and only
the agent's translation (delta = b - s, not 0 but by a 2^-32 chance) keeps the stream intact.
Optionally the client drops one server segment once (`drop_at`), so the client sends SACK blocks.

Everything created carries the prefixes and is removed by `down()`; namespaces, pins, filters.
Used by the agent's real TCP test and by its benchmark.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from system.agent.loader import Agent
from system.bpf import loader
from system.bpf.build import compile_bpf
from system.testing.netns import existing_netns, in_netns, ns_exec, sh

CLIENT_HOOKS = Path(__file__).resolve().parent / "tests" / "bpf" / "client_hooks.c"
SERVER_PORT = 8080
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


@dataclass
class Handshake:
    syn_ack_field: int | None = None     # the client's SYN as it left: its ack field
    synack_seq: int | None = None        # the SYN-ACK as the client received it: its seq
    client_port: int = 0


@dataclass
class Transfer:
    size: int
    expected_sha256: str
    received_sha256: str = ""
    received: int = 0
    seconds: float = 0.0
    handshake: Handshake = field(default_factory=Handshake)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.received == self.size and \
            self.received_sha256 == self.expected_sha256

    @property
    def goodput_mbit_s(self) -> float:
        return self.received * 8 / self.seconds / 1e6 if self.seconds else 0.0


@dataclass
class TcpPair:
    prefix: str = "mrse"
    ifprefix: str = "me"
    subnet: int = 61
    pin_root: Path = loader.BPFFS / "mrse-pair"
    client_s: int = 0xFFFFF000          # near 2^32: the client's view of the stream wraps early
    drop_at: int | None = None
    with_agent: bool = True
    agent: Agent | None = None

    @property
    def client_ns(self) -> str:
        return f"{self.prefix}-cli"

    @property
    def server_ns(self) -> str:
        return f"{self.prefix}-srv"

    @property
    def client_dev(self) -> str:
        return f"{self.ifprefix}c0"

    @property
    def server_dev(self) -> str:
        return f"{self.ifprefix}s0"

    @property
    def client_ip(self) -> str:
        return f"198.18.{self.subnet}.1"

    @property
    def server_ip(self) -> str:
        return f"198.18.{self.subnet}.2"

    def up(self) -> TcpPair:
        self.down()
        try:
            self._up()
        except Exception:
            self.down()
            raise
        return self

    def _up(self) -> None:
        for ns in (self.client_ns, self.server_ns):
            sh("ip", "netns", "add", ns)
            for key in ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
                        "net.ipv4.tcp_timestamps=0", "net.ipv4.tcp_sack=1"):
                ns_exec(ns, "sysctl", "-qw", key)
            ns_exec(ns, "ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", self.client_dev, "netns", self.client_ns, "address", "02:00:3d:00:00:01",
           "type", "veth", "peer", "name", self.server_dev, "netns", self.server_ns,
           "address", "02:00:3d:00:00:02")
        for ns, dev, addr, peer, mac in (
                (self.client_ns, self.client_dev, self.client_ip, self.server_ip, "02:00:3d:00:00:02"),
                (self.server_ns, self.server_dev, self.server_ip, self.client_ip, "02:00:3d:00:00:01")):
            ns_exec(ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
            ns_exec(ns, "ip", "link", "set", dev, "up")
            ns_exec(ns, "ip", "neigh", "replace", peer, "lladdr", mac, "dev", dev, "nud", "permanent")
        defines = {"CLIENT_S": str(self.client_s)}
        if self.drop_at is not None:
            defines["DROP_AT"] = str(self.drop_at)
        with tempfile.TemporaryDirectory(prefix="mrse-pair-") as tmp:
            obj = compile_bpf(CLIENT_HOOKS, Path(tmp) / "client_hooks.o", defines=defines).object_path
            hooks = loader.load_object(obj, self.pin_root / "client")
        loader.attach_tc(self.client_ns, self.client_dev, hooks.prog_path("client_egress"), "egress")
        if self.drop_at is not None:
            loader.attach_tc(self.client_ns, self.client_dev, hooks.prog_path("client_ingress"), "ingress")
        if self.with_agent:
            self.agent = Agent(self.server_ns, self.server_dev, self.pin_root / "agent")
            self.agent.load()
            self.agent.attach()

    def down(self) -> None:
        if self.agent is not None:
            self.agent.unload()
            self.agent = None
        present = existing_netns()
        for ns in (self.client_ns, self.server_ns):
            if ns in present:
                sh("ip", "netns", "del", ns)  # takes the veth pair and its filters with it
        loader.unpin(self.pin_root)

    def netstat(self, ns: str) -> dict[str, int]:
        """TcpExt counters of a namespace (/proc/net/netstat)."""
        lines = ns_exec(ns, "cat", "/proc/net/netstat").splitlines()
        out: dict[str, int] = {}
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            if names.startswith("TcpExt:"):
                out.update(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
        return out

    # One transfer: the client sends "GET <size>\n", the server answers `size` seeded random bytes.

    def transfer(self, size: int, seed: int = 7, timeout: float = 30.0,
                 hold: threading.Event | None = None, received: threading.Event | None = None,
                 client_port: int = 0) -> Transfer:
        """Download `size` bytes. With `hold`, the server keeps the connection open after sending
        until `hold` is set (so the caller can look at the agent's entry), signalled by `received`.
        `client_port` binds the client to that port (SO_REUSEADDR: port reuse)."""
        body = random.Random(seed).randbytes(size)
        result = Transfer(size=size, expected_sha256=hashlib.sha256(body).hexdigest())
        with in_netns(self.server_ns):
            lsock = socket.create_server((self.server_ip, SERVER_PORT), reuse_port=False)
        with in_netns(self.client_ns):
            cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            csock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if client_port:
                csock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                csock.bind((self.client_ip, client_port))
        cap.bind((self.client_dev, 0))
        lsock.settimeout(timeout)
        csock.settimeout(timeout)
        server_error: list[str] = []

        def serve() -> None:
            try:
                conn, _ = lsock.accept()
                with conn:
                    conn.settimeout(timeout)
                    request = b""
                    while not request.endswith(b"\n"):
                        chunk = conn.recv(64)
                        if not chunk:
                            raise ConnectionError("client closed before its request")
                        request += chunk
                    if request != f"GET {size}\n".encode():
                        raise ValueError(f"bad request {request!r}")
                    conn.sendall(body)
                    if hold is not None and not hold.wait(timeout):
                        raise TimeoutError("hold was never released")
                    conn.shutdown(socket.SHUT_WR)
                    while conn.recv(65536):
                        pass
            except Exception as exc:  # reported through the result
                server_error.append(f"server: {exc!r}")

        server = threading.Thread(target=serve, name="mrse-pair-server", daemon=True)
        server.start()
        try:
            csock.connect((self.server_ip, SERVER_PORT))
            result.handshake = _handshake(cap, csock.getsockname()[1])
            cap.close()
            start = time.monotonic()
            csock.sendall(f"GET {size}\n".encode())
            digest = hashlib.sha256()
            while result.received < size:
                chunk = csock.recv(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                result.received += len(chunk)
            result.seconds = time.monotonic() - start
            result.received_sha256 = digest.hexdigest()
            if received is not None:
                received.set()
            if csock.recv(1):
                result.error = "more bytes than the body"
            csock.close()
        except OSError as exc:
            result.error = f"client: {exc!r}"
        finally:
            if hold is not None:
                hold.set()
            csock.close()
            with contextlib.suppress(OSError):
                cap.close()
            server.join(timeout)
            lsock.close()
        if server_error and not result.error:
            result.error = server_error[0]
        return result


def _handshake(cap: socket.socket, client_port: int) -> Handshake:
    """The client's SYN (as it left, after its egress hook) and the SYN-ACK it received, read from
    a packet socket opened before connect()."""
    hs = Handshake(client_port=client_port)
    cap.settimeout(0.5)
    with contextlib.suppress(TimeoutError):
        for _ in range(64):
            frame, addr = cap.recvfrom(65535)
            if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            l4 = 14 + (frame[14] & 0x0F) * 4
            sport = int.from_bytes(frame[l4:l4 + 2], "big")
            dport = int.from_bytes(frame[l4 + 2:l4 + 4], "big")
            flags = frame[l4 + 13]
            seq = int.from_bytes(frame[l4 + 4:l4 + 8], "big")
            ack = int.from_bytes(frame[l4 + 8:l4 + 12], "big")
            if addr[2] == PACKET_OUTGOING and sport == client_port and flags & 0x12 == 0x02:
                hs.syn_ack_field = ack
            elif addr[2] != PACKET_OUTGOING and dport == client_port and flags & 0x12 == 0x12:
                hs.synack_seq = seq
            if hs.syn_ack_field is not None and hs.synack_seq is not None:
                break
    return hs
