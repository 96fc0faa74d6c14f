"""The small timers that keep nothing lost: alert resends and the daily channel check.

Schedules are NCRONTAB with seconds, overridable by app setting (``%NAME%`` is used only
when the setting exists: the host has no default syntax and an unresolvable name stops it
from indexing the function).
"""

from __future__ import annotations

from typing import Any

from exfilguard.adapters import telemetry
from exfilguard.adapters.state import AuditEntry
from exfilguard.flows.runtime import Services

log = telemetry.get_logger("exfilguard.upkeep")

def retry_alerts(services: Services) -> list[Any]:
    """The ``alert_retry`` timer: resend failed deliveries; audit what was resent or still fails."""
    from exfilguard.alerts.upkeep import retry_failed

    outcomes = retry_failed(services.notifier())
    for o in outcomes:
        services.state.audit(AuditEntry(
            trigger="timer", decision="alert-resent" if o.status == "sent" else "alert-failed",
            outcome=f"{o.kind} through {o.channel}: {o.status} (round {o.rounds})",
            detail=o.error, findings=tuple({"key": k} for k in o.keys)))
    return outcomes


def check_channels(services: Services) -> Any:
    """The ``channel_check`` timer: is Teams alive? If not, say so by email. Audited either way."""
    from exfilguard.alerts.upkeep import check_channels as check

    result = check(services.notifier())
    if result.teams == "failed":
        telemetry.failure("alerts")
    services.state.audit(AuditEntry(trigger="timer", decision="channel-check", outcome=result.words()[:2000]))
    return result
