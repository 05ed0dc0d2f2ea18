"""Miresga back-end agent: eBPF sequence-number translation on the back-end host (tc clsact).

`system.agent.loader.Agent` loads, attaches, reports and unloads it; `python -m system.agent` runs it
as a service; `python -m system.agent.bench` measures it.
"""
