"""Miresga's evaluation harness: the task menu (`fab --list`). Each task is a few lines over harness/.

Every task takes `-i/--inventory` (a path, or the name of a shipped inventory: `local`, the default).
It can also be set once with the environment variable MIRESGA_INVENTORY or the Fabric config key
`miresga.inventory` (e.g. in ./fabric.yaml).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from fabric import task
from invoke.exceptions import Exit

from harness import inventory as inventory_mod


def _inv(c, inventory: str | None) -> inventory_mod.Inventory:  # type: ignore[no-untyped-def]
    name = inventory or os.environ.get("MIRESGA_INVENTORY") or c.config.get("miresga", {}).get("inventory")
    try:
        return inventory_mod.load(name)
    except inventory_mod.InventoryError as e:
        raise Exit(f"error: {e}", code=2) from None


def _fail(e: Exception) -> Exit:
    return Exit(f"error: {e}", code=1)


@task(help={"inventory": "inventory file or shipped name (default: local)"})
def testbed_up(c, inventory=None):
    """Bring up the local testbed: a namespace per host, the switch star, management bridge, sshd."""
    from harness import testbed
    try:
        info = testbed.up(_inv(c, inventory))
    except testbed.TestbedError as e:
        raise _fail(e) from None
    print(json.dumps(info, indent=2))


@task(help={"inventory": "inventory file or shipped name (default: local)"})
def testbed_status(c, inventory=None):
    """Show the local testbed: namespaces, addresses, sshd reachability, processes per host."""
    from harness import testbed
    print(testbed.describe(_inv(c, inventory)))


@task(help={"inventory": "inventory file or shipped name (default: local)"})
def testbed_down(c, inventory=None):
    """Tear the local testbed down: processes, namespaces, interfaces, BPF pins (also after a crash)."""
    from harness import testbed
    try:
        testbed.down(_inv(c, inventory))
    except testbed.TestbedError as e:
        raise _fail(e) from None


@task(help={"system": "system under test: direct, haproxy, miresga, switch-only",
            "inventory": "inventory (default: local)",
            "dry_run": "print what would be transferred and started on each host (and SDE steps for a Tofino)"})
def deploy(c, system="haproxy", inventory=None, dry_run=False):
    """Deploy a system over SSH to every host (back-ends: nginx + catalog; front-ends: the LB)."""
    from harness import deploy as dep
    if dry_run:
        try:
            print(dep.plan(_inv(c, inventory), system))
        except dep.DeployError as e:
            raise _fail(e) from None
        return
    try:
        sysd = dep.deploy(_inv(c, inventory), system)
    except (dep.DeployError, dep.RemoteError) as e:
        raise _fail(e) from None
    print(f"{system} is up; clients connect to {sysd.targets(_inv(c, inventory))}")


@task(help={"inventory": "inventory (default: local)"})
def undeploy(c, inventory=None):
    """Stop every service the harness started on the hosts (by pid file)."""
    from harness import deploy as dep
    try:
        dep.undeploy(_inv(c, inventory))
    except dep.RemoteError as e:
        raise _fail(e) from None


@task(help={
    "suite": "quick, full, or a suite file (default: quick)",
    "inventory": "inventory (default: local)",
    "dry_run": "print the expanded matrix of cells and exit",
    "keep_testbed": "local testbed: leave it up after the run",
    "out": "results directory (default: results/)",
})
def run_suite(c, suite="quick", inventory=None, dry_run=False, keep_testbed=False, out=None):
    """Run a suite: deploy each system, run every cell, collect a run directory, build the report."""
    from harness import runner
    inv = _inv(c, inventory)
    try:
        s = runner.load_suite(suite, inv)
    except runner.SuiteError as e:
        raise _fail(e) from None
    if dry_run:
        print(runner.dry_run(s))
        return
    try:
        run_dir = runner.run_suite(inv, s, keep_testbed=keep_testbed, results=Path(out) if out else None)
    except runner.RunError as e:
        raise _fail(e) from None
    print(f"results: {run_dir}\nreport:  {run_dir / 'report.md'}")


@task(help={
    "system": "deploy this system first (default: use what is deployed)",
    "inventory": "inventory (default: local)",
    "minutes": "stop the web UI and its workers after this many minutes (default 30)",
})
def locust_ui(c, system=None, inventory=None, minutes=30.0):
    """Start Locust's web UI (port 8089) against the deployed system; Ctrl-C stops it."""
    from harness import runner
    inv = _inv(c, inventory)
    try:
        runner.locust_ui(inv, system=system, minutes=float(minutes))
    except runner.RunError as e:
        raise _fail(e) from None


@task(help={"run_dir": "a run directory under results/"})
def report(c, run_dir):
    """Rebuild a run directory's report.md and figures from its stored data."""
    from harness.runner import build_analysis
    path = Path(run_dir)
    if not (path / "manifest.json").exists():
        raise Exit(f"error: {path} is not a run directory (no manifest.json)", code=2)
    for p in build_analysis(path):
        print(p)


@task(help={"check": "compare with the committed P4Info, write nothing",
            "fit": "find the largest per-connection table sizes that still compile (slow)"})
def p4_compile(c, check=False, fit=False):
    """Compile p4src/ with p4c-barefoot (Tofino 1): write p4src/<prog>.p4info.txtpb and resources/."""
    from harness import p4c
    argv = ["--check"] if check else ["--fit"] if fit else ["--resources"]
    rc = p4c.main(argv)
    if rc:
        raise Exit(code=rc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run the tasks with `fab` (see README.md)")
