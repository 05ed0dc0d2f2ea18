"""Compile p4src/ with the Tofino compiler (p4c-barefoot / bf-p4c's front end) and summarise what it used.

One contract: `p4src/<prog>.p4info.txtpb` IS the compiler's P4Info for `p4src/<prog>.p4`, written by
`write_p4info` (scripts/p4-compile.sh, `fab p4-compile`) and checked by tests/test_p4_compile.py.

The compiler is found as $P4C_BAREFOOT, `p4c-barefoot` on the PATH, or ../shared/tools/p4c/p4c-barefoot
beside the repository (CI has /work/shared there). Flags: `--target tofino --arch tna` and
`--p4runtime-force-std-externs` (direct counters as standard P4Runtime `direct_counters`, the form
P4Runtime servers such as Stratum and the emulated switch's serve).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
P4SRC = REPO / "p4src"
PROGRAMS = ("forwarding", "miresga", "switch_only")
FLAGS = ("--target", "tofino", "--arch", "tna", "--p4runtime-force-std-externs")
UNSUPPORTED = "not supported by Tofino"

# Tofino 1, per pipe (the compiler's resources.json states the per-stage geometry; these totals
# are 12 x it).
STAGES = 12


class CompilerError(Exception):
    """The compiler is missing, or it refused a program."""


def find_compiler() -> Path | None:
    """$P4C_BAREFOOT, then `p4c-barefoot` on the PATH, then <repo>/../shared/tools/p4c/p4c-barefoot
    (or shared/ beside a further ancestor, for a git worktree)."""
    env = os.environ.get("P4C_BAREFOOT")
    if env:                      # set: that one or none
        return Path(env) if os.access(env, os.X_OK) else None
    on_path = shutil.which("p4c-barefoot")
    if on_path:
        return Path(on_path)
    for up in REPO.parents:      # ../shared beside the clone (CI); a worktree's is further up
        shared = up / "shared" / "tools" / "p4c" / "p4c-barefoot"
        if shared.is_file() and os.access(shared, os.X_OK):
            return shared
    return None


@dataclass
class Result:
    program: str
    out_dir: Path
    returncode: int
    output: str
    errors: int = 0
    warnings: int = 0
    unsupported: list[str] = field(default_factory=list)
    stages: int | None = None     # MAU stages the placement uses (pipe/<prog>.bfa), of STAGES

    @property
    def fits(self) -> bool:
        """Accepted, and placed in the chip's 12 stages: this back end has no assembler and places
        a table too big for Tofino 1 into stages 12, 13, ... without an error."""
        return self.ok and self.stages is not None and self.stages <= STAGES

    @property
    def p4info(self) -> Path:
        return self.out_dir / "p4info.txtpb"

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.errors == 0 and not self.unsupported


def compile_program(program: str, out_dir: Path, *, compiler: Path | None = None,
                    verbose: bool = False, defines: dict[str, int] | None = None) -> Result:
    """Compile p4src/<program>.p4 into out_dir (P4Info at out_dir/p4info.txtpb). verbose: also the
    resource logs (pipe/logs/resources.json, phv.json; slower). defines: -D macros (table sizes)."""
    compiler = compiler or find_compiler()
    if compiler is None:
        raise CompilerError("p4c-barefoot not found ($P4C_BAREFOOT, PATH, ../shared/tools/p4c)")
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(compiler), *FLAGS, "-o", str(out_dir), "--p4runtime-files", str(out_dir / "p4info.txtpb")]
    if verbose:
        cmd += ["-g", "--verbose"]
    cmd += [f"-D{k}={v}" for k, v in (defines or {}).items()]
    cmd.append(str(P4SRC / f"{program}.p4"))
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    res = Result(program, out_dir, proc.returncode, out)
    m = re.search(r"(\d+) errors?, (\d+) warnings? generated", out)
    if m:
        res.errors, res.warnings = int(m.group(1)), int(m.group(2))
    elif proc.returncode != 0:
        res.errors = 1
    res.unsupported = [line for line in out.splitlines() if UNSUPPORTED in line]
    bfa = out_dir / "pipe" / f"{program}.bfa"
    if bfa.exists():
        used = [int(n) for n in re.findall(r"^\s*stage (\d+) (?:ingress|egress):", bfa.read_text(), re.M)]
        res.stages = max(used) + 1 if used else 0
    return res


def normalized_p4info(text: str) -> str:
    """The P4Info text without the comment lines (the committed file has a header comment)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip() + "\n"


HEADER = ("# P4Info of p4src/{prog}.p4: the output of p4c-barefoot (harness/p4c.py, scripts/p4-compile.sh)\n"
          "#   {flags}\n"
          "# Do not edit: regenerate. tests/test_p4_compile.py checks it equals the compiler's.\n")


def committed_p4info(program: str) -> Path:
    return P4SRC / f"{program}.p4info.txtpb"


def write_p4info(res: Result) -> Path:
    dest = committed_p4info(res.program)
    dest.write_text(HEADER.format(prog=res.program, flags=" ".join(FLAGS))
                    + normalized_p4info(res.p4info.read_text()))
    return dest


def resources(out_dir: Path) -> dict:
    """What the program uses on the chip, from the compiler's own logs (a verbose compile)."""
    logs = out_dir / "pipe" / "logs"
    res = json.loads((logs / "resources.json").read_text())["resources"]
    mau = res["mau"]
    stages = mau["mau_stages"]
    n_stages = mau.get("nStages", STAGES)
    g0 = stages[0] if stages else {}

    def used(key: str, list_key: str) -> int:
        return sum(len(s[key][list_key]) for s in stages)

    sram_per_stage = g0["rams"]["nRows"] * g0["rams"]["nColumns"] if stages else 80
    tcam_per_stage = g0["tcams"]["nRows"] * g0["tcams"]["nColumns"] if stages else 24
    map_per_stage = g0["map_rams"]["nRows"] * g0["map_rams"]["nUnits"] if stages else 48
    hash_bits_per_stage = g0["hash_bits"]["nBits"] * g0["hash_bits"]["nFunctions"] if stages else 416
    hash_bits = sum(len({(b["hash_function"], b["hash_bit"]) for b in s["hash_bits"]["bits"]})
                    for s in stages)
    used_stages = [s["stage_number"] for s in stages if s["logical_tables"]["ids"]]

    phv = json.loads((logs / "phv.json").read_text())
    total_containers: dict[int, int] = {}
    for grp in phv["resources"]:     # listed once per MAU and once per deparser view
        if grp.get("group_type", "mau") != "mau":
            continue
        total_containers[grp["bit_width"]] = total_containers.get(grp["bit_width"], 0) + grp["num_containers"]
    used_containers: dict[int, int] = {}
    used_bits = 0
    for c in phv["containers"]:
        used_containers[c["bit_width"]] = used_containers.get(c["bit_width"], 0) + 1
        for s in c["slices"]:
            si = s["field_slice"]["slice_info"]
            used_bits += si["msb"] - si["lsb"] + 1
    total_bits = sum(w * n for w, n in total_containers.items())

    tables: dict[str, dict] = {}     # per P4 table: the stages and memories it occupies
    for st in stages:
        for lt in st["logical_tables"]["ids"]:
            name = lt["table_name"]
            if name.startswith("SwitchIngress.") or name.startswith("SwitchEgress."):
                tables.setdefault(name, {"stages": [], "sram_blocks": 0, "tcam_blocks": 0})
                if st["stage_number"] not in tables[name]["stages"]:
                    tables[name]["stages"].append(st["stage_number"])
        for kind, key in (("rams", "srams"), ("tcams", "tcams")):
            for blk in st[kind][key]:
                for u in blk.get("usages", []):
                    t = tables.setdefault(u["used_by"], {"stages": [], "sram_blocks": 0, "tcam_blocks": 0})
                    t["sram_blocks" if kind == "rams" else "tcam_blocks"] += 1
                    break

    parser = (logs / "parser.characterize.log").read_text() if (logs / "parser.characterize.log").exists() else ""
    m_states = re.search(r"Number of states on ingress: (\d+)", parser)
    m_matches = re.search(r"Number of matches on ingress: (\d+)", parser)
    return {
        "stages_used": max(used_stages) + 1 if used_stages else 0, "stages": n_stages,
        "sram_blocks": used("rams", "srams"), "sram_blocks_total": sram_per_stage * n_stages,
        "map_rams": used("map_rams", "maprams"), "map_rams_total": map_per_stage * n_stages,
        "tcam_blocks": used("tcams", "tcams"), "tcam_blocks_total": tcam_per_stage * n_stages,
        "hash_bits": hash_bits, "hash_bits_total": hash_bits_per_stage * n_stages,
        "gateways": used("gateways", "gateways"),
        "gateways_total": (g0["gateways"]["nRows"] * g0["gateways"]["nUnits"] if stages else 16) * n_stages,
        "phv_containers": {str(w): [used_containers.get(w, 0), n] for w, n in sorted(total_containers.items())},
        "phv_bits": used_bits, "phv_bits_total": total_bits,
        "parser_states": int(m_states.group(1)) if m_states else None,
        "parser_matches": int(m_matches.group(1)) if m_matches else None,
        "tables": tables,
    }


# The per-connection tables whose size is the experiment's constraint, and their size macros.
FIT = {"miresga": ("OFFLOAD_TABLE_SIZE",), "switch_only": ("CONN_IN_TABLE_SIZE", "CONN_OUT_TABLE_SIZE")}


def fit(program: str, work: Path, *, compiler: Path | None = None, step: int = 1024,
        start: int = 131072) -> int:
    """The largest size (a multiple of `step`) of FIT[program]'s tables with which the program still
    compiles for Tofino 1 (doubling, then bisection; each probe is one compile)."""
    def fits(n: int) -> bool:
        res = compile_program(program, work / f"{program}-{n}", compiler=compiler,
                              defines={m: n for m in FIT[program]})
        print(f"  {program} {'/'.join(FIT[program])}={n}: {res.stages} stages, "
              f"{'fits' if res.fits else 'does not fit'}", flush=True)
        shutil.rmtree(work / f"{program}-{n}", ignore_errors=True)
        return res.fits

    lo, hi = 0, start
    while fits(hi):
        lo, hi = hi, hi * 2
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description="compile p4src/ with p4c-barefoot, write the P4Info files")
    ap.add_argument("programs", nargs="*", default=list(PROGRAMS))
    ap.add_argument("--check", action="store_true", help="compare with the committed P4Info, write nothing")
    ap.add_argument("--fit", action="store_true",
                    help="find the largest per-connection table sizes that compile (FIT); writes nothing")
    ap.add_argument("--resources", action="store_true",
                    help="verbose compile; write p4src/resources/<prog>.json (the README's figures)")
    args = ap.parse_args(argv)
    compiler = find_compiler()
    if compiler is None:
        print("error: p4c-barefoot not found ($P4C_BAREFOOT, PATH, ../shared/tools/p4c/p4c-barefoot)")
        return 2
    bad = 0
    with tempfile.TemporaryDirectory(prefix="p4c-") as tmp:
        if args.fit:
            for prog in (p for p in args.programs if p in FIT):
                print(f"{prog}: largest {'/'.join(FIT[prog])} that fits Tofino 1: "
                      f"{fit(prog, Path(tmp), compiler=compiler)}", flush=True)
            return 0
        for prog in args.programs:
            print(f"{prog}: compiling with {compiler} ...", flush=True)
            res = compile_program(prog, Path(tmp) / prog, compiler=compiler, verbose=args.resources)
            if not res.fits:
                print(res.output)
                print(f"{prog}: FAILED ({res.errors} errors, {len(res.unsupported)} 'not supported by Tofino', "
                      f"{res.stages} of {STAGES} stages)")
                bad += 1
                continue
            print(f"{prog}: 0 errors, {res.warnings} warnings, {res.stages} of {STAGES} stages")
            if args.check:
                same = normalized_p4info(res.p4info.read_text()) == normalized_p4info(
                    committed_p4info(prog).read_text())
                print(f"{prog}: committed P4Info {'matches' if same else 'DIFFERS from'} the compiler's")
                bad += not same
                continue
            print(f"{prog}: wrote {write_p4info(res).relative_to(REPO)}")
            if args.resources:
                dest = P4SRC / "resources" / f"{prog}.json"
                dest.parent.mkdir(exist_ok=True)
                summary = resources(res.out_dir)
                dest.write_text(json.dumps({"program": prog, "compiler": str(compiler.name),
                                            "flags": list(FLAGS), **summary}, indent=1) + "\n")
                print(f"{prog}: {summary['stages_used']}/{summary['stages']} stages, "
                      f"SRAM {summary['sram_blocks']}/{summary['sram_blocks_total']}, "
                      f"TCAM {summary['tcam_blocks']}/{summary['tcam_blocks_total']}, "
                      f"PHV bits {summary['phv_bits']}/{summary['phv_bits_total']}: wrote {dest.relative_to(REPO)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
