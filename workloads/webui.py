"""Locust's web UI for `fab locust-ui`: the workload in the start form, and the Switch tab.

Imported by workloads/locustfile.py only when `MIRESGA_UI` names the UI file the harness writes
(harness/locust_ui.py); never by the harness (it imports Flask and runs under Locust's gevent).

- The start form: custom arguments shown in the web UI (``include_in_web_ui``): `objects` (a
  catalog object or a mix t1-t3), `connection`, `requests_per_connection` (keep-alive),
  `client` (lean/stock), `verify`. A POST /swarm is checked first with the workload spec's own
  validation (`workloads.spec.choose`); a bad value is refused with the spec's message in the
  UI's error box and the test does not start. Workers receive the values in Locust's spawn message.
- The chosen workload is recorded in Locust's own reports: request names carry it
  (``1k [t2-ka100, lean]``, so the stats CSV and the HTML report show it per row) and the HTML
  report's "profile" is the workload's description.
- The Switch tab (Locust's extended tabs: `extended_tabs`/`extended_tables` template arguments,
  rows in /stats/requests' `extended_stats`): the harness samples the switch and the daemons every
  second (harness/locust_ui.py, through harness/cellstats.py) and POSTs the figures to
  /switch/push (with the UI file's token); /switch/stats returns the latest as JSON.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Response, jsonify, request

from workloads.spec import CLIENTS, CONNECTIONS, MIXES, VERIFY, Workload, choose

FORM_FIELDS = ("objects", "connection", "requests_per_connection", "client", "verify")
TAB_KEY = "switch"
STALE_S = 5.0   # a sample older than this is shown as stale (the harness stopped sampling)


def load_ui_file(path: str | Path) -> dict[str, Any]:
    """The UI file harness/locust_ui.py writes: catalog, system, token (ValueError if unusable)."""
    p = Path(path)
    try:
        conf = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: cannot read the web UI file: {e}") from None
    for key in ("catalog", "system", "token"):
        if key not in conf:
            raise ValueError(f"{p}: the web UI file has no {key!r}")
    return conf


def default_objects(w: Workload) -> str:
    """The `objects` value that selects workload `w` (its mix, else its single object)."""
    mix = w.name.split("-", 1)[0]
    return mix if mix in MIXES else w.objects[0].name


def add_arguments(parser: Any, catalog: Mapping[str, int], default: Workload) -> None:
    """The workload's fields in Locust's parser (and so in the web UI's start form)."""
    g = parser   # not an argument group: only the parser's own add_argument marks them for the web UI
    g.add_argument("--objects", default=default_objects(default), choices=[*catalog, *MIXES],
                   help=f"one object of the catalog ({', '.join(catalog)}) or a mix of the paper "
                        f"({', '.join(MIXES)})")
    g.add_argument("--connection", default=default.connection, choices=list(CONNECTIONS),
                   help="close: one request per connection; keepalive: requests_per_connection each")
    g.add_argument("--requests-per-connection", type=int,
                   default=default.requests_per_connection if default.connection == "keepalive" else 100,
                   help="requests per connection with keepalive (ignored with close)")
    g.add_argument("--client", default=default.client, choices=list(CLIENTS),
                   help="lean: plain sockets (workloads/lean.py); stock: Locust's FastHttpUser")
    g.add_argument("--verify", default=default.verify, choices=list(VERIFY),
                   help="body verification: sampled (length and three 4 KiB windows) or full")


def workload_from(values: Mapping[str, Any], catalog: Mapping[str, int]) -> Workload:
    """The workload of the form's (or parsed options') values; ValueError naming the field."""
    conn = str(values.get("connection", ""))
    rpc: Any = values.get("requests_per_connection")
    if isinstance(rpc, str):   # Locust's /swarm handler converts it with int() after this check
        try:
            rpc = int(rpc.strip())
        except ValueError:
            raise ValueError(f"requests_per_connection: must be an integer, not {rpc!r}") from None
    if conn != "keepalive":
        rpc = None
    return choose(str(values.get("objects", "")), catalog, connection=conn, requests_per_connection=rpc,
                  client=str(values.get("client", "")), verify=str(values.get("verify", "")))


def describe(w: Workload) -> str:
    conn = "close" if w.connection == "close" else f"keep-alive, {w.requests_per_connection} requests/connection"
    objs = ", ".join(f"{o.name} {o.weight:g}%" if len(w.objects) > 1 else o.name for o in w.objects)
    return f"workload {w.name} ({objs}; {conn}; {w.client} client; {w.verify} verification)"


# ---------------------------------------------------------------------------------------------
# The Switch tab's rows


def _pct(v: Any) -> str:
    return "-" if not _finite(v) else f"{100 * v:.1f} %"


def _rate(v: Any, unit: str = "/s") -> str:
    return "-" if not _finite(v) else f"{v:,.0f} {unit}"


def _count(v: Any) -> str:
    return "-" if not _finite(v) else f"{v:,.0f}"


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _mb(v: Any) -> str:
    return "-" if not _finite(v) else f"{v / 1e6:,.1f} MB"


def rows(conf: Mapping[str, Any], sample: Mapping[str, Any] | None, now: float | None = None,
         workload: Workload | None = None) -> list[dict[str, str]]:
    """The Switch tab's table: metric, value, detail."""
    head = [{"metric": "deployed system", "value": str(conf["system"]), "detail": str(conf.get("description", ""))}]
    if workload is not None:
        head.append({"metric": "workload", "value": workload.name, "detail": describe(workload)})
    if not conf.get("switch_state"):
        return [*head, {"metric": "switch state", "value": "none",
                           "detail": conf.get("message") or "this system keeps no per-connection state on the switch"}]
    if not sample:
        return [*head, {"metric": "switch state", "value": "waiting",
                           "detail": "no sample from the harness yet (it samples the switch every second)"}]
    age = (now or time.time()) - float(sample.get("time", 0))
    window = sample.get("window_s")
    over = f"over the last {window:.1f} s" if _finite(window) else ""
    occ, cap = sample.get("occupancy"), sample.get("capacity")
    occ_v = _count(occ) + (f" / {cap:,.0f}" if _finite(occ) and _finite(cap) else "")
    occ_d = ", ".join(f"{k} {v:,}" for k, v in sorted((sample.get("occupancy_by_table") or {}).items()))
    out = [
        *head,
        {"metric": "offloaded share of bytes", "value": _pct(sample.get("offload_share")),
         "detail": f"of the bytes back-ends sent toward clients {over}, the share the switch forwarded "
                   f"straight to the client; {_mb(sample.get('offloaded_bytes_total'))} of "
                   f"{_mb(sample.get('b2c_bytes_total'))} since the UI started"},
        {"metric": "insertions per second", "value": _rate(sample.get("inserts_per_s")),
         "detail": f"table adds the control plane received {over}; "
                   f"{sample.get('inserts_total', 0):,} since the UI started, "
                   f"{sample.get('insert_rejected_total', 0):,} refused as full"},
        {"metric": "deletions per second", "value": _rate(sample.get("deletes_per_s")),
         "detail": f"table deletes {over}; {sample.get('deletes_total', 0):,} since the UI started"},
        {"metric": "table occupancy", "value": occ_v,
         "detail": f"per-connection entries against the profile's capacity ({occ_d or 'empty'}); "
                   f"peak {_count(sample.get('occupancy_peak'))} since the UI started"},
        {"metric": "control-plane latency", "value": "-" if not _finite(sample.get("cp_latency_p50_ms")) else
         f"p50 {sample['cp_latency_p50_ms']:.2f} ms, p99 {sample.get('cp_latency_p99_ms', math.nan):.2f} ms",
         "detail": "receipt to ack of adds and deletes, over the control plane's last 20,000 requests"},
        {"metric": "front-end punts per second", "value": _rate(sample.get("punts_per_s")),
         "detail": "frames the front-ends' fast paths handed to user space (handshakes, headers, slow "
                   "path)" if _finite(sample.get("punts_per_s")) else "no front-end fast path in this system"},
    ]
    if sample.get("errors"):
        out.append({"metric": "collection errors", "value": str(len(sample["errors"])),
                    "detail": "; ".join(str(e) for e in sample["errors"])[-500:]})
    if age > STALE_S:
        out.append({"metric": "stale", "value": f"{age:.0f} s old",
                    "detail": "the harness has not sent a sample lately (is `fab locust-ui` still running?)"})
    return out


# ---------------------------------------------------------------------------------------------
# Installing it into Locust's web UI


class SwitchTab:
    """The latest sample the harness pushed, and the Flask routes around it."""

    def __init__(self, conf: Mapping[str, Any]) -> None:
        self.conf = conf
        self.sample: dict[str, Any] | None = None
        self.received = 0
        self.workload: Workload | None = None   # of the current (or last) test

    def state(self) -> dict[str, Any]:
        return {"system": self.conf["system"], "switch_state": bool(self.conf.get("switch_state")),
                "message": self.conf.get("message", ""), "samples_received": self.received,
                "sample": self.sample,
                "workload": self.workload.to_dict() if self.workload else None,
                "rows": rows(self.conf, self.sample, workload=self.workload)}


def install(environment: Any, conf: Mapping[str, Any], user_classes: Mapping[str, type],
            on_workload: Callable[[Workload], None]) -> SwitchTab:
    """Adds the Switch tab, its data endpoints and the /swarm validation to the master's web UI."""
    from locust.runners import STATE_RUNNING, STATE_SPAWNING

    web_ui = environment.web_ui
    app = web_ui.app
    tab = SwitchTab(conf)
    catalog = conf["catalog"]
    web_ui.template_args["extended_tabs"] = [{"title": "Switch", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": [
        {"key": "metric", "title": "Metric"}, {"key": "value", "title": "Value"},
        {"key": "detail", "title": "Detail"}]}]
    current: dict[str, Workload] = {}

    @app.before_request
    def _check_swarm() -> Response | None:
        if request.method != "POST" or not request.path.rstrip("/").endswith("/swarm"):
            return None
        opts = vars(environment.parsed_options)
        values = {k: request.form.get(k, opts.get(k)) for k in FORM_FIELDS}
        try:
            w = workload_from(values, catalog)
        except ValueError as e:
            return jsonify({"success": False, "message": f"Miresga workload: {e}", "host": environment.host})
        runner = environment.runner
        clients = getattr(runner, "clients", None)
        if clients is not None and not (clients.ready + clients.running + clients.spawning):
            # Locust would answer "Swarming started" and start nothing
            return jsonify({"success": False, "host": environment.host,
                            "message": "no Locust worker is ready yet (after a stop, workers report ready "
                                       "again within a few seconds): try again shortly"})
        running = runner.state in (STATE_RUNNING, STATE_SPAWNING)
        if running and current.get("w") is not None and current["w"] != w:
            return jsonify({"success": False, "host": environment.host,
                            "message": f"Miresga workload: stop the test before changing the workload "
                                       f"(running {current['w'].name}, {current['w'].client} client)"})
        if not running:
            environment.user_classes = [user_classes[w.client]]
            current["w"] = tab.workload = w
            on_workload(w)
        return None

    @app.after_request
    def _extend_stats(response: Response) -> Response:
        if request.path.rstrip("/").endswith("/stats/requests") and response.is_json:
            data = response.get_json()
            data["extended_stats"] = [{"key": TAB_KEY, "data": rows(conf, tab.sample, workload=tab.workload)}]
            response.set_data(json.dumps(data))
        return response

    @app.route("/switch/stats")
    def _switch_stats() -> Response:
        return jsonify(tab.state())

    @app.route("/switch/push", methods=["POST"])
    def _switch_push() -> Response | tuple[Response, int]:
        if request.headers.get("X-Miresga-Token") != conf["token"]:
            return jsonify({"success": False, "message": "bad or missing X-Miresga-Token"}), 403
        sample = request.get_json(silent=True)
        if not isinstance(sample, dict):
            return jsonify({"success": False, "message": "the body must be a JSON object"}), 400
        tab.sample = sample
        tab.received += 1
        return jsonify({"success": True})

    return tab
