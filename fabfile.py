"""Fabric looks for `fabfile.py` before reading any project config; this re-exports the task menu of
tasks.py so that `fab --list` and `fab <task>` work from the repository's root."""

from tasks import deploy, locust_ui, p4_compile, report, run_suite, testbed_down, testbed_status, testbed_up, undeploy

__all__ = ["deploy", "locust_ui", "p4_compile", "report", "run_suite", "testbed_down", "testbed_status", "testbed_up",
           "undeploy"]
