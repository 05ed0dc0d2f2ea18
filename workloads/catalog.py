"""Deterministic object content: what nginx serves at /obj/<name> and what clients verify.

An object's bytes depend only on its name and size. The content is a sequence of 64 KiB blocks; block
``i`` is SHAKE-256 of a key made of the object's name, its size and ``i``, so every block of every
object differs: a block served at the wrong offset, a block of another object, a truncated or a
padded file all fail verification. The last block is cut to the size. 10 MB take about 40 ms.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

BLOCK = 64 * 1024
_DOMAIN = b"miresga-object-v1"


class _Sized(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...


def _block(name: str, size: int, index: int, length: int) -> bytes:
    key = b"%s\0%s\0%d\0%d" % (_DOMAIN, name.encode(), size, index)
    return hashlib.shake_256(key).digest(length)


def object_bytes(name: str, size: int) -> bytes:
    """The full content of object ``name`` of ``size`` bytes."""
    if size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    full, rest = divmod(size, BLOCK)
    parts = [_block(name, size, i, BLOCK) for i in range(full)]
    if rest:
        parts.append(_block(name, size, full, rest))
    return b"".join(parts)


def object_range(name: str, size: int, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the object, computing only the blocks they touch."""
    if not 0 <= start <= end <= size:
        raise ValueError(f"range [{start}, {end}) is not inside an object of {size} bytes")
    if start == end:
        return b""
    first, last = start // BLOCK, (end - 1) // BLOCK
    parts = [_block(name, size, i, min(BLOCK, size - i * BLOCK)) for i in range(first, last + 1)]
    joined = b"".join(parts)
    off = first * BLOCK
    return joined[start - off:end - off]


def object_sha256(name: str, size: int) -> str:
    """Hex SHA-256 of the object's content (what `sha256sum /obj/<name>` prints)."""
    h = hashlib.sha256()
    full, rest = divmod(size, BLOCK)
    for i in range(full):
        h.update(_block(name, size, i, BLOCK))
    if rest:
        h.update(_block(name, size, full, rest))
    return h.hexdigest()


def write_object(directory: str | Path, name: str, size: int) -> str:
    """Writes one object as ``directory/name`` (atomically: a temporary file renamed into place).

    Returns the hex SHA-256 of what was written.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    target = d / name
    tmp = d / f".{name}.tmp-{os.getpid()}"
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        full, rest = divmod(size, BLOCK)
        for i in range(full + (1 if rest else 0)):
            block = _block(name, size, i, BLOCK if i < full else rest)
            h.update(block)
            f.write(block)
    tmp.chmod(0o644)
    tmp.replace(target)
    return h.hexdigest()


def write_catalog(directory: str | Path, catalog: Iterable[_Sized] | dict[str, int]) -> dict[str, str]:
    """Writes every object of the catalog (CatalogObjects or a name -> size mapping) into ``directory``.

    Returns name -> hex SHA-256, for the deploy step to record and to check on the servers.
    """
    items = catalog.items() if isinstance(catalog, dict) else ((o.name, o.size) for o in catalog)
    digests: dict[str, str] = {}
    for name, size in items:
        if "/" in name or name.startswith("."):
            raise ValueError(f"object name {name!r} cannot be a file name")
        digests[name] = write_object(directory, name, size)
    return digests
