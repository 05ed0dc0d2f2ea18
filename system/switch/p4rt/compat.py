"""The seam between the P4Runtime server and the emulated target (engineer C's interface).

Everything the server needs from `system.switch.{target,tables,package}` goes through here:
the target's constructor, package parsing, the pipeline's spec and P4Info, the table facade's
names, its errors and its counters. `Binding` maps P4Info names (what P4Runtime messages carry) to
the spec's P4 names (what `PipelineTables` takes) for one table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from system.switch import tables as _tables
from system.switch.p4rt.codec import ActionInfo, Key, P4InfoIndex, TableInfo
from system.switch.p4rt.errors import P4RTError

TableError = _tables.TableError


def make_switch(netns: str | None, ports: dict[int, str], pin_dir: Path) -> Any:
    from system.switch.target import EmulatedSwitch

    return EmulatedSwitch(netns, ports, pin_dir)


def parse_package(data: bytes) -> Any:
    from system.switch.package import parse_package as parse

    return parse(data)


def build_package(pipeline: str) -> bytes:
    from system.switch.package import build_package as build

    return build(pipeline)


def load_p4info(pipeline: str) -> p4info_pb2.P4Info:
    return _tables.load_p4info(pipeline)


def package_pipeline(package: Any) -> str:
    return str(_attr(package, "pipeline", "name", "spec_name"))


def package_spec(package: Any) -> Any:
    spec = getattr(package, "spec", None)
    if spec is not None:
        return spec
    try:
        return _tables.pipeline_spec(package_pipeline(package))
    except ValueError as e:
        raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None


def spec_tables(spec: Any) -> list[Any]:
    return list(spec.tables)


def table_name(t: Any) -> str:
    return str(t.name)


def table_full_name(t: Any) -> str:
    return str(t.p4info_name)


def table_size(t: Any) -> int:
    return int(t.size)


def _attr(obj: Any, *names: str) -> Any:
    for n in names:
        if hasattr(obj, n):
            return getattr(obj, n)
    raise AttributeError(f"{type(obj).__name__} has none of {names}")


_CODES = {"ALREADY_EXISTS": grpc.StatusCode.ALREADY_EXISTS, "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
          "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
          "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED}


def table_error(e: Exception) -> P4RTError:
    code = _CODES.get(str(getattr(e, "code", "")), grpc.StatusCode.INTERNAL)
    return P4RTError(code, str(getattr(e, "message", e)))


def _last(name: str) -> str:
    return name.split(".")[-1]


class Binding:
    """P4Info names <-> the spec's names for one table."""

    def __init__(self, spec: Any, table: TableInfo) -> None:
        self.info = table
        self.spec_table = None
        for t in spec_tables(spec):
            if table.name in (table_full_name(t), table_name(t)) or table.alias == table_name(t):
                self.spec_table = t
                break
        if self.spec_table is None:
            raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT, f"table {table.name} has no counterpart in "
                            "the target's pipeline")
        self.table = table_name(self.spec_table)
        spec_fields = [f.name for f in self.spec_table.match_fields]
        self._f2s = {f.name: _match_name(f.name, spec_fields) for f in table.fields}
        self._s2f = {v: k for k, v in self._f2s.items()}
        self._actions = {}
        for a in self.spec_table.actions:
            self._actions[a.p4info_name] = a

    def key(self, key: Key) -> Key:
        return {self._f2s[k]: v for k, v in key.items()}

    def p4_key(self, key: Key) -> Key:
        return {self._s2f.get(k, k): v for k, v in key.items()}

    def _spec_action(self, a: ActionInfo) -> Any:
        for name in (a.name, a.alias):
            if name in self._actions:
                return self._actions[name]
        for sa in self._actions.values():
            if sa.name in (a.alias, a.name):
                return sa
        raise P4RTError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"action {a.name} is not an action of table {self.table} on this target")

    def action(self, a: ActionInfo | None) -> str:
        assert a is not None
        return str(self._spec_action(a).name)

    def params(self, a: ActionInfo | None, params: dict[str, int]) -> dict[str, int]:
        assert a is not None
        names = [p.name for p in self._spec_action(a).params]
        return {_match_name(k, names): v for k, v in params.items()}

    def action_info(self, idx: P4InfoIndex, name: str) -> ActionInfo:
        for a in idx.actions.values():
            if a.id in self.info.action_ids and name in (a.name, a.alias):
                return a
        sa = next((s for s in self._actions.values() if s.name == name), None)
        if sa is not None:
            return idx.action_by_name(sa.p4info_name)
        raise P4RTError(grpc.StatusCode.INTERNAL, f"table {self.table}: entry with unknown action {name}")

    def p4_params(self, a: ActionInfo, params: dict[str, int]) -> dict[str, int]:
        out = {}
        for p in a.params:
            out[p.name] = params[_match_name(p.name, list(params))]
        return out


def _match_name(name: str, candidates: list[str]) -> str:
    if name in candidates:
        return name
    for c in candidates:
        if _last(c) == _last(name):
            return c
    raise P4RTError(grpc.StatusCode.INTERNAL, f"{name} has no counterpart among {candidates}")


def read_counters(idx: P4InfoIndex, spec: Any, tables: Any,
                  req: p4runtime_pb2.CounterEntry) -> list[p4runtime_pb2.CounterEntry]:
    raise P4RTError(grpc.StatusCode.UNIMPLEMENTED, "counters: pending the target's counter layout")
