"""Front-ends ask when the switch last counted packets of offload entries (request `activity`,
docs/controlplane-protocol.md, "Activity of offload entries"; system/controlplane/activity.py).

Without a switch (the real server and controller over mutual TLS, the switch unreachable): who may ask
what, bad requests answered with a clear error on a connection that stays usable, UNAVAILABLE while
no counter read succeeded, the front-end's offload client's callbacks. With the real P4Runtime server
and emulated switch (root): an offload entry whose counter grows (pure ACKs of its client sent
through the switch) is reported active, another one idle, and an entry the switch does not have as
None."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from system.controlplane import protocol
from system.controlplane.activity import Activity, ActivityUnavailable
from system.controlplane.tests.test_controlplane_auth import Plane
from system.controlplane.tests.test_controlplane_miresga import MiresgaCP
from system.frontend.offload import OffloadClient
from system.switch.p4rt.testing import SW_NS, free_port
from system.switch.tables import load_p4info
from system.testing.poll import HANG_GUARD_S, poll_until

KEY = {"client_addr": "198.18.0.11", "client_port": 40000}


@pytest.fixture(scope="module")
def miresga_pipeline() -> tuple[object, bytes]:
    from system.switch.package import build_package

    return load_p4info("miresga"), build_package("miresga")


@pytest.fixture
def plane(creds):
    p = Plane(creds, "miresga")
    try:
        yield p
    finally:
        p.close()


# -- without a switch ------------------------------------------------------------------------------

def test_a_frontend_may_ask_about_offload_entries_only(plane) -> None:
    fe = plane.client("frontend")
    try:
        rep = fe.activity("route", [KEY])
        assert rep["type"] == "error" and rep["code"] == "PERMISSION_DENIED" and "route" in rep["message"], rep
        assert plane.auth()["refused"] == {"frontend activity route": 1}
        # allowed: answered (UNAVAILABLE here: no counter read, the switch is unreachable) on the same connection
        rep = fe.activity("offload", [KEY])
        assert rep["type"] == "error" and rep["code"] == "UNAVAILABLE" and "no counter read" in rep["message"], rep
    finally:
        fe.close()
    for role in ("monitor", "slowpath"):
        cli = plane.client(role)
        try:
            rep = cli.activity("offload", [KEY])
            assert rep["code"] == "PERMISSION_DENIED" and f"role {role}" in rep["message"], rep
        finally:
            cli.close()
    op = plane.client("operator")        # the operator may ask about any table, but only offload is tracked
    try:
        rep = op.activity("route", [KEY])
        assert rep["code"] == "FAILED_PRECONDITION" and "tracked: offload" in rep["message"], rep
    finally:
        op.close()


@pytest.mark.parametrize(("msg", "says"), [
    ({"table": "offload"}, "keys must be a non-empty list"),
    ({"table": "offload", "keys": []}, "keys must be a non-empty list"),
    ({"table": "offload", "keys": "198.18.0.11"}, "keys must be a non-empty list"),
    ({"keys": [KEY]}, "table must be a non-empty string"),
    ({"table": "nope", "keys": [KEY]}, "has no table 'nope'"),
    ({"table": "offload", "keys": [{"client_addr": "198.18.0.11"}]}, "key 0 must be an object of exactly"),
    ({"table": "offload", "keys": [KEY, dict(KEY, extra=1)]}, "key 1 must be an object of exactly"),
    ({"table": "offload", "keys": [dict(KEY, client_addr="198.18.0.300")]}, "is not an IPv4 address"),
    ({"table": "offload", "keys": [dict(KEY, client_addr=True)]}, "is not an IPv4 address"),
    ({"table": "offload", "keys": [dict(KEY, client_port=65536)]}, "is not a port number"),
    ({"table": "offload", "keys": [dict(KEY, client_port="80")]}, "is not a port number"),
    ({"table": "offload", "keys": [KEY] * (protocol.MAX_ACTIVITY_KEYS + 1)}, "at most 4096"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_requests_get_a_clear_error_and_the_connection_stays(plane, msg, says) -> None:
    fe = plane.client("frontend")
    try:
        rep = fe.call({"type": "activity", **msg})
        assert rep["type"] == "error" and rep["code"] == "INVALID_ARGUMENT" and says in rep["message"], rep
        assert fe.activity("offload", [KEY])["code"] == "UNAVAILABLE"      # the same connection still serves
        assert fe.cookie_secrets()["type"] == "cookie_secrets"
    finally:
        fe.close()
    assert plane.controller._thread.is_alive()


def test_answers_come_from_the_latest_read_and_go_stale() -> None:
    """Activity's bookkeeping with a fake clock: idle seconds as of now, None for an entry the read did
    not see, UNAVAILABLE before the first read and once the last one is stale_after old."""
    t = [100.0]
    act = Activity("127.0.0.1:1", interval=1.0, clock=lambda: t[0], stale_after=5.0)
    try:
        with pytest.raises(ActivityUnavailable, match="no counter read yet"):
            act.idle([(bytes([198, 18, 0, 11]), 40000)])
        a, b = (bytes([198, 18, 0, 11]), 40000), (bytes([198, 18, 0, 11]), 40001)
        act.reader._packets = {a: 5, b: 7}                  # an earlier read saw both
        act.reader._active = {a: 99.0, b: 99.0}
        act.reader.read = lambda: {a: 9, b: 7}              # a's counter grew, b's did not
        act.reader.poll_once()
        t[0] = 102.5
        idle, age = act.idle([a, b, (a[0], 1)])
        assert idle == [2.5, 3.5, None] and age == 2.5
        t[0] = 105.1
        with pytest.raises(ActivityUnavailable, match=r"5\.1 s old"):
            act.idle([a])
        assert act.snapshot()["unavailable"] == 2 and act.snapshot()["reads"] == 1
    finally:
        act.close()


def test_offload_client_reports_an_unreachable_control_plane_at_once() -> None:
    cl = OffloadClient(("127.0.0.1", free_port()), reconnect_interval=0)
    got = []
    try:
        cl.activity([(bytes([198, 18, 0, 11]), 40000)], lambda idle, code: got.append((idle, code)))
        assert got == [(None, "UNAVAILABLE")] and cl.counters["activity_unavailable"] == 1
    finally:
        cl.close()


# -- with the real switch --------------------------------------------------------------------------

def _pure_acks(switch_ns, src: int, sport: int, n: int) -> None:
    """n pure ACKs from host `src` to the VIP through the switch (an offloaded client's ACKs)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from system.testing.netns import in_netns

    h_ns, dev = switch_ns.host_ns(src), f"mih{src}"
    ack = (Ether(src=switch_ns.mac(h_ns, dev), dst=switch_ns.mac(SW_NS, f"misw{src}"))
           / IP(src=switch_ns.host_ip(src), dst="198.18.0.100") / TCP(sport=sport, dport=80, flags="A", seq=1, ack=1))
    with in_netns(h_ns):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    try:
        s.bind((dev, 0))
        for _ in range(n):
            s.send(bytes(ack))
    finally:
        s.close()


@pytest.mark.root
def test_an_entry_whose_counter_grows_is_active_another_idle(switch_proc, switch_ns, miresga_pipeline) -> None:
    c = MiresgaCP(switch_proc, miresga_pipeline)
    cli = protocol.Client(c.server.address, name="fe", credentials=switch_proc.creds("frontend"))
    offload = OffloadClient(c.server.address, name="fe-offload", credentials=switch_proc.creds("frontend"))
    try:
        host = switch_ns.host_ip(1)
        busy, quiet = {"client_addr": host, "client_port": 41001}, {"client_addr": host, "client_port": 41002}
        absent = {"client_addr": host, "client_port": 41003}
        for k in (busy, quiet):
            assert cli.add("offload", k, "to_backend", {"index": 2})["code"] == "OK"

        def ask() -> tuple[float, list]:
            rep = cli.activity("offload", [busy, quiet, absent])
            return time.monotonic(), rep.get("idle_s", rep)

        # the first read sees both (a new entry counts as active); wait until both have been unchanged
        # for more than two reads
        poll_until(ask, lambda r: isinstance(r[1], list) and None not in r[1][:2] and min(r[1][:2]) > 2.5,
             "both entries idle for more than two reads")
        sent = time.monotonic()
        _pure_acks(switch_ns, 1, 41001, 3)
        # the busy entry's counter grew: a read after the ACKs reports it active after them ...
        now, idle = poll_until(ask, lambda r: r[0] - r[1][0] >= sent, "the busy entry reported active")
        # ... while the quiet one was last active before them, and the absent one is no entry at all
        assert now - idle[1] < sent and idle[2] is None, idle
        # the front-end's client: the same answer, asynchronously, on its reader thread
        got: list = []
        done = threading.Event()
        offload.activity([(bytes(map(int, host.split("."))), 41001), (bytes(map(int, host.split("."))), 41003)],
                         lambda idle, code: (got.append((idle, code)), done.set()))
        assert done.wait(HANG_GUARD_S)
        (idle2, code), = got
        assert code == "OK" and idle2[1] is None and idle2[0] is not None and idle2[0] < idle[1]
        snap = c.controller.snapshot()["activity"]
        assert snap["tables"] == ["offload"] and snap["reads"] >= 3 and snap["requests"] >= 3
        assert snap["read_errors"] == 0, snap["last_error"]
    finally:
        offload.close()
        cli.close()
        c.close()
