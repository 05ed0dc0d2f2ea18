"""Suites: declarative files of systems x workloads x load levels x repetitions.

A suite is YAML (`harness/suites/quick.yaml`, `full.yaml`, or any path); `expand` turns it into the
ordered list of cells the runner executes, grouped by system so that each system is deployed once.
`fab run-suite --dry-run` prints that matrix with an estimate of the run's duration. The format is
documented in harness/suites/README.md.

An optional axis `switch_profiles:` (names of system/switch/profiles/*.yaml, or paths) runs every
system once per switch profile: the runner redeploys the system with that profile in force, and the
profile goes into each cell's cell.json (`switch_profile`) and id (`<system>--<workload>--u<users>--
<profile>--r<rep>`). Without it every cell runs under the inventory's `switch.profile`.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.inventory import ROOT, Inventory
from system.switch import profiles as switch_profiles
from workloads.spec import MIXES, Workload

SUITES = ROOT / "harness" / "suites"

CONNECTIONS = ("close", "keepalive")
CLIENTS = ("lean", "stock")
VERIFY = ("full", "sampled")

# Duration estimate (`estimated_seconds`), calibrated on the local testbed (2 cores; runs of
# 2026-11-26: quick, baseline-bench, and a miresga sweep): a cell takes warm-up + duration plus
# about 12 s (workers and master start, the 2 s tail, Locust's stop, collection, the next cell's
# checks); a deploy (undeploy, transfer, start, checks) depends on the system; the testbed and the
# analysis take about 30 s.
CELL_OVERHEAD_S = 12.0
DEPLOY_S = {"direct": 15.0, "haproxy": 22.0, "miresga": 35.0, "switch-only": 35.0}
DEPLOY_DEFAULT_S = 35.0
RUN_OVERHEAD_S = 30.0
WRK_OVERHEAD_S = 3.0      # a wrk cross-check: its duration (the cell's) plus this


class SuiteError(ValueError):
    pass


MODES = ("closed", "open")
ARRIVALS = ("constant", "poisson")


@dataclass(frozen=True)
class Load:
    users: int
    spawn_rate: float
    warmup_s: float
    duration_s: float
    pace_rps: float | None
    mode: str = "closed"            # closed | open (workloads/openloop.py)
    rate: float | None = None       # open loop: offered requests/s of the whole run
    arrival: str = "constant"       # open loop: constant | poisson
    max_connections: int = 128      # open loop: connections in flight per user at most

    @property
    def label(self) -> str:
        """The load's part of a cell id: `u<users>`, and `-o<rate>` in open loop."""
        return f"u{self.users}" + (f"-o{self.rate:g}" if self.mode == "open" else "")


@dataclass(frozen=True)
class Attack:
    """One entry of a suite's `attacks` axis: workloads/attack.py's kind and its knobs. The runner
    plays it from the inventory's attacker host for the cell's warm-up, window and tail."""
    name: str
    kind: str
    rate: float                    # packets/s (slowloris: ignored)
    connections: int = 50          # slowloris
    interval_s: float = 1.0        # slowloris
    reopen: bool = True            # slowloris: a new connection for each one the server closes
    spoof_net: str = "198.19.250.0/24"
    workload: str = ""             # the workload it runs beside (its name without `+<attack>`)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Cell:
    system: str
    workload: dict[str, Any]   # the cell.json "workload" object (docs/run-directory.md)
    load: Load
    repetition: int
    # From the suite's `switch_profiles` axis: the profile's name and file; None: the inventory's.
    switch_profile: str | None = None
    switch_profile_path: Path | None = None
    # `wrk_check`: the runner cross-checks this cell with wrk afterwards (harness/wrk.py)
    wrk_check: bool = False
    # From the suite's `attacks` axis: what the attacker host plays during the cell (None: nothing).
    # Such a cell's workload name is `<workload>+<attack>`, so every table keeps it apart.
    attack: Attack | None = None

    @property
    def cell_id(self) -> str:
        profile = f"--{self.switch_profile}" if self.switch_profile else ""
        return f"{self.system}--{self.workload['name']}--{self.load.label}{profile}--r{self.repetition}"

    @property
    def deployment(self) -> tuple[str, str | None]:
        """What the runner deploys for this cell: (system, switch profile of the axis or None)."""
        return self.system, self.switch_profile

    def to_dict(self) -> dict[str, Any]:
        d = {"cell_id": self.cell_id, "system": self.system, "workload": self.workload,
             "load": asdict(self.load), "repetition": self.repetition}
        if self.attack is not None:
            d["attack"] = self.attack.to_dict()
        return d


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    source: Path | None
    systems: tuple[str, ...]
    cells: tuple[Cell, ...]
    raw: dict[str, Any]
    switch_profiles: tuple[str, ...] = ()   # the profile axis (profile names), empty without one
    bpf_stats: bool = True                  # enable the kernel's BPF statistics during cells
    slo_p99_ms: float | None = None         # the latency SLO of the headline capacity (report)
    budget_cores: float = 1.0               # the CPU budget of the report's budget model
    pin_lb: bool = False                    # the load balancer alone on one CPU (harness/cpuplan.py)
    attacks: tuple[str, ...] = ()           # the attack axis (attack names), empty without one

    @property
    def deployments(self) -> list[tuple[str, str | None]]:
        """(system, switch profile) in the order the runner deploys them: one deploy each."""
        return list(dict.fromkeys(c.deployment for c in self.cells))

    @property
    def estimated_seconds(self) -> float:
        cells = sum(c.load.warmup_s + c.load.duration_s + CELL_OVERHEAD_S
                    + (c.load.duration_s + WRK_OVERHEAD_S if c.wrk_check else 0) for c in self.cells)
        deploys = sum(DEPLOY_S.get(system, DEPLOY_DEFAULT_S) for system, _ in self.deployments)
        return cells + deploys + RUN_OVERHEAD_S


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
    known_top = {"name", "description", "systems", "workloads", "load", "repetitions", "client", "verify",
                 "switch_profiles", "bpf_stats", "slo_p99_ms", "budget_cores", "wrk_check",
                 "pin_lb", "attacks"}
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
    blocks = ld if isinstance(ld, list) else [ld]
    if not blocks:
        raise fail("load", "must be a mapping or a non-empty list of mappings")
    # (load level, the workloads it is for: None = every one); a block's `workloads` narrows it
    levels: list[tuple[Load, frozenset[str] | None]] = []
    for i, b in enumerate(blocks):
        where = "load" if not isinstance(ld, list) else f"load[{i}]"
        only = None
        if isinstance(b, dict) and "workloads" in b:
            b = dict(b)
            only_raw = b.pop("workloads")
            if not isinstance(only_raw, list) or not only_raw or not all(isinstance(n, str) for n in only_raw):
                raise fail(f"{where}.workloads", "must be a non-empty list of workload names")
            unknown_wl = [n for n in only_raw if n not in names]
            if unknown_wl:
                raise fail(f"{where}.workloads", f"no workload named {unknown_wl[0]!r} (workloads: {', '.join(names)})")
            only = frozenset(only_raw)
        levels += [(x, only) for x in _loads(b, where, fail)]
    for n in names:
        labels = [x.label for x, only in levels if only is None or n in only]
        if not labels:
            raise fail("load", f"no load level applies to workload {n!r}")
        if len(set(labels)) != len(labels):
            raise fail("load", f"two load levels give the same cells ({', '.join(sorted(labels))})")
    loads = [x for x, _ in levels]
    if any(x.mode == "open" for x in loads):
        stock = [w["name"] for w in workloads if w["client"] != "lean"]
        if stock:
            raise fail("load.mode", f"open loop needs the lean client; workload {stock[0]!r} uses "
                       f"{next(w['client'] for w in workloads if w['name'] == stock[0])!r}")
    slo = data.get("slo_p99_ms")
    if slo is not None and (isinstance(slo, bool) or not isinstance(slo, int | float) or slo <= 0):
        raise fail("slo_p99_ms", f"must be a positive number of milliseconds, not {slo!r}")
    budget = data.get("budget_cores", 1)
    if isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0:
        raise fail("budget_cores", f"must be a positive number of cores, not {budget!r}")
    reps = data.get("repetitions", 1)
    if not isinstance(reps, int) or reps < 1:
        raise fail("repetitions", "must be an integer >= 1")

    bpf_stats = data.get("bpf_stats", True)
    if not isinstance(bpf_stats, bool):
        raise fail("bpf_stats", "must be true or false")
    profiles = _profiles(data.get("switch_profiles"), inv, fail)

    wrk_check = data.get("wrk_check", False)
    if not isinstance(wrk_check, bool):
        raise fail("wrk_check", "must be true or false")
    pin_lb = data.get("pin_lb", False)
    if not isinstance(pin_lb, bool):
        raise fail("pin_lb", "must be true or false")
    if pin_lb and inv.kind != "local":
        raise fail("pin_lb", f"pins processes and receive queues of one machine: it needs the local testbed, "
                   f"not the {inv.kind} inventory {inv.name!r}")
    attacks = _attacks(data.get("attacks"), inv, fail)
    cells = [Cell(system=s, workload=_under(w, a), load=x, repetition=r, switch_profile=pname,
                  switch_profile_path=ppath, attack=dataclasses.replace(a, workload=w["name"]) if a else None)
             for s in systems
             for pname, ppath in (profiles or [(None, None)])
             for r, w, (x, only) in itertools.product(range(1, reps + 1), workloads, levels)
             if only is None or w["name"] in only
             for a in [None, *attacks]]
    if wrk_check:   # the first closed-loop cell of each system, workload (and profile)
        seen: set[tuple[Any, ...]] = set()
        for i, c in enumerate(cells):
            key = (c.system, c.workload["name"], c.switch_profile)
            if c.load.mode == "closed" and key not in seen:
                seen.add(key)
                cells[i] = dataclasses.replace(c, wrk_check=True)
    return Suite(name=str(name), description=str(data.get("description", "")), source=source,
                 systems=tuple(systems), cells=tuple(cells), raw=data,
                 switch_profiles=tuple(p for p, _ in profiles), bpf_stats=bpf_stats,
                 slo_p99_ms=float(slo) if slo is not None else None, budget_cores=float(budget), pin_lb=pin_lb,
                 attacks=tuple(a.name for a in attacks))


def _under(workload: dict[str, Any], attack: Attack | None) -> dict[str, Any]:
    """The workload object of a cell under `attack`: the same, named `<workload>+<attack>`."""
    return workload if attack is None else {**workload, "name": f"{workload['name']}+{attack.name}"}


ATTACK_FIELDS = {"name", "kind", "rate", "connections", "interval_s", "reopen", "spoof_net"}


def _attacks(raw: Any, inv: Inventory, fail: Callable[[str, str], SuiteError]) -> list[Attack]:
    """The `attacks` axis: every workload runs once without attack and once under each of these."""
    if raw is None:
        return []
    from workloads import attack as attack_tool

    if not isinstance(raw, list) or not raw:
        raise fail("attacks", "must be a non-empty list of mappings {name, kind, rate, ...}")
    if not inv.attackers:
        raise fail("attacks", f"need a host with role attacker in the inventory {inv.name!r} (a client-side "
                   "host that plays them; harness/inventories/local.yaml has atk1)")
    out = []
    for i, a in enumerate(raw):
        f = f"attacks[{i}]"
        if not isinstance(a, dict):
            raise fail(f, "must be a mapping {name, kind, rate, ...}")
        unknown = set(a) - ATTACK_FIELDS
        if unknown:
            raise fail(f"{f}.{sorted(unknown)[0]}", f"unknown field (known: {', '.join(sorted(ATTACK_FIELDS))})")
        name, kind = a.get("name"), a.get("kind")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise fail(f"{f}.name", "lower-case letters, digits and - (it names the cells)")
        if kind not in attack_tool.KINDS:
            raise fail(f"{f}.kind", f"one of {', '.join(attack_tool.KINDS)}, not {kind!r}")
        try:
            at = Attack(name=name, kind=kind, rate=float(a.get("rate", 1000)),
                        connections=int(a.get("connections", 50)), interval_s=float(a.get("interval_s", 1.0)),
                        reopen=bool(a.get("reopen", True)),
                        spoof_net=str(a.get("spoof_net", Attack.spoof_net)))
            attack_tool.Config(kind, "198.18.0.1", rate=at.rate, connections=at.connections,
                               interval_s=at.interval_s, spoof_net=at.spoof_net, victim="198.18.0.2").check()
        except (TypeError, ValueError) as e:
            raise fail(f, str(e)) from None
        out.append(at)
    names = [a.name for a in out]
    if len(set(names)) != len(names) or "none" in names:
        raise fail("attacks", "attack names must be unique and not `none`")
    return out


def _loads(ld: Any, where: str, fail: Callable[[str, str], SuiteError]) -> list[Load]:
    """One `load` block: closed loop (users: a level or a list) or open loop (mode: open, with rate: R
    or rates: [R, ...], the offered requests/s of the whole run), one Load per level."""
    if not isinstance(ld, dict):
        raise fail(where, "must be a mapping")
    known = {"users", "spawn_rate", "warmup_s", "duration_s", "pace_rps", "mode", "rate", "rates", "arrival",
             "max_connections"}
    extra = sorted(set(ld) - known)
    if extra:
        raise fail(f"{where}.{extra[0]}", f"unknown field (known: {', '.join(sorted(known))})")
    mode = ld.get("mode", "closed")
    if mode not in MODES:
        raise fail(f"{where}.mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    users = ld.get("users", [16] if mode == "closed" else [2])
    users = users if isinstance(users, list) else [users]
    if not users or not all(isinstance(u, int) and not isinstance(u, bool) and u >= 1 for u in users):
        raise fail(f"{where}.users", "must be a positive integer or a list of them")
    spawn = ld.get("spawn_rate", max(users))
    warm = ld.get("warmup_s", 3)
    dur = ld.get("duration_s", 10)
    pace = ld.get("pace_rps")
    for fld, v in (("spawn_rate", spawn), ("warmup_s", warm), ("duration_s", dur)):
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            raise fail(f"{where}.{fld}", "must be a positive number")
    if max(users) / spawn >= warm:
        raise fail(f"{where}.warmup_s", f"the warm-up ({warm} s) must outlast spawning "
                   f"{max(users)} users at {spawn}/s, which is then excluded from the statistics")
    arrival = ld.get("arrival", "constant")
    max_conn = ld.get("max_connections", 128)
    if mode == "closed":
        for fld in ("rate", "rates", "arrival", "max_connections"):
            if fld in ld:
                raise fail(f"{where}.{fld}", "is for an open loop (mode: open)")
        return [Load(u, float(spawn), float(warm), float(dur), pace) for u in users]
    if pace is not None:
        raise fail(f"{where}.pace_rps", "is for a closed loop; an open loop's offered load is rate/rates")
    if ("rate" in ld) == ("rates" in ld):
        raise fail(where, "an open loop needs rate: R or rates: [R, ...] (requests/s of the whole run)")
    rates = ld["rates"] if "rates" in ld else [ld["rate"]]
    fld = "rates" if "rates" in ld else "rate"
    if not isinstance(rates, list) or not rates or not all(
            isinstance(r, int | float) and not isinstance(r, bool) and r > 0 for r in rates):
        raise fail(f"{where}.{fld}", f"must be a positive number of requests/s (or a list of them), not {rates!r}")
    if len(set(rates)) != len(rates):
        raise fail(f"{where}.{fld}", "lists a rate twice")
    if arrival not in ARRIVALS:
        raise fail(f"{where}.arrival", f"must be one of {', '.join(ARRIVALS)}, not {arrival!r}")
    if isinstance(max_conn, bool) or not isinstance(max_conn, int) or max_conn < 1:
        raise fail(f"{where}.max_connections", f"must be an integer >= 1, not {max_conn!r}")
    return [Load(u, float(spawn), float(warm), float(dur), None, "open", float(r), arrival, max_conn)
            for u in users for r in rates]


def _profiles(raw: Any, inv: Inventory, fail: Callable[[str, str], SuiteError]) -> list[tuple[str, Path]]:
    """The `switch_profiles` axis: [(profile name, file)], validated by loading every profile."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise fail("switch_profiles", "must be a non-empty list of switch profile names (or paths)")
    if inv.switch.target != "emulated":
        raise fail("switch_profiles", f"needs the emulated switch target; inventory {inv.name!r} has "
                   f"switch target {inv.switch.target!r} (a profile models an emulated switch's limits)")
    known = ", ".join(sorted(p.stem for p in switch_profiles.PROFILES_DIR.glob("*.yaml")))
    out: list[tuple[str, Path]] = []
    for i, ref in enumerate(raw):
        fld = f"switch_profiles[{i}]"
        if not isinstance(ref, str) or not ref:
            raise fail(fld, f"must be a profile name or path, not {ref!r}")
        path = switch_profiles.resolve(ref)
        if not path.is_absolute() and not path.exists():
            path = ROOT / path
        if not path.is_file():
            raise fail(fld, f"unknown switch profile {ref!r} (known: {known}; or give a path to a profile file)")
        try:
            profile = switch_profiles.load_profile(path)
        except switch_profiles.ProfileError as e:
            raise fail(fld, f"profile {ref!r} is not valid: {e}") from None
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", profile.name):
            raise fail(fld, f"profile name {profile.name!r} must be letters, digits, '.', '_' or '-' "
                       "(it becomes part of the cell ids)")
        if profile.name in [n for n, _ in out]:
            raise fail(fld, f"profile {profile.name!r} is listed twice")
        out.append((profile.name, path.resolve()))
    return out


def profile_record(path: Path) -> dict[str, Any]:
    """A profile as cell.json records it (`switch_profile`): every resolved field and its file."""
    return switch_profiles.load_profile(path).to_dict()


def dry_run(suite: Suite) -> str:
    deploys = suite.deployments
    deploy_s = sum(DEPLOY_S.get(s, DEPLOY_DEFAULT_S) for s, _ in deploys)
    load_s = sum(c.load.warmup_s + c.load.duration_s for c in suite.cells)
    profiles = f", switch profiles {', '.join(suite.switch_profiles)}" if suite.switch_profiles else ""
    lines = [f"suite {suite.name}: {len(suite.cells)} cells, systems {', '.join(suite.systems)}{profiles}, "
             f"about {suite.estimated_seconds / 60:.1f} min",
             f"  estimate: {len(deploys)} deploys x ~{deploy_s / max(len(deploys), 1):.0f} s = {deploy_s:.0f} s; "
             f"{len(suite.cells)} cells x (load + ~{CELL_OVERHEAD_S:g} s) = {load_s:.0f} + "
             f"{len(suite.cells) * CELL_OVERHEAD_S:.0f} s; testbed and analysis ~{RUN_OVERHEAD_S:g} s "
             "(calibrated on the 2-core local testbed; a busy machine is slower)"]
    width = max((len(c.cell_id) for c in suite.cells), default=45) + 1
    for c in suite.cells:
        w = c.workload
        objs = ", ".join(f"{o['name']}:{o['weight']}" for o in w["objects"])
        mode = f"open {c.load.rate:g}/s {c.load.arrival}" if c.load.mode == "open" else \
            ("closed, then wrk" if c.wrk_check else "closed")
        lines.append(f"  {c.cell_id:{width}s} {w['connection']:9s} rpc={w['requests_per_connection']:<4d} "
                     f"users={c.load.users:<4d} {mode:22s} {c.load.warmup_s:g}+{c.load.duration_s:g} s  [{objs}]")
    return "\n".join(lines)
