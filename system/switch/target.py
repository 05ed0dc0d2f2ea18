"""The emulated switch target: loads a pipeline package into the switch namespace's ports.

`EmulatedSwitch(netns, ports, pin_dir)`: ports maps P4 port numbers (1..N) to interface names in
`netns`. `load(package)` unpacks the package, loads and pins the BPF object under `pin_dir`,
fills the port maps and attaches the pipeline's program to tc clsact ingress of every port;
`unload()` detaches and unpins, leaving nothing behind.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from system.bpf import loader
from system.switch.package import Package, parse_package
from system.switch.tables import MAX_PORTS, PipelineTables


class EmulatedSwitch:
    def __init__(self, netns: str | None, ports: dict[int, str], pin_dir: Path) -> None:
        for port in ports:
            if not 1 <= port <= MAX_PORTS:
                raise ValueError(f"P4 port {port} not in 1..{MAX_PORTS}")
        self.netns = netns
        self.ports = dict(sorted(ports.items()))
        self.pin_dir = Path(pin_dir)
        self._tables: PipelineTables | None = None
        self._package: Package | None = None

    @property
    def loaded(self) -> bool:
        return self._tables is not None

    @property
    def tables(self) -> PipelineTables:
        if self._tables is None:
            raise RuntimeError("no pipeline loaded")
        return self._tables

    @property
    def package(self) -> Package | None:
        return self._package

    def load(self, package: bytes) -> PipelineTables:
        """Load a pipeline (replacing a loaded one) and return its tables."""
        pkg = parse_package(package)
        ifindexes = {port: loader.ifindex(self.netns, dev) for port, dev in self.ports.items()}
        peers = {port: loader.veth_peer_mac(self.netns, dev) for port, dev in self.ports.items()}
        if self.loaded:
            self.unload()
        loader.unpin(self.pin_dir)  # leftovers of a crashed run
        with tempfile.TemporaryDirectory(prefix="mrsg-load-") as tmp:
            obj = Path(tmp) / f"{pkg.pipeline}.o"
            obj.write_bytes(pkg.object_bytes)
            loaded = loader.load_object(obj, self.pin_dir)
        try:
            tables = PipelineTables(pkg.spec, self.pin_dir)
            for port, ifx in ifindexes.items():
                tables.set_port(port, ifx, peer_mac=peers[port])
            for dev in self.ports.values():
                loader.attach_tc(self.netns, dev, loaded.prog_path(pkg.spec.program), "ingress")
        except Exception:
            self._teardown()
            raise
        self._tables = tables
        self._package = pkg
        return tables

    def _teardown(self) -> None:
        errors = []
        for dev in self.ports.values():
            try:
                loader.detach_tc(self.netns, dev)
            except loader.LoaderError as exc:
                errors.append(str(exc))
        if self._tables is not None:
            self._tables.close()
        self._tables = None
        self._package = None
        loader.unpin(self.pin_dir)
        if errors:
            raise loader.LoaderError("; ".join(errors))

    def unload(self) -> None:
        """Detach from every port and unpin everything (a no-op when nothing is loaded)."""
        self._teardown()
