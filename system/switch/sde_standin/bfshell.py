"""The STAND-IN bfshell (`$SDE/run_bfshell.sh -f SCRIPT` of the stand-in SDE): NOT THE SDE'S bfshell.

It runs the port manager part of a ucli script as `fab deploy` writes it for bf_switchd
(harness/tofino.py `ucli_script`: `ucli`, `pm`, then `port-add PORT SPEED FEC`, `an-set PORT N`,
`port-enb PORT` per port, `show`, `exit`): each port must be one of the stand-in platform's ports
(switchd.py's PLATFORM_FILE: deploy writes the script beside it, `<workdir>/tofino/`) and the stand-in
bf_switchd must have started there (its state directory `<workdir>/tofino/bf_switchd` exists);
speeds, FEC and autoneg are checked for form. The added ports are recorded in that state directory's
`ports.json`, and `show` prints one row per added port as the port manager does (`1/0  |1/0 |  1|...`),
which deploy's ports step checks.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from system.switch.sde_standin import switchd

SPEEDS = {"1G", "10G", "25G", "40G", "50G", "100G", "200G", "400G"}
FECS = {"NONE", "FC", "RS"}


def run(script: str, conf_dir: Path) -> tuple[int, str]:
    """(exit status, output) of a ucli script; `conf_dir`: the deployment's tofino/ directory."""
    out = ["bfshell STAND-IN (Miresga's stand-in SDE): port manager commands on the emulated switch"]
    platform_file = conf_dir / switchd.PLATFORM_FILE.name
    state = conf_dir / switchd.STATE_DIR.name
    try:
        platform = switchd.platform_ports(platform_file)
    except (OSError, ValueError) as e:
        return 1, f"bfshell (stand-in): the stand-in platform's port map {platform_file}: {e}"
    if not state.is_dir():
        return 1, f"bfshell (stand-in): bf_switchd has not started here (no {state})"
    ports: dict[str, dict[str, object]] = {}
    for n, raw in enumerate(script.splitlines(), 1):
        words = raw.split()
        if not words or words[0] in ("ucli", "pm", "exit", "end"):
            continue
        cmd, args = words[0], words[1:]

        def port_of(p: str, n: int = n, raw: str = raw) -> int:
            m = re.fullmatch(r"(\d+)/(\d+)", p)
            if not m or int(m.group(1)) not in platform or m.group(2) != "0":
                raise ValueError(f"line {n}: {raw.strip()!r}: no such port {p!r} on the stand-in platform "
                                 f"(front-panel ports {sorted(platform)}, channel 0)")
            return int(m.group(1))
        try:
            if cmd == "port-add" and len(args) == 3:
                fp = port_of(args[0])
                if args[1].upper() not in SPEEDS or args[2].upper() not in FECS:
                    raise ValueError(f"line {n}: {raw.strip()!r}: bad speed or FEC")
                ports[args[0]] = {"dev_port": fp, "interface": platform[fp], "speed": args[1].upper(),
                                  "fec": args[2].upper(), "autoneg": 0, "enabled": False}
            elif cmd == "an-set" and len(args) == 2 and args[0] in ports and args[1] in ("0", "1", "2"):
                ports[args[0]]["autoneg"] = int(args[1])
            elif cmd == "port-enb" and len(args) == 1 and args[0] in ports:
                ports[args[0]]["enabled"] = True
            elif cmd == "show" and not args:
                out.append("-----+----+---+----+-------+----+--+--+---+")
                out.append("PORT |MAC |D_P|P/PT|SPEED  |FEC |AN|KR|OPR|")
                for name, p in ports.items():
                    out.append(f"{name:<5}|{name:<4}|{p['dev_port']:3}|0/{p['dev_port']:<2}|{p['speed']:<7}|"
                               f"{p['fec']:<4}|{p['autoneg']:2}|NA|{'UP ' if p['enabled'] else 'DWN'}|")
            else:
                raise ValueError(f"line {n}: {raw.strip()!r}: not a command the stand-in knows (or a port "
                                 "not added yet)")
        except ValueError as e:
            return 1, "\n".join([*out, f"bfshell (stand-in): {e}"])
    (state / "ports.json").write_text(json.dumps(ports, indent=2) + "\n")
    return 0, "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "-f":
        print("usage: run_bfshell.sh -f SCRIPT (the stand-in runs scripts only)", file=sys.stderr)
        return 2
    try:
        script = Path(argv[1]).read_text()
    except OSError as e:
        print(f"bfshell (stand-in): {e}", file=sys.stderr)
        return 2
    status, text = run(script, Path(argv[1]).resolve().parent)
    print(text, file=sys.stdout if status == 0 else sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
