"""The TCP server front-ends talk to (protocol.py; docs/controlplane-protocol.md).

One thread per front-end connection reads frames (buffered: one recv for as many frames as have
come) and hands entry requests to the Controller; acks are written back by the controller's worker,
under the connection's send lock, those of one Write to one connection in one send. A malformed frame or
message gets an `error` reply and the connection is closed (the stream cannot be trusted after it).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any

from system.controlplane import protocol, rights
from system.controlplane.activity import ActivityUnavailable
from system.controlplane.controller import Controller
from system.credentials import HANDSHAKE_TIMEOUT_S, Credentials, TLSStream, peer_identity

log = logging.getLogger(__name__)


class Replier:
    """Sends replies on one front-end connection: one message, or several in one send (`many`)."""

    __slots__ = ("_lock", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self._lock = threading.Lock()

    def __call__(self, msg: dict[str, Any]) -> None:
        data = protocol.encode(msg)
        with self._lock:
            self.sock.sendall(data)

    def many(self, msgs: list[dict[str, Any]]) -> None:
        data = b"".join(protocol.encode(m) for m in msgs)
        with self._lock:
            self.sock.sendall(data)


class _Handler(socketserver.BaseRequestHandler):
    server: FrontendServer

    def handle(self) -> None:
        raw: socket.socket = self.request
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        srv, ctl = self.server, self.server.controller
        if srv.tls is None:                  # --insecure (tests): every client is the operator
            self._serve(raw, "insecure", rights.INSECURE_ROLE)
            return
        try:
            raw.settimeout(HANDSHAKE_TIMEOUT_S)
            tls = srv.tls.wrap_socket(raw, server_side=True)
        except OSError as e:                 # ssl.SSLError included: no certificate, another CA, ...
            ctl.count_auth(handshake_failed=True)
            log.warning("refused a connection from %s:%s: TLS handshake failed: %s", *self.client_address[:2], e)
            return
        name, role = peer_identity(tls)
        ctl.count_auth(role=role)
        log.info("session of %s (role %s) from %s", name, role, self.client_address[0])
        stream = TLSStream(tls)
        try:
            self._serve(stream, name, role)
        finally:
            stream.close()

    def _serve(self, sock: Any, name: str, role: str) -> None:
        reply = Replier(sock)
        reader = protocol.FrameReader(sock)
        ctl = self.server.controller
        may = rights.rights_of(role)
        aliases = [t.alias for t in ctl.codec.index.tables.values()]
        while True:
            raw: dict[str, Any] | None = None
            try:
                raw = reader.read()
                if raw is None:
                    return
                msg = protocol.validate_request(raw)
            except protocol.ProtocolError as e:
                rid = raw.get("id") if isinstance(raw, dict) else None
                try:
                    reply({"v": protocol.VERSION, "type": "error", "id": rid, "code": "INVALID_ARGUMENT",
                           "message": str(e)})
                except OSError:
                    pass
                return
            except OSError:
                return
            if isinstance(msg, protocol.EntryRequest):
                try:
                    alias = ctl.codec.index.table_by_name(msg.table).alias
                except KeyError:
                    alias = msg.table
                if may.may_write(msg.op, alias):
                    ctl.submit(msg.id, msg.op, msg.table, msg.key, msg.action, msg.params, reply)
                else:
                    ctl.refuse(msg.id, reply, name, role, msg.op, alias)
            elif msg["type"] == "hello":
                reply({"v": protocol.VERSION, "type": "hello", "id": msg["id"],
                       "server": "miresga-controlplane", "pipeline": self.server.pipeline,
                       "identity": name, "role": role, "tables": may.writable(aliases)})
            elif msg["type"] == "activity":
                self._activity(msg, reply, name, role, may)
            elif not getattr(may, msg["type"]):       # cookie_secrets, stats
                ctl.count_auth(refused=f"{role} {msg['type']}")
                reply({"v": protocol.VERSION, "type": "error", "id": msg["id"], "code": "PERMISSION_DENIED",
                       "message": f"identity {name} (role {role}) may not read {msg['type']}"})
            elif msg["type"] == "cookie_secrets":
                sec = ctl.cookie_secrets()
                if sec is None:    # not a protocol error: the connection stays open
                    reply({"v": protocol.VERSION, "type": "error", "id": msg["id"], "code": "FAILED_PRECONDITION",
                           "message": f"pipeline {self.server.pipeline} has no SYN cookie (no syn_cookie table)"})
                else:
                    reply({"v": protocol.VERSION, "type": "cookie_secrets", "id": msg["id"], **sec})
            else:  # stats
                after = msg.get("retired_after")
                after = after if isinstance(after, int) and not isinstance(after, bool) else None
                reply({"v": protocol.VERSION, "type": "stats", "id": msg["id"], "stats": ctl.snapshot(after)})


    def _activity(self, msg: dict[str, Any], reply: Replier, name: str, role: str, may: rights.Rights) -> None:
        """An `activity` request: idle seconds per entry, or an `error` (the connection stays open)."""
        ctl = self.server.controller

        def error(code: str, message: str) -> None:
            reply({"v": protocol.VERSION, "type": "error", "id": msg["id"], "code": code, "message": message})
        try:
            table, keys = protocol.parse_activity(msg)
        except protocol.ProtocolError as e:
            error("INVALID_ARGUMENT", str(e))
            return
        try:
            alias = ctl.codec.index.table_by_name(table).alias
        except KeyError:
            error("INVALID_ARGUMENT", f"activity: pipeline {self.server.pipeline} has no table {table!r}")
            return
        if not may.may_ask_activity(alias):
            ctl.count_auth(refused=f"{role} activity {alias}")
            error("PERMISSION_DENIED", f"identity {name} (role {role}) may not ask the activity of table {alias}")
            return
        act = ctl.activity
        if act is None or alias not in act.tables:
            error("FAILED_PRECONDITION", f"activity: the entries of table {alias} are not tracked (tracked: "
                  f"{', '.join(act.tables) if act else 'none; --activity-interval 0 or no counted table'})")
            return
        try:
            idle, read_age = act.idle(keys)
        except ActivityUnavailable as e:
            error("UNAVAILABLE", f"activity: {e}")
            return
        reply({"v": protocol.VERSION, "type": "activity", "id": msg["id"], "table": alias, "idle_s": idle,
               "read_age_s": read_age, "interval_s": act.interval})


class FrontendServer(socketserver.ThreadingTCPServer):
    """`credentials`: the control plane's own identity; clients must present a certificate of the
    same deployment CA (mutual TLS), and their role decides what they may do (rights.py). None
    (tests, `--insecure`): plain TCP, every client the operator."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], controller: Controller, pipeline: str,
                 credentials: Credentials | None = None) -> None:
        self.controller = controller
        self.pipeline = pipeline
        self.tls = credentials.server_context() if credentials is not None else None
        super().__init__(address, _Handler)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)


class StatsFile:
    """Writes the controller's snapshot as JSON every `interval` s (atomically) and at stop."""

    def __init__(self, controller: Controller, path: Path, interval: float = 1.0) -> None:
        self.controller, self.path, self.interval = controller, Path(path), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="controlplane-stats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.write()
            if self._stop.wait(self.interval):
                return

    def write(self) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.controller.snapshot(), indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.write()
