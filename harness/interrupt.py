"""Stopping a long operation (a suite run, a deploy, the Locust UI) cleanly on Ctrl-C or SIGTERM.

Why this exists: Python turns SIGINT into KeyboardInterrupt only if SIGINT was not ignored when the
interpreter started. A process started in the background by a non-interactive shell (`fab ... &` in
a script, most job runners) inherits SIGINT *ignored*, so Ctrl-C or `kill -INT` did nothing; and
SIGTERM's default action ends Python at once, without a `finally`, so everything the run had started
(namespaces, nginx, HAProxy, the emulated switch, Locust) kept running. Invoke also swallows a
KeyboardInterrupt raised while it waits for a command with a pty and forwards it instead.

`handling()` installs handlers for both signals, whatever was inherited:
- the first signal raises `Interrupted` in the main thread (deferred to the end of a `deferred()`
  block: a cell's collection after its load has ended finishes in seconds and keeps the cell);
- a second one raises `Interrupted(urgent=True)` wherever the main thread is (also inside
  `deferred()` and inside the graceful clean-up), so the caller switches to its fast clean-up;
- later ones, during `shielded()` clean-up, are only acknowledged: the fast clean-up is bounded.
`Interrupted` derives from BaseException, so no `except Exception` in the harness swallows it.

`tracking()` keeps a registry of every service the operation started (Remote.start reports each:
host, service, PID, pid file), optionally recorded as JSON lines; `stop_started()` stops exactly
those, by the PID recorded (when the pid file still names it), TERM then KILL, or KILL at once.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.inventory import Inventory
    from harness.remote import Remote

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 5.0     # a started process gets this long after TERM before KILL (graceful stop)


class Interrupted(BaseException):
    """A stop request by signal: `urgent` for the second one (stop at once)."""

    def __init__(self, signum: int, urgent: bool = False) -> None:
        self.signum = signum
        self.urgent = urgent
        self.time = _state.first_time or time.time()     # when the first signal arrived
        super().__init__(f"{self.signal_name}{' (again: stopping at once)' if urgent else ''}")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    def __init__(self) -> None:
        self.active = 0
        self.received: list[int] = []
        self.defer_depth = 0
        self.pending: int | None = None
        self.shield_depth = 0
        self.raised_urgent = False
        self.first_time: float | None = None


_state = _State()


def _say(msg: str) -> None:
    print(f"[interrupt] {msg}", file=sys.stderr, flush=True)


def _handler(signum: int, _frame: Any) -> None:
    st = _state
    st.received.append(signum)
    st.first_time = st.first_time or time.time()
    name = signal.Signals(signum).name
    if len(st.received) == 1:
        if st.defer_depth or st.shield_depth:
            st.pending = signum
            _say(f"{name}: stopping after this step (again to stop at once)")
            return
        _say(f"{name}: stopping (again to stop at once)")
        raise Interrupted(signum)
    if st.shield_depth or st.raised_urgent:
        _say(f"{name}: already stopping at once; cleaning up what was started")
        return
    st.raised_urgent = True
    _say(f"{name} again: stopping at once")
    raise Interrupted(signum, urgent=True)


def requested() -> Interrupted | None:
    """The stop request received so far (None if none)."""
    if not _state.received:
        return None
    return Interrupted(_state.received[0], urgent=len(_state.received) > 1)


@contextmanager
def handling() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread while inside (see the module)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    if _state.active == 0:
        _state.__init__()  # type: ignore[misc]
    _state.active += 1
    for s in SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        _state.active -= 1
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def deferred() -> Iterator[None]:
    """A step worth finishing: a first signal inside raises only at its end (a second at once)."""
    _state.defer_depth += 1
    try:
        yield
    finally:
        _state.defer_depth -= 1
        if _state.defer_depth == 0 and not _state.shield_depth and _state.pending is not None:
            signum, _state.pending = _state.pending, None
            raise Interrupted(signum)    # also in place of an error of the step: stopping comes first


@contextmanager
def shielded() -> Iterator[None]:
    """Clean-up that must run to its end: signals inside are acknowledged, nothing is raised."""
    _state.shield_depth += 1
    try:
        yield
    finally:
        _state.shield_depth -= 1
        _state.pending = None


# ---------------------------------------------------------------------------------------------
# The processes an operation started


@dataclass(frozen=True)
class Started:
    host: str
    service: str
    pid: int | None     # None: being started (its pid file, once written, names it)
    pidfile: str
    time: float


class Registry:
    def __init__(self, inv: Inventory, record: Path | None = None) -> None:
        self.inv = inv
        self.record = record
        self.started: list[Started] = []
        self._lock = threading.Lock()

    def add(self, host: str, service: str, pid: int | None, pidfile: str) -> None:
        """Registers a service: first while it is being started (pid None), then with its PID (which
        replaces the first entry and is appended to the record file)."""
        s = Started(host, service, pid, pidfile, round(time.time(), 3))
        with self._lock:
            self.started = [e for e in self.started if not (e.host == host and e.service == service and e.pid is None)]
            self.started.append(s)
            if self.record is not None and pid is not None:
                with open(self.record, "a") as f:
                    f.write(json.dumps(asdict(s)) + "\n")


_registry: Registry | None = None


@contextmanager
def tracking(inv: Inventory, record: Path | None = None) -> Iterator[Registry]:
    """Every service started over `Remote.start` while inside is registered (and appended to
    `record` as JSON lines, when given)."""
    global _registry
    outer, _registry = _registry, Registry(inv, record)
    try:
        yield _registry
    finally:
        _registry = outer


def note_started(r: Remote, service: str, pid: int | None) -> None:
    """Called by Remote.start for every service: before starting it (pid None: a signal may land
    before its PID is read back) and once it runs."""
    if _registry is not None:
        _registry.add(r.name, service, pid, r.pidfile(service))


def _stop_script(entries: list[Started], urgent: bool) -> str:
    """Shell that stops each entry whose pid file still names its PID (TERM, wait, KILL; or KILL)
    and prints `stopped <service> <pid>` for each it stopped."""
    lines = ["sent="]
    for e in entries:
        # ours: the pid file names the recorded PID (or, for one being started, whatever it names)
        pf, want, svc = shlex.quote(e.pidfile), "" if e.pid is None else e.pid, shlex.quote(e.service)
        lines.append(f'p=$(cat {pf} 2>/dev/null); if [ -n "$p" ] && {{ [ -z "{want}" ] || [ "$p" = "{want}" ]; }} '
                     f'&& kill -0 $p 2>/dev/null; then kill -{"KILL" if urgent else "TERM"} $p; sent="$sent $p"; '
                     f'echo "stopping {svc} $p"; fi')
    if not urgent:
        # alive: in /proc and not a zombie (a zombie waits for its parent, it runs nothing)
        lines.append(f"for i in $(seq {int(GRACE_S * 10)}); do a=; for p in $sent; do "
                     "st=$(cut -d')' -f2 /proc/$p/stat 2>/dev/null | cut -d' ' -f2); "
                     "[ -n \"$st\" ] && [ \"$st\" != Z ] && a=1; done; [ -z \"$a\" ] && break; sleep 0.1; done")
    lines.append('for p in $sent; do kill -KILL $p 2>/dev/null; done')
    for e in entries:
        pf, want = shlex.quote(e.pidfile), "" if e.pid is None else e.pid
        lines.append(f'p=$(cat {pf} 2>/dev/null); if [ -n "$p" ] && {{ [ -z "{want}" ] || [ "$p" = "{want}" ]; }}; '
                     f'then rm -f {pf}; fi')
    return "\n".join(lines)


def stop_started(registry: Registry, urgent: bool = False) -> list[str]:
    """Stops every service in `registry` that still runs under its recorded PID; returns
    `host:service` of each. Local testbed: directly on this machine (one PID namespace; works even
    when a host's sshd is gone); a cluster: one SSH command per host."""
    by_host: dict[str, dict[tuple[str, int | None], Started]] = {}
    for s in registry.started:
        by_host.setdefault(s.host, {})[(s.service, s.pid)] = s
    stopped: list[str] = []
    for host, entries in by_host.items():
        script = _stop_script(list(entries.values()), urgent)
        try:
            if registry.inv.kind == "local":
                out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60).stdout
            else:
                from harness.remote import Remote
                with Remote(registry.inv, registry.inv.host(host)) as r:
                    out = r.run(script, check=False, timeout=60)
        except Exception as e:  # clean-up goes on with the other hosts
            _say(f"{host}: could not stop its processes: {e}")
            continue
        stopped += [f"{host}:{line.split()[1]}" for line in out.splitlines() if line.startswith("stopping ")]
    return stopped


def alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_record(path: Path) -> list[Started]:
    """The JSON lines `tracking(record=...)` wrote."""
    if not path.exists():
        return []
    return [Started(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


