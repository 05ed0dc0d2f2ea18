"""One switch, reached over P4Runtime with p4runtime-shell's client object (no module globals).

`SwitchConnection` wraps a `p4runtime_sh.p4runtime.P4RuntimeClient` (the object behind
p4runtime-shell's `shell.client`, but one per switch here). It connects and arbitrates as primary,
sets the pipeline (with a cookie, via the client's gRPC stub: the shell's `set_fwd_pipe_config` takes
file paths and sets no cookie), writes batches of several updates on the client's channel (the
shell sends one update per Write, and its P4RuntimeWriteException loops forever on OK details in a
batch error), and reads through the client's `read_one`.

Writes go out as bytes: `EntryCodec.wire_update` encodes an entry request straight into the
protobuf wire format (system/switch/p4rt/wire.py) and `write` frames the WriteRequest around the
serialized updates, because the pure-Python protobuf that p4runtime-shell pins costs about 1 ms of
CPU per table entry to build, copy and serialize.

Quirks of p4runtime-shell 0.0.6 handled here: `P4RuntimeClient` calls `sys.exit(1)` when the
arbitration reply does not come within 2 s (caught: ConnectionError); it does not tell whether the
client became primary (checked with an empty Write, which the server refuses unless primary).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2
from p4runtime_sh.p4runtime import P4RuntimeClient

from system.credentials import Credentials
from system.switch.p4rt import wire
from system.switch.p4rt.codec import ActionInfo, Key, P4InfoIndex, TableInfo, decode_match, encode_entry
from system.switch.p4rt.errors import code_name, parse_details

log = logging.getLogger(__name__)
OK = "OK"


class SwitchUnavailable(ConnectionError):
    """The switch cannot be reached or the stream broke: reconnect."""


class _Client(P4RuntimeClient):
    """P4RuntimeClient whose failed handshake tears its stream down and raises, instead of calling
    sys.exit() with the stream thread still running (a stream that connects later would hold our
    election id and make every new session of ours INVALID_ARGUMENT)."""

    def handshake(self) -> None:
        try:
            super().handshake()
        except SystemExit:
            self.tear_down()
            raise SwitchUnavailable("no arbitration reply") from None


class SwitchRefused(RuntimeError):
    """The switch refused a whole request (not per update): code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class UpdateResult:
    code: str        # google.rpc.Code name: OK, ALREADY_EXISTS, ...
    message: str = ""


@dataclass(frozen=True, slots=True)
class WireUpdate:
    """A table-entry Update as protobuf wire bytes (`EntryCodec.wire_update`)."""

    type: int                       # p4runtime_pb2.Update.INSERT / MODIFY / DELETE
    entry: bytes                    # the serialized TableEntry
    ident: tuple[int, bytes]        # (table id, match fields in field id order): the entry's key

    def data(self) -> bytes:
        """The serialized Update."""
        return wire.encode_update(self.type, self.entry)

    def with_type(self, typ: int) -> WireUpdate:
        return WireUpdate(typ, self.entry, self.ident)

    def describe(self) -> str:
        return f"table {self.ident[0]:#x} match {self.ident[1].hex()}"


class SwitchConnection:
    def __init__(self, address: str, device_id: int = 1, election_id: tuple[int, int] = (0, 1),
                 role: str | None = None, credentials: Credentials | None = None) -> None:
        self.address = address
        self.credentials = credentials      # TLS with this client certificate; None: insecure channel
        self.device_id = device_id
        self.election_id = election_id
        self.role = role
        self.client: P4RuntimeClient | None = None
        self._write_raw: Any = None

    # -- session ------------------------------------------------------------------------------

    def connect(self) -> None:
        """Opens the stream and arbitrates; raises SwitchUnavailable or SwitchRefused (not primary)."""
        self.close()
        creds = self.credentials
        with (grpc.secure_channel(self.address, creds.grpc_channel_credentials()) if creds
              else grpc.insecure_channel(self.address)) as ch:
            try:
                grpc.channel_ready_future(ch).result(timeout=2)
            except grpc.FutureTimeoutError:
                raise SwitchUnavailable(f"{self.address} does not answer"
                                        + (" (or refuses our TLS client certificate)" if creds else "")) from None
        try:
            self.client = _Client(self.device_id, self.address, self.election_id, self.role,
                                  creds.p4runtime_sh_options() if creds else None)
        except SwitchUnavailable:
            raise SwitchUnavailable(f"no arbitration reply from {self.address}") from None
        self._write_raw = self.client.channel.unary_unary(          # bytes in: see write()
            "/p4.v1.P4Runtime/Write", request_serializer=None,
            response_deserializer=None)                               # the reply is empty: not parsed
        try:
            self._stub_write(p4runtime_pb2.WriteRequest())
        except SwitchRefused:
            self.close()
            raise

    @property
    def alive(self) -> bool:
        c = self.client
        return c is not None and c.stream_recv_thread.is_alive()

    def close(self) -> None:
        c, self.client = self.client, None
        self._write_raw = None
        if c is not None:
            try:
                c.tear_down()
            except Exception:  # the channel may already be gone
                log.debug("tear_down failed", exc_info=True)

    def _need(self) -> P4RuntimeClient:
        if self.client is None:
            raise SwitchUnavailable("not connected")
        return self.client

    # -- pipeline ------------------------------------------------------------------------------

    def set_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes, cookie: int) -> None:
        c = self._need()
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=self.device_id, action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        req.election_id.high, req.election_id.low = self.election_id
        if self.role:
            req.role = self.role
        req.config.p4info.CopyFrom(p4info)
        req.config.p4_device_config = device_config
        req.config.cookie.cookie = cookie
        self._call(c.stub.SetForwardingPipelineConfig, req)

    def pipeline_cookie(self) -> int | None:
        """The cookie of the switch's pipeline, or None when it has none."""
        c = self._need()
        req = p4runtime_pb2.GetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            response_type=p4runtime_pb2.GetForwardingPipelineConfigRequest.COOKIE_ONLY)
        try:
            rep = self._call(c.stub.GetForwardingPipelineConfig, req)
        except SwitchRefused as e:
            if e.code == "FAILED_PRECONDITION":
                return None
            raise
        return rep.config.cookie.cookie if rep.config.HasField("cookie") else None

    # -- writes and reads ---------------------------------------------------------------------

    def write(self, updates: Sequence[p4runtime_pb2.Update | WireUpdate | bytes]) -> list[UpdateResult]:
        """One Write RPC with all `updates` (protobuf Updates, WireUpdates or serialized Updates);
        one result per update (per-update errors decoded)."""
        self._need()
        raw = [u if isinstance(u, bytes) else u.data() if isinstance(u, WireUpdate) else u.SerializeToString()
               for u in updates]
        data = wire.encode_write_request(self.device_id, self.election_id, self.role, raw)
        try:
            self._write_raw(data)
            return [UpdateResult(OK)] * len(raw)
        except grpc.RpcError as e:
            return self._results(e, len(raw))

    def _stub_write(self, req: p4runtime_pb2.WriteRequest, n: int = 0) -> list[UpdateResult]:
        c = self._need()
        req.device_id = self.device_id
        req.election_id.high, req.election_id.low = self.election_id
        if self.role:
            req.role = self.role
        try:
            c.stub.Write(req)
            return [UpdateResult(OK)] * n
        except grpc.RpcError as e:
            return self._results(e, n)

    def _results(self, e: grpc.RpcError, n: int) -> list[UpdateResult]:
        details = parse_details(e.trailing_metadata())
        if e.code() == grpc.StatusCode.UNKNOWN and len(details) == n:
            return [UpdateResult(code_name(d.canonical_code), d.message) for d in details]
        if n == 1 and len(details) == 1:
            return [UpdateResult(code_name(details[0].canonical_code), details[0].message)]
        self._raise(e)

    def read_entries(self, table_id: int = 0, default: bool = False) -> list[p4runtime_pb2.TableEntry]:
        """The entries of one table (every table with 0), or its default entry with `default`."""
        c = self._need()
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = table_id
        ent.table_entry.is_default_action = default
        try:
            return [e.table_entry for rep in c.read_one(ent) for e in rep.entities]
        except grpc.RpcError as e:
            self._raise(e)

    def read_direct_counters(self, entries: Sequence[p4runtime_pb2.TableEntry]
                             ) -> list[p4runtime_pb2.DirectCounterEntry]:
        """The direct counters of `entries` (match only; the action is ignored) in one Read RPC; an
        entry the switch does not have is left out of the reply."""
        c = self._need()
        req = p4runtime_pb2.ReadRequest(device_id=self.device_id)
        for e in entries:
            ent = req.entities.add()
            ent.direct_counter_entry.table_entry.table_id = e.table_id
            ent.direct_counter_entry.table_entry.match.extend(e.match)
            if e.priority:
                ent.direct_counter_entry.table_entry.priority = e.priority
        try:
            return [e.direct_counter_entry for rep in c.stub.Read(req, timeout=10) for e in rep.entities]
        except grpc.RpcError as e:
            self._raise(e)

    def _call(self, fn: Any, req: Any) -> Any:
        try:
            return fn(req)
        except grpc.RpcError as e:
            self._raise(e)

    def _raise(self, e: grpc.RpcError) -> NoReturn:
        code = e.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                    grpc.StatusCode.DEADLINE_EXCEEDED):
            raise SwitchUnavailable(f"{code.name}: {e.details()}") from None
        raise SwitchRefused(code.name, e.details() or "") from None


class EntryCodec:
    """Builds P4Runtime updates from names (as front-ends send them) with a P4Info."""

    def __init__(self, p4info: p4info_pb2.P4Info) -> None:
        self.index = P4InfoIndex(p4info)
        # Name lookups of the request path (full and short names, as P4InfoIndex.*_by_name).
        self._tables: dict[str, TableInfo] = {}
        self._fields: dict[int, dict[str, Any]] = {}
        for t in self.index.tables.values():
            self._tables.setdefault(t.name, t)
            self._tables.setdefault(t.alias, t)
            full = {f.name: f for f in t.fields}
            self._fields[t.id] = {**{f.name.split(".")[-1]: f for f in t.fields}, **full}
        self._actions: dict[str, ActionInfo] = {}
        self._params: dict[int, dict[str, Any]] = {}
        for a in self.index.actions.values():
            self._actions.setdefault(a.name, a)
            self._actions.setdefault(a.alias, a)
            self._params[a.id] = {q.name: q for q in a.params}

    def update(self, op: str, table: str, key: dict[str, Any], action: str | None = None,
               params: dict[str, Any] | None = None) -> p4runtime_pb2.Update:
        """`op` is add|modify|delete. Raises ValueError (message for the client) on unknown names or
        bad values; key values are ints, [value, prefix_len] (lpm), [value, mask] (ternary), or
        strings for IPv4 (32-bit) and MAC (48-bit) fields."""
        typ, t, k, a, p = self._resolve(op, table, key, action, params)
        entry = _encode_partial(t, k, a, p)
        u = p4runtime_pb2.Update(type=typ)
        u.entity.table_entry.CopyFrom(entry)
        return u

    def wire_update(self, op: str, table: str, key: dict[str, Any], action: str | None = None,
                    params: dict[str, Any] | None = None) -> WireUpdate:
        """As `update`, encoded straight to wire bytes (the same bytes protobuf would write)."""
        typ, t, k, a, p = self._resolve(op, table, key, action, params)
        try:
            entry, match = wire.encode_entry(t, k, a, p)
        except ValueError as e:
            raise ValueError(f"table {t.alias}: {e}") from None
        return WireUpdate(typ, entry, (t.id, match))

    def _resolve(self, op: str, table: str, key: dict[str, Any], action: str | None,
                 params: dict[str, Any] | None) -> tuple[int, TableInfo, Key, ActionInfo | None, dict[str, int]]:
        typ = _OPS.get(op)
        if typ is None:
            raise ValueError(f"unknown operation {op!r} (add, modify, delete)")
        t = self._tables.get(table)
        if t is None:
            raise ValueError(f"unknown table {table!r}")
        fields = self._fields[t.id]
        k: Key = {}
        for name, value in key.items():
            f = fields.get(name)
            if f is None:
                raise ValueError(f"table {table}: unknown match field {name!r}")
            if f.kind == "exact":
                k[f.name] = _value(value, f.bitwidth, name)
            else:
                if not isinstance(value, list | tuple) or len(value) != 2:
                    raise ValueError(f"table {table}: field {name} is {f.kind}: give [value, "
                                     f"{'prefix_len' if f.kind == 'lpm' else 'mask'}]")
                second = _prefix_len(value[1], name) if f.kind == "lpm" else _value(value[1], f.bitwidth, name)
                k[f.name] = (_value(value[0], f.bitwidth, name), second)
        a = None
        p: dict[str, int] = {}
        if op != "delete":
            a = self._actions.get(action or "")
            if a is None:
                raise ValueError(f"unknown action {action!r}")
            names = self._params[a.id]
            for pname, value in (params or {}).items():
                q = names.get(pname)
                if q is None:
                    raise ValueError(f"action {action}: unknown param {pname!r}")
                p[q.name] = _value(value, q.bitwidth, pname)
            if len(p) != len(a.params):
                missing = [q.name for q in a.params if q.name not in p]
                raise ValueError(f"action {action}: missing param(s) {', '.join(missing)}")
        return typ, t, k, a, p

    def default_update(self, table: str, action: str, params: dict[str, Any]) -> p4runtime_pb2.Update:
        """A MODIFY of `table`'s default entry (is_default_action): its default action and params.
        Raises ValueError on unknown names, bad values or a missing param."""
        try:
            t = self.index.table_by_name(table)
        except KeyError:
            raise ValueError(f"unknown table {table!r}") from None
        try:
            a = self.index.action_by_name(action)
        except KeyError:
            raise ValueError(f"unknown action {action!r}") from None
        if a.id not in t.default_action_ids:
            raise ValueError(f"action {action} cannot be the default action of table {table}")
        names = {q.name: q for q in a.params}
        p: dict[str, int] = {}
        for pname, value in params.items():
            q = names.get(pname)
            if q is None:
                raise ValueError(f"action {action}: unknown param {pname!r}")
            p[q.name] = _value(value, q.bitwidth, pname)
        missing = [q.name for q in a.params if q.name not in p]
        if missing:
            raise ValueError(f"action {action}: missing param(s) {', '.join(missing)}")
        u = p4runtime_pb2.Update(type=p4runtime_pb2.Update.MODIFY)
        u.entity.table_entry.CopyFrom(_encode_partial(t, {}, a, p))
        u.entity.table_entry.is_default_action = True
        return u

    def has_table(self, table: str) -> bool:
        try:
            self.index.table_by_name(table)
        except KeyError:
            return False
        return True

    def entry_key(self, entry: p4runtime_pb2.TableEntry) -> tuple[int, bytes]:
        """A hashable identity of an entry's table and match (for per-key ordering)."""
        m = p4runtime_pb2.TableEntry(table_id=entry.table_id)
        m.match.extend(sorted(entry.match, key=lambda f: f.field_id))
        return entry.table_id, m.SerializeToString(deterministic=True)

    def validate_key(self, entry: p4runtime_pb2.TableEntry) -> None:
        decode_match(self.index.table(entry.table_id), list(entry.match))


_OPS = {"add": p4runtime_pb2.Update.INSERT, "modify": p4runtime_pb2.Update.MODIFY,
        "delete": p4runtime_pb2.Update.DELETE}


def _encode_partial(t: Any, key: dict[str, Any], a: Any, p: dict[str, int]) -> p4runtime_pb2.TableEntry:
    try:
        return encode_entry(t, key, a, p)
    except ValueError as e:
        raise ValueError(f"table {t.alias}: {e}") from None


def _prefix_len(v: Any, what: str) -> int:
    """An LPM prefix length as given (the switch checks its range); an int32, as in P4Runtime."""
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: prefix length {v!r} is not a number") from None
    if isinstance(v, bool) or not -(1 << 31) <= n < 1 << 31:
        raise ValueError(f"{what}: prefix length {v!r} is not a 32-bit integer")
    return n


def _value(v: Any, bitwidth: int, what: str) -> int:
    if isinstance(v, bool):
        raise ValueError(f"{what}: {v!r} is not a number")
    if isinstance(v, int):
        n = v
    elif isinstance(v, str):
        n = _text_value(v, bitwidth)
        if n is None:
            kind = "an IPv4 address" if bitwidth == 32 and "." in v else \
                "a MAC address" if bitwidth == 48 and ":" in v else "a number"
            raise ValueError(f"{what}: {v!r} is not {kind}")
    else:
        raise ValueError(f"{what}: {v!r} is not a number or a string")
    if n < 0 or n >> bitwidth:
        raise ValueError(f"{what}: {v!r} does not fit in {bitwidth} bits")
    return n


@functools.lru_cache(maxsize=65536)
def _text_value(v: str, bitwidth: int) -> int | None:
    """A string value: dotted IPv4 (32-bit fields), MAC (48-bit fields), decimal or 0x; None if
    it is none of them. Cached: requests repeat the same addresses (VIP, back-ends, clients)."""
    if bitwidth == 32 and "." in v:
        try:
            return int(ipaddress.IPv4Address(v))
        except ValueError:
            return None
    if bitwidth == 48 and ":" in v:
        parts = v.split(":")
        if len(parts) != 6:
            return None
        try:
            return int("".join(f"{int(x, 16):02x}" for x in parts), 16)
        except ValueError:
            return None
    try:
        return int(v, 0)
    except ValueError:
        return None


__all__ = ["OK", "EntryCodec", "SwitchConnection", "SwitchRefused", "SwitchUnavailable", "UpdateResult",
           "WireUpdate"]
