"""harness.interrupt without a testbed: real processes, real signals.

A child Python process runs a long "operation" under `interrupt.handling()`; the test waits for
its marker file, signals it, and reads what it wrote. SIGINT is ignored in the child from the start,
as in a process a non-interactive shell started in the background (why Ctrl-C did nothing before)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import interrupt, inventory

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60      # failure guard only: every wait below polls for an event

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness import interrupt
    out = Path(sys.argv[1])
    def note(s):
        with open(out / "log", "a") as f:
            f.write(s + "\\n")
    with interrupt.handling():
        try:
            try:
                with interrupt.deferred():
                    (out / "deferring").touch()
                    while not (out / "go-on").exists():
                        time.sleep(0.05)
                    note("deferred step finished")
                (out / "running").touch()
                while True:
                    time.sleep(0.05)
            except interrupt.Interrupted as e:
                note(f"first {e.signal_name} urgent={e.urgent}")
                (out / "cleaning").touch()
                while True:        # a slow graceful clean-up: only a second signal ends it
                    time.sleep(0.05)
        except interrupt.Interrupted as e:
            note(f"second {e.signal_name} urgent={e.urgent}")
            with interrupt.shielded():
                (out / "shielded").touch()
                while not (out / "release").exists():
                    time.sleep(0.05)
                note("fast clean-up done")
            sys.exit(e.exit_code)
""")


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited ({proc.returncode}) before {path.name}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {path.name} within {DEADLINE_S} s")
        time.sleep(0.02)


def _child(tmp_path: Path) -> subprocess.Popen:
    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, preexec_fn=ignore_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_deferred_step_finishes_then_first_and_second_signal(tmp_path, first):
    p = _child(tmp_path)
    try:
        _wait_for(tmp_path / "deferring", p)
        p.send_signal(first)                # inside deferred(): noted, raised at its end
        # the step goes on (nothing was raised); let it finish
        (tmp_path / "go-on").touch()
        _wait_for(tmp_path / "cleaning", p)
        assert not (tmp_path / "running").exists()      # raised at the end of the step, not later
        p.send_signal(signal.SIGINT)        # second: raised inside the graceful clean-up
        _wait_for(tmp_path / "shielded", p)
        p.send_signal(signal.SIGTERM)       # third: only acknowledged while shielded
        p.send_signal(signal.SIGINT)
        (tmp_path / "release").touch()
        code = p.wait(timeout=DEADLINE_S)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    name = signal.Signals(first).name
    assert (tmp_path / "log").read_text().splitlines() == [
        "deferred step finished", f"first {name} urgent=False", "second SIGINT urgent=True", "fast clean-up done"]
    assert code == 128 + signal.SIGINT
    err = p.stderr.read()
    assert f"{name}: stopping after this step" in err and "SIGINT again: stopping at once" in err
    assert "already stopping at once" in err


def test_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    with interrupt.handling():
        assert all(signal.getsignal(s) is not before[s] for s in interrupt.SIGNALS)
    assert {s: signal.getsignal(s) for s in interrupt.SIGNALS} == before


def test_stop_started_stops_by_recorded_pid_only(tmp_path):
    """Two services with pid files: one is registered and stopped (TERM), the other is not touched;
    a registered service whose pid file names another PID now is left alone too."""
    inv = inventory.load("local")
    procs = {}
    for name in ("mine", "other", "replaced"):
        procs[name] = subprocess.Popen(["sleep", "300"], start_new_session=True)
        (tmp_path / f"{name}.pid").write_text(f"{procs[name].pid}\n")
    (tmp_path / "replaced.pid").write_text(f"{procs['other'].pid}\n")   # restarted meanwhile: not ours
    record = tmp_path / "processes.jsonl"
    try:
        with interrupt.tracking(inv, record) as reg:
            reg.add("client1", "mine", procs["mine"].pid, str(tmp_path / "mine.pid"))
            reg.add("fe1", "replaced", procs["replaced"].pid, str(tmp_path / "replaced.pid"))
        stopped = interrupt.stop_started(reg)
        assert stopped == ["client1:mine"]
        assert procs["mine"].wait(timeout=DEADLINE_S) == -signal.SIGTERM
        assert not (tmp_path / "mine.pid").exists()
        assert procs["other"].poll() is None and procs["replaced"].poll() is None
        assert [(s.host, s.service, s.pid) for s in interrupt.read_record(record)] == [
            ("client1", "mine", procs["mine"].pid), ("fe1", "replaced", procs["replaced"].pid)]
        (tmp_path / "replaced.pid").write_text(f"{procs['replaced'].pid}\n")
        assert interrupt.stop_started(reg, urgent=True) == ["fe1:replaced"]
        assert procs["replaced"].wait(timeout=DEADLINE_S) == -signal.SIGKILL
        assert not interrupt.alive(procs["replaced"].pid)
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


def test_a_service_being_started_is_stopped_by_its_pid_file(tmp_path):
    """A signal between a service's start and the read-back of its PID: the registry's entry has no
    PID yet, so the pid file names the process to stop; nothing goes to the record file."""
    inv = inventory.load("local")
    p = subprocess.Popen(["sleep", "300"], start_new_session=True)
    (tmp_path / "nginx.pid").write_text(f"{p.pid}\n")
    try:
        with interrupt.tracking(inv, tmp_path / "processes.jsonl") as reg:
            reg.add("be1", "nginx", None, str(tmp_path / "nginx.pid"))
        assert interrupt.stop_started(reg) == ["be1:nginx"]
        assert p.wait(timeout=DEADLINE_S) == -signal.SIGTERM
        assert interrupt.read_record(tmp_path / "processes.jsonl") == []
        # once the PID is known it replaces the pending entry
        reg.add("be1", "nginx", 4242, str(tmp_path / "nginx.pid"))
        assert [(s.service, s.pid) for s in reg.started] == [("nginx", 4242)]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
