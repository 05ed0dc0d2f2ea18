"""Run the switch-only baseline's slow path on the switch CPU: `python -m system.switchonly ...`.

Example (what `fab deploy --system switch-only` starts on the switch host, in the switch namespace):
    python -m system.switchonly --dev cpu0 --inventory inventory.yaml --port-map port-map.yaml \\
        --rules rules.yaml --controlplane 198.19.0.2:9600 --p4runtime 198.19.0.2:9559 \\
        --stats-file run/slowpath-stats.json --credentials credentials/slowpath

The VIP and the back-ends come from the inventory; each back-end's switch port and MACs (conn_in's
`to_backend(port, smac, dmac)`) from the port map the control plane uses. Cookie secrets and the
conn_in/conn_out writes go to the control plane; the idle timeout reads the entries' direct counters
over P4Runtime (--p4runtime; without it installed connections only time out through FIN/RST).
docs/switch-only-datapath.md is the contract; system/switchonly/README.md the overview.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from system import rules
from system.credentials import Credentials
from system.frontend.balancer import Backend, Balancer
from system.frontend.cpsecrets import SecretsFetcher, SecretsUnavailable
from system.frontend.engine import Config, FrontEnd
from system.frontend.offload import OffloadClient
from system.frontend.packets import mac_str
from system.switchonly.conntable import BackendPort, ConnTable
from system.switchonly.counters import CounterReader
from system.switchonly.daemon import SlowPath, open_cpu_socket


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def backends_from(inventory_path: str, port_map_path: str) -> tuple[str, int, dict[str, Backend],
                                                                    dict[str, BackendPort]]:
    """VIP, VIP port, back-ends (engine view) and their switch ports, from inventory and port map."""
    from harness.inventory import load as load_inventory
    from system.controlplane.static import load_port_map
    inv = load_inventory(inventory_path)
    ports = load_port_map(port_map_path)
    backends: dict[str, Backend] = {}
    where: dict[str, BackendPort] = {}
    for i, b in enumerate(inv.backends, start=1):
        hp = ports.get(b.name)
        if hp is None or b.data_address is None:
            raise ValueError(f"back-end {b.name} has no data address or no entry in {port_map_path}")
        backends[b.name] = Backend(name=b.name, ip=str(b.data_address), port=inv.vip_port, index=i, mac=hp.mac)
        where[b.name] = BackendPort(port=hp.port, smac=hp.switch_mac, dmac=hp.mac)
    if not backends:
        raise ValueError(f"inventory {inventory_path} has no back-ends")
    return str(inv.vip), inv.vip_port, backends, where


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m system.switchonly", description=__doc__.splitlines()[0])
    ap.add_argument("--netns", help="network namespace of --dev (default: the current one)")
    ap.add_argument("--dev", default="cpu0", help="the CPU port's netdev (AF_PACKET in and out)")
    ap.add_argument("--inventory", required=True, help="inventory (VIP, back-ends)")
    ap.add_argument("--port-map", required=True, help="port map YAML (host -> port, mac, switch_mac)")
    ap.add_argument("--rules", type=Path, default=Path("system/rules/default.yaml"))
    ap.add_argument("--controlplane", type=address, required=True,
                    help="HOST:PORT of the control plane (cookie secrets, conn_in/conn_out writes)")
    ap.add_argument("--p4runtime", help="HOST:PORT of the switch's P4Runtime server (direct counter reads)")
    ap.add_argument("--counter-interval", type=float, default=1.0, help="seconds between counter reads")
    ap.add_argument("--secrets-wait", type=float, default=30.0)
    ap.add_argument("--idle-timeout", type=float, default=120.0)
    ap.add_argument("--linger", type=float, default=2.0, help="seconds a closed connection keeps its entries")
    ap.add_argument("--install-timeout", type=float, default=5.0)
    ap.add_argument("--stats-file", type=Path)
    ap.add_argument("--credentials", type=Path,
                    help="directory of the slow path's TLS identity (ca.crt, identity.crt, identity.key; written "
                    "by fab deploy) for the control plane and P4Runtime; without it both are plain (tests)")
    args = ap.parse_args(argv)

    try:
        vip, vip_port, backends, ports = backends_from(args.inventory, args.port_map)
        ruleset = rules.load(args.rules, tuple(backends))
        creds = Credentials.load(args.credentials) if args.credentials else None
    except (OSError, ValueError) as e:          # CredentialError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    fetcher = SecretsFetcher(args.controlplane, name="slowpath", interval=1.0, credentials=creds)
    try:
        secrets = fetcher.wait_first(args.secrets_wait)
    except SecretsUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sock = open_cpu_socket(args.dev, args.netns)
    own_mac = mac_str(sock.getsockname()[4])
    client = OffloadClient(args.controlplane, name="slowpath", credentials=creds)
    box: dict[str, SlowPath] = {}
    table = ConnTable(client, vip, vip_port, ports, wake=lambda: box["sp"].wake() if "sp" in box else None)
    cfg = Config(vip=vip, vip_port=vip_port, own_mac=own_mac, client_next_hop_mac=own_mac, fastopen=False,
                 idle_timeout=args.idle_timeout, linger=args.linger, learn_delta=True, pin_backend=True,
                 install_timeout=args.install_timeout)
    engine = FrontEnd(cfg, Balancer(ruleset, backends), secrets, conn_table=table)
    reader = (CounterReader(args.p4runtime, table.set_activity, args.counter_interval, credentials=creds)
              if args.p4runtime else None)
    extra = {"controlplane_client": client, "cookie_secrets": fetcher}
    if reader is not None:
        extra["counter_reads"] = reader
    sp = box["sp"] = SlowPath(engine, table, sock, stats_file=args.stats_file, extra_stats=extra)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fetcher.failures = lambda: engine.counters["bad_cookie"]
    fetcher.start()
    if reader is not None:
        reader.start()
    print(f"slow path on {args.dev} ({own_mac}): VIP {vip}:{vip_port}, back-ends "
          f"{', '.join(f'{b.name}={b.ip}:{b.port}@{ports[b.name].port}' for b in backends.values())}", flush=True)
    try:
        sp.run(stop)
    finally:
        sp.close()
        client.close()
        fetcher.close()
        if reader is not None:
            reader.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
