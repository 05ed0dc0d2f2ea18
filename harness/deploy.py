"""Deployment over SSH (Fabric) to every host of an inventory: the same code on the local testbed and
on a cluster.

Each host gets its own deployment directory (`workdir` in the inventory) and deploy transfers what
the host's role needs into it: back-ends get nginx's config and the object catalog, front-ends the
load balancer's config, clients the workload code. Services run with pid files and logs under the
workdir; deploy checks that each one answers before it returns. `undeploy` stops them by PID.
"""

from __future__ import annotations

import functools
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.inventory import ROOT, Host, Inventory
from harness.remote import Remote, RemoteError, wait_for
from system import rules as rules_mod
from system.backend import nginx
from system.softlb import haproxy

# Services the harness may have started on each role, in the order undeploy stops them.
SERVICES = {
    "client": ["locust-master", "locust-worker"],
    "frontend": ["haproxy", "frontend"],
    "backend": ["agent", "nginx"],
    "switch": ["controlplane", "p4rt"],
}


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


def deploy_client(r: Remote) -> None:
    files: dict[str, Path | bytes] = {}
    for p in sorted((ROOT / "workloads").rglob("*.py")):
        if "tests" not in p.relative_to(ROOT).parts:
            files[str(p.relative_to(ROOT))] = p
    r.run(f"rm -rf {r.workdir}/workloads")
    r.put_tree(files)
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


def _deploy_common(inv: Inventory) -> None:
    with remotes(inv, "backend") as rs:
        for r in rs:
            log(f"{r.name}: nginx and the object catalog ({len(inv.catalog)} objects)")
            deploy_backend(r, inv)
    with remotes(inv, "client") as rs:
        for r in rs:
            log(f"{r.name}: workload code")
            deploy_client(r)


def _deploy_direct(inv: Inventory) -> None:
    _deploy_common(inv)


def _deploy_haproxy(inv: Inventory) -> None:
    _deploy_common(inv)
    with remotes(inv, "frontend") as rs:
        for r in rs:
            log(f"{r.name}: HAProxy (HTTP mode) from {inv.rules.relative_to(ROOT) if inv.rules.is_relative_to(ROOT) else inv.rules}")
            deploy_haproxy(r, inv)


SYSTEMS: dict[str, System] = {
    "direct": System(
        "direct", "clients fetch directly from nginx on the first back-end (no load balancer): a reference",
        _deploy_direct, lambda inv: [(str(inv.backends[0].data_address), inv.vip_port)],
        (("backend", "nginx"),)),
    "haproxy": System(
        "haproxy", "software L7 load balancer: HAProxy in HTTP mode on the front-end host(s)",
        _deploy_haproxy, lambda inv: [(str(f.data_address), inv.vip_port) for f in inv.frontends],
        (("frontend", "haproxy"), ("backend", "nginx"))),
}


def get_system(name: str) -> System:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise DeployError(f"unknown system {name!r} (known: {', '.join(SYSTEMS)})") from None


def deploy(inv: Inventory, system: str) -> System:
    sysd = get_system(system)
    t0 = time.monotonic()
    undeploy(inv, quiet=True)
    log(f"deploying {system} on {inv.name}: {sysd.description}")
    try:
        sysd.deploy(inv)
    except RemoteError as e:
        raise DeployError(str(e)) from None
    log(f"{system} deployed in {time.monotonic() - t0:.1f} s; target {sysd.targets(inv)}")
    return sysd


def undeploy(inv: Inventory, quiet: bool = False) -> list[str]:
    """Stops every service the harness may have started, on every host, by pid file."""
    stopped = []
    with remotes(inv) as rs:
        for r in rs:
            for svc in SERVICES[r.host.role]:
                if r.stop(svc):
                    stopped.append(f"{r.name}:{svc}")
    if not quiet:
        log("stopped " + (", ".join(stopped) if stopped else "nothing (no service was running)"))
    return stopped


def service_pids(r: Remote, service: str) -> list[int]:
    pid = r.service_pid(service)
    return r.process_tree(pid) if pid else []


def quote(s: str) -> str:
    return shlex.quote(s)


def host_of(inv: Inventory, name: str) -> Host:
    return inv.host(name)
