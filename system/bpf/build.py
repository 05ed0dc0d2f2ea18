"""Compile a BPF C source into an object with clang (-O2 -g -target bpf).

Deterministic: the same source and includes give the same bytes (no timestamps, sources referenced
by relative path through -fdebug-prefix-map). A failure raises BuildError carrying clang's output.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INCLUDE_DIR = Path(__file__).resolve().parent / "include"
CLANG_CANDIDATES = ("clang", "clang-14")


class BuildError(RuntimeError):
    """clang failed; the message holds its command line and output."""


@dataclass(frozen=True)
class BuildResult:
    source: Path
    object_path: Path
    sha256: str


def find_clang() -> str:
    for name in CLANG_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise BuildError(f"no clang found (tried {', '.join(CLANG_CANDIDATES)}); install clang-14")


def _arch_include() -> list[str]:
    # <asm/types.h> lives in the multiarch directory on Debian; the BPF target does not search it.
    for cand in (Path("/usr/include/x86_64-linux-gnu"), Path("/usr/include/aarch64-linux-gnu")):
        if (cand / "asm").is_dir():
            return ["-I", str(cand)]
    return []


def compile_bpf(
    source: Path,
    output: Path,
    include_dirs: list[Path] | None = None,
    defines: dict[str, str] | None = None,
) -> BuildResult:
    """Compile `source` to `output` and return the object's sha256."""
    source = Path(source).resolve()
    if not source.is_file():
        raise BuildError(f"BPF source not found: {source}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        find_clang(), "-O2", "-g", "-target", "bpf", "-std=gnu11",
        "-Wall", "-Werror", "-Wno-unused-function",
        f"-fdebug-prefix-map={source.parent}=.",
        f"-fdebug-prefix-map={INCLUDE_DIR}=include",
        "-fno-ident",
        "-I", str(INCLUDE_DIR), "-I", str(source.parent),
    ]
    for inc in include_dirs or []:
        cmd += ["-I", str(Path(inc).resolve())]
    cmd += _arch_include()
    for name, value in sorted((defines or {}).items()):
        cmd.append(f"-D{name}={value}")
    cmd += ["-c", str(source), "-o", str(output)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=source.parent, check=False)
    if proc.returncode != 0:
        output.unlink(missing_ok=True)
        raise BuildError(
            f"clang failed (exit {proc.returncode}) compiling {source}\n"
            f"command: {' '.join(cmd)}\n{proc.stderr.strip()}{proc.stdout.strip()}"
        )
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    return BuildResult(source=source, object_path=output, sha256=digest)
