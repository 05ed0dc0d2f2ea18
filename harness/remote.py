"""SSH access to the inventory's hosts (Fabric), the same on the local testbed and on a cluster.

`Remote` wraps one Fabric Connection: run commands, transfer files and directory trees into the
host's deployment directory, and manage services as processes with pid files and logs under
`<workdir>/run/`. Services are started detached (setsid) and stopped by the PID in their pid file.
"""

from __future__ import annotations

import io
import shlex
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path

from fabric import Connection
from invoke.exceptions import CommandTimedOut, UnexpectedExit

from harness import interrupt, testbed
from harness.inventory import Host, Inventory


class RemoteError(RuntimeError):
    pass


class Remote:
    def __init__(self, inv: Inventory, host: Host) -> None:
        self.inv = inv
        self.host = host
        key = host.ssh_key or (str(testbed.ssh_key(inv)) if inv.kind == "local" else None)
        connect_kwargs: dict[str, object] = {"banner_timeout": 20, "auth_timeout": 20}
        if key:
            connect_kwargs["key_filename"] = str(Path(key).expanduser())
            connect_kwargs["look_for_keys"] = False
            connect_kwargs["allow_agent"] = False
        self.conn = Connection(host.ssh_address, user=host.ssh_user, port=host.ssh_port,
                               connect_timeout=10, connect_kwargs=connect_kwargs)
        self.workdir = host.workdir

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @property
    def name(self) -> str:
        return self.host.name

    # -- commands ------------------------------------------------------------------------------
    def run(self, cmd: str, check: bool = True, timeout: float | None = 120) -> str:
        try:
            r = self.conn.run(cmd, hide=True, warn=not check, timeout=timeout, in_stream=False)
        except UnexpectedExit as e:
            raise RemoteError(f"{self.name}: `{cmd}` failed ({e.result.exited}):\n"
                              f"{(e.result.stderr or e.result.stdout).strip()[-2000:]}") from None
        except CommandTimedOut:
            raise RemoteError(f"{self.name}: `{cmd}` did not finish within {timeout} s") from None
        except OSError as e:
            raise RemoteError(f"{self.name} ({self.host.ssh_address}:{self.host.ssh_port}): "
                              f"cannot connect over SSH: {e}") from None
        return r.stdout

    def python(self) -> str:
        """The interpreter this host runs the project's Python tools with."""
        if self.host.python == "harness":
            import sys
            return sys.executable
        if self.host.python == "venv":
            return f"{self.workdir}/venv/bin/python"
        return self.host.python

    # -- files ---------------------------------------------------------------------------------
    def put_tree(self, files: Mapping[str, Path | bytes], dest: str | None = None) -> None:
        """Transfers files (remote relative path -> local path or content) as one tar stream."""
        dest = dest or self.workdir
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for rel, src in sorted(files.items()):
                if isinstance(src, bytes):
                    info = tarfile.TarInfo(rel)
                    info.size = len(src)
                    info.mode = 0o644
                    info.mtime = int(time.time())
                    tar.addfile(info, io.BytesIO(src))
                else:
                    tar.add(str(src), arcname=rel)
        buf.seek(0)
        tmp = f"/tmp/miresga-put-{self.name}-{time.monotonic_ns()}.tgz"
        self.run(f"mkdir -p {shlex.quote(dest)}")
        self.conn.put(buf, remote=tmp)
        self.run(f"tar -xzf {tmp} -C {shlex.quote(dest)} && rm -f {tmp}")

    def get(self, remote: str, local: Path) -> bool:
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn.get(remote, local=str(local))
            return True
        except OSError:
            return False

    def get_tree(self, remote_dir: str, local_dir: Path) -> list[Path]:
        """Fetches a remote directory (if it exists) as a tar stream; returns the files fetched."""
        out = self.run(f"test -d {shlex.quote(remote_dir)} && tar -czf - -C {shlex.quote(remote_dir)} . "
                       f"| base64 -w0 || true", timeout=300)
        if not out.strip():
            return []
        import base64
        data = base64.b64decode(out.strip())
        local_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(local_dir, filter="data")
            return [local_dir / m.name for m in tar.getmembers() if m.isfile()]

    # -- services ------------------------------------------------------------------------------
    def pidfile(self, service: str) -> str:
        return f"{self.workdir}/run/{service}.pid"

    def logfile(self, service: str) -> str:
        return f"{self.workdir}/log/{service}.log"

    def start(self, service: str, cmd: str, env: Mapping[str, str] | None = None,
              cwd: str | None = None, daemonizes: bool = False) -> int:
        """Starts a service detached; returns its PID (recorded in its pid file).

        With daemonizes=True the command forks itself and writes the pid file (nginx, haproxy -D)."""
        self.run(f"mkdir -p {self.workdir}/run {self.workdir}/log")
        interrupt.note_started(self, service, None)
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        cd = f"cd {shlex.quote(cwd or self.workdir)}"
        if daemonizes:
            self.run(f"{cd} && {envs} {cmd} >> {self.logfile(service)} 2>&1")
        else:
            # The braces keep `&` on the service alone, so nothing holds the SSH channel open.
            self.run(f"{cd} && {{ {envs} setsid nohup {cmd} >> {self.logfile(service)} 2>&1 < /dev/null & "
                     f"echo $! > {self.pidfile(service)}; }}")
        pid = self.service_pid(service)
        if pid is None:
            raise RemoteError(f"{self.name}: {service} did not start; log:\n{self.tail(service)}")
        interrupt.note_started(self, service, pid)
        return pid

    def service_pid(self, service: str) -> int | None:
        out = self.run(f"p=$(cat {self.pidfile(service)} 2>/dev/null) && kill -0 $p 2>/dev/null && echo $p",
                       check=False).strip()
        return int(out) if out.isdigit() else None

    def stop(self, service: str, timeout: float = 10) -> bool:
        """Stops a service by the PID in its pid file (TERM, then KILL); True if one was running."""
        pid = self.service_pid(service)
        if pid is None:
            self.run(f"rm -f {self.pidfile(service)}", check=False)
            return False
        self.run(f"kill {pid}", check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run(f"kill -0 {pid} 2>/dev/null && echo up", check=False).strip() != "up":
                break
            time.sleep(0.1)
        else:
            self.run(f"kill -9 {pid}", check=False)
        self.run(f"rm -f {self.pidfile(service)}", check=False)
        return True

    def tail(self, service: str, lines: int = 30) -> str:
        return self.run(f"tail -n {lines} {self.logfile(service)} 2>/dev/null", check=False)

    def service_cpu(self, services: list[str]) -> dict[str, dict[int, tuple[float, float]]]:
        """utime and stime (seconds) of each service's process tree, read in one SSH round trip.

        The tree is the PID in the service's pid file and all its descendants (nginx and HAProxy
        workers, Locust's processes); a service that is not running maps to {}."""
        script = (
            "hz=$(getconf CLK_TCK); echo hz $hz; "
            "for f in /proc/[0-9]*/stat; do read -r line < $f 2>/dev/null && echo \"s $line\"; done; "
            + "".join(f"echo \"svc {s} $(cat {self.pidfile(s)} 2>/dev/null)\"; " for s in services)
        )
        out = self.run(script, check=False)
        hz = 100.0
        stats: dict[int, tuple[int, float, float]] = {}  # pid -> (ppid, user, system)
        roots: dict[str, int | None] = {}
        for line in out.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "hz":
                hz = float(rest)
            elif kind == "s" and ")" in rest:
                pid = int(rest.split(" ", 1)[0])
                f = rest.rsplit(")", 1)[1].split()
                # after the command name: state, ppid, ... utime (14th field), stime (15th)
                stats[pid] = (int(f[1]), int(f[11]), int(f[12]))
            elif kind == "svc":
                name, _, pid_s = rest.partition(" ")
                roots[name] = int(pid_s) if pid_s.strip().isdigit() else None
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        res: dict[str, dict[int, tuple[float, float]]] = {}
        for name in services:
            root = roots.get(name)
            tree: dict[int, tuple[float, float]] = {}
            todo = [root] if root in stats else []
            while todo:
                p = todo.pop()
                tree[p] = (stats[p][1] / hz, stats[p][2] / hz)
                todo.extend(children.get(p, []))
            res[name] = tree
        return res


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as e:
            last = e
        time.sleep(interval)
    raise RemoteError(f"timed out after {timeout:.0f} s waiting for {what}" + (f": {last}" if last else ""))
