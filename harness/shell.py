"""Running local commands with clear errors (the testbed and tests use it; remote hosts use harness.remote)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence


class CommandError(RuntimeError):
    def __init__(self, cmd: Sequence[str], returncode: int, stderr: str) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"command failed ({returncode}): {shlex.join(self.cmd)}\n{stderr.strip()}")


def run(cmd: Sequence[str], check: bool = True, input: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(list(cmd), capture_output=True, text=True, input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise CommandError(cmd, p.returncode, p.stderr or p.stdout)
    return p


def ns_cmd(netns: str | None, cmd: Sequence[str]) -> list[str]:
    """The command run inside a network namespace (or as is, for the root namespace)."""
    return ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)


def run_in(netns: str | None, cmd: Sequence[str], check: bool = True,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run(ns_cmd(netns, cmd), check=check, timeout=timeout)
