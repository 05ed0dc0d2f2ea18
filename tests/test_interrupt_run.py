"""A real suite run stopped by a signal, on the integration testbed (tests/data/testbed.yaml).

`fab run-suite` runs as a subprocess, started with SIGINT *ignored* (what a background job of a
non-interactive shell inherits, which is how Ctrl-C used to do nothing). The tests wait for the
second cell's Locust master in the run's process record (polling the file system), send the signal,
and check: the exit code and its one-line message, that every process the run started and every
process of the testbed's namespaces is gone (by PID and start time), that no namespace is left, the
manifest's state, the report's wording; then `--resume` completes the run into the same directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from miresga_testbed import leftovers

from harness import deploy, interrupt, inventory, testbed

pytestmark = [pytest.mark.root, pytest.mark.testbed]
ROOT = Path(__file__).resolve().parent.parent
INV_PATH = Path(__file__).parent / "data" / "testbed.yaml"
FAB = Path(sys.executable).parent / "fab"
GUARD_S = 240          # failure guards only: every wait polls for its event


@pytest.fixture(scope="module")
def inv():
    inv = inventory.load(INV_PATH)
    testbed.down(inv)                     # a crashed earlier run must not matter
    yield inv
    testbed.down(inv)


def _suite(tmp_path: Path) -> Path:
    f = tmp_path / "stop.yaml"
    f.write_text(yaml.safe_dump({
        "name": "stop", "systems": ["direct"],
        "workloads": [{"name": "1k-close", "objects": {"1k": 1}, "connection": "close"}],
        # a measurement window wide enough that the signal lands inside it, not in the collection
        "load": {"users": 2, "spawn_rate": 10, "warmup_s": 2, "duration_s": 10},
        "repetitions": 2,
    }))
    return f


def _fab(out: Path, *args: str) -> subprocess.Popen:
    """fab with SIGINT ignored from the start, its output in out/fab.out and out/fab.err."""
    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(out / "fab.out", "w") as o, open(out / "fab.err", "w") as e:
        p = subprocess.Popen([str(FAB), *args], cwd=ROOT, preexec_fn=ignore_sigint, start_new_session=True,
                             stdout=o, stderr=e, text=True)
    p.out_dir = out  # type: ignore[attr-defined]
    return p


def _output(out: Path) -> tuple[str, str]:
    return (out / "fab.out").read_text(), (out / "fab.err").read_text()


def _wait(what: str, predicate, proc: subprocess.Popen | None = None):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + GUARD_S
    while True:
        got = predicate()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            out, err = _output(proc.out_dir)  # type: ignore[attr-defined]
            raise AssertionError(f"fab exited ({proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {GUARD_S} s")
        time.sleep(0.05)


def _run_dir(results: Path) -> Path | None:
    dirs = [d for d in results.glob("*") if (d / "manifest.json").exists()] if results.is_dir() else []
    return dirs[0] if len(dirs) == 1 else None


def _second_master(run_dir: Path) -> bool:
    started = interrupt.read_record(run_dir / "processes.jsonl") if (run_dir / "processes.jsonl").exists() else []
    return sum(s.service == "locust-master" for s in started) >= 2


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _processes(inv: inventory.Inventory, run_dir: Path) -> dict[int, str]:
    """PID -> start time of everything that must go: what the run recorded starting, the testbed's
    sshds, and every process inside the testbed's namespaces."""
    pids = {s.pid for s in interrupt.read_record(run_dir / "processes.jsonl")}
    pid_dir = testbed.state_dir(inv) / "pids"
    pids |= {int(f.read_text().split()[0]) for f in pid_dir.glob("*") if f.read_text().strip().isdigit()}
    for h in inv.hosts:
        out = subprocess.run(["ip", "netns", "pids", testbed.netns(h)], capture_output=True, text=True).stdout
        pids |= {int(x) for x in out.split()}
    return {p: t for p in pids if (t := _start_time(p)) is not None}


def _still_running(before: dict[int, str]) -> list[str]:
    alive = []
    for pid, t in before.items():
        if _start_time(pid) == t and interrupt.alive(pid):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            alive.append(f"{pid}: {cmd[:120]}")
    return alive


def _interrupt_during_second_cell(inv, tmp_path: Path, send):  # type: ignore[no-untyped-def]
    results = tmp_path / "results"
    p = _fab(tmp_path, "run-suite", "--suite", str(_suite(tmp_path)), "-i", str(INV_PATH), "--out", str(results))
    run_dir = _wait("run directory", lambda: _run_dir(results), p)
    _wait("the second cell's Locust master", lambda: _second_master(run_dir), p)
    before = _processes(inv, run_dir)
    assert any(s.service == "locust-worker-1" and s.pid in before
               for s in interrupt.read_record(run_dir / "processes.jsonl"))       # Locust runs now
    send(p, tmp_path)
    p.wait(timeout=GUARD_S)
    return p, run_dir, before


def test_ctrl_c_stops_the_run_keeps_what_ran_and_resume_completes_it(inv, tmp_path):
    """Ctrl-C (SIGINT to fab's process group, as a terminal sends it) during the second of two cells."""
    p, run_dir, before = _interrupt_during_second_cell(inv, tmp_path, lambda p, _: os.killpg(p.pid, signal.SIGINT))
    err = _output(tmp_path)[1]
    assert p.returncode == 128 + signal.SIGINT, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"error: interrupted (SIGINT) after 1 of 2 cells, kept in {run_dir}; "
        f"resume: fab run-suite --resume {run_dir}")
    assert _still_running(before) == []
    assert leftovers(inv) == {}
    m = json.loads((run_dir / "manifest.json").read_text())
    first, second = "direct--1k-close--u2--r1", "direct--1k-close--u2--r2"
    assert m["state"] == "interrupted" and m["planned"] == [first, second] and m["cells"] == [first]
    assert m["interruption"]["signal"] == "SIGINT" and m["interruption"]["cell"] == second
    print(f"SIGINT to everything stopped: {m['interruption']['stopped_in_s']} s")     # for the record, not a bound
    assert json.loads((run_dir / "cells" / first / "cell.json").read_text())["status"] == "ok"
    assert json.loads((run_dir / "cells" / second / "cell.json").read_text())["status"] == "interrupted"
    text = (run_dir / "report.md").read_text()
    assert f"**incomplete: 1 of 2 cells** (interrupted by SIGINT during `{second}`). Missing: `{second}`." in text
    assert "| direct | 2 | 1/1 |" in text

    r = subprocess.run([str(FAB), "run-suite", "--resume", str(run_dir), "-i", str(INV_PATH)], cwd=ROOT,
                       capture_output=True, text=True, timeout=GUARD_S * 2)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "resuming 1 of 2 cells on ittest" in r.stdout
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["state"] == "complete" and m["cells"] == [first, second] and m["ended"]
    assert [s["state"] for s in m["sessions"]] == ["interrupted", "complete"]
    assert [s["cells"] for s in m["sessions"]] == [[first], [second]]
    assert json.loads((run_dir / "cells" / second / "cell.json").read_text())["status"] == "ok"
    assert list((run_dir / "cells" / second / "requests").glob("*.csv"))
    text = (run_dir / "report.md").read_text()
    assert "incomplete" not in text and "| state | complete (resumed 1 time) |" in text
    assert "| direct | 2 | 2/2 |" in text
    assert leftovers(inv) == {}


def test_sigterm_twice_stops_at_once_and_leaves_nothing(inv, tmp_path):
    """SIGTERM, then SIGTERM again at once: the fast clean-up (KILL by recorded PID, testbed down)."""
    def twice(p: subprocess.Popen, out: Path) -> None:
        p.send_signal(signal.SIGTERM)
        # two signals sent back to back may arrive as one: the second follows the first's acknowledgement
        _wait("fab to acknowledge the first SIGTERM", lambda: "SIGTERM: stopping" in _output(out)[1], p)
        p.send_signal(signal.SIGTERM)
    p, run_dir, before = _interrupt_during_second_cell(inv, tmp_path, twice)
    err = _output(tmp_path)[1]
    assert "SIGTERM again: stopping at once" in err
    assert p.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.strip().splitlines()[-1].startswith(
        f"error: interrupted (SIGTERM) after 1 of 2 cells, kept in {run_dir}")
    assert _still_running(before) == []
    assert leftovers(inv) == {}
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["state"] == "interrupted" and m["cells"] == ["direct--1k-close--u2--r1"]
    assert m["interruption"]["signal"] == "SIGTERM"
    print(f"SIGTERM x2 to everything stopped: {m['interruption']['stopped_in_s']} s")
    assert not (run_dir / "report.md").exists(), err   # at once: no report (`fab report` builds it)


def _service_pids(inv: inventory.Inventory) -> dict[str, int]:
    """host:service -> PID of every pid file under the hosts' run/ directories."""
    out = {}
    for h in inv.hosts:
        for f in Path(h.workdir, "run").glob("*.pid"):
            if f.read_text().strip().isdigit():
                out[f"{h.name}:{f.stem}"] = int(f.read_text())
    return out


def test_deploy_interrupted_halfway_stops_what_it_started_and_the_next_deploy_works(inv, tmp_path):
    testbed.up(inv)
    deploy.undeploy(inv, quiet=True)
    p = _fab(tmp_path, "deploy", "--system", "haproxy", "-i", str(INV_PATH))
    # halfway: the switch and the first back-end's nginx run, HAProxy is not deployed yet
    _wait("nginx on tbe1", lambda: "tbe1:nginx" in _service_pids(inv), p)
    before = {pid: t for pid in _service_pids(inv).values() if (t := _start_time(pid)) is not None}
    assert before
    os.killpg(p.pid, signal.SIGINT)
    p.wait(timeout=GUARD_S)
    err = _output(tmp_path)[1]
    assert p.returncode == 128 + signal.SIGINT, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: deploy of haproxy interrupted (SIGINT); stopped what it had started (")
    assert "tsw:p4rt" in last and "tbe1:nginx" in last and last.endswith("`fab deploy` or `fab undeploy` starts "
                                                                          "over from there")
    assert _still_running(before) == []
    assert _service_pids(inv) == {}
    r = subprocess.run([str(FAB), "deploy", "--system", "haproxy", "-i", str(INV_PATH)], cwd=ROOT,
                       capture_output=True, text=True, timeout=GUARD_S)
    assert r.returncode == 0 and "haproxy is up" in r.stdout, (r.stdout[-3000:], r.stderr[-3000:])
    assert {"tfe1:haproxy", "tbe1:nginx", "tbe2:nginx"} <= set(_service_pids(inv))
    r = subprocess.run([str(FAB), "undeploy", "-i", str(INV_PATH)], cwd=ROOT, capture_output=True, text=True,
                       timeout=GUARD_S)
    assert r.returncode == 0 and _service_pids(inv) == {}
    testbed.down(inv)
    assert leftovers(inv) == {}


def test_locust_ui_ctrl_c_stops_the_ui_and_its_workers_and_nothing_else(inv, tmp_path):
    testbed.up(inv)
    deploy.deploy(inv, "direct")
    system = _service_pids(inv)                       # the switch's and nginx's
    p = _fab(tmp_path, "locust-ui", "-i", str(INV_PATH), "--minutes", "10")
    ui = ("tcli1:locust-ui-master", "tcli1:locust-ui-worker-1")
    _wait("the web UI and its worker", lambda: all(k in _service_pids(inv) for k in ui), p)
    before = {pid: t for k, pid in _service_pids(inv).items() if k in ui and (t := _start_time(pid)) is not None}
    assert len(before) == 2
    os.killpg(p.pid, signal.SIGINT)
    p.wait(timeout=GUARD_S)
    out, err = _output(tmp_path)
    assert p.returncode == 0, err[-3000:]
    assert "SIGINT: stopping the web UI and its workers" in out
    assert _still_running(before) == []
    assert _service_pids(inv) == system               # the deployed system goes on
    assert all(interrupt.alive(pid) for pid in system.values())
    deploy.undeploy(inv, quiet=True)
    testbed.down(inv)
    assert leftovers(inv) == {}
