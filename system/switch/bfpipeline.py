"""Tofino device configs: what a Tofino's P4Runtime server takes in ForwardingPipelineConfig.p4_device_config.

Two formats, both built from the output directory of the SDE's compiler (`bf-p4c -o OUT`:
`OUT/bfrt.json`, and per pipe `OUT/<pipe>/context.json` and `OUT/<pipe>/tofino.bin`):

- `stratum`: Stratum's `stratum.hal.barefoot.BfPipelineConfig` protobuf (stratum/hal/lib/barefoot/bf.proto):
      p4_name = 1 (string), bfruntime_info = 2 (bytes, bfrt.json),
      profiles = 3 (repeated Profile {profile_name = 1, context = 2, binary = 3, pipe_scope = 4 (packed uint32)})
  It is what Stratum's `bf_pipeline_builder` writes; encoded here by hand (three fields, no generated code).
- `pi`: the binary packing of PI's Tofino back end, served by `bf_switchd --p4rt-server`:
      u32 LE len | program name | u32 LE len | tofino.bin | u32 LE len | context.json   (one pipe)

    python -m system.switch.bfpipeline pack --format stratum --name miresga --p4c-out build/miresga -o dc.bin
    python -m system.switch.bfpipeline show dc.bin

A compiler output without `tofino.bin` (p4c-barefoot has no assembler) is refused unless a stand-in SDE
wrote one (system/switch/sde_standin/README.md).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("stratum", "pi")


class PipelineConfigError(ValueError):
    """A compiler output that cannot be packaged, or bytes that are not a device config."""


@dataclass(frozen=True)
class Profile:
    name: str
    context: bytes
    binary: bytes
    pipe_scope: tuple[int, ...] = ()


@dataclass(frozen=True)
class BfPipelineConfig:
    p4_name: str
    bfruntime_info: bytes
    profiles: tuple[Profile, ...] = field(default_factory=tuple)


# ---- protobuf wire format (only what BfPipelineConfig uses) -------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def encode(cfg: BfPipelineConfig) -> bytes:
    out = bytearray(_ld(1, cfg.p4_name.encode()) + _ld(2, cfg.bfruntime_info))
    for p in cfg.profiles:
        body = _ld(1, p.name.encode()) + _ld(2, p.context) + _ld(3, p.binary)
        if p.pipe_scope:
            body += _ld(4, b"".join(_varint(s) for s in p.pipe_scope))
        out += _ld(3, body)
    return bytes(out)


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if i >= len(data):
            raise PipelineConfigError("truncated varint")
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i
        if shift > 63:
            raise PipelineConfigError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(data, i)
            out.append((num, v))
        elif wt == 2:
            n, i = _read_varint(data, i)
            if i + n > len(data):
                raise PipelineConfigError(f"field {num}: {n} bytes announced, {len(data) - i} left")
            out.append((num, data[i:i + n]))
            i += n
        else:
            raise PipelineConfigError(f"field {num}: wire type {wt} is not used by BfPipelineConfig")
    return out


def decode(data: bytes) -> BfPipelineConfig:
    """Parse a BfPipelineConfig; PipelineConfigError when the bytes are not one."""
    name, bfrt, profiles = None, b"", []
    for num, v in _fields(bytes(data)):
        if num == 1 and isinstance(v, bytes):
            name = v.decode("utf-8", "replace")
        elif num == 2 and isinstance(v, bytes):
            bfrt = v
        elif num == 3 and isinstance(v, bytes):
            pname, ctx, binary, scope = "", b"", b"", []
            for pn, pv in _fields(v):
                if pn == 1 and isinstance(pv, bytes):
                    pname = pv.decode("utf-8", "replace")
                elif pn == 2 and isinstance(pv, bytes):
                    ctx = pv
                elif pn == 3 and isinstance(pv, bytes):
                    binary = pv
                elif pn == 4:
                    if isinstance(pv, int):
                        scope.append(pv)
                    else:
                        j = 0
                        while j < len(pv):
                            s, j = _read_varint(pv, j)
                            scope.append(s)
            profiles.append(Profile(pname, ctx, binary, tuple(scope)))
    if not name:
        raise PipelineConfigError("not a BfPipelineConfig: no p4_name")
    return BfPipelineConfig(name, bfrt, tuple(profiles))


# ---- PI's packing ------------------------------------------------------------------------------

def encode_pi(name: str, binary: bytes, context: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in (name.encode(), binary, context))


def decode_pi(data: bytes) -> tuple[str, bytes, bytes]:
    parts, i = [], 0
    for what in ("program name", "tofino.bin", "context.json"):
        if i + 4 > len(data):
            raise PipelineConfigError(f"PI device config truncated before the {what} length")
        (n,) = struct.unpack_from("<I", data, i)
        if i + 4 + n > len(data):
            raise PipelineConfigError(f"PI device config: {what} of {n} bytes does not fit")
        parts.append(data[i + 4:i + 4 + n])
        i += 4 + n
    if i != len(data):
        raise PipelineConfigError(f"PI device config: {len(data) - i} trailing bytes")
    return parts[0].decode("utf-8", "replace"), parts[1], parts[2]


# ---- from the compiler's output -----------------------------------------------------------------

def _pipes(out: Path) -> list[Path]:
    """The pipe directories of a compiler output (each holds context.json)."""
    pipes = sorted(p.parent for p in out.glob("*/context.json"))
    if not pipes:
        raise PipelineConfigError(f"{out}: no <pipe>/context.json: not a bf-p4c output directory")
    return pipes


def from_p4c_output(out: Path, name: str) -> BfPipelineConfig:
    out = Path(out)
    pipes = _pipes(out)
    bfrt = out / "bfrt.json"
    if not bfrt.is_file():
        alt = sorted(out.glob("bf-rt.json")) or sorted(out.glob("*bfrt*.json"))
        if not alt:
            raise PipelineConfigError(f"{out}: no bfrt.json (compile with --bf-rt-schema {bfrt})")
        bfrt = alt[0]
    profiles = []
    for pipe in pipes:
        binary = pipe / "tofino.bin"
        if not binary.is_file():
            raise PipelineConfigError(f"{pipe}: no tofino.bin: the compiler did not assemble the program "
                                      "(p4c-barefoot alone has no assembler; use the SDE's bf-p4c)")
        ctx = (pipe / "context.json").read_bytes()
        try:
            json.loads(ctx)
        except json.JSONDecodeError as e:
            raise PipelineConfigError(f"{pipe}/context.json is not JSON: {e}") from None
        profiles.append(Profile(pipe.name, ctx, binary.read_bytes(), ()))
    return BfPipelineConfig(name, bfrt.read_bytes(), tuple(profiles))


def pack(fmt: str, out: Path, name: str) -> bytes:
    cfg = from_p4c_output(out, name)
    if fmt == "stratum":
        return encode(cfg)
    if fmt == "pi":
        if len(cfg.profiles) != 1:
            raise PipelineConfigError(f"the PI packing holds one pipe, {out} has {len(cfg.profiles)}")
        p = cfg.profiles[0]
        return encode_pi(name, p.binary, p.context)
    raise PipelineConfigError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def describe(data: bytes) -> dict[str, object]:
    """What a device config holds (either format), for logs and checks."""
    try:
        cfg = decode(data)
        return {"format": "stratum", "p4_name": cfg.p4_name, "bfruntime_info": len(cfg.bfruntime_info),
                "profiles": [{"name": p.name, "context": len(p.context), "binary": len(p.binary),
                              "pipe_scope": list(p.pipe_scope)} for p in cfg.profiles]}
    except PipelineConfigError:
        name, binary, ctx = decode_pi(data)
        return {"format": "pi", "p4_name": name, "binary": len(binary), "context": len(ctx)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m system.switch.bfpipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="package a bf-p4c output directory")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--name", required=True, help="the P4 program name (p4_name)")
    p.add_argument("--p4c-out", type=Path, required=True)
    p.add_argument("-o", "--output", type=Path, required=True)
    s = sub.add_parser("show", help="describe a device config file")
    s.add_argument("file", type=Path)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pack":
            data = pack(args.format, args.p4c_out, args.name)
            args.output.write_bytes(data)
            print(json.dumps({"output": str(args.output), "bytes": len(data), **describe(data)}))
        else:
            print(json.dumps(describe(args.file.read_bytes())))
    except (PipelineConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
