"""The local testbed: every inventory host is a network namespace on this machine.

Topology (testbed.md):
- data plane, a star: host namespace `mrsg-<host>` has one data interface (the inventory's
  `data.interface`, default eth0) whose veth peer `sw-<host>` is a port of the namespace
  `mrsg-switch`. Only the switch namespace connects hosts: no route or bridge elsewhere. With switch
  target `bridge` the ports are joined by a Linux bridge — a PLACEHOLDER for the emulated switch
  target (system/switch), which attaches its eBPF pipeline to the same ports instead.
- management: veth `mm-<host>` in the root namespace on bridge `mrsg-<testbed>` (holding the first
  address of networks.management), peer `mgmt0` in the host namespace. SSH, P4Runtime, control
  traffic and Locust's master/worker traffic use it.
- every namespace runs its own sshd (private config, harness-generated keys) on its management
  address, so deployment goes over real SSH as on a cluster.
- neighbours are static (ARP is not used on the data plane): every host gets a permanent entry for
  every other host's data address, so the data path is deterministic and the switch never needs to
  answer ARP.
- no namespace has a default route; loopback is up everywhere.

State (keys, sshd configs, PID files, logs) lives in `/var/lib/miresga/testbed/<inventory name>/`.
`up` and `down` are idempotent; `down` ends every process inside the testbed's namespaces (found by
namespace membership and recorded PIDs, never by name), deletes the namespaces, interfaces and BPF
pins it created — also after a crash of a previous run.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.inventory import Host, Inventory
from harness.shell import CommandError, run, run_in

PREFIX = "mrsg-"
STATE_ROOT = Path(os.environ.get("MIRESGA_STATE", "/var/lib/miresga"))
BPF_PIN_ROOT = Path("/sys/fs/bpf")
SSHD = "/usr/sbin/sshd"


class TestbedError(RuntimeError):
    pass


def netns(host: Host | str) -> str:
    return PREFIX + (host if isinstance(host, str) else host.name)


def mgmt_bridge(inv: Inventory) -> str:
    """The management bridge in the root namespace, one per testbed (inventory name)."""
    return f"{PREFIX}{inv.name}"[:15]


def state_dir(inv: Inventory) -> Path:
    return STATE_ROOT / "testbed" / inv.name


def ssh_key(inv: Inventory) -> Path:
    return state_dir(inv) / "keys" / "id_ed25519"


def host_mac(addr: ipaddress.IPv4Address) -> str:
    """A locally administered MAC derived from the data address (02:00:c6:12:<3rd>:<4th>)."""
    o = addr.packed
    return f"02:00:c6:{o[1]:02x}:{o[2]:02x}:{o[3]:02x}"


def switch_port_mac(port: int) -> str:
    return f"02:00:5e:00:00:{port:02x}"


@dataclass(frozen=True)
class SwitchPort:
    """One port of the switch: its P4 port number, interface in the switch namespace, MACs."""
    host: str
    number: int
    interface: str
    mac: str        # the switch port's own MAC
    host_mac: str   # the MAC of the host's data interface behind it


def switch_ports(inv: Inventory) -> dict[str, SwitchPort]:
    """P4 port numbers 1..N in inventory order of the hosts that have a data address."""
    ports = {}
    for i, h in enumerate((h for h in inv.hosts if h.data_address is not None), start=1):
        ports[h.name] = SwitchPort(host=h.name, number=i, interface=f"sw-{h.name}",
                                   mac=switch_port_mac(i), host_mac=h.data_mac or host_mac(h.data_address))
    return ports


def _require_local(inv: Inventory) -> None:
    if inv.kind != "local":
        raise TestbedError(f"inventory {inv.name!r} is a {inv.kind}: the testbed tasks only build a local "
                           "testbed (kind: local); a cluster's hosts already exist")
    if os.geteuid() != 0:
        raise TestbedError("the local testbed needs root (network namespaces, veth, sshd)")


def _ns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def _link_exists(name: str, netns_name: str | None = None) -> bool:
    return run_in(netns_name, ["ip", "link", "show", "dev", name], check=False).returncode == 0


def _log(msg: str) -> None:
    print(f"[testbed] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# up


def up(inv: Inventory) -> dict[str, object]:
    """Brings the testbed up (idempotent: what exists is kept, what is missing is created)."""
    _require_local(inv)
    sd = state_dir(inv)
    for sub in ("keys", "sshd", "pids", "logs"):
        (sd / sub).mkdir(parents=True, exist_ok=True)
    _ensure_keys(inv)
    _ensure_bpffs()
    mgmt_net = inv.mgmt_network
    assert mgmt_net is not None
    gw = next(mgmt_net.hosts())
    bridge = mgmt_bridge(inv)
    if not _link_exists(bridge):
        _log(f"management bridge {bridge} ({gw}/{mgmt_net.prefixlen})")
        run(["ip", "link", "add", bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{gw}/{mgmt_net.prefixlen}", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])

    sw = inv.switch_host
    ports = switch_ports(inv)
    for h in inv.hosts:
        _ensure_namespace(h)
        _ensure_mgmt(h, mgmt_net.prefixlen, bridge)
    for h in inv.hosts:
        if h.data_address is not None:
            _ensure_data(inv, h, ports[h.name], sw)
    if inv.switch.target == "bridge":
        _ensure_placeholder_bridge(inv, ports)
    else:
        for p in ports.values():
            run_in(netns(sw), ["ip", "link", "set", p.interface, "up"])
    for h in inv.hosts:
        _ensure_sshd(inv, h)
    info = status(inv)
    _log(f"up: {len(inv.hosts)} hosts, switch target {inv.switch.target}")
    return info


def _ensure_keys(inv: Inventory) -> None:
    keys = state_dir(inv) / "keys"
    if not (keys / "id_ed25519").exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"miresga-testbed-{inv.name}",
             "-f", str(keys / "id_ed25519")])
    if not (keys / "ssh_host_ed25519_key").exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "ssh_host_ed25519_key")])
    pub = (keys / "id_ed25519.pub").read_text()
    (keys / "authorized_keys").write_text(pub)
    for f in keys.iterdir():
        f.chmod(0o600 if not f.name.endswith(".pub") else 0o644)


def _ensure_bpffs() -> None:
    if not BPF_PIN_ROOT.is_dir() or run(["mountpoint", "-q", str(BPF_PIN_ROOT)], check=False).returncode != 0:
        BPF_PIN_ROOT.mkdir(parents=True, exist_ok=True)
        run(["mount", "-t", "bpf", "bpf", str(BPF_PIN_ROOT)])


def _ensure_namespace(h: Host) -> None:
    ns = netns(h)
    if not _ns_exists(ns):
        _log(f"namespace {ns}")
        run(["ip", "netns", "add", ns])
    run_in(ns, ["ip", "link", "set", "lo", "up"])
    # Hosts are end systems; nothing in a namespace forwards (the switch uses its pipeline, not routing).
    run_in(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=0"])
    run_in(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])


def _ensure_mgmt(h: Host, prefixlen: int, bridge: str) -> None:
    ns = netns(h)
    root_if = f"mm-{h.name}"
    if not _link_exists("mgmt0", ns):
        if _link_exists(root_if):
            run(["ip", "link", "del", root_if])
        run(["ip", "link", "add", root_if, "type", "veth", "peer", "name", "mgmt0", "netns", ns])
        run(["ip", "link", "set", root_if, "master", bridge, "up"])
        run_in(ns, ["ip", "addr", "add", f"{h.mgmt_address}/{prefixlen}", "dev", "mgmt0"])
    run_in(ns, ["ip", "link", "set", "mgmt0", "up"])


def _ensure_data(inv: Inventory, h: Host, port: SwitchPort, sw: Host) -> None:
    ns, swns = netns(h), netns(sw)
    if not _link_exists(h.data_interface, ns):
        if _link_exists(port.interface, swns):
            run_in(swns, ["ip", "link", "del", port.interface])
        run(["ip", "link", "add", port.interface, "netns", swns, "address", port.mac, "type", "veth",
             "peer", "name", h.data_interface, "netns", ns, "address", port.host_mac])
        run_in(ns, ["ip", "addr", "add", f"{h.data_address}/{inv.data_network.prefixlen}", "dev",
                    h.data_interface])
    run_in(ns, ["ip", "link", "set", h.data_interface, "up"])
    # Static neighbours for every other host on the data network (no ARP on the data plane), and for
    # the VIP: it is the switch's (its port's MAC), which answers handshakes for it.
    run_in(ns, ["ip", "neigh", "replace", str(inv.vip), "lladdr", port.mac, "nud", "permanent",
                "dev", h.data_interface])
    for other in inv.hosts:
        if other.data_address is None or other.name == h.name:
            continue
        mac = other.data_mac or host_mac(other.data_address)
        run_in(ns, ["ip", "neigh", "replace", str(other.data_address), "lladdr", mac, "nud", "permanent",
                    "dev", h.data_interface])


def _ensure_placeholder_bridge(inv: Inventory, ports: dict[str, SwitchPort]) -> None:
    """PLACEHOLDER switch (switch target `bridge`): a Linux bridge joining the switch ports.

    The emulated switch target replaces it by attaching its eBPF pipeline to the same ports."""
    swns = netns(inv.switch_host)
    if not _link_exists("br0", swns):
        _log("placeholder switch: Linux bridge br0 in the switch namespace")
        run_in(swns, ["ip", "link", "add", "br0", "type", "bridge"])
    run_in(swns, ["ip", "link", "set", "br0", "up"])
    for p in ports.values():
        run_in(swns, ["ip", "link", "set", p.interface, "master", "br0", "up"])


def _sshd_config(inv: Inventory, h: Host) -> Path:
    sd = state_dir(inv)
    conf = sd / "sshd" / f"{h.name}.conf"
    conf.write_text("\n".join([
        f"# sshd of testbed host {h.name} (namespace {netns(h)}), written by harness/testbed.py",
        f"ListenAddress {h.mgmt_address}:{h.ssh_port}",
        f"HostKey {sd / 'keys' / 'ssh_host_ed25519_key'}",
        f"PidFile {sd / 'pids' / (h.name + '-sshd.pid')}",
        f"AuthorizedKeysFile {sd / 'keys' / 'authorized_keys'}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "MaxStartups 200",
        "MaxSessions 100",
        "Subsystem sftp internal-sftp",
        "",
    ]))
    return conf


def _pid_alive(pid: int, must_contain: str | None = None) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return must_contain is None or must_contain in cmdline


def _ensure_sshd(inv: Inventory, h: Host) -> None:
    pidf = state_dir(inv) / "pids" / f"{h.name}-sshd.launch"
    conf = _sshd_config(inv, h)
    if pidf.exists():
        pid = int(pidf.read_text())
        if _pid_alive(pid, str(conf)) and _listening(netns(h), h.ssh_port):
            return
    Path("/run/sshd").mkdir(exist_ok=True)
    log = open(state_dir(inv) / "logs" / f"{h.name}-sshd.log", "ab")  # noqa: SIM115 (kept by sshd)
    # nsenter (not `ip netns exec`, which remounts /sys privately): sessions keep the BPF file system
    # at /sys/fs/bpf, which the switch target and the agents pin their maps and programs in.
    p = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns(h)}", SSHD, "-D", "-e", "-f", str(conf)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    pidf.write_text(str(p.pid))
    deadline = time.monotonic() + 10
    while not _listening(netns(h), h.ssh_port):
        if p.poll() is not None or time.monotonic() > deadline:
            tail = (state_dir(inv) / "logs" / f"{h.name}-sshd.log").read_text()[-800:]
            raise TestbedError(f"sshd of {h.name} did not start:\n{tail}")
        time.sleep(0.05)


def _listening(ns: str, port: int) -> bool:
    """Whether a TCP socket listens on `port` in `ns`. Read from the socket table rather than by
    connecting: a probe connection makes sshd fork a pre-authentication child that outlives it."""
    p = run(["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}"], check=False)
    return p.returncode == 0 and bool(p.stdout.strip())


# ---------------------------------------------------------------------------------------------
# status and down


def namespaces() -> list[str]:
    """Every namespace of the project's prefix that exists now (of any testbed)."""
    p = run(["ip", "netns", "list"], check=False)
    return sorted(line.split()[0] for line in p.stdout.splitlines() if line.startswith(PREFIX))


def status(inv: Inventory) -> dict[str, object]:
    hosts = {}
    for h in inv.hosts:
        ns = netns(h)
        exists = _ns_exists(ns)
        pids = [p for p in _ns_pids(ns) if not _is_transient_sshd(p)] if exists else []
        hosts[h.name] = {
            "role": h.role,
            "namespace": ns if exists else None,
            "mgmt": str(h.mgmt_address),
            "data": str(h.data_address) if h.data_address else None,
            "ssh": exists and _listening(ns, h.ssh_port),
            "processes": len(pids),
        }
    return {"testbed": inv.name, "switch_target": inv.switch.target,
            "mgmt_bridge": _link_exists(mgmt_bridge(inv)), "hosts": hosts}


def _ns_pids(ns: str) -> list[int]:
    p = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def _is_transient_sshd(pid: int) -> bool:
    """sshd's per-connection child before authentication ("sshd: [accepted]", "... [preauth]", ...):
    it lives only as long as a connection attempt, so status does not count it."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return True  # gone already
    return cmd.startswith("sshd: ") and "[" in cmd and "@" not in cmd


def down(inv: Inventory) -> None:
    """Removes every namespace, interface, BPF pin and process of the testbed (idempotent)."""
    _require_local(inv)
    sd = state_dir(inv)
    names = [netns(h) for h in inv.hosts]
    # 1. Processes: first those whose PIDs we recorded, then anything still inside our namespaces.
    victims: set[int] = set()
    pid_dir = sd / "pids"
    if pid_dir.is_dir():
        for f in pid_dir.iterdir():
            try:
                victims.add(int(f.read_text().split()[0]))
            except (ValueError, IndexError, OSError):
                pass
            f.unlink(missing_ok=True)
    for ns in names:
        if _ns_exists(ns):
            victims.update(_ns_pids(ns))
    _terminate(victims)
    # 2. Pins of BPF objects loaded for this testbed.
    for pin in BPF_PIN_ROOT.glob(f"{PREFIX}*") if BPF_PIN_ROOT.is_dir() else []:
        if any(pin.name == n or pin.name.startswith(n + "-") for n in names):
            shutil.rmtree(pin, ignore_errors=True)
    # 3. Namespaces (their veth ends go with them) and root-namespace interfaces.
    for ns in names:
        if _ns_exists(ns):
            _log(f"deleting namespace {ns}")
            try:
                run(["ip", "netns", "del", ns])
            except CommandError as e:
                if _ns_exists(ns):     # gone meanwhile (another `down` of the same testbed) is fine
                    raise TestbedError(f"cannot delete namespace {ns}: {e}") from None
    for h in inv.hosts:
        if _link_exists(f"mm-{h.name}"):
            run(["ip", "link", "del", f"mm-{h.name}"], check=False)
    if _link_exists(mgmt_bridge(inv)):
        run(["ip", "link", "del", mgmt_bridge(inv)])
    (sd / "state.json").unlink(missing_ok=True)
    _log("down: nothing of the testbed is left")


def _terminate(pids: set[int], grace: float = 3.0) -> None:
    pids = {p for p in pids if p > 1 and p != os.getpid()}
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # Reap children of this process (sshd was started by us with Popen).
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def describe(inv: Inventory) -> str:
    return json.dumps(status(inv), indent=2)
