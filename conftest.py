"""Shared pytest set-up: the `root` marker skips, with the reason printed, where root is missing."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, eBPF); run the tests as root")
    for item in items:
        if "root" in item.keywords or "testbed" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def creds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One deployment's credentials for servers on 127.0.0.1 (system/credentials.py): name ->
    Credentials for controlplane, p4rt, frontend, slowpath, operator and monitor."""
    from system.credentials import local_test_set
    return dict(local_test_set(tmp_path_factory.mktemp("credentials")))
