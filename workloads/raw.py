"""Raw per-request rows: `requests/<host>-<n>.csv` (docs/run-directory.md).

Rows are kept in memory and written in batches (every `flush_rows` rows or `flush_s` seconds, and
at the end), so a request costs no write system call.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any

COLUMNS = ("start", "latency_us", "object", "expected_bytes", "bytes", "status", "ok", "error",
           "new_connection", "queue_us", "connect_us", "ttfb_us")
# Written since the open-loop mode; older files have only the first nine columns.
TIMING_COLUMNS = ("queue_us", "connect_us", "ttfb_us")
HEADER = ",".join(COLUMNS) + "\n"


def raw_path(raw_dir: str | Path, host_label: str, n: int | str) -> Path:
    return Path(raw_dir) / f"{host_label}-{n}.csv"


class RawWriter:
    """Appends rows to one CSV file, created (with its header) on the first flush."""

    def __init__(self, path: str | Path, flush_rows: int = 20000, flush_s: float = 2.0) -> None:
        self.path = Path(path)
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self._rows: list[str] = []
        self._last = time.monotonic()
        self._created = False
        self.written = 0

    def add(self, start: float, latency_us: int, obj: str, expected: int, nbytes: int, status: int,
            ok: int, error: str, new_connection: int, queue_us: int = 0, connect_us: int = -1,
            ttfb_us: int = -1) -> None:
        """One row; ``connect_us``/``ttfb_us`` of -1 (not measured) are written empty."""
        if error and ("," in error or "\n" in error or '"' in error):
            error = error.replace(",", ";").replace("\n", " ").replace('"', "'")
        connect = "" if connect_us < 0 else connect_us
        ttfb = "" if ttfb_us < 0 else ttfb_us
        self._rows.append(f"{start:.6f},{latency_us},{obj},{expected},{nbytes},{status},{ok},{error},"
                          f"{new_connection},{queue_us},{connect},{ttfb}\n")
        if len(self._rows) >= self.flush_rows or time.monotonic() - self._last >= self.flush_s:
            self.flush()

    def add_result(self, r: Any) -> None:
        """Adds a `workloads.lean.Result` (or anything with the same attributes)."""
        self.add(r.start, r.latency_us, r.object, r.expected_bytes, r.bytes, r.status, r.ok, r.error,
                 r.new_connection, r.queue_us, r.connect_us, r.ttfb_us)

    def flush(self) -> None:
        self._last = time.monotonic()
        if self._created and not self._rows:
            return
        rows, self._rows = self._rows, []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a" if self._created else "w") as f:
            if not self._created:
                f.write(HEADER)
            f.write("".join(rows))
        self._created = True
        self.written += len(rows)


def read_raw(path: str | Path) -> list[dict[str, Any]]:
    """Reads one raw file back, typed (for tests and quick checks; analysis/ has its own loader)."""
    out = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames} are not {list(COLUMNS)}")
        for row in reader:
            out.append({
                "start": float(row["start"]), "latency_us": int(row["latency_us"]), "object": row["object"],
                "expected_bytes": int(row["expected_bytes"]), "bytes": int(row["bytes"]),
                "status": int(row["status"]), "ok": int(row["ok"]), "error": row["error"],
                "new_connection": int(row["new_connection"]), "queue_us": int(row["queue_us"]),
                "connect_us": int(row["connect_us"]) if row["connect_us"] else None,
                "ttfb_us": int(row["ttfb_us"]) if row["ttfb_us"] else None,
            })
    return out


def read_raw_dir(raw_dir: str | Path) -> list[dict[str, Any]]:
    """All rows of every `*.csv` in a requests/ directory, each with its file's stem as "file"."""
    rows = []
    for p in sorted(Path(raw_dir).glob("*.csv")):
        for r in read_raw(p):
            r["file"] = p.stem
            rows.append(r)
    return rows


def worker_id() -> str:
    """The per-process part of the file name: $MIRESGA_WORKER_ID if set, else the PID."""
    return os.environ.get("MIRESGA_WORKER_ID") or str(os.getpid())
