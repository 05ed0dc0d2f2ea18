"""Load, attach, report and unload the back-end agent.

`Agent(netns, interface, pin_dir)`: `load()` compiles bpf/agent.c, loads and pins it under
`pin_dir` (`progs/agent_ingress`, `progs/agent_egress`, `maps/flows`, `maps/counters`);
`attach()` puts the programs on the clsact ingress and egress hooks of `interface` in `netns`
(None: the current namespace); `detach()` removes the clsact qdisc of the interface; `unload()`
detaches and unpins. `entries()`, `counters()` and `prog_stats()` report. The shared
infrastructure of system/bpf does the work (nsenter for tc, bpftool for loading).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from system.agent.tables import (
    MAP_COUNTERS,
    MAP_FLOWS,
    PROG_EGRESS,
    PROG_INGRESS,
    SOURCE,
    Endpoint,
    FlowEntry,
    FlowTable,
    read_counters,
)
from system.bpf import loader
from system.bpf.build import BuildResult, compile_bpf
from system.bpf.syscall import Map, Prog, enable_stats


def build_object(output: Path, flows_size: int | None = None) -> BuildResult:
    """Compile the agent to `output` (flows map capacity from consts.h unless given)."""
    defines = {"AGENT_FLOWS_SIZE": str(flows_size)} if flows_size else None
    return compile_bpf(SOURCE, output, defines=defines)


@dataclass(frozen=True)
class ProgStats:
    run_cnt: int
    run_time_ns: int

    @property
    def ns_per_run(self) -> float:
        return self.run_time_ns / self.run_cnt if self.run_cnt else 0.0


class Agent:
    def __init__(self, netns: str | None, interface: str, pin_dir: Path,
                 flows_size: int | None = None) -> None:
        self.netns = netns
        self.interface = interface
        self.pin_dir = Path(pin_dir)
        self.flows_size = flows_size
        self.object_sha256: str | None = None
        self._loaded: loader.LoadedObject | None = None
        self._flows: FlowTable | None = None
        self._counters: Map | None = None
        self._attached = False
        self._stats_fd: int | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @property
    def attached(self) -> bool:
        return self._attached

    @property
    def flows(self) -> FlowTable:
        if self._flows is None:
            raise RuntimeError("agent not loaded")
        return self._flows

    def prog_path(self, name: str) -> Path:
        if self._loaded is None:
            raise RuntimeError("agent not loaded")
        return self._loaded.prog_path(name)

    def load(self) -> None:
        if self.loaded:
            return
        loader.unpin(self.pin_dir)  # leftovers of a crashed run
        with tempfile.TemporaryDirectory(prefix="mrse-agent-") as tmp:
            result = build_object(Path(tmp) / "agent.o", self.flows_size)
            self._loaded = loader.load_object(result.object_path, self.pin_dir)
        self.object_sha256 = result.sha256
        try:
            self._flows = FlowTable(Map.pinned(self._loaded.map_path(MAP_FLOWS)))
            self._counters = Map.pinned(self._loaded.map_path(MAP_COUNTERS))
        except Exception:
            self.unload()
            raise

    def attach(self) -> None:
        if not self.loaded:
            self.load()
        try:
            loader.attach_tc(self.netns, self.interface, self.prog_path(PROG_INGRESS), "ingress")
            loader.attach_tc(self.netns, self.interface, self.prog_path(PROG_EGRESS), "egress")
        except Exception:
            loader.detach_tc(self.netns, self.interface)
            raise
        self._attached = True

    def detach(self) -> None:
        """Remove the interface's clsact qdisc (the agent's filters with it); absent is fine."""
        loader.detach_tc(self.netns, self.interface)
        self._attached = False

    def unload(self) -> None:
        if self._attached:
            self.detach()
        self.disable_stats()
        if self._flows is not None:
            self._flows.map.close()
            self._flows = None
        if self._counters is not None:
            self._counters.close()
            self._counters = None
        loader.unpin(self.pin_dir)
        self._loaded = None

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()

    # Reports.

    def entries(self) -> dict[Endpoint, FlowEntry]:
        return self.flows.entries()

    def counters(self) -> dict[str, int]:
        if self._counters is None:
            raise RuntimeError("agent not loaded")
        return read_counters(self._counters)

    def enable_stats(self) -> None:
        """Account run_cnt/run_time_ns of BPF programs until disable_stats() or unload()."""
        if self._stats_fd is None:
            self._stats_fd = enable_stats()

    def disable_stats(self) -> None:
        if self._stats_fd is not None:
            os.close(self._stats_fd)
            self._stats_fd = None

    def prog_stats(self) -> dict[str, ProgStats]:
        """run_cnt and run_time_ns per program (both stay 0 unless stats are enabled)."""
        out = {}
        for name in (PROG_INGRESS, PROG_EGRESS):
            with Prog.pinned(self.prog_path(name)) as prog:
                info = prog.info()
            out[name] = ProgStats(run_cnt=info.run_cnt, run_time_ns=info.run_time_ns)
        return out
