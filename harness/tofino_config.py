"""The inventory's keys for a Tofino switch (`switch: {target: tofino, ...}`), validated on load.

    switch:
      target: tofino
      sde: /opt/bf-sde-9.13.4          # $SDE on the switch host (relative: to the repository, for the stand-in)
      sde_install: /opt/bf-sde-9.13.4/install   # $SDE_INSTALL (default {sde}/install)
      sde_version: "9.13.4"            # checked against `bf-p4c --version`
      chip: tofino                     # tofino (TNA) or tofino2 (T2NA)
      p4runtime_server: stratum_bf     # or bf_switchd (built with P4Runtime: --p4rt-server)
      server_binary: /usr/bin/stratum_bf        # default {sde_install}/bin/<server>
      server_args: ["-enable_onlp=false"]       # extra flags for the server (platform specific)
      switchd_conf: ...                # bf_switchd conf (default {sde_install}/share/p4/targets/<chip>/skip_p4.conf)
      cpu_port: 192                    # the CPU PCIe port's device port (switch-only's slow path)
      cpu_netdev: bf_pci0              # its netdev on the switch CPU (the SDE's kernel packet driver)
      ports:                           # every front-panel port the inventory's hosts are cabled to
        - {port: "1/0", dev_port: 132, speed: 100G, fec: rs, autoneg: off}

Errors name the field (`switch.ports[2].fec: ...`), like every other inventory error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("stratum_bf", "bf_switchd")
CHIPS = {"tofino": "tna", "tofino2": "t2na"}
SPEEDS = {"10G": 10, "25G": 25, "40G": 40, "50G": 50, "100G": 100, "200G": 200, "400G": 400}
FECS = ("none", "fc", "rs")
AUTONEG = ("default", "on", "off")
# FEC a speed can use (Tofino port manager): Firecode up to 50G, Reed-Solomon from 25G.
_FEC_OK = {"fc": {"10G", "25G", "40G", "50G"}, "rs": {"25G", "50G", "100G", "200G", "400G"}}
KEYS = {"sde", "sde_install", "sde_version", "chip", "p4runtime_server", "server_binary", "server_args",
        "switchd_conf", "cpu_netdev", "ports"}
_PANEL = re.compile(r"^(\d{1,2})/([0-7])$")


@dataclass(frozen=True)
class TofinoPort:
    port: str          # front-panel port/channel as the SDE names it ("1/0")
    dev_port: int      # the device (P4) port number
    speed: str
    fec: str
    autoneg: str
    name: str          # the port's name in Stratum's chassis config (default: port)

    @property
    def panel(self) -> tuple[int, int]:
        m = _PANEL.match(self.port)
        assert m
        return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class TofinoConfig:
    sde: str
    sde_install: str
    sde_version: str
    chip: str
    server: str
    server_binary: str
    server_args: tuple[str, ...]
    switchd_conf: str
    cpu_netdev: str
    ports: tuple[TofinoPort, ...]

    @property
    def arch(self) -> str:
        return CHIPS[self.chip]

    def port(self, dev_port: int) -> TofinoPort | None:
        return next((p for p in self.ports if p.dev_port == dev_port), None)


def _path(p: str) -> str:
    path = Path(p).expanduser() if p.startswith("~") else Path(p)
    return str(path if path.is_absolute() else ROOT / path)


def parse(ctx: Any, sw: dict[str, Any], target: str) -> TofinoConfig | None:
    """The Tofino keys of `switch:` (None for other targets, which must not carry them)."""
    present = sorted(set(sw) & KEYS)
    if target != "tofino":
        if present:
            raise ctx.fail(f"switch.{present[0]}", f"is a key of target tofino, not {target}")
        return None
    p = "switch."
    sde = _path(ctx.get(sw, "sde", p, str))
    sde_install = _path(ctx.get(sw, "sde_install", p, str, f"{sde}/install"))
    version = ctx.get(sw, "sde_version", p, str)
    if not re.fullmatch(r"\d+\.\d+\.\d+\S*", version):
        raise ctx.fail("switch.sde_version", f"{version!r} is not an SDE version (e.g. \"9.13.4\", quoted)")
    chip = ctx.get(sw, "chip", p, str, "tofino")
    if chip not in CHIPS:
        raise ctx.fail("switch.chip", f"must be one of {', '.join(CHIPS)}, not {chip!r}")
    server = ctx.get(sw, "p4runtime_server", p, str, "stratum_bf")
    if server not in SERVERS:
        raise ctx.fail("switch.p4runtime_server", f"must be one of {', '.join(SERVERS)}, not {server!r}")
    binary = _path(ctx.get(sw, "server_binary", p, str, f"{sde_install}/bin/{server}"))
    args = ctx.get(sw, "server_args", p, list, [])
    if not all(isinstance(a, str) for a in args):
        raise ctx.fail("switch.server_args", "must be a list of strings (flags for the P4Runtime server)")
    conf = _path(ctx.get(sw, "switchd_conf", p, str, f"{sde_install}/share/p4/targets/{chip}/skip_p4.conf"))
    netdev = ctx.get(sw, "cpu_netdev", p, str, "bf_pci0")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", netdev):
        raise ctx.fail("switch.cpu_netdev", f"{netdev!r} is not an interface name")
    raw_ports = ctx.get(sw, "ports", p, list)
    if not raw_ports:
        raise ctx.fail("switch.ports", "needs at least one port (the front-panel ports the hosts are on)")
    ports: list[TofinoPort] = []
    for i, rp in enumerate(raw_ports):
        ports.append(_port(ctx, rp, f"switch.ports[{i}].", chip, ports))
    return TofinoConfig(sde=sde, sde_install=sde_install, sde_version=version, chip=chip, server=server,
                        server_binary=binary, server_args=tuple(args), switchd_conf=conf, cpu_netdev=netdev,
                        ports=tuple(ports))


def _port(ctx: Any, rp: Any, path: str, chip: str, seen: list[TofinoPort]) -> TofinoPort:
    if not isinstance(rp, dict):
        raise ctx.fail(path.rstrip("."), "must be a mapping {port, dev_port, speed, fec, autoneg}")
    unknown = sorted(set(rp) - {"port", "dev_port", "speed", "fec", "autoneg", "name"})
    if unknown:
        raise ctx.fail(path + unknown[0], "unknown field (known: autoneg, dev_port, fec, name, port, speed)")
    panel = ctx.get(rp, "port", path, str)
    if not _PANEL.match(panel):
        raise ctx.fail(path + "port", f"{panel!r} is not a front-panel port/channel such as \"1/0\"")
    dev = ctx.get(rp, "dev_port", path, int)
    if not 0 <= dev < 512:
        raise ctx.fail(path + "dev_port", f"{dev} is not a device port (0..511, 9 bits)")
    speed = str(ctx.get(rp, "speed", path, str, "100G")).upper()
    if speed not in SPEEDS or (chip == "tofino" and SPEEDS[speed] > 100):
        ok = [s for s in SPEEDS if chip != "tofino" or SPEEDS[s] <= 100]
        raise ctx.fail(path + "speed", f"{speed!r} is not a {chip} port speed ({', '.join(ok)})")
    fec = ctx.get(rp, "fec", path, str, "none").lower()
    if fec not in FECS:
        raise ctx.fail(path + "fec", f"must be one of {', '.join(FECS)}, not {fec!r}")
    if fec != "none" and speed not in _FEC_OK[fec]:
        raise ctx.fail(path + "fec", f"{fec} is not available at {speed} (fc: 10-50G, rs: 25G and up)")
    if speed == "400G" and fec != "rs":
        raise ctx.fail(path + "fec", "400G ports need rs")
    an = rp.get("autoneg", "default")
    an = {True: "on", False: "off"}.get(an, an) if isinstance(an, bool) else an   # YAML reads off as False
    if an not in AUTONEG:
        raise ctx.fail(path + "autoneg", f"must be one of {', '.join(AUTONEG)}, not {an!r}")
    name = ctx.get(rp, "name", path, str, panel)
    for other in seen:
        if other.port == panel:
            raise ctx.fail(path + "port", f"{panel} is listed twice")
        if other.dev_port == dev:
            raise ctx.fail(path + "dev_port", f"{dev} is also port {other.port}'s")
        if other.name == name:
            raise ctx.fail(path + "name", f"{name!r} is also port {other.port}'s name")
    return TofinoPort(port=panel, dev_port=dev, speed=speed, fec=fec, autoneg=an, name=name)


def check_hosts(ctx: Any, cfg: TofinoConfig, hosts: list[Any], kind: str, cpu_port: int) -> None:
    """Every host on the data plane is on one of the listed ports; the CPU port is none of them."""
    if cfg.port(cpu_port) is not None:
        raise ctx.fail("switch.cpu_port", f"{cpu_port} is front-panel port {cfg.port(cpu_port).port} "  # type: ignore[union-attr]
                       "in switch.ports: the CPU port is the PCIe port")
    data_hosts = [(i, h) for i, h in enumerate(hosts) if h.data_address is not None]
    for n, (i, h) in enumerate(data_hosts, start=1):
        if kind == "local":      # the local testbed numbers the switch's ports 1..N in host order
            dev, field = n, f"hosts[{i}] ({h.name}, switch port {n} of the local testbed)"
        elif h.switch_port is None or not h.switch_port.isdigit():
            raise ctx.fail(f"hosts[{i}].switch_port", f"must be the device port number, not {h.switch_port!r}")
        else:
            dev, field = int(h.switch_port), f"hosts[{i}].switch_port"
        if cfg.port(dev) is None:
            raise ctx.fail(field, f"device port {dev} is not in switch.ports "
                           f"(listed: {', '.join(str(p.dev_port) for p in cfg.ports)})")


def provenance(inv: Any) -> dict[str, Any] | None:
    """The run manifest's account of a Tofino switch: which SDE and server, and whether it is the
    stand-in (a local testbed has no Tofino; the stand-in's directory carries a STAND-IN file)."""
    t = inv.switch.tofino
    if t is None:
        return None
    return {"sde": t.sde, "sde_version": t.sde_version, "p4runtime_server": t.server, "chip": t.chip,
            "stand_in": inv.kind == "local" or (Path(t.sde) / "STAND-IN").is_file()}
