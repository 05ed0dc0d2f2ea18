"""The workload spec: cell.json's "workload" object, the job file, validation, standard mixes."""

from __future__ import annotations

import json

import pytest

from harness.inventory import DEFAULT_CATALOG, CatalogObject
from workloads import spec
from workloads.spec import Job, Target, Workload, WorkloadObject, fixed, mix, t2, t3

CELL_WORKLOAD = {  # verbatim from docs/run-directory.md
    "name": "1k-close",
    "objects": [{"name": "1k", "path": "/obj/1k", "size": 1024, "weight": 1}],
    "connection": "close",
    "requests_per_connection": 1,
    "client": "lean",
    "verify": "sampled",
    "latency_of": None,
}


def test_cell_json_round_trip() -> None:
    w = Workload.from_dict(CELL_WORKLOAD)
    assert w.to_dict() == CELL_WORKLOAD
    assert w == fixed(CatalogObject("1k", 1024))


@pytest.mark.parametrize(("change", "message"), [
    ({"connection": "pipelined"}, "workload.connection: must be one of close, keepalive"),
    ({"client": "wrk"}, "workload.client: must be one of lean, stock"),
    ({"verify": "none"}, "workload.verify: must be one of full, sampled"),
    ({"requests_per_connection": 0}, "workload.requests_per_connection: must be >= 1"),
    ({"requests_per_connection": 5}, "workload.requests_per_connection: must be 1 with connection close"),
    ({"requests_per_connection": True}, "workload.requests_per_connection: must be an integer"),
    ({"latency_of": "10k"}, "workload.latency_of: '10k' is not one of the workload's objects"),
    ({"objects": []}, "workload.objects: must list at least one object"),
    ({"objects": [{"name": "1k", "size": 1024, "weight": -1}]}, r"workload.objects\[0\].weight"),
    ({"objects": [{"name": "1k", "size": "big"}]}, r"workload.objects\[0\].size: must be an integer"),
    ({"objects": [{"name": "1k"}]}, r"workload.objects\[0\].size: is required"),
    ({"objects": [{"name": "1k", "size": 1, "path": "obj/1k"}]}, r"workload.objects\[0\].path"),
    ({"objects": [{"name": "a", "size": 1}, {"name": "a", "size": 2}]}, r"objects\[1\].name: duplicate"),
    ({"colour": "red"}, "workload.colour: unknown field"),
])
def test_validation_names_the_field(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        Workload.from_dict({**CELL_WORKLOAD, **change})


def test_missing_name_and_defaults() -> None:
    with pytest.raises(ValueError, match=r"workload\.name: is required"):
        Workload.from_dict({"objects": [{"name": "1k", "size": 1024}]})
    w = Workload.from_dict({"name": "w", "objects": [{"name": "1k", "size": 1024}]})
    assert (w.connection, w.requests_per_connection, w.client, w.verify) == ("close", 1, "lean", "sampled")
    assert w.objects[0].path == "/obj/1k"


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ValueError, match=r"workload\.connection"):
        Workload("w", (WorkloadObject("1k", "/obj/1k", 1024),), connection="nope")
    with pytest.raises(ValueError, match=r"target\.port"):
        Target("198.18.0.100", 70000)
    with pytest.raises(ValueError, match=r"target\.address"):
        Target("example.com")


def test_mixes_match_the_paper() -> None:
    w2, w3 = t2(DEFAULT_CATALOG), t3(DEFAULT_CATALOG)
    assert w2.shares() == pytest.approx({"1k": 0.70, "10k": 0.20, "1m": 0.08, "10m": 0.02})
    assert w3.shares() == pytest.approx({"1k": 0.50, "10k": 0.30, "1m": 0.15, "10m": 0.05})
    assert mix("t1", DEFAULT_CATALOG).shares() == {"1k": 1.0}
    for w in (w2, w3):
        assert w.latency_of == "1k"
        assert {o.name: o.size for o in w.objects} == {k: DEFAULT_CATALOG[k] for k in w.shares()}
    assert w2.name == "t2-close"
    assert mix("T3", DEFAULT_CATALOG, connection="keepalive", requests_per_connection=10).name == "t3-ka10"
    with pytest.raises(ValueError, match="has no object '10m'"):
        t2({"1k": 1024, "10k": 10240, "1m": 1 << 20})
    with pytest.raises(ValueError, match="mix: must be one of t1, t2, t3"):
        mix("t4", DEFAULT_CATALOG)


def test_fixed_names_and_keepalive() -> None:
    w = fixed(CatalogObject("10m", 10 << 20), connection="keepalive", client="stock", verify="full")
    assert (w.name, w.requests_per_connection, w.client, w.verify) == ("10m-ka100", 100, "stock", "full")
    assert w.with_(client="lean").client == "lean"
    with pytest.raises(ValueError, match=r"workload\.verify"):
        w.with_(verify="never")


def test_job_file_round_trip_and_errors(tmp_path) -> None:
    job = Job(t2(DEFAULT_CATALOG), Target("198.18.0.100", 80, host="www.example.test"), users=8, pace_rps=400)
    p = job.write(tmp_path / "job.json")
    assert Job.load(p) == job
    assert job.user_throughput == 50
    assert job.target.host_header == "www.example.test"
    assert Target("127.0.0.1", 8080).host_header == "127.0.0.1:8080"
    data = json.loads(p.read_text())
    assert data["workload"] == job.workload.to_dict()
    data["timeout_s"] = 0
    p.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"job.json: timeout_s: must be a positive number"):
        Job.load(p)
    data["timeout_s"] = 5
    data["target"]["port"] = "80"
    p.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"target\.port: must be an integer"):
        Job.load(p)
    p.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        Job.load(p)


# ---------------------------------------------------------------------------------------------
# choose(): the workload by parts (the web UI's start form)

def test_choose_names_and_builds_as_fixed_and_mix_do():
    cat = {"1k": 1024, "10k": 10240, "1m": 1 << 20, "10m": 10 << 20}
    assert spec.choose("1k", cat) == spec.fixed(spec.WorkloadObject("1k", "/obj/1k", 1024))
    assert spec.choose("T2", cat, connection="keepalive") == spec.mix("t2", cat, connection="keepalive")
    w = spec.choose("10m", cat, connection="keepalive", requests_per_connection=5, client="stock", verify="full")
    assert (w.name, w.requests_per_connection, w.client, w.verify) == ("10m-ka5", 5, "stock", "full")


@pytest.mark.parametrize("kw, message", [
    ({"objects": "2k"}, "objects: '2k' is neither an object of the catalog (1k, 1m) nor a mix (t1, t2, t3)"),
    ({"objects": "t2"}, "mix t2: the catalog has no object '10k' (it has 1k, 1m)"),
    ({"connection": "persistent"}, "connection: must be one of close, keepalive, not 'persistent'"),
    ({"connection": "close", "requests_per_connection": 3}, "requests_per_connection: must be 1 with connection close"),
    ({"connection": "keepalive", "requests_per_connection": 0}, "requests_per_connection: must be >= 1, not 0"),
    ({"client": "curl"}, "client: must be one of lean, stock, not 'curl'"),
    ({"verify": "none"}, "verify: must be one of full, sampled, not 'none'"),
])
def test_choose_refuses_bad_parts_naming_the_field(kw, message):
    kw = {"objects": "1k", **kw}
    with pytest.raises(ValueError) as e:
        spec.choose(kw.pop("objects"), {"1k": 1024, "1m": 1 << 20}, **kw)
    assert str(e.value).startswith(message)


def test_open_loop_job_round_trip_and_errors(tmp_path) -> None:
    job = Job(t2(DEFAULT_CATALOG), Target("198.18.0.100"), users=4, mode="open", rate=1000, arrival="poisson")
    assert Job.load(job.write(tmp_path / "job.json")) == job
    assert job.user_rate == 250 and job.user_throughput is None
    assert Job(t2(DEFAULT_CATALOG), Target("198.18.0.100")).user_rate is None
    bad = [({"mode": "open"}, r"rate: is required in open loop"),
           ({"mode": "open", "rate": -5}, r"rate: must be a positive number"),
           ({"mode": "open", "rate": 10, "pace_rps": 10}, r"pace_rps: is for a closed loop"),
           ({"rate": 10}, r"rate: is only for mode open"),
           ({"mode": "half-open"}, r"mode: must be one of closed, open"),
           ({"mode": "open", "rate": 10, "arrival": "bursty"}, r"arrival: must be one of constant, poisson"),
           ({"mode": "open", "rate": 10, "max_connections": 0}, r"max_connections: must be >= 1")]
    for kw, words in bad:
        with pytest.raises(ValueError, match=words):
            Job(t2(DEFAULT_CATALOG), Target("198.18.0.100"), **kw)
    with pytest.raises(ValueError, match=r"mode: open loop needs the lean client, not 'stock'"):
        Job(t2(DEFAULT_CATALOG, client="stock"), Target("198.18.0.100"), mode="open", rate=10)
