"""The SYN cookie secrets, fetched from the switch control plane (request `cookie_secrets`).

The control plane draws the switch's cookie secret and rotates it (docs/miresga-datapath.md,
docs/controlplane-protocol.md). `SecretsFetcher` keeps a `syncookie.Secrets` equal to the control
plane's (current, previous): fetched once at start (`wait_first`), then every `interval` seconds by a
background thread, and at once (at most every `min_refetch_s`) when the count returned by `failures`
grows (the engine's `bad_cookie` counter: a cookie that matched neither secret may be one made with a
secret rotated in since the last fetch; the client's retransmission then passes). Fetch errors are
counted in `counters`, never silent; the last secrets stay in use while the control plane is away.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable

from system.controlplane.protocol import Client, ProtocolError, parse_cookie_secrets
from system.credentials import Credentials
from system.frontend.syncookie import Secrets


class SecretsUnavailable(RuntimeError):
    """The control plane did not give the secrets in time (the message says why)."""


class SecretsFetcher:
    def __init__(self, address: tuple[str, int], name: str = "frontend", interval: float = 1.0,
                 timeout: float = 2.0, min_refetch_s: float = 0.1,
                 failures: Callable[[], int] | None = None, credentials: Credentials | None = None) -> None:
        self.address, self.name = address, name
        self.credentials = credentials    # this daemon's identity (mutual TLS); None: plain TCP
        self.interval, self.timeout, self.min_refetch_s = interval, timeout, min_refetch_s
        self.failures = failures          # may be set after construction (the engine comes later)
        self.secrets: Secrets | None = None
        self.counters: collections.Counter[str] = collections.Counter()
        self.last_error = ""
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- fetching ---------------------------------------------------------------------------------

    def fetch(self) -> tuple[int, int | None]:
        """One `cookie_secrets` request; updates `secrets`. Raises OSError or ProtocolError."""
        with self._lock:
            try:
                if self._client is None:
                    self._client = Client(self.address, timeout=self.timeout, name=f"{self.name}-secrets",
                                          credentials=self.credentials)
                    self.counters["connected"] += 1
                cur, prev, slot = parse_cookie_secrets(self._client.call({"type": "cookie_secrets"}))
            except (OSError, ProtocolError) as e:
                self.counters["fetch_errors"] += 1
                self.last_error = str(e) or type(e).__name__
                self._drop()
                raise
            self.counters["fetches"] += 1
            if self.secrets is None:
                self.secrets = Secrets(cur, prev, slot)
            elif self.secrets.values() != Secrets(cur, prev, slot).values():
                self.secrets.set(cur, prev, slot)
                self.counters["changes"] += 1
            return cur, prev

    def wait_first(self, timeout: float = 30.0, retry_s: float = 0.2) -> Secrets:
        """Fetches until it succeeds (the control plane may still be starting) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.fetch()
                assert self.secrets is not None
                return self.secrets
            except (OSError, ProtocolError) as e:
                if time.monotonic() + retry_s > deadline:
                    raise SecretsUnavailable(f"no cookie secrets from the control plane at "
                                             f"{self.address[0]}:{self.address[1]} within {timeout} s: {e}") from None
                time.sleep(retry_s)

    def _drop(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            with contextlib.suppress(OSError):
                c.close()

    # -- background refresh -----------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cookie-secrets", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_fetch = time.monotonic()
        seen = self.failures() if self.failures else 0
        tick = min(self.interval, self.min_refetch_s)
        while not self._stop.wait(tick):
            now = time.monotonic()
            failed = self.failures() if self.failures else 0
            due = now - last_fetch >= self.interval
            if failed > seen and now - last_fetch >= self.min_refetch_s:
                self.counters["failure_refetches"] += 1
                due = True
            if not due:
                continue
            seen = failed
            last_fetch = now
            with contextlib.suppress(OSError, ProtocolError):
                self.fetch()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._drop()
