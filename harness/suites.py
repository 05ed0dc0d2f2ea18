"""Suites: declarative files of systems x workloads x load levels x repetitions.

A suite is YAML (`harness/suites/quick.yaml`, `full.yaml`, or any path); `expand` turns it into the
ordered list of cells the runner executes, grouped by system so that each system is deployed once.
`fab run-suite --dry-run` prints that matrix. The format is documented in harness/suites/README.md.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.inventory import ROOT, Inventory
from workloads.spec import MIXES, Workload

SUITES = ROOT / "harness" / "suites"

CONNECTIONS = ("close", "keepalive")
CLIENTS = ("lean", "stock")
VERIFY = ("full", "sampled")


class SuiteError(ValueError):
    pass


@dataclass(frozen=True)
class Load:
    users: int
    spawn_rate: float
    warmup_s: float
    duration_s: float
    pace_rps: float | None


@dataclass(frozen=True)
class Cell:
    system: str
    workload: dict[str, Any]   # the cell.json "workload" object (docs/run-directory.md)
    load: Load
    repetition: int

    @property
    def cell_id(self) -> str:
        return f"{self.system}--{self.workload['name']}--u{self.load.users}--r{self.repetition}"

    def to_dict(self) -> dict[str, Any]:
        return {"cell_id": self.cell_id, "system": self.system, "workload": self.workload,
                "load": asdict(self.load), "repetition": self.repetition}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    source: Path | None
    systems: tuple[str, ...]
    cells: tuple[Cell, ...]
    raw: dict[str, Any]

    @property
    def estimated_seconds(self) -> float:
        return sum(c.load.warmup_s + c.load.duration_s + 6 for c in self.cells) + 40 * len(self.systems)


def resolve(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return SUITES / f"{name_or_path}.yaml"


def load(name_or_path: str, inv: Inventory, systems_known: tuple[str, ...]) -> Suite:
    path = resolve(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        known = ", ".join(sorted(p.stem for p in SUITES.glob("*.yaml")))
        raise SuiteError(f"{path}: cannot read ({e.strerror}); shipped suites: {known}") from None
    except yaml.YAMLError as e:
        raise SuiteError(f"{path}: not valid YAML: {e}") from None
    return parse(data, inv, systems_known, source=path)


def parse(data: Any, inv: Inventory, systems_known: tuple[str, ...], source: Path | None = None) -> Suite:
    src = str(source) if source else "<suite>"

    def fail(field: str, msg: str) -> SuiteError:
        return SuiteError(f"{src}: {field}: {msg}")

    if not isinstance(data, dict):
        raise fail("(top level)", "must be a mapping")
    known_top = {"name", "description", "systems", "workloads", "load", "repetitions", "client", "verify"}
    unknown = set(data) - known_top
    if unknown:
        raise fail(sorted(unknown)[0], f"unknown field (known: {', '.join(sorted(known_top))})")
    name = data.get("name") or (source.stem if source else "suite")
    systems = data.get("systems")
    if not isinstance(systems, list) or not systems:
        raise fail("systems", "must be a non-empty list")
    for s in systems:
        if s not in systems_known:
            raise fail("systems", f"unknown system {s!r} (known: {', '.join(systems_known)})")
    client = data.get("client", "lean")
    if client not in CLIENTS:
        raise fail("client", f"must be one of {', '.join(CLIENTS)}")
    verify = data.get("verify", "sampled")
    if verify not in VERIFY:
        raise fail("verify", f"must be one of {', '.join(VERIFY)}")
    catalog = {o.name: o for o in inv.catalog}

    workloads = []
    wl_raw = data.get("workloads")
    if not isinstance(wl_raw, list) or not wl_raw:
        raise fail("workloads", "must be a non-empty list")
    for i, w in enumerate(wl_raw):
        f = f"workloads[{i}]"
        if not isinstance(w, dict) or "name" not in w:
            raise fail(f, "must be a mapping with a name")
        if ("mix" in w) == ("objects" in w):
            raise fail(f, "give either objects (name -> weight) or mix (T1, T2, T3)")
        if "mix" in w:
            if str(w["mix"]).lower() not in MIXES:
                raise fail(f"{f}.mix", f"unknown mix {w['mix']!r} (known: {', '.join(m.upper() for m in MIXES)})")
            weights = MIXES[str(w["mix"]).lower()]
            latency_of = w.get("latency_of", "1k")
        else:
            weights = w["objects"]
            if not isinstance(weights, dict) or not weights:
                raise fail(f"{f}.objects", "must map object names to weights")
            latency_of = w.get("latency_of")
        objects = []
        for oname, weight in weights.items():
            if oname not in catalog:
                raise fail(f"{f}.objects", f"{oname!r} is not in the inventory's catalog "
                           f"({', '.join(catalog)})")
            if not isinstance(weight, int | float) or weight <= 0:
                raise fail(f"{f}.objects.{oname}", "weight must be a positive number")
            o = catalog[oname]
            objects.append({"name": o.name, "path": o.path, "size": o.size, "weight": weight})
        conn = w.get("connection", "close")
        if conn not in CONNECTIONS:
            raise fail(f"{f}.connection", f"must be one of {', '.join(CONNECTIONS)}")
        rpc = w.get("requests_per_connection", 1 if conn == "close" else 100)
        if not isinstance(rpc, int) or rpc < 1 or (conn == "close" and rpc != 1):
            raise fail(f"{f}.requests_per_connection", "must be 1 with close, >= 1 with keepalive")
        wclient = w.get("client", client)
        wverify = w.get("verify", verify)
        if wclient not in CLIENTS or wverify not in VERIFY:
            raise fail(f, "client must be lean|stock and verify full|sampled")
        wl = {"name": str(w["name"]), "objects": objects, "connection": conn, "requests_per_connection": rpc,
              "client": wclient, "verify": wverify, "latency_of": latency_of}
        try:
            Workload.from_dict(wl)      # the workload spec's own validation, as Locust will read it
        except ValueError as e:
            raise fail(f, str(e)) from None
        workloads.append(wl)
    names = [w["name"] for w in workloads]
    if len(set(names)) != len(names):
        raise fail("workloads", "workload names must be unique")

    ld = data.get("load", {})
    if not isinstance(ld, dict):
        raise fail("load", "must be a mapping")
    users = ld.get("users", [16])
    users = users if isinstance(users, list) else [users]
    if not users or not all(isinstance(u, int) and u >= 1 for u in users):
        raise fail("load.users", "must be a positive integer or a list of them")
    spawn = ld.get("spawn_rate", max(users))
    warm = ld.get("warmup_s", 3)
    dur = ld.get("duration_s", 10)
    pace = ld.get("pace_rps")
    for fld, v in (("spawn_rate", spawn), ("warmup_s", warm), ("duration_s", dur)):
        if not isinstance(v, int | float) or v <= 0:
            raise fail(f"load.{fld}", "must be a positive number")
    if max(users) / spawn >= warm:
        raise fail("load.warmup_s", f"the warm-up ({warm} s) must outlast spawning "
                   f"{max(users)} users at {spawn}/s, which is then excluded from the statistics")
    reps = data.get("repetitions", 1)
    if not isinstance(reps, int) or reps < 1:
        raise fail("repetitions", "must be an integer >= 1")

    cells = [Cell(system=s, workload=w, load=Load(u, float(spawn), float(warm), float(dur), pace), repetition=r)
             for s in systems
             for r, w, u in itertools.product(range(1, reps + 1), workloads, users)]
    return Suite(name=str(name), description=str(data.get("description", "")), source=source,
                 systems=tuple(systems), cells=tuple(cells), raw=data)


def dry_run(suite: Suite) -> str:
    lines = [f"suite {suite.name}: {len(suite.cells)} cells, systems {', '.join(suite.systems)}, "
             f"about {suite.estimated_seconds / 60:.1f} min"]
    for c in suite.cells:
        w = c.workload
        objs = ", ".join(f"{o['name']}:{o['weight']}" for o in w["objects"])
        lines.append(f"  {c.cell_id:45s} {w['connection']:9s} rpc={w['requests_per_connection']:<4d} "
                     f"users={c.load.users:<4d} {c.load.warmup_s:g}+{c.load.duration_s:g} s  [{objs}]")
    return "\n".join(lines)
