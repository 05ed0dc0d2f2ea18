"""The switch's table counters as a real switch offers them: P4Runtime reads (harness/cellstats.py,
for a `tofino` switch target, where the emulated switch's pinned maps and p4rt-stats.json do not exist).

One `read(address, credentials)` gives, per table that has a direct counter, what
analysis/switchstats.py reads from a `counters` snapshot:

- `entries`: the table's entries now (a wildcard Read with `counter_data`);
- `hit_packets` / `hit_bytes`: the sum of those entries' direct counters, plus (`add_retired`) the
  counters of the entries the control plane deleted so far: it reads an entry's direct counter just
  before deleting it (system/controlplane/controller.py, stats `retired_counters`), since a switch
  drops the counter with the entry. The control plane's stats are asked before the live read (its
  `retired_seq`) and after it (with `retired_after`: the entries deleted meanwhile, with their keys):
  an entry deleted during the read that the read still saw counts once, with its retired counter
  (`add_retired`);
- `miss_packets` / `miss_bytes`: the default entry's direct counter (every default action of the
  project's P4 programs counts the table's counter); absent when the server cannot read a default
  entry's counter (the offloaded share then takes `backend_by_index` misses, client ACKs of an
  offloaded connection whose back-end index the switch does not know, as none);
- `capacity`: the table's size in the switch's P4Info.

Reads are done with the harness's monitor identity over TLS (harness/credentials.py; the P4Runtime
server lets role `monitor` Read and GetForwardingPipelineConfig only, system/switch/p4rt/access.py),
need no arbitration, and never write. The same code reads the emulated switch's server (the stand-in
SDE's stratum_bf serves it), which is how tests/test_tofino_standin.py checks it end to end.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from system.credentials import Credentials
from system.switch.p4rt.codec import P4InfoIndex


def _channel(address: str, credentials: Credentials | None) -> grpc.Channel:
    return (grpc.secure_channel(address, credentials.grpc_channel_credentials()) if credentials
            else grpc.insecure_channel(address))


def read(address: str, credentials: Credentials | None, device_id: int = 1, timeout: float = 10.0
         ) -> dict[str, Any]:
    """{"time", "tables": {alias: {entries, hit_packets, hit_bytes, miss_packets, miss_bytes,
    capacity}}, "p4rt": {"tables": {alias: {"capacity"}}}} of the counted tables (module doc).
    Raises grpc.RpcError when the switch does not answer or refuses."""
    with _channel(address, credentials) as ch:
        stub = p4runtime_pb2_grpc.P4RuntimeStub(ch)
        req = p4runtime_pb2.GetForwardingPipelineConfigRequest(
            device_id=device_id, response_type=p4runtime_pb2.GetForwardingPipelineConfigRequest.P4INFO_AND_COOKIE)
        p4info = stub.GetForwardingPipelineConfig(req, timeout=timeout).config.p4info
        idx = P4InfoIndex(p4info)
        counted = sorted({c.direct_table_id for c in p4info.direct_counters})
        t0 = time.time()
        tables: dict[str, dict[str, int]] = {}
        live: dict[str, dict[str, tuple[int, int]]] = {}
        for tid in counted:
            t = idx.table(tid)
            row = dict.fromkeys(("entries", "hit_packets", "hit_bytes"), 0)
            ent = p4runtime_pb2.Entity()
            ent.table_entry.table_id = tid
            ent.table_entry.counter_data.SetInParent()
            entries = live[t.alias] = {}
            for rep in stub.Read(p4runtime_pb2.ReadRequest(device_id=device_id, entities=[ent]), timeout=timeout):
                for e in rep.entities:
                    c = e.table_entry.counter_data
                    row["entries"] += 1
                    row["hit_packets"] += c.packet_count
                    row["hit_bytes"] += c.byte_count
                    entries[entry_key(e.table_entry)] = (c.packet_count, c.byte_count)
            dflt = p4runtime_pb2.Entity()
            dflt.direct_counter_entry.table_entry.table_id = tid
            dflt.direct_counter_entry.table_entry.is_default_action = True
            try:
                for rep in stub.Read(p4runtime_pb2.ReadRequest(device_id=device_id, entities=[dflt]),
                                     timeout=timeout):
                    for e in rep.entities:
                        row["miss_packets"] = e.direct_counter_entry.data.packet_count
                        row["miss_bytes"] = e.direct_counter_entry.data.byte_count
            except grpc.RpcError as e:     # a server without default-entry counters: no miss_* fields
                if e.code() not in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INVALID_ARGUMENT,
                                    grpc.StatusCode.NOT_FOUND):
                    raise
            row["capacity"] = t.size
            tables[t.alias] = row
    return {"time": (t0 + time.time()) / 2, "source": "p4runtime", "tables": tables,
            "p4rt": {"tables": {a: {"capacity": r["capacity"]} for a, r in tables.items()}}, "live": live}


def entry_key(e: p4runtime_pb2.TableEntry) -> str:
    """An entry's table and match, as the control plane keys its `retired_entries` (EntryCodec.entry_key)."""
    m = p4runtime_pb2.TableEntry(table_id=e.table_id)
    m.match.extend(sorted(e.match, key=lambda f: f.field_id))
    return m.SerializeToString(deterministic=True).hex()


def add_retired(counters: dict[str, Any], cp_stats: dict[str, Any] | None) -> dict[str, Any]:
    """`counters` (from `read`) with the control plane's `retired_counters` added to the hits and
    recorded under "retired" (a table the control plane never deleted from is unchanged).

    `cp_stats` should be a `stats` reply asked with `retired_after` = the `retired_seq` of a reply
    taken just before `read`: an entry in its `retired_entries` that the live read still saw was
    deleted during the read, and its retired counter (read at its delete, so later) replaces its live
    one, which is taken out of the hits (so nothing is counted twice). The per-entry `live` map and
    `retired_entries` are dropped; `deleted_while_read` says how many entries that concerned."""
    live = counters.pop("live", {}) or {}
    cp_stats = cp_stats or {}
    twice = 0
    for rec in cp_stats.pop("retired_entries", None) or []:
        _, alias, key, _, _ = rec
        seen = live.get(alias, {}).get(key)
        row = counters["tables"].get(alias)
        if seen is not None and row is not None:
            row["hit_packets"] -= seen[0]
            row["hit_bytes"] -= seen[1]
            twice += 1
    counters["deleted_while_read"] = twice
    retired = cp_stats.get("retired_counters") or {}
    for alias, c in retired.items():
        row = counters["tables"].get(alias)
        if row is not None:
            row["hit_packets"] += int(c.get("packets", 0))
            row["hit_bytes"] += int(c.get("bytes", 0))
    counters["retired"] = retired
    return counters
