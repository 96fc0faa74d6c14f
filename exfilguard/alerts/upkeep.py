"""Keeping the alert channels honest: a failed delivery is not left for tomorrow, and a dead
Teams webhook is noticed.

- :func:`retry_failed` is what the ``alert_retry`` timer runs every few minutes
  (``EXFILGUARD_ALERT_RETRY_SCHEDULE``, default every 5 minutes): every delivery that failed
  is resent verbatim, so a Teams outage costs at most one timer period plus the claim lease
  (well under 15 minutes), not a wait for the nightly sweep. Dedup never applies to a resend:
  the queued message is the alert, already counted for its findings.
- :func:`check_channels` is the daily "channel alive" check. A Workflows webhook whose owner
  left answers errors forever and nothing else would say so. It posts a short check message
  to Teams; when that fails and email is configured, it sends an email that says the Teams
  channel is failing (with the error and the alerts still waiting for Teams), so the people
  who should have been told learn it from the channel that works.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exfilguard.alerts.content import Content, Fact, Line, Section
from exfilguard.alerts.delivery import FAILED, SENT, DeliveryOutcome
from exfilguard.alerts.mail import email_payload

log = logging.getLogger("exfilguard.alerts")


@dataclass
class ChannelCheck:
    """What the daily check found and did, for the audit log and the tests."""

    teams: str = "not-configured"  # ok | failed | not-configured
    teams_error: str = ""
    fallback: str = "not-needed"  # sent | failed | not-configured | not-needed
    fallback_error: str = ""
    waiting: int = 0  # deliveries still queued for Teams
    outcomes: list[DeliveryOutcome] = field(default_factory=list)

    def words(self) -> str:
        text = f"teams {self.teams}"
        if self.teams_error:
            text += f" ({self.teams_error})"
        if self.teams == "failed":
            text += f"; email fallback {self.fallback}"
            if self.fallback_error:
                text += f" ({self.fallback_error})"
            text += f"; {self.waiting} delivery(ies) waiting for Teams"
        return text


def retry_failed(dispatcher: Any) -> list[DeliveryOutcome]:
    """Resend every queued delivery once (a claimed one is skipped: another instance has it)."""
    outcomes = dispatcher.retry_pending()
    sent = sum(1 for o in outcomes if o.status == SENT)
    if outcomes:
        log.info("alert retry: %d resent, %d still failing", sent, len(outcomes) - sent)
    return outcomes


def _fallback_content(error: str, waiting: list[Any], now: datetime) -> Content:
    lines = tuple(Line(lead=f"{d.kind} ({d.rounds} tries, since {d.created:%Y-%m-%d %H:%M} UTC)",
                       text=", ".join(k.replace("|", " on ", 1) for k in d.keys[:5]) +
                       (f" and {len(d.keys) - 5} more" if len(d.keys) > 5 else ""))
                  for d in waiting[:50])
    sections = [Section("What failed", facts=(Fact("Channel", "Microsoft Teams (Workflows webhook)"),
                                              Fact("Error", error or "unknown"),
                                              Fact("Checked", f"{now:%Y-%m-%d %H:%M} UTC")))]
    if lines:
        sections.append(Section("Alerts waiting for Teams", lines=lines, more=max(0, len(waiting) - 50)))
    sections.append(Section("What to do", text=(
        "The Teams webhook (EXFILGUARD_TEAMS_WEBHOOK_URL) did not accept a check message. A Workflows "
        "webhook stops working when its owner leaves or the flow is turned off: re-create it and update "
        "the app setting. Until then this email is how ExfilGuard reaches you; queued Teams alerts are "
        "resent automatically once the webhook works again.")))
    return Content(kind="channel-check", badge="ESCALATION", tone="attention",
                   title="ExfilGuard cannot reach Teams: alerts fall back to email",
                   subject="[ExfilGuard] Teams channel failing: alerts fall back to email",
                   summary=f"The daily channel check could not post to Teams: {error}",
                   sections=tuple(sections), keys=("CHANNEL|teams",))


def check_channels(dispatcher: Any, *, clock: Any = None) -> ChannelCheck:
    """Post a check message to Teams; on failure, say so by email (when email is configured)."""
    from exfilguard.alerts.cards import teams_payload
    from exfilguard.alerts.content import test_content
    from exfilguard.alerts.message import TestAlert

    now = (clock or (lambda: datetime.now(UTC)))()
    out = ChannelCheck()
    senders = dispatcher._senders
    teams = senders.get("teams")
    if teams is None:
        return out
    content = test_content(TestAlert(sent_at=now))
    try:
        teams.send(teams_payload(content))
        out.teams = "ok"
        return out
    except Exception as exc:  # DeliveryError or anything the sender raised: the channel is not alive
        out.teams = "failed"
        out.teams_error = dispatcher._error_text(exc)
    log.error("channel check: Teams failed: %s", out.teams_error)
    waiting = [d for d in dispatcher.ledger.pending() if d.channel == "teams"]
    out.waiting = len(waiting)
    email = senders.get("email")
    to = dispatcher.planner.email.everyone() if dispatcher.planner.email is not None else ()
    if email is None or not to:
        out.fallback = "not-configured"
        return out
    payload = email_payload(_fallback_content(out.teams_error, waiting, now), to)
    try:
        attempts = email.send(payload)
        out.fallback = "sent"
        out.outcomes.append(DeliveryOutcome(status=SENT, kind="channel-check", channel="email",
                                            keys=("CHANNEL|teams",), at=now, attempts=attempts,
                                            recipients=tuple(to)))
    except Exception as exc:
        out.fallback = "failed"
        out.fallback_error = dispatcher._error_text(exc)
        out.outcomes.append(DeliveryOutcome(status=FAILED, kind="channel-check", channel="email",
                                            keys=("CHANNEL|teams",), at=now, error=out.fallback_error,
                                            will_retry=False))
    return out


def notify_operators(dispatcher: Any, *, title: str, summary: str, facts: tuple[tuple[str, str], ...],
                     what_to_do: str) -> list[DeliveryOutcome]:
    """A one-off operational message (a poison dead letter) through every configured channel;
    not queued for retry: the audit row is the lasting record."""
    from exfilguard.alerts.cards import teams_payload

    now = datetime.now(UTC)
    content = Content(kind="operations", badge="ESCALATION", tone="attention", title=title,
                      subject=f"[ExfilGuard] {title}", summary=summary,
                      sections=(Section("Details", facts=tuple(Fact(k, v) for k, v in facts)),
                                Section("What to do", text=what_to_do)), keys=("OPERATIONS",))
    out = []
    senders = dispatcher._senders
    for channel, sender in senders.items():
        if channel == "teams":
            payload = teams_payload(content)
        else:
            to = dispatcher.planner.email.everyone() if dispatcher.planner.email is not None else ()
            if not to:
                continue
            payload = email_payload(content, to)
        try:
            attempts = sender.send(payload)
            out.append(DeliveryOutcome(status=SENT, kind="operations", channel=channel, keys=content.keys, at=now,
                                       attempts=attempts))
        except Exception as exc:
            out.append(DeliveryOutcome(status=FAILED, kind="operations", channel=channel, keys=content.keys, at=now,
                                       error=dispatcher._error_text(exc), will_retry=False))
    return out
