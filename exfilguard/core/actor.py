"""Who changed a resource, or asked ExfilGuard to: one type for the event's claims, the loop
guard's memory of the other writer, the alert's "Who changed it" and the HTTP caller.

Every field is optional: a sweep has no event, ARN events carry no claims, service principals
have no UPN, and an HTTP caller behind a function key is not known at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def _time(value: Any) -> datetime | None:
    """A stored time (ISO text, or a datetime a table SDK decoded) in UTC; None when absent or unreadable."""
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


@dataclass(frozen=True, slots=True)
class Actor:
    name: str = ""            # display name (or, for a remembered writer, the readable handle)
    upn: str = ""
    app_id: str = ""
    object_id: str = ""       # the principal's object ID (HTTP: x-ms-client-principal-id)
    operation: str = ""       # what they did, from the event
    event_id: str = ""
    correlation_id: str = ""  # to find the change in the Activity Log
    time: datetime | None = None
    provider: str = ""        # HTTP: the identity provider App Service authentication names
    verified: bool = False    # HTTP: App Service authentication signed the caller in

    @property
    def person(self) -> str:
        """Name and UPN as a person reads them: ``Dana (dana@contoso.com)``, else either one."""
        if self.name and self.upn and self.name != self.upn:
            return f"{self.name} ({self.upn})"
        return self.upn or self.name

    @property
    def handle(self) -> str:
        """The most readable handle available: the person, else the app, else the object ID."""
        if self.person:
            return self.person
        if self.app_id:
            return f"app {self.app_id}"
        if self.object_id:
            return f"object {self.object_id}"
        return ""

    def to_json(self) -> dict[str, str]:
        """The loop guard's stored form of the other writer (its keys are the stored format)."""
        return {"caller": self.person, "appId": self.app_id, "objectId": self.object_id,
                "operation": self.operation, "eventId": self.event_id, "correlationId": self.correlation_id,
                "time": _iso(self.time)}

    @classmethod
    def from_json(cls, data: Any) -> Actor | None:
        if not isinstance(data, dict):
            return None
        return cls(name=data.get("caller", ""), app_id=data.get("appId", ""), object_id=data.get("objectId", ""),
                   operation=data.get("operation", ""), event_id=data.get("eventId", ""),
                   correlation_id=data.get("correlationId", ""), time=_time(data.get("time")))
