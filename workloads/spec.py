"""The workload of a cell, and the job file a Locust process reads (see workloads/README.md).

`Workload` is exactly cell.json's "workload" object (docs/run-directory.md). `Target` is where the
clients connect. `Job` bundles both with the load parameters the user classes need (pacing, socket
timeout, seed); the harness writes it as JSON and points `MIRESGA_WORKLOAD` at it.

Every `from_dict` validates and raises ValueError naming the offending field, e.g.
``workload.objects[1].weight: must be a positive number, not -1``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

CONNECTIONS = ("close", "keepalive")
CLIENTS = ("lean", "stock")
MODES = ("closed", "open")
ARRIVALS = ("constant", "poisson")
VERIFY = ("full", "sampled")
_OBJ_NAME = re.compile(r"^[a-z0-9_-]+$")
_HOST_HEADER = re.compile(r"^[A-Za-z0-9.:\[\]-]+$")
_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")


class _Sized(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...


def _fail(field: str, msg: str) -> ValueError:
    return ValueError(f"{field}: {msg}")


def _require(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise _fail(f"{where}{key}", "is required")
    return d[key]


def _int(v: Any, field: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _fail(field, f"must be an integer, not {v!r}")
    if v < minimum:
        raise _fail(field, f"must be >= {minimum}, not {v}")
    return v


def _positive(v: Any, field: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise _fail(field, f"must be a positive number, not {v!r}")
    return v


def _choice(v: Any, field: str, allowed: tuple[str, ...]) -> str:
    if v not in allowed:
        raise _fail(field, f"must be one of {', '.join(allowed)}, not {v!r}")
    return v


def _unknown(d: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    extra = sorted(set(d) - set(known))
    if extra:
        raise _fail(f"{where}{extra[0]}", f"unknown field (known: {', '.join(sorted(known))})")


def _mapping(v: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise _fail(field, f"must be a mapping, not {type(v).__name__}")
    return v


@dataclass(frozen=True)
class WorkloadObject:
    """One object a workload requests, with its relative weight."""

    name: str
    path: str
    size: int
    weight: float = 1

    def __post_init__(self) -> None:
        self.validate("object.")

    def validate(self, where: str) -> None:
        if not isinstance(self.name, str) or not _OBJ_NAME.fullmatch(self.name):
            raise _fail(f"{where}name", f"{self.name!r}: use lower-case letters, digits, - and _")
        if not isinstance(self.path, str) or not _PATH.fullmatch(self.path):
            raise _fail(f"{where}path", f"{self.path!r} is not an absolute URL path")
        _int(self.size, f"{where}size", 0)
        _positive(self.weight, f"{where}weight")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "size": self.size, "weight": self.weight}

    @classmethod
    def from_dict(cls, d: Any, where: str = "object.") -> WorkloadObject:
        d = _mapping(d, where.rstrip("."))
        _unknown(d, ("name", "path", "size", "weight"), where)
        name = _require(d, "name", where)
        path = d.get("path", f"/obj/{name}")
        obj = object.__new__(cls)
        for k, v in (("name", name), ("path", path), ("size", _require(d, "size", where)),
                     ("weight", d.get("weight", 1))):
            object.__setattr__(obj, k, v)
        obj.validate(where)
        return obj


@dataclass(frozen=True)
class Workload:
    """cell.json's "workload": what the clients request and how."""

    name: str
    objects: tuple[WorkloadObject, ...]
    connection: str = "close"
    requests_per_connection: int = 1
    client: str = "lean"
    verify: str = "sampled"
    latency_of: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        self.validate("workload.")

    def validate(self, where: str = "workload.") -> None:
        if not isinstance(self.name, str) or not self.name:
            raise _fail(f"{where}name", f"must be a non-empty string, not {self.name!r}")
        if not self.objects:
            raise _fail(f"{where}objects", "must list at least one object")
        seen: set[str] = set()
        for i, o in enumerate(self.objects):
            if not isinstance(o, WorkloadObject):
                raise _fail(f"{where}objects[{i}]", f"must be a WorkloadObject, not {type(o).__name__}")
            o.validate(f"{where}objects[{i}].")
            if o.name in seen:
                raise _fail(f"{where}objects[{i}].name", f"duplicate object {o.name!r}")
            seen.add(o.name)
        _choice(self.connection, f"{where}connection", CONNECTIONS)
        _int(self.requests_per_connection, f"{where}requests_per_connection", 1)
        if self.connection == "close" and self.requests_per_connection != 1:
            raise _fail(f"{where}requests_per_connection",
                        f"must be 1 with connection close, not {self.requests_per_connection}")
        _choice(self.client, f"{where}client", CLIENTS)
        _choice(self.verify, f"{where}verify", VERIFY)
        if self.latency_of is not None and self.latency_of not in seen:
            raise _fail(f"{where}latency_of", f"{self.latency_of!r} is not one of the workload's objects")

    def object(self, name: str) -> WorkloadObject:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(f"workload {self.name!r} has no object {name!r}")

    def shares(self) -> dict[str, float]:
        """Object name -> fraction of requests (weights normalised)."""
        total = sum(o.weight for o in self.objects)
        return {o.name: o.weight / total for o in self.objects}

    def with_(self, **changes: Any) -> Workload:
        """A copy with fields changed (validated), e.g. ``w.with_(client="stock")``."""
        d = self.to_dict()
        d.update(changes)
        if "objects" in changes:
            d["objects"] = [o.to_dict() if isinstance(o, WorkloadObject) else o for o in changes["objects"]]
        return Workload.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "objects": [o.to_dict() for o in self.objects],
            "connection": self.connection,
            "requests_per_connection": self.requests_per_connection,
            "client": self.client,
            "verify": self.verify,
            "latency_of": self.latency_of,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "workload.") -> Workload:
        d = _mapping(d, where.rstrip("."))
        _unknown(d, ("name", "objects", "connection", "requests_per_connection", "client", "verify",
                     "latency_of"), where)
        objs_raw = _require(d, "objects", where)
        if not isinstance(objs_raw, list | tuple):
            raise _fail(f"{where}objects", f"must be a list, not {type(objs_raw).__name__}")
        objs = tuple(WorkloadObject.from_dict(o, f"{where}objects[{i}].") for i, o in enumerate(objs_raw))
        w = object.__new__(cls)
        values = {
            "name": _require(d, "name", where),
            "objects": objs,
            "connection": d.get("connection", "close"),
            "requests_per_connection": d.get("requests_per_connection", 1),
            "client": d.get("client", "lean"),
            "verify": d.get("verify", "sampled"),
            "latency_of": d.get("latency_of"),
        }
        for k, v in values.items():
            object.__setattr__(w, k, v)
        w.validate(where)
        return w


@dataclass(frozen=True)
class Target:
    """Where clients connect, and the Host header they send (default: address[:port])."""

    address: str
    port: int = 80
    host: str | None = None

    def __post_init__(self) -> None:
        self.validate("target.")

    def validate(self, where: str = "target.") -> None:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise _fail(f"{where}address", f"{self.address!r} is not an IP address") from None
        _int(self.port, f"{where}port", 1)
        if self.port > 65535:
            raise _fail(f"{where}port", f"{self.port} is not a TCP port")
        if self.host is not None and (not isinstance(self.host, str) or not _HOST_HEADER.fullmatch(self.host)):
            raise _fail(f"{where}host", f"{self.host!r} is not a valid Host header value")

    @property
    def host_header(self) -> str:
        if self.host:
            return self.host
        return self.address if self.port == 80 else f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL Locust's `host` takes."""
        return f"http://{self.address}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"address": self.address, "port": self.port}
        if self.host is not None:
            d["host"] = self.host
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "target.") -> Target:
        d = _mapping(d, where.rstrip("."))
        _unknown(d, ("address", "port", "host"), where)
        t = object.__new__(cls)
        for k, v in (("address", str(_require(d, "address", where))), ("port", d.get("port", 80)),
                     ("host", d.get("host"))):
            object.__setattr__(t, k, v)
        t.validate(where)
        return t


@dataclass(frozen=True)
class Job:
    """What one Locust process needs: the workload, the target and per-user load parameters.

    ``users`` is the total number of users of the run (all workers); with ``pace_rps`` each user is
    paced at pace_rps / users requests/s (Locust's constant_throughput). ``timeout_s`` is the socket
    timeout of every connect/send/receive. ``seed`` seeds the per-user object choice.

    ``mode`` "open" (lean client only): each user is an arrival stream of ``rate / users`` requests/s
    (``arrival`` constant or poisson), sending on as many connections as it needs (at most
    ``max_connections`` per user in flight) and measuring latency from each intended send time
    (workloads/openloop.py). "closed" (default): each user waits for a response before the next.
    """

    workload: Workload
    target: Target
    users: int = 1
    pace_rps: float | None = None
    timeout_s: float = 10.0
    seed: int = 1
    mode: str = "closed"
    rate: float | None = None
    arrival: str = "constant"
    max_connections: int = 128

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.workload, Workload):
            raise _fail("workload", "must be a Workload")
        if not isinstance(self.target, Target):
            raise _fail("target", "must be a Target")
        _int(self.users, "users", 1)
        if self.pace_rps is not None:
            _positive(self.pace_rps, "pace_rps")
        _positive(self.timeout_s, "timeout_s")
        _int(self.seed, "seed", 0)
        _choice(self.mode, "mode", MODES)
        _choice(self.arrival, "arrival", ARRIVALS)
        _int(self.max_connections, "max_connections", 1)
        if self.mode == "open":
            if self.rate is None:
                raise _fail("rate", "is required in open loop (requests/s of the whole run)")
            _positive(self.rate, "rate")
            if self.pace_rps is not None:
                raise _fail("pace_rps", "is for a closed loop; an open loop's rate is `rate`")
            if self.workload.client != "lean":
                raise _fail("mode", f"open loop needs the lean client, not {self.workload.client!r}")
        elif self.rate is not None:
            raise _fail("rate", "is only for mode open")

    @property
    def user_throughput(self) -> float | None:
        """Requests/s per user when paced, else None (closed loop)."""
        return None if self.pace_rps is None else self.pace_rps / self.users

    @property
    def user_rate(self) -> float | None:
        """Requests/s of each user's arrival stream in open loop, else None."""
        return None if self.mode != "open" or self.rate is None else self.rate / self.users

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload.to_dict(), "target": self.target.to_dict(), "users": self.users,
                "pace_rps": self.pace_rps, "timeout_s": self.timeout_s, "seed": self.seed, "mode": self.mode,
                "rate": self.rate, "arrival": self.arrival, "max_connections": self.max_connections}

    @classmethod
    def from_dict(cls, d: Any) -> Job:
        d = _mapping(d, "(job)")
        _unknown(d, ("workload", "target", "users", "pace_rps", "timeout_s", "seed", "mode", "rate", "arrival",
                     "max_connections"), "")
        return cls(workload=Workload.from_dict(_require(d, "workload", "")),
                   target=Target.from_dict(_require(d, "target", "")),
                   users=d.get("users", 1), pace_rps=d.get("pace_rps"),
                   timeout_s=d.get("timeout_s", 10.0), seed=d.get("seed", 1), mode=d.get("mode", "closed"),
                   rate=d.get("rate"), arrival=d.get("arrival", "constant"),
                   max_connections=d.get("max_connections", 128))

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return p

    @classmethod
    def load(cls, path: str | Path) -> Job:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except OSError as e:
            raise ValueError(f"{p}: cannot read: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not valid JSON: {e}") from None
        try:
            return cls.from_dict(data)
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None


# ---------------------------------------------------------------------------------------------
# The standard workloads

# The paper's traffic mixes (evaluation.md): object name -> share of requests in percent.
MIXES: dict[str, dict[str, int]] = {
    "t1": {"1k": 100},
    "t2": {"1k": 70, "10k": 20, "1m": 8, "10m": 2},
    "t3": {"1k": 50, "10k": 30, "1m": 15, "10m": 5},
}


def _by_name(catalog: Iterable[_Sized] | Mapping[str, int]) -> dict[str, int]:
    if isinstance(catalog, Mapping):
        return dict(catalog)
    return {o.name: o.size for o in catalog}


def _conn_name(connection: str, requests_per_connection: int) -> str:
    if connection == "close":
        return "close"
    return f"ka{requests_per_connection}"


def fixed(obj: _Sized, connection: str = "close", requests_per_connection: int | None = None,
          client: str = "lean", verify: str = "sampled") -> Workload:
    """One object size per run; named e.g. ``1k-close`` or ``10m-ka100``."""
    rpc = requests_per_connection or (1 if connection == "close" else 100)
    o = WorkloadObject(obj.name, f"/obj/{obj.name}", obj.size, 1)
    return Workload(name=f"{obj.name}-{_conn_name(connection, rpc)}", objects=(o,), connection=connection,
                    requests_per_connection=rpc, client=client, verify=verify, latency_of=None)


def mix(name: str, catalog: Iterable[_Sized] | Mapping[str, int], connection: str = "close",
        requests_per_connection: int | None = None, client: str = "lean",
        verify: str = "sampled") -> Workload:
    """The paper's mix ``t1``, ``t2`` or ``t3`` over the catalog; latency is reported for 1k."""
    key = name.lower()
    if key not in MIXES:
        raise ValueError(f"mix: must be one of {', '.join(MIXES)}, not {name!r}")
    sizes = _by_name(catalog)
    objs = []
    for oname, pct in MIXES[key].items():
        if oname not in sizes:
            raise ValueError(f"mix {key}: the catalog has no object {oname!r} (it has {', '.join(sizes)})")
        objs.append(WorkloadObject(oname, f"/obj/{oname}", sizes[oname], pct))
    rpc = requests_per_connection or (1 if connection == "close" else 100)
    return Workload(name=f"{key}-{_conn_name(connection, rpc)}", objects=tuple(objs), connection=connection,
                    requests_per_connection=rpc, client=client, verify=verify, latency_of="1k")


def t1(catalog: Iterable[_Sized] | Mapping[str, int], **kw: Any) -> Workload:
    return mix("t1", catalog, **kw)


def t2(catalog: Iterable[_Sized] | Mapping[str, int], **kw: Any) -> Workload:
    return mix("t2", catalog, **kw)


def t3(catalog: Iterable[_Sized] | Mapping[str, int], **kw: Any) -> Workload:
    return mix("t3", catalog, **kw)


def choose(objects: str, catalog: Iterable[_Sized] | Mapping[str, int], connection: str = "close",
           requests_per_connection: int | None = None, client: str = "lean",
           verify: str = "sampled") -> Workload:
    """The standard workload a user picks by parts (the Locust web UI's form): ``objects`` is a
    catalog object (``fixed``) or a mix ``t1``..``t3`` (``mix``); named as those name it, validated
    as they validate. Raises ValueError naming the field, e.g. ``objects: '2k' is neither ...``."""
    sizes = _by_name(catalog)
    key = objects.strip().lower() if isinstance(objects, str) else objects
    if key not in sizes and key not in MIXES:
        raise _fail("objects", f"{objects!r} is neither an object of the catalog ({', '.join(sizes)}) "
                               f"nor a mix ({', '.join(MIXES)})")
    _choice(connection, "connection", CONNECTIONS)
    _choice(client, "client", CLIENTS)
    _choice(verify, "verify", VERIFY)
    if requests_per_connection is not None:
        _int(requests_per_connection, "requests_per_connection", 1)
        if connection == "close" and requests_per_connection != 1:
            raise _fail("requests_per_connection",
                        f"must be 1 with connection close, not {requests_per_connection}")
    kw = {"connection": connection, "requests_per_connection": requests_per_connection, "client": client,
          "verify": verify}
    if key in MIXES:
        return mix(key, sizes, **kw)
    return fixed(_Obj(key, sizes[key]), **kw)


@dataclass(frozen=True)
class _Obj:
    name: str
    size: int
