"""Who may call what on the P4Runtime server over TLS (docs/controlplane-protocol.md, "P4Runtime over
TLS"). The role is the organizational unit of the client's certificate (system/credentials.py):
the control plane and the operator may call everything; the slow path (counter reads) and a monitor
may only read (Read, GetForwardingPipelineConfig, Capabilities); any other certificate of the CA, a
front-end's for instance, nothing. A refusal is PERMISSION_DENIED, logged and counted (`refused`)."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc

log = logging.getLogger(__name__)
READS = frozenset({"Read", "GetForwardingPipelineConfig", "Capabilities"})
ALL = READS | {"Write", "StreamChannel", "SetForwardingPipelineConfig"}
ROLE_METHODS: dict[str, frozenset[str]] = {"controlplane": ALL, "operator": ALL, "slowpath": READS, "monitor": READS}


def peer_role(context: grpc.ServicerContext) -> tuple[str, str]:
    """(common name, organizational unit) of the verified client certificate ('' when none)."""
    ac = context.auth_context()
    subject = b"".join(ac.get("x509_subject", [b""])).decode(errors="replace")
    fields = dict(part.strip().split("=", 1) for part in subject.split(",") if "=" in part)
    return fields.get("CN", ""), fields.get("OU", "")


class RoleCheck(grpc.ServerInterceptor):
    def __init__(self) -> None:
        self.refused: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def _guard(self, method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            name, role = peer_role(context)
            if method not in ROLE_METHODS.get(role, frozenset()):
                with self._lock:
                    self.refused[f"{role or '?'} {method}"] += 1
                log.warning("refused %s to %s (role %s)", method, name or "?", role or "?")
                context.abort(grpc.StatusCode.PERMISSION_DENIED,
                              f"identity {name} (role {role}) may not call {method}")
            return fn(request, context)
        return guarded

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            fn = getattr(handler, kind)
            if fn is not None:
                return handler._replace(**{kind: self._guard(method, fn)})
        return handler
