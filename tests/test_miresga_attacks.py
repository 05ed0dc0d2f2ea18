"""Miresga under attack, with real packets through the emulated switch (issue 10; the attacks listed
at the end of ../shared/design/security.md). A legitimate client (acli1) and an attacker (aatk1)
sit on the client side of the switch; the attacker plays workloads/attack.py (the same tool the
`attack` suite runs) or sends single segments from its own raw socket.

Each test states what must hold: nothing opened, nothing reset, the daemon alive (same pid, frame
guard never fired), legitimate requests byte-exact, state bounded.

Testbed: tests/data/testbed-attack.yaml (atktest), Miresga deployed once for the module.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from miresga_testbed import (
    curl,
    frontend_stats_after,
    log,
    miresga_testbed,
    poll_until,
)
from rawhttp import exchange

from harness import testbed
from harness.inventory import Inventory
from harness.remote import Remote
from system.testing.netns import in_netns
from workloads import attack
from workloads.catalog import object_bytes

pytestmark = [pytest.mark.root, pytest.mark.testbed]

ROOT = Path(__file__).resolve().parents[1]
ONE_K = object_bytes("1k", 1024)


@pytest.fixture(scope="module")
def inv() -> Iterator[Inventory]:
    with miresga_testbed("testbed-attack.yaml") as inv:
        yield inv


def client(inv: Inventory) -> str:
    return testbed.netns(inv.clients[0])


def attacker(inv: Inventory) -> str:
    return testbed.netns(inv.attackers[0])


def frontend_pid(inv: Inventory) -> int:
    with Remote(inv, inv.frontends[0]) as r:
        return int(r.run(f"cat {r.pidfile('frontend')}").strip())


def play(inv: Inventory, kind: str, *args: str) -> subprocess.Popen:
    """workloads/attack.py KIND on the attacker host (its CLI, as the attack suite runs it)."""
    cmd = ["ip", "netns", "exec", attacker(inv), sys.executable, "-m", "workloads.attack", kind,
           "--vip", str(inv.vip), "--port", str(inv.vip_port), *args]
    log(" ".join(cmd[4:]))
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def report(proc: subprocess.Popen, timeout: float = 900) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"attack failed ({proc.returncode}): {err[-2000:]}"
    return json.loads(out)


def assert_alive_and_serving(inv: Inventory, pid: int) -> dict[str, int]:
    """The front-end is the same process, its per-frame guard never fired, and it serves byte-exact."""
    assert curl(inv, "/obj/1k", "/obj/1k") == ONE_K * 2
    assert frontend_pid(inv) == pid, "the front-end process was replaced (it died and was restarted?)"
    stats = frontend_stats_after(inv)
    assert stats.get("frame_errors", 0) == 0, stats     # counters appear once counted
    return stats


def delta(after: dict[str, int], before: dict[str, int], key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


# ---------------------------------------------------------------------------------------------
# Cookies


def test_cookies_forged_from_an_observed_synack_open_nothing(inv):
    """The attacker completes one SYN of its own, observes the cookie, and sends requests with
    forged acks for 400 other ports (the CRC cookie's affine forgery, and the observed cookie
    replayed): no flow opens, no request reaches a back-end."""
    pid = frontend_pid(inv)
    before = frontend_stats_after(inv)
    rep = report(play(inv, "cookie-forgery", "--count", "400", "--rate", "2000", "--duration", "60"))
    assert rep["extra"]["observed"] is not None, "the switch answered the attacker's own SYN with no SYN-ACK"
    assert rep["sent"] == 401 and rep["send_errors"] == 0, rep
    after = assert_alive_and_serving(inv, pid)
    # The legitimate curl above opened 1 flow with 2 requests; nothing else did.
    assert delta(after, before, "flows_opened") == 1, (before, after)
    assert delta(after, before, "requests") == 2, (before, after)
    assert 1 <= delta(after, before, "bad_cookie") <= 400, (before, after)


def _wrong_cookie_probe(inv: Inventory) -> tuple[list[attack.Segment], int, int]:
    """Data with a random ack from the attacker's own address, sent twice (a retransmission 0.6 s
    later, the front-end's `unknown_rst_after` being 0.5 s): the answers seen to each."""
    rng = random.Random(7)
    with in_netns(attacker(inv)):
        me = attack.own_address(str(inv.vip))
        raw = attack.RawSocket()
        try:
            sport, seq, ack = rng.randrange(40000, 50000), rng.getrandbits(32), rng.getrandbits(32)
            pkt = attack.tcp_packet(me, str(inv.vip), sport, inv.vip_port, seq, ack, attack.ACK | attack.PSH,
                                    attack.REQUEST)
            rep = attack.Report("probe")
            answers = []
            raw.send(pkt, rep)
            first = raw.receive(lambda s: s.dport == sport and s.src == str(inv.vip), timeout=0.6)
            if first is not None:
                answers.append(first)
            time.sleep(0.6 if first is None else 0)    # a retransmission, as TCP would send it
            raw.send(pkt, rep)
            # The RST comes back to the second copy (generous hang guard for a busy machine).
            second = raw.receive(lambda s: s.dport == sport and s.src == str(inv.vip), timeout=120)
            if second is not None:
                answers.append(second)
        finally:
            raw.close()
    return answers, ack, sport


def test_data_with_a_wrong_cookie_is_reset_not_served(inv):
    """Data whose ack is no valid cookie opens nothing; its retransmission gets a stateless RST as a
    closed port sends it (RFC 793: seq = the segment's ack, no ACK flag), so a client of a
    restarted front-end learns at once."""
    pid = frontend_pid(inv)
    before = frontend_stats_after(inv)
    answers, ack, sport = _wrong_cookie_probe(inv)
    assert answers, "no answer to the retransmitted data of an unknown flow"
    rst = answers[-1]
    assert rst.flags == attack.RST and rst.seq == ack and rst.sport == inv.vip_port and rst.dport == sport, rst
    assert not rst.payload
    after = assert_alive_and_serving(inv, pid)
    assert delta(after, before, "flows_opened") == 1 and delta(after, before, "requests") == 2, (before, after)
    assert delta(after, before, "rst_unknown_flow") == 1, (before, after)


# ---------------------------------------------------------------------------------------------
# Resets


KEEPALIVE = """
import hashlib, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
def get():
    s.sendall(b"GET /obj/1k HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    buf = b""
    while b"\\r\\n\\r\\n" not in buf:
        buf += s.recv(65536) or sys.exit("closed")
    head, _, body = buf.partition(b"\\r\\n\\r\\n")
    n = int([l for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(body) < n:
        body += s.recv(65536) or sys.exit("closed")
    return head.split(b"\\r\\n")[0].decode(), body
print(get()[0], s.getsockname()[1], flush=True)
sys.stdin.readline()
try:
    status, body = get()
except OSError as e:
    print("error", e, flush=True)
else:
    print(status, hashlib.sha256(body).hexdigest(), flush=True)
"""


def test_a_blind_rst_sweep_resets_no_connection(inv):
    """A keep-alive connection of the legitimate client; the attacker sweeps RSTs and RST|ACKs with
    random sequence numbers from the client's address over 4001 ports around it (three passes):
    the connection serves its next request byte-exact, on the same socket."""
    import hashlib

    pid = frontend_pid(inv)
    holder = subprocess.Popen(["ip", "netns", "exec", client(inv), sys.executable, "-c", KEEPALIVE, str(inv.vip),
                               str(inv.vip_port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        first = holder.stdout.readline().split()
        assert first[:3] == ["HTTP/1.1", "200", "OK"], first
        port = int(first[3])
        before = frontend_stats_after(inv)
        lo, hi = max(1024, port - 2000), min(65535, port + 2000)
        n = 3 * (hi - lo + 1)
        rep = report(play(inv, "rst-sweep", "--victim", str(inv.clients[0].data_address), "--ports", f"{lo}-{hi}",
                          "--count", str(n), "--rate", "10000", "--duration", "120"))
        assert rep["sent"] == n and rep["send_errors"] == 0, rep
        after = frontend_stats_after(inv)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        second = holder.stdout.readline().split()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
    assert second == ["HTTP/1.1", "200", "OK", hashlib.sha256(ONE_K).hexdigest()], second
    # The three RSTs at the connection's own port were judged and refused, not acted on.
    judged = delta(after, before, "rst_outside_window") + delta(after, before, "rst_challenged")
    assert 1 <= judged <= 3, (before, after)
    assert delta(after, before, "rst_without_flow") >= 1, (before, after)
    assert_alive_and_serving(inv, pid)


# ---------------------------------------------------------------------------------------------
# Parsing


def test_malformed_content_lengths_get_400_and_the_daemon_lives(inv):
    """Content-Length with a non-ASCII digit (once fatal: `str.isdigit` accepts '²', `int()` raised)
    and duplicated Content-Lengths (request smuggling) are answered 400; the daemon goes on."""
    pid = frontend_pid(inv)
    addr = (str(inv.vip), inv.vip_port)
    cases = {
        "superscript two": b"POST /obj/1k HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\nab",
        "arabic-indic digit": "POST /obj/1k HTTP/1.1\r\nHost: x\r\nContent-Length: \u0663\r\n\r\nabc".encode(),
        "two lengths": b"POST /obj/1k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "length and chunked": (b"POST /obj/1k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    }
    with in_netns(client(inv)):
        got = {name: exchange(addr, [data], [False], timeout=30) for name, data in cases.items()}
    for name, ans in got.items():
        assert ans.statuses == (400,), f"{name}: {ans.brief()}"
    assert_alive_and_serving(inv, pid)


def test_oversized_and_endless_heads_are_refused_and_bounded(inv):
    """A 64 KiB head gets 431; 30 slowloris connections (one header line a second, never finished)
    are each answered 408 and closed -- the head's timeout runs from its first byte, not its last --
    while the legitimate client is served byte-exact; afterwards no flow is left of them."""
    pid = frontend_pid(inv)
    addr = (str(inv.vip), inv.vip_port)
    big = b"GET /obj/1k HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 65536 + b"\r\n\r\n"
    with in_netns(client(inv)):
        ans = exchange(addr, [big], [False], timeout=30)
    assert ans.statuses == (431,), ans.brief()
    before = frontend_stats_after(inv)
    slow = play(inv, "slowloris", "--connections", "30", "--interval", "1", "--count", "100000",
                "--duration", "300")
    served = 0
    while slow.poll() is None and served < 200:
        assert curl(inv, "/obj/1k") == ONE_K
        served += 1
    rep = report(slow)
    ex = rep["extra"]
    assert ex["opened"] == 30 and ex["still_open"] == 0, ex
    assert ex["closed_by_server"] + ex["reset_by_server"] == 30, ex
    assert sum(n for status, n in ex["answers"].items() if status.startswith("HTTP/1.1 408")) == 30, ex
    after = poll_until(lambda: frontend_stats_after(inv), lambda s: s["flows"] == 0,
                       "the front-end to hold no flow of the slowloris connections (or any other)")
    assert delta(after, before, "timeout_request") == 30, (before, after)
    log(f"slowloris: {served} legitimate requests served while it ran")
    assert_alive_and_serving(inv, pid)


# ---------------------------------------------------------------------------------------------
# Floods


def test_syn_and_half_open_floods_leave_the_legitimate_client_served(inv):
    """20,000 spoofed SYNs and 8,000 spoofed half-open requests (data with no valid cookie, from
    distinct endpoints: more than the front-end remembers, `max_unknown` 4096) while the legitimate
    client fetches: every fetch byte-exact, no flow opened by the floods, the unknown-endpoint
    memory full and recycling (its bound held), the daemon alive."""
    pid = frontend_pid(inv)
    before = frontend_stats_after(inv)
    syn = play(inv, "syn-flood", "--count", "20000", "--rate", "4000", "--duration", "120", "--seed", "11")
    half = play(inv, "bad-cookie-data", "--count", "8000", "--rate", "1600", "--duration", "120", "--seed", "12")
    served = 0
    while (syn.poll() is None or half.poll() is None) and served < 500:
        assert curl(inv, "/obj/1k", "/obj/64k") == ONE_K + object_bytes("64k", 65536)
        served += 1
    syn_rep, half_rep = report(syn), report(half)
    assert syn_rep["sent"] == 20000 and half_rep["sent"] == 8000, (syn_rep, half_rep)
    after = frontend_stats_after(inv)
    log(f"floods: {served} legitimate fetches while they ran; front-end {after}")
    assert served >= 1
    # Only the legitimate fetches opened flows (one per curl) and made requests (two per curl).
    assert delta(after, before, "flows_opened") == served, (before, after)
    assert delta(after, before, "requests") == 2 * served, (before, after)
    # The half-open requests reached the front-end and were refused; its memory of them stayed bounded.
    assert delta(after, before, "bad_cookie") > 4096, (before, after)
    added = delta(after, before, "unknown_first_seen")
    assert added > 4096 and delta(after, before, "unknown_forgotten_full") >= added - 4096, (before, after)
    assert_alive_and_serving(inv, pid)
    # The SYNs were all answered by the switch: none reached the front-end.
    assert delta(after, before, "client_syn_ignored") == 0, (before, after)



# ---------------------------------------------------------------------------------------------
# The attack suite (last: the runner redeploys each system; the fixture undeploys at the end)


def test_attack_suite_reports_goodput_share_per_attack_for_miresga_and_haproxy(inv, tmp_path):
    """A short `attacks` suite through the runner: every attack cell ran with its attack (the
    attacker's report collected), and the report's "Under attack" section gives both systems' share
    of the calm cells' throughput per attack."""
    import yaml

    from analysis import load
    from harness import runner

    suite_file = tmp_path / "attack-it.yaml"
    attacks = [{"name": "syn-flood", "kind": "syn-flood", "rate": 2000},
               {"name": "half-open", "kind": "bad-cookie-data", "rate": 500},
               {"name": "rst-sweep", "kind": "rst-sweep", "rate": 2000},
               {"name": "slowloris", "kind": "slowloris", "connections": 20, "interval_s": 1}]
    suite_file.write_text(yaml.safe_dump({
        "name": "attack-it", "systems": ["miresga", "haproxy"], "verify": "full",
        "workloads": [{"name": "1k-close", "objects": {"1k": 1}, "connection": "close"}],
        "attacks": attacks, "load": {"users": 4, "spawn_rate": 10, "warmup_s": 2, "duration_s": 3}}))
    suite = runner.load_suite(str(suite_file), inv)
    run_dir = runner.run_suite(inv, suite, keep_testbed=True, results=tmp_path / "results")
    for c in suite.cells:
        d = run_dir / "cells" / c.cell_id
        cell = json.loads((d / "cell.json").read_text())
        assert cell["status"] == "ok", (c.cell_id, cell.get("error"))
        if c.attack is None:
            assert "attack" not in cell and not (d / "attack.json").exists()
            continue
        rep = json.loads((d / "attack.json").read_text())
        assert cell["attack"]["kind"] == c.attack.kind and rep["kind"] == c.attack.kind
        assert rep["sent"] > 0 and cell["attack_report"]["sent"] == rep["sent"], rep
        if c.attack.kind == "slowloris":
            assert rep["extra"]["opened"] >= 20, rep
    df = load.cells(run_dir)
    assert len(df) == 10 and (df["rps"] > 0).all()
    assert set(df["attack"]) == {"", "syn-flood", "half-open", "rst-sweep", "slowloris"}
    assert set(df["base_workload"]) == {"1k-close"}
    report = (run_dir / "report.md").read_text()
    section = report.split("## Under attack")[1].split("\n## ")[0]
    for system in ("miresga", "haproxy"):
        for a in ("none", "syn-flood", "half-open", "rst-sweep", "slowloris"):
            row = next(line for line in section.splitlines() if line.startswith(f"| 1k-close | {system} | {a} |"))
            cols = [x.strip() for x in row.strip("|").split("|")]
            assert cols[3] == "1/1" and float(cols[4].replace(",", "")) > 0, row
            if a != "none":
                assert float(cols[6]) > 0 and float(cols[10].replace(",", "")) > 0, row
