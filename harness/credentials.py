"""The management plane's credentials, made at every `fab deploy` (system/credentials.py).

A fresh CA per deployment signs one certificate per identity, then its key is dropped: redeploying
is rotating (every certificate and key is replaced, the old CA is trusted nowhere any more). Each
identity goes over SSH into `<workdir>/credentials/<identity>/` of the host that uses it (directory
0700, files 0600, owned by the SSH user), never into the repository or a run directory:

| host | identity (directory) | role | used by |
|---|---|---|---|
| switch | `controlplane` | controlplane | the control plane: server cert (port 9600), P4Runtime client cert |
| switch | `p4rt` | switch | the P4Runtime server (TLS, client certificates required) |
| switch | `slowpath` | slowpath | the switch-only slow path (conn_in/conn_out writes, cookie secrets, counter reads) |
| switch | `operator` | operator | an operator's tools on the switch host (every table) |
| each front-end | `frontend` (cert `frontend-<host>`) | frontend | the front-end (offload writes, cookie secrets) |
| the harness machine | `monitor` | monitor | harness/cellstats.py's stats sampling (stats only) |

The harness's own identity is kept outside the repository and the run directories, under
`$MIRESGA_STATE_DIR` (default `$XDG_STATE_HOME/miresga`, else `~/.local/state/miresga`),
`credentials/<inventory name>/monitor/`.
"""

from __future__ import annotations

import io
import os
import shlex
import tarfile
import time
from pathlib import Path

from harness.inventory import Inventory
from harness.remote import Remote
from system.credentials import CredentialError, Credentials, Identity, issue, write

REMOTE_DIR = "credentials"
SERVER_NAMES = ("controlplane", "p4rt")


def remote_dir(r: Remote, identity: str) -> str:
    """Where identity `identity`'s files are on `r`'s host (the daemons' --credentials)."""
    return f"{r.workdir}/{REMOTE_DIR}/{identity}"


def state_dir() -> Path:
    env = os.environ.get("MIRESGA_STATE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "miresga"


def local_dir(inv: Inventory) -> Path:
    return state_dir() / "credentials" / inv.name / "monitor"


def monitor(inv: Inventory) -> Credentials | None:
    """The harness's own identity (role monitor) for this inventory, if a deploy made one."""
    try:
        return Credentials.load(local_dir(inv))
    except CredentialError:
        return None


def plan(inv: Inventory) -> dict[str, list[Identity]]:
    """host name -> the identities it gets ('' is the harness machine)."""
    sw = inv.switch_host
    mgmt = str(sw.mgmt_address or sw.ssh_address)
    out: dict[str, list[Identity]] = {
        sw.name: [Identity("controlplane", "controlplane", (mgmt,)), Identity("p4rt", "switch", (mgmt,)),
                  Identity("slowpath", "slowpath"), Identity("operator", "operator")],
        "": [Identity(f"harness-{inv.name}", "monitor")],
    }
    for h in inv.frontends:
        out[h.name] = [Identity(f"frontend-{h.name}", "frontend")]
    return out


def _dir_name(ident: Identity) -> str:
    return "frontend" if ident.role == "frontend" else "monitor" if ident.role == "monitor" else ident.name


def put_private(r: Remote, files: dict[str, bytes]) -> None:
    """Replaces `<workdir>/credentials` on `r`'s host with `files` (relative path -> bytes): the
    directory is made 0700 first (umask 077), so nothing is readable by others at any moment."""
    base = f"{r.workdir}/{REMOTE_DIR}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        dirs = sorted({rel.split("/")[0] for rel in files})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, int(time.time())
            tar.addfile(info)
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    q = shlex.quote(base)
    # The workdir (and its parents) with the default umask: on a fresh host `mkdir -p` under umask 077
    # would make them 0700, and the back-ends' nginx workers could not reach their objects.
    r.run(f"mkdir -p {shlex.quote(r.workdir)} && umask 077 && rm -rf {q} && mkdir -p {q} && chmod 700 {q}")
    r.conn.put(buf, remote=f"{base}/.incoming.tgz")
    r.run(f"umask 077 && tar --no-same-owner -xzf {q}/.incoming.tgz -C {q} && rm -f {q}/.incoming.tgz "
          f"&& chmod -R go-rwx {q}")


def install(inv: Inventory, remotes: dict[str, Remote]) -> None:
    """Issues this deployment's credentials and hands each host its own (`remotes`: host name ->
    Remote, for the switch and front-end hosts); the harness's identity goes to `local_dir(inv)`."""
    by_host = plan(inv)
    issued = issue([i for idents in by_host.values() for i in idents])
    for host, idents in by_host.items():
        files = {f"{_dir_name(i)}/{fname}": data for i in idents for fname, data in issued[i.name].items()}
        if host == "":
            local = local_dir(inv)
            local.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write(local, {fname.split("/", 1)[1]: data for fname, data in files.items()})
        elif host in remotes:
            put_private(remotes[host], files)
