"""The STAND-IN bf_switchd (`install/bin/bf_switchd` of the stand-in SDE): NOT THE SDE'S bf_switchd.

It takes the flags `fab deploy` gives bf_switchd built with P4Runtime (`--install-dir`, `--conf-file`,
`--skip-p4`, `--p4rt-server=ADDR:PORT`, `--background`) and serves P4Runtime there as bf_switchd's
PI server does: **no TLS** (the control plane connects with --switch-insecure), a pushed
p4_device_config in PI's packing (`python -m system.switch.bfpipeline pack --format pi`) or a
BfPipelineConfig, checked and mapped onto the emulated pipeline of the same name like the stand-in
stratum_bf does (stratum.py).

Ports: bf_switchd has no port list of its own; the operator adds ports after the pipeline push with
bfshell (`$SDE/run_bfshell.sh -f ports.ucli`: port-add, an-set, port-enb; the stand-in's
`run_bfshell.sh`, bfshell.py). The stand-in's "platform" needs the interface of each front-panel port:
it takes them from the chassis config `fab deploy` writes beside the bfshell script
(`tofino/chassis_config.pb.txt` of the working directory, PLATFORM_FILE; front-panel port N = device
port N = that port's `name`). The eBPF pipeline is attached to all of them when it loads; a port's
link comes up at its `port-enb`.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from system.switch.sde_standin import stratum

log = logging.getLogger("sde-standin.bf_switchd")
PLATFORM_FILE = Path("tofino/chassis_config.pb.txt")     # relative to the daemon's working directory
STATE_DIR = Path("tofino/bf_switchd")


def parse_flags(argv: list[str]) -> dict[str, str]:
    known = {"install-dir", "conf-file", "skip-p4", "p4rt-server", "background", "status-port", "kernel-pkt"}
    flags: dict[str, str] = {}
    for a in argv:
        m = re.fullmatch(r"--([a-z0-9-]+)(?:=(.*))?", a)
        if not m or m.group(1) not in known:
            raise SystemExit(f"bf_switchd (stand-in): unknown argument {a!r} (known: --{', --'.join(sorted(known))})")
        flags[m.group(1)] = m.group(2) if m.group(2) is not None else "true"
    return flags


def platform_ports(path: Path = PLATFORM_FILE) -> dict[int, str]:
    """device port -> interface: the stand-in platform's port map (module doc)."""
    return stratum.chassis_ports(path.read_text())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--version", "-version"):
        print("bf_switchd STAND-IN (Miresga's stand-in SDE; the emulated switch behind P4Runtime)")
        return 0
    flags = parse_flags(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.warning("THIS IS A STAND-IN FOR bf_switchd (Miresga's local testbed), not the SDE: results are emulated")
    for need in ("install-dir", "conf-file", "p4rt-server"):
        if need not in flags:
            print(f"bf_switchd (stand-in): --{need} is required", file=sys.stderr)
            return 2
    if not Path(flags["conf-file"]).is_file():
        print(f"bf_switchd (stand-in): --conf-file {flags['conf-file']}: no such file", file=sys.stderr)
        return 2
    if "skip-p4" not in flags:
        print("bf_switchd (stand-in): only --skip-p4 is supported (the pipeline comes over P4Runtime)",
              file=sys.stderr)
        return 2
    try:
        ports = platform_ports()
    except (OSError, ValueError) as e:
        print(f"bf_switchd (stand-in): the stand-in platform's port map {PLATFORM_FILE}: {e}", file=sys.stderr)
        return 2
    for port, dev in ports.items():
        if stratum._ip("link", "show", dev, check=False).returncode != 0:
            print(f"bf_switchd (stand-in): port {port}: no interface {dev!r} on this host", file=sys.stderr)
            return 1
        stratum._ip("link", "set", dev, "up")
    return stratum.serve("bf_switchd", ports, flags["p4rt-server"], STATE_DIR, None)


if __name__ == "__main__":
    sys.exit(main())
