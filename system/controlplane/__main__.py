"""`python -m system.controlplane`: the switch control plane daemon.

    python -m system.controlplane --inventory harness/inventories/local.yaml \\
        --switch 198.19.0.2:9559 --listen 198.19.0.2:9600 --pipeline forwarding \\
        --port-map /var/lib/miresga/local/switch/ports.yaml --stats-file cp-stats.json \\
        --credentials /var/lib/miresga/local/switch/credentials/controlplane

Connects to the switch as primary (p4runtime-shell), sets the pipeline (built here with
system.switch.package.build_package, P4Info from p4src/), installs the static tables derived from the
inventory and the port map, and serves front-ends (protocol: docs/controlplane-protocol.md). With
pipelines miresga and switch_only it also owns the SYN cookie secret: drawn at start, set in the
switch, rotated every --cookie-rotation-s, served to front-ends and the switch-only slow path
(request `cookie_secrets`); with switch_only it sets slow_path's CPU port (inventory switch.cpu_port).
SIGTERM/SIGINT stop it (pending requests are acknowledged UNAVAILABLE).

Authentication (docs/controlplane-protocol.md): `--credentials DIR` (the control plane's identity,
written by `fab deploy`: ca.crt, identity.crt, identity.key) makes both channels mutual TLS: clients
of --listen must present a certificate of the deployment's CA (their role decides what they may do,
rights.py), and the P4Runtime channel to --switch uses the same certificate. Without it the daemon
refuses to start unless `--insecure` (tests only: plain TCP, insecure P4Runtime, every client the
operator) is given.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m system.controlplane", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inventory", default=None, help="inventory path or name (default: local)")
    ap.add_argument("--switch", required=True, help="P4Runtime server HOST:PORT")
    ap.add_argument("--listen", required=True, type=_hostport, help="front-end protocol HOST:PORT")
    ap.add_argument("--pipeline", default="forwarding")
    ap.add_argument("--port-map", required=True, type=Path,
                    help="YAML/JSON: host -> {port, mac, switch_mac} (from the testbed)")
    ap.add_argument("--p4info", type=Path, default=None,
                    help="P4Info text file (default: p4src/<pipeline>.p4info.txtpb)")
    ap.add_argument("--device-config", type=Path, default=None,
                    help="the target's device config file (a Tofino's, harness/tofino.py); default: the emulated "
                         "switch's pipeline package, built here")
    ap.add_argument("--device-id", type=int, default=1)
    ap.add_argument("--election-id", type=int, default=1, help="low 64 bits of the election id")
    ap.add_argument("--window-ms", type=float, default=0.0,
                    help="fixed wait for more requests after a batch's first (default 0: adaptive batching only)")
    ap.add_argument("--max-batch", type=int, default=256, help="max updates per Write")
    ap.add_argument("--request-timeout", type=float, default=5.0,
                    help="ack UNAVAILABLE for requests waiting longer than this for the switch")
    ap.add_argument("--cookie-rotation-s", type=float, default=60.0,
                    help="SYN cookie secret rotation period (pipelines with a syn_cookie table)")
    ap.add_argument("--activity-interval", type=float, default=1.0,
                    help="seconds between reads of the offload entries' direct counters, which answer front-ends' "
                         "`activity` requests (0: no reads; front-ends then keep offloaded connections for their "
                         "long timeout)")
    ap.add_argument("--stats-file", type=Path, default=None)
    ap.add_argument("--credentials", type=Path, default=None,
                    help="directory of the control plane's TLS identity (ca.crt, identity.crt, identity.key)")
    ap.add_argument("--insecure", action="store_true",
                    help="plain TCP for front-ends and an insecure P4Runtime channel (tests only)")
    ap.add_argument("--switch-insecure", action="store_true",
                    help="an insecure P4Runtime channel to a switch server that has no TLS (bf_switchd's PI "
                         "server); front-ends still need --credentials")
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from harness.inventory import InventoryError
    from harness.inventory import load as load_inventory
    from system.controlplane.controller import Controller, ControllerConfig
    from system.controlplane.server import FrontendServer, StatsFile
    from system.controlplane.static import PortMapError, load_port_map, static_entries
    from system.switch.package import build_package
    from system.switch.tables import load_p4info

    if (args.credentials is None) == (not args.insecure):
        print("error: give --credentials DIR (mutual TLS) or --insecure (tests only), not both", file=sys.stderr)
        return 2
    from system.credentials import CredentialError, Credentials
    try:
        creds = Credentials.load(args.credentials) if args.credentials else None
    except CredentialError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        inventory = load_inventory(args.inventory)
        static = static_entries(args.pipeline, inventory, load_port_map(args.port_map))
        if args.p4info is not None:
            from google.protobuf import text_format
            from p4.config.v1 import p4info_pb2
            p4info = text_format.Parse(args.p4info.read_text(), p4info_pb2.P4Info())
        else:
            p4info = load_p4info(args.pipeline)
        package = args.device_config.read_bytes() if args.device_config else build_package(args.pipeline)
    except (InventoryError, PortMapError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.max_batch < 1 or args.window_ms < 0 or args.cookie_rotation_s <= 0 or args.activity_interval < 0:
        print("error: --max-batch must be >= 1, --window-ms >= 0, --cookie-rotation-s > 0 and "
              "--activity-interval >= 0", file=sys.stderr)
        return 2
    cfg = ControllerConfig(switch=args.switch, p4info=p4info, device_config=package, static=static,
                           device_id=args.device_id, election_id=(0, args.election_id),
                           window_s=args.window_ms / 1e3, max_batch=args.max_batch,
                           request_timeout_s=args.request_timeout, cookie_rotation_s=args.cookie_rotation_s,
                           activity_interval_s=args.activity_interval,
                           credentials=None if args.switch_insecure else creds)
    controller = Controller(cfg)
    try:
        server = FrontendServer(args.listen, controller, args.pipeline, credentials=creds)
    except OSError as e:
        print(f"error: cannot listen on {args.listen}: {e}", file=sys.stderr)
        return 1
    stats = StatsFile(controller, args.stats_file) if args.stats_file else None
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    controller.start()
    if stats:
        stats.start()
    threading.Thread(target=server.serve_forever, name="controlplane-listen", daemon=True).start()
    print(f"listening on {server.address[0]}:{server.address[1]}", flush=True)
    done.wait()
    server.shutdown()
    server.server_close()
    controller.stop()
    if stats:
        stats.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
