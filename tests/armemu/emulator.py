"""The public face: an in-process ARM emulator on a loopback port, driven from tests and benchmarks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Self

from tests.armemu.admin import configure
from tests.armemu.app import ArmApp, WriteHook
from tests.armemu.faults import RESET, Change, FailureRate, Fault
from tests.armemu.log import LogRecord
from tests.armemu.server import ArmHTTPServer
from tests.armemu.snapshot import SnapshotError, Source, read_resources


class ArmEmulator:
    """A local Azure Resource Manager for the resource types ExfilGuard reads and remediates.

    ``resources`` is a snapshot path, a list of ARM resource objects, or a ``{"value"|"data": [...]}``
    mapping. ``clock`` (monotonic seconds) decides when LROs finish, so tests can step time
    instead of sleeping. Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, resources: Source = None, *, lro_delay: float = 0.0, latency: float = 0.0,
                 page_size: int = 50, port: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self._app = ArmApp(clock=clock, lro_delay=lro_delay, page_size=page_size)
        self._app.plan.latency = latency
        try:
            self._app.store.load(read_resources(resources))
        except SnapshotError:
            raise
        except ValueError as exc:
            where = str(resources) if isinstance(resources, str) else "snapshot"
            raise SnapshotError(f"{where}: {exc}") from exc
        self._port = port
        self._server: ArmHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = ArmHTTPServer(self._app, self._port)
        self._app.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="armemu", daemon=True)
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut idle keep-alive connections, release the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: pass as ``base_url`` to the management clients."""
        if not self._app.base_url:
            raise RuntimeError("the emulator is not started")
        return self._app.base_url

    # ---- settings ------------------------------------------------------------------------------

    @property
    def lro_delay(self) -> float:
        return self._app.lro_delay

    @lro_delay.setter
    def lro_delay(self, seconds: float) -> None:
        with self._app.lock:
            self._app.lro_delay = seconds

    @property
    def page_size(self) -> int:
        return self._app.page_size

    @page_size.setter
    def page_size(self, size: int) -> None:
        with self._app.lock:
            self._app.page_size = max(1, size)

    @property
    def latency(self) -> float:
        return self._app.plan.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        with self._app.lock:
            self._app.plan.latency = seconds

    # ---- state ---------------------------------------------------------------------------------

    def get_body(self, resource_id: str) -> dict[str, Any] | None:
        """The stored body as a GET would compose it (deep copy), or None when absent."""
        return self._app.get_body(resource_id)

    def set_body(self, resource_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a resource behind the clients' backs (new etag, no log record, no hooks)."""
        return self._app.set_body(resource_id, body)

    def delete_resource(self, resource_id: str) -> bool:
        return self._app.delete_body(resource_id)

    def ids(self, type_: str | None = None) -> list[str]:
        """Stored resource IDs, optionally of one type (case-insensitive). O(n): for assertions, not loops."""
        with self._app.lock:
            return self._app.store.ids(type_)

    # ---- request log ---------------------------------------------------------------------------

    @property
    def log(self) -> list[LogRecord]:
        with self._app.lock:
            return self._app.log.records()

    def reset_log(self) -> int:
        with self._app.lock:
            return self._app.log.clear()

    def records(self, *, kind: str | None = None, method: str | None = None, path: str | None = None,
                status: int | None = None) -> list[LogRecord]:
        with self._app.lock:
            return self._app.log.select(kind=kind, method=method, path=path, status=status)

    def count(self, *, kind: str | None = None, method: str | None = None, path: str | None = None,
              status: int | None = None) -> int:
        return len(self.records(kind=kind, method=method, path=path, status=status))

    def writes(self) -> list[LogRecord]:
        return self.records(kind="write")

    # ---- faults and hooks ----------------------------------------------------------------------

    def add_fault(self, status: int | Literal["reset"] | None = None, *, drop: bool = False,
                  method: str | None = None, path: str | None = None, count: int | None = None,
                  retry_after: float | None = None) -> Fault:
        """Answer matching requests with ``status`` (or drop them) instead of serving them."""
        if drop or status == RESET:
            code: int | None = None
        elif isinstance(status, int):
            code = status
        else:
            raise ValueError("give an HTTP status, status='reset' or drop=True")
        fault = Fault(code, method.upper() if method else None, path, count, retry_after)
        with self._app.lock:
            self._app.plan.faults.append(fault)
        return fault

    def set_failure_rate(self, rate: float | None, *, seed: int = 0,
                         choices: Sequence[int | str] = (429, 500, 503, RESET), retry_after: float | None = 0,
                         method: str | None = None, path: str | None = None) -> None:
        """Fail ``rate`` of requests at random (seeded) with one of ``choices``; None turns it off."""
        failure = None if rate is None else FailureRate(rate, seed, tuple(choices), retry_after,
                                                         method.upper() if method else None, path)
        with self._app.lock:
            self._app.plan.failure_rate = failure

    def concurrent_modification(self, resource_id: str, change: Change | None = None, *, count: int = 1) -> None:
        """After the next ``count`` GETs of the resource are answered, change it (callable or merge patch).

        The GET's client keeps the old etag, so its next conditional write gets 412.
        """
        if count < 1:
            raise ValueError("count must be positive")
        self._app.arm_change(resource_id, change, count)

    def configure_faults(self, config: Mapping[str, Any]) -> None:
        """The JSON accepted by ``POST /_emulator/faults``."""
        configure(self._app, dict(config))

    def clear_faults(self) -> None:
        """Drop scripted faults, the failure rate and pending concurrent modifications (not latency)."""
        with self._app.lock:
            self._app.plan.clear()

    def on_write(self, hook: WriteHook) -> WriteHook:
        """Call ``hook(resource_id, body_or_None)`` after each client write, before the client is answered."""
        with self._app.lock:
            self._app.hooks.append(hook)
        return hook

    def remove_on_write(self, hook: WriteHook) -> None:
        with self._app.lock:
            self._app.hooks.remove(hook)
