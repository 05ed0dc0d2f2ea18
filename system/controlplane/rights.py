"""What each role may ask of the control plane (docs/controlplane-protocol.md, "Authorisation").

The role is the organizational unit of the client's certificate (system/credentials.py). A front-end
adds and deletes `offload` entries, asks when the switch last counted their packets (`activity`) and
reads the cookie secrets; the switch-only slow path adds and
deletes `conn_in` / `conn_out` entries and reads the cookie secrets; a monitor (the harness's stats
sampler) reads the stats; the operator may do everything, and is the only one that may touch the
static tables (route, vip, backends, backend_by_index, frontend_bucket, slow_path, syn_cookie,
and the back-end guard's protected_hosts and trusted_ports: no front-end or slow path may open
the guard).
Anything else is refused with PERMISSION_DENIED and counted (stats `auth.refused`).
"""

from __future__ import annotations

from dataclasses import dataclass

ALL = "*"


@dataclass(frozen=True)
class Rights:
    tables: frozenset[str]                 # table aliases it may write; {ALL}: every table
    ops: frozenset[str]                    # entry operations: add, modify, delete
    cookie_secrets: bool = False
    stats: bool = False
    activity: frozenset[str] = frozenset()  # tables whose entries' activity it may ask; {ALL}: every table

    def may_ask_activity(self, table_alias: str) -> bool:
        return ALL in self.activity or table_alias in self.activity

    def may_write(self, op: str, table_alias: str) -> bool:
        return op in self.ops and (ALL in self.tables or table_alias in self.tables)

    def writable(self, aliases: list[str]) -> list[str]:
        return sorted(aliases) if ALL in self.tables else sorted(t for t in aliases if t in self.tables)


NOTHING = Rights(frozenset(), frozenset())
ROLE_RIGHTS: dict[str, Rights] = {
    "operator": Rights(frozenset({ALL}), frozenset({"add", "modify", "delete"}), cookie_secrets=True, stats=True,
                       activity=frozenset({ALL})),
    "frontend": Rights(frozenset({"offload"}), frozenset({"add", "delete"}), cookie_secrets=True,
                       activity=frozenset({"offload"})),
    "slowpath": Rights(frozenset({"conn_in", "conn_out"}), frozenset({"add", "delete"}), cookie_secrets=True),
    "monitor": Rights(frozenset(), frozenset(), stats=True),
}
# An insecure server (--insecure, tests only) cannot tell clients apart: each is the operator.
INSECURE_ROLE = "operator"


def rights_of(role: str) -> Rights:
    return ROLE_RIGHTS.get(role, NOTHING)
