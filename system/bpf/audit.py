"""Static checks of compiled BPF objects against the cost that made the emulated switch slow.

A locked read-modify-write (`__sync_fetch_and_add`, `lock *(u64 *)(r + off) += r`) on a value
of a map shared by every CPU serialises the CPUs on one cache line, and when the 8-byte operand
straddles a cache line it is a split lock: the CPU locks the memory bus, and a hypervisor that
traps split locks makes each one cost tens of microseconds (system/switch/README.md, "Counters").

- `atomic_instructions(obj)`: every atomic instruction of the object (llvm-objdump -d).
- `map_u64_fields(obj)`: every 64-bit integer field of every map's key-value layout (BTF), with
  its offset inside the kernel's element storage where that is known, so misalignment shows.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# BPF map types (include/uapi/linux/bpf.h).
MAP_TYPES = {1: "hash", 2: "array", 5: "percpu_hash", 6: "percpu_array", 9: "lru_hash",
             10: "lru_percpu_hash", 11: "lpm_trie"}
PERCPU_TYPES = {"percpu_hash", "percpu_array", "lru_percpu_hash"}

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


@functools.cache
def lpm_node_header() -> int:
    """Bytes of struct lpm_trie_node before its data: the running kernel's (24 on 6.18: child[2],
    prefixlen, flags), else 40 (older kernels also had an rcu_head)."""
    try:
        proc = subprocess.run(["bpftool", "btf", "dump", "file", str(VMLINUX_BTF), "format", "raw"],
                              capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return 40
    m = re.search(r"STRUCT 'lpm_trie_node' size=(\d+)", proc.stdout)
    return int(m.group(1)) if m else 40


# Where the value starts inside the kernel's element, as a function of the key size. Hash maps
# put it at round_up(key_size, 8) after an 8-aligned header; arrays at a stride of
# round_up(value_size, 8); an LPM trie node is its header + the key's data (key_size - 4) + the
# value, so the value sits at 4 mod 8 for an 8-byte key (28 or 44): a u64 at value offset 24 is
# misaligned, and can straddle a cache line.
def value_offset_in_element(map_type: str, key_size: int) -> int:
    if map_type == "lpm_trie":
        return lpm_node_header() + key_size - 4
    if map_type in ("hash", "lru_hash", "percpu_hash", "lru_percpu_hash"):
        return (key_size + 7) // 8 * 8     # after the key, in an 8-aligned element
    return 0


_ATOMIC = re.compile(r"\block\b|\batomic_\w+|\bcmpxchg|\bxchg")


@dataclass(frozen=True)
class AtomicInsn:
    section: str
    text: str           # llvm-objdump's rendering, e.g. "lock *(u64 *)(r6 + 24) += r1"


def atomic_instructions(obj: Path) -> list[AtomicInsn]:
    proc = subprocess.run(["llvm-objdump", "-d", "--no-show-raw-insn", str(obj)],
                          capture_output=True, text=True, check=True)
    out, section = [], ""
    for line in proc.stdout.splitlines():
        if line.startswith("Disassembly of section "):
            section = line.removeprefix("Disassembly of section ").rstrip(":")
        elif ":\t" in line and _ATOMIC.search(line.split(":\t", 1)[1]):
            out.append(AtomicInsn(section, line.split(":\t", 1)[1].strip()))
    return out


@dataclass(frozen=True)
class U64Field:
    map_name: str
    map_type: str
    where: str          # "key" or "value"
    field: str          # dotted path inside the struct
    offset: int         # byte offset inside the key or value struct
    element_offset: int | None   # byte offset inside the kernel's element (value only)

    @property
    def aligned(self) -> bool:
        off = self.offset if self.element_offset is None else self.element_offset
        return off % 8 == 0


def _btf(obj: Path) -> dict[int, dict]:
    proc = subprocess.run(["bpftool", "-j", "btf", "dump", "file", str(obj)],
                          capture_output=True, text=True, check=True)
    return {t["id"]: t for t in json.loads(proc.stdout)["types"]}


def _resolve(types: dict[int, dict], tid: int) -> dict:
    t = types[tid]
    while t["kind"] in ("TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "TYPE_TAG"):
        t = types[t["type_id"]]
    return t


def _size(types: dict[int, dict], tid: int) -> int:
    t = _resolve(types, tid)
    if t["kind"] == "ARRAY":
        return t["nr_elems"] * _size(types, t["type_id"])
    return t.get("size", 0)


def _u64s(types: dict[int, dict], tid: int, base: int, path: str) -> list[tuple[str, int]]:
    t = _resolve(types, tid)
    if t["kind"] == "INT" and t["size"] == 8:
        return [(path, base)]
    if t["kind"] in ("STRUCT", "UNION"):
        out = []
        for m in t["members"]:
            out += _u64s(types, m["type_id"], base + m["bits_offset"] // 8, f"{path}.{m['name']}".lstrip("."))
        return out
    if t["kind"] == "ARRAY":
        step = _size(types, t["type_id"])
        out = []
        for i in range(t["nr_elems"]):
            out += _u64s(types, t["type_id"], base + i * step, f"{path}[{i}]")
        return out
    return []


def map_u64_fields(obj: Path) -> list[U64Field]:
    """Every 64-bit integer in the key and value of every map declared in `.maps`."""
    types = _btf(obj)
    out = []
    for sec in (t for t in types.values() if t["kind"] == "DATASEC" and t["name"] == ".maps"):
        for v in sec["vars"]:
            var = types[v["type_id"]]
            members = {m["name"]: m["type_id"] for m in _resolve(types, var["type_id"])["members"]}
            arr = _resolve(types, types[members["type"]]["type_id"])     # int (*type)[N]
            map_type = MAP_TYPES.get(arr["nr_elems"], str(arr["nr_elems"]))
            key_tid = types[members["key"]]["type_id"] if "key" in members else None
            key_size = _size(types, key_tid) if key_tid else 4
            for where in ("key", "value"):
                if where not in members:
                    continue
                tid = types[members[where]]["type_id"]
                for path, off in _u64s(types, tid, 0, ""):
                    elem = off + value_offset_in_element(map_type, key_size) if where == "value" else None
                    out.append(U64Field(var["name"], map_type, where, path or where, off, elem))
    return out
