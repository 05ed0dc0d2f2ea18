"""Inventory validation: the shipped files load, and every kind of mistake names its field."""

from __future__ import annotations

import copy
import ipaddress

import pytest
import yaml

from harness import inventory
from harness.inventory import INVENTORIES, InventoryError


def local_raw() -> dict:
    return yaml.safe_load((INVENTORIES / "local.yaml").read_text())


def test_local_inventory_loads_with_roles_and_defaults():
    inv = inventory.load("local")
    assert inv.kind == "local" and inv.emulated
    assert [h.name for h in inv.clients] == ["client1"]
    assert [h.name for h in inv.frontends] == ["fe1"]
    assert [h.name for h in inv.backends] == ["be1", "be2"]
    assert inv.switch_host.name == "switch" and inv.switch_host.data_address is None
    assert inv.vip == ipaddress.IPv4Address("198.18.0.100") and inv.vip_port == 80
    assert inv.host("be2").workdir == "/var/lib/miresga/local/be2"
    assert {o.name: o.size for o in inv.catalog} == inventory.DEFAULT_CATALOG
    assert inv.catalog[0].path == "/obj/1k"
    assert inv.workers_for(inv.clients[0]) == 1


def test_cluster_example_loads():
    inv = inventory.load(INVENTORIES / "tofino-cluster.example.yaml")
    assert inv.kind == "cluster" and not inv.emulated
    assert inv.host("be1").switch_port == "148"
    assert inv.host("client1").ssh_address == "node1.lab.example"
    assert inv.workers_for(inv.host("client1")) == 6


@pytest.mark.parametrize(("mutate", "field", "words"), [
    (lambda d: d.pop("vip"), "vip", "is required"),
    (lambda d: d.__setitem__("vip", "198.18.0.300"), "vip", "not an IPv4 address"),
    (lambda d: d.__setitem__("vip", "198.18.1.5"), "vip", "not inside networks.data"),
    (lambda d: d.__setitem__("vip_port", 70000), "vip_port", "not a TCP port"),
    (lambda d: d.__setitem__("kind", "cloud"), "kind", "must be one of"),
    (lambda d: d["networks"].__setitem__("data", "10.0.0.0/24"), "networks.data", "outside 198.18.0.0/15"),
    (lambda d: d["switch"].__setitem__("target", "bmv2"), "switch.target", "must be one of"),
    (lambda d: d["hosts"][2].__setitem__("data", "198.18.0.11"), "hosts[2].data", "client1"),
    (lambda d: d["hosts"][2].__setitem__("role", "parser"), "hosts[2].role", "must be one of"),
    (lambda d: d["hosts"][3].__setitem__("name", "Be_1"), "hosts[3].name", "lower-case"),
    (lambda d: d["hosts"][4].__setitem__("cores", []), "hosts[4].cores", "non-empty list"),
    (lambda d: d["hosts"][4].__setitem__("colour", "red"), "hosts[4].colour", "unknown field"),
    (lambda d: d["hosts"][1].pop("mgmt"), "hosts[1].mgmt", "is required"),
    (lambda d: d["hosts"].pop(2), "hosts", "role frontend"),
    (lambda d: d.__setitem__("catalog", {"1k": -4}), "catalog.1k", "positive number of bytes"),
    (lambda d: d.__setitem__("frobnicate", 1), "frobnicate", "unknown field"),
])
def test_mistakes_name_their_field(mutate, field, words):
    d = copy.deepcopy(local_raw())
    mutate(d)
    with pytest.raises(InventoryError) as e:
        inventory.parse(d, source=INVENTORIES / "local.yaml")
    msg = str(e.value)
    assert msg.startswith(f"{INVENTORIES / 'local.yaml'}: {field}:"), msg
    assert words in msg


def test_missing_file_and_bad_yaml_are_clear(tmp_path):
    with pytest.raises(InventoryError, match="cannot read"):
        inventory.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(InventoryError, match="not valid YAML"):
        inventory.load(bad)


def test_cluster_needs_macs_and_switch_ports():
    d = yaml.safe_load((INVENTORIES / "tofino-cluster.example.yaml").read_text())
    del d["hosts"][2]["data"]["mac"]
    with pytest.raises(InventoryError, match=r"hosts\[2\]\.data\.mac: is required on a cluster"):
        inventory.parse(d)


def test_deploy_plan_names_every_host_and_the_sde_steps_for_a_tofino():
    from harness import deploy
    local = deploy.plan(inventory.load("local"), "haproxy")
    for name in ("switch", "client1", "fe1", "be1", "be2"):
        assert f"  {name} (" in local
    assert "pipeline forwarding" in local and "HAProxy config" in local
    tofino = deploy.plan(inventory.load(INVENTORIES / "tofino-cluster.example.yaml"), "haproxy")
    assert "bf-p4c --target tofino --arch tna" in tofino and "setsid /usr/bin/stratum_bf" in tofino
    with pytest.raises(deploy.DeployError, match="unknown system 'nope'"):
        deploy.plan(inventory.load("local"), "nope")
