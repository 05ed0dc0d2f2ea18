"""Run a Miresga front-end: `python -m system.frontend --netns NS --dev IF --vip A --backend ... ...`.

Back-ends are given as NAME=IP:PORT:INDEX:MAC (INDEX: the switch's backend_by_index entry; MAC: the
next hop of frames to it). Cookie secrets come from the control plane (--controlplane; request
`cookie_secrets`, fetched at start and every --secrets-interval seconds, and again when a cookie
matches neither secret), or, for tests, from --secret/--previous-secret or a --secrets-file (JSON
{"current": n, "previous": n}, re-read every second).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from system import rules
from system.credentials import CredentialError, Credentials
from system.frontend.balancer import Backend, Balancer
from system.frontend.cpsecrets import SecretsFetcher, SecretsUnavailable
from system.frontend.daemon import Daemon
from system.frontend.engine import Config, FrontEnd
from system.frontend.fastpath import FastPath
from system.frontend.offload import OffloadClient
from system.frontend.syncookie import FIRST_SLOT, Secrets


def parse_backend(text: str) -> Backend:
    name, _, rest = text.partition("=")
    ip, port, index, mac = rest.split(":", 3)
    return Backend(name=name, ip=ip, port=int(port), index=int(index), mac=mac)


def read_secrets(path: Path) -> tuple[int, int | None, int]:
    """(current key, previous key, slot) of a JSON {current, previous, slot} (slot default FIRST_SLOT)."""
    data = json.loads(path.read_text())
    return (int(data["current"]), (int(data["previous"]) if data.get("previous") is not None else None),
            int(data.get("slot", FIRST_SLOT)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m system.frontend", description=__doc__.splitlines()[0])
    ap.add_argument("--netns", help="network namespace of the data interface (default: current)")
    ap.add_argument("--dev", required=True, help="data interface (TC ingress program goes here)")
    ap.add_argument("--punt-dev", default="mfpunt", help="veth created for frames handed to user space")
    ap.add_argument("--own-mac", required=True, help="MAC of --dev")
    ap.add_argument("--client-next-hop-mac", required=True, help="destination MAC of frames to clients")
    ap.add_argument("--vip", required=True)
    ap.add_argument("--vip-port", type=int, default=80)
    ap.add_argument("--backend", action="append", type=parse_backend, required=True, metavar="NAME=IP:PORT:IDX:MAC")
    ap.add_argument("--rules", type=Path, default=Path("system/rules/default.yaml"))
    ap.add_argument("--secret", type=lambda v: int(v, 0), help="tests: the cookie key of the current slot")
    ap.add_argument("--previous-secret", type=lambda v: int(v, 0), help="tests: the previous slot's key")
    ap.add_argument("--slot", type=int, default=FIRST_SLOT, help="tests: the current slot (with --secret)")
    ap.add_argument("--secrets-file", type=Path,
                    help="tests: JSON {current, previous, slot}, re-read every second")
    ap.add_argument("--controlplane", help="HOST:PORT of the switch control plane (offload requests and, "
                    "unless --secret/--secrets-file is given, the cookie secrets)")
    ap.add_argument("--credentials", type=Path,
                    help="directory of this front-end's TLS identity for the control plane (ca.crt, identity.crt, "
                    "identity.key; written by fab deploy); without it the connection is plain TCP, which only "
                    "a control plane started with --insecure accepts")
    ap.add_argument("--secrets-interval", type=float, default=1.0,
                    help="seconds between cookie secret fetches from the control plane")
    ap.add_argument("--secrets-wait", type=float, default=30.0,
                    help="how long to wait at start for the control plane's cookie secrets")
    ap.add_argument("--fastopen", action="store_true", help="send the request inside the back-end SYN")
    ap.add_argument("--pin-dir", type=Path, default=Path("/sys/fs/bpf/miresga-frontend"))
    ap.add_argument("--stats-file", type=Path)
    ap.add_argument("--idle-timeout", type=float, default=120.0,
                    help="seconds without a packet after which a connection is reset; an offloaded one only when "
                    "the switch's counters (asked of the control plane) saw no packet of it either")
    ap.add_argument("--offloaded-idle-timeout", type=float, default=600.0,
                    help="an offloaded connection's idle timeout while the control plane cannot say whether the "
                    "switch still sees its packets (unreachable, no answer, no counter reads)")
    args = ap.parse_args(argv)

    cp_address = None
    if args.controlplane:
        host, _, port = args.controlplane.rpartition(":")
        if not port.isdigit():
            ap.error(f"--controlplane {args.controlplane!r} is not HOST:PORT")
        cp_address = (host, int(port))
    creds = None
    if args.credentials is not None:
        try:
            creds = Credentials.load(args.credentials)
        except CredentialError as e:
            ap.error(str(e))
    fetcher = None
    if args.secrets_file:
        secrets = Secrets(*read_secrets(args.secrets_file))
    elif args.secret is not None:
        secrets = Secrets(args.secret, args.previous_secret, args.slot)
    elif cp_address is not None:
        fetcher = SecretsFetcher(cp_address, name=f"frontend-{args.dev}", interval=args.secrets_interval,
                                 credentials=creds)
        try:
            secrets = fetcher.wait_first(args.secrets_wait)
        except SecretsUnavailable as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    else:
        ap.error("give --controlplane (cookie secrets from the control plane), --secret or --secrets-file")
    backends = {b.name: b for b in args.backend}
    ruleset = rules.load(args.rules, tuple(backends))
    offload = None
    if cp_address is not None:
        offload = OffloadClient(cp_address, name=f"frontend-{args.dev}", credentials=creds)
    fastpath = FastPath(args.netns, args.dev, args.punt_dev, args.pin_dir)
    fastpath.start(args.vip, args.vip_port)
    try:
        for b in backends.values():
            fastpath.add_backend(b.ip, b.port, b.index)
        cfg = Config(vip=args.vip, vip_port=args.vip_port, own_mac=args.own_mac,
                     client_next_hop_mac=args.client_next_hop_mac, fastopen=args.fastopen,
                     idle_timeout=args.idle_timeout, offloaded_idle_timeout=args.offloaded_idle_timeout)
        engine = FrontEnd(cfg, Balancer(ruleset, backends), secrets, fastpath=fastpath, offload=offload,
                          activity=offload)
        daemon = Daemon(engine, fastpath, stats_file=args.stats_file, offload=offload, secrets_source=fetcher)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if args.secrets_file:
            def reread() -> None:
                while not stop.wait(1.0):
                    try:
                        secrets.set(*read_secrets(args.secrets_file))
                    except (OSError, ValueError, KeyError):
                        engine.counters["secrets_file_errors"] += 1
            threading.Thread(target=reread, daemon=True).start()
        if fetcher is not None:
            fetcher.failures = lambda: engine.counters["bad_cookie"]
            fetcher.start()
        daemon.run(stop)
        daemon.close()
    finally:
        fastpath.stop()
        if offload is not None:
            offload.close()
        if fetcher is not None:
            fetcher.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
