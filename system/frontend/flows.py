"""Per-connection state of the front-end (one `Flow` per client endpoint)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from system.frontend.balancer import Backend
from system.frontend.httpparse import ChunkScanner, Request, RequestParser
from system.frontend.packets import Segment
from system.frontend.syncookie import CookieInfo
from system.rules import Rule


class State(enum.Enum):
    REQUEST = "request"            # cookie valid, collecting the first request's head
    BACKEND_SYN = "backend_syn"    # crafted SYN sent, waiting for the back-end's SYN-ACK
    INSTALLING = "installing"      # switch-only: SYN-ACK in, request held until the switch entries are in
    ESTABLISHED = "established"    # spliced: segments rewritten (kernel fast path or user space)
    LOCAL = "local"                # the front-end answered itself (4xx/5xx) and closes
    CLOSED = "closed"              # both FINs acknowledged (or reset): lingering, then removed


@dataclass
class Flow:
    client_ip: bytes
    client_port: int
    client_mac: bytes
    info: CookieInfo               # s and the client's SYN options from the cookie
    c: int                         # the client's ISN
    state: State
    created: float
    last: float                    # last segment seen by user space
    client_window: int
    req_start: int                 # client sequence number of the current request's first byte
    parser: RequestParser
    server_next: int               # next server sequence number the client expects (client space)
    request: Request | None = None
    req_end: int | None = None     # client sequence number after the current request's body
    rule: Rule | None = None
    backend: Backend | None = None
    counted: bool = False          # counted in the balancer's connections
    syn_seq: int = 0               # seq of the crafted SYN (req_start - 1)
    syn_s: int = 0                 # its ack field: s for this back-end connection (client space)
    syn_payload: bytes = b""       # request bytes carried in the SYN (fast-open shortcut)
    syn_sent: float = 0.0
    syn_tries: int = 0
    sent_upto: int = 0             # client sequence number up to which bytes went to the back-end
    pending_fin: int | None = None  # client FIN seq seen before the back-end connection was up
    offloaded: bool = False
    switch_active: float = 0.0     # when the switch last counted a packet of its offload entry (activity answers)
    activity_checked: float = 0.0  # when the latest answer about its offload entry came
    activity_unknown_at: float | None = None  # when an activity query last failed (asked again an idle timeout later)
    await_response_head: bool = False
    fin_c: int | None = None       # sequence number of the client's FIN
    fin_b: int | None = None       # sequence number of the server's FIN (client space)
    fin_c_acked: bool = False
    fin_b_acked: bool = False
    local_data: bytes = b""        # a local response (state LOCAL) and its first sequence number
    local_seq: int = 0
    local_ack: int = 0
    linger_until: float = 0.0
    delta: int = 0                 # b - s when the front-end translates itself (Config.learn_delta)
    install_started: float | None = None  # switch-only: when the conn-table install was requested
    installed: bool = False        # switch-only: both switch entries are in (else relayed by user space)
    last_seg: Segment | None = None  # the client's latest segment (its ack and window for queued requests)
    chunks: ChunkScanner | None = None  # the current request's chunked body, its end not seen yet
    chunks_at: int = 0             # client sequence number up to which chunks has scanned
    ooo: dict[int, bytes] | None = None  # out-of-order request bytes by offset from req_start (bounded)
    dispatch_ack: int | None = None  # the client's ack when the last request went to the back-end
    deferred: Callable[[int, list], None] | None = None  # a pipelined request's answer, run at the back-end's FIN
    deferred_since: float = 0.0
    confirmed: bool = False        # the first request's line is whole and valid where req_start says
    unsure: object | None = None   # an HttpError of a first segment that may not be the stream's start

    @property
    def key(self) -> tuple[bytes, int]:
        return self.client_ip, self.client_port

    @property
    def fast_path_ok(self) -> bool:
        """Segments may bypass user space (established). After a FIN too: FIN/RST always reach user
        space, and the closing handshake's ACKs and a half-closed flow's data need not."""
        return self.state is State.ESTABLISHED
