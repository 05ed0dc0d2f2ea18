"""Run directories (docs/run-directory.md): creation and provenance (manifest.json)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from harness import tofino_config
from harness.inventory import ROOT, Inventory
from harness.remote import Remote
from harness.suites import Suite

FORMAT = 1
# manifest "state": running (or the process died without a word), complete (every planned cell ran;
# failed cells included), interrupted (stopped by SIGINT/SIGTERM), failed (the run itself stopped on
# an error).
STATES = ("running", "complete", "interrupted", "failed")
RESULTS = ROOT / "results"
PYTHON_PACKAGES = ("locust", "fabric", "paramiko", "pandas", "seaborn", "matplotlib", "numpy", "grpcio",
                   "protobuf", "p4runtime", "p4runtime-shell", "scapy", "PyYAML")
DEBIAN_PACKAGES = ("nginx", "haproxy", "openssh-server", "iproute2", "clang", "bpftool", "libbpf-dev", "curl")
HOST_FACTS = {
    "kernel": "uname -r",
    "nproc": "nproc",
    "cpu_model": "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2",
    "mem_total": "grep MemTotal /proc/meminfo | awk '{print $2 \" kB\"}'",
    "tcp_rmem": "sysctl -n net.ipv4.tcp_rmem",
    "tcp_wmem": "sysctl -n net.ipv4.tcp_wmem",
    "tcp_congestion_control": "sysctl -n net.ipv4.tcp_congestion_control",
    "tcp_fastopen": "sysctl -n net.ipv4.tcp_fastopen",
    "somaxconn": "sysctl -n net.core.somaxconn",
    "addresses": "ip -br addr",
}


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_dir(suite_name: str, base: Path = RESULTS) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    d = base / f"{stamp}-{suite_name}"
    n = 1
    while d.exists():
        n += 1
        d = base / f"{stamp}-{suite_name}-{n}"
    (d / "cells").mkdir(parents=True)
    return d


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        p = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else ""
    commit = git("rev-parse", "HEAD") or None
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict[str, dict[str, str]]:
    py = {}
    for p in PYTHON_PACKAGES:
        try:
            py[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            py[p] = "not installed"
    deb = {}
    for p in DEBIAN_PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True, text=True)
        deb[p] = r.stdout.strip() if r.returncode == 0 else "not installed"
    return {"python": py, "debian": deb}


def host_facts(r: Remote) -> dict[str, Any]:
    script = "; ".join(f"echo \"{k}=$({cmd} 2>/dev/null | tr '\\n' ';')\"" for k, cmd in HOST_FACTS.items())
    facts: dict[str, Any] = {"role": r.host.role, "cores": list(r.host.cores)}
    for line in r.run(script, check=False).splitlines():
        k, _, v = line.partition("=")
        facts[k] = v.strip().rstrip(";").strip()
    if r.host.data_address is not None:
        off = r.run(f"ethtool -k {r.host.data_interface} 2>/dev/null | grep -E "
                    "'^(tx-checksumming|rx-checksumming|tcp-segmentation-offload|generic-receive-offload|"
                    "generic-segmentation-offload):'", check=False)
        facts["offloads"] = dict(line.split(": ", 1) for line in off.splitlines() if ": " in line)
    return facts


def write_manifest(run_dir: Path, suite: Suite, inv: Inventory, hosts: dict[str, Any],
                   started: str, cells: list[str], ended: str | None = None, state: str = "running") -> None:
    """The manifest of a new run; `cells` are the cells done so far, in the order they ran."""
    manifest = {
        "format": FORMAT,
        "run_id": run_dir.name,
        "suite": suite.name,
        "emulated": inv.emulated,
        "testbed": inv.name,
        "switch_target": inv.switch.target,
        "switch_sde": tofino_config.provenance(inv),    # target tofino: SDE, server, stand_in
        "git": git_state(),
        "packages": package_versions(),
        "hosts": hosts,
        "started": started,
        "ended": ended,
        "state": state,
        "planned": [c.cell_id for c in suite.cells],
        "cells": cells,
    }
    _write_json(run_dir / "manifest.json", manifest)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "manifest.json").read_text()))


def update_manifest(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Replaces top-level fields of an existing manifest (state, cells, ended, ...)."""
    manifest = read_manifest(run_dir) | fields
    if manifest.get("state") not in STATES:
        raise ValueError(f"manifest state must be one of {', '.join(STATES)}, not {manifest.get('state')!r}")
    _write_json(run_dir / "manifest.json", manifest)
    return manifest


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Written whole and renamed into place: an interruption never leaves half a manifest."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def write_inputs(run_dir: Path, suite: Suite, inv: Inventory) -> None:
    (run_dir / "suite.yaml").write_text(yaml.safe_dump(suite.raw, sort_keys=False))
    (run_dir / "inventory.yaml").write_text(yaml.safe_dump(inv.raw, sort_keys=False))
    if inv.switch.target != "bridge" and inv.switch.profile.exists():
        shutil.copy(inv.switch.profile, run_dir / "switch-profile.yaml")
