"""Load-balancing rules shared by every system: pools of back-ends and ordered match rules.

The file format is documented in system/rules/default.yaml. HAProxy's configuration is generated from
it (system/softlb/haproxy.py); Miresga's front-end evaluates it per request (`RuleSet.match`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

POLICIES = ("round_robin", "consistent_hash", "least_connections")
OFFLOAD_MODES = ("always", "never", "auto")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


class RulesError(ValueError):
    pass


@dataclass(frozen=True)
class Pool:
    name: str
    backends: tuple[str, ...]   # host names from the inventory
    policy: str
    health_check: str | None


@dataclass(frozen=True)
class Match:
    host: str | None = None
    path: str | None = None
    path_prefix: str | None = None
    method: str | None = None

    def matches(self, method: str, host: str | None, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.host is not None and (host or "").split(":")[0].lower() != self.host.lower():
            return False
        if self.path is not None and path.split("?")[0] != self.path:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


@dataclass(frozen=True)
class Rule:
    name: str
    match: Match
    pool: str
    offload: str
    offload_threshold: int


@dataclass(frozen=True)
class RuleSet:
    pools: dict[str, Pool]
    rules: tuple[Rule, ...]

    def match(self, method: str, host: str | None, path: str) -> Rule | None:
        """The first rule whose every condition matches, or None (the caller answers 404)."""
        for r in self.rules:
            if r.match.matches(method, host, path):
                return r
        return None


def load(path: Path, backends: tuple[str, ...]) -> RuleSet:
    """Loads a rules file; `backends` are the inventory's back-end host names (for `all` and checks)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise RulesError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise RulesError(f"{path}: not valid YAML: {e}") from None
    return parse(data, backends, source=str(path))


def parse(data: Any, backends: tuple[str, ...], source: str = "<rules>") -> RuleSet:
    def fail(field: str, msg: str) -> RulesError:
        return RulesError(f"{source}: {field}: {msg}")

    if not isinstance(data, dict):
        raise fail("(top level)", "must be a mapping with pools and rules")
    pools_raw = data.get("pools")
    if not isinstance(pools_raw, dict) or not pools_raw:
        raise fail("pools", "must be a non-empty mapping of pool name -> pool")
    pools: dict[str, Pool] = {}
    for name, p in pools_raw.items():
        if not isinstance(p, dict):
            raise fail(f"pools.{name}", "must be a mapping")
        members = p.get("backends", "all")
        if members == "all":
            members = list(backends)
        if not isinstance(members, list) or not members:
            raise fail(f"pools.{name}.backends", "must be 'all' or a non-empty list of back-end host names")
        for m in members:
            if m not in backends:
                raise fail(f"pools.{name}.backends", f"{m!r} is not a back-end of the inventory "
                           f"(back-ends: {', '.join(backends)})")
        policy = p.get("policy", "round_robin")
        if policy not in POLICIES:
            raise fail(f"pools.{name}.policy", f"must be one of {', '.join(POLICIES)}, not {policy!r}")
        hc = p.get("health_check")
        if hc is not None and (not isinstance(hc, str) or not hc.startswith("/")):
            raise fail(f"pools.{name}.health_check", "must be a path starting with /")
        pools[name] = Pool(name=name, backends=tuple(members), policy=policy, health_check=hc)

    rules_raw = data.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise fail("rules", "must be a non-empty list")
    rules = []
    for i, r in enumerate(rules_raw):
        f = f"rules[{i}]"
        if not isinstance(r, dict):
            raise fail(f, "must be a mapping")
        m = r.get("match", {})
        if not isinstance(m, dict):
            raise fail(f"{f}.match", "must be a mapping")
        unknown = set(m) - {"host", "path", "path_prefix", "method"}
        if unknown:
            raise fail(f"{f}.match.{sorted(unknown)[0]}", "unknown condition (host, path, path_prefix, method)")
        for key in ("path", "path_prefix"):
            if key in m and (not isinstance(m[key], str) or not m[key].startswith("/")):
                raise fail(f"{f}.match.{key}", "must start with /")
        if "path" in m and "path_prefix" in m:
            raise fail(f"{f}.match", "give path or path_prefix, not both")
        method = m.get("method")
        if method is not None and method not in METHODS:
            raise fail(f"{f}.match.method", f"must be one of {', '.join(METHODS)}")
        pool = r.get("pool")
        if pool not in pools:
            raise fail(f"{f}.pool", f"{pool!r} is not a pool (pools: {', '.join(pools)})")
        offload = r.get("offload", "auto")
        if offload not in OFFLOAD_MODES:
            raise fail(f"{f}.offload", f"must be one of {', '.join(OFFLOAD_MODES)}")
        thr = r.get("offload_threshold", 1 << 20)
        if isinstance(thr, bool) or not isinstance(thr, int) or thr < 0:
            raise fail(f"{f}.offload_threshold", "must be a number of bytes >= 0")
        rules.append(Rule(name=str(r.get("name", f"rule{i}")),
                          match=Match(host=m.get("host"), path=m.get("path"), path_prefix=m.get("path_prefix"),
                                      method=method),
                          pool=pool, offload=offload, offload_threshold=thr))
    return RuleSet(pools=pools, rules=tuple(rules))
