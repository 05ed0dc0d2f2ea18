"""Client arbitration: primary/backup by election id, per (device_id, role).

Policy (P4Runtime 1.4 section 5 "Client arbitration", as implemented by PI's DeviceMgr): among the
connected streams of a role, the one with the highest election id is the primary; every other stream
is a backup. When the primary changes (a higher id arrives, or the primary's stream closes and the
next highest takes over) every stream of the role is notified with the primary's election id and
status OK (to the primary) or ALREADY_EXISTS (to backups; NOT_FOUND when the role has no primary,
which only happens when every stream sent no election id). A stream that sends an election id already
held by another stream of the role is refused with INVALID_ARGUMENT. A stream that sends no election id
is a backup that can never become primary.
"""

from __future__ import annotations

import itertools
import queue
import threading
from dataclasses import dataclass, field

import grpc
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

from system.switch.p4rt.errors import P4RTError

ElectionId = tuple[int, int]  # (high, low); compares as the 128-bit number


def election_id(msg: p4runtime_pb2.Uint128) -> ElectionId:
    return (msg.high, msg.low)


@dataclass(eq=False)
class Stream:
    """One StreamChannel: its outgoing queue and, once it has arbitrated, its role and election id."""

    peer: str
    out: queue.Queue = field(default_factory=queue.Queue)
    role: str | None = None
    election: ElectionId | None = None      # None: no election id (backup only)
    arbitrated: bool = False
    number: int = field(default_factory=itertools.count(1).__next__)

    def send(self, msg: p4runtime_pb2.StreamMessageResponse) -> None:
        self.out.put(msg)


class Arbiter:
    def __init__(self, device_id: int) -> None:
        self.device_id = device_id
        self._lock = threading.Lock()
        self._streams: list[Stream] = []
        self._primary: dict[str, Stream | None] = {}

    def arbitrate(self, stream: Stream, upd: p4runtime_pb2.MasterArbitrationUpdate) -> None:
        """Handles an arbitration request of `stream`; raises P4RTError to refuse (stream ends)."""
        if upd.device_id != self.device_id:
            raise P4RTError(grpc.StatusCode.NOT_FOUND, f"unknown device_id {upd.device_id} "
                            f"(this switch is device {self.device_id})")
        role = upd.role.name
        eid = election_id(upd.election_id) if upd.HasField("election_id") else None
        with self._lock:
            if stream.arbitrated and stream.role != role:
                raise P4RTError(grpc.StatusCode.FAILED_PRECONDITION,
                                f"stream already arbitrated for role {stream.role!r}; open a new stream")
            if eid is not None:
                for s in self._streams:
                    if s is not stream and s.role == role and s.election == eid:
                        raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT,
                                        f"election id {eid} is already used by another client of role "
                                        f"{role!r}")
            stream.role, stream.election, stream.arbitrated = role, eid, True
            if stream not in self._streams:
                self._streams.append(stream)
            changed = self._elect(role)
            targets = self._of_role(role) if changed else [stream]
            for s in targets:
                s.send(self._advice(s))

    def remove(self, stream: Stream) -> None:
        with self._lock:
            if stream not in self._streams:
                return
            self._streams.remove(stream)
            role = stream.role
            if role is not None and self._elect(role):
                for s in self._of_role(role):
                    s.send(self._advice(s))

    def primary(self, role: str) -> ElectionId | None:
        with self._lock:
            p = self._primary.get(role)
            return p.election if p else None

    def check_primary(self, role: str, eid: ElectionId) -> None:
        """Raises PERMISSION_DENIED unless `eid` is the election id of the primary of `role`."""
        p = self.primary(role)
        if p is None:
            raise P4RTError(grpc.StatusCode.PERMISSION_DENIED,
                            f"no primary client for role {role!r}: open a stream and arbitrate first")
        if p != eid:
            raise P4RTError(grpc.StatusCode.PERMISSION_DENIED,
                            f"election id {eid} is not the primary's ({p}) for role {role!r}")

    def streams(self) -> list[Stream]:
        with self._lock:
            return list(self._streams)

    # -- internals (lock held) --

    def _of_role(self, role: str) -> list[Stream]:
        return [s for s in self._streams if s.role == role]

    def _elect(self, role: str) -> bool:
        candidates = [s for s in self._of_role(role) if s.election is not None]
        new = max(candidates, key=lambda s: s.election) if candidates else None  # type: ignore[arg-type,return-value]
        old = self._primary.get(role)
        self._primary[role] = new
        return new is not old

    def _advice(self, s: Stream) -> p4runtime_pb2.StreamMessageResponse:
        primary = self._primary.get(s.role or "")
        msg = p4runtime_pb2.StreamMessageResponse()
        a = msg.arbitration
        a.device_id = self.device_id
        if s.role:
            a.role.name = s.role
        if primary is not None and primary.election is not None:
            a.election_id.high, a.election_id.low = primary.election
        if primary is None:
            a.status.code = code_pb2.NOT_FOUND
            a.status.message = "no primary client for this role"
        elif primary is s:
            a.status.code = code_pb2.OK
            a.status.message = "primary"
        else:
            a.status.code = code_pb2.ALREADY_EXISTS
            a.status.message = "backup: another client is primary"
        return msg
