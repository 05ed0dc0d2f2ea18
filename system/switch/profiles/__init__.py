"""Switch profiles: per-table capacities and the insertion model of the emulated switch target.

A profile is a YAML file in this directory (or anywhere, by path). `load_profile("tofino1")` or
`load_profile(path)` returns a validated `SwitchProfile`; a wrong file raises one `ProfileError`
whose message names the file and the field. A profile may `extends:` another one (by name or path):
mappings are merged field by field, the extending file winning.

Fields:
  name: str                      profile name (required)
  description: str               optional
  tables: {p4_table: int}        capacity per table, by the P4 table's short name (>= 0)
  default_capacity: int | null   capacity of tables not listed (null: the pipeline's own size)
  insertion:
    rate: float | null           sustained table updates/s (token bucket refill); null: unpaced
    burst: int | null            bucket depth in updates; required with a rate, null without
    write_latency_us: float      fixed cost of every Write RPC that touches a table (>= 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILES_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE = "tofino1"
_KNOWN = {"name", "description", "extends", "tables", "default_capacity", "insertion"}
_KNOWN_INSERTION = {"rate", "burst", "write_latency_us"}


class ProfileError(ValueError):
    """A malformed profile; the message names the file and the field."""


@dataclass(frozen=True)
class InsertionModel:
    rate: float | None = None          # updates/s; None: unpaced
    burst: int | None = None           # updates
    write_latency_us: float = 0.0

    @property
    def paced(self) -> bool:
        return self.rate is not None or self.write_latency_us > 0


@dataclass(frozen=True)
class SwitchProfile:
    name: str
    description: str = ""
    tables: dict[str, int] = field(default_factory=dict)
    default_capacity: int | None = None
    insertion: InsertionModel = field(default_factory=InsertionModel)
    source: Path | None = None

    def capacity(self, table: str, declared_size: int) -> int:
        """The effective capacity of `table`: the profile's, never more than the declared size."""
        cap = self.tables.get(table, self.default_capacity)
        return declared_size if cap is None else min(cap, declared_size)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "tables": dict(self.tables),
                "default_capacity": self.default_capacity,
                "insertion": {"rate": self.insertion.rate, "burst": self.insertion.burst,
                              "write_latency_us": self.insertion.write_latency_us},
                "source": str(self.source) if self.source else None}


def resolve(name_or_path: str | Path | None) -> Path:
    """A profile name (`tofino1`) or a path; None is the default profile."""
    if name_or_path is None:
        name_or_path = DEFAULT_PROFILE
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return PROFILES_DIR / f"{name_or_path}.yaml"


def load_profile(name_or_path: str | Path | None = None) -> SwitchProfile:
    path = resolve(name_or_path)
    data = _load_merged(path, seen=())
    return parse(data, source=path)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: (top level): must be a mapping")
    return data


def _load_merged(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    real = path.resolve()
    if real in seen:
        raise ProfileError(f"{path}: extends: cycle through {', '.join(str(s) for s in seen)}")
    data = _read(path)
    base_ref = data.get("extends")
    if base_ref is None:
        return data
    if not isinstance(base_ref, str):
        raise ProfileError(f"{path}: extends: must be a profile name or path, not {base_ref!r}")
    base_path = resolve(base_ref)
    if not base_path.is_absolute() and not base_path.exists():
        base_path = path.parent / base_ref
    base = _load_merged(base_path, (*seen, real))
    merged = {k: v for k, v in base.items() if k != "extends"}
    for k, v in data.items():
        if k == "extends":
            continue
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = v
    return merged


def parse(data: Any, source: Path | None = None) -> SwitchProfile:
    src = str(source) if source else "<profile>"

    def fail(fld: str, msg: str) -> ProfileError:
        return ProfileError(f"{src}: {fld}: {msg}")

    if not isinstance(data, dict):
        raise fail("(top level)", "must be a mapping")
    unknown = set(data) - _KNOWN
    if unknown:
        raise fail(sorted(unknown)[0], f"unknown field (known: {', '.join(sorted(_KNOWN))})")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise fail("name", "is required (a non-empty string)")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise fail("description", "must be a string")

    tables_raw = data.get("tables") or {}
    if not isinstance(tables_raw, dict):
        raise fail("tables", "must be a mapping of table name to capacity")
    tables: dict[str, int] = {}
    for t, cap in tables_raw.items():
        if not isinstance(t, str) or not t:
            raise fail(f"tables.{t}", "table names are strings (the P4 table's short name)")
        if not _is_int(cap) or cap < 0:
            raise fail(f"tables.{t}", f"capacity must be a non-negative integer, not {cap!r}")
        tables[t] = cap
    default_capacity = data.get("default_capacity")
    if default_capacity is not None and (not _is_int(default_capacity) or default_capacity < 0):
        raise fail("default_capacity", f"must be a non-negative integer or null, not {default_capacity!r}")

    ins = data.get("insertion") or {}
    if not isinstance(ins, dict):
        raise fail("insertion", "must be a mapping (rate, burst, write_latency_us)")
    unknown = set(ins) - _KNOWN_INSERTION
    if unknown:
        raise fail(f"insertion.{sorted(unknown)[0]}",
                   f"unknown field (known: {', '.join(sorted(_KNOWN_INSERTION))})")
    rate = ins.get("rate")
    if rate is not None and (not _is_num(rate) or rate <= 0):
        raise fail("insertion.rate", f"must be a positive number of updates/s or null, not {rate!r}")
    burst = ins.get("burst")
    if rate is not None:
        if burst is None:
            raise fail("insertion.burst", "is required with insertion.rate (bucket depth in updates)")
        if not _is_int(burst) or burst < 1:
            raise fail("insertion.burst", f"must be a positive integer, not {burst!r}")
    elif burst is not None:
        raise fail("insertion.burst", "needs insertion.rate (a bucket without a rate)")
    latency = ins.get("write_latency_us", 0)
    if not _is_num(latency) or latency < 0:
        raise fail("insertion.write_latency_us", f"must be a non-negative number, not {latency!r}")
    return SwitchProfile(name=name, description=description, tables=tables,
                         default_capacity=default_capacity,
                         insertion=InsertionModel(rate=float(rate) if rate is not None else None,
                                                  burst=burst, write_latency_us=float(latency)),
                         source=source)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
