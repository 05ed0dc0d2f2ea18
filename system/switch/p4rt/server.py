"""The P4Runtime gRPC server of the emulated switch target (P4Runtime 1.4.1 protos).

Services: StreamChannel (arbitration only; packet-out is answered with a stream error UNIMPLEMENTED),
SetForwardingPipelineConfig (VERIFY, VERIFY_AND_SAVE, VERIFY_AND_COMMIT, COMMIT;
RECONCILE_AND_COMMIT is treated as VERIFY_AND_COMMIT: the target keeps no state across pipelines, so
the reconciliation is a full replacement), GetForwardingPipelineConfig (all response types), Write
(table entries; CONTINUE_ON_ERROR only), Read (table entries and counters), Capabilities.

Default entries (P4Runtime 1.4, 9.1.3): a MODIFY with `is_default_action` sets the default action of
a table whose default is not const (pipeline miresga's keyless `syn_cookie`: the cookie secret), or
resets it when it has no action; INSERT/DELETE of a default entry is INVALID_ARGUMENT, a MODIFY of a
const default PERMISSION_DENIED. A Read of one table's entry with `is_default_action` returns its
default entry (the const one too); wildcard reads return entries only.

Write requests are parsed by `wire.parse_write_request` (views of the table-entry updates; protobuf
for anything else) and Read replies of table entries encoded by wire.py: pure-Python protobuf costs
~0.5 ms of CPU per table entry either way. The pipeline lock is held only while a Read takes its
snapshot of the BPF maps, not while it encodes, so Reads do not stall Writes.

Server counters are written as JSON to `--stats-file` (once a second while they change, and at exit);
see `Device.stats()` for the fields.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, NoReturn

import grpc
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from system.credentials import Credentials
from system.switch.p4rt.access import RoleCheck
from system.switch.p4rt.arbitration import Arbiter, Stream, election_id
from system.switch.p4rt.device import Device
from system.switch.p4rt.errors import STATUS_DETAILS_KEY, P4RTError, write_failure
from system.switch.p4rt.wire import WriteRequestView, encode_read_response, parse_write_request

log = logging.getLogger(__name__)
API_VERSION = "1.4.1"
READ_CHUNK = 1000          # entities per ReadResponse
SFP = p4runtime_pb2.SetForwardingPipelineConfigRequest
GFP = p4runtime_pb2.GetForwardingPipelineConfigRequest


def _abort(context: grpc.ServicerContext, e: P4RTError) -> NoReturn:
    context.abort(e.code, e.message)
    raise AssertionError("unreachable: grpc's abort raises")


class P4RuntimeServicer(p4runtime_pb2_grpc.P4RuntimeServicer):
    def __init__(self, device: Device) -> None:
        self.device = device
        self.arbiter = Arbiter(device.device_id)
        self._cfg_lock = threading.Lock()

    # -- helpers ----------------------------------------------------------------------------

    def _check_device(self, device_id: int) -> None:
        if device_id != self.device.device_id:
            raise P4RTError(grpc.StatusCode.NOT_FOUND, f"unknown device_id {device_id} "
                            f"(this switch is device {self.device.device_id})")

    def _check_primary(self, req: Any) -> None:
        self._check_device(req.device_id)
        self.arbiter.check_primary(req.role, election_id(req.election_id))

    # -- StreamChannel ----------------------------------------------------------------------

    def StreamChannel(self, request_iterator: Iterator[p4runtime_pb2.StreamMessageRequest],
                      context: grpc.ServicerContext) -> Iterator[p4runtime_pb2.StreamMessageResponse]:
        stream = Stream(peer=context.peer())

        def reader() -> None:
            try:
                for msg in request_iterator:
                    which = msg.WhichOneof("update")
                    if which == "arbitration":
                        try:
                            self.arbiter.arbitrate(stream, msg.arbitration)
                        except P4RTError as e:
                            stream.out.put(e)
                            return
                    elif not stream.arbitrated:
                        stream.out.put(P4RTError(grpc.StatusCode.FAILED_PRECONDITION,
                                                 "the first stream message must be an arbitration update"))
                        return
                    else:
                        err = p4runtime_pb2.StreamMessageResponse()
                        err.error.canonical_code = grpc.StatusCode.UNIMPLEMENTED.value[0]
                        err.error.message = f"stream message {which} is not supported by this target"
                        if which == "packet":
                            err.error.packet_out.packet_out.CopyFrom(msg.packet)
                        stream.send(err)
            except Exception as e:  # the client went away (cancelled) or the server is stopping
                log.debug("stream %s ended: %s", stream.peer, e)
            finally:
                self.arbiter.remove(stream)
                stream.out.put(None)

        context.add_callback(lambda: stream.out.put(None))
        threading.Thread(target=reader, name=f"p4rt-stream-{stream.number}", daemon=True).start()
        try:
            while True:
                item = stream.out.get()
                if item is None:
                    return
                if isinstance(item, P4RTError):
                    _abort(context, item)
                yield item
        finally:
            self.arbiter.remove(stream)

    # -- pipeline config --------------------------------------------------------------------

    def SetForwardingPipelineConfig(self, request: SFP, context: grpc.ServicerContext
                                    ) -> p4runtime_pb2.SetForwardingPipelineConfigResponse:
        try:
            self._check_primary(request)
            with self._cfg_lock:
                action = request.action
                if action == SFP.COMMIT:
                    if request.HasField("config"):
                        raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, "COMMIT takes no config "
                                        "(it commits the one saved by VERIFY_AND_SAVE)")
                    self.device.commit_saved()
                elif action in (SFP.VERIFY, SFP.VERIFY_AND_SAVE, SFP.VERIFY_AND_COMMIT,
                                SFP.RECONCILE_AND_COMMIT):
                    prepared = self.device.verify(request.config)
                    if action == SFP.VERIFY_AND_SAVE:
                        self.device.saved = prepared
                    elif action != SFP.VERIFY:
                        self.device.commit(prepared)
                else:
                    raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"action {SFP.Action.Name(action)} "
                                    "is not one of VERIFY, VERIFY_AND_SAVE, VERIFY_AND_COMMIT, COMMIT")
        except P4RTError as e:
            _abort(context, e)
        return p4runtime_pb2.SetForwardingPipelineConfigResponse()

    def GetForwardingPipelineConfig(self, request: GFP, context: grpc.ServicerContext
                                    ) -> p4runtime_pb2.GetForwardingPipelineConfigResponse:
        try:
            self._check_device(request.device_id)
            cfg = self.device.config()
            if cfg is None:
                raise P4RTError(grpc.StatusCode.FAILED_PRECONDITION, "no forwarding pipeline config set")
        except P4RTError as e:
            _abort(context, e)
        rep = p4runtime_pb2.GetForwardingPipelineConfigResponse()
        rt = request.response_type
        if cfg.HasField("cookie"):
            rep.config.cookie.CopyFrom(cfg.cookie)
        if rt in (GFP.ALL, GFP.P4INFO_AND_COOKIE):
            rep.config.p4info.CopyFrom(cfg.p4info)
        if rt in (GFP.ALL, GFP.DEVICE_CONFIG_AND_COOKIE):
            rep.config.p4_device_config = cfg.p4_device_config
        if rt not in (GFP.ALL, GFP.COOKIE_ONLY, GFP.P4INFO_AND_COOKIE, GFP.DEVICE_CONFIG_AND_COOKIE):
            _abort(context, P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"unknown response_type {rt}"))
        return rep

    # -- Write / Read ----------------------------------------------------------------------

    def Write(self, request: p4runtime_pb2.WriteRequest | WriteRequestView,
              context: grpc.ServicerContext) -> p4runtime_pb2.WriteResponse:
        try:
            self._check_primary(request)
            if request.atomicity != p4runtime_pb2.WriteRequest.CONTINUE_ON_ERROR:
                raise P4RTError(grpc.StatusCode.UNIMPLEMENTED,
                                "only CONTINUE_ON_ERROR atomicity is supported")
            if not request.updates:
                return p4runtime_pb2.WriteResponse()
            results = self.device.write(list(request.updates))
        except P4RTError as e:
            _abort(context, e)
        if any(r is not None for r in results):
            code, message, details = write_failure(results)
            context.set_trailing_metadata(((STATUS_DETAILS_KEY, details),))
            context.set_code(code)
            context.set_details(message)
        return p4runtime_pb2.WriteResponse()

    def Read(self, request: p4runtime_pb2.ReadRequest,
             context: grpc.ServicerContext) -> Iterator[bytes]:
        """Serialized ReadResponses (the server registers Read with no serializer): table entries are
        encoded by wire.py, without building protobuf messages."""
        try:
            self._check_device(request.device_id)
            out: list[bytes] = []
            for ent in request.entities:
                which = ent.WhichOneof("entity")
                if which == "table_entry":
                    out.extend(self.device.read_table_entities_wire(ent.table_entry))
                elif which == "direct_counter_entry":
                    out.extend(p4runtime_pb2.Entity(direct_counter_entry=e).SerializeToString()
                               for e in self.device.read_direct_counters(ent.direct_counter_entry))
                elif which == "counter_entry":
                    out.extend(p4runtime_pb2.Entity(counter_entry=e).SerializeToString()
                               for e in self.device.read_counter_entries(ent.counter_entry))
                else:
                    raise P4RTError(grpc.StatusCode.UNIMPLEMENTED, f"reading {which} is not supported")
        except P4RTError as e:
            _abort(context, e)
        for i in range(0, max(len(out), 1), READ_CHUNK):
            yield encode_read_response(out[i:i + READ_CHUNK])

    def Capabilities(self, request: p4runtime_pb2.CapabilitiesRequest,
                     context: grpc.ServicerContext) -> p4runtime_pb2.CapabilitiesResponse:
        return p4runtime_pb2.CapabilitiesResponse(p4runtime_api_version=API_VERSION)


class StatsWriter:
    """Writes `device.stats()` as JSON to `path` every `interval` s when it changed, and on stop."""

    def __init__(self, device: Device, path: Path, interval: float = 1.0) -> None:
        self.device, self.path, self.interval = device, Path(path), interval
        self._stop = threading.Event()
        self._last: str | None = None
        self._thread = threading.Thread(target=self._run, name="p4rt-stats", daemon=True)

    def start(self) -> None:
        self.write()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.write()

    def write(self) -> None:
        st = self.device.stats()
        body = json.dumps({k: v for k, v in st.items() if k != "time"}, sort_keys=True)
        if body == self._last:
            return
        self._last = body
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(st, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.write()


class P4RuntimeServer:
    """A running server: `start()` binds `address` (port 0 picks a free one, see `.port`).
    `credentials` (system/credentials.py): TLS with this server certificate, and only clients with a
    certificate of the same deployment CA get a channel (require_client_auth); None: an insecure
    port (in-process tests; the daemon needs --insecure for it)."""

    def __init__(self, device: Device, address: str, stats_file: Path | None = None,
                 max_workers: int = 16, credentials: Credentials | None = None) -> None:
        self.device = device
        self.servicer = P4RuntimeServicer(device)
        pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="p4rt")
        self.access = RoleCheck() if credentials is not None else None    # roles only exist with TLS
        self.grpc = grpc.server(pool, interceptors=[self.access] if self.access else None,
                                options=[("grpc.max_receive_message_length", 256 << 20),
                                         ("grpc.max_send_message_length", 256 << 20),
                                         ("grpc.so_reuseport", 0)])
        # Write requests are parsed and Read replies encoded by wire.py (pure-Python protobuf costs
        # ~0.5 ms per table entry); this handler comes first, so it serves Write and Read and the
        # generated one everything else.
        fast_write = grpc.method_handlers_generic_handler("p4.v1.P4Runtime", {
            "Write": grpc.unary_unary_rpc_method_handler(
                self.servicer.Write, request_deserializer=parse_write_request,
                response_serializer=p4runtime_pb2.WriteResponse.SerializeToString),
            "Read": grpc.unary_stream_rpc_method_handler(            # replies are bytes already
                self.servicer.Read, request_deserializer=p4runtime_pb2.ReadRequest.FromString,
                response_serializer=None)})
        self.grpc.add_generic_rpc_handlers((fast_write,))
        p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(self.servicer, self.grpc)
        self.tls = credentials is not None
        self.port = (self.grpc.add_secure_port(address, credentials.grpc_server_credentials()) if credentials
                     else self.grpc.add_insecure_port(address))
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        host = address.rsplit(":", 1)[0]
        self.address = f"{host}:{self.port}"
        self.stats = StatsWriter(device, stats_file) if stats_file else None

    def start(self) -> None:
        self.grpc.start()
        if self.stats:
            self.stats.start()
        log.info("P4Runtime server of device %d on %s (%s)", self.device.device_id, self.address,
                 "TLS, client certificates required" if self.tls else "INSECURE: no TLS, no client authentication")

    def stop(self, grace: float = 0.5, unload: bool = True) -> None:
        """Stops serving; closes every stream; unloads the pipeline (nothing left attached or pinned)."""
        for s in self.servicer.arbiter.streams():
            s.out.put(None)
        self.grpc.stop(grace).wait()
        if self.stats:
            self.stats.stop()
        if unload:
            self.device.unload()

    def wait(self) -> None:
        self.grpc.wait_for_termination()
