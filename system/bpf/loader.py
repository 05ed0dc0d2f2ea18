"""Load BPF objects, pin them, attach programs to tc clsact hooks, detach and unpin.

Everything lives under a pin directory chosen by the caller (e.g. /sys/fs/bpf/<prefix>/):
`<pin_dir>/progs/<function>` for programs and `<pin_dir>/maps/<map>` for maps.

Programs are attached inside a network namespace with `nsenter --net=/run/netns/NS tc ...` rather
than `ip netns exec NS tc ...`: `ip netns exec` remounts /sys in a private mount namespace, which
hides /sys/fs/bpf, so tc could not open the pinned program. nsenter changes only the network
namespace. The loader only loads, attaches, pins, unloads and reports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BPFFS = Path("/sys/fs/bpf")


class LoaderError(RuntimeError):
    """A bpftool/tc command failed; the message holds the command and its output."""


def _run(cmd: Sequence[str], what: str) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LoaderError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                          f"{(proc.stderr + proc.stdout).strip()}")
    return proc.stdout


def in_netns(netns: str | None, cmd: Sequence[str]) -> list[str]:
    """Prefix a command so that it runs in `netns` (None: the current namespace)."""
    if netns is None:
        return list(cmd)
    return ["nsenter", f"--net=/run/netns/{netns}", *cmd]


def ensure_bpffs() -> None:
    if not BPFFS.is_dir() or subprocess.run(["mountpoint", "-q", str(BPFFS)], check=False).returncode:
        raise LoaderError(f"{BPFFS} is not a BPF file system; run scripts/setup.sh "
                          "or `mount -t bpf bpf /sys/fs/bpf`")


@dataclass(frozen=True)
class LoadedObject:
    pin_dir: Path

    @property
    def progs_dir(self) -> Path:
        return self.pin_dir / "progs"

    @property
    def maps_dir(self) -> Path:
        return self.pin_dir / "maps"

    def prog_path(self, name: str) -> Path:
        return self.progs_dir / name

    def map_path(self, name: str) -> Path:
        return self.maps_dir / name

    def programs(self) -> list[str]:
        return sorted(p.name for p in self.progs_dir.iterdir()) if self.progs_dir.is_dir() else []

    def maps(self) -> list[str]:
        return sorted(p.name for p in self.maps_dir.iterdir()) if self.maps_dir.is_dir() else []


def load_object(obj: Path, pin_dir: Path, prog_type: str | None = "classifier") -> LoadedObject:
    """Load every program of `obj`, pin programs and maps under `pin_dir` (which must not exist)."""
    ensure_bpffs()
    pin_dir = Path(pin_dir)
    if not str(pin_dir.resolve()).startswith(str(BPFFS) + "/"):
        raise LoaderError(f"pin directory {pin_dir} is not under {BPFFS}")
    if pin_dir.exists():
        raise LoaderError(f"pin directory {pin_dir} already exists; unload it first")
    pin_dir.mkdir(parents=True)
    loaded = LoadedObject(pin_dir)
    cmd = ["bpftool", "prog", "loadall", str(obj), str(loaded.progs_dir)]
    if prog_type:
        cmd += ["type", prog_type]
    cmd += ["pinmaps", str(loaded.maps_dir)]
    try:
        _run(cmd, "bpftool prog loadall")
    except LoaderError:
        unpin(pin_dir)
        raise
    return loaded


def unpin(pin_dir: Path) -> None:
    """Remove every pinned object under `pin_dir` and the directory itself (missing is fine)."""
    pin_dir = Path(pin_dir)
    if not pin_dir.exists():
        return
    if not str(pin_dir.resolve()).startswith(str(BPFFS) + "/"):
        raise LoaderError(f"refusing to remove {pin_dir}: not under {BPFFS}")
    # bpffs supports unlink/rmdir; shutil.rmtree does exactly that bottom-up.
    shutil.rmtree(pin_dir)


def _has_clsact(netns: str | None, dev: str) -> bool:
    out = _run(in_netns(netns, ["tc", "qdisc", "show", "dev", dev]), "tc qdisc show")
    return "clsact" in out


def attach_tc(netns: str | None, dev: str, prog_path: Path, direction: str = "ingress") -> None:
    """Attach a pinned sched_cls program (direct action) to the clsact hook of `dev`."""
    if direction not in ("ingress", "egress"):
        raise ValueError(f"direction must be ingress or egress, not {direction!r}")
    if not _has_clsact(netns, dev):
        _run(in_netns(netns, ["tc", "qdisc", "add", "dev", dev, "clsact"]), "tc qdisc add clsact")
    _run(in_netns(netns, ["tc", "filter", "replace", "dev", dev, direction, "pref", "1", "handle",
                          "1", "bpf", "direct-action", "pinned", str(prog_path)]),
         f"tc filter add ({dev} {direction})")


def detach_tc(netns: str | None, dev: str) -> None:
    """Remove the clsact qdisc of `dev` (with every filter on it); absent is fine."""
    if _has_clsact(netns, dev):
        _run(in_netns(netns, ["tc", "qdisc", "del", "dev", dev, "clsact"]), "tc qdisc del clsact")


def tc_filters(netns: str | None, dev: str, direction: str = "ingress") -> str:
    """`tc filter show` output for a hook (empty when nothing is attached)."""
    if not _has_clsact(netns, dev):
        return ""
    return _run(in_netns(netns, ["tc", "filter", "show", "dev", dev, direction]), "tc filter show")


def ifindex(netns: str | None, dev: str) -> int:
    # Not /sys/class/net: under nsenter, /sys still shows the root namespace's devices.
    out = _run(in_netns(netns, ["ip", "-o", "link", "show", "dev", dev]), "ip link show")
    return int(out.split(":", 1)[0])


def veth_peer_mac(netns: str | None, dev: str) -> bytes | None:
    """The MAC address of `dev`'s veth peer when that peer is in another (named) namespace: the case
    where bpf_redirect_peer can deliver into it. None for anything else (not a veth, a peer in the
    same namespace, a namespace without a name in /run/netns)."""
    out = _run(in_netns(netns, ["ip", "-d", "-j", "link", "show", "dev", dev]), "ip -d link show")
    (link,) = json.loads(out)
    if link.get("linkinfo", {}).get("info_kind") != "veth" or "link_netnsid" not in link:
        return None
    ids = json.loads(_run(in_netns(netns, ["ip", "-j", "netns", "list-id"]), "ip netns list-id") or "[]")
    names = [i["name"] for i in ids if i.get("nsid") == link["link_netnsid"] and i.get("name")]
    if not names:
        return None
    peers = json.loads(_run(in_netns(names[0], ["ip", "-j", "link", "show"]), "ip link show"))
    macs = [p["address"] for p in peers if p.get("ifindex") == link.get("link_index")]
    return bytes.fromhex(macs[0].replace(":", "")) if macs else None
