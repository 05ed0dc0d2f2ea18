"""A throw-away nginx on loopback serving a catalog: for tests and the generator benchmark.

`LoopbackNginx(root)` writes a config into ``root``, starts ``nginx -p root -c nginx.conf -g
'daemon off;'`` as a child process (its PID recorded), waits for the port, and on `stop()` ends
exactly that PID. It binds 127.0.0.1 only and serves ``root/obj/<name>`` at ``/obj/<name>``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from workloads.catalog import object_bytes

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

_CONF = """\
{user}worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format conn '$connection $connection_requests $request_uri $status $body_bytes_sent';
    {access_log}
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    etag off;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        server_name _;
        location /obj/ {{ alias {root}/obj/; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackNginx:
    def __init__(self, root: str | Path, port: int | None = None, workers: int = 1,
                 access_log: bool = False) -> None:
        self.root = Path(root).resolve()
        self.port = port or free_port()
        self.workers = workers
        self.access_log = access_log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def obj_dir(self) -> Path:
        return self.root / "obj"

    @property
    def access_log_path(self) -> Path:
        return self.root / "access.log"

    def config(self) -> str:
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read files under /tmp/...
        log = f"access_log {self.access_log_path} conn;" if self.access_log else "access_log off;"
        return _CONF.format(user=user, workers=self.workers, root=self.root, port=self.port, access_log=log)

    def start(self, timeout_s: float = 5.0) -> LoopbackNginx:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.obj_dir.mkdir(parents=True, exist_ok=True)
        conf = self.root / "nginx.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen([NGINX, "-p", str(self.root), "-c", str(conf), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on 127.0.0.1:{self.port} within {timeout_s} s")

    def pids(self) -> list[int]:
        """The master's PID and its workers' (for CPU accounting)."""
        if self.proc is None:
            return []
        try:
            import psutil
            return [self.proc.pid, *(c.pid for c in psutil.Process(self.proc.pid).children())]
        except Exception:
            return [self.proc.pid]

    def stop(self) -> None:
        """Ends exactly the nginx master this object started (it takes its workers along)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown: the master ends its workers
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> LoopbackNginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MisbehavingServer:
    """A tiny threaded HTTP server on 127.0.0.1 that fails on purpose, by path (for client tests):

    /cut/<name>      200, the right Content-Length, half the body, then close   -> short-body
    /chunked/<name>  200 with Transfer-Encoding: chunked                        -> other:chunked
    /reset/<name>    the head and 1000 body bytes, then a TCP reset (SO_LINGER 0) -> reset
    /silent/<name>   reads the request and never answers                        -> timeout
    /close/<name>    closes without answering                                   -> other:closed-before-response
    anything else    404 with a body
    Objects come from ``catalog`` (name -> size) with the catalog content.
    """

    def __init__(self, catalog: dict[str, int]) -> None:
        self.content = {n: object_bytes(n, s) for n, s in catalog.items()}
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                path = data.split(b" ", 2)[1].decode()
                mode, _, name = path.lstrip("/").partition("/")
                body = self.content.get(name)
                if body is None or mode not in ("cut", "chunked", "reset", "silent", "close"):
                    msg = b"not here\n"
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg))
                    continue
                if mode == "cut":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                                 + body[:len(body) // 2])
                    return
                if mode == "chunked":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                                 % (len(body), body))
                    continue
                if mode == "reset":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                                 + body[:1000])
                    self._stop.wait(0.2)  # let the client read the head, then reset mid-body
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if mode == "silent":
                    self._stop.wait(30)
                    return
                return  # close
        except OSError:
            return
        finally:
            conn.close()


class StallingServer:
    """A serial HTTP server on 127.0.0.1 (one connection at a time, in accept order) for open- and
    closed-loop tests: ``/obj/<name>`` answers at once with the catalog content; ``/stall/<name>``
    answers the same content after ``stall_s`` seconds, and every connection behind it waits in the
    listen backlog meanwhile, the way a stalled server holds up its queue. Answers keep the
    connection open unless the request says ``Connection: close``."""

    def __init__(self, catalog: dict[str, int], stall_s: float = 0.5) -> None:
        self.content = {n: object_bytes(n, s) for n, s in catalog.items()}
        self.stall_s = stall_s
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.served = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> StallingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                mode, _, name = path.lstrip("/").partition("/")
                body = self.content.get(name)
                if body is None or mode not in ("obj", "stall"):
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                if mode == "stall":
                    self._stop.wait(self.stall_s)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                self.served += 1
                if b"connection: close" in head.lower():
                    return
        except OSError:
            return
