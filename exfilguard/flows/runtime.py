"""The long-lived pieces one Function app process shares between invocations.

Storage clients, the alert dispatcher and the ARM credential are built on first use and
kept, since building them costs more than most invocations. They are keyed by the settings
they were built from, so a changed app setting (or a test's environment) gets fresh ones.
The ARM client itself is made per invocation: its request counts are that invocation's
cost, which the audit log records, and it is not meant for concurrent writes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from exfilguard.adapters import configfile
from exfilguard.adapters.state import State
from exfilguard.core.settings import Settings

_PREFIXES = ("EXFILGUARD_", "AzureWebJobsStorage", "APPLICATIONINSIGHTS_", "AZURE_CLIENT_ID")


class Notifier(Protocol):
    """What the triggers need from alerting (``exfilguard.alerts.dispatch.Dispatcher``)."""

    def send_alerts(self, alerts: Iterable[Any]) -> list[Any]: ...

    def send_digest(self, alerts: Iterable[Any], *, scope: str | None = None, title: str = "",
                    exemptions: Any = (), report_url: str | None = None) -> list[Any]: ...

    def send_exemption_change(self, change: Any) -> list[Any]: ...

    def send_escalation(self, escalation: Any) -> list[Any]: ...

    def retry_pending(self) -> list[Any]: ...


@dataclass
class Services:
    settings: Settings
    state: State
    environ: Mapping[str, str]
    _notifier: Notifier | None = None
    _credential: Any = ...
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The loop guard's time: tests replace it to play a day of fighting in fake time.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _loop_guard: Any = None

    def loop_guard(self) -> Any:
        """The loop guard over its own table (``<prefix>fixloop``), reading :attr:`clock`."""
        with self._lock:
            if self._loop_guard is None:
                from exfilguard.adapters.loopguard import LoopGuard, Policy

                s = self.settings
                self._loop_guard = LoopGuard(
                    self.state.table(f"{s.state_prefix}fixloop"),
                    Policy(max_writes=s.loop_max_writes, window=s.loop_window, max_backoffs=s.loop_max_backoffs,
                           memory=s.loop_memory),
                    clock=lambda: self.clock())  # noqa: PLW0108 - late-bound: a test may swap the clock
            return self._loop_guard

    def arm_client(self, *, interactive: bool = False) -> Any:
        """A fresh ARM client for one invocation. ``interactive`` (HTTP) retries less, so an
        answer comes well inside the 230 s HTTP limit even when ARM is throttling."""
        from exfilguard.adapters import endpoint as endpoint_mod
        from exfilguard.adapters.arm import ArmClient

        endpoint = endpoint_mod.resolve_endpoint(None, environ=self.environ)
        with self._lock:
            if self._credential is ...:
                self._credential = endpoint_mod.make_credential(endpoint, environ=self.environ)
            credential = self._credential
        from exfilguard.adapters.budget import instance_budget

        # Interactive (HTTP): fewer, shorter tries, every wait capped and all of ARM's share of
        # the answer inside a deadline (the HTTP budget less room for storage and alerts).
        kwargs: dict[str, Any] = {"retry_total": 3, "backoff_max": 8, "read_timeout": 30.0,
                                  "connection_timeout": 10.0, "max_retry_after": 30.0,
                                  "deadline_s": self.settings.http_budget_s * 0.85} if interactive else {}
        # Long-running operations are polled as ARM's Retry-After says, loopback or not: what is
        # measured against the emulator is what runs in Azure. Every call of this instance
        # takes its token from the one ARM budget.
        return ArmClient(self.settings.subscription_id, endpoint, credential=credential,
                         budget=instance_budget(endpoint, self.settings.arm_reads_per_s,
                                                self.settings.arm_writes_per_s), **kwargs)

    def notifier(self) -> Notifier:
        with self._lock:
            if self._notifier is None:
                from exfilguard.alerts.dispatch import Dispatcher
                from exfilguard.alerts.table_ledger import TableLedger

                ledger = TableLedger(self.state.table(f"{self.settings.state_prefix}alerts"))
                self._notifier = Dispatcher.from_settings(self.settings.alerts, ledger)
            return self._notifier


_cache: dict[tuple[tuple[str, str], ...], Services] = {}
_cache_lock = threading.Lock()


def services(environ: Mapping[str, str] | None = None) -> Services:
    """The services for the current settings, read and validated here once per set of values;
    raises ``SettingsError`` on a bad setting."""
    env = os.environ if environ is None else environ
    fingerprint = tuple(sorted((k, v) for k, v in env.items() if k.startswith(_PREFIXES)))
    with _cache_lock:
        found = _cache.get(fingerprint)
        if found is not None:
            return found
        app = configfile.load(env)
        state = State(app.storage, prefix=app.state_prefix, queue_name=app.sweep_queue)
        found = Services(settings=app, state=state, environ=dict(env))
        if len(_cache) > 16:  # settings changed many times (tests): keep memory bounded
            _cache.clear()
        _cache[fingerprint] = found
        return found


def binding(name: str, default: str, env: Mapping[str, str] | None = None) -> str:
    """What a trigger decorator gets for a schedule or queue name. The host resolves ``%NAME%``
    from app settings but has no default syntax, and an unresolvable ``%NAME%`` stops the host
    from indexing the function; so the placeholder is used only when the setting exists."""
    env = os.environ if env is None else env
    return f"%{name}%" if (env.get(name) or "").strip() else default
