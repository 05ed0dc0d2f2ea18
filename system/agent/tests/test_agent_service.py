"""`python -m system.agent` as a service: attaches, reports counters periodically, and on SIGTERM
detaches and unpins everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_testing import require_root

from system.agent.pair import TcpPair
from system.bpf.loader import BPFFS, tc_filters

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[3]


def _read_json_line(proc: subprocess.Popen, want: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        msg = json.loads(line)
        if msg.get("event") == want:
            return msg
    raise AssertionError(f"no {want!r} line from the agent service")


def test_service_runs_reports_and_cleans_up_on_sigterm():
    require_root()
    pair = TcpPair(prefix="mrse-svc", ifprefix="mev", subnet=62, pin_root=BPFFS / "mrse-svc-pair",
                   with_agent=False).up()
    pin = BPFFS / "mrse-svc-agent"
    proc = subprocess.Popen(
        [sys.executable, "-m", "system.agent", "--netns", pair.server_ns, "--interface",
         pair.server_dev, "--pin-dir", str(pin), "--interval", "0.3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        attached = _read_json_line(proc, "attached")
        assert len(attached["object_sha256"]) == 64
        assert "agent_ingress" in tc_filters(pair.server_ns, pair.server_dev, "ingress")
        assert (pin / "maps" / "flows").exists()
        transfer = pair.transfer(1 << 20)
        assert transfer.ok, transfer
        assert transfer.handshake.synack_seq == pair.client_s
        report = _read_json_line(proc, "periodic")
        while report["counters"]["removed_closed"] < 1:
            report = _read_json_line(proc, "periodic")
        assert report["counters"]["in_syn_learned"] == 1
        assert report["prog_stats"]["agent_egress"]["run_cnt"] >= report["counters"]["out_packets"] > 0
        proc.send_signal(signal.SIGTERM)
        last = _read_json_line(proc, "exit")
        assert last["counters"]["out_synack_learned"] == 1
        _read_json_line(proc, "unloaded")
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
        try:
            assert not pin.exists()
            assert tc_filters(pair.server_ns, pair.server_dev, "ingress") == ""
            assert tc_filters(pair.server_ns, pair.server_dev, "egress") == ""
        finally:
            pair.down()
