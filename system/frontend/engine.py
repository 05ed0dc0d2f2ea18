"""The front-end's connection logic: punted frames in, frames to send out (and fast-path updates).

`FrontEnd.handle(frame)` takes one frame the fast path handed to user space and returns the frames
to send out of the data interface; `FrontEnd.tick()` runs the timers (back-end SYN retransmission,
idle timeouts, lingering closed flows). The walk of one connection is docs/miresga-datapath.md and
system.md's "One connection, packet by packet": cookie check, request parsing, rules, the crafted
back-end SYN (with the request inside when `fastopen`), the replay after the SYN-ACK, splicing,
offload decisions, FIN handling, re-steering of keep-alive requests. No I/O happens here: the fast
path and the offload client are passed in (None: every segment is forwarded by user space and no
offload is requested), so the logic is tested without namespaces.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from system.frontend import packets as P
from system.frontend import syncookie
from system.frontend.balancer import Backend, Balancer, NoBackend, NoRule
from system.frontend.fastpath import FLOW_F_B2C, FLOW_F_C2B_ACK, FLOW_F_C2B_DATA, FlowEntry
from system.frontend.flows import Flow, State
from system.frontend.httpparse import (
    MAX_HEAD,
    ChunkScanner,
    HttpError,
    Request,
    RequestParser,
    parse_response_head,
    request_line_valid,
)
from system.frontend.packets import Segment, seq_add, seq_diff
from system.frontend.responses import error_response


class FastPathOps(Protocol):
    def set_flow(self, client_ip: bytes, client_port: int, entry: FlowEntry) -> None: ...
    def delete_flow(self, client_ip: bytes, client_port: int) -> None: ...
    def last_seen_ns(self, client_ip: bytes, client_port: int) -> int | None: ...


class OffloadOps(Protocol):
    def add(self, client_ip: bytes, client_port: int, index: int) -> None: ...
    # `on_ack(code, seconds)` is passed only after FrontEnd.watch_offload_deletes (runs on another thread).
    def delete(self, client_ip: bytes, client_port: int,
               on_ack: Callable[[str, float], None] | None = None) -> None: ...


ActivityAnswer = Callable[[list[float | None] | None, str], None]


class ActivityOps(Protocol):
    """When the switch last counted packets of offload entries (offload.py's OffloadClient, request
    `activity`): asynchronous; `on_reply(idle, code)` gets the idle seconds per key (None: no such
    entry) and "OK", or None and an error code. It may run on another thread."""

    def activity(self, keys: list[tuple[bytes, int]], on_reply: ActivityAnswer) -> None: ...


class ConnTableOps(Protocol):
    """Per-connection switch entries of the switch-only baseline (docs/switch-only-datapath.md).

    `install` is asynchronous: its outcome comes back through `FrontEnd.install_done` on the engine's
    thread; until then the request is held. `remove` is called once when the flow is finally removed
    (after the linger), whatever became of the install. `last_active` is when the switch last counted
    a packet of the flow's entries (engine clock), None when unknown."""

    def install(self, flow: Flow) -> None: ...
    def remove(self, flow: Flow) -> None: ...
    def last_active(self, flow: Flow) -> float | None: ...


@dataclass(frozen=True)
class Config:
    vip: str
    vip_port: int
    own_mac: str                   # the front-end's data interface MAC (source of every frame it sends)
    client_next_hop_mac: str       # destination MAC of frames to clients (the switch port / router)
    fastopen: bool = False         # put the request into the back-end SYN
    syn_rto: float = 1.0           # first back-end SYN retransmission timeout (doubles)
    syn_retries: int = 3
    idle_timeout: float = 120.0
    offloaded_idle_timeout: float = 600.0   # offloaded flows are invisible to the front-end: without an
                                            # answer from the switch's counters (activity) they get this long
    activity_timeout: float = 5.0   # an activity query not answered by then counts as unknown
    max_activity_pending: int = 4096  # offloaded flows whose activity query is in flight, at most
    request_timeout: float = 10.0  # a partial request that stops arriving
    linger: float = 2.0            # closed flows are kept this long for retransmitted FINs
    max_request: int = MAX_HEAD
    segment_size: int = 1460       # payload bytes per frame the front-end sends
    learn_delta: bool = False      # no agent on the back-ends: learn delta = b - s, translate here
    pin_backend: bool = False      # keep-alive requests stay on the first back-end, not parsed again
    install_timeout: float = 5.0   # conn table: no answer by then -> relay (late entries still removed)
    offload_delete_wait: float = 0.5  # a SYN held for an offload delete's ack goes anyway after this
    unsure_grace: float = 1.0      # a first segment that does not start a request: wait this long for
                                   # an earlier one (the real first was lost) before answering 400
    unknown_rst_after: float = 0.5  # data of an unknown flow is reset when it comes again this long
                                    # after its first sighting (a cookie of a secret not fetched yet
                                    # passes on that retransmission instead: cpsecrets.py)
    max_unknown: int = 4096         # endpoints remembered for that (oldest forgotten when full)
    max_flows: int = 65536          # the flow table's bound (the fast path's FLOW_TABLE_SIZE): when
                                    # full, a new connection is refused with a RST; flows in it go on
    offload_delete_retries: int = 5  # a failed offload delete is sent again (after 0.1 s, doubling)
    stateless_rst_rate: int = 1000  # RSTs per second at most for data of unknown flows (token bucket,
                                    # burst as large): a spoofed flood is not answered without bound


LOCAL_WINDOW_SCALED = 512      # 64 KiB with the switch's shift (7)
LOCAL_WINDOW_UNSCALED = 65535
RST_WINDOW = 1 << 20           # a client RST/FIN this far past what the front-end expects is in window


class FrontEnd:
    def __init__(self, cfg: Config, balancer: Balancer, secrets: syncookie.Secrets,
                 fastpath: FastPathOps | None = None, offload: OffloadOps | None = None,
                 clock: Callable[[], float] = time.monotonic, conn_table: ConnTableOps | None = None,
                 activity: ActivityOps | None = None) -> None:
        self.cfg, self.balancer, self.secrets = cfg, balancer, secrets
        # The switch's counters of offload entries (via the control plane): an offloaded flow whose idle
        # timeout is due is asked about, and reset only when the switch saw no packet of it either.
        self.activity = activity
        self._activity_pending: dict[tuple[bytes, int], float] = {}   # endpoint -> when asked (bounded)
        self._activity_wanted: list[tuple[bytes, int]] = []          # to ask at the end of this tick
        self._activity_answers: collections.deque[tuple[list[tuple[tuple[bytes, int], float]],
                                                        list[float | None] | None, str]] = collections.deque()
        self.fastpath, self.offload, self.clock = fastpath, offload, clock
        self.conn_table = conn_table     # switch-only: every connection installed before its request goes
        self.vip = P.ip_bytes(cfg.vip)
        self.own_mac = P.mac_bytes(cfg.own_mac)
        self.client_mac = P.mac_bytes(cfg.client_next_hop_mac)
        self.flows: dict[tuple[bytes, int], Flow] = {}
        self.backend_eps = {(P.ip_bytes(b.ip), b.port): b for b in balancer.backends.values()}
        self.counters: collections.Counter[str] = collections.Counter()
        self.last_error = ""             # the latest failure caught by the per-frame guard (frame_errors)
        # Offload deletes awaiting their ack (watch_offload_deletes): a new back-end SYN for such an
        # endpoint is held until the switch no longer sends its client's ACKs to the old back-end.
        self._offload_wake: Callable[[], None] | None = None
        self._deletes_in_flight: collections.Counter[tuple[bytes, int]] = collections.Counter()
        self._acked_deletes: collections.deque[tuple[tuple[bytes, int], str, int]] = collections.deque()
        self._rst_tokens, self._rst_refilled = float(cfg.stateless_rst_rate), clock()
        self._unknown: dict[tuple[bytes, int], float] = {}   # endpoint -> first unknown data (bounded)
        # Failed offload deletes to send again: endpoint -> (attempts so far, when). Bounded by max_flows.
        self._delete_retry: dict[tuple[bytes, int], tuple[int, float]] = {}

    # ----------------------------------------------------------------- entry points

    def handle(self, frame: bytes) -> list[bytes]:
        try:
            seg = P.parse(frame)
        except P.PacketError:
            self.counters["not_tcp"] += 1
            return []
        out: list[Segment] = []
        try:
            if seg.dst == self.vip and seg.dport == self.cfg.vip_port:
                self.counters["from_client"] += 1
                self._from_client(seg, out)
            elif (seg.src, seg.sport) in self.backend_eps:
                self.counters["from_backend"] += 1
                self._from_backend(seg, out)
            else:
                self.counters["unexpected"] += 1
            return [P.build(s) for o in out for s in P.split(o, self.cfg.segment_size)]
        except Exception as e:      # one bad frame must never stop the front-end
            key = (seg.src, seg.sport) if seg.dst == self.vip else (seg.dst, seg.dport)
            return self._failed(self.flows.get(key), e)

    def _failed(self, flow: Flow | None, e: Exception) -> list[bytes]:
        """A bug or an input nobody foresaw while handling a frame (or a flow's timer): count it,
        reset that connection on both sides, carry on with the others."""
        self.counters["frame_errors"] += 1
        self.last_error = f"{type(e).__name__}: {e}"[:300]
        if flow is None:
            return []
        out: list[Segment] = []
        try:
            out.append(self._to_client(flow, seq=flow.server_next, ack=0, flags=P.RST))
            if flow.backend is not None and flow.state in (State.ESTABLISHED, State.BACKEND_SYN, State.INSTALLING):
                out.append(self._to_backend(flow, seq=flow.sent_upto or flow.req_start, ack=0, flags=P.RST))
            self._remove(flow, "error")
            return [P.build(s) for s in out]
        except Exception:           # the flow's state is beyond repair: drop it
            self.flows.pop(flow.key, None)
            self.counters["removed_error"] += 1
            return []

    def watch_offload_deletes(self, wake: Callable[[], None]) -> None:
        """Follow offload deletes to their ack (the offload client's `delete` takes `on_ack`): re-steers
        and reused ports wait for them. `wake` runs on the ack thread; the I/O loop then calls
        `offload_acked` on the engine's thread."""
        self._offload_wake = wake

    def offload_acked(self) -> list[bytes]:
        """Deletes acknowledged since the last call: send the SYNs that waited for them."""
        out: list[Segment] = []
        while self._acked_deletes:
            key, code, attempt = self._acked_deletes.popleft()
            self._deletes_in_flight[key] -= 1
            if code not in ("OK", "NOT_FOUND"):
                self.counters[f"offload_delete_failed_{code}"] += 1
                if attempt < self.cfg.offload_delete_retries and len(self._delete_retry) < self.cfg.max_flows:
                    # The switch may still send this client's ACKs to the old back-end: send the
                    # delete again (tick); a SYN held for it waits on (at most offload_delete_wait).
                    self._delete_retry[key] = (attempt + 1, self.clock() + 0.1 * 2 ** attempt)
                    self._deletes_in_flight[key] += 1
                else:
                    self.counters["offload_delete_gave_up"] += 1
            if self._deletes_in_flight[key] > 0:
                continue
            del self._deletes_in_flight[key]
            flow = self.flows.get(key)
            if flow is not None and flow.state is State.BACKEND_SYN and flow.syn_tries == 0:
                self.counters["syn_released_after_offload_delete"] += 1
                self._send_syn(flow, out)
        return [P.build(s) for o in out for s in P.split(o, self.cfg.segment_size)]

    def tick(self) -> list[bytes]:
        now = self.clock()
        out: list[Segment] = []
        frames: list[bytes] = []
        if self._delete_retry:
            self._retry_deletes(now)
        if self._activity_answers:
            self._apply_activity(now)
        for flow in list(self.flows.values()):
            try:
                self._timers(flow, now, out)
            except Exception as e:      # as in handle(): one flow's failure stays its own
                frames += self._failed(flow, e)
        if self._activity_wanted:
            self._ask_activity(now)
        return frames + [P.build(s) for s in out]

    # ----------------------------------------------------------------- offloaded flows' activity

    def _ask_activity(self, now: float) -> None:
        """One query for the offloaded flows that became due this tick (answers: `_apply_activity`)."""
        keys, self._activity_wanted = self._activity_wanted, []
        asked = [(k, now) for k in keys]
        for k in keys:
            self._activity_pending[k] = now
        self.counters["offload_activity_queries"] += 1
        self.counters["offload_activity_asked"] += len(keys)
        assert self.activity is not None
        self.activity.activity(keys, lambda idle, code: self._activity_answers.append((asked, idle, code)))

    def _apply_activity(self, now: float) -> None:
        """Answers that came since the last tick (appended on the offload client's thread)."""
        while self._activity_answers:
            asked, idle, code = self._activity_answers.popleft()
            if idle is None:
                self.counters[f"offload_activity_failed_{code}"] += 1
            for i, (key, when) in enumerate(asked):
                if self._activity_pending.get(key) != when:
                    self.counters["offload_activity_stale"] += 1     # timed out or the flow went meanwhile
                    continue
                del self._activity_pending[key]
                flow = self.flows.get(key)
                if flow is None or not flow.offloaded:
                    self.counters["offload_activity_stale"] += 1
                    continue
                if idle is None:
                    self.counters["offload_activity_unknown"] += 1
                    flow.activity_unknown_at = now
                    continue
                flow.activity_checked, flow.activity_unknown_at = now, None
                seen = idle[i]
                if seen is not None and now - seen > flow.switch_active:
                    flow.switch_active = now - seen
                    if now - max(flow.last, flow.switch_active) < self.cfg.idle_timeout:
                        self.counters["offload_kept_active"] += 1    # the switch still counts its packets
                        continue
                self.counters["offload_idle_confirmed"] += 1

    def _offloaded_idle(self, flow: Flow, now: float, last: float) -> bool:
        """Whether an offloaded flow, idle since `last` as far as the front-end saw, is idle: asked of
        the switch's counters when its idle timeout is due; without an answer, `offloaded_idle_timeout`."""
        if now - last < self.cfg.idle_timeout:
            return False
        if self.activity is None:
            return now - last >= self.cfg.offloaded_idle_timeout
        asked = self._activity_pending.get(flow.key)
        if asked is not None:
            if now - asked < self.cfg.activity_timeout:
                return False                                  # the answer is on its way
            del self._activity_pending[flow.key]              # a late answer is stale then
            self.counters["offload_activity_timeout"] += 1
            self.counters["offload_activity_unknown"] += 1
            flow.activity_unknown_at = now
        if flow.activity_checked >= last + self.cfg.idle_timeout:
            return True                                       # the switch saw nothing either
        if now - last >= self.cfg.offloaded_idle_timeout:
            return True                                       # today's bound when the switch cannot tell
        if flow.activity_unknown_at is not None and now - flow.activity_unknown_at < self.cfg.idle_timeout:
            return False                                      # ask again an idle timeout after a failure
        if len(self._activity_pending) + len(self._activity_wanted) >= self.cfg.max_activity_pending:
            self.counters["offload_activity_deferred"] += 1   # asked at a later tick
            return False
        self._activity_wanted.append(flow.key)
        return False

    def _retry_deletes(self, now: float) -> None:
        for key, (attempt, due) in list(self._delete_retry.items()):
            if now < due:
                continue
            del self._delete_retry[key]
            self._deletes_in_flight[key] -= 1
            flow = self.flows.get(key)
            if flow is not None and flow.offloaded:
                # A newer offload of the endpoint (after a re-steer): the old delete must not remove it.
                self.counters["offload_delete_retry_superseded"] += 1
                if self._deletes_in_flight[key] <= 0:
                    del self._deletes_in_flight[key]
                continue
            self.counters["offload_delete_retried"] += 1
            self._send_delete(key, attempt)

    def install_done(self, client_ip: bytes, client_port: int, ok: bool) -> list[bytes]:
        """The conn table's outcome for a flow's install: both entries in (`ok`), or the flow is relayed
        by user space. Either way the held request goes to the back-end now."""
        flow = self.flows.get((client_ip, client_port))
        if flow is None or flow.state is not State.INSTALLING:
            self.counters["install_done_without_flow"] += 1
            return []
        out: list[Segment] = []
        self._installed(flow, ok, out)
        return [P.build(s) for o in out for s in P.split(o, self.cfg.segment_size)]

    def _installed(self, flow: Flow, ok: bool, out: list[Segment]) -> None:
        flow.installed = ok
        self.counters["conn_installed" if ok else "conn_relayed"] += 1
        self._handshake_done(flow, out)

    def stats(self) -> dict[str, int]:
        states = collections.Counter(f.state.value for f in self.flows.values())
        return {**self.counters, **{f"flows_{k}": v for k, v in states.items()}, "flows": len(self.flows)}

    # ----------------------------------------------------------------- client -> VIP

    def _from_client(self, seg: Segment, out: list[Segment]) -> None:
        if seg.syn:
            self.counters["client_syn_ignored"] += 1      # the switch answers SYNs
            return
        flow = self.flows.get((seg.src, seg.sport))
        if flow is not None and flow.state is State.CLOSED and self._reopens(flow, seg):
            # The client reused the port of a closed, lingering flow: this is a new connection.
            self.counters["port_reused"] += 1
            self._remove(flow, "port_reused")
            flow = None
        if flow is None:
            flow = self._open(seg, out)
            if flow is None:
                return
        elif (seg.rst or seg.fin) and flow.state is not State.CLOSED and not flow.installed and \
                self._unacceptable(flow, seg, out):
            # (Switch-only installed flows are not checked: their data bypass the front-end, which
            # cannot know the client's position; the back-end's kernel judges the RST it forwards.)
            return
        flow.last = self.clock()
        flow.client_window = seg.window
        flow.last_seg = seg
        if seg.has_ack and flow.state is State.ESTABLISHED:
            flow.server_next = seg.ack
        handler = {State.REQUEST: self._client_request, State.BACKEND_SYN: self._client_backend_syn,
                   State.INSTALLING: self._client_backend_syn,
                   State.ESTABLISHED: self._client_established, State.LOCAL: self._client_local,
                   State.CLOSED: self._client_closed}[flow.state]
        handler(flow, seg, out)

    def _open(self, seg: Segment, out: list[Segment]) -> Flow | None:
        if seg.rst:
            self.counters["rst_without_flow"] += 1
            return None
        if not seg.payload and not seg.fin:
            self.counters["ack_without_flow"] += 1        # the handshake's ACK, or a stray one
            return None
        info = syncookie.validate(seg.ack, seg.src, seg.sport, self.vip, self.cfg.vip_port, self.secrets)
        if info is None:
            self.counters["bad_cookie"] += 1
            self._stateless_rst(seg, out)
            return None
        if len(self.flows) >= self.cfg.max_flows:
            # Full: the flows in the table go on; the new client learns at once (its cookie is
            # valid: a real client) instead of retransmitting into silence.
            self.counters["flows_full_refused"] += 1
            if self._may_answer():
                out.append(Segment(eth_src=self.own_mac, eth_dst=self.client_mac, src=self.vip, dst=seg.src,
                                   sport=self.cfg.vip_port, dport=seg.sport, seq=seg.ack, ack=0, flags=P.RST,
                                   window=0))
            return None
        now = self.clock()
        c = seq_add(seg.seq, -1)
        flow = Flow(client_ip=seg.src, client_port=seg.sport, client_mac=seg.eth_src, info=info, c=c,
                    state=State.REQUEST, created=now, last=now, client_window=seg.window,
                    req_start=seg.seq, parser=RequestParser(self.cfg.max_request), server_next=seg.ack)
        self.flows[flow.key] = flow
        self._unknown.pop(flow.key, None)
        self.counters["flows_opened"] += 1
        return flow

    def _stateless_rst(self, seg: Segment, out: list[Segment]) -> None:
        """Data (or a FIN) of a connection the front-end does not know (it restarted, the flow timed
        out, or the cookie is forged): answer a RST as a closed port does (RFC 793 "Reset
        Generation": seq = the segment's ack, no ACK flag), so a client of a restarted front-end
        fails within a retransmission instead of retransmitting for minutes. Not the first sighting:
        the cookie may be one of a secret rotated in since the last fetch (the failure triggers a
        refetch and the retransmission passes), so the RST answers the endpoint's data when it comes
        again `unknown_rst_after` later. Bounded: Config.max_unknown endpoints, stateless_rst_rate."""
        now = self.clock()
        key = (seg.src, seg.sport)
        first = self._unknown.get(key)
        if first is None or now - first > 60 * self.cfg.unknown_rst_after:
            self._unknown.pop(key, None)
            while len(self._unknown) >= self.cfg.max_unknown:
                del self._unknown[next(iter(self._unknown))]      # the oldest sighting
                self.counters["unknown_forgotten_full"] += 1
            self._unknown[key] = now
            self.counters["unknown_first_seen"] += 1
            return
        if now - first < self.cfg.unknown_rst_after:
            return
        if not self._may_answer():
            self.counters["rst_unknown_flow_suppressed"] += 1
            return
        del self._unknown[key]
        self.counters["rst_unknown_flow"] += 1
        seq, ack, flags = (seg.ack, 0, P.RST) if seg.has_ack else (0, seg.end_seq, P.RST | P.ACK)
        out.append(Segment(eth_src=self.own_mac, eth_dst=self.client_mac, src=self.vip, dst=seg.src,
                           sport=self.cfg.vip_port, dport=seg.sport, seq=seq, ack=ack, flags=flags, window=0))

    def _may_answer(self) -> bool:
        """A token of the bucket that bounds unsolicited answers (stateless RSTs, challenge ACKs)."""
        now = self.clock()
        rate = self.cfg.stateless_rst_rate
        self._rst_tokens = min(float(rate), self._rst_tokens + (now - self._rst_refilled) * rate)
        self._rst_refilled = now
        if self._rst_tokens < 1:
            return False
        self._rst_tokens -= 1
        return True

    def _client_span(self, flow: Flow) -> tuple[int, int]:
        """The client sequence numbers the front-end may expect next, (low, high): low what it knows
        the client has sent, high how far the client may be (a body crossing the kernel fast path
        moves the client past sent_upto unseen, up to the request's end). Equal when exact."""
        if flow.state is State.LOCAL:
            return flow.local_ack, flow.local_ack
        if flow.state is State.ESTABLISHED:
            if flow.fin_c is not None:
                end = seq_add(flow.fin_c, 1)
                return end, end
            high = seq_add(flow.req_start, len(flow.parser.buf))
            return flow.sent_upto, high if seq_diff(high, flow.sent_upto) > 0 else flow.sent_upto
        if flow.pending_fin is not None:
            end = seq_add(flow.pending_fin, 1)
            return end, end
        low = seq_add(flow.req_start, len(flow.parser.buf))
        return low, low

    def _in_window(self, flow: Flow, seq: int) -> bool:
        """RFC 5961's window, generously: from `low` (less one, for a retransmitted FIN) to
        RST_WINDOW past `high`."""
        low, high = self._client_span(flow)
        return -1 <= seq_diff(seq, low) < max(0, seq_diff(high, low)) + RST_WINDOW

    def _unacceptable(self, flow: Flow, seg: Segment, out: list[Segment]) -> bool:
        """RFC 5961 for the client's RSTs and FINs, before the segment changes anything: a RST
        whose seq is exactly what the front-end expects next (`_client_span`'s low or high) is
        acted on; one elsewhere in the window gets a challenge ACK (the client, if it really reset,
        answers it with a RST of exactly that number) and changes nothing; one outside is dropped.
        A FIN whose sequence number is outside the window is dropped. True: the segment stops here."""
        if seg.rst:
            low, high = self._client_span(flow)
            if seg.seq in (low, high):
                return False
            if not self._in_window(flow, seg.seq) or seg.seq == seq_add(low, -1):
                self.counters["rst_outside_window"] += 1
                return True
            if not self._may_answer():
                self.counters["challenge_ack_suppressed"] += 1
                return True
            self.counters["rst_challenged"] += 1
            seq = seq_add(flow.local_seq, len(flow.local_data) + 1) if flow.state is State.LOCAL \
                else flow.server_next
            out.append(self._to_client(flow, seq=seq, ack=low, flags=P.ACK))
            return True
        if seg.fin and not self._in_window(flow, seq_add(seg.seq, len(seg.payload))):
            self.counters["fin_outside_window"] += 1
            return True
        return False

    def _client_request(self, flow: Flow, seg: Segment, out: list[Segment]) -> None:
        if seg.rst:
            self._remove(flow, "client_rst")
            return
        if seg.payload:
            self._collect(flow, seg, out)
        if flow.state is State.REQUEST and seg.fin:
            # The client closes without a (complete) request: acknowledge and close.
            self.counters["client_fin_before_request"] += 1
            self._respond(flow, b"", server_seq=seg.ack, client_next=seg.end_seq, out=out)

    def _collect(self, flow: Flow, seg: Segment, out: list[Segment]) -> None:
        """Append in-order request bytes (out-of-order ones wait, bounded); on a complete head, choose
        the back-end (or answer)."""
        have = len(flow.parser.buf)
        if flow.deferred is not None:
            # A pipelined request waits for the back-end's last response: keep what follows it.
            off = seq_diff(seg.seq, seq_add(flow.req_start, have))
            added = seg.payload[-off:][: max(0, self.cfg.max_request - have)] if off <= 0 else b""
            flow.parser.buf += added
            if flow.chunks is not None and added:
                try:
                    self._scan_chunks(flow, added)
                except HttpError:
                    self._reset_both(flow, "bad_chunked_body", out)
            return
        off = seq_diff(seg.seq, seq_add(flow.req_start, have))
        if off > 0:
            self.counters["request_out_of_order"] += 1
            self._hold_out_of_order(flow, have + off, seg.payload)
            # A duplicate ACK: the client retransmits the missing bytes at once (fast retransmit).
            out.append(self._to_client(flow, seq=seg.ack, ack=seq_add(flow.req_start, have), flags=P.ACK))
            return
        if flow.state is State.REQUEST and not flow.confirmed and seq_diff(seg.seq, flow.req_start) < 0 and \
                seq_diff(flow.req_start, seg.seq) <= self.cfg.max_request:
            self._rebase(flow, seg.seq)
            have, off = 0, 0
        new = seg.payload[-off:] if off < 0 else seg.payload
        if not new:
            return
        if flow.ooo:
            new = self._reassemble(flow, have, new)
        new = new[: max(0, self.cfg.max_request + 4 - have)]
        try:
            req = flow.parser.feed(new)
        except HttpError as e:
            if flow.state is State.REQUEST and not flow.confirmed and not request_line_valid(bytes(flow.parser.buf)):
                # This may be a later segment whose predecessors were lost (the flow starts at the
                # first segment seen): no answer and no ACK yet; an earlier segment re-bases it.
                flow.unsure = e
                self.counters["request_start_unsure"] += 1
                return
            self._http_error(flow, e, seg.ack, out, self._pipelined(flow, seg.ack))
            return
        if flow.state is State.REQUEST and not flow.confirmed:
            if req is None and not request_line_valid(bytes(flow.parser.buf)):
                return      # not acknowledged until its request line shows it starts the stream
            flow.confirmed = True
        if req is None:
            # Acknowledge the partial request so that the client sends the rest (Nagle).
            out.append(self._to_client(flow, seq=seg.ack, ack=seq_add(flow.req_start, len(flow.parser.buf)),
                                       flags=P.ACK))
            return
        self._dispatch(flow, req, seg.ack, out)

    def _rebase(self, flow: Flow, seq: int) -> None:
        """A segment from before the flow's first byte: the segment that opened the flow was not the
        stream's first (that one was lost or overtaken). What was buffered moves to its offset."""
        shift = seq_diff(flow.req_start, seq)
        held = {at + shift: d for at, d in (flow.ooo or {}).items()}
        if flow.parser.buf:
            held[shift] = bytes(flow.parser.buf)
        flow.ooo = {at: d for at, d in held.items() if at < self.cfg.max_request + 4} or None
        flow.parser.reset()
        flow.req_start, flow.c, flow.unsure = seq, seq_add(seq, -1), None
        self.counters["request_rebased"] += 1

    def _hold_out_of_order(self, flow: Flow, at: int, data: bytes) -> None:
        """Keep request bytes that arrived before a gap (offset `at` from req_start), within the
        request buffer's bound: once the gap is filled they need not come again."""
        room = self.cfg.max_request + 4 - at
        if room <= 0 or not data:
            return
        if flow.ooo is None:
            flow.ooo = {}
        if len(flow.ooo) < 64:
            flow.ooo[at] = max(flow.ooo.get(at, b""), data[:room], key=len)

    def _reassemble(self, flow: Flow, have: int, new: bytes) -> bytes:
        """`new` (at offset `have`) plus the held bytes that now follow it without a gap."""
        data = bytearray(new)
        progress = True
        while flow.ooo and progress:
            progress = False
            for at in sorted(flow.ooo):
                end = have + len(data)
                if at > end:
                    break
                piece = flow.ooo.pop(at)
                if at + len(piece) > end:
                    data += piece[end - at:]
                progress = True
        self.counters["request_reassembled"] += 1
        return bytes(data)

    def _http_error(self, flow: Flow, e: HttpError, server_seq: int, out: list[Segment],
                    pipelined: bool = False, head: bool = False) -> None:
        """Answer `e` ourselves (`head`: to a HEAD request, without the body); for a pipelined
        request, after the back-end's last response."""
        self.counters[f"http_{e.status}"] += 1

        def answer(seq: int, o: list[Segment]) -> None:
            self._respond(flow, error_response(e.status, e.reason, head), server_seq=seq,
                          client_next=seq_add(flow.req_start, len(flow.parser.buf)), out=o)

        if pipelined and flow.state is State.ESTABLISHED and flow.backend is not None:
            self._defer(flow, answer, out)
            return
        self._abort_backend(flow, out)
        answer(server_seq, out)

    def _reset_both(self, flow: Flow, why: str, out: list[Segment]) -> None:
        """Mid-request framing error (the back-end already has part of the request): reset both."""
        self.counters[f"reset_{why}"] += 1
        out.append(self._to_backend(flow, seq=flow.sent_upto, ack=0, flags=P.RST))
        out.append(self._to_client(flow, seq=flow.server_next, ack=0, flags=P.RST))
        self._remove(flow, why)

    def _pipelined(self, flow: Flow, client_ack: int, queued: bool = False) -> bool:
        """Is a request on this flow pipelined: queued behind another in the buffer, or sent before
        the client acknowledged any byte of the previous response? Then that response may still be
        on its way and the back-end connection must not be reset under it."""
        return flow.state is State.ESTABLISHED and (queued or client_ack == flow.dispatch_ack)

    def _defer(self, flow: Flow, action: Callable[[int, list[Segment]], None], out: list[Segment]) -> None:
        """A pipelined request the current back-end must not get (another pool, or a local answer)
        while it may still owe responses: the back-end gets a FIN after the requests it has (nginx
        finishes them, then closes); its FIN marks the end of its last response, where `action`
        starts (the answer, or the new back-end's sequence space). request_timeout bounds the wait."""
        flow.deferred, flow.deferred_since = action, self.clock()
        self.counters["pipelined_deferred"] += 1
        out.append(self._to_backend(flow, seq=flow.sent_upto, ack=flow.server_next, flags=P.ACK | P.FIN))
        if flow.offloaded:
            self._offload_delete(flow)      # the back-end's FIN must come through the front-end
        self._sync_fast_path(flow)

    def _deferred_now(self, flow: Flow, seg: Segment, out: list[Segment]) -> None:
        """The back-end's FIN ended its last response: pass its data on, reset it, run the deferred."""
        end = seq_add(seg.seq, len(seg.payload))
        if seg.payload:
            out.append(self._rewrite_to_client(flow, seg.with_(flags=seg.flags & ~P.FIN)))
        action, flow.deferred = flow.deferred, None
        self.counters["pipelined_deferred_done"] += 1
        self._abort_backend(flow, out, seq=seq_add(flow.sent_upto, 1))
        action(end, out)

    def _dispatch(self, flow: Flow, req: Request, client_ack: int, out: list[Segment], queued: bool = False) -> None:
        """A complete request head: its body's extent, the rules, then the back-end (or an answer).
        `queued`: it was behind another request in the buffer (pipelined)."""
        flow.request = req
        flow.chunks = None
        flow.req_end = seq_add(flow.req_start, req.total_len)
        if req.chunked:
            flow.chunks, flow.req_end = ChunkScanner(), None
            flow.chunks_at = seq_add(flow.req_start, req.head_len)
            try:
                self._scan_chunks(flow, bytes(flow.parser.buf[req.head_len:]))
            except HttpError as e:
                self._http_error(flow, e, client_ack, out)
                return
        pipelined = self._pipelined(flow, client_ack, queued)
        try:
            choice = self.balancer.choose(req.method, req.host, req.path, flow.client_ip)
        except NoRule as e:
            self._http_error(flow, HttpError(404, str(e)), client_ack, out, pipelined, req.method == "HEAD")
            return
        except NoBackend as e:
            self._http_error(flow, HttpError(503, str(e)), client_ack, out, pipelined, req.method == "HEAD")
            return
        self.counters["requests"] += 1
        flow.rule = choice.rule
        backend = choice.backend
        if pipelined and flow.backend is not None and backend != flow.backend and \
                self.balancer.may_keep(choice, flow.backend):
            # The previous response may still be on its way: a re-steer would reset it. The pool
            # could have picked the current back-end, so it does.
            self.counters["pipelined_kept_backend"] += 1
            backend = flow.backend
        flow.dispatch_ack = client_ack
        if flow.state is State.ESTABLISHED and flow.backend == backend:
            self._forward_request(flow, client_ack, out)
        elif pipelined:
            self.counters["resteered"] += 1

            def resteer(end: int, o: list[Segment]) -> None:
                self._connect(flow, backend, s=seq_add(end, -1), out=o)

            self._defer(flow, resteer, out)
        else:
            if flow.state is State.ESTABLISHED:
                self.counters["resteered"] += 1
                self._abort_backend(flow, out)
            self._connect(flow, backend, s=seq_add(client_ack, -1), out=out)

    def _scan_chunks(self, flow: Flow, data: bytes) -> int | None:
        """Feed in-order body bytes to the chunked body's scanner; when its end is in `data`, the
        request's end becomes known (returns the bytes of `data` up to it)."""
        n = flow.chunks.feed(data)
        if n is None:
            flow.chunks_at = seq_add(flow.chunks_at, len(data))
            return None
        flow.req_end = seq_add(flow.chunks_at, n)
        flow.chunks = None
        return n

    def _request_bytes(self, flow: Flow) -> int:
        """Bytes of the buffer that belong to the current request (the rest is the next one's)."""
        have = len(flow.parser.buf)
        if flow.req_end is None:
            return have
        return max(0, min(have, seq_diff(flow.req_end, flow.req_start)))

    def _next_queued(self, flow: Flow, leftover: bytes, out: list[Segment]) -> None:
        """Bytes after the request just sent (a pipelined request): parse them as the next one."""
        if not leftover or flow.state is not State.ESTABLISHED or flow.last_seg is None:
            return
        self.counters["pipelined_queued"] += 1
        ack = flow.last_seg.ack
        try:
            req = flow.parser.feed(leftover[: self.cfg.max_request + 4])
        except HttpError as e:
            self._http_error(flow, e, ack, out, pipelined=True)
            return
        if req is None:
            return          # the rest of its head comes in later segments (_client_established)
        self._dispatch(flow, req, ack, out, queued=True)

    # ----------------------------------------------------------------- back-end connection

    def _connect(self, flow: Flow, backend: Backend, s: int, out: list[Segment]) -> None:
        flow.backend = backend
        flow.syn_seq = seq_add(flow.req_start, -1)
        flow.syn_s = s
        room = min(self.cfg.segment_size, flow.info.mss) - len(P.syn_options(flow.info.mss, flow.info.sack_ok,
                                                                           flow.info.wscale))
        # The SYN carries its options: a full-sized payload besides them would not fit the path's MTU
        # (why a 7 KB head split over segments used to hang: its SYN never arrived).
        flow.syn_payload = bytes(flow.parser.buf[: min(room, self._request_bytes(flow))]) if self.cfg.fastopen else b""
        flow.syn_tries = 0
        flow.offloaded = False
        flow.state = State.BACKEND_SYN
        if self._deletes_in_flight.get(flow.key):
            # The switch still maps this endpoint to the previous back-end: the client's ACKs of the new
            # back-end's data would go there. The SYN waits for the delete's ack (offload_acked).
            flow.syn_sent = self.clock()
            self.counters["syn_held_for_offload_delete"] += 1
            return
        self._send_syn(flow, out)

    def _send_syn(self, flow: Flow, out: list[Segment]) -> None:
        info = flow.info
        opts = P.syn_options(info.mss, info.sack_ok, info.wscale)
        out.append(self._to_backend(flow, seq=flow.syn_seq, ack=flow.syn_s, flags=P.SYN, window=65535,
                                    options=opts, payload=flow.syn_payload))
        flow.syn_sent = self.clock()
        flow.syn_tries += 1
        self.counters["backend_syn_sent" if flow.syn_tries == 1 else "backend_syn_retransmitted"] += 1

    def _client_backend_syn(self, flow: Flow, seg: Segment, out: list[Segment]) -> None:
        if seg.rst:
            out.append(self._to_backend(flow, seq=seq_add(flow.syn_seq, 1), ack=0, flags=P.RST))
            self._remove(flow, "client_rst")
            return
        if seg.payload:
            self._collect_body(flow, seg)
        if seg.fin:
            flow.pending_fin = seq_add(seg.seq, len(seg.payload))

    def _collect_body(self, flow: Flow, seg: Segment) -> None:
        """While the back-end handshake runs, keep contiguous bytes (body) up to the buffer bound."""
        expected = seq_add(flow.req_start, len(flow.parser.buf))
        off = seq_diff(seg.seq, expected)
        if off > 0 or len(flow.parser.buf) >= self.cfg.max_request:
            return
        added = seg.payload[-off if off < 0 else 0:][: self.cfg.max_request - len(flow.parser.buf)]
        flow.parser.buf += added
        if flow.chunks is not None and added:
            self._scan_chunks(flow, added)

    def _backend_syn_ack(self, flow: Flow, seg: Segment, out: list[Segment]) -> None:
        with_data = seq_add(flow.syn_seq, 1 + len(flow.syn_payload))
        if seg.ack == with_data:
            flow.sent_upto = with_data
            if flow.syn_payload:
                self.counters["fastopen_accepted"] += 1
        elif seg.ack == seq_add(flow.syn_seq, 1):
            flow.sent_upto = seg.ack
            if flow.syn_payload:
                self.counters["fastopen_refused"] += 1
        else:
            self.counters["synack_bad_ack"] += 1
            return
        if seg.seq != flow.syn_s:
            self.counters["synack_seq_not_translated"] += 1   # no agent on the back-end?
        if self.conn_table is not None:
            # Switch-only: the request is held until both switch entries are in (install_done).
            flow.state = State.INSTALLING
            flow.install_started = self.clock()
            self.counters["install_requested"] += 1
            self.conn_table.install(flow)
            return
        self._handshake_done(flow, out)

    def _handshake_done(self, flow: Flow, out: list[Segment]) -> None:
        """The back-end handshake is complete: send the held request (or the bare ACK) and splice."""
        flow.state = State.ESTABLISHED
        if not flow.counted:
            self.balancer.opened(flow.backend)
            flow.counted = True
        self.counters["established"] += 1
        flow.server_next = seq_add(flow.syn_s, 1)
        upto = self._request_bytes(flow)
        rest = bytes(flow.parser.buf[seq_diff(flow.sent_upto, flow.req_start):upto])
        leftover = bytes(flow.parser.buf[upto:])
        ack = seq_add(flow.syn_s, 1)
        if rest:
            self.counters["replayed"] += 1
            out.append(self._to_backend(flow, seq=flow.sent_upto, ack=ack, flags=P.ACK | P.PSH, payload=rest))
            flow.sent_upto = seq_add(flow.sent_upto, len(rest))
        else:
            out.append(self._to_backend(flow, seq=flow.sent_upto, ack=ack, flags=P.ACK))
        self._request_done(flow)
        self._offload_decision_at_request(flow)
        if flow.pending_fin is not None and flow.pending_fin == flow.sent_upto:
            out.append(self._to_backend(flow, seq=flow.sent_upto, ack=ack, flags=P.ACK | P.FIN))
            flow.fin_c = flow.pending_fin
        self._sync_fast_path(flow)
        self._next_queued(flow, leftover, out)

    def _request_done(self, flow: Flow) -> None:
        """The current request's buffered bytes went to the back-end: reset for the next one."""
        flow.parser.reset()
        flow.ooo = None
        if flow.req_end is not None and seq_diff(flow.sent_upto, flow.req_end) >= 0:
            flow.req_end = flow.sent_upto
        flow.req_start = flow.req_end if flow.req_end is not None else flow.sent_upto

    def _offload_decision_at_request(self, flow: Flow) -> None:
        if self.conn_table is not None:
            return      # switch-only: every connection is installed, the rules' offload modes do not apply
        mode = flow.rule.offload if flow.rule else "never"
        if flow.request is not None and flow.request.method == "HEAD":
            mode = "never"      # no body follows the response's Content-Length: nothing to offload
        if mode == "always" and not flow.offloaded:
            self._offload_add(flow)
        flow.await_response_head = mode == "auto" and not flow.offloaded

    def _offload_add(self, flow: Flow) -> None:
        flow.offloaded = True
        self.counters["offload_add"] += 1
        if self.offload is not None:
            self.offload.add(flow.client_ip, flow.client_port, flow.backend.index)

    def _sync_fast_path(self, flow: Flow) -> None:
        if self.fastpath is None:
            return
        if not flow.fast_path_ok or flow.backend is None:
            self.fastpath.delete_flow(flow.client_ip, flow.client_port)
            return
        flags = FLOW_F_C2B_ACK
        if not flow.await_response_head:
            flags |= FLOW_F_B2C
        start = flow.sent_upto
        end = flow.req_end if flow.req_end is not None else start
        if seq_diff(end, start) > 0 and flow.deferred is None:
            flags |= FLOW_F_C2B_DATA      # the rest of the request body goes straight through
        b = flow.backend
        self.fastpath.set_flow(flow.client_ip, flow.client_port, FlowEntry(
            backend_ip=P.ip_bytes(b.ip), backend_port=b.port, flags=flags, backend_mac=P.mac_bytes(b.mac),
            client_mac=self.client_mac, own_mac=self.own_mac, data_start=start, data_end=end))

    # ----------------------------------------------------------------- established

    def _client_established(self, flow: Flow, seg: Segment, out: list[Segment]) -> None:
        if seg.rst:
            out.append(self._rewrite_to_backend(flow, seg))
            self._remove(flow, "client_rst")
            return
        payload = seg.payload
        if payload and flow.chunks is not None and flow.deferred is None and not self.cfg.pin_backend:
            off = seq_diff(seg.seq, flow.chunks_at)
            if off > 0:
                self.counters["body_out_of_order"] += 1     # the chunks' scan needs them in order
                return
            try:
                if self._scan_chunks(flow, payload[-off:] if off < 0 else payload) is not None:
                    flow.req_start = flow.req_end
            except HttpError:
                self._reset_both(flow, "bad_chunked_body", out)
                return
        if payload:
            in_body = max(0, min(len(payload), seq_diff(flow.req_start, seg.seq)))
            if flow.chunks is not None and flow.deferred is None:
                in_body = len(payload)      # the chunked body goes on past this segment
            if self.cfg.pin_backend:
                in_body = len(payload)      # later requests of the connection go to the same back-end
            if in_body:
                # Body bytes (or retransmissions) of the request in progress: forward as they are.
                body = seg.with_(payload=payload[:in_body], flags=seg.flags & ~P.FIN)
                out.append(self._rewrite_to_backend(flow, body))
                flow.sent_upto = max(flow.sent_upto, body.end_seq, key=lambda x: seq_diff(x, flow.sent_upto))
            if in_body < len(payload):
                rest = seg.with_(seq=seq_add(seg.seq, in_body), payload=payload[in_body:], flags=seg.flags & ~P.FIN)
                self._collect(flow, rest, out)
                if flow.state is not State.ESTABLISHED:
                    return
        elif not seg.fin:
            out.append(self._rewrite_to_backend(flow, seg))
        if seg.fin:
            flow.fin_c = seq_add(seg.seq, len(payload))
            out.append(self._rewrite_to_backend(flow, seg.with_(seq=flow.fin_c, payload=b"")))
            self.counters["client_fin"] += 1
            self._sync_fast_path(flow)
        self._note_acks(flow, seg)

    def _forward_request(self, flow: Flow, client_ack: int, out: list[Segment]) -> None:
        upto = self._request_bytes(flow)
        data = bytes(flow.parser.buf[:upto])
        leftover = bytes(flow.parser.buf[upto:])
        out.append(self._to_backend(flow, seq=flow.req_start, ack=client_ack, flags=P.ACK | P.PSH, payload=data))
        flow.sent_upto = seq_add(flow.req_start, len(data))
        self.counters["requests_forwarded"] += 1
        self._request_done(flow)
        self._offload_decision_at_request(flow)
        self._sync_fast_path(flow)
        self._next_queued(flow, leftover, out)

    def _note_acks(self, flow: Flow, seg: Segment) -> None:
        if flow.fin_b is not None and seg.has_ack and seq_diff(seg.ack, seq_add(flow.fin_b, 1)) >= 0:
            flow.fin_b_acked = True
        self._maybe_closed(flow)

    def _maybe_closed(self, flow: Flow) -> None:
        # An offloaded flow's pure ACKs bypass the front-end, and so do a spliced flow's with the kernel
        # fast path: both FINs seen is all it can know (the linger covers retransmissions).
        both = (flow.fin_c_acked and flow.fin_b_acked) or \
            ((flow.offloaded or flow.installed or self.fastpath is not None) and flow.fin_c is not None
             and flow.fin_b is not None)
        if both and flow.state is not State.CLOSED:
            self.counters["closed_gracefully"] += 1
            self._close(flow)

    def _close(self, flow: Flow) -> None:
        flow.state = State.CLOSED
        flow.linger_until = self.clock() + self.cfg.linger
        # The back-end's last ACKs cross the kernel during the linger; the client's go to user space,
        # which forwards only those of this connection (not a reused port's handshake ACK).
        self._release(flow, keep_b2c=flow.backend is not None and not flow.local_data)

    def _client_closed(self, flow: Flow, seg: Segment, out: list[Segment]) -> None:
        if flow.backend is not None and not flow.local_data and flow.fin_b is not None:
            if not self._in_old_connection(flow, seg):
                self.counters["closed_stray"] += 1      # e.g. the handshake ACK of a reused port
                return
            out.append(self._rewrite_to_backend(flow, seg))     # late ACKs and retransmitted FINs

    def _in_old_connection(self, flow: Flow, seg: Segment) -> bool:
        """Is seg.seq inside the closed connection's client sequence space, c+1 .. after its FIN?"""
        if flow.fin_c is not None:
            last = seq_add(flow.fin_c, 1)
        else:
            last = flow.local_ack if flow.local_data else flow.sent_upto
        return seq_diff(seg.seq, seq_add(flow.c, 1)) >= 0 and seq_diff(seg.seq, last) <= 0

    def _reopens(self, flow: Flow, seg: Segment) -> bool:
        """Data on a closed flow's endpoint outside the old connection: the client reused the port."""
        return bool(seg.payload) and not seg.rst and not self._in_old_connection(flow, seg)

    # ----------------------------------------------------------------- back-end -> client

    def _from_backend(self, seg: Segment, out: list[Segment]) -> None:
        flow = self.flows.get((seg.dst, seg.dport))
        if flow is None or flow.backend is None or (P.ip_bytes(flow.backend.ip), flow.backend.port) != \
                (seg.src, seg.sport):
            if flow is not None and seg.rst:
                self._misdirected_ack(flow, seg, out)
            self.counters["backend_without_flow"] += 1
            return
        flow.last = self.clock()
        if self.cfg.learn_delta:
            seg = self._to_client_space(flow, seg)
        if flow.state is State.BACKEND_SYN:
            if seg.syn and seg.has_ack:
                self._backend_syn_ack(flow, seg, out)
            elif seg.rst:
                self.counters["backend_refused"] += 1
                self._backend_failed(flow, out)
            return
        if flow.state is State.CLOSED:
            if flow.fin_c is not None and not flow.local_data:
                out.append(self._rewrite_to_client(flow, seg))
            return
        if flow.state is not State.ESTABLISHED:
            return
        if seg.syn:
            # Our handshake-completing segment was lost: acknowledge the SYN-ACK again.
            out.append(self._to_backend(flow, seq=flow.sent_upto, ack=seq_add(flow.syn_s, 1), flags=P.ACK))
            return
        if seg.rst:
            out.append(self._rewrite_to_client(flow, seg))
            self.counters["backend_rst"] += 1
            self._remove(flow, "backend_rst")
            return
        if seg.fin and flow.deferred is not None:
            self._deferred_now(flow, seg, out)
            return
        if flow.await_response_head and seg.payload:
            self._response_head(flow, seg)
        out.append(self._rewrite_to_client(flow, seg))
        if seg.fin:
            flow.fin_b = seq_add(seg.seq, len(seg.payload))
            self.counters["backend_fin"] += 1
        if flow.fin_c is not None and seg.has_ack and seq_diff(seg.ack, seq_add(flow.fin_c, 1)) >= 0:
            flow.fin_c_acked = True
        self._sync_fast_path(flow)
        self._maybe_closed(flow)

    def _to_client_space(self, flow: Flow, seg: Segment) -> Segment:
        """Without an agent the back-end's sequence numbers are its own: learn delta = b - s from its
        SYN-ACK, then every back-end segment gets seq -= delta (frames to it get ack += delta)."""
        if seg.syn and seg.has_ack and flow.state is State.BACKEND_SYN:
            flow.delta = seq_add(seg.seq, -flow.syn_s)
        return seg.with_(seq=seq_add(seg.seq, -flow.delta)) if flow.delta else seg

    def _misdirected_ack(self, flow: Flow, seg: Segment, out: list[Segment]) -> None:
        """A RST from the old back-end of a re-steered, offloaded connection: the switch's offload
        entry to that back-end is deleted asynchronously, so the client's ACKs of the new response
        still reach the old back-end for a while, which resets them (its agent dropped the entry at
        the re-steer). Without their information the new back-end waits for a retransmission timeout
        (~200 ms per re-steer). The RST's seq is the reset ACK's number (RFC 793), in the client's
        space: pass it on to the current back-end."""
        if flow.state is not State.ESTABLISHED or seg.has_ack or self.offload is None:
            return
        if not 0 < seq_diff(seg.seq, seq_add(flow.syn_s, 1)) < (1 << 30):
            return                      # not an acknowledgement of the current back-end's data
        self.counters["misdirected_ack_relayed"] += 1
        out.append(self._to_backend(flow, seq=flow.sent_upto, ack=seg.seq, flags=P.ACK))

    def _response_head(self, flow: Flow, seg: Segment) -> None:
        head = parse_response_head(seg.payload)
        if head is not None and 100 <= head.status < 200:
            return                  # an interim response (100 Continue): the final one decides
        flow.await_response_head = False
        length = head.content_length if head else None
        threshold = flow.rule.offload_threshold if flow.rule else 0
        if length is not None and length >= threshold and not flow.offloaded:
            self.counters["offload_auto_large"] += 1
            self._offload_add(flow)
        else:
            self.counters["offload_auto_small"] += 1

    def _backend_failed(self, flow: Flow, out: list[Segment]) -> None:
        if flow.backend is not None:
            self.counters[f"backend_failed_{flow.backend.name}"] += 1
        flow.backend = None
        self.counters["http_503"] += 1
        self._respond(flow, error_response(503, "back-end unreachable"), server_seq=seq_add(flow.syn_s, 1),
                      client_next=seq_add(flow.req_start, len(flow.parser.buf)), out=out)

    # ----------------------------------------------------------------- local responses

    def _respond(self, flow: Flow, data: bytes, server_seq: int, client_next: int, out: list[Segment]) -> None:
        """Answer the client ourselves from the VIP (data then FIN) and close; nothing to a back-end."""
        if self.fastpath is not None:
            self.fastpath.delete_flow(flow.client_ip, flow.client_port)
        if flow.offloaded:
            self._offload_delete(flow)
        flow.state = State.LOCAL
        flow.local_data, flow.local_seq, flow.local_ack = data, server_seq, client_next
        flow.fin_c = None
        flow.fin_c_acked = flow.fin_b_acked = False
        self._send_local(flow, out)
        self.counters["local_responses"] += 1

    def _send_local(self, flow: Flow, out: list[Segment]) -> None:
        if flow.local_data:
            out.append(self._to_client(flow, seq=flow.local_seq, ack=flow.local_ack, flags=P.ACK | P.PSH | P.FIN,
                                       payload=flow.local_data))
        else:
            out.append(self._to_client(flow, seq=flow.local_seq, ack=flow.local_ack, flags=P.ACK | P.FIN))

    def _client_local(self, flow: Flow, seg: Segment, out: list[Segment]) -> None:
        if seg.rst:
            self._remove(flow, "client_rst")
            return
        our_fin_end = seq_add(flow.local_seq, len(flow.local_data) + 1)
        if seg.has_ack and seq_diff(seg.ack, our_fin_end) >= 0:
            flow.fin_b_acked = True
        if seg.fin:
            fin_end = seq_add(seg.seq, len(seg.payload) + 1)
            if seq_diff(fin_end, flow.local_ack) > 0:
                flow.local_ack = fin_end
            flow.fin_c_acked = True
            out.append(self._to_client(flow, seq=our_fin_end, ack=flow.local_ack, flags=P.ACK))
        elif seg.payload and not flow.fin_b_acked:
            self._send_local(flow, out)     # the client did not get the response: send it again
        if flow.fin_c_acked and flow.fin_b_acked:
            self._close(flow)

    # ----------------------------------------------------------------- timers

    def _timers(self, flow: Flow, now: float, out: list[Segment]) -> None:
        if flow.state is State.CLOSED:
            if now >= flow.linger_until:
                self._remove(flow, "closed")
            return
        if flow.state is State.INSTALLING:
            if flow.install_started is not None and now - flow.install_started >= self.cfg.install_timeout:
                self.counters["install_timeout"] += 1
                self._installed(flow, False, out)
            return
        if flow.state is State.BACKEND_SYN:
            if flow.syn_tries == 0:
                if now - flow.syn_sent >= self.cfg.offload_delete_wait:
                    self.counters["offload_delete_wait_timeout"] += 1   # no ack: send the SYN anyway
                    self._send_syn(flow, out)
                return
            if now - flow.syn_sent >= self.cfg.syn_rto * (2 ** (flow.syn_tries - 1)):
                if flow.syn_tries > self.cfg.syn_retries:
                    self.counters["backend_syn_timeout"] += 1
                    self._backend_failed(flow, out)
                else:
                    self._send_syn(flow, out)
            return
        last = flow.last
        if self.fastpath is not None and flow.state is State.ESTABLISHED and \
                now - last >= min(self.cfg.idle_timeout, self.cfg.offloaded_idle_timeout):
            ns = self.fastpath.last_seen_ns(flow.client_ip, flow.client_port)    # a map lookup: only when due
            if ns:
                last = max(last, ns / 1e9 - (time.monotonic() - now))
        if self.conn_table is not None and flow.installed:
            seen = self.conn_table.last_active(flow)     # the switch entries' direct counters
            if seen is not None:
                last = max(last, seen)
        last = max(last, flow.switch_active)
        if flow.state is State.REQUEST:
            if flow.unsure is not None and now - flow.created >= self.cfg.unsure_grace:
                # No earlier segment came: the stream really starts with what was refused.
                e, flow.unsure = flow.unsure, None
                self._http_error(flow, e, flow.last_seg.ack, out)
                return
            # The first head's time runs from its first byte, not its last (slowloris): then it is
            # answered 408 (as HAProxy does) and the flow closes like any local answer.
            if now - flow.created >= self.cfg.request_timeout:
                self.counters["timeout_request"] += 1
                self.counters["http_408"] += 1
                server_seq = flow.last_seg.ack if flow.last_seg is not None else flow.server_next
                self._respond(flow, error_response(408, "request head not complete in time"), server_seq=server_seq,
                              client_next=seq_add(flow.req_start, len(flow.parser.buf)), out=out)
                flow.last = now
            return
        if flow.deferred is not None and now - flow.deferred_since >= self.cfg.request_timeout:
            self.counters["pipelined_deferred_timeout"] += 1     # the back-end never closed: reset both
            out.append(self._to_backend(flow, seq=seq_add(flow.sent_upto, 1), ack=0, flags=P.RST))
            out.append(self._to_client(flow, seq=flow.server_next, ack=0, flags=P.RST))
            self._remove(flow, "timeout")
            return
        if flow.offloaded and flow.state is State.ESTABLISHED:
            idle = self._offloaded_idle(flow, now, last)
        else:
            idle = now - last >= (self.cfg.request_timeout if flow.state is State.LOCAL else
                                  self.cfg.offloaded_idle_timeout if flow.offloaded else self.cfg.idle_timeout)
        if idle:
            self.counters[f"timeout_{flow.state.value}"] += 1
            if flow.state is State.ESTABLISHED:
                out.append(self._to_backend(flow, seq=flow.sent_upto, ack=0, flags=P.RST))
            if flow.state in (State.ESTABLISHED, State.LOCAL):
                # Never a silent end: the client learns that this connection is gone.
                out.append(self._to_client(flow, seq=flow.local_seq if flow.state is State.LOCAL else flow.server_next,
                                           ack=0, flags=P.RST))
            self._remove(flow, "timeout")

    # ----------------------------------------------------------------- removal

    def _abort_backend(self, flow: Flow, out: list[Segment], seq: int | None = None) -> None:
        """Reset the current back-end connection (re-steer or a local answer on a spliced flow)."""
        if flow.state is not State.ESTABLISHED or flow.backend is None:
            return
        out.append(self._to_backend(flow, seq=flow.req_start if seq is None else seq, ack=0, flags=P.RST))
        if self.fastpath is not None:
            self.fastpath.delete_flow(flow.client_ip, flow.client_port)
        if flow.offloaded:
            self._offload_delete(flow)
        if flow.counted:
            self.balancer.closed(flow.backend)
            flow.counted = False

    def _offload_delete(self, flow: Flow) -> None:
        flow.offloaded = False
        self.counters["offload_delete"] += 1
        if self.offload is None:
            return
        if self._offload_wake is None:
            self.offload.delete(flow.client_ip, flow.client_port)
            return
        self._send_delete(flow.key, 0)

    def _send_delete(self, key: tuple[bytes, int], attempt: int) -> None:
        self._deletes_in_flight[key] += 1
        self.offload.delete(key[0], key[1], on_ack=lambda code, secs: self._delete_acked(key, code, attempt))

    def _delete_acked(self, key: tuple[bytes, int], code: str = "OK", attempt: int = 0) -> None:
        """On the offload client's thread: queue the ack for offload_acked() and wake the I/O loop."""
        self._acked_deletes.append((key, code, attempt))
        if self._offload_wake is not None:
            self._offload_wake()

    def _release(self, flow: Flow, keep_b2c: bool = False) -> None:
        if self.fastpath is not None:
            if keep_b2c and flow.backend is not None:
                b = flow.backend
                self.fastpath.set_flow(flow.client_ip, flow.client_port, FlowEntry(
                    backend_ip=P.ip_bytes(b.ip), backend_port=b.port, flags=FLOW_F_B2C,
                    backend_mac=P.mac_bytes(b.mac), client_mac=self.client_mac, own_mac=self.own_mac))
            else:
                self.fastpath.delete_flow(flow.client_ip, flow.client_port)
        if flow.offloaded:
            self._offload_delete(flow)
        if flow.counted and flow.backend is not None:
            self.balancer.closed(flow.backend)
            flow.counted = False

    def _remove(self, flow: Flow, why: str) -> None:
        self._activity_pending.pop(flow.key, None)
        self._release(flow)
        if self.conn_table is not None and flow.install_started is not None:
            self.conn_table.remove(flow)     # after the linger: late ACKs and FINs still crossed the switch
        self.flows.pop(flow.key, None)
        self.counters[f"removed_{why}"] += 1

    # ----------------------------------------------------------------- frames

    def _window(self, flow: Flow) -> int:
        return LOCAL_WINDOW_UNSCALED if flow.info.wscale is None else LOCAL_WINDOW_SCALED

    def _to_client(self, flow: Flow, seq: int, ack: int, flags: int, payload: bytes = b"") -> Segment:
        return Segment(eth_src=self.own_mac, eth_dst=self.client_mac, src=self.vip, dst=flow.client_ip,
                       sport=self.cfg.vip_port, dport=flow.client_port, seq=seq, ack=ack, flags=flags,
                       window=self._window(flow), payload=payload)

    def _to_backend(self, flow: Flow, seq: int, ack: int, flags: int, payload: bytes = b"", options: bytes = b"",
                    window: int | None = None) -> Segment:
        b = flow.backend
        if flow.delta and flags & P.ACK:
            ack = seq_add(ack, flow.delta)       # client space -> the back-end's (no agent there)
        return Segment(eth_src=self.own_mac, eth_dst=P.mac_bytes(b.mac), src=flow.client_ip, dst=P.ip_bytes(b.ip),
                       sport=flow.client_port, dport=b.port, seq=seq, ack=ack, flags=flags,
                       window=flow.client_window if window is None else window, options=options, payload=payload)

    def _rewrite_to_backend(self, flow: Flow, seg: Segment) -> Segment:
        b = flow.backend
        self.counters["forwarded_c2b"] += 1
        ack = seq_add(seg.ack, flow.delta) if flow.delta and seg.has_ack else seg.ack
        return seg.with_(eth_src=self.own_mac, eth_dst=P.mac_bytes(b.mac), dst=P.ip_bytes(b.ip), dport=b.port,
                         ack=ack)

    def _rewrite_to_client(self, flow: Flow, seg: Segment) -> Segment:
        self.counters["forwarded_b2c"] += 1
        return seg.with_(eth_src=self.own_mac, eth_dst=self.client_mac, src=self.vip, sport=self.cfg.vip_port)
