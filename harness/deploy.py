"""Deployment over SSH (Fabric) to every host of an inventory: the same code on the local testbed and
on a cluster.

Each host gets its own deployment directory (`workdir` in the inventory) and deploy transfers what
the host's role needs into it: back-ends get nginx's config and the object catalog, front-ends the
load balancer's config, clients the workload code. Services run with pid files and logs under the
workdir; deploy checks that each one answers before it returns. `undeploy` stops them by PID.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness import credentials as creds
from harness import testbed, tofino
from harness.inventory import ROOT, Inventory
from harness.remote import Remote, RemoteError, wait_for
from system import rules as rules_mod
from system.backend import nginx
from system.softlb import haproxy

# The order in which undeploy stops each role's services (others, e.g. locust-worker-N, go first).
SERVICES = {
    "client": ["locust-master"],
    "attacker": ["attack"],
    "frontend": ["haproxy", "frontend"],
    "backend": ["agent", "nginx"],
    "switch": ["slowpath", "controlplane", "switchd", "p4rt"],
}


CONTROLPLANE_PORT = 9600
SWITCH_WSCALE = 7                  # the window-scale shift the switch's SYN-ACK promises (datapath contract)
WSCALE_RMEM_MAX = 6291456          # a tcp_rmem maximum for which Linux picks that shift
ROUTER_MAC = "02:00:5e:00:00:01"   # the switch ports' MAC on a cluster (configure it on the Tofino)
# The switch-only baseline's CPU port on the emulated target (docs/switch-only-datapath.md): P4 port
# `switch.cpu_port` of the inventory (default 64) is the veth `swcpu` in the switch namespace, its
# peer `cpu0` the slow path's netdev.
CPU_PORT_IF, CPU_NETDEV = "swcpu", "cpu0"
# The slow path's timers (python -m system.switchonly): tests shorten them.
SLOWPATH_OPTIONS: dict[str, float] = {"idle_timeout": 120.0, "linger": 2.0, "counter_interval": 1.0}
# The Miresga front-end's timers (python -m system.frontend --idle-timeout, --offloaded-idle-timeout):
# tests shorten them (tests/test_miresga_offload_aging.py).
FRONTEND_OPTIONS: dict[str, float] = {"idle_timeout": 120.0, "offloaded_idle_timeout": 600.0}


class DeployError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[deploy] {msg}", flush=True)


@contextmanager
def remotes(inv: Inventory, role: str | None = None) -> Iterator[list[Remote]]:
    rs = [Remote(inv, h) for h in inv.hosts if role is None or h.role == role]
    try:
        yield rs
    finally:
        for r in rs:
            r.close()


# ---------------------------------------------------------------------------------------------
# Per-role pieces


@functools.cache
def _object_content(name: str, size: int) -> bytes:
    from workloads.catalog import object_bytes
    return object_bytes(name, size)


def deploy_backend(r: Remote, inv: Inventory, fastopen: int | None = None) -> None:
    h = r.host
    files: dict[str, Path | bytes] = {f"objects/{o.name}": _object_content(o.name, o.size) for o in inv.catalog}
    files["nginx/nginx.conf"] = nginx.render(r.workdir, str(h.data_address), inv.vip_port, h.cores,
                                             fastopen=fastopen).encode()
    r.stop("nginx")
    r.run(f"rm -rf {r.workdir}/objects && mkdir -p {r.workdir}/tmp {r.workdir}/run {r.workdir}/log")
    r.put_tree(files)
    r.run(f"chmod -R a+rX {r.workdir}/objects")
    conf = f"{r.workdir}/nginx/nginx.conf"
    r.run(f"nginx -e {r.workdir}/log/nginx-startup.log -p {r.workdir} -t -c {conf}")
    r.start("nginx", f"nginx -e {r.workdir}/log/nginx-startup.log -p {r.workdir} -c {conf}", daemonizes=True)
    # nginx answers on the data address: check from the host itself (health and one object's size).
    probe = inv.catalog[0]
    url = f"http://{h.data_address}:{inv.vip_port}"
    wait_for(lambda: r.run(f"curl -sf {url}/health", check=False).strip() == "ok", 10,
             f"nginx on {h.name} to answer {url}/health")
    got = int(r.run(f"curl -sf -o /dev/null -w '%{{size_download}}' {url}{probe.path}").strip())
    if got != probe.size:
        raise DeployError(f"{h.name}: nginx served {got} bytes of {probe.path}, expected {probe.size}")


def project_files(*dirs: str, suffixes: tuple[str, ...] = (".py",)) -> dict[str, Path | bytes]:
    """The project's files under `dirs` (relative to the repository) that a host needs; no tests."""
    files: dict[str, Path | bytes] = {}
    for d in dirs:
        base = ROOT / d
        paths = [base] if base.is_file() else sorted(base.rglob("*"))
        for p in paths:
            rel = p.relative_to(ROOT)
            if p.is_file() and p.suffix in suffixes and "tests" not in rel.parts and "__pycache__" not in rel.parts:
                files[str(rel)] = p
    return files


def ensure_python(r: Remote) -> None:
    """A host with `python: venv` gets {workdir}/venv with the pinned packages (once per lock file)."""
    if r.host.python != "venv":
        return
    lock = (ROOT / "requirements.lock").read_bytes()
    want = hashlib.sha256(lock).hexdigest()
    stamp = f"{r.workdir}/venv/.requirements.sha256"
    if r.run(f"cat {stamp} 2>/dev/null", check=False).strip() == want:
        return
    log(f"{r.name}: creating {r.workdir}/venv (pinned packages; needs PyPI from the host)")
    r.put_tree({"requirements.lock": lock})
    r.run(f"python3 -m venv {r.workdir}/venv && {r.workdir}/venv/bin/pip install -q -r {r.workdir}/requirements.lock "
          f"&& echo {want} > {stamp}", timeout=1800)


def deploy_client(r: Remote) -> None:
    ensure_python(r)
    r.run(f"rm -rf {r.workdir}/workloads")
    r.put_tree(project_files("workloads"))
    # The locustfile must import on the host (catches a missing transfer or package).
    r.run(f"cd {r.workdir} && {r.python()} -c 'import workloads.catalog, workloads.spec'")


def deploy_haproxy(r: Remote, inv: Inventory) -> None:
    h = r.host
    ruleset = load_rules(inv)
    servers = {b.name: haproxy.Server(b.name, str(b.data_address), inv.vip_port) for b in inv.backends}
    cfg = haproxy.render(ruleset, servers, bind=str(h.data_address), port=inv.vip_port, workdir=r.workdir,
                         threads=len(h.cores), cpus=h.cores)
    r.stop("haproxy")
    r.put_tree({"haproxy/haproxy.cfg": cfg.encode()})
    path = f"{r.workdir}/haproxy/haproxy.cfg"
    r.run(f"mkdir -p {r.workdir}/run && haproxy -c -q -f {path}")
    r.start("haproxy", f"haproxy -D -f {path} -p {r.pidfile('haproxy')}", daemonizes=True)
    url = f"http://{h.data_address}:{inv.vip_port}"
    probe = inv.catalog[0]
    # Health checks need a moment to mark servers up; until then HAProxy answers 503.
    wait_for(lambda: r.run(f"curl -s -o /dev/null -w '%{{http_code}}' {url}{probe.path}",
                           check=False).strip() == "200", 15, f"HAProxy on {h.name} to serve {probe.path}")


def port_map(inv: Inventory) -> dict[str, dict[str, object]]:
    """host -> {port, mac, switch_mac}: where each host is on the switch (the control plane's input)."""
    if inv.kind == "local":
        return {name: {"port": p.number, "mac": p.host_mac, "switch_mac": p.mac}
                for name, p in testbed.switch_ports(inv).items()}
    out: dict[str, dict[str, object]] = {}
    for h in inv.hosts:
        if h.data_address is None:
            continue
        if h.switch_port is None or not h.switch_port.isdigit():
            raise DeployError(f"{h.name}: switch_port must be the switch's P4 (device) port number, "
                              f"not {h.switch_port!r}")
        out[h.name] = {"port": int(h.switch_port), "mac": h.data_mac, "switch_mac": ROUTER_MAC}
    return out


def deploy_switch(r: Remote, inv: Inventory, pipeline: str, extra_ports: dict[int, str] | None = None) -> None:
    """The switch target and its control plane, programmed with `pipeline` and the static tables.
    `extra_ports`: P4 port -> interface in the switch namespace beyond the hosts' (the CPU port)."""
    if inv.switch.target == "bridge":
        log(f"{r.name}: switch target bridge (placeholder): nothing to program")
        return
    for svc in ("controlplane", "p4rt"):
        r.stop(svc)
    ensure_python(r)
    files = project_files("system", "harness/__init__.py", "harness/inventory.py", "harness/tofino_config.py",
                          suffixes=(".py", ".c", ".h", ".yaml"))
    files.update(project_files("p4src", suffixes=(".p4", ".txtpb")))
    files["inventory.yaml"] = (inv.source.read_bytes() if inv.source else yaml.safe_dump(inv.raw).encode())
    files["port-map.yaml"] = yaml.safe_dump(port_map(inv)).encode()
    stats = f"{r.workdir}/run/controlplane-stats.json"

    def ready() -> bool:
        if r.service_pid("controlplane") is None:
            raise DeployError(f"{r.name}: the control plane exited:\n{r.tail('controlplane')}")
        out = r.run(f"cat {stats} 2>/dev/null", check=False)
        return bool(out) and bool(json.loads(out).get("static_installed")) and json.loads(out).get("connected") is True
    if inv.switch.target == "tofino":       # the SDE's build, package, daemon, ports (harness/tofino.py)
        r.run(f"rm -f {stats}")
        try:
            tofino.deploy_switch(r, inv, pipeline, files, log, ready)
        except tofino.TofinoDeployError as e:
            raise DeployError(str(e)) from None
        return
    r.run(f"rm -rf {r.workdir}/system {r.workdir}/p4src")
    r.put_tree(files)
    ports = {v["port"]: f"sw-{name}" for name, v in port_map(inv).items()}
    ports.update(extra_ports or {})
    mgmt = str(r.host.mgmt_address or r.host.ssh_address)
    p4rt = f"{mgmt}:{inv.switch.p4runtime_port}"
    pin_dir = f"/sys/fs/bpf/{testbed.netns(r.host)}" if inv.kind == "local" else "/sys/fs/bpf/miresga-switch"
    py = r.python()
    r.start("p4rt", f"{py} -m system.switch.p4rt --address {p4rt} --credentials {creds.remote_dir(r, 'p4rt')} "
            f"--ports {','.join(f'{n}={i}' for n, i in sorted(ports.items()))} --profile {inv.switch.profile} "
            f"--pin-dir {pin_dir} --stats-file {r.workdir}/run/p4rt-stats.json")
    wait_for(lambda: r.run(f"{py} -c \"import socket; socket.create_connection(('{mgmt}', "
                           f"{inv.switch.p4runtime_port}), 1)\"", check=False) == "" and
             r.service_pid("p4rt") is not None, 20, f"the P4Runtime server on {r.name} to listen on {p4rt}")
    r.start("controlplane", f"{py} -m system.controlplane --inventory {r.workdir}/inventory.yaml "
            f"--switch {p4rt} --listen {mgmt}:{CONTROLPLANE_PORT} --pipeline {pipeline} "
            f"--port-map {r.workdir}/port-map.yaml --stats-file {r.workdir}/run/controlplane-stats.json "
            f"--credentials {creds.remote_dir(r, 'controlplane')}")
    wait_for(ready, 60, f"the control plane on {r.name} to set pipeline {pipeline} and its static tables")
    log(f"{r.name}: emulated switch running pipeline {pipeline} (P4Runtime {p4rt}, "
        f"control plane {mgmt}:{CONTROLPLANE_PORT})")


# ---- Miresga ------------------------------------------------------------------------------------

def backend_index(inv: Inventory) -> dict[str, int]:
    """The switch's backend_by_index entries: 1-based, in inventory order of the back-ends."""
    return {b.name: i for i, b in enumerate(inv.backends, start=1)}


def switch_mac_of(inv: Inventory, host_name: str) -> str:
    """The MAC of the switch port a host is on: its next hop for everything on the data plane."""
    return str(port_map(inv)[host_name]["switch_mac"])


def deploy_agent(r: Remote, inv: Inventory) -> None:
    """The back-end agent (eBPF sequence translation) on a back-end's data interface, and the kernel
    settings Miresga needs there: data in SYN accepted without a cookie (the fast-open shortcut), and
    the window-scale shift the switch promises clients (docs/miresga-datapath.md)."""
    h = r.host
    r.stop("agent")
    r.run("sysctl -qw net.ipv4.tcp_fastopen=0x203")
    ensure_switch_wscale(r)
    r.run(f"rm -rf {r.workdir}/system")
    r.put_tree(project_files("system", suffixes=(".py", ".c", ".h", ".yaml")))
    pin = f"/sys/fs/bpf/{testbed.netns(h)}-agent" if inv.kind == "local" else "/sys/fs/bpf/miresga-agent"
    r.start("agent", f"{r.python()} -m system.agent --interface {h.data_interface} --pin-dir {pin} --interval 5")
    wait_for(lambda: "agent_ingress" in r.run(f"tc filter show dev {h.data_interface} ingress", check=False),
             30, f"the agent on {h.name} to attach to {h.data_interface}")


def ensure_switch_wscale(r: Remote) -> None:
    """The back-end's kernel must choose the window-scale shift the switch's SYN-ACK promised the
    client (SWITCH_WSCALE): window fields cross the switch untranslated (Miresga and switch-only)."""
    h = r.host
    # Linux derives its window-scale shift from max(tcp_rmem[2], rmem_max): a maximum receive
    # buffer of 6 MiB (Linux's default) gives the shift the switch promises.
    low, default, _ = r.run("sysctl -n net.ipv4.tcp_rmem").split()
    r.run(f"sysctl -qw net.ipv4.tcp_rmem='{low} {default} {WSCALE_RMEM_MAX}'")
    rmem = r.run("sysctl -n net.ipv4.tcp_rmem; sysctl -n net.core.rmem_max").split()
    space = max(int(rmem[2]), int(rmem[3]))
    shift = max(0, min(14, space.bit_length() - 1 - 15))
    if shift != SWITCH_WSCALE:
        raise DeployError(f"{h.name}: its kernel would choose window scale {shift} (tcp_rmem max {rmem[2]}, "
                          f"net.core.rmem_max {rmem[3]}), but the switch promises clients {SWITCH_WSCALE}: "
                          "lower net.core.rmem_max below 2^23 on that host")


def deploy_frontend(r: Remote, inv: Inventory, fastopen: bool = True) -> None:
    h = r.host
    r.stop("frontend")
    r.run(f"rm -rf {r.workdir}/system")
    files = project_files("system", suffixes=(".py", ".c", ".h", ".yaml"))
    files["rules.yaml"] = inv.rules.read_bytes()
    r.put_tree(files)
    hop = switch_mac_of(inv, h.name)
    idx = backend_index(inv)
    backends = " ".join(f"--backend {b.name}={b.data_address}:{inv.vip_port}:{idx[b.name]}:{hop}"
                        for b in inv.backends)
    mgmt = str(inv.switch_host.mgmt_address or inv.switch_host.ssh_address)
    pin = f"/sys/fs/bpf/{testbed.netns(h)}-frontend" if inv.kind == "local" else "/sys/fs/bpf/miresga-frontend"
    own = h.data_mac or port_map(inv)[h.name]["mac"]
    r.start("frontend", f"{r.python()} -m system.frontend --dev {h.data_interface} --own-mac {own} "
            f"--client-next-hop-mac {hop} --vip {inv.vip} --vip-port {inv.vip_port} {backends} "
            f"--rules {r.workdir}/rules.yaml --controlplane {mgmt}:{CONTROLPLANE_PORT} --pin-dir {pin} "
            f"--credentials {creds.remote_dir(r, 'frontend')} --idle-timeout {FRONTEND_OPTIONS['idle_timeout']} "
            f"--offloaded-idle-timeout {FRONTEND_OPTIONS['offloaded_idle_timeout']} "
            f"--stats-file {r.workdir}/run/frontend-stats.json" + (" --fastopen" if fastopen else ""))
    wait_for(lambda: r.run(f"test -s {r.workdir}/run/frontend-stats.json && echo ok", check=False).strip() == "ok"
             or r.service_pid("frontend") is None, 30, f"the front-end on {h.name} to start")
    if r.service_pid("frontend") is None:
        raise DeployError(f"{h.name}: the front-end exited:\n{r.tail('frontend')}")


# ---- switch-only baseline -----------------------------------------------------------------------

def cpu_port(inv: Inventory) -> int:
    """The CPU port's P4 number, checked against the hosts' ports (they must not share one)."""
    taken = {v["port"]: name for name, v in port_map(inv).items()}
    if inv.switch.cpu_port in taken:
        raise DeployError(f"switch.cpu_port {inv.switch.cpu_port} is also host {taken[inv.switch.cpu_port]}'s "
                          "switch port: choose a free port")
    return inv.switch.cpu_port


def ensure_cpu_port(r: Remote) -> None:
    """The emulated switch's CPU port: veth swcpu <-> cpu0 in the switch namespace (idempotent). On a
    Tofino the CPU PCIe port's netdev (bf_pci0) replaces cpu0, and nothing is created."""
    r.run(f"ip link show {CPU_PORT_IF} >/dev/null 2>&1 || ip link add {CPU_PORT_IF} type veth peer name {CPU_NETDEV}")
    for dev in (CPU_PORT_IF, CPU_NETDEV):
        r.run(f"sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1 2>/dev/null; ip link set {dev} up", check=False)
    r.run(f"ip link show {CPU_NETDEV} | grep -q UP")


def remove_cpu_port(r: Remote) -> bool:
    """Deletes the CPU port's veth pair (both ends); True if it existed."""
    return r.run(f"ip link del {CPU_PORT_IF} 2>/dev/null && echo gone", check=False).strip() == "gone"


def deploy_slowpath(r: Remote, inv: Inventory) -> None:
    """The slow path on the switch CPU (python -m system.switchonly), next to the control plane."""
    r.stop("slowpath")
    r.put_tree({"rules.yaml": inv.rules.read_bytes()})
    mgmt = str(r.host.mgmt_address or r.host.ssh_address)
    stats = f"{r.workdir}/run/slowpath-stats.json"
    r.run(f"rm -f {stats}")
    o = SLOWPATH_OPTIONS
    dev = inv.switch.tofino.cpu_netdev if inv.switch.tofino else CPU_NETDEV
    r.start("slowpath", f"{r.python()} -m system.switchonly --dev {dev} --inventory {r.workdir}/inventory.yaml "
            f"--port-map {r.workdir}/port-map.yaml --rules {r.workdir}/rules.yaml "
            f"--controlplane {mgmt}:{CONTROLPLANE_PORT} --p4runtime {mgmt}:{inv.switch.p4runtime_port} "
            f"--idle-timeout {o['idle_timeout']} --linger {o['linger']} --counter-interval {o['counter_interval']} "
            f"--stats-file {stats} --credentials {creds.remote_dir(r, 'slowpath')}")
    wait_for(lambda: r.run(f"test -s {stats} && echo ok", check=False).strip() == "ok"
             or r.service_pid("slowpath") is None, 40, f"the slow path on {r.name} to start")
    if r.service_pid("slowpath") is None:
        raise DeployError(f"{r.name}: the slow path exited:\n{r.tail('slowpath')}")


def load_rules(inv: Inventory) -> rules_mod.RuleSet:
    return rules_mod.load(inv.rules, tuple(b.name for b in inv.backends))


# ---------------------------------------------------------------------------------------------
# Systems under test


@dataclass(frozen=True)
class System:
    name: str
    description: str
    deploy: Callable[[Inventory], None]
    targets: Callable[[Inventory], list[tuple[str, int]]]
    # (role, service) pairs whose CPU time is measured in every cell
    measured: tuple[tuple[str, str], ...]
    pipeline: str = "forwarding"   # the switch pipeline the system runs on


def _deploy_common(inv: Inventory, pipeline: str = "forwarding", fastopen: int | None = None) -> None:
    with remotes(inv, "switch") as rs:
        for r in rs:
            deploy_switch(r, inv, pipeline)
    with remotes(inv, "backend") as rs:
        for r in rs:
            log(f"{r.name}: nginx and the object catalog ({len(inv.catalog)} objects)")
            deploy_backend(r, inv, fastopen=fastopen)
    _deploy_clients(inv)


def _deploy_clients(inv: Inventory) -> None:
    """The workload code on the load clients and on the attacker hosts (workloads/attack.py)."""
    for role in ("client", "attacker"):
        with remotes(inv, role) as rs:
            for r in rs:
                log(f"{r.name}: workload code")
                deploy_client(r)


def _deploy_direct(inv: Inventory) -> None:
    _deploy_common(inv)


def _deploy_haproxy(inv: Inventory) -> None:
    _deploy_common(inv)
    with remotes(inv, "frontend") as rs:
        for r in rs:
            log(f"{r.name}: HAProxy (HTTP mode), rules from {inv.rules}")
            deploy_haproxy(r, inv)


def _deploy_miresga(inv: Inventory) -> None:
    _deploy_common(inv, pipeline="miresga", fastopen=1024)
    with remotes(inv, "backend") as rs:
        for r in rs:
            log(f"{r.name}: back-end agent (sequence translation)")
            deploy_agent(r, inv)
    with remotes(inv, "frontend") as rs:
        for r in rs:
            log(f"{r.name}: Miresga front-end (rules from {inv.rules})")
            deploy_frontend(r, inv)
    # The whole path: a client fetches an object through the VIP.
    with remotes(inv, "client") as rs:
        probe = inv.catalog[0]
        url = f"http://{inv.vip}:{inv.vip_port}{probe.path}"
        got = rs[0].run(f"curl -s -m 5 -o /dev/null -w '%{{http_code}} %{{size_download}}' {url}", check=False)
        if got.strip() != f"200 {probe.size}":
            raise DeployError(f"Miresga is deployed but {url} from {rs[0].name} gave {got.strip() or 'nothing'}")


def _deploy_switch_only(inv: Inventory) -> None:
    if inv.switch.target == "bridge":
        raise DeployError("switch-only needs a programmable switch (target emulated or tofino), not bridge")
    with remotes(inv, "switch") as rs:
        for r in rs:
            if inv.switch.target == "emulated":      # a Tofino: deploy_switch stops with the SDE steps
                ensure_cpu_port(r)
            deploy_switch(r, inv, "switch_only", extra_ports={cpu_port(inv): CPU_PORT_IF})
    with remotes(inv, "backend") as rs:
        for r in rs:
            log(f"{r.name}: nginx and the object catalog ({len(inv.catalog)} objects); no agent")
            deploy_backend(r, inv)
            ensure_switch_wscale(r)
    _deploy_clients(inv)
    with remotes(inv, "switch") as rs:
        for r in rs:
            dev = inv.switch.tofino.cpu_netdev if inv.switch.tofino else CPU_NETDEV
            log(f"{r.name}: slow path on the switch CPU ({dev}, P4 port {inv.switch.cpu_port})")
            deploy_slowpath(r, inv)
    _check_through_vip(inv, "switch-only")


def _check_through_vip(inv: Inventory, system: str) -> None:
    """The whole path: a client fetches an object through the VIP."""
    with remotes(inv, "client") as rs:
        probe = inv.catalog[0]
        url = f"http://{inv.vip}:{inv.vip_port}{probe.path}"
        got = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = rs[0].run(f"curl -s -m 5 -o /dev/null -w '%{{http_code}} %{{size_download}}' {url}", check=False)
            if got.strip() == f"200 {probe.size}":
                return
            time.sleep(0.5)
        raise DeployError(f"{system} is deployed but {url} from {rs[0].name} gave {got.strip() or 'nothing'}")


SYSTEMS: dict[str, System] = {
    "direct": System(
        "direct", "clients fetch directly from nginx on the first back-end (no load balancer): a reference",
        _deploy_direct, lambda inv: [(str(inv.backends[0].data_address), inv.vip_port)],
        (("backend", "nginx"),)),
    "haproxy": System(
        "haproxy", "software L7 load balancer: HAProxy in HTTP mode on the front-end host(s)",
        _deploy_haproxy, lambda inv: [(str(f.data_address), inv.vip_port) for f in inv.frontends],
        (("frontend", "haproxy"), ("backend", "nginx"))),
    "miresga": System(
        "miresga", "Miresga: switch handshakes and offloads elephants, front-ends parse HTTP, agents translate "
        "sequence numbers", _deploy_miresga, lambda inv: [(str(inv.vip), inv.vip_port)],
        (("frontend", "frontend"), ("backend", "agent"), ("backend", "nginx")), pipeline="miresga"),
    "switch-only": System(
        "switch-only", "switch-only baseline: a slow path on the switch CPU parses HTTP and installs two "
        "entries per connection; the switch splices and translates sequence numbers",
        _deploy_switch_only, lambda inv: [(str(inv.vip), inv.vip_port)],
        (("switch", "slowpath"), ("backend", "nginx")), pipeline="switch_only"),
}


def get_system(name: str) -> System:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise DeployError(f"unknown system {name!r} (known: {', '.join(SYSTEMS)})") from None


def plan(inv: Inventory, system: str) -> str:
    """What `deploy` would do, host by host, without touching anything (`fab deploy --dry-run`)."""
    sysd = get_system(system)
    lines = [f"deploy {system} on {inv.name} ({inv.kind}, switch target {inv.switch.target}): {sysd.description}"]
    if inv.switch.target == "emulated":
        lines.append("  credentials: a new CA and one certificate per daemon (harness/credentials.py), copied "
                     "over SSH into the switch's and front-ends' <workdir>/credentials/ (0600)")
    for h in inv.hosts:
        where = f"  {h.name} ({h.role}, ssh {h.ssh_user}@{h.ssh_address}:{h.ssh_port}, workdir {h.workdir}):"
        if h.role == "switch":
            if inv.switch.target == "bridge":
                lines.append(f"{where} nothing (placeholder bridge)")
            elif inv.switch.target == "emulated":
                cpu = (f"create the CPU port (veth {CPU_PORT_IF} <-> {CPU_NETDEV}, P4 port {inv.switch.cpu_port}); "
                       if system == "switch-only" else "")
                lines.append(f"{where} {cpu}system/ + p4src/ + inventory + port map; start the P4Runtime server "
                             f"(:{inv.switch.p4runtime_port}, profile {inv.switch.profile.name}) and the control "
                             f"plane (:{CONTROLPLANE_PORT}), which sets pipeline {sysd.pipeline} and its static tables")
                if system == "switch-only":
                    lines.append(f"    then the slow path (python -m system.switchonly on {CPU_NETDEV}, rules from "
                                 f"{inv.rules}); check its stats file and an object through the VIP "
                                 f"{inv.vip}:{inv.vip_port}")
            else:
                lines.append(f"{where} Tofino, SDE {inv.switch.tofino.sde_version} at {inv.switch.tofino.sde}, "
                             f"{inv.switch.tofino.server}; these commands, each checked:")
                lines += tofino.plan_lines(inv, h, sysd.pipeline, system)
        elif h.role == "backend":
            extra = {"miresga": "; the agent (sequence translation) and fast-open",
                     "switch-only": "; no agent (the switch translates); window-scale check"}.get(system, "")
            lines.append(f"{where} nginx config + catalog ({len(inv.catalog)} objects, "
                         f"{sum(o.size for o in inv.catalog) / 2**20:.1f} MiB); start nginx on "
                         f"{h.data_address}:{inv.vip_port}; check /health and {inv.catalog[0].path}{extra}")
        elif h.role == "client":
            lines.append(f"{where} workloads/ (Locust file and users); check that it imports")
        elif h.role == "attacker":
            lines.append(f"{where} workloads/ (the attack tool of a suite's `attacks` axis); check that it imports")
        elif h.role == "frontend":
            lines.append(f"{where} " + ("HAProxy config from the rules; start HAProxy on "
                                        f"{h.data_address}:{inv.vip_port}; check an object through it"
                                        if system == "haproxy" else
                                        f"system/ + rules; start the Miresga front-end on {h.data_interface} "
                                        f"(one of {len(inv.frontends)} sharing the switch's buckets)"
                                        if system == "miresga" else "nothing"))
    return "\n".join(lines)


def deploy(inv: Inventory, system: str) -> System:
    sysd = get_system(system)
    t0 = time.monotonic()
    undeploy(inv, quiet=True)
    log(f"deploying {system} on {inv.name}: {sysd.description}")
    try:
        # Every target: the control plane, the P4Runtime server (emulated, or Stratum given its TLS
        # flags), the front-ends and the slow path speak mutual TLS with the identities issued here.
        with remotes(inv) as rs:
            creds.install(inv, {r.name: r for r in rs if r.host.role in ("switch", "frontend")})
        log(f"credentials issued (a new CA): switch and front-end hosts' {creds.REMOTE_DIR}/, "
            f"the harness's in {creds.local_dir(inv)}")
        sysd.deploy(inv)
    except RemoteError as e:
        raise DeployError(str(e)) from None
    log(f"{system} deployed in {time.monotonic() - t0:.1f} s; target {sysd.targets(inv)}")
    return sysd


def undeploy(inv: Inventory, quiet: bool = False) -> list[str]:
    """Stops every service the harness started, on every host: each pid file under <workdir>/run/."""
    stopped = []
    with remotes(inv) as rs:
        for r in rs:
            listing = r.run(f"ls {r.workdir}/run 2>/dev/null", check=False).split()
            services = [f.removesuffix(".pid") for f in listing if f.endswith(".pid")]
            order = SERVICES[r.host.role]
            for svc in sorted(services, key=lambda s: order.index(s) if s in order else -1):
                if r.stop(svc):
                    stopped.append(f"{r.name}:{svc}")
            if r.host.role == "switch" and inv.switch.target == "emulated":
                r.run(f"rm -f {r.workdir}/run/slowpath-stats.json", check=False)   # not collected for others
                if remove_cpu_port(r):
                    stopped.append(f"{r.name}:{CPU_PORT_IF}")
    if not quiet:
        log("stopped " + (", ".join(stopped) if stopped else "nothing (no service was running)"))
    return stopped
