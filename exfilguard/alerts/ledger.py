"""What the alerting remembers between runs: which findings are open and when they were last
alerted (dedup and "resolved" notices), and which deliveries failed (retry).

Two implementations share one contract (the tests run the same cases on both):
:class:`MemoryLedger` for the CLI and tests, :class:`~exfilguard.alerts.table_ledger.TableLedger`
on Azure Table storage for the Function app, where several instances share it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from exfilguard.alerts.delivery import Delivery
from exfilguard.core.findings import Severity
from exfilguard.core.ids import key as id_key

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def normalise_scope(scope: str) -> str:
    """A sweep's scope as an ARM ID prefix key; a bare subscription GUID means that subscription."""
    scope = scope.strip()
    if not scope.startswith("/"):
        scope = f"/subscriptions/{scope}"
    return id_key(scope)


def in_scope(resource_key: str, scope_key: str) -> bool:
    return resource_key == scope_key or resource_key.startswith(scope_key + "/")


def subscription_of(resource_key: str) -> str:
    """The lowercase subscription of a resource ID key, "" when it has none."""
    parts = resource_key.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "subscriptions" else ""


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """A finding that has been alerted and not seen resolved since."""

    key: str
    rule_id: str
    resource_id: str
    severity: Severity
    title: str
    first_alerted: datetime
    last_alerted: datetime

    @property
    def resource_key(self) -> str:
        return id_key(self.resource_id)


class AlertLedger(Protocol):
    def get_open(self, key: str) -> OpenAlert | None: ...

    def put_open(self, records: Iterable[OpenAlert]) -> None: ...

    def close(self, keys: Iterable[str]) -> None: ...

    def open_in_scope(self, scope: str) -> list[OpenAlert]:
        """Open records whose resource is ``scope`` or under it (an ARM ID prefix)."""
        ...

    def add_pending(self, delivery: Delivery) -> None: ...

    def claim_pending(self, now: datetime, lease: timedelta) -> list[Delivery]:
        """Pending deliveries not claimed by another run, claimed for ``lease``: two timer runs
        on two instances must not both resend the same message."""
        ...

    def release_pending(self, delivery: Delivery) -> None:
        """Store a still-failing delivery's new state and let the next run claim it."""
        ...

    def remove_pending(self, delivery_id: str) -> None: ...

    def pending(self) -> list[Delivery]: ...


class MemoryLedger:
    """In-process ledger: the CLI (one run, nothing to share) and tests."""

    def __init__(self) -> None:
        self._open: dict[str, OpenAlert] = {}
        self._pending: dict[str, tuple[Delivery, datetime]] = {}
        self._lock = threading.Lock()

    def get_open(self, key: str) -> OpenAlert | None:
        with self._lock:
            return self._open.get(key)

    def put_open(self, records: Iterable[OpenAlert]) -> None:
        with self._lock:
            for r in records:
                self._open[r.key] = r

    def close(self, keys: Iterable[str]) -> None:
        with self._lock:
            for k in keys:
                self._open.pop(k, None)

    def open_in_scope(self, scope: str) -> list[OpenAlert]:
        s = normalise_scope(scope)
        with self._lock:
            return [r for r in self._open.values() if in_scope(r.resource_key, s)]

    def add_pending(self, delivery: Delivery) -> None:
        with self._lock:
            self._pending[delivery.id] = (delivery, EPOCH)

    def claim_pending(self, now: datetime, lease: timedelta) -> list[Delivery]:
        with self._lock:
            out = []
            for did, (d, claimed_until) in sorted(self._pending.items()):
                if claimed_until <= now:
                    self._pending[did] = (d, now + lease)
                    out.append(d)
            return out

    def release_pending(self, delivery: Delivery) -> None:
        with self._lock:
            if delivery.id in self._pending:
                self._pending[delivery.id] = (delivery, EPOCH)

    def remove_pending(self, delivery_id: str) -> None:
        with self._lock:
            self._pending.pop(delivery_id, None)

    def pending(self) -> list[Delivery]:
        with self._lock:
            return [d for _, (d, _) in sorted(self._pending.items())]


def refreshed(existing: OpenAlert | None, *, key: str, rule_id: str, resource_id: str, severity: Severity,
              title: str, now: datetime) -> OpenAlert:
    """The record after alerting now, keeping when the finding was first alerted."""
    if existing is not None:
        return replace(existing, severity=severity, title=title, last_alerted=now)
    return OpenAlert(key=key, rule_id=rule_id, resource_id=resource_id, severity=severity, title=title,
                     first_alerted=now, last_alerted=now)
