"""`fab deploy` on a Tofino switch host: what an operator does with the SDE, as checked steps over SSH.

On the switch host (inventory `switch: {target: tofino, sde: ..., ports: ...}`, harness/tofino_config.py):

  sde         the SDE is there and is the inventory's version (`$SDE_INSTALL/bin/bf-p4c --version`)
  copy        p4src/, the project's Python (control plane, packaging), inventory, port map
  build       `bf-p4c --target tofino --arch tna --p4runtime-force-std-externs -o build/<prog> ...`
  p4info      the compiler's P4Info equals the committed p4src/<prog>.p4info.txtpb (what the control plane
              and the emulated switch use), so the control plane is the same on both targets
  package     the device config the server takes: Stratum's BfPipelineConfig (bfrt.json, and per pipe
              context.json + tofino.bin), or PI's packing for bf_switchd (python -m system.switch.bfpipeline)
  ports-config  Stratum's chassis config (singleton ports with speed, FEC, autoneg), or a bfshell script
              (port-add / an-set / port-enb) for bf_switchd
  daemon      start stratum_bf (or bf_switchd --p4rt-server) and wait for its P4Runtime port
  controlplane  start the control plane: it pushes the pipeline (SetForwardingPipelineConfig with that
              device config and the committed P4Info) and installs the static tables
  ports       bf_switchd: run the bfshell script after the push, check every port was added; Stratum
              brought them up from the chassis config

Each step checks its result; a failure raises DeployError naming the host and the step. `plan_lines`
prints the same commands for `fab deploy --dry-run`. A stand-in SDE (system/switch/sde_standin) runs
the same steps on the local testbed.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.credentials import REMOTE_DIR as CREDENTIALS_DIR  # <workdir>/credentials/<identity>
from harness.inventory import ROOT, Host, Inventory
from harness.remote import Remote, RemoteError
from harness.tofino_config import TofinoConfig, TofinoPort
from system.credentials import CA_FILE, CERT_FILE, KEY_FILE

COMPILER_FLAGS = "--p4runtime-force-std-externs"   # direct counters as standard P4Runtime ones (harness/p4c.py)
STANDIN_CPU_PORT = 64                              # the stand-in SDE's fixed CPU port (its "chip")


class TofinoDeployError(RuntimeError):
    """A step failed on the switch host; the message names the host and the step."""


@dataclass(frozen=True)
class Layout:
    """Paths on the switch host for one pipeline."""
    workdir: str
    pipeline: str

    @property
    def build(self) -> str:
        return f"{self.workdir}/build/{self.pipeline}"

    @property
    def device_config(self) -> str:
        return f"{self.build}/device_config.bin"

    @property
    def p4info(self) -> str:
        return f"{self.build}/p4info.txtpb"

    @property
    def conf_dir(self) -> str:
        return f"{self.workdir}/tofino"

    @property
    def chassis(self) -> str:
        return f"{self.conf_dir}/chassis_config.pb.txt"

    @property
    def ucli(self) -> str:
        return f"{self.conf_dir}/ports.ucli"


def env(t: TofinoConfig) -> str:
    return (f"export SDE={shlex.quote(t.sde)} SDE_INSTALL={shlex.quote(t.sde_install)} "
            f"PATH={shlex.quote(t.sde_install)}/bin:$PATH LD_LIBRARY_PATH={shlex.quote(t.sde_install)}/lib"
            "${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")


# ---- commands and files -------------------------------------------------------------------------

def build_cmd(t: TofinoConfig, lay: Layout) -> str:
    return (f"cd {lay.workdir} && {env(t)} && rm -rf {lay.build} && mkdir -p {lay.build} && "
            f"$SDE_INSTALL/bin/bf-p4c --target {t.chip} --arch {t.arch} {COMPILER_FLAGS} -o {lay.build} "
            f"--p4runtime-files {lay.p4info} --bf-rt-schema {lay.build}/bfrt.json p4src/{lay.pipeline}.p4 "
            f"> {lay.workdir}/log/bf-p4c-{lay.pipeline}.log 2>&1")


def package_cmd(t: TofinoConfig, lay: Layout, python: str) -> str:
    fmt = "stratum" if t.server == "stratum_bf" else "pi"
    return (f"cd {lay.workdir} && {python} -m system.switch.bfpipeline pack --format {fmt} "
            f"--name {lay.pipeline} --p4c-out {lay.build} -o {lay.device_config}")


def daemon_env(t: TofinoConfig) -> dict[str, str]:
    return {"SDE": t.sde, "SDE_INSTALL": t.sde_install, "LD_LIBRARY_PATH": f"{t.sde_install}/lib"}


def daemon_cmd(inv: Inventory, lay: Layout) -> str:
    """The P4Runtime server's command line (run with daemon_env)."""
    t = inv.switch.tofino
    port = inv.switch.p4runtime_port
    if t.server == "stratum_bf":
        state = f"{lay.conf_dir}/stratum"
        tls = f"{lay.workdir}/{CREDENTIALS_DIR}/p4rt"
        args = [t.server_binary, f"-bf_sde_install={t.sde_install}", f"-bf_switchd_cfg={t.switchd_conf}",
                "-bf_switchd_background=false", f"-chassis_config_file={lay.chassis}",
                f"-external_stratum_urls=0.0.0.0:{port}", f"-persistent_config_dir={state}",
                f"-forwarding_pipeline_configs_file={state}/pipeline_cfg.pb.txt",
                f"-write_req_log_file={lay.workdir}/log/p4_writes.pb.txt", f"-log_dir={lay.workdir}/log",
                # P4Runtime over TLS with the deployment's `p4rt` identity (issued by fab deploy):
                # only clients with a certificate of the same CA get a channel
                f"-ca_cert_file={tls}/{CA_FILE}", f"-server_cert_file={tls}/{CERT_FILE}",
                f"-server_key_file={tls}/{KEY_FILE}"]
    else:
        args = [t.server_binary, f"--install-dir={t.sde_install}", f"--conf-file={t.switchd_conf}", "--skip-p4",
                f"--p4rt-server=0.0.0.0:{port}", "--background"]
    return " ".join(shlex.quote(a) for a in [*args, *t.server_args])


def ports_cmd(t: TofinoConfig, lay: Layout) -> str:
    return f"{env(t)} && $SDE/run_bfshell.sh -f {lay.ucli}"


_STRATUM_FEC = {"none": "FEC_MODE_OFF", "fc": "FEC_MODE_ON", "rs": "FEC_MODE_ON"}
_STRATUM_AN = {"default": "TRI_STATE_UNKNOWN", "on": "TRI_STATE_TRUE", "off": "TRI_STATE_FALSE"}


def chassis_config(inv: Inventory) -> str:
    """Stratum's ChassisConfig (text format): one singleton port per inventory port, id = device port.
    Stratum picks Firecode or Reed-Solomon by speed when FEC is on (10G/40G: FC, others: RS)."""
    t = inv.switch.tofino
    lines = [f"# written by `fab deploy` (harness/tofino.py) for inventory {inv.name}",
             "description: \"miresga switch\"",
             "chassis {", "  platform: PLT_GENERIC_BAREFOOT_TOFINO" if t.chip == "tofino" else
             "  platform: PLT_GENERIC_BAREFOOT_TOFINO2", f"  name: \"{inv.switch_host.name}\"", "}",
             "nodes {", "  id: 1", "  slot: 1", "  index: 1", "}"]
    for p in t.ports:
        panel, channel = p.panel
        params = ["    admin_state: ADMIN_STATE_ENABLED", f"    autoneg: {_STRATUM_AN[p.autoneg]}",
                  f"    fec_mode: {_STRATUM_FEC[p.fec]}"]
        lines += ["singleton_ports {", f"  id: {p.dev_port}", f"  name: {json.dumps(p.name)}", "  slot: 1",
                  f"  port: {panel}", f"  channel: {channel + 1}", f"  speed_bps: {int(p.speed[:-1]) * 10**9}",
                  "  config_params {", *params, "  }", "  node: 1", "}"]
    return "\n".join(lines) + "\n"


def ucli_script(t: TofinoConfig) -> str:
    """bfshell commands that add and enable every port (bf_switchd's port manager)."""
    an = {"default": 0, "on": 1, "off": 2}
    lines = ["ucli", "pm"]
    for p in t.ports:
        lines += [f"port-add {p.port} {p.speed} {p.fec.upper()}", f"an-set {p.port} {an[p.autoneg]}",
                  f"port-enb {p.port}"]
    lines += ["show", "exit", "exit"]
    return "\n".join(lines) + "\n"


def missing_ports(show: str, ports: tuple[TofinoPort, ...]) -> list[str]:
    """Ports the port manager's `show` does not list (it prints one row per added port, `1/0 |...`)."""
    rows = {line.split("|")[0].strip() for line in show.splitlines() if "|" in line}
    return [p.port for p in ports if p.port not in rows]


# ---- the deployment -----------------------------------------------------------------------------

class Steps:
    """Runs named steps on the switch host; a failure names the host and the step."""

    def __init__(self, r: Remote, log: callable) -> None:  # type: ignore[valid-type]
        self.r = r
        self.log = log

    def fail(self, step: str, msg: str) -> TofinoDeployError:
        return TofinoDeployError(f"{self.r.name}: step {step!r} failed: {msg}")

    def run(self, step: str, cmd: str, timeout: float = 120, log_file: str | None = None) -> str:
        try:
            return self.r.run(cmd, timeout=timeout)
        except RemoteError as e:
            tail = self.r.run(f"tail -n 40 {log_file}", check=False) if log_file else ""
            raise self.fail(step, f"{e}" + (f"\n{log_file}:\n{tail}" if tail else "")) from None


def is_standin(r: Remote, t: TofinoConfig) -> bool:
    return r.run(f"test -f {shlex.quote(t.sde)}/STAND-IN && echo yes", check=False).strip() == "yes"


def deploy_switch(r: Remote, inv: Inventory, pipeline: str, files: dict[str, Path | bytes], log: callable,  # type: ignore[valid-type]
                  ready: callable) -> None:  # type: ignore[valid-type]
    """Every step on the switch host. `files`: the project files the host needs (from deploy.py);
    `ready()`: True once the control plane has set the pipeline and its static tables."""
    from harness.deploy import CONTROLPLANE_PORT

    t: TofinoConfig = inv.switch.tofino
    lay = Layout(r.workdir, pipeline)
    s = Steps(r, log)
    py = r.python()

    version = s.run("sde", f"test -d {shlex.quote(t.sde)} && test -x {shlex.quote(t.sde_install)}/bin/bf-p4c "
                    f"&& {env(t)} && $SDE_INSTALL/bin/bf-p4c --version").strip()
    if t.sde_version not in version:
        raise s.fail("sde", f"switch.sde_version is {t.sde_version} but {t.sde_install}/bin/bf-p4c reports "
                     f"{version!r}")
    standin = is_standin(r, t)
    if standin:
        log(f"{r.name}: STAND-IN SDE at {t.sde} ({version}): the switch is the emulated one, results are emulated")
        if inv.switch.cpu_port != STANDIN_CPU_PORT:
            raise s.fail("sde", f"switch.cpu_port is {inv.switch.cpu_port}, the stand-in SDE's CPU port is "
                         f"{STANDIN_CPU_PORT}")
    if not standin and inv.kind == "local":
        raise s.fail("sde", f"{t.sde} is not the stand-in SDE: the local testbed has no Tofino")
    log(f"{r.name}: SDE {version} at {t.sde}; P4Runtime server {t.server}")

    files = dict(files)
    files["tofino/chassis_config.pb.txt"] = chassis_config(inv).encode()
    files["tofino/ports.ucli"] = ucli_script(t).encode()
    try:
        r.run(f"rm -rf {r.workdir}/system {r.workdir}/p4src {lay.conf_dir} && mkdir -p {r.workdir}/log {r.workdir}/run")
        r.put_tree(files)
    except RemoteError as e:
        raise s.fail("copy", str(e)) from None

    log(f"{r.name}: building p4src/{pipeline}.p4 with the SDE's bf-p4c ({t.chip}, {t.arch})")
    s.run("build", build_cmd(t, lay), timeout=1800, log_file=f"{r.workdir}/log/bf-p4c-{pipeline}.log")
    check_p4info(s, pipeline, s.run("p4info", f"cat {lay.p4info}"))

    out = s.run("package", package_cmd(t, lay, py))
    try:
        desc = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise s.fail("package", f"unexpected output {out!r}") from None
    log(f"{r.name}: device config {lay.device_config} ({desc['format']}, {desc['bytes']} bytes)")

    r.stop("switchd")
    if t.server == "stratum_bf":
        r.run(f"rm -f {lay.conf_dir}/stratum/pipeline_cfg.pb.txt", check=False)
    try:
        r.run(f"mkdir -p {lay.conf_dir}/stratum")
        r.start("switchd", daemon_cmd(inv, lay), env=daemon_env(t))
    except RemoteError as e:
        raise s.fail("daemon", str(e)) from None
    port = inv.switch.p4runtime_port
    mgmt = str(r.host.mgmt_address or r.host.ssh_address)

    def listening() -> bool:
        if r.service_pid("switchd") is None:
            raise s.fail("daemon", f"{t.server} exited:\n{r.tail('switchd')}")
        return r.run(f"{py} -c \"import socket; socket.create_connection(('{mgmt}', {port}), 1)\"",
                     check=False) == "" and r.service_pid("switchd") is not None
    _wait(s, "daemon", listening, 180, f"{t.server} on {r.name} to serve P4Runtime on {mgmt}:{port}")
    r.put_tree({"run/switch-sde.json": json.dumps({
        "sde": t.sde, "sde_install": t.sde_install, "version": version, "stand_in": standin,
        "p4runtime_server": t.server, "pipeline": pipeline, "device_config": desc}, indent=2).encode()})

    controlplane = (f"{py} -m system.controlplane --inventory {r.workdir}/inventory.yaml --switch {mgmt}:{port} "
                    f"--listen {mgmt}:{CONTROLPLANE_PORT} --pipeline {pipeline} --port-map {r.workdir}/port-map.yaml "
                    f"--p4info {r.workdir}/p4src/{pipeline}.p4info.txtpb --device-config {lay.device_config} "
                    f"--stats-file {r.workdir}/run/controlplane-stats.json "
                    f"--credentials {lay.workdir}/{CREDENTIALS_DIR}/controlplane"
                    + (" --switch-insecure" if t.server == "bf_switchd" else ""))
    try:
        r.start("controlplane", controlplane)
    except RemoteError as e:
        raise s.fail("controlplane", str(e)) from None
    _wait(s, "controlplane", ready, 120,
          f"the control plane on {r.name} to push pipeline {pipeline} (SetForwardingPipelineConfig) and its tables")

    if t.server == "bf_switchd":
        show = s.run("ports", ports_cmd(t, lay))
        missing = missing_ports(show, t.ports)
        if missing:
            raise s.fail("ports", f"bfshell did not add {', '.join(missing)}:\n{show[-2000:]}")
    log(f"{r.name}: Tofino{' (STAND-IN SDE)' if standin else ''} running {pipeline}: {t.server} on :{port}, "
        f"{len(t.ports)} ports, control plane {mgmt}:{CONTROLPLANE_PORT}")


def _wait(s: Steps, step: str, pred: callable, timeout: float, what: str) -> None:  # type: ignore[valid-type]
    """Polls `pred` until it holds; a failure it reports (the service exited) ends the wait at once."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except TofinoDeployError:
            raise
        except Exception as e:                   # transient (SSH, a half-written file), or fatal
            if type(e).__name__ == "DeployError":
                raise s.fail(step, str(e)) from None
            last = e
        time.sleep(0.3)
    raise s.fail(step, f"timed out after {timeout:.0f} s waiting for {what}" + (f": {last}" if last else ""))


def check_p4info(s: Steps, pipeline: str, compiled: str) -> None:
    """The SDE compiler's P4Info must be the committed one: the control plane pushes that one."""
    from google.protobuf import text_format
    from p4.config.v1 import p4info_pb2

    from system.switch.p4rt.device import p4info_difference

    committed = ROOT / "p4src" / f"{pipeline}.p4info.txtpb"
    try:
        got = text_format.Parse(compiled, p4info_pb2.P4Info())
    except text_format.ParseError as e:
        raise s.fail("p4info", f"the compiler's P4Info does not parse: {e}") from None
    want = text_format.Parse(committed.read_text(), p4info_pb2.P4Info())
    diff = p4info_difference(got, want)
    if diff:
        raise s.fail("p4info", f"the SDE compiler's P4Info differs from {committed.relative_to(ROOT)} ({diff}): "
                     "regenerate it (scripts/p4-compile.sh) or use the compiler version it was made with")


# ---- dry run ------------------------------------------------------------------------------------

def plan_lines(inv: Inventory, host: Host, pipeline: str, system: str) -> list[str]:
    """The exact commands `fab deploy` runs on the switch host, in order (for `--dry-run`)."""
    t: TofinoConfig = inv.switch.tofino
    lay = Layout(host.workdir, pipeline)
    py = {"harness": sys.executable, "venv": f"{host.workdir}/venv/bin/python"}.get(host.python, host.python)
    mgmt = str(host.mgmt_address or host.ssh_address)
    port = inv.switch.p4runtime_port
    ind = "      "
    out = [f"    sde:          test -x {t.sde_install}/bin/bf-p4c && bf-p4c --version   (expects {t.sde_version})",
           f"    copy:         system/ + p4src/ + inventory + port map -> {host.workdir}; "
           f"{lay.chassis if t.server == 'stratum_bf' else lay.ucli}",
           f"    build:        {build_cmd(t, lay)}",
           f"    p4info:       {lay.p4info} must equal p4src/{pipeline}.p4info.txtpb",
           f"    package:      {package_cmd(t, lay, py)}",
           "    daemon:       cd {} && {} setsid {}".format(
               host.workdir, " ".join(f"{k}={v}" for k, v in daemon_env(t).items()), daemon_cmd(inv, lay)),
           f"                  (pid file {host.workdir}/run/switchd.pid; wait for {mgmt}:{port})",
           f"    controlplane: {py} -m system.controlplane --switch {mgmt}:{port} --pipeline {pipeline} "
           f"--p4info {host.workdir}/p4src/{pipeline}.p4info.txtpb --device-config {lay.device_config} ... "
           "(SetForwardingPipelineConfig, then the static tables)"]
    if t.server == "bf_switchd":
        out.append(f"    ports:        {ports_cmd(t, lay)}   (then check `pm show` lists every port)")
        out += [ind + line for line in ucli_script(t).splitlines()]
    else:
        out.append(f"    ports:        by stratum_bf from {lay.chassis}:")
        out += [ind + line for line in chassis_config(inv).splitlines() if not line.startswith("#")]
    if system == "switch-only":
        out.append(f"    slowpath:     {py} -m system.switchonly --dev {t.cpu_netdev} ... (CPU port "
                   f"{inv.switch.cpu_port})")
    return out

