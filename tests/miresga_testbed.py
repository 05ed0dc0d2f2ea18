"""Helpers of the Miresga end-to-end tests (tests/test_miresga_e2e.py): a testbed with Miresga
deployed, curl and Locust inside the client's namespace, the components' stats and tables, and the
check that nothing is left behind.

Not a test module: pytest imports it from the tests' directory (no conftest, no fixtures here).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness import deploy, inventory, testbed
from harness.inventory import CatalogObject, Inventory
from harness.remote import Remote
from system.testing.poll import HANG_GUARD_S, poll_until  # noqa: F401 (the tests import them from here)
from workloads.catalog import object_bytes

DATA = Path(__file__).parent / "data"


def log(msg: str) -> None:
    print(f"[e2e] {msg}", flush=True)


def leftovers(inv: Inventory) -> dict[str, list[str]]:
    """What of the testbed still exists (namespaces, interfaces, pins, pid files): {} when nothing."""
    ns = [n for n in testbed.namespaces() if n in {testbed.netns(h) for h in inv.hosts}]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    ifs = [name for name in [testbed.mgmt_bridge(inv)] + [f"mm-{h.name}" for h in inv.hosts]
           if f" {name}:" in links or f" {name}@" in links]
    pins = [p.name for p in Path("/sys/fs/bpf").glob(f"{testbed.PREFIX}*")
            if p.name.startswith(tuple(testbed.netns(h) for h in inv.hosts))]
    pid_dir = testbed.state_dir(inv) / "pids"
    sshd = list(pid_dir.glob("*")) if pid_dir.is_dir() else []
    return {k: v for k, v in {"namespaces": ns, "interfaces": ifs, "pins": pins, "pidfiles": sshd}.items() if v}


@contextmanager
def miresga_testbed(inv_file: str) -> Iterator[Inventory]:
    """The testbed of `inv_file` (tests/data) up with Miresga deployed; afterwards undeployed, down,
    and checked to have left nothing."""
    inv = inventory.load(DATA / inv_file)
    testbed.down(inv)             # a crashed earlier run must not matter
    testbed.up(inv)
    try:
        deploy.deploy(inv, "miresga")
        yield inv
        deploy.undeploy(inv)
    finally:
        testbed.down(inv)
    assert leftovers(inv) == {}


# ---------------------------------------------------------------------------------------------
# Traffic from the client's namespace


def client_ns(inv: Inventory) -> str:
    return testbed.netns(inv.clients[0])


def vip_url(inv: Inventory, path: str) -> str:
    return f"http://{inv.vip}:{inv.vip_port}{path}"


def curl(inv: Inventory, *paths: str, timeout: float = 60) -> bytes:
    """Bodies of `paths`, fetched by one curl (one keep-alive connection) in the client's namespace."""
    p = subprocess.run(["ip", "netns", "exec", client_ns(inv), "curl", "-sS", "-f", "--max-time", str(timeout),
                        *(vip_url(inv, x) for x in paths)], capture_output=True, timeout=timeout + 10)
    assert p.returncode == 0, f"curl {paths} failed ({p.returncode}): {p.stderr.decode(errors='replace')}"
    return p.stdout


def expected(objs: Sequence[CatalogObject]) -> bytes:
    return b"".join(object_bytes(o.name, o.size) for o in objs)


def established_to_vip(inv: Inventory) -> int:
    """TCP connections to the VIP established in the client's namespace now."""
    out = subprocess.run(["ip", "netns", "exec", client_ns(inv), "ss", "-Htn", "state", "established",
                          "dst", str(inv.vip)], capture_output=True, text=True).stdout
    return len(out.splitlines())


def curl_parallel(inv: Inventory, objs: Sequence[CatalogObject], out_dir: Path, *, limit_rate: str | None = None,
                  timeout: float = 120) -> int:
    """Fetches every object of `objs` on its own connection, all at once (curl --parallel), into
    out_dir/<i>; checks every body byte for byte; returns the most connections seen established at
    the same time (sampled while curl ran)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["curl", "-sS", "-f", "-Z", "--parallel-immediate", "--parallel-max", str(len(objs)),
            "--max-time", str(timeout)]
    if limit_rate:
        args += ["--limit-rate", limit_rate]
    for i, o in enumerate(objs):
        args += ["-o", str(out_dir / str(i)), vip_url(inv, o.path)]
    proc = subprocess.Popen(["ip", "netns", "exec", client_ns(inv), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    peak = 0
    deadline = time.monotonic() + timeout + 10
    while proc.poll() is None and time.monotonic() < deadline:
        peak = max(peak, established_to_vip(inv))
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, f"curl --parallel failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}"
    for i, o in enumerate(objs):
        got = (out_dir / str(i)).read_bytes()
        assert got == object_bytes(o.name, o.size), f"transfer {i} ({o.name}): {len(got)} bytes, not the object"
    return peak


# ---------------------------------------------------------------------------------------------
# Stats and tables of the components


def fresh_json(inv: Inventory, host: str, rel: str, since: float | None = None,
               until: Callable[[dict], bool] = lambda _: True) -> dict:
    """The JSON file `rel` (under the host's workdir) as a daemon wrote it after `since` (default: now),
    the first such that `until` holds. The daemons rewrite their stats files periodically by rename, so
    the file's modification time is the time of its content: poll for a newer one instead of sleeping
    a period and hoping."""
    since = time.time() if since is None else since

    def read() -> tuple[float, dict]:
        mtime, _, body = r.run(f"stat -c %.9Y {r.workdir}/{rel} && cat {r.workdir}/{rel}").partition("\n")
        return float(mtime), json.loads(body)

    with Remote(inv, inv.host(host)) as r:
        return poll_until(read, lambda got: got[0] > since and until(got[1]),
                          f"{host}: {rel} not rewritten as expected (daemon stuck?)")[1]


def frontend_stats(inv: Inventory, host: str | None = None) -> dict[str, int]:
    """The engine counters in a front-end's stats file (written every second)."""
    with Remote(inv, inv.host(host) if host else inv.frontends[0]) as r:
        return json.loads(r.run(f"cat {r.workdir}/run/frontend-stats.json"))["engine"]


def frontend_stats_after(inv: Inventory, host: str | None = None) -> dict[str, int]:
    """The engine counters as the front-end wrote them after this call: they count everything done
    before it."""
    return fresh_json(inv, host or inv.frontends[0].name, "run/frontend-stats.json")["engine"]


def tcp_timeouts(inv: Inventory, host: str) -> int:
    """The host's kernel count of TCP retransmission timeouts (TcpExt TCPTimeouts of its namespace)."""
    text = subprocess.run(["ip", "netns", "exec", testbed.netns(inv.host(host)), "cat", "/proc/net/netstat"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    for names, values in zip(text[::2], text[1::2], strict=True):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["TCPTimeouts"])
    raise AssertionError(f"{host}: no TcpExt line in /proc/net/netstat")


def agent_pin(inv: Inventory, host: str) -> Path:
    return Path(f"/sys/fs/bpf/{testbed.netns(inv.host(host))}-agent")


def agent_flows(inv: Inventory, host: str) -> dict:
    from system.agent.tables import FlowTable
    from system.bpf.syscall import Map
    with Map.pinned(next(agent_pin(inv, host).rglob("flows"))) as m:
        return FlowTable(m).entries()


def agent_counters(inv: Inventory, host: str) -> dict[str, int]:
    from system.agent.tables import read_counters
    from system.bpf.syscall import Map
    with Map.pinned(next(agent_pin(inv, host).rglob("counters"))) as m:
        return read_counters(m)


def switch_stats(inv: Inventory) -> dict:
    with Remote(inv, inv.switch_host) as r:
        return json.loads(r.run(f"cat {r.workdir}/run/controlplane-stats.json"))


def offload_occupancy(inv: Inventory) -> int:
    return switch_stats(inv)["occupancy"].get("offload", 0)


def what_is_left(inv: Inventory) -> dict[str, object]:
    """Per-connection state still held anywhere: agent entries, switch offload entries, front-end flows."""
    left: dict[str, object] = {}
    for b in inv.backends:
        flows = agent_flows(inv, b.name)
        if flows:
            left[f"agent:{b.name}"] = len(flows)
    occ = offload_occupancy(inv)
    if occ:
        left["switch:offload"] = occ
    for f in inv.frontends:
        n = frontend_stats(inv, f.name).get("flows", 0)
        if n:
            left[f"frontend:{f.name}"] = n
    return left


def wait_until_nothing_is_left(inv: Inventory, timeout: float = 30) -> dict[str, object]:
    """Waits (linger, timeouts, the stats files' period) until no per-connection state is left;
    returns what is still there at the end ({} on success)."""
    deadline = time.monotonic() + timeout
    left = what_is_left(inv)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = what_is_left(inv)
    return left


# ---------------------------------------------------------------------------------------------
# Locust in the client's namespace


def run_locust(inv: Inventory, job_file: Path, out_dir: Path, *, users: int, run_time_s: float,
               spawn_rate: float | None = None) -> tuple[list[dict], object]:
    """A headless Locust run (master + one worker) inside the client's namespace: the processes
    are started from a thread that has entered the namespace, so they live there. Returns the raw
    rows (workloads/raw.py) and Locust's aggregated stats row."""
    from harness.locust_runner import LocalLocust
    from system.testing.netns import in_netns
    from workloads.raw import read_raw_dir

    run = LocalLocust(job_file=job_file, out_dir=out_dir, users=users, spawn_rate=spawn_rate or users,
                      run_time_s=run_time_s, workers=1, host_label=inv.clients[0].name, stop_timeout_s=10)
    with in_netns(client_ns(inv)):
        run.start()
    try:
        code = run.wait(timeout_s=run_time_s + 60)
    finally:
        run.stop()
    assert code == 0, f"Locust exited with {code}; see {run.locust_dir}"
    return read_raw_dir(run.raw_dir), run.stats()
