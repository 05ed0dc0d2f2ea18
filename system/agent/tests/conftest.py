"""Fixtures of the agent tests. Root-only fixtures skip with the reason elsewhere."""

from __future__ import annotations

import pytest
from agent_testing import PIN_ROOT, require_root

from system.agent.loader import Agent
from system.agent.tables import PROG_EGRESS, PROG_INGRESS
from system.bpf.loader import unpin
from system.bpf.syscall import Prog


@pytest.fixture(scope="session", autouse=True)
def _remove_pin_root():
    yield
    if PIN_ROOT.is_dir():
        unpin(PIN_ROOT)


@pytest.fixture(scope="module")
def loaded_agent():
    """The agent loaded and pinned but not attached, with its two programs opened."""
    require_root()
    agent = Agent(None, "lo", PIN_ROOT / "run")
    agent.load()
    progs = {"ingress": Prog.pinned(agent.prog_path(PROG_INGRESS)),
             "egress": Prog.pinned(agent.prog_path(PROG_EGRESS))}
    try:
        yield agent, progs
    finally:
        for prog in progs.values():
            prog.close()
        agent.unload()
