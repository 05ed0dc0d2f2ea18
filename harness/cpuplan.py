"""The budget suite's CPU plan (issue 11): the load balancer alone on one CPU of the local testbed.

On one machine every system shares the same CPUs, and on veth a send runs the receiver's kernel work
in the sender's softirq, so neither process CPU nor whole-machine CPU says what a load balancer costs.
With `pin_lb: true` a suite runs each system with:

- the load balancer's processes (HAProxy or Miresga's front-end: every process of the front-end
  hosts' namespaces but their sshd; switch-only: its slow path, the switch CPU's work) allowed only
  on the *LB CPU* (the machine's last online CPU);
- every other task of the machine (the testbed's other hosts, Locust, nginx, the emulated switch's
  daemons, sshd, the harness itself, anything else running there) allowed only on the others;
  kernel threads are left alone (per-CPU ones cannot move);
- receive packet steering (RPS) on every veth of the testbed: a frame received by a front-end
  host (or the switch-only slow path's CPU-port netdev) is processed on the LB CPU, any other on the
  others, so that the kernel work of the load balancer's traffic is billed to its CPU and nobody
  else's is.

The LB CPU's busy time over a cell's window (/proc/stat, softirq included) per request is then the
load balancer's measured cost. `release` puts every task and queue back as it was (tasks started
while pinned, which inherited the others' set, get every online CPU). Local testbed only.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import testbed
from harness.inventory import Inventory

PF_KTHREAD = 0x00200000
# Which hosts' namespaces hold each system's load balancer (switch-only: one service, below).
LB_ROLE = {"haproxy": "frontend", "miresga": "frontend"}


class PlanError(RuntimeError):
    pass


def online_cpus() -> list[int]:
    online = Path("/sys/devices/system/cpu/online")
    return _parse_cpulist(online.read_text()) if online.is_file() else sorted(os.sched_getaffinity(0))


def _parse_cpulist(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def mask(cpus: list[int]) -> str:
    """An rps_cpus hex mask."""
    return format(sum(1 << c for c in cpus), "x")


def _tasks() -> list[tuple[int, int]]:
    """(pid, tid) of every user-space task of the machine."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            for t in (d / "task").iterdir():
                stat = (t / "stat").read_text()
                flags = int(stat.rsplit(")", 1)[1].split()[6])
                if not flags & PF_KTHREAD:
                    out.append((int(d.name), int(t.name)))
        except (OSError, ValueError, IndexError):
            continue        # gone meanwhile
    return out


def _ns_pids(ns: str) -> set[int]:
    p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return {int(x) for x in p.stdout.split() if x.isdigit()}


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _service_pid(inv: Inventory, host_name: str, service: str) -> int | None:
    h = next(h for h in inv.hosts if h.name == host_name)
    try:
        text = Path(h.workdir, "run", f"{service}.pid").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and Path(f"/proc/{text}").exists() else None


def _descendants(pids: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(pids), list(pids)
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


@dataclass
class Pinned:
    """What `apply` changed, to undo it, and what it did, for cell.json."""
    system: str
    lb_cpus: list[int]
    other_cpus: list[int]
    lb_hosts: list[str]
    lb_pids: list[int]
    affinity: dict[int, set[int]] = field(default_factory=dict)       # tid -> the set before
    rps: dict[tuple[str, str], str] = field(default_factory=dict)     # (ns, queue path) -> mask before
    rps_set: dict[str, str] = field(default_factory=dict)             # "ns/dev" -> mask written

    def record(self) -> dict[str, Any]:
        """The plan as it stands now (read back from the kernel): the LB's tasks and the CPUs they may
        use, and how many other user tasks may still run on the LB CPU (tasks forked while `apply`
        swept the machine can escape it; 0 is the expected value)."""
        lb_pids, lb = set(self.lb_pids), set(self.lb_cpus)
        lb_allowed: set[int] = set()
        lb_tasks = strays = 0
        for pid, tid in _tasks():
            try:
                allowed = os.sched_getaffinity(tid)
            except OSError:
                continue
            if pid in lb_pids:
                lb_tasks += 1
                lb_allowed |= allowed
            elif allowed & lb:
                strays += 1
        return {"system": self.system, "lb_cpus": self.lb_cpus, "other_cpus": self.other_cpus,
                "lb_hosts": self.lb_hosts, "lb_processes": sorted({_comm(p) for p in self.lb_pids} - {""}),
                "lb_tasks": lb_tasks, "lb_tasks_allowed_cpus": sorted(lb_allowed),
                "other_tasks_allowed_on_lb_cpu": strays, "tasks_moved": len(self.affinity),
                "rps_cpus": self.rps_set}


def lb_processes(inv: Inventory, system: str) -> tuple[list[str], set[int]]:
    """(the hosts whose namespaces carry the load balancer, the PIDs of its processes)."""
    if system == "switch-only":
        pid = _service_pid(inv, inv.switch_host.name, "slowpath")
        if pid is None:
            raise PlanError(f"switch-only: no running slow path on {inv.switch_host.name} to pin")
        return [], _descendants({pid})
    role = LB_ROLE.get(system)
    if role is None:
        return [], set()            # direct: no load balancer; the LB CPU stays idle (the floor)
    hosts = [h for h in inv.hosts if h.role == role]
    pids: set[int] = set()
    for h in hosts:
        pids |= {p for p in _ns_pids(testbed.netns(h)) if _comm(p) != "sshd"}
    if not pids:
        raise PlanError(f"{system}: no process in the namespaces of {', '.join(h.name for h in hosts)} to pin")
    return [h.name for h in hosts], pids


def apply(inv: Inventory, system: str) -> Pinned:
    if inv.kind != "local":
        raise PlanError("pin_lb needs the local testbed (it pins the processes and queues of one machine)")
    cpus = online_cpus()
    if len(cpus) < 2:
        raise PlanError(f"pin_lb needs at least 2 online CPUs, this machine has {len(cpus)}")
    lb_cpus, others = cpus[-1:], cpus[:-1]
    hosts, pids = lb_processes(inv, system)
    pinned = Pinned(system, lb_cpus, others, hosts, sorted(pids))
    try:
        for _ in range(3):      # again: tasks forked during a sweep by a parent not yet moved
            if not _sweep(pinned, pids):
                break
        _steer(inv, system, pinned)
    except BaseException:
        release(pinned)
        raise
    return pinned


def _sweep(pinned: Pinned, pids: set[int]) -> int:
    """Every user task to its side; returns how many were moved now."""
    lb, others = set(pinned.lb_cpus), set(pinned.other_cpus)
    moved = 0
    for pid, tid in _tasks():
        target = lb if pid in pids else others
        try:
            before = os.sched_getaffinity(tid)
            if before != target:
                os.sched_setaffinity(tid, target)
                pinned.affinity.setdefault(tid, before)
                moved += 1
        except OSError:
            continue        # gone meanwhile, or a task that refuses
    return moved


def _queues(ns: str) -> dict[str, list[str]]:
    """Every non-loopback device of a namespace and its rx queues' rps_cpus files (paths inside the
    namespace's own /sys, which `ip netns exec` mounts)."""
    script = "for q in /sys/class/net/*/queues/rx-*/rps_cpus; do echo $q; done"
    p = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", script], capture_output=True, text=True, check=False)
    out: dict[str, list[str]] = {}
    for path in p.stdout.split():
        dev = path.split("/")[4]
        if dev != "lo" and path.endswith("/rps_cpus"):
            out.setdefault(dev, []).append(path)
    return out


def _rw(ns: str, path: str, value: str | None = None) -> str:
    cmd = f"cat {path}" if value is None else f"echo {value} > {path}"
    p = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", cmd], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise PlanError(f"{ns}: {cmd}: {p.stderr.strip()}")
    return p.stdout.strip()


def _steer(inv: Inventory, system: str, pinned: Pinned) -> None:
    from harness import deploy as dep
    lb_mask, other_mask = mask(pinned.lb_cpus), mask(pinned.other_cpus)
    for h in inv.hosts:
        ns = testbed.netns(h)
        for dev, paths in _queues(ns).items():
            lb = h.name in pinned.lb_hosts or (system == "switch-only" and h.role == "switch"
                                               and dev == dep.CPU_NETDEV)
            want = lb_mask if lb else other_mask
            for path in paths:
                pinned.rps[(ns, path)] = _rw(ns, path)
                _rw(ns, path, want)
            pinned.rps_set[f"{ns}/{dev}"] = want


def release(pinned: Pinned) -> None:
    """Undo `apply`: every task it moved gets its set back, tasks started meanwhile with the others'
    set get every online CPU, every rps_cpus its old mask (errors of vanished tasks and queues are
    ignored: a torn-down namespace has nothing left to restore)."""
    others = set(pinned.other_cpus)
    everything = set(online_cpus())
    for _, tid in _tasks():
        try:
            if tid in pinned.affinity:
                os.sched_setaffinity(tid, pinned.affinity[tid])
            elif os.sched_getaffinity(tid) == others:
                os.sched_setaffinity(tid, everything)
        except OSError:
            continue
    for (ns, path), value in pinned.rps.items():
        try:
            _rw(ns, path, value)
        except PlanError:
            continue
    pinned.affinity.clear()
    pinned.rps.clear()
