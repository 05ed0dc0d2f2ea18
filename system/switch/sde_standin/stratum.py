"""The STAND-IN stratum_bf (`install/bin/stratum_bf` of the stand-in SDE): NOT STRATUM.

It takes the flags `fab deploy` gives the real stratum_bf, and:
- reads the chassis config (`-chassis_config_file`, Stratum's ChassisConfig text format) and brings up
  every singleton port with admin state enabled; the stand-in's "platform" maps front-panel port N
  (channel 1) to device port N, and the port's `name` is the interface of this host that is that
  port (on the local testbed, the switch namespace's `sw-<host>` veths). Speed, FEC and autoneg are
  checked for form and logged; a veth has none of them.
- creates the CPU port as the real SDE's kernel driver does: device port 64 (STANDIN_CPU_PORT), whose
  host netdev is `bf_pci0` (a veth pair swcpu <-> bf_pci0), removed again at exit;
- serves P4Runtime on `-external_stratum_urls` with the emulated switch's server. A pushed
  p4_device_config must be a BfPipelineConfig (or PI's packing) built from the stand-in bf-p4c's
  output: its tofino.bin must be the stand-in's (context.json hash checked). Its p4_name selects the
  emulated pipeline of the same name (system/switch/bpf/<p4_name>.c, compiled with clang here), which
  is what is loaded; GetForwardingPipelineConfig returns the config as pushed. The P4Info must be
  the committed one of that program (the emulated server's own check).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import grpc

from system.switch import bfpipeline

log = logging.getLogger("sde-standin.stratum_bf")
STANDIN_CPU_PORT = 64
CPU_PORT_IF, CPU_NETDEV = "swcpu", "bf_pci0"
BIN_MAGIC = b"MIRESGA-SDE-STANDIN tofino.bin"


# ---- Stratum's ChassisConfig text format (the part the harness writes) --------------------------

_TOKEN = re.compile(r'\s*(?:#[^\n]*\n|([A-Za-z_][A-Za-z0-9_]*)\s*:?\s*(\{)|([A-Za-z_][A-Za-z0-9_]*)\s*:\s*'
                    r'("(?:[^"\\]|\\.)*"|[^\s{}]+)|(\}))')


def parse_textproto(text: str) -> dict[str, list[Any]]:
    """A text-format protobuf message as {field: [values]} (sub-messages are dicts)."""
    stack: list[dict[str, list[Any]]] = [{}]
    pos = 0
    text = text + "\n"
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"chassis config: cannot parse at {text[pos:pos + 40]!r}")
        pos = m.end()
        if m.group(2):
            child: dict[str, list[Any]] = {}
            stack[-1].setdefault(m.group(1), []).append(child)
            stack.append(child)
        elif m.group(3):
            v = m.group(4)
            val: Any = json.loads(v) if v.startswith('"') else (int(v) if re.fullmatch(r"-?\d+", v) else v)
            stack[-1].setdefault(m.group(3), []).append(val)
        elif m.group(5):
            if len(stack) == 1:
                raise ValueError("chassis config: unbalanced }")
            stack.pop()
    if len(stack) != 1:
        raise ValueError("chassis config: unclosed {")
    return stack[0]


def chassis_ports(text: str) -> dict[int, str]:
    """device port -> interface of the enabled singleton ports (the stand-in's platform mapping)."""
    cfg = parse_textproto(text)
    ports: dict[int, str] = {}
    for sp in cfg.get("singleton_ports", []):
        def one(key: str, default: Any = None, sp: dict[str, list[Any]] = sp) -> Any:
            return sp.get(key, [default])[0]
        params = one("config_params", {}) or {}
        admin = (params.get("admin_state") or ["ADMIN_STATE_UNKNOWN"])[0]
        name, port, channel = one("name"), one("port"), one("channel", 1)
        if not isinstance(name, str) or not isinstance(port, int):
            raise ValueError(f"chassis config: singleton port {sp} lacks name or port")
        if channel not in (0, 1):
            raise ValueError(f"chassis config: port {name}: the stand-in has no channelized ports "
                             f"(channel {channel})")
        log.info("chassis port id %s %s: front panel %d/%d, %s bps, fec %s, autoneg %s, %s", one("id"), name,
                 port, channel, one("speed_bps"), (params.get("fec_mode") or ["-"])[0],
                 (params.get("autoneg") or ["-"])[0], admin)
        if admin != "ADMIN_STATE_ENABLED":
            continue
        if port in ports or not 1 <= port < STANDIN_CPU_PORT:
            raise ValueError(f"chassis config: port {name}: front panel port {port} is taken or outside "
                             f"1..{STANDIN_CPU_PORT - 1} (the stand-in's ports)")
        ports[port] = name
    return ports


# ---- the device config -> the emulated pipeline --------------------------------------------------

def check_standin_binary(binary: bytes, context: bytes, where: str) -> None:
    if not binary.startswith(BIN_MAGIC):
        raise ValueError(f"{where}: tofino.bin is not the stand-in's (a real Tofino binary cannot run "
                         "on the stand-in)")
    want = f"context.json sha256 {hashlib.sha256(context).hexdigest()}".encode()
    if want not in binary.split(b"\n", 2)[1:2]:
        raise ValueError(f"{where}: tofino.bin was not built with this context.json")


def program_of(device_config: bytes) -> str:
    """The P4 program a stand-in device config carries (checked), or ValueError."""
    try:
        cfg = bfpipeline.decode(device_config)
    except bfpipeline.PipelineConfigError:
        try:
            name, binary, context = bfpipeline.decode_pi(device_config)
        except bfpipeline.PipelineConfigError as e:
            raise ValueError(f"p4_device_config is neither a BfPipelineConfig nor PI's packing: {e}") from None
        check_standin_binary(binary, context, name)
        return name
    if not cfg.profiles:
        raise ValueError(f"BfPipelineConfig {cfg.p4_name}: no profiles (pipes)")
    json.loads(cfg.bfruntime_info or b"{}")
    for p in cfg.profiles:
        json.loads(p.context)
        check_standin_binary(p.binary, p.context, f"{cfg.p4_name} profile {p.name}")
    return cfg.p4_name


class StandinSwitch:
    """The emulated target behind the stand-in: loads the eBPF pipeline named by the device config."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._packages: dict[str, bytes] = {}

    def package(self, device_config: bytes) -> bytes:
        name = program_of(device_config)
        if name not in self._packages:
            from system.switch.package import build_package
            log.info("stand-in: P4 program %s -> the emulated pipeline %s (eBPF, clang)", name, name)
            self._packages[name] = build_package(name)
        return self._packages[name]

    @property
    def loaded(self) -> bool:
        return bool(self.inner.loaded)

    def load(self, device_config: bytes) -> Any:
        return self.inner.load(self.package(device_config))

    def unload(self) -> None:
        self.inner.unload()


def make_device(ports: dict[int, str], pin_dir: Path, profile: Any, device_id: int) -> Any:
    from system.switch.p4rt.device import Device
    from system.switch.p4rt.errors import P4RTError

    class StandinDevice(Device):
        @property
        def switch(self) -> Any:
            if self._switch is None:
                from system.switch.p4rt import compat
                self._switch = StandinSwitch(compat.make_switch(self.netns, self.ports, self.pin_dir))
            return self._switch

        def verify(self, config: Any) -> Any:
            try:
                package = self.switch.package(config.p4_device_config)
            except (ValueError, json.JSONDecodeError) as e:
                raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"p4_device_config (stand-in SDE): {e}") from None
            inner = type(config)()
            inner.CopyFrom(config)
            inner.p4_device_config = package
            prepared = super().verify(inner)
            prepared.config = config          # Get returns what was pushed; commit translates again
            return prepared

    return StandinDevice(None, ports, pin_dir, profile, device_id=device_id)


# ---- the daemon ----------------------------------------------------------------------------------

def _gflags(argv: list[str]) -> dict[str, str]:
    known = {"chassis_config_file", "bf_sde_install", "bf_switchd_cfg", "bf_switchd_background",
             "external_stratum_urls", "persistent_config_dir", "forwarding_pipeline_configs_file",
             "write_req_log_file", "log_dir", "enable_onlp", "bf_sim", "colorlogtostderr", "logtostderr",
             "ca_cert_file", "server_cert_file", "server_key_file"}      # Stratum's gRPC TLS flags
    flags: dict[str, str] = {}
    for a in argv:
        m = re.fullmatch(r"--?([a-z_]+)(?:=(.*))?", a)
        if not m or m.group(1) not in known:
            raise SystemExit(f"stratum_bf (stand-in): unknown flag {a!r} (known: {', '.join(sorted(known))})")
        flags[m.group(1)] = m.group(2) if m.group(2) is not None else "true"
    return flags


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--version", "-version"):
        print("stratum_bf STAND-IN (Miresga's stand-in SDE; the emulated switch behind P4Runtime)")
        return 0
    flags = _gflags(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.warning("THIS IS A STAND-IN FOR stratum_bf (Miresga's local testbed), not Stratum: results are emulated")
    for need in ("chassis_config_file", "external_stratum_urls", "persistent_config_dir"):
        if need not in flags:
            print(f"stratum_bf (stand-in): -{need} is required", file=sys.stderr)
            return 2
    cfg = flags.get("bf_switchd_cfg")
    if cfg is not None and not Path(cfg).is_file():
        print(f"stratum_bf (stand-in): -bf_switchd_cfg {cfg}: no such file", file=sys.stderr)
        return 2
    try:
        ports = chassis_ports(Path(flags["chassis_config_file"]).read_text())
    except (OSError, ValueError) as e:
        print(f"stratum_bf (stand-in): {e}", file=sys.stderr)
        return 2
    for port, dev in ports.items():
        if _ip("link", "show", dev, check=False).returncode != 0:
            print(f"stratum_bf (stand-in): port {port}: no interface {dev!r} on this host", file=sys.stderr)
            return 1
        _ip("link", "set", dev, "up")
    state = Path(flags["persistent_config_dir"])
    url = flags["external_stratum_urls"].split(",")[-1]
    # Stratum's gRPC TLS flags: the three files of one identity directory (system/credentials.py)
    tls = [flags.get(f) for f in ("ca_cert_file", "server_cert_file", "server_key_file")]
    creds = None
    if any(tls):
        from system.credentials import CredentialError, Credentials
        dirs = {str(Path(f).parent) for f in tls if f}
        if None in tls or len(dirs) != 1:
            print("stratum_bf (stand-in): -ca_cert_file, -server_cert_file and -server_key_file go together, "
                  "in one identity directory", file=sys.stderr)
            return 2
        try:
            creds = Credentials.load(dirs.pop())
        except CredentialError as e:
            print(f"stratum_bf (stand-in): {e}", file=sys.stderr)
            return 2
    return serve("stratum_bf", ports, url, state, creds)


def serve(name: str, ports: dict[int, str], url: str, state: Path, creds: Any) -> int:
    """The daemon's common part (stratum_bf and bf_switchd stand-ins): the CPU port, the emulated
    switch's P4Runtime server on `url` (TLS with `creds`, else none) over `ports` (device port ->
    interface), until SIGTERM/SIGINT; then the pipeline is unloaded and the CPU port removed."""
    ports = dict(ports)
    if _ip("link", "show", CPU_NETDEV, check=False).returncode != 0:
        _ip("link", "del", CPU_PORT_IF, check=False)       # a pair with another peer (the emulated target's)
        _ip("link", "add", CPU_PORT_IF, "type", "veth", "peer", "name", CPU_NETDEV)
    for dev in (CPU_PORT_IF, CPU_NETDEV):
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], capture_output=True, check=False)
        _ip("link", "set", dev, "up")
    ports[STANDIN_CPU_PORT] = CPU_PORT_IF

    from system.switch.p4rt.server import P4RuntimeServer
    from system.switch.profiles import load_profile

    state.mkdir(parents=True, exist_ok=True)
    # Pinned under this host's namespace name where there is one (the local testbed's teardown removes
    # <netns>-* after a crash), else under a name derived from the state directory.
    ns = subprocess.run(["ip", "netns", "identify", str(os.getpid())], capture_output=True, text=True,
                        check=False).stdout.strip()
    pin_dir = Path("/sys/fs/bpf") / (f"{ns}-sde-standin" if ns else
                                     f"sde-standin-{hashlib.sha1(str(state.resolve()).encode()).hexdigest()[:10]}")
    device = make_device(ports, pin_dir, load_profile(None), device_id=1)
    try:
        server = P4RuntimeServer(device, url, stats_file=state / "standin-p4rt-stats.json", credentials=creds)
    except OSError as e:
        print(f"{name} (stand-in): {e}", file=sys.stderr)
        _ip("link", "del", CPU_PORT_IF, check=False)
        return 1
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start()
    log.info("stand-in %s: P4Runtime on %s (%s), ports %s (CPU port %d = %s)", name, server.address,
             "TLS" if creds else "no TLS", ", ".join(f"{p}={d}" for p, d in sorted(ports.items())),
             STANDIN_CPU_PORT, CPU_NETDEV)
    print(f"listening on {server.address}", flush=True)
    done.wait()
    server.stop()
    _ip("link", "del", CPU_PORT_IF, check=False)
    log.info("stand-in %s: stopped; pipeline unloaded, CPU port removed", name)
    return 0

if __name__ == "__main__":
    sys.exit(main())
