"""The emulated target's pipeline package: the device config carried in
ForwardingPipelineConfig.p4_device_config.

Format (version 1), all in one bytes object:
    b"MRSGPKG1" | u32 big-endian header length | header (UTF-8 JSON) | BPF object
header = {"format": 1, "pipeline": "<name>", "object_sha256": "<hex>", "object_size": <n>}
The pipeline name selects the PipelineSpec (system/switch/tables.py) that maps P4 tables to maps.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from system.bpf.build import compile_bpf
from system.switch.tables import PipelineSpec, pipeline_spec

MAGIC = b"MRSGPKG1"
FORMAT = 1
BPF_DIR = Path(__file__).resolve().parent / "bpf"


@dataclass(frozen=True)
class Package:
    pipeline: str
    object_bytes: bytes
    object_sha256: str

    @property
    def spec(self) -> PipelineSpec:
        return pipeline_spec(self.pipeline)


def source_of(pipeline: str) -> Path:
    pipeline_spec(pipeline)  # ValueError for an unknown pipeline
    return BPF_DIR / f"{pipeline}.c"


def build_package(pipeline_name: str) -> bytes:
    """Compile the pipeline's BPF program and bundle it."""
    with tempfile.TemporaryDirectory(prefix="mrsg-pkg-") as tmp:
        result = compile_bpf(source_of(pipeline_name), Path(tmp) / f"{pipeline_name}.o")
        obj = result.object_path.read_bytes()
    header = json.dumps({"format": FORMAT, "pipeline": pipeline_name,
                         "object_sha256": hashlib.sha256(obj).hexdigest(),
                         "object_size": len(obj)}, sort_keys=True).encode()
    return MAGIC + struct.pack(">I", len(header)) + header + obj


def parse_package(data: bytes) -> Package:
    """Check and unpack a package; ValueError says what is wrong."""
    if not isinstance(data, bytes | bytearray):
        raise ValueError("pipeline package must be bytes")
    data = bytes(data)
    if len(data) < len(MAGIC) + 4 or not data.startswith(MAGIC):
        raise ValueError("not a Miresga pipeline package (bad magic); build one with "
                         "system.switch.package.build_package")
    (hlen,) = struct.unpack_from(">I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if start + hlen > len(data):
        raise ValueError(f"pipeline package truncated: header of {hlen} bytes does not fit")
    try:
        header = json.loads(data[start: start + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"pipeline package header is not JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"pipeline package format {header.get('format') if isinstance(header, dict) else '?'}"
                         f" not supported (want {FORMAT})")
    for k in ("pipeline", "object_sha256", "object_size"):
        if k not in header:
            raise ValueError(f"pipeline package header lacks {k!r}")
    obj = data[start + hlen:]
    if len(obj) != header["object_size"]:
        raise ValueError(f"pipeline package object is {len(obj)} bytes, header says "
                         f"{header['object_size']}")
    digest = hashlib.sha256(obj).hexdigest()
    if digest != header["object_sha256"]:
        raise ValueError("pipeline package object hash mismatch (corrupted package)")
    pipeline_spec(header["pipeline"])  # ValueError for an unknown pipeline
    return Package(pipeline=header["pipeline"], object_bytes=obj, object_sha256=digest)
