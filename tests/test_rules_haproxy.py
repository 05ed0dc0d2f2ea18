"""The shared rules file and the HAProxy configuration generated from it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness.inventory import ROOT
from system import rules
from system.softlb import haproxy

BACKENDS = ("be1", "be2")
SERVERS = {"be1": haproxy.Server("be1", "198.18.0.31", 80), "be2": haproxy.Server("be2", "198.18.0.32", 80)}


def test_default_rules_load_and_match():
    rs = rules.load(ROOT / "system/rules/default.yaml", BACKENDS)
    assert rs.pools["web"].backends == BACKENDS and rs.pools["web"].policy == "round_robin"
    r = rs.match("GET", "example", "/obj/1k")
    assert r is not None and r.name == "objects" and r.offload == "auto" and r.offload_threshold == 65536
    assert rs.match("POST", None, "/obj/1k") is None          # method condition
    assert rs.match("GET", None, "/health").name == "health"   # exact path
    assert rs.match("GET", None, "/healthz") is None
    assert rs.match("GET", None, "/other") is None


def test_host_and_order():
    rs = rules.parse({
        "pools": {"a": {"backends": ["be1"]}, "b": {"backends": ["be2"], "policy": "least_connections"}},
        "rules": [{"match": {"host": "img.example", "path_prefix": "/"}, "pool": "b"},
                  {"match": {"path_prefix": "/"}, "pool": "a"}],
    }, BACKENDS)
    assert rs.match("GET", "IMG.example:80", "/x").pool == "b"
    assert rs.match("GET", "www.example", "/x").pool == "a"


@pytest.mark.parametrize(("data", "words"), [
    ({"rules": []}, "pools: must be a non-empty mapping"),
    ({"pools": {"a": {"backends": ["be9"]}}, "rules": [{"pool": "a"}]}, "'be9' is not a back-end"),
    ({"pools": {"a": {"policy": "random"}}, "rules": [{"pool": "a"}]}, "pools.a.policy"),
    ({"pools": {"a": {}}, "rules": [{"pool": "zz"}]}, "rules[0].pool"),
    ({"pools": {"a": {}}, "rules": [{"pool": "a", "match": {"path": "x"}}]}, "rules[0].match.path"),
    ({"pools": {"a": {}}, "rules": [{"pool": "a", "match": {"cookie": "x"}}]}, "unknown condition"),
    ({"pools": {"a": {}}, "rules": [{"pool": "a", "offload": "sometimes"}]}, "rules[0].offload"),
])
def test_rule_mistakes_are_named(data, words):
    with pytest.raises(rules.RulesError) as e:
        rules.parse(data, BACKENDS, source="r.yaml")
    assert words in str(e.value)


def test_haproxy_config_from_rules():
    rs = rules.parse({
        "pools": {"web": {"policy": "consistent_hash", "health_check": "/health"},
                  "api": {"backends": ["be2"], "policy": "least_connections"}},
        "rules": [{"name": "api", "match": {"host": "api.example", "path": "/v1", "method": "POST"}, "pool": "api"},
                  {"name": "objects", "match": {"path_prefix": "/obj/"}, "pool": "web"}],
    }, BACKENDS)
    cfg = haproxy.render(rs, SERVERS, bind="198.18.0.21", port=80, workdir="/w", threads=2, cpus=(0, 1))
    lines = [line.strip() for line in cfg.splitlines()]
    assert "bind 198.18.0.21:80" in lines
    assert "nbthread 2" in lines and "cpu-map auto:1/1-2 0 1" in lines and "tune.bufsize 262144" in lines
    assert "acl r0_host hdr(host),field(1,:) -i api.example" in lines
    assert "acl r0_path path /v1" in lines and "acl r0_method method POST" in lines
    assert "use_backend pool_api if r0_host r0_path r0_method  # rule api" in lines
    assert "acl r1_path path_beg /obj/" in lines
    # rule order is preserved: api before objects
    assert lines.index("use_backend pool_api if r0_host r0_path r0_method  # rule api") < \
        lines.index("use_backend pool_web if r1_path  # rule objects")
    assert "default_backend no_rule" in lines
    web = cfg.split("\nbackend pool_web")[1]
    assert "balance source" in web and "hash-type consistent" in web
    assert "option httpchk GET /health" in web
    assert "server be1 198.18.0.31:80 check inter 1s fall 2 rise 2" in web
    api = cfg.split("\nbackend pool_api")[1].split("\nbackend ")[0]
    assert "balance leastconn" in api and "server be2 198.18.0.32:80" in api and "be1" not in api


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (scripts/setup.sh)")
def test_haproxy_accepts_generated_config(tmp_path):
    rs = rules.load(ROOT / "system/rules/default.yaml", BACKENDS)
    (tmp_path / "run").mkdir()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy.render(rs, SERVERS, bind="127.0.0.1", port=8080, workdir=str(tmp_path)))
    p = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
