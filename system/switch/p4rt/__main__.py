"""`python -m system.switch.p4rt`: the P4Runtime server of the emulated switch.

Example (deployment, inside the switch namespace):
    python -m system.switch.p4rt --address 198.19.0.2:9559 --ports 1=sw-client1,2=sw-fe1 \\
        --profile system/switch/profiles/tofino1.yaml --pin-dir /sys/fs/bpf/mrsg-switch --device-id 1 \\
        --credentials /var/lib/miresga/local/switch/credentials/p4rt

`--netns NS` names the namespace holding the switch ports (the target attaches its programs there);
the gRPC socket is bound in the namespace the process runs in. `--credentials DIR` (system/credentials.py:
ca.crt, identity.crt, identity.key; written by `fab deploy`) serves gRPC over TLS and admits only
clients with a certificate of the same deployment CA; without it the server refuses to start unless
`--insecure` (tests) is given. SIGTERM/SIGINT stop the server and
unload the pipeline (programs detached, pins removed).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from system.switch.profiles import ProfileError, load_profile


def parse_ports(text: str) -> dict[int, str]:
    ports: dict[int, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        num, sep, ifname = item.partition("=")
        if not sep or not num.strip().isdigit() or not ifname.strip():
            raise argparse.ArgumentTypeError(f"--ports: {item!r} is not PORT=INTERFACE")
        n = int(num)
        if n < 1 or n in ports:
            raise argparse.ArgumentTypeError(f"--ports: port {n} is duplicated or not >= 1")
        ports[n] = ifname.strip()
    if not ports:
        raise argparse.ArgumentTypeError("--ports: at least one PORT=INTERFACE")
    return ports


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m system.switch.p4rt", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", default="127.0.0.1:9559", help="gRPC listen address HOST:PORT")
    ap.add_argument("--netns", default=None, help="namespace of the switch ports (default: this one)")
    ap.add_argument("--ports", required=True, type=parse_ports, help="P4 port map: 1=if1,2=if2,...")
    ap.add_argument("--profile", default=None, help="switch profile name or path (default tofino1)")
    ap.add_argument("--pin-dir", required=True, type=Path, help="BPF pin directory of the target")
    ap.add_argument("--device-id", type=int, default=1)
    ap.add_argument("--stats-file", type=Path, default=None, help="JSON file of the server's counters")
    ap.add_argument("--credentials", type=Path, default=None,
                    help="directory of this server's TLS identity (ca.crt, identity.crt, identity.key)")
    ap.add_argument("--insecure", action="store_true",
                    help="serve without TLS and client authentication (tests only)")
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        profile = load_profile(args.profile)
    except ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from system.credentials import CredentialError, Credentials
    from system.switch.p4rt.device import Device
    from system.switch.p4rt.server import P4RuntimeServer

    if (args.credentials is None) == (not args.insecure):
        print("error: give --credentials DIR (TLS with client certificates) or --insecure (tests only), "
              "not both", file=sys.stderr)
        return 2
    try:
        creds = Credentials.load(args.credentials) if args.credentials else None
    except CredentialError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    device = Device(args.netns, args.ports, args.pin_dir, profile, device_id=args.device_id)
    try:
        server = P4RuntimeServer(device, args.address, stats_file=args.stats_file, credentials=creds)
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start()
    print(f"listening on {server.address}", flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
