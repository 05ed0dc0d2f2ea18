"""The inventory: one description of a cluster (hosts, roles, addresses, VIP, catalog, switch target).

Loaded from YAML and validated before anything is touched; a wrong file raises one InventoryError
whose message names the file and the field. `harness/inventories/local.yaml` describes the local
testbed (network namespaces on this machine); `harness/inventories/tofino-cluster.example.yaml` is an
annotated example for a real cluster.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import tofino_config

ROOT = Path(__file__).resolve().parent.parent
INVENTORIES = ROOT / "harness" / "inventories"
ROLES = ("client", "switch", "frontend", "backend", "attacker")
KINDS = ("local", "cluster")
SWITCH_TARGETS = ("bridge", "emulated", "tofino")

# The default object catalog (evaluation.md): name -> size in bytes.
DEFAULT_CATALOG = {
    "1k": 1024,                 # first: deploy probes the first object
    "1b": 1,                    # new connections per second: setup cost with (almost) no transfer
    "10k": 10 * 1024,
    "64k": 64 * 1024,
    "512k": 512 * 1024,
    "1m": 1024 * 1024,
    "10m": 10 * 1024 * 1024,
}


class InventoryError(ValueError):
    """A malformed inventory; the message names the file and the field."""


@dataclass(frozen=True)
class Host:
    name: str
    role: str
    ssh_address: str
    ssh_port: int
    ssh_user: str
    ssh_key: str | None
    data_address: ipaddress.IPv4Address | None
    data_interface: str
    data_mac: str | None
    switch_port: str | None
    mgmt_address: ipaddress.IPv4Address | None
    cores: tuple[int, ...]
    workdir: str
    python: str

    @property
    def index(self) -> int:
        """The host's number within its role, from 1 (fe1 -> 1); used for derived names."""
        m = re.search(r"(\d+)$", self.name)
        return int(m.group(1)) if m else 1


@dataclass(frozen=True)
class CatalogObject:
    name: str
    size: int

    @property
    def path(self) -> str:
        return f"/obj/{self.name}"


@dataclass(frozen=True)
class SwitchConfig:
    target: str
    profile: Path
    p4runtime_port: int
    cpu_port: int = 64        # P4 port of the switch CPU (switch-only baseline's slow path)
    tofino: Any = None        # harness.tofino_config.TofinoConfig for target tofino (SDE, server, ports)


@dataclass(frozen=True)
class Inventory:
    name: str
    kind: str
    source: Path | None
    vip: ipaddress.IPv4Address
    vip_port: int
    data_network: ipaddress.IPv4Network
    mgmt_network: ipaddress.IPv4Network | None
    switch: SwitchConfig
    hosts: tuple[Host, ...]
    catalog: tuple[CatalogObject, ...]
    rules: Path
    locust_workers_per_client: int | None  # None: one per listed core
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def role(self, role: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.role == role)

    @property
    def clients(self) -> tuple[Host, ...]:
        return self.role("client")

    @property
    def attackers(self) -> tuple[Host, ...]:
        """Hosts on the client side that play attacks (the `attacks` axis of a suite), never load."""
        return self.role("attacker")

    @property
    def frontends(self) -> tuple[Host, ...]:
        return self.role("frontend")

    @property
    def backends(self) -> tuple[Host, ...]:
        return self.role("backend")

    @property
    def switch_host(self) -> Host:
        return self.role("switch")[0]

    @property
    def emulated(self) -> bool:
        """Results from anything but a real Tofino are labelled emulated: a tofino target on the local
        testbed is the stand-in SDE (system/switch/sde_standin), whose switch is the emulated one."""
        return self.switch.target != "tofino" or self.kind == "local"

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(f"inventory {self.name!r} has no host {name!r}")

    def workers_for(self, client: Host) -> int:
        return self.locust_workers_per_client or max(1, len(client.cores))


# ---------------------------------------------------------------------------------------------
# Loading and validation


class _Ctx:
    """Carries the file name so that every error names file and field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, msg: str) -> InventoryError:
        return InventoryError(f"{self.source}: {path}: {msg}")

    def get(self, d: dict[str, Any], key: str, path: str, typ: type | tuple[type, ...],
            default: Any = ..., ) -> Any:
        if key not in d or d[key] is None:
            if default is ...:
                raise self.fail(f"{path}{key}", "is required")
            return default
        v = d[key]
        if typ is int and isinstance(v, bool):
            raise self.fail(f"{path}{key}", f"must be an integer, not {v!r}")
        if not isinstance(v, typ):
            names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise self.fail(f"{path}{key}", f"must be {names}, not {type(v).__name__} {v!r}")
        return v

    def ip(self, value: Any, path: str) -> ipaddress.IPv4Address:
        try:
            return ipaddress.IPv4Address(str(value))
        except ValueError:
            raise self.fail(path, f"{value!r} is not an IPv4 address") from None

    def net(self, value: Any, path: str) -> ipaddress.IPv4Network:
        try:
            return ipaddress.IPv4Network(str(value))
        except ValueError:
            raise self.fail(path, f"{value!r} is not an IPv4 network (a.b.c.d/len)") from None


_KNOWN_TOP = {"name", "kind", "vip", "vip_port", "networks", "defaults", "switch", "hosts", "catalog",
              "rules", "locust"}
_KNOWN_SWITCH = {"target", "profile", "p4runtime_port", "cpu_port"}
_KNOWN_HOST = {"name", "role", "ssh", "data", "mgmt", "switch_port", "cores", "workdir", "python"}
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,11}$")
BENCHMARK_RANGE = ipaddress.IPv4Network("198.18.0.0/15")


def load(path: str | Path | None = None) -> Inventory:
    """Loads an inventory by path or by name of a shipped one (`local`); default: local."""
    p = resolve_path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise InventoryError(f"{p}: cannot read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InventoryError(f"{p}: not valid YAML: {e}") from None
    return parse(data, source=p)


def resolve_path(path: str | Path | None) -> Path:
    if path is None:
        return INVENTORIES / "local.yaml"
    p = Path(path)
    if not p.suffix and not p.exists():
        p = INVENTORIES / f"{path}.yaml"
    return p


def parse(data: Any, source: Path | None = None) -> Inventory:
    ctx = _Ctx(str(source) if source else "<inventory>")
    if not isinstance(data, dict):
        raise ctx.fail("(top level)", "must be a mapping")
    unknown = set(data) - _KNOWN_TOP
    if unknown:
        raise ctx.fail(sorted(unknown)[0], f"unknown field (known: {', '.join(sorted(_KNOWN_TOP))})")
    name = ctx.get(data, "name", "", str)
    kind = ctx.get(data, "kind", "", str, "cluster")
    if kind not in KINDS:
        raise ctx.fail("kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    vip = ctx.ip(ctx.get(data, "vip", "", str), "vip")
    vip_port = ctx.get(data, "vip_port", "", int, 80)
    if not 0 < vip_port < 65536:
        raise ctx.fail("vip_port", f"{vip_port} is not a TCP port")

    nets = ctx.get(data, "networks", "", dict, {})
    data_net = ctx.net(ctx.get(nets, "data", "networks.", str, "198.18.0.0/24"), "networks.data")
    mgmt_raw = ctx.get(nets, "management", "networks.", str, None)
    mgmt_net = ctx.net(mgmt_raw, "networks.management") if mgmt_raw else None
    if kind == "local":
        # Network safety: the local testbed only ever uses the benchmarking range.
        for label, net in (("networks.data", data_net), ("networks.management", mgmt_net)):
            if net is None:
                raise ctx.fail(label, "is required for a local testbed")
            if not net.subnet_of(BENCHMARK_RANGE):
                raise ctx.fail(label, f"{net} is outside 198.18.0.0/15, the only range the local "
                               "testbed may use")
        if data_net.overlaps(mgmt_net):
            raise ctx.fail("networks.management", "overlaps networks.data")
    if vip not in data_net:
        raise ctx.fail("vip", f"{vip} is not inside networks.data {data_net}")

    sw = ctx.get(data, "switch", "", dict)
    target = ctx.get(sw, "target", "switch.", str)
    if target not in SWITCH_TARGETS:
        raise ctx.fail("switch.target", f"must be one of {', '.join(SWITCH_TARGETS)}, not {target!r}")
    profile = _project_path(ctx.get(sw, "profile", "switch.", str, "system/switch/profiles/tofino1.yaml"))
    cpu_port = ctx.get(sw, "cpu_port", "switch.", int, 64)
    if not 0 <= cpu_port < 512:
        raise ctx.fail("switch.cpu_port", f"{cpu_port} is not a P4 port (0..511, 9 bits)")
    if target == "emulated" and not 1 <= cpu_port <= 64:
        raise ctx.fail("switch.cpu_port", f"{cpu_port}: the emulated switch's ports are 1..64")
    unknown_sw = sorted(set(sw) - _KNOWN_SWITCH - tofino_config.KEYS)
    if unknown_sw:
        raise ctx.fail(f"switch.{unknown_sw[0]}", "unknown field (known: "
                       f"{', '.join(sorted(_KNOWN_SWITCH | tofino_config.KEYS))})")
    switch = SwitchConfig(target=target, profile=profile,
                          p4runtime_port=ctx.get(sw, "p4runtime_port", "switch.", int, 9559), cpu_port=cpu_port,
                          tofino=tofino_config.parse(ctx, sw, target))

    defaults = ctx.get(data, "defaults", "", dict, {})
    hosts_raw = ctx.get(data, "hosts", "", list)
    hosts: list[Host] = []
    seen_names: set[str] = set()
    seen_data: dict[ipaddress.IPv4Address, str] = {}
    for i, h in enumerate(hosts_raw):
        host = _parse_host(ctx, h, f"hosts[{i}].", defaults, kind, data_net, mgmt_net)
        if host.name in seen_names:
            raise ctx.fail(f"hosts[{i}].name", f"duplicate host name {host.name!r}")
        seen_names.add(host.name)
        if host.data_address is not None:
            if host.data_address in seen_data:
                raise ctx.fail(f"hosts[{i}].data", f"{host.data_address} is also {seen_data[host.data_address]}'s")
            if host.data_address == vip:
                raise ctx.fail(f"hosts[{i}].data", f"{vip} is the VIP")
            seen_data[host.data_address] = host.name
        hosts.append(host)
    counts = {r: sum(1 for h in hosts if h.role == r) for r in ROLES}
    for r in ("client", "frontend", "backend"):
        if counts[r] == 0:
            raise ctx.fail("hosts", f"needs at least one host with role {r}")
    if counts["switch"] != 1:
        raise ctx.fail("hosts", f"needs exactly one host with role switch, found {counts['switch']}")
    if switch.tofino is not None:
        tofino_config.check_hosts(ctx, switch.tofino, hosts, kind, switch.cpu_port)

    catalog_raw = ctx.get(data, "catalog", "", dict, DEFAULT_CATALOG)
    catalog = []
    for oname, size in catalog_raw.items():
        if not isinstance(oname, str) or not re.fullmatch(r"[a-z0-9_-]+", oname):
            raise ctx.fail(f"catalog.{oname}", "object names are lower-case letters, digits, - and _")
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ctx.fail(f"catalog.{oname}", f"size must be a positive number of bytes, not {size!r}")
        catalog.append(CatalogObject(oname, size))

    rules = _project_path(ctx.get(data, "rules", "", str, "system/rules/default.yaml"))
    locust = ctx.get(data, "locust", "", dict, {})
    wpc = ctx.get(locust, "workers_per_client", "locust.", int, None)
    if wpc is not None and wpc < 1:
        raise ctx.fail("locust.workers_per_client", "must be at least 1")

    return Inventory(name=name, kind=kind, source=source, vip=vip, vip_port=vip_port,
                     data_network=data_net, mgmt_network=mgmt_net, switch=switch,
                     hosts=tuple(hosts), catalog=tuple(catalog), rules=rules,
                     locust_workers_per_client=wpc, raw=data)


def _project_path(p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else ROOT / path


def _parse_host(ctx: _Ctx, h: Any, path: str, defaults: dict[str, Any], kind: str,
                data_net: ipaddress.IPv4Network, mgmt_net: ipaddress.IPv4Network | None) -> Host:
    if not isinstance(h, dict):
        raise ctx.fail(path.rstrip("."), "must be a mapping")
    unknown = set(h) - _KNOWN_HOST
    if unknown:
        raise ctx.fail(path + sorted(unknown)[0], f"unknown field (known: {', '.join(sorted(_KNOWN_HOST))})")
    name = ctx.get(h, "name", path, str)
    if not _NAME.fullmatch(name):
        raise ctx.fail(path + "name", f"{name!r}: use 1-12 lower-case letters, digits and -, "
                       "starting with a letter (it names namespaces and interfaces)")
    role = ctx.get(h, "role", path, str)
    if role not in ROLES:
        raise ctx.fail(path + "role", f"must be one of {', '.join(ROLES)}, not {role!r}")

    mgmt = None
    if "mgmt" in h:
        mgmt = ctx.ip(ctx.get(h, "mgmt", path, str), path + "mgmt")
        if mgmt_net is not None and mgmt not in mgmt_net:
            raise ctx.fail(path + "mgmt", f"{mgmt} is not inside networks.management {mgmt_net}")
    elif kind == "local":
        raise ctx.fail(path + "mgmt", "is required on a local testbed (the host's management address)")

    ssh_d = {**ctx.get(defaults, "ssh", "defaults.", dict, {}), **ctx.get(h, "ssh", path, dict, {})}
    ssh_address = ssh_d.get("address") or (str(mgmt) if mgmt else None)
    if not ssh_address:
        raise ctx.fail(path + "ssh.address", "is required (or give mgmt)")
    ssh_port = ctx.get(ssh_d, "port", path + "ssh.", int, 22)
    ssh_user = ctx.get(ssh_d, "user", path + "ssh.", str, "root")
    ssh_key = ctx.get(ssh_d, "key", path + "ssh.", str, None)

    data_addr: ipaddress.IPv4Address | None = None
    data_if = "eth0"
    data_mac = None
    if role != "switch":
        d = ctx.get(h, "data", path, (str, dict))
        if isinstance(d, str):
            d = {"address": d}
        data_addr = ctx.ip(ctx.get(d, "address", path + "data.", str), path + "data.address")
        if data_addr not in data_net:
            raise ctx.fail(path + "data.address", f"{data_addr} is not inside networks.data {data_net}")
        data_if = ctx.get(d, "interface", path + "data.", str, "eth0")
        data_mac = ctx.get(d, "mac", path + "data.", str, None)
        if data_mac is not None and not _MAC.fullmatch(data_mac.lower()):
            raise ctx.fail(path + "data.mac", f"{data_mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
        if data_mac is None and kind == "cluster":
            raise ctx.fail(path + "data.mac", "is required on a cluster (the switch tables need it)")
    switch_port = h.get("switch_port")
    if switch_port is not None:
        switch_port = str(switch_port)
    elif kind == "cluster" and role != "switch":
        raise ctx.fail(path + "switch_port", "is required on a cluster (the switch port the host is on)")

    cores_v = h.get("cores", defaults.get("cores", [0]))
    if not isinstance(cores_v, list) or not cores_v or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cores_v):
        raise ctx.fail(path + "cores", f"must be a non-empty list of CPU numbers, not {cores_v!r}")

    workdir_t = h.get("workdir", defaults.get("workdir", "/opt/miresga"))
    if not isinstance(workdir_t, str) or not workdir_t.startswith("/"):
        raise ctx.fail(path + "workdir", f"must be an absolute path, not {workdir_t!r}")
    python = h.get("python", defaults.get("python", "python3"))
    if not isinstance(python, str):
        raise ctx.fail(path + "python", "must be a string (an interpreter path, or 'harness')")
    return Host(name=name, role=role, ssh_address=str(ssh_address), ssh_port=ssh_port, ssh_user=ssh_user,
                ssh_key=ssh_key, data_address=data_addr, data_interface=data_if,
                data_mac=data_mac.lower() if data_mac else None, switch_port=switch_port,
                mgmt_address=mgmt, cores=tuple(cores_v), workdir=workdir_t.format(host=name),
                python=python)
