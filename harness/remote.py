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
from collections.abc import Iterable, Mapping
from pathlib import Path

from fabric import Connection
from invoke.exceptions import UnexpectedExit

from harness import testbed
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
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        cd = f"cd {shlex.quote(cwd or self.workdir)} && "
        if daemonizes:
            self.run(f"{cd}{envs} {cmd} >> {self.logfile(service)} 2>&1")
        else:
            self.run(f"{cd}{envs} setsid nohup {cmd} >> {self.logfile(service)} 2>&1 < /dev/null & "
                     f"echo $! > {self.pidfile(service)}")
        pid = self.service_pid(service)
        if pid is None:
            raise RemoteError(f"{self.name}: {service} did not start; log:\n{self.tail(service)}")
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

    def process_tree(self, pid: int) -> list[int]:
        """The PID and all its descendants (nginx workers, locust workers...)."""
        out = self.run("ps -e -o pid=,ppid=", check=False)
        children: dict[int, list[int]] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:
                children.setdefault(int(parts[1]), []).append(int(parts[0]))
        tree, todo = [], [pid]
        while todo:
            p = todo.pop()
            tree.append(p)
            todo.extend(children.get(p, []))
        return tree

    def cpu_times(self, pids: Iterable[int]) -> dict[int, tuple[float, float]]:
        """utime and stime in seconds per live PID (from /proc/PID/stat)."""
        pids = list(pids)
        if not pids:
            return {}
        out = self.run("getconf CLK_TCK; for p in " + " ".join(map(str, pids)) +
                       "; do echo \"$p $(cat /proc/$p/stat 2>/dev/null)\"; done", check=False)
        lines = out.splitlines()
        hz = float(lines[0])
        res = {}
        for line in lines[1:]:
            pid_s, _, stat = line.partition(" ")
            if ")" not in stat:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            # fields[0] is state (field 3); utime is field 14, stime field 15 (1-based).
            res[int(pid_s)] = (int(fields[11]) / hz, int(fields[12]) / hz)
        return res


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as e:  # noqa: BLE001 (reported below if it never succeeds)
            last = e
        time.sleep(interval)
    raise RemoteError(f"timed out after {timeout:.0f} s waiting for {what}" + (f": {last}" if last else ""))
