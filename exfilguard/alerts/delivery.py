"""Deliveries (a rendered message for one channel) and their outcomes, as data.

A failed delivery is stored whole and resent verbatim later, so a retry says exactly what
the first try would have said. Every outcome is returned to the caller, which writes it to
the audit log: a finding is accounted for as sent, queued for retry, suppressed or exempt,
never silently dropped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

DeliveryStatus = Literal["sent", "failed", "suppressed", "exempt", "no_channel"]
SENT: Final = "sent"
FAILED: Final = "failed"          # not delivered this time; kept in the ledger and retried
SUPPRESSED: Final = "suppressed"  # same open finding alerted within the dedup window
EXEMPT: Final = "exempt"          # the resource's exfilguard-exempt tag covers the rule
NO_CHANNEL: Final = "no_channel"  # nothing configured to send through
Channel = Literal["teams", "email"]
MessageKind = Literal["alert", "digest", "escalation", "exemption", "resolved", "test", "channel-check", "operations"]


class DeliveryError(Exception):
    """A channel could not deliver. The message never contains the Teams URL or a password."""

    def __init__(self, message: str, *, attempts: int = 1, status: int | None = None,
                 retryable: bool = True) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status = status
        self.retryable = retryable


def new_delivery_id(now: datetime) -> str:
    """Sortable by creation time (Table storage lists in RowKey order), unique across instances."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    channel: Channel
    kind: MessageKind
    payload: dict[str, Any]  # Teams: the envelope; email: mail.email_payload()
    keys: tuple[str, ...]    # the findings (dedup keys) it tells about
    created: datetime
    rounds: int = 0          # delivery rounds tried so far (each may make several requests)
    last_error: str = ""
    last_attempt: datetime | None = None

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(self.payload.get("to", ())) if self.channel == "email" else ()


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    status: DeliveryStatus
    kind: MessageKind
    channel: Channel | None
    keys: tuple[str, ...]
    at: datetime
    delivery_id: str | None = None
    attempts: int = 0        # requests made in this round (retries of 429/5xx included)
    rounds: int = 0          # rounds so far for this delivery (1 on the first try)
    error: str = ""
    recipients: tuple[str, ...] = field(default=())
    will_retry: bool = True  # for FAILED: queued in the ledger (not for test messages)

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def to_json(self) -> dict[str, Any]:
        """The audit-log record."""
        out: dict[str, Any] = {
            "status": self.status,
            "kind": self.kind,
            "channel": self.channel,
            "keys": list(self.keys),
            "at": self.at.astimezone(UTC).isoformat(),
        }
        if self.delivery_id:
            out["deliveryId"] = self.delivery_id
        if self.attempts:
            out["attempts"] = self.attempts
        if self.rounds:
            out["rounds"] = self.rounds
        if self.error:
            out["error"] = self.error
        if self.recipients:
            out["recipients"] = list(self.recipients)
        if self.status == FAILED:
            out["willRetry"] = self.will_retry
        return out
