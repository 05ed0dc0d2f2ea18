"""`fab run-suite --resume` refuses what would mix unlike data, before touching any host: another
commit, another inventory, a suite that no longer expands to the planned cells, a run directory
without a plan. (Resuming for real: tests/test_interrupt_run.py, on the integration testbed.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import inventory, rundir, runner

LOCAL = inventory.load("local")
ITTEST = inventory.load(Path(__file__).resolve().parents[2] / "tests" / "data" / "testbed.yaml")
SUITE = {"name": "r", "systems": ["direct", "haproxy"],
         "workloads": [{"name": "1k-close", "objects": {"1k": 1}}],
         "load": {"users": [4], "spawn_rate": 10, "warmup_s": 1, "duration_s": 2}, "repetitions": 2}


def _interrupted_run(tmp_path: Path) -> Path:
    import yaml
    f = tmp_path / "r.yaml"
    f.write_text(yaml.safe_dump(SUITE))
    suite = runner.load_suite(str(f), LOCAL)
    run_dir = rundir.new_run_dir(suite.name, tmp_path / "results")
    rundir.write_inputs(run_dir, suite, LOCAL)
    rundir.write_manifest(run_dir, suite, LOCAL, {}, rundir.now(), [suite.cells[0].cell_id], state="interrupted")
    return run_dir


def _resume_error(run_dir: Path, inv: inventory.Inventory = LOCAL) -> str:
    with pytest.raises(runner.RunError) as e:
        runner.resume_suite(run_dir, inv)
    return str(e.value)


def test_manifest_records_the_plan(tmp_path):
    m = json.loads((_interrupted_run(tmp_path) / "manifest.json").read_text())
    assert m["state"] == "interrupted"
    assert m["planned"] == ["direct--1k-close--u4--r1", "direct--1k-close--u4--r2",
                            "haproxy--1k-close--u4--r1", "haproxy--1k-close--u4--r2"]
    assert m["cells"] == ["direct--1k-close--u4--r1"]


def test_another_commit_is_refused_unless_forced(tmp_path):
    run_dir = _interrupted_run(tmp_path)
    rundir.update_manifest(run_dir, git={"commit": "f" * 40, "dirty": False})
    msg = _resume_error(run_dir)
    assert f"the run was made at commit {'f' * 12}, this checkout is at " in msg
    assert msg.endswith("(--force resumes anyway)") and "inventory" not in msg


def test_another_inventory_is_refused(tmp_path):
    run_dir = _interrupted_run(tmp_path)
    msg = _resume_error(run_dir, ITTEST)
    assert f"the inventory differs from the run's ({run_dir}/inventory.yaml, testbed 'local'; this is 'ittest'" in msg
    assert "commit" not in msg


def test_a_changed_suite_or_a_run_without_a_plan_cannot_be_resumed(tmp_path):
    run_dir = _interrupted_run(tmp_path)
    (run_dir / "suite.yaml").write_text((run_dir / "suite.yaml").read_text().replace("repetitions: 2",
                                                                                      "repetitions: 3"))
    assert "no longer expands to the cells the run planned" in _resume_error(run_dir)
    m = rundir.read_manifest(run_dir)
    del m["planned"]
    (run_dir / "manifest.json").write_text(json.dumps(m))
    assert "does not list the planned cells" in _resume_error(run_dir)
    assert "is not a run directory" in _resume_error(tmp_path / "nothing-here")


def test_update_manifest_checks_the_state(tmp_path):
    run_dir = _interrupted_run(tmp_path)
    with pytest.raises(ValueError, match="manifest state must be one of running, complete, interrupted, failed"):
        rundir.update_manifest(run_dir, state="paused")
    assert rundir.read_manifest(run_dir)["state"] == "interrupted"
