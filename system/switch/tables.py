"""Python mirror of the emulated switch's tables, and the facade callers use instead of map bytes.

`PipelineSpec`/`TableSpec` describe each P4 table of a pipeline (P4 and P4Info names, match fields,
actions and where every field sits in the BPF map's key and value structs of
system/switch/bpf/structs.h). `PipelineTables(spec, pin_dir)` opens the pinned maps and offers
insert/modify/delete/get/read plus counters. Errors raise TableError with a P4Runtime-style code.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from system.bpf.syscall import BPF_EXIST, BPF_NOEXIST, BpfError, Map

P4SRC = Path(__file__).resolve().parents[2] / "p4src"

MatchKind = Literal["exact", "lpm", "ternary"]
ByteOrder = Literal["network", "host"]

MAX_PORTS = 64  # consts.h


class TableError(Exception):
    """A table operation failed. code: ALREADY_EXISTS | NOT_FOUND | INVALID_ARGUMENT |
    RESOURCE_EXHAUSTED."""

    CODES = ("ALREADY_EXISTS", "NOT_FOUND", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED")

    def __init__(self, code: str, message: str) -> None:
        if code not in self.CODES:
            raise ValueError(f"unknown TableError code {code}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Layout:
    """Where a field sits in a key or value struct: byte offset, size in bytes, byte order."""

    offset: int
    size: int
    order: ByteOrder


@dataclass(frozen=True)
class MatchFieldSpec:
    name: str            # P4Info match field name (the @name of the key element)
    bitwidth: int
    match_kind: MatchKind
    layout: Layout


@dataclass(frozen=True)
class ParamSpec:
    name: str
    bitwidth: int
    layout: Layout


@dataclass(frozen=True)
class ActionSpec:
    name: str            # P4 short name, e.g. "forward"
    p4info_name: str     # e.g. "SwitchIngress.forwarding.forward"
    code: int            # action code stored at offset 0 of the value (u32, host order)
    params: tuple[ParamSpec, ...] = ()
    default_only: bool = False   # @defaultonly: the table's default action, never in an entry

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True)
class TableSpec:
    name: str                     # P4 short name, e.g. "route"
    p4info_name: str              # e.g. "SwitchIngress.forwarding.route"
    map_name: str                 # BPF map name
    table_id: int                 # index into the table_counters map (TABLE_* in consts.h)
    key_size: int
    value_size: int
    match_fields: tuple[MatchFieldSpec, ...]
    actions: tuple[ActionSpec, ...]
    size: int                     # max entries of the map
    default_action: str           # the const default action (P4 short name)
    direct_counter: str | None = None          # P4 short name of the direct counter = its map's
    direct_counter_p4info_name: str | None = None  # name (per-CPU hash keyed like the table)
    lpm_prefix_offset: int | None = None           # LPM trie: key offset of the u32 prefixlen
    value_prefix_offset: int | None = None         # LPM trie: value offset of a copy of it (the
                                                   # data plane keys the direct counter with it)
    const_default: bool = True    # False: the control plane may change the default action

    @property
    def keyless(self) -> bool:
        """A table without key: only its default action (an array of one element, key 0)."""
        return not self.match_fields

    def action(self, name: str) -> ActionSpec | None:
        return next((a for a in self.actions if a.name == name), None)

    def action_by_code(self, code: int) -> ActionSpec | None:
        return next((a for a in self.actions if a.code == code), None)

    @property
    def lpm_field(self) -> MatchFieldSpec | None:
        return next((f for f in self.match_fields if f.match_kind == "lpm"), None)


@dataclass(frozen=True)
class MapSpec:
    """A map that is not a table (ports, counters): checked against the object by the tests."""

    name: str
    key_size: int
    value_size: int
    max_entries: int
    fields: tuple[str, ...] = ()   # u64 counter field names, in struct order


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    tables: tuple[TableSpec, ...]
    maps: tuple[MapSpec, ...]
    program: str = "pipe_ingress"      # the entry function attached to every port
    internal_maps: tuple[str, ...] = ()  # pinned maps that are no table (.rodata of the object)

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if name in (t.name, t.p4info_name):
                return t
        raise TableError("INVALID_ARGUMENT", f"pipeline {self.name} has no table {name!r}")

    def map_spec(self, name: str) -> MapSpec:
        return next(m for m in self.maps if m.name == name)


@dataclass(frozen=True)
class Entry:
    table: str
    key: dict[str, int | tuple[int, int]]
    action: str
    params: dict[str, int]


# --- the shared maps (system/switch/bpf/maps.h) -------------------------------------------------

PORT_F_PEER = 1  # structs.h: deliver into the veth's peer (bpf_redirect_peer)

DROP_REASONS = ("none", "not_ipv4", "arp", "malformed", "ttl_expired", "table_miss", "action_drop",
                "no_egress", "unknown_ingress", "ip_options", "no_cookie_key", "untrusted_port")
PORT_COUNTER_FIELDS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "drops")
TABLE_COUNTER_FIELDS = ("hit_packets", "hit_bytes", "miss_packets", "miss_bytes")
DROP_COUNTER_FIELDS = ("packets", "bytes")
DIRECT_COUNTER_FIELDS = ("packets", "bytes")   # struct direct_counter (structs.h)

COMMON_MAPS = (
    MapSpec("ports", 4, 16, MAX_PORTS + 1),
    MapSpec("ifindex_port", 4, 4, MAX_PORTS + 1),
    MapSpec("port_counters", 4, 8 * len(PORT_COUNTER_FIELDS), MAX_PORTS + 1, PORT_COUNTER_FIELDS),
    MapSpec("drop_counters", 4, 8 * len(DROP_COUNTER_FIELDS), len(DROP_REASONS), DROP_COUNTER_FIELDS),
)

# --- the route table (system/switch/bpf/forwarding.h, p4src/include/forwarding.p4) --------------

ROUTE_TABLE_SIZE = 1024  # consts.h ROUTE_TABLE_SIZE, p4src/include/sizes.p4

ROUTE = TableSpec(
    name="route",
    p4info_name="SwitchIngress.forwarding.route",
    map_name="route",
    table_id=0,
    key_size=8,
    value_size=24,
    match_fields=(MatchFieldSpec("dst_addr", 32, "lpm", Layout(4, 4, "network")),),
    actions=(
        ActionSpec("forward", "SwitchIngress.forwarding.forward", 1, (
            ParamSpec("port", 9, Layout(4, 4, "host")),
            ParamSpec("smac", 48, Layout(8, 6, "network")),
            ParamSpec("dmac", 48, Layout(14, 6, "network")),
        )),
        ActionSpec("drop", "SwitchIngress.forwarding.drop", 2),
    ),
    size=ROUTE_TABLE_SIZE,
    default_action="drop",
    direct_counter="route_counter",
    direct_counter_p4info_name="SwitchIngress.forwarding.route_counter",
    lpm_prefix_offset=0,
    value_prefix_offset=20,
)


def table_counters_map(tables: tuple[TableSpec, ...]) -> MapSpec:
    return MapSpec("table_counters", 4, 8 * len(TABLE_COUNTER_FIELDS), len(tables), TABLE_COUNTER_FIELDS)


def direct_counter_maps(tables: tuple[TableSpec, ...]) -> tuple[MapSpec, ...]:
    """The per-CPU direct counter maps (DIRECT_COUNTER_MAP in structs.h): keyed like the table."""
    return tuple(MapSpec(t.direct_counter, t.key_size, 8 * len(DIRECT_COUNTER_FIELDS), t.size,
                         DIRECT_COUNTER_FIELDS) for t in tables if t.direct_counter)


FORWARDING = PipelineSpec(
    name="forwarding",
    tables=(ROUTE,),
    maps=(*COMMON_MAPS, table_counters_map((ROUTE,)), *direct_counter_maps((ROUTE,))),
)

# --- pipeline miresga (system/switch/bpf/miresga*.h, p4src/miresga.p4) ---------------------------

VIP_TABLE_SIZE = 64                  # miresga_tables.h, p4src/include/miresga_sizes.p4
BACKENDS_TABLE_SIZE = 1024
FRONTEND_BUCKET_TABLE_SIZE = 256     # = FRONTEND_BUCKETS, the N of the bucket hash
OFFLOAD_TABLE_SIZE = 143360
BACKEND_BY_INDEX_TABLE_SIZE = 1024
SYN_COOKIE_TABLE_SIZE = 1
PROTECTED_HOSTS_TABLE_SIZE = 1024    # guard_tables.h (shared with switch_only), miresga_sizes.p4
TRUSTED_PORTS_TABLE_SIZE = 128
_MI = "SwitchIngress.miresga"


def _endpoint_key(addr: str, port: str) -> tuple[MatchFieldSpec, ...]:
    return (MatchFieldSpec(addr, 32, "exact", Layout(0, 4, "network")),
            MatchFieldSpec(port, 16, "exact", Layout(4, 2, "network")))


def _miss(name: str) -> ActionSpec:
    return ActionSpec(name, f"{_MI}.{name}", 2, default_only=True)


def _counted(name: str, table_id: int, key_size: int, value_size: int,
             match_fields: tuple[MatchFieldSpec, ...], actions: tuple[ActionSpec, ...], size: int,
             default_action: str) -> TableSpec:
    return TableSpec(name=name, p4info_name=f"{_MI}.{name}", map_name=name, table_id=table_id,
                     key_size=key_size, value_size=value_size, match_fields=match_fields,
                     actions=actions, size=size, default_action=default_action,
                     direct_counter=f"{name}_counter",
                     direct_counter_p4info_name=f"{_MI}.{name}_counter")


VIP = _counted("vip", 1, 8, 4, _endpoint_key("dst_addr", "dst_port"),
               (ActionSpec("mark_vip", f"{_MI}.mark_vip", 1), _miss("vip_miss")),
               VIP_TABLE_SIZE, "vip_miss")
BACKENDS = _counted("backends", 2, 8, 12, _endpoint_key("src_addr", "src_port"),
                    (ActionSpec("mark_backend", f"{_MI}.mark_backend", 1, (
                        ParamSpec("vip_addr", 32, Layout(4, 4, "network")),
                        ParamSpec("vip_port", 16, Layout(8, 2, "network")),
                    )), _miss("backends_miss")),
                    BACKENDS_TABLE_SIZE, "backends_miss")
FRONTEND_BUCKET = _counted("frontend_bucket", 3, 4, 16,
                           (MatchFieldSpec("bucket", 16, "exact", Layout(0, 4, "host")),),
                           (ActionSpec("to_frontend", f"{_MI}.to_frontend", 1, (
                               ParamSpec("port", 9, Layout(4, 4, "host")),
                               ParamSpec("dmac", 48, Layout(8, 6, "network")),
                           )), _miss("frontend_bucket_drop")),
                           FRONTEND_BUCKET_TABLE_SIZE, "frontend_bucket_drop")
OFFLOAD = _counted("offload", 4, 8, 8, _endpoint_key("client_addr", "client_port"),
                   (ActionSpec("to_backend", f"{_MI}.to_backend", 1, (
                       ParamSpec("index", 16, Layout(4, 4, "host")),
                   )), _miss("offload_miss")),
                   OFFLOAD_TABLE_SIZE, "offload_miss")
BACKEND_BY_INDEX = _counted("backend_by_index", 5, 4, 24,
                            (MatchFieldSpec("index", 16, "exact", Layout(0, 4, "host")),),
                            (ActionSpec("set_backend", f"{_MI}.set_backend", 1, (
                                ParamSpec("port", 9, Layout(4, 4, "host")),
                                ParamSpec("dmac", 48, Layout(8, 6, "network")),
                                ParamSpec("dst_addr", 32, Layout(16, 4, "network")),
                                ParamSpec("dst_port", 16, Layout(20, 2, "network")),
                            )), _miss("backend_by_index_miss")),
                            BACKEND_BY_INDEX_TABLE_SIZE, "backend_by_index_miss")
SYN_COOKIE = TableSpec(
    name="syn_cookie", p4info_name=f"{_MI}.syn_cookie", map_name="syn_cookie", table_id=6,
    key_size=4, value_size=16, match_fields=(),
    actions=(ActionSpec("set_cookie_secret", f"{_MI}.set_cookie_secret", 1, (
        ParamSpec("key", 64, Layout(8, 8, "host")),     # k0 = key[0], k1 = key[1] (synack_tables.h)
        ParamSpec("slot", 32, Layout(4, 4, "host")),), default_only=True),),
    size=SYN_COOKIE_TABLE_SIZE, default_action="set_cookie_secret", const_default=False)

# The back-end guard (guard.h): protected_hosts (a back-end's data address) is admitted only from
# trusted_ports (front-ends', back-ends' ports). Ids 7 and 8 in both pipelines.
_PROTECTED_KEY = (MatchFieldSpec("dst_addr", 32, "exact", Layout(0, 4, "network")),)
_TRUSTED_KEY = (MatchFieldSpec("port", 9, "exact", Layout(0, 4, "host")),)
PROTECTED_HOSTS = _counted("protected_hosts", 7, 4, 4, _PROTECTED_KEY,
                           (ActionSpec("mark_protected", f"{_MI}.mark_protected", 1),
                            _miss("protected_hosts_miss")),
                           PROTECTED_HOSTS_TABLE_SIZE, "protected_hosts_miss")
TRUSTED_PORTS = _counted("trusted_ports", 8, 4, 4, _TRUSTED_KEY,
                         (ActionSpec("mark_trusted", f"{_MI}.mark_trusted", 1), _miss("trusted_ports_miss")),
                         TRUSTED_PORTS_TABLE_SIZE, "trusted_ports_miss")

MIRESGA_TABLES = (ROUTE, VIP, BACKENDS, FRONTEND_BUCKET, OFFLOAD, BACKEND_BY_INDEX, SYN_COOKIE,
                  PROTECTED_HOSTS, TRUSTED_PORTS)
MIRESGA = PipelineSpec(
    name="miresga",
    tables=MIRESGA_TABLES,
    maps=(*COMMON_MAPS, table_counters_map(MIRESGA_TABLES), *direct_counter_maps(MIRESGA_TABLES)),
    internal_maps=("miresga_rodata",),   # the CRC32 table (miresga_crc32.h), pinned by bpftool
)

# --- pipeline switch_only (system/switch/bpf/switch_only*.h, p4src/switch_only.p4) ----------------
# The switch-only baseline (docs/switch-only-datapath.md). vip, backends and syn_cookie as in
# miresga (mark_backend without params); conn_in/conn_out are the per-connection tables the slow
# path installs; slow_path is keyless, its default action names the CPU port.

CONN_IN_TABLE_SIZE = 71680           # switch_only_tables.h, p4src/include/switch_only_sizes.p4
CONN_OUT_TABLE_SIZE = 71680          # (the Tofino-1 figure; profiles may allow fewer)
SLOW_PATH_TABLE_SIZE = 1
_SO = "SwitchIngress.switch_only"


def _so_miss(name: str) -> ActionSpec:
    return ActionSpec(name, f"{_SO}.{name}", 2, default_only=True)


def _so_counted(name: str, table_id: int, key_size: int, value_size: int,
                match_fields: tuple[MatchFieldSpec, ...], actions: tuple[ActionSpec, ...], size: int,
                default_action: str) -> TableSpec:
    return TableSpec(name=name, p4info_name=f"{_SO}.{name}", map_name=name, table_id=table_id,
                     key_size=key_size, value_size=value_size, match_fields=match_fields,
                     actions=actions, size=size, default_action=default_action,
                     direct_counter=f"{name}_counter",
                     direct_counter_p4info_name=f"{_SO}.{name}_counter")


def _four_tuple(a: tuple[str, str], b: tuple[str, str]) -> tuple[MatchFieldSpec, ...]:
    """Key (a_addr, a_port, b_addr, b_port) in P4 order; the struct holds both addresses first."""
    return (MatchFieldSpec(a[0], 32, "exact", Layout(0, 4, "network")),
            MatchFieldSpec(a[1], 16, "exact", Layout(8, 2, "network")),
            MatchFieldSpec(b[0], 32, "exact", Layout(4, 4, "network")),
            MatchFieldSpec(b[1], 16, "exact", Layout(10, 2, "network")))


SO_VIP = _so_counted("vip", 1, 8, 4, _endpoint_key("dst_addr", "dst_port"),
                     (ActionSpec("mark_vip", f"{_SO}.mark_vip", 1), _so_miss("miss_vip")),
                     VIP_TABLE_SIZE, "miss_vip")
SO_BACKENDS = _so_counted("backends", 2, 8, 4, _endpoint_key("src_addr", "src_port"),
                          (ActionSpec("mark_backend", f"{_SO}.mark_backend", 1), _so_miss("miss_backend")),
                          BACKENDS_TABLE_SIZE, "miss_backend")
CONN_IN = _so_counted("conn_in", 3, 12, 32,
                      _four_tuple(("client_addr", "client_port"), ("vip_addr", "vip_port")),
                      (ActionSpec("to_backend", f"{_SO}.to_backend", 1, (
                          ParamSpec("backend_addr", 32, Layout(8, 4, "network")),
                          ParamSpec("backend_port", 16, Layout(12, 2, "network")),
                          ParamSpec("port", 9, Layout(4, 4, "host")),
                          ParamSpec("smac", 48, Layout(14, 6, "network")),
                          ParamSpec("dmac", 48, Layout(20, 6, "network")),
                          ParamSpec("ack_delta", 32, Layout(28, 4, "host")),
                      )), _so_miss("miss_conn_in")),
                      CONN_IN_TABLE_SIZE, "miss_conn_in")
CONN_OUT = _so_counted("conn_out", 4, 12, 16,
                       _four_tuple(("backend_addr", "backend_port"), ("client_addr", "client_port")),
                       (ActionSpec("to_client", f"{_SO}.to_client", 1, (
                           ParamSpec("vip_addr", 32, Layout(4, 4, "network")),
                           ParamSpec("vip_port", 16, Layout(8, 2, "network")),
                           ParamSpec("seq_delta", 32, Layout(12, 4, "host")),
                       )), _so_miss("miss_conn_out")),
                       CONN_OUT_TABLE_SIZE, "miss_conn_out")
SO_SYN_COOKIE = TableSpec(
    name="syn_cookie", p4info_name=f"{_SO}.syn_cookie", map_name="syn_cookie", table_id=5,
    key_size=4, value_size=16, match_fields=(),
    actions=(ActionSpec("set_cookie_secret", f"{_SO}.set_cookie_secret", 1, (
        ParamSpec("key", 64, Layout(8, 8, "host")),     # k0 = key[0], k1 = key[1] (synack_tables.h)
        ParamSpec("slot", 32, Layout(4, 4, "host")),), default_only=True),),
    size=SYN_COOKIE_TABLE_SIZE, default_action="set_cookie_secret", const_default=False)
SLOW_PATH = TableSpec(
    name="slow_path", p4info_name=f"{_SO}.slow_path", map_name="slow_path", table_id=6,
    key_size=4, value_size=8, match_fields=(),
    actions=(ActionSpec("set_slow_path", f"{_SO}.set_slow_path", 1, (
        ParamSpec("port", 9, Layout(4, 4, "host")),), default_only=True),),
    size=SLOW_PATH_TABLE_SIZE, default_action="set_slow_path", const_default=False)

SO_PROTECTED_HOSTS = _so_counted("protected_hosts", 7, 4, 4, _PROTECTED_KEY,
                                 (ActionSpec("mark_protected", f"{_SO}.mark_protected", 1),
                                  _so_miss("miss_protected")),
                                 PROTECTED_HOSTS_TABLE_SIZE, "miss_protected")
SO_TRUSTED_PORTS = _so_counted("trusted_ports", 8, 4, 4, _TRUSTED_KEY,
                               (ActionSpec("mark_trusted", f"{_SO}.mark_trusted", 1), _so_miss("miss_trusted")),
                               TRUSTED_PORTS_TABLE_SIZE, "miss_trusted")

SWITCH_ONLY_TABLES = (ROUTE, SO_VIP, SO_BACKENDS, CONN_IN, CONN_OUT, SO_SYN_COOKIE, SLOW_PATH,
                      SO_PROTECTED_HOSTS, SO_TRUSTED_PORTS)
SWITCH_ONLY = PipelineSpec(
    name="switch_only",
    tables=SWITCH_ONLY_TABLES,
    maps=(*COMMON_MAPS, table_counters_map(SWITCH_ONLY_TABLES),
          *direct_counter_maps(SWITCH_ONLY_TABLES)),
    # no .rodata since issue 10: the SYN cookie is HalfSipHash (no table); the bucket hash is miresga's
)

PIPELINES: dict[str, PipelineSpec] = {"forwarding": FORWARDING, "miresga": MIRESGA,
                                      "switch_only": SWITCH_ONLY}


def pipeline_spec(name: str) -> PipelineSpec:
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES))}") from None


def load_p4info(pipeline: str):  # -> p4.config.v1.p4info_pb2.P4Info
    """The P4Info of a pipeline (p4src/<pipeline>.p4info.txtpb: p4c-barefoot's output, harness/p4c.py)."""
    from google.protobuf import text_format
    from p4.config.v1 import p4info_pb2

    path = P4SRC / f"{pipeline}.p4info.txtpb"
    if not path.is_file():
        raise ValueError(f"no P4Info for pipeline {pipeline!r}: {path} is missing")
    return text_format.Parse(path.read_text(), p4info_pb2.P4Info())


# --- encoding -----------------------------------------------------------------------------------

def _put(buf: bytearray, lay: Layout, value: int) -> None:
    order = "big" if lay.order == "network" else "little"
    buf[lay.offset: lay.offset + lay.size] = value.to_bytes(lay.size, order)


def _get(buf: bytes, lay: Layout) -> int:
    order = "big" if lay.order == "network" else "little"
    return int.from_bytes(buf[lay.offset: lay.offset + lay.size], order)


def _check_int(what: str, value: object, bitwidth: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TableError("INVALID_ARGUMENT", f"{what} must be an integer, got {value!r}")
    if value < 0 or value >= 1 << bitwidth:
        raise TableError("INVALID_ARGUMENT", f"{what}={value} does not fit in {bitwidth} bits")
    return value


def encode_key(spec: TableSpec, key: dict[str, int | tuple[int, int]]) -> bytes:
    names = {f.name for f in spec.match_fields}
    if set(key) != names:
        raise TableError("INVALID_ARGUMENT", f"table {spec.name}: key fields {sorted(key)} "
                                             f"!= {sorted(names)}")
    buf = bytearray(spec.key_size)
    for f in spec.match_fields:
        raw = key[f.name]
        if f.match_kind == "exact":
            _put(buf, f.layout, _check_int(f"{spec.name}.{f.name}", raw, f.bitwidth))
        elif f.match_kind == "lpm":
            if not (isinstance(raw, tuple) and len(raw) == 2):
                raise TableError("INVALID_ARGUMENT", f"{spec.name}.{f.name}: LPM key is "
                                                     f"(value, prefix_len), got {raw!r}")
            value = _check_int(f"{spec.name}.{f.name}", raw[0], f.bitwidth)
            plen = raw[1]
            if not isinstance(plen, int) or not 0 <= plen <= f.bitwidth:
                raise TableError("INVALID_ARGUMENT", f"{spec.name}.{f.name}: prefix length "
                                                     f"{plen!r} not in 0..{f.bitwidth}")
            if value & ((1 << (f.bitwidth - plen)) - 1):
                raise TableError("INVALID_ARGUMENT", f"{spec.name}.{f.name}: bits beyond the "
                                                     f"/{plen} prefix must be zero")
            _put(buf, f.layout, value)
            assert spec.lpm_prefix_offset is not None
            before = 8 * (f.layout.offset - spec.lpm_prefix_offset - 4)
            _put(buf, Layout(spec.lpm_prefix_offset, 4, "host"), before + plen)
        else:
            raise TableError("INVALID_ARGUMENT", f"{spec.name}.{f.name}: match kind "
                                                 f"{f.match_kind} is not supported by this target")
    return bytes(buf)


def decode_key(spec: TableSpec, raw: bytes) -> dict[str, int | tuple[int, int]]:
    out: dict[str, int | tuple[int, int]] = {}
    for f in spec.match_fields:
        if f.match_kind == "lpm":
            assert spec.lpm_prefix_offset is not None
            before = 8 * (f.layout.offset - spec.lpm_prefix_offset - 4)
            plen = _get(raw, Layout(spec.lpm_prefix_offset, 4, "host")) - before
            out[f.name] = (_get(raw, f.layout), plen)
        else:
            out[f.name] = _get(raw, f.layout)
    return out


def encode_value(spec: TableSpec, action: str, params: dict[str, int]) -> bytes:
    act = spec.action(action)
    if act is None:
        raise TableError("INVALID_ARGUMENT", f"table {spec.name} has no action {action!r} "
                                             f"(actions: {[a.name for a in spec.actions]})")
    names = {p.name for p in act.params}
    if set(params) != names:
        raise TableError("INVALID_ARGUMENT", f"action {action}: params {sorted(params)} "
                                             f"!= {sorted(names)}")
    buf = bytearray(spec.value_size)
    _put(buf, Layout(0, 4, "host"), act.code)
    for p in act.params:
        _put(buf, p.layout, _check_int(f"{action}.{p.name}", params[p.name], p.bitwidth))
    return bytes(buf)


def decode_value(spec: TableSpec, raw: bytes) -> tuple[str, dict[str, int]]:
    code = _get(raw, Layout(0, 4, "host"))
    act = spec.action_by_code(code)
    if act is None:
        raise ValueError(f"table {spec.name}: unknown action code {code} in the map")
    return act.name, {p.name: _get(raw, p.layout) for p in act.params}


def _sum_u64_fields(values: list[bytes], names: tuple[str, ...]) -> dict[str, int]:
    totals = dict.fromkeys(names, 0)
    for v in values:
        for i, n in enumerate(names):
            totals[n] += struct.unpack_from("<Q", v, 8 * i)[0]
    return totals


# --- the facade ---------------------------------------------------------------------------------

@dataclass
class PipelineTables:
    """Tables of a loaded pipeline, by the maps pinned under `pin_dir`/maps."""

    spec: PipelineSpec
    pin_dir: Path
    _maps: dict[str, Map] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.pin_dir = Path(self.pin_dir)
        names = [t.map_name for t in self.spec.tables] + [m.name for m in self.spec.maps]
        try:
            for name in names:
                self._maps[name] = Map.pinned(self.pin_dir / "maps" / name)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        for m in self._maps.values():
            m.close()
        self._maps.clear()

    def __enter__(self) -> PipelineTables:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _map(self, name: str) -> Map:
        return self._maps[name]

    # entries

    def _write(self, spec: TableSpec, key: bytes, value: bytes, flags: int, what: str) -> None:
        try:
            self._map(spec.map_name).update(key, value, flags)
        except BpfError as exc:
            if exc.errno == errno.EEXIST:
                raise TableError("ALREADY_EXISTS", f"{what}: entry exists in {spec.name}") from None
            if exc.errno == errno.ENOENT:
                raise TableError("NOT_FOUND", f"{what}: no such entry in {spec.name}") from None
            if exc.errno in (errno.E2BIG, errno.ENOSPC, errno.ENOMEM):
                raise TableError("RESOURCE_EXHAUSTED",
                                 f"{what}: table {spec.name} is full ({spec.size} entries)") from None
            raise

    @staticmethod
    def _entry_action(spec: TableSpec, action: str, what: str) -> None:
        if spec.keyless:
            raise TableError("INVALID_ARGUMENT", f"{what}: table {spec.name} is keyless; "
                                                 "write its default action (set_default)")
        act = spec.action(action)
        if act is not None and act.default_only:
            raise TableError("INVALID_ARGUMENT", f"{what}: action {action} of table {spec.name} "
                                                 "is default-only")

    @staticmethod
    def _value(spec: TableSpec, kb: bytes, action: str, params: dict[str, int]) -> bytes:
        value = encode_value(spec, action, params)
        if spec.value_prefix_offset is None:
            return value
        assert spec.lpm_prefix_offset is not None
        o, p = spec.value_prefix_offset, spec.lpm_prefix_offset
        return value[:o] + kb[p: p + 4] + value[o + 4:]

    def _reset_counter(self, spec: TableSpec, kb: bytes) -> None:
        """Zero the entry's direct counter (per-CPU hash keyed like the table), creating it."""
        m = self._map(spec.direct_counter)  # type: ignore[arg-type]
        m.update(kb, bytes(m.value_buffer_size))

    def _drop_counter(self, spec: TableSpec, kb: bytes) -> None:
        try:
            self._map(spec.direct_counter).delete(kb)  # type: ignore[arg-type]
        except BpfError as exc:
            if exc.errno != errno.ENOENT:
                raise

    def insert(self, table: str, key: dict[str, int | tuple[int, int]], action: str,
               params: dict[str, int]) -> None:
        """Insert an entry; its direct counter starts at zero (created after the entry: a packet
        in between is not counted)."""
        spec = self.spec.table(table)
        self._entry_action(spec, action, "insert")
        kb = encode_key(spec, key)
        self._write(spec, kb, self._value(spec, kb, action, params), BPF_NOEXIST, "insert")
        if spec.direct_counter:
            try:
                self._reset_counter(spec, kb)
            except BaseException:
                self._map(spec.map_name).delete(kb)   # no entry without its counter
                raise

    def modify(self, table: str, key: dict[str, int | tuple[int, int]], action: str,
               params: dict[str, int]) -> None:
        """Replace the action of an existing entry; its direct counter is kept."""
        spec = self.spec.table(table)
        self._entry_action(spec, action, "modify")
        kb = encode_key(spec, key)
        # BPF_EXIST: the exact key (an LPM trie too); the counter map is not touched.
        self._write(spec, kb, self._value(spec, kb, action, params), BPF_EXIST, "modify")

    def delete(self, table: str, key: dict[str, int | tuple[int, int]]) -> None:
        spec = self.spec.table(table)
        if spec.keyless:
            raise TableError("INVALID_ARGUMENT", f"delete: table {spec.name} is keyless")
        kb = encode_key(spec, key)
        try:
            self._map(spec.map_name).delete(kb)
        except BpfError as exc:
            if exc.errno == errno.ENOENT:
                raise TableError("NOT_FOUND", f"delete: no such entry in {spec.name}") from None
            raise
        if spec.direct_counter:
            self._drop_counter(spec, kb)

    def _exact_lookup(self, spec: TableSpec, kb: bytes) -> bytes | None:
        m = self._map(spec.map_name)
        if spec.lpm_prefix_offset is None:
            return m.lookup(kb)
        # A trie lookup returns the longest match, not the exact prefix: walk the keys instead.
        for k in m.iter_keys():
            if k == kb:
                return m.lookup(k)
        return None

    def get(self, table: str, key: dict[str, int | tuple[int, int]]) -> Entry | None:
        spec = self.spec.table(table)
        if spec.keyless:
            return None   # no entries, only a default action (get_default)
        kb = encode_key(spec, key)
        raw = self._exact_lookup(spec, kb)
        if raw is None:
            return None
        action, params = decode_value(spec, raw)
        return Entry(spec.name, decode_key(spec, kb), action, params)

    def read(self, table: str) -> list[Entry]:
        spec = self.spec.table(table)
        if spec.keyless:
            return []   # only a default action, read with get_default
        m = self._map(spec.map_name)
        out = []
        for kb in list(m.iter_keys()):
            raw = m.lookup(kb)
            if raw is None:  # deleted meanwhile
                continue
            action, params = decode_value(spec, raw)
            out.append(Entry(spec.name, decode_key(spec, kb), action, params))
        return out

    def count(self, table: str) -> int:
        spec = self.spec.table(table)
        if spec.keyless:
            return 0
        return sum(1 for _ in self._map(spec.map_name).iter_keys())

    def clear(self, table: str) -> int:
        """Delete every entry; return how many were deleted."""
        spec = self.spec.table(table)
        if spec.keyless:
            return 0
        m = self._map(spec.map_name)
        keys = list(m.iter_keys())
        for kb in keys:
            m.delete(kb)
            if spec.direct_counter:
                self._drop_counter(spec, kb)
        return len(keys)

    # default actions (keyless tables: an array of one element, key 0)

    def set_default(self, table: str, action: str, params: dict[str, int]) -> None:
        """Change the default action of a table whose default is not const (syn_cookie)."""
        spec = self.spec.table(table)
        if spec.const_default or not spec.keyless:
            raise TableError("INVALID_ARGUMENT", f"table {spec.name}: the default action is const")
        self._map(spec.map_name).update(struct.pack("<I", 0), encode_value(spec, action, params))

    def get_default(self, table: str) -> Entry:
        """The default action of a table (for const defaults: the declared one, no params)."""
        spec = self.spec.table(table)
        act = spec.action(spec.default_action)
        assert act is not None
        if not spec.keyless:
            return Entry(spec.name, {}, act.name, {})
        raw = self._map(spec.map_name).lookup(struct.pack("<I", 0))
        if raw is None or struct.unpack_from("<I", raw)[0] == 0:   # never written: params 0
            return Entry(spec.name, {}, act.name, {p.name: 0 for p in act.params})
        action, params = decode_value(spec, raw)
        return Entry(spec.name, {}, action, params)

    # counters

    def entry_counters(self, table: str, key: dict[str, int | tuple[int, int]]) -> dict[str, int]:
        """The direct counter of one entry: {"packets", "bytes"}, summed over the CPUs."""
        spec = self.spec.table(table)
        if spec.direct_counter is None:
            raise TableError("INVALID_ARGUMENT", f"table {spec.name} has no direct counter")
        kb = encode_key(spec, key)
        values = self._map(spec.direct_counter).lookup_percpu(kb)
        if values:   # exists exactly while the entry does (insert creates it, delete removes it)
            return _sum_u64_fields(values, DIRECT_COUNTER_FIELDS)
        if self._exact_lookup(spec, kb) is None:
            raise TableError("NOT_FOUND", f"no such entry in {spec.name}")
        return dict.fromkeys(DIRECT_COUNTER_FIELDS, 0)   # inserted, counter not yet created

    def counters(self, table: str) -> dict[str, int]:
        spec = self.spec.table(table)
        values = self._map("table_counters").lookup_percpu(struct.pack("<I", spec.table_id))
        return _sum_u64_fields(values, TABLE_COUNTER_FIELDS)

    def _port_entries(self) -> dict[int, tuple[int, int]]:
        """P4 port -> (ifindex, PORT_F_* flags) for every configured port."""
        m = self._map("ports")
        out = {}
        for port in range(1, MAX_PORTS + 1):
            raw = m.lookup(struct.pack("<I", port))
            if raw and (entry := struct.unpack_from("<II", raw))[0]:
                out[port] = entry
        return out

    def configured_ports(self) -> dict[int, int]:
        """P4 port -> ifindex for every configured port."""
        return {port: ifindex for port, (ifindex, _) in self._port_entries().items()}

    def peer_ports(self) -> set[int]:
        """The configured ports delivered into with bpf_redirect_peer (PORT_F_PEER)."""
        return {port for port, (_, flags) in self._port_entries().items() if flags & PORT_F_PEER}

    def port_counters(self) -> dict[int, dict[str, int]]:
        """rx/tx packets and bytes and drops per configured P4 port."""
        m = self._map("port_counters")
        return {port: _sum_u64_fields(m.lookup_percpu(struct.pack("<I", port)), PORT_COUNTER_FIELDS)
                for port in self.configured_ports()}

    def drop_counters(self) -> dict[str, dict[str, int]]:
        """Packets and bytes dropped, per reason (DROP_REASONS, "none" left out)."""
        m = self._map("drop_counters")
        return {reason: _sum_u64_fields(m.lookup_percpu(struct.pack("<I", i)), DROP_COUNTER_FIELDS)
                for i, reason in enumerate(DROP_REASONS) if i}

    # ports (the loader's job; kept here so that nothing else writes map bytes)

    def set_port(self, port: int, ifindex: int, peer_mac: bytes | None = None) -> None:
        """Port `port` is interface `ifindex`; `peer_mac`: the port is a veth whose peer (with this
        MAC) is in another namespace, delivered into with bpf_redirect_peer (structs.h PORT_F_PEER)."""
        if not 1 <= port <= MAX_PORTS:
            raise TableError("INVALID_ARGUMENT", f"port {port} not in 1..{MAX_PORTS}")
        if peer_mac is not None and len(peer_mac) != 6:
            raise TableError("INVALID_ARGUMENT", f"port {port}: peer MAC must be 6 bytes")
        value = struct.pack("<II6s2x", ifindex, PORT_F_PEER if peer_mac else 0, peer_mac or bytes(6))
        self._map("ports").update(struct.pack("<I", port), value)
        self._map("ifindex_port").update(struct.pack("<I", ifindex), struct.pack("<I", port))
