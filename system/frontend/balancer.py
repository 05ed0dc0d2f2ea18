"""Back-end choice: the rules of system/rules.py applied to a request, then the pool's policy.

Policies: round robin, consistent hash of the client address (rendezvous hashing, so a back-end's
failure moves only its own clients) and least connections (connections counted by the front-end).
Back-ends marked down are skipped; a pool with none left gives `NoBackend` (the caller answers 503),
a request no rule matches gives `NoRule` (404).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from system.rules import Rule, RuleSet


@dataclass(frozen=True)
class Backend:
    name: str
    ip: str
    port: int
    index: int            # the offload table's back-end index (switch table backend_by_index)
    mac: str              # next-hop MAC for frames to this back-end


class NoRule(LookupError):
    pass


class NoBackend(LookupError):
    pass


@dataclass(frozen=True)
class Choice:
    rule: Rule
    backend: Backend


class Balancer:
    def __init__(self, rules: RuleSet, backends: dict[str, Backend]) -> None:
        missing = {b for p in rules.pools.values() for b in p.backends} - set(backends)
        if missing:
            raise ValueError(f"pools name back-ends without addresses: {', '.join(sorted(missing))}")
        self.rules = rules
        self.backends = backends
        self.down: set[str] = set()
        self.connections: dict[str, int] = dict.fromkeys(backends, 0)
        self._rr: dict[str, int] = dict.fromkeys(rules.pools, 0)

    def set_health(self, name: str, healthy: bool) -> None:
        if name not in self.backends:
            raise KeyError(name)
        if healthy:
            self.down.discard(name)
        else:
            self.down.add(name)

    def opened(self, backend: Backend) -> None:
        self.connections[backend.name] += 1

    def closed(self, backend: Backend) -> None:
        self.connections[backend.name] = max(0, self.connections[backend.name] - 1)

    def choose(self, method: str, host: str | None, path: str, client_ip: bytes) -> Choice:
        rule = self.rules.match(method, host, path)
        if rule is None:
            raise NoRule(f"no rule matches {method} {host or '-'} {path}")
        pool = self.rules.pools[rule.pool]
        healthy = [n for n in pool.backends if n not in self.down]
        if not healthy:
            raise NoBackend(f"pool {pool.name} has no healthy back-end")
        if pool.policy == "round_robin":
            i = self._rr[pool.name]
            self._rr[pool.name] = i + 1
            name = healthy[i % len(healthy)]
        elif pool.policy == "consistent_hash":
            name = max(healthy, key=lambda n: (zlib.crc32(client_ip + n.encode()), n))
        else:  # least_connections; ties go to the pool's order
            name = min(healthy, key=lambda n: (self.connections[n], pool.backends.index(n)))
        return Choice(rule=rule, backend=self.backends[name])

    def may_keep(self, choice: Choice, current: Backend) -> bool:
        """Could the choice's pool have picked `current` (a member, healthy)? Pipelined requests stay
        on the connection's back-end when it could."""
        return current.name in self.rules.pools[choice.rule.pool].backends and current.name not in self.down
