"""Static table entries derived from the inventory and the switch's port map.

The port map comes from the testbed (harness/testbed.py on the local testbed, the cluster's cabling
on a real one): host name -> (P4 port number, host data MAC, switch port MAC). `load_port_map` reads
it from YAML/JSON: `{client1: {port: 1, mac: "02:..", switch_mac: "02:.."}, ...}`.

For the `forwarding` pipeline: one /32 route per host data address to the host's switch port,
source MAC := the switch port's MAC, destination MAC := the host's MAC.

For the `miresga` pipeline (docs/miresga-datapath.md), the same routes plus:
- `vip`: (inventory vip, vip_port) -> mark_vip;
- `backends`: (each back-end's data address, vip_port) -> mark_backend(vip, vip_port) (back-ends
  listen on vip_port, as deploy configures them);
- `frontend_bucket`: every bucket 0..N-1 (N = FRONTEND_BUCKETS, the modulus of the switch's bucket
  hash) -> to_frontend(port, dmac), buckets spread round robin over the inventory's front-ends
  (bucket b -> front-end b mod F, in inventory order);
- `backend_by_index`: index i, 1-based in inventory order of the back-ends (harness.deploy's
  backend_index) -> set_backend(port, dmac, dst_addr, dst_port=vip_port).
- the back-end guard (docs/miresga-datapath.md "The guard"): `protected_hosts`: each back-end's
  data address -> mark_protected; `trusted_ports`: the switch port of each front-end and back-end ->
  mark_trusted. Anything else addressed to a back-end (a client's SYN, RST, data, UDP, ICMP) is
  dropped; the client ACKs the switch rewrites to a back-end are addressed to the VIP and pass.
The `syn_cookie` secret is no static entry: the controller sets and rotates it.

For the `switch_only` pipeline (docs/switch-only-datapath.md), first the keyless `slow_path`'s
default action set_slow_path(port = the inventory's switch.cpu_port, default 64), then the same
routes plus `vip` as for miresga and `backends`: (each back-end's data address, vip_port) ->
mark_backend() (no params), and the guard: `protected_hosts` as for miresga, `trusted_ports` the
back-ends' ports and the CPU port (the slow path sends the spliced connections' first segments to
the back-ends from there; switch_only has no front-ends, so their ports are not trusted).
conn_in/conn_out are written at run time by the slow path; the
`syn_cookie` secret by the controller, as for miresga.

An entry of a keyless table (no key fields: slow_path) is its default action: the controller writes
it as a MODIFY of the default entry, not as an INSERT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.inventory import Host, Inventory
from system.switch.cookie import FRONTEND_BUCKETS

StaticEntry = tuple[str, dict[str, Any], str, dict[str, Any]]   # (table, key, action, params)
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class PortMapError(ValueError):
    """A malformed port map; the message names the file and the field."""


@dataclass(frozen=True)
class HostPort:
    port: int          # P4 port number of the switch port the host is on
    mac: str           # the host's data interface MAC
    switch_mac: str    # the switch port's MAC


def parse_port_map(data: Any, source: str = "<port map>") -> dict[str, HostPort]:
    if not isinstance(data, dict) or not data:
        raise PortMapError(f"{source}: (top level): must be a non-empty mapping of host name -> "
                           "{port, mac, switch_mac}")
    out: dict[str, HostPort] = {}
    for host, d in data.items():
        if not isinstance(d, dict):
            raise PortMapError(f"{source}: {host}: must be a mapping {{port, mac, switch_mac}}")
        port = d.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or port < 1:
            raise PortMapError(f"{source}: {host}.port: must be a P4 port number >= 1, not {port!r}")
        macs = []
        for fld in ("mac", "switch_mac"):
            v = d.get(fld)
            if not isinstance(v, str) or not _MAC.fullmatch(v.lower()):
                raise PortMapError(f"{source}: {host}.{fld}: {v!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
            macs.append(v.lower())
        out[str(host)] = HostPort(port, macs[0], macs[1])
    return out


def load_port_map(path: str | Path) -> dict[str, HostPort]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise PortMapError(f"{p}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise PortMapError(f"{p}: not valid YAML/JSON: {e}") from None
    return parse_port_map(data, str(p))


def forwarding_entries(inventory: Inventory, ports: dict[str, HostPort]) -> list[StaticEntry]:
    """The `route` entries of the `forwarding` pipeline: a /32 per host data address."""
    out: list[StaticEntry] = []
    for h in inventory.hosts:
        if h.data_address is None:
            continue
        hp = _port_of(h, ports)
        out.append(("route", {"dst_addr": [str(h.data_address), 32]}, "forward",
                    {"port": hp.port, "smac": hp.switch_mac, "dmac": hp.mac}))
    return out


def _port_of(host: Host, ports: dict[str, HostPort]) -> HostPort:
    hp = ports.get(host.name)
    if hp is None:
        raise PortMapError(f"host {host.name} ({host.data_address}) has no entry in the port map")
    return hp


def _guard_entries(inventory: Inventory, ports: dict[str, HostPort],
                   extra_trusted: tuple[int, ...] = ()) -> list[StaticEntry]:
    """protected_hosts: the back-ends' data addresses; trusted_ports: the back-ends' ports, plus
    `extra_trusted` (miresga: the front-ends' ports; switch_only: the CPU port), each once."""
    out: list[StaticEntry] = []
    for b in inventory.backends:
        if b.data_address is None:
            raise ValueError(f"back-end {b.name} has no data address")
        out.append(("protected_hosts", {"dst_addr": str(b.data_address)}, "mark_protected", {}))
    trusted = [_port_of(b, ports).port for b in inventory.backends] + list(extra_trusted)
    for port in sorted(set(trusted)):
        out.append(("trusted_ports", {"port": port}, "mark_trusted", {}))
    return out


def backend_index(inventory: Inventory) -> dict[str, int]:
    """backend_by_index's indexes: 1-based, in inventory order of the back-ends."""
    return {b.name: i for i, b in enumerate(inventory.backends, start=1)}


def miresga_entries(inventory: Inventory, ports: dict[str, HostPort],
                    buckets: int = FRONTEND_BUCKETS) -> list[StaticEntry]:
    """Routes, the VIP, the back-ends' endpoints, the front-end buckets, the back-end indexes and the
    guard (protected_hosts, trusted_ports)."""
    fes = inventory.frontends
    bes = inventory.backends
    if not fes:
        raise ValueError(f"inventory {inventory.name}: pipeline miresga needs at least one front-end")
    if not bes:
        raise ValueError(f"inventory {inventory.name}: pipeline miresga needs at least one back-end")
    vip, vport = str(inventory.vip), inventory.vip_port
    out = forwarding_entries(inventory, ports)
    out.append(("vip", {"dst_addr": vip, "dst_port": vport}, "mark_vip", {}))
    for b in bes:
        if b.data_address is None:
            raise ValueError(f"back-end {b.name} has no data address")
        out.append(("backends", {"src_addr": str(b.data_address), "src_port": vport}, "mark_backend",
                    {"vip_addr": vip, "vip_port": vport}))
    fe_ports = [_port_of(h, ports) for h in fes]
    for bucket in range(buckets):
        hp = fe_ports[bucket % len(fe_ports)]
        out.append(("frontend_bucket", {"bucket": bucket}, "to_frontend", {"port": hp.port, "dmac": hp.mac}))
    for b, i in zip(bes, backend_index(inventory).values(), strict=True):
        hp = _port_of(b, ports)
        out.append(("backend_by_index", {"index": i}, "set_backend",
                    {"port": hp.port, "dmac": hp.mac, "dst_addr": str(b.data_address), "dst_port": vport}))
    out += _guard_entries(inventory, ports, tuple(hp.port for hp in fe_ports))
    return out


def switch_only_entries(inventory: Inventory, ports: dict[str, HostPort]) -> list[StaticEntry]:
    """The CPU port (slow_path's default action), routes, the VIP, the back-ends' endpoints, the guard."""
    bes = inventory.backends
    if not bes:
        raise ValueError(f"inventory {inventory.name}: pipeline switch_only needs at least one back-end")
    vip, vport = str(inventory.vip), inventory.vip_port
    out: list[StaticEntry] = [("slow_path", {}, "set_slow_path", {"port": inventory.switch.cpu_port})]
    out += forwarding_entries(inventory, ports)
    out.append(("vip", {"dst_addr": vip, "dst_port": vport}, "mark_vip", {}))
    for b in bes:
        if b.data_address is None:
            raise ValueError(f"back-end {b.name} has no data address")
        out.append(("backends", {"src_addr": str(b.data_address), "src_port": vport}, "mark_backend", {}))
    out += _guard_entries(inventory, ports, (inventory.switch.cpu_port,))
    return out


STATIC_BUILDERS = {"forwarding": forwarding_entries, "miresga": miresga_entries,
                   "switch_only": switch_only_entries}


def static_entries(pipeline: str, inventory: Inventory, ports: dict[str, HostPort]) -> list[StaticEntry]:
    try:
        build = STATIC_BUILDERS[pipeline]
    except KeyError:
        raise ValueError(f"no static tables known for pipeline {pipeline!r} "
                         f"(known: {', '.join(sorted(STATIC_BUILDERS))})") from None
    return build(inventory, ports)
