"""A small ctypes wrapper of bpf(2): pinned objects, map elements, object info, run statistics.

Only what the project needs. Errors raise BpfError (an OSError with the errno and the command).
File descriptors are plain ints owned by the caller; `Map` and `Prog` wrap one and close it.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SYS_BPF = {"x86_64": 321, "aarch64": 280}

# Commands (include/uapi/linux/bpf.h).
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_GET = 7
BPF_PROG_TEST_RUN = 10
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_ENABLE_STATS = 32

# Update flags.
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

BPF_STATS_RUN_TIME = 0

# Map types whose values are per CPU (lookups return one value per possible CPU).
MAP_TYPE_NAMES = {
    1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
    6: "percpu_array", 9: "lru_hash", 10: "lru_percpu_hash", 11: "lpm_trie", 12: "array_of_maps",
    13: "hash_of_maps", 14: "devmap", 27: "ringbuf",
}
PERCPU_TYPES = {5, 6, 10}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfError(OSError):
    def __init__(self, err: int, what: str) -> None:
        super().__init__(err, f"{what}: {os.strerror(err)}")


class _ElemAttr(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("key", ctypes.c_uint64),
                ("value", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class _ObjGetAttr(ctypes.Structure):
    _fields_ = [("pathname", ctypes.c_uint64), ("bpf_fd", ctypes.c_uint32),
                ("file_flags", ctypes.c_uint32), ("path_fd", ctypes.c_int32)]


class _InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


class _IdAttr(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("next_id", ctypes.c_uint32), ("open_flags", ctypes.c_uint32)]


class _StatsAttr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32)]


class _TestRunAttr(ctypes.Structure):
    _fields_ = [("prog_fd", ctypes.c_uint32), ("retval", ctypes.c_uint32),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("data_in", ctypes.c_uint64), ("data_out", ctypes.c_uint64),
                ("repeat", ctypes.c_uint32), ("duration", ctypes.c_uint32),
                ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_uint64), ("ctx_out", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32), ("batch_size", ctypes.c_uint32)]


class _MapInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("name", ctypes.c_char * 16),
                ("ifindex", ctypes.c_uint32), ("btf_vmlinux_value_type_id", ctypes.c_uint32),
                ("netns_dev", ctypes.c_uint64), ("netns_ino", ctypes.c_uint64),
                ("btf_id", ctypes.c_uint32), ("btf_key_type_id", ctypes.c_uint32),
                ("btf_value_type_id", ctypes.c_uint32), ("btf_vmlinux_id", ctypes.c_uint32),
                ("map_extra", ctypes.c_uint64)]


class _ProgInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
                ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
                ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
                ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64),
                ("name", ctypes.c_char * 16), ("ifindex", ctypes.c_uint32),
                ("gpl_compatible", ctypes.c_uint32), ("netns_dev", ctypes.c_uint64),
                ("netns_ino", ctypes.c_uint64), ("nr_jited_ksyms", ctypes.c_uint32),
                ("nr_jited_func_lens", ctypes.c_uint32), ("jited_ksyms", ctypes.c_uint64),
                ("jited_func_lens", ctypes.c_uint64), ("btf_id", ctypes.c_uint32),
                ("func_info_rec_size", ctypes.c_uint32), ("func_info", ctypes.c_uint64),
                ("nr_func_info", ctypes.c_uint32), ("nr_line_info", ctypes.c_uint32),
                ("line_info", ctypes.c_uint64), ("jited_line_info", ctypes.c_uint64),
                ("nr_jited_line_info", ctypes.c_uint32), ("line_info_rec_size", ctypes.c_uint32),
                ("jited_line_info_rec_size", ctypes.c_uint32), ("nr_prog_tags", ctypes.c_uint32),
                ("prog_tags", ctypes.c_uint64), ("run_time_ns", ctypes.c_uint64),
                ("run_cnt", ctypes.c_uint64), ("recursion_misses", ctypes.c_uint64),
                ("verified_insns", ctypes.c_uint32)]


def _sys_bpf_nr() -> int:
    try:
        return _SYS_BPF[platform.machine()]
    except KeyError as exc:
        raise OSError(errno_mod.ENOSYS, f"bpf(2) number unknown for {platform.machine()}") from exc


def bpf(cmd: int, attr: ctypes.Structure, what: str) -> int:
    """Issue bpf(cmd, &attr, sizeof attr); return the result or raise BpfError."""
    ret = _libc.syscall(_sys_bpf_nr(), ctypes.c_int(cmd), ctypes.byref(attr),
                        ctypes.c_uint(ctypes.sizeof(attr)))
    if ret < 0:
        raise BpfError(ctypes.get_errno(), what)
    return ret


def _addr(buf: ctypes.Array | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def obj_get(path: str | Path) -> int:
    """Open a pinned BPF object; return its fd."""
    cpath = ctypes.create_string_buffer(os.fsencode(str(path)))
    attr = _ObjGetAttr(pathname=ctypes.addressof(cpath))
    return bpf(BPF_OBJ_GET, attr, f"BPF_OBJ_GET {path}")


def map_fd_by_id(map_id: int) -> int:
    return bpf(BPF_MAP_GET_FD_BY_ID, _IdAttr(id=map_id), f"BPF_MAP_GET_FD_BY_ID {map_id}")


def possible_cpus() -> int:
    """Number of possible CPUs (the stride of per-CPU map values)."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += (int(hi) if hi else int(lo)) - int(lo) + 1
    return count


@dataclass(frozen=True)
class MapInfo:
    id: int
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    btf_id: int

    @property
    def type_name(self) -> str:
        return MAP_TYPE_NAMES.get(self.type, str(self.type))

    @property
    def percpu(self) -> bool:
        return self.type in PERCPU_TYPES


@dataclass(frozen=True)
class ProgInfo:
    id: int
    name: str
    type: int
    tag: str
    map_ids: tuple[int, ...]
    run_time_ns: int
    run_cnt: int
    verified_insns: int


def map_info(fd: int) -> MapInfo:
    info = _MapInfo()
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD (map)")
    return MapInfo(id=info.id, name=info.name.decode(), type=info.type, key_size=info.key_size,
                   value_size=info.value_size, max_entries=info.max_entries,
                   map_flags=info.map_flags, btf_id=info.btf_id)


def prog_info(fd: int) -> ProgInfo:
    # First call learns how many map ids there are, second call fetches them.
    info = _ProgInfo()
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD (prog)")
    nr = info.nr_map_ids
    ids = (ctypes.c_uint32 * max(nr, 1))()
    info2 = _ProgInfo(nr_map_ids=nr, map_ids=ctypes.addressof(ids))
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info2), info=ctypes.addressof(info2))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD (prog)")
    return ProgInfo(id=info2.id, name=info2.name.decode(), type=info2.type,
                    tag=bytes(info2.tag).hex(), map_ids=tuple(ids[:nr]),
                    run_time_ns=info2.run_time_ns, run_cnt=info2.run_cnt,
                    verified_insns=info2.verified_insns)


def enable_stats() -> int:
    """Turn on run_time_ns/run_cnt accounting for all programs while the returned fd is open."""
    return bpf(BPF_ENABLE_STATS, _StatsAttr(type=BPF_STATS_RUN_TIME), "BPF_ENABLE_STATS")


class Map:
    """A BPF map by fd; keys and values are bytes of exactly key_size/value_size.

    For per-CPU maps, lookup returns possible_cpus() values of round_up(value_size, 8) bytes
    concatenated, and update takes the same layout.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.info = map_info(fd)
        self._stride = (self.info.value_size + 7) // 8 * 8
        self._ncpu = possible_cpus() if self.info.percpu else 1

    @classmethod
    def pinned(cls, path: str | Path) -> Map:
        return cls(obj_get(path))

    @property
    def value_buffer_size(self) -> int:
        return self._stride * self._ncpu if self.info.percpu else self.info.value_size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, key: bytes) -> ctypes.Array:
        if len(key) != self.info.key_size:
            raise ValueError(f"map {self.info.name}: key is {len(key)} bytes, want {self.info.key_size}")
        return ctypes.create_string_buffer(key, len(key))

    def lookup(self, key: bytes) -> bytes | None:
        kbuf = self._key(key)
        vbuf = ctypes.create_string_buffer(self.value_buffer_size)
        attr = _ElemAttr(map_fd=self.fd, key=_addr(kbuf), value=_addr(vbuf))
        try:
            bpf(BPF_MAP_LOOKUP_ELEM, attr, f"lookup in map {self.info.name}")
        except BpfError as exc:
            if exc.errno == errno_mod.ENOENT:
                return None
            raise
        return vbuf.raw

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        """Per-CPU values (each value_size bytes); [] if the key is absent."""
        raw = self.lookup(key)
        if raw is None:
            return []
        size = self.info.value_size
        return [raw[i * self._stride: i * self._stride + size] for i in range(self._ncpu)]

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        if len(value) != self.value_buffer_size:
            raise ValueError(f"map {self.info.name}: value is {len(value)} bytes, "
                             f"want {self.value_buffer_size}")
        kbuf = self._key(key)
        vbuf = ctypes.create_string_buffer(value, len(value))
        attr = _ElemAttr(map_fd=self.fd, key=_addr(kbuf), value=_addr(vbuf), flags=flags)
        bpf(BPF_MAP_UPDATE_ELEM, attr, f"update in map {self.info.name}")

    def delete(self, key: bytes) -> None:
        kbuf = self._key(key)
        attr = _ElemAttr(map_fd=self.fd, key=_addr(kbuf))
        bpf(BPF_MAP_DELETE_ELEM, attr, f"delete in map {self.info.name}")

    def next_key(self, key: bytes | None) -> bytes | None:
        kbuf = self._key(key) if key is not None else None
        nbuf = ctypes.create_string_buffer(self.info.key_size)
        attr = _ElemAttr(map_fd=self.fd, key=_addr(kbuf), value=_addr(nbuf))
        try:
            bpf(BPF_MAP_GET_NEXT_KEY, attr, f"get_next_key in map {self.info.name}")
        except BpfError as exc:
            if exc.errno == errno_mod.ENOENT:
                return None
            raise
        return nbuf.raw

    def iter_keys(self) -> Iterator[bytes]:
        key = self.next_key(None)
        seen = 0
        while key is not None and seen <= self.info.max_entries:
            yield key
            seen += 1
            key = self.next_key(key)


class Prog:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def pinned(cls, path: str | Path) -> Prog:
        return cls(obj_get(path))

    def info(self) -> ProgInfo:
        return prog_info(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Prog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def test_run(self, data: bytes, repeat: int = 1, ctx: bytes | None = None,
                 out_size: int = 4096) -> tuple[int, bytes, int]:
        """BPF_PROG_TEST_RUN: return (retval, data_out, mean duration in ns)."""
        din = ctypes.create_string_buffer(data, len(data))
        dout = ctypes.create_string_buffer(max(out_size, len(data) + 256))
        cin = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
        attr = _TestRunAttr(prog_fd=self.fd, data_size_in=len(data), data_size_out=len(dout),
                            data_in=_addr(din), data_out=_addr(dout), repeat=repeat,
                            ctx_size_in=len(ctx) if ctx else 0, ctx_in=_addr(cin))
        bpf(BPF_PROG_TEST_RUN, attr, "BPF_PROG_TEST_RUN")
        return attr.retval, dout.raw[: attr.data_size_out], attr.duration
