"""harness/wrk.py: wrk's command line, its output parsed (captured text with every unit), and a real
wrk run against a loopback nginx whose access log counts the same requests."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness import wrk
from workloads.catalog import write_catalog
from workloads.testserver import LoopbackNginx

CAPTURED = """Running 5s test @ http://198.18.0.100:80/obj/1k
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  310.11us   1.20s    90.12%
    Req/Sec    15.80k     1.02k   17.01k    80.00%
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    1.25ms
     99%    2.00s
  78631 requests in 5.00s, 88.18MB read
  Socket errors: connect 0, read 3, write 0, timeout 7
  Non-2xx or 3xx responses: 5
Requests/sec:  15724.55
Transfer/sec:     17.63MB
"""


def test_parse_captured_output() -> None:
    got = wrk.parse(CAPTURED)
    assert got == {"latency_us": {"p50": 812.0, "p75": 1100.0, "p90": 1250.0, "p99": 2_000_000.0},
                   "errors": {"connect": 0, "read": 3, "write": 0, "timeout": 7}, "non_2xx_3xx": 5,
                   "requests": 78631, "seconds": 5.0, "bytes_read": round(88.18 * 1024**2), "rps": 15724.55}
    assert wrk.duration_us("1.00m") == 60e6
    with pytest.raises(ValueError, match="no wrk summary"):
        wrk.parse("unable to connect to 198.18.0.100:80 Connection refused\n")
    with pytest.raises(ValueError, match="not a wrk duration"):
        wrk.duration_us("fast")


def test_command() -> None:
    assert wrk.command("http://198.18.0.100:80/obj/1k", 16, 6, close=True) == [
        "wrk", "-t", "1", "-c", "16", "-d", "6s", "--timeout", "10s", "--latency", "-H", "Connection: close",
        "http://198.18.0.100:80/obj/1k"]
    assert "-H" not in wrk.command("http://x/obj/1k", 2, 0.4, close=False)
    with pytest.raises(ValueError):
        wrk.command("http://x/", 0, 5, close=True)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (scripts/setup.sh installs it)")
def test_real_wrk_against_loopback_nginx(tmp_path) -> None:
    write_catalog(tmp_path / "obj", {"1k": 1024})
    with LoopbackNginx(tmp_path, access_log=True) as nginx:
        cmd = wrk.command(f"http://127.0.0.1:{nginx.port}/obj/1k", 4, 1, close=True)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
        got = wrk.parse(out)
        logged = nginx.access_log_path.read_text().splitlines()
    # nginx logged every request wrk counted, plus at most one in flight per connection at the end
    assert got["requests"] > 0 and got["requests"] <= len(logged) <= got["requests"] + 4
    assert all(line.split()[3] == "200" and line.split()[4] == "1024" for line in logged)
    assert got["errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0} and got["non_2xx_3xx"] == 0
    assert got["bytes_read"] > got["requests"] * 1024 * 0.99   # bodies plus headers (wrk rounds to 0.01 MB)
    assert set(got["latency_us"]) == {"p50", "p75", "p90", "p99"}
