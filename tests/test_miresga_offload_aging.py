"""Offloaded connections aged by the switch's counters, end to end (issue 10, "Bounded state"): Miresga
on a local testbed of its own (tests/data/testbed-offload-aging.yaml) with the front-end's idle
timeout shortened to IDLE_S (deploy.FRONTEND_OPTIONS). A rate-limited 10 MB download runs through the
switch for several idle timeouts while the front-end sees none of its packets: it is kept (the
control plane reports the offload entry's counter growing) and arrives byte-exact; then an offloaded
connection that really goes idle is reset and its switch entry deleted."""

from __future__ import annotations

import socket
import time

import pytest

from harness import deploy
from system.testing.netns import in_netns
from tests.miresga_testbed import (
    HANG_GUARD_S,
    client_ns,
    fresh_json,
    frontend_stats,
    frontend_stats_after,
    log,
    miresga_testbed,
    poll_until,
)
from workloads.catalog import object_bytes

pytestmark = [pytest.mark.root, pytest.mark.testbed]
IDLE_S = 2.0


@pytest.fixture(scope="module")
def inv():
    saved = dict(deploy.FRONTEND_OPTIONS)
    deploy.FRONTEND_OPTIONS.update(idle_timeout=IDLE_S)
    try:
        with miresga_testbed("testbed-offload-aging.yaml") as inv:
            yield inv
    finally:
        deploy.FRONTEND_OPTIONS.clear()
        deploy.FRONTEND_OPTIONS.update(saved)


def offload_entries(inv) -> int:
    """The control plane's offload entries, as it wrote its stats after this call."""
    return fresh_json(inv, inv.switch_host.name, "run/controlplane-stats.json")["occupancy"].get("offload", 0)


def paced_get(inv, obj, rate: int) -> bytes:
    """The body of `obj`, fetched through the VIP by a client that reads at most `rate` bytes per second
    (a 128 KiB receive buffer, so the back-end cannot push the object into the client's kernel ahead
    of the reader). Not curl --limit-rate: curl 7.88 fetched the 10 MB object through the VIP in 0.8 s
    with --limit-rate 1M (measured), the socket buffers taking it all at once."""
    with in_netns(client_ns(inv)):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 << 10)
        s.settimeout(HANG_GUARD_S)
        s.connect((str(inv.vip), inv.vip_port))
        s.sendall(f"GET {obj.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        t0 = time.monotonic()
        while chunk := s.recv(32 << 10):
            data += chunk
            ahead = len(data) / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)                 # pacing the reader (the load), not waiting for an event
    finally:
        s.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return body


def test_a_long_offloaded_download_is_kept_while_the_switch_counts_it(inv):
    (big,) = [o for o in inv.catalog if o.name == "10m"]
    # deploy's probe fetch may still linger: start from a front-end without flows
    before = poll_until(lambda: frontend_stats_after(inv), lambda st: st.get("flows", 0) == 0, "no flows left")
    # 10 MB at 1 MB/s: about 10 s, five idle timeouts of the front-end, which sees none of its packets
    t0 = time.monotonic()
    assert paced_get(inv, big, 1 << 20) == object_bytes(big.name, big.size)
    took = time.monotonic() - t0
    after = frontend_stats_after(inv)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in
             ("offload_add", "offload_kept_active", "offload_activity_unknown", "timeout_established",
              "offload_activity_queries", "offload_idle_confirmed")}
    log(f"10 MB in {took:.1f} s with a {IDLE_S:g} s idle timeout: {delta}")
    assert took > 3 * IDLE_S                         # the premise: it ran for several idle timeouts
    assert delta["offload_add"] == 1
    assert delta["offload_kept_active"] > 0          # asked when due, and the switch still counted it
    assert delta["timeout_established"] == 0 and delta["offload_idle_confirmed"] == 0
    assert delta["offload_activity_unknown"] == 0    # the control plane answered every time
    cp = fresh_json(inv, inv.switch_host.name, "run/controlplane-stats.json")["activity"]
    assert cp["reads"] > 0 and cp["read_errors"] == 0 and cp["requests"] >= delta["offload_activity_queries"]


def test_an_offloaded_connection_that_goes_idle_is_reset_and_its_entry_deleted(inv):
    (one,) = [o for o in inv.catalog if o.name == "1m"]
    before = frontend_stats(inv)
    with in_netns(client_ns(inv)):
        s = socket.create_connection((str(inv.vip), inv.vip_port), timeout=HANG_GUARD_S)
    try:
        s.sendall(f"GET {one.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and f"content-length: {one.size}".encode() in head.lower()
        while len(body) < one.size:
            chunk = s.recv(65536)
            assert chunk, f"closed after {len(body)} bytes"
            body += chunk
        assert body == object_bytes(one.name, one.size)
        assert frontend_stats_after(inv)["offload_add"] == before.get("offload_add", 0) + 1
        # The connection stays open and silent (keep-alive): the front-end resets it once the switch,
        # asked when the idle timeout is due, reports no packet of it either, and deletes its entry.
        poll_until(lambda: frontend_stats(inv), lambda st: st.get("timeout_established", 0) >
                   before.get("timeout_established", 0), "the idle offloaded connection reset by the front-end")
        poll_until(lambda: offload_entries(inv), lambda n: n == 0, "the idle connection's offload entry deleted")
        after = frontend_stats_after(inv)
        log(f"idle offloaded connection: idle_confirmed {after.get('offload_idle_confirmed', 0)}, "
            f"kept_active {after.get('offload_kept_active', 0)}, timeouts {after.get('timeout_established', 0)}")
        assert after.get("offload_idle_confirmed", 0) > before.get("offload_idle_confirmed", 0)
        assert after["timeout_established"] == before.get("timeout_established", 0) + 1
        assert after["offload_delete"] > before.get("offload_delete", 0)
        # The connection is gone for the client too: its next request is answered with a RST (the one
        # sent at the reset, or the front-end's answer to data of a flow it no longer has).
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            s.sendall(f"GET {one.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.recv(1)                                     # blocks until the RST (hang guard: the timeout)
    finally:
        s.close()
