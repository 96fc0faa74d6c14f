"""Deciding what to send, sending it, and accounting for every finding.

Rules the dispatcher enforces, in one place:

- The same open finding (rule + resource) is not alerted again within the dedup window;
  a "fixed" alert always goes out (it reports an event, and closes the finding).
- Exempt findings are not alerted (docs/semantics.md, Exemptions); they are reported as outcomes.
- A sweep sends one digest per channel (per recipient list for email), never one per finding.
- A failed delivery is stored in the ledger and resent verbatim by :meth:`retry_pending`;
  its findings count as alerted, so the next sweep does not send them twice.
- An escalation bypasses dedup and is always sent (and queued when sending fails); so does
  an exemption change (a tag that switches protection off), in every mode.
- Alerts never suggest exempting a finding: they point to the fix.
- Every call returns its :class:`~exfilguard.alerts.delivery.DeliveryOutcome` list, which the
  caller writes to the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from exfilguard.alerts import content as c
from exfilguard.alerts.cards import teams_payload
from exfilguard.alerts.delivery import (
    EXEMPT,
    FAILED,
    NO_CHANNEL,
    SENT,
    SUPPRESSED,
    Channel,
    Delivery,
    DeliveryError,
    DeliveryOutcome,
    DeliveryStatus,
    MessageKind,
    new_delivery_id,
)
from exfilguard.alerts.ledger import AlertLedger, OpenAlert, normalise_scope, refreshed
from exfilguard.alerts.mail import email_payload
from exfilguard.alerts.message import (
    ActionKind,
    ActiveExemption,
    Alert,
    Escalation,
    ExemptionChange,
    ResolvedNotice,
    ResourceFacts,
    TestAlert,
)
from exfilguard.core.findings import Finding, Severity
from exfilguard.core.settings import AlertSettings

log = logging.getLogger("exfilguard.alerts")


class Sender(Protocol):
    channel: str

    def send(self, payload: dict[str, Any]) -> int: ...


@dataclass(frozen=True, slots=True)
class EmailRouting:
    """Recipients per severity: the override list when set, else the default list."""

    default: tuple[str, ...] = ()
    by_severity: dict[Severity, tuple[str, ...]] = field(default_factory=dict)

    def for_severity(self, severity: Severity) -> tuple[str, ...]:
        return self.by_severity.get(severity) or self.default

    def everyone(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for s in Severity for a in self.for_severity(s)))


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    dedup_window: timedelta = timedelta(hours=24)
    resolved_notices: bool = False
    retry_lease: timedelta = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Planner:
    """Renders messages into deliveries for the enabled channels; no I/O. The CLI's dry run uses
    it alone, the dispatcher before sending."""

    teams: bool = False
    email: EmailRouting | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def _delivery(self, channel: Channel, kind: MessageKind, payload: dict[str, Any],
                  keys: tuple[str, ...]) -> Delivery:
        now = self.clock()
        return Delivery(id=new_delivery_id(now), channel=channel, kind=kind, payload=payload, keys=keys, created=now)

    def _plan(self, kind: MessageKind, items: Sequence[Any], build: Callable[[Sequence[Any]], c.Content],
              severity_of: Callable[[Any], Severity]) -> list[Delivery]:
        out: list[Delivery] = []
        if not items:
            return out
        if self.teams:
            whole = build(items)
            out.append(self._delivery("teams", kind, teams_payload(whole), whole.keys))
        if self.email is not None:
            groups: dict[tuple[str, ...], list[Any]] = {}
            for item in items:
                to = self.email.for_severity(severity_of(item))
                if to:
                    groups.setdefault(to, []).append(item)
            for to, subset in groups.items():
                part = build(subset)
                out.append(self._delivery("email", kind, email_payload(part, to), part.keys))
        return out

    def alert(self, alert: Alert) -> list[Delivery]:
        return self._plan("alert", [alert], lambda xs: c.alert_content(xs[0]), lambda a: a.severity)

    def digest(self, alerts: Sequence[Alert], title: str = "",
               exemptions: Sequence[ActiveExemption] = (), report_url: str | None = None) -> list[Delivery]:
        """Every recipient list gets the exemptions in force, whatever findings it receives."""
        ex = tuple(exemptions)
        out = self._plan("digest", list(alerts), lambda xs: c.digest_content(list(xs), title=title, exemptions=ex,
                                                                         report_url=report_url),
                         lambda a: a.severity)
        if alerts or not ex:
            return out
        whole = c.digest_content([], title=title, exemptions=ex, report_url=report_url)
        if self.teams:
            out.append(self._delivery("teams", "digest", teams_payload(whole), whole.keys))
        if self.email is not None and self.email.everyone():
            out.append(self._delivery("email", "digest", email_payload(whole, self.email.everyone()), whole.keys))
        return out

    def exemption_change(self, change: ExemptionChange) -> list[Delivery]:
        return self._plan("exemption", [change], lambda xs: c.exemption_change_content(xs[0]),
                          lambda _: Severity.HIGH)

    def escalation(self, escalation: Escalation) -> list[Delivery]:
        return self._plan("escalation", [escalation], lambda xs: c.escalation_content(xs[0]),
                          lambda _: Severity.CRITICAL)

    def resolved(self, notices: Sequence[ResolvedNotice]) -> list[Delivery]:
        return self._plan("resolved", list(notices), lambda xs: c.resolved_content(list(xs)), lambda n: n.severity)

    def test(self, t: TestAlert) -> list[Delivery]:
        out: list[Delivery] = []
        content = c.test_content(t)
        if self.teams:
            out.append(self._delivery("teams", "test", teams_payload(content), content.keys))
        if self.email is not None and self.email.everyone():
            out.append(self._delivery("email", "test", email_payload(content, self.email.everyone()), content.keys))
        return out


class Dispatcher:
    """The Function app's entry point to alerting. Build it with :meth:`from_settings`."""

    def __init__(
        self,
        *,
        ledger: AlertLedger,
        teams: Sender | None = None,
        email: Sender | None = None,
        routing: EmailRouting | None = None,
        policy: DispatchPolicy | None = None,
        http_endpoint: str = "",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.ledger = ledger
        self.policy = policy or DispatchPolicy()
        self.http_endpoint = http_endpoint
        self._clock = clock or (lambda: datetime.now(UTC))
        self._senders: dict[str, Sender] = {}
        if teams is not None:
            self._senders["teams"] = teams
        if email is not None:
            self._senders["email"] = email
        self.planner = Planner(teams=teams is not None,
                               email=(routing or EmailRouting()) if email is not None else None,
                               clock=self._clock)

    @classmethod
    def from_settings(cls, settings: AlertSettings, ledger: AlertLedger, *, credential: Any = None,
                      channels: Iterable[str] | None = None, **kwargs: Any) -> Dispatcher:
        """Senders for the configured channels (or only those of them named in ``channels``).
        ``credential`` is for ACS (default: the managed identity through DefaultAzureCredential)."""
        only = set(channels) if channels is not None else {"teams", "email"}
        teams = None
        email: Sender | None = None
        if settings.teams_webhook_url and "teams" in only:
            from exfilguard.alerts.teams import TeamsSender

            teams = TeamsSender(str(settings.teams_webhook_url))
        if settings.email_channel == "smtp" and "email" in only:
            from exfilguard.alerts.smtp import SmtpSender

            email = SmtpSender(settings.smtp_host, settings.smtp_port, sender=settings.email_sender,
                               username=settings.smtp_username, password=str(settings.smtp_password or ""),
                               starttls=settings.smtp_starttls)
        elif settings.email_channel == "acs" and "email" in only:
            from exfilguard.alerts.acs import AcsEmailSender

            email = AcsEmailSender(settings.acs_endpoint, sender=settings.email_sender, credential=credential)
        return cls(
            ledger=ledger, teams=teams, email=email,
            routing=EmailRouting(settings.email_to, dict(settings.email_to_by_severity)),
            policy=DispatchPolicy(dedup_window=timedelta(hours=settings.dedup_hours),
                                  resolved_notices=settings.resolved_notices),
            http_endpoint=settings.http_endpoint, **kwargs,
        )

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._senders)

    def build_alert(self, finding: Finding, **kwargs: Any) -> Alert:
        """:meth:`Alert.build` with this app's endpoint in the re-check text."""
        return Alert.build(finding, http_endpoint=self.http_endpoint or None, **kwargs)

    # sending -------------------------------------------------------------------------------

    def _outcome(self, status: DeliveryStatus, kind: MessageKind, channel: Channel | None, keys: tuple[str, ...],
                 **kw: Any) -> DeliveryOutcome:
        return DeliveryOutcome(status=status, kind=kind, channel=channel, keys=keys, at=self._clock(), **kw)

    def _error_text(self, exc: BaseException) -> str:
        text = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
        teams = self._senders.get("teams")
        scrub = getattr(teams, "_scrub", None)
        return scrub(text) if scrub else text

    def _attempt(self, d: Delivery) -> tuple[int, str]:
        """(requests made, error text or "")."""
        sender = self._senders.get(d.channel)
        if sender is None:
            return 0, f"channel {d.channel} is not configured"
        try:
            return sender.send(d.payload), ""
        except DeliveryError as exc:
            return exc.attempts, self._error_text(exc)
        except Exception as exc:  # a bug or an SDK surprise must still leave the delivery queued
            log.exception("alert delivery through %s raised", d.channel)
            return 1, self._error_text(exc)

    def _deliver(self, deliveries: list[Delivery], *, queue: bool = True) -> list[DeliveryOutcome]:
        outcomes = []
        for d in deliveries:
            attempts, error = self._attempt(d)
            if not error:
                log.info("%s sent through %s (%d finding keys)", d.kind, d.channel, len(d.keys))
                outcomes.append(self._outcome(SENT, d.kind, d.channel, d.keys, delivery_id=d.id,
                                              attempts=attempts, rounds=1, recipients=d.recipients))
                continue
            log.warning("%s through %s failed%s: %s", d.kind, d.channel, ", queued for retry" if queue else "", error)
            if queue:
                self.ledger.add_pending(replace(d, rounds=1, last_error=error, last_attempt=self._clock()))
            outcomes.append(self._outcome(FAILED, d.kind, d.channel, d.keys, delivery_id=d.id, attempts=attempts,
                                          rounds=1, error=error, recipients=d.recipients, will_retry=queue))
        return outcomes

    def _no_channel(self, kind: MessageKind, keys: tuple[str, ...]) -> list[DeliveryOutcome]:
        log.error("no alert channel is configured: %s not sent", kind)
        return [self._outcome(NO_CHANNEL, kind, None, keys, error="no alert channel is configured")]

    def _known(self, alerts: Sequence[Alert], scope: str | None) -> dict[str, OpenAlert | None]:
        """Ledger records for these findings: one query for a sweep's scope, else one read each."""
        known: dict[str, OpenAlert | None] = {}
        if scope is not None:
            known.update((r.key, r) for r in self.ledger.open_in_scope(normalise_scope(scope)))
        for a in alerts:
            if a.key not in known:
                known[a.key] = self.ledger.get_open(a.key) if scope is None else None
        return known

    def _screen(self, alerts: Sequence[Alert], known: dict[str, OpenAlert | None],
                now: datetime) -> tuple[list[Alert], list[DeliveryOutcome]]:
        """Drop exempt findings and open findings alerted within the dedup window."""
        keep, outcomes = [], []
        for a in alerts:
            if a.action.kind is ActionKind.EXEMPT:
                outcomes.append(self._outcome(EXEMPT, "alert", None, (a.key,)))
                continue
            rec = known.get(a.key)
            if a.action.leaves_finding_open and rec is not None and now - rec.last_alerted < self.policy.dedup_window:
                outcomes.append(self._outcome(SUPPRESSED, "alert", None, (a.key,)))
                continue
            keep.append(a)
        return keep, outcomes

    def _record(self, alerts: Sequence[Alert], known: dict[str, OpenAlert | None], now: datetime) -> None:
        opened = [refreshed(known.get(a.key), key=a.key, rule_id=a.finding.rule_id,
                            resource_id=a.finding.resource_id, severity=a.severity, title=a.finding.title, now=now)
                  for a in alerts if a.action.leaves_finding_open]
        if opened:
            self.ledger.put_open(opened)
        fixed = [a.key for a in alerts if not a.action.leaves_finding_open]
        if fixed:
            self.ledger.close(fixed)

    def send_alerts(self, alerts: Iterable[Alert]) -> list[DeliveryOutcome]:
        """Event path: one message per alert, after dedup."""
        now = self._clock()
        alerts = list(alerts)
        known = self._known(alerts, None)
        keep, outcomes = self._screen(alerts, known, now)
        for a in keep:
            deliveries = self.planner.alert(a)
            if not deliveries:
                outcomes += self._no_channel("alert", (a.key,))
                continue
            outcomes += self._deliver(deliveries)
            self._record([a], known, now)
        return outcomes

    def send_digest(self, alerts: Iterable[Alert], *, scope: str | None = None,
                    title: str = "", exemptions: Sequence[ActiveExemption] = (),
                    report_url: str | None = None) -> list[DeliveryOutcome]:
        """Sweep path: one digest of the findings not alerted within the window, listing the
        exemptions in force (a digest goes out for them alone too). With ``scope``
        (a subscription ID, or an ARM ID prefix the sweep covered completely), open findings
        under it that are absent now are closed, with a resolved notice when enabled."""
        now = self._clock()
        alerts = list(alerts)
        known = self._known(alerts, scope)
        keep, outcomes = self._screen(alerts, known, now)
        if keep or exemptions:
            deliveries = self.planner.digest(keep, title, exemptions, report_url)
            if deliveries:
                outcomes += self._deliver(deliveries)
                self._record(keep, known, now)
            else:
                outcomes += self._no_channel("digest", tuple(a.key for a in keep))
        if scope is not None:
            outcomes += self.resolve_missing(scope, [a.key for a in alerts])
        return outcomes

    def resolve_missing(self, scope: str, present: Iterable[str]) -> list[DeliveryOutcome]:
        """Close the open findings under ``scope`` whose keys are not in ``present``; send one
        resolved notice for them when ``resolved_notices`` is on."""
        present_keys = set(present)
        gone = [r for r in self.ledger.open_in_scope(normalise_scope(scope)) if r.key not in present_keys]
        if not gone:
            return []
        now = self._clock()
        notices = [ResolvedNotice(rule_id=r.rule_id, resource=ResourceFacts.from_resource_id(r.resource_id),
                                  title=r.title, severity=r.severity, resolved_at=now,
                                  first_alerted=r.first_alerted) for r in gone]
        if self.policy.resolved_notices:
            return self.send_resolved(notices)
        self.ledger.close(r.key for r in gone)
        return []

    def send_resolved(self, notices: Sequence[ResolvedNotice]) -> list[DeliveryOutcome]:
        """Tell that findings are gone (one message for all of them) and close them."""
        notices = list(notices)
        if not notices:
            return []
        deliveries = self.planner.resolved(notices)
        self.ledger.close(n.key for n in notices)
        if not deliveries:
            return self._no_channel("resolved", tuple(n.key for n in notices))
        return self._deliver(deliveries)

    def send_escalation(self, escalation: Escalation) -> list[DeliveryOutcome]:
        """Loop guard tripped: always sent, never deduplicated, queued when it fails."""
        deliveries = self.planner.escalation(escalation)
        if not deliveries:
            return self._no_channel("escalation", (escalation.key,))
        return self._deliver(deliveries)

    def send_exemption_change(self, change: ExemptionChange) -> list[DeliveryOutcome]:
        """An exemption tag appeared or changed: always sent (every mode, no dedup), queued
        when sending fails, like an escalation."""
        deliveries = self.planner.exemption_change(change)
        if not deliveries:
            return self._no_channel("exemption", (change.key,))
        return self._deliver(deliveries)

    def send_test(self) -> list[DeliveryOutcome]:
        """One harmless message through every configured channel; not queued when it fails
        (the person running the test wants the error now, not a late message)."""
        deliveries = self.planner.test(TestAlert(sent_at=self._clock()))
        if not deliveries:
            return self._no_channel("test", ("TEST",))
        return self._deliver(deliveries, queue=False)

    def retry_pending(self) -> list[DeliveryOutcome]:
        """Resend every failed delivery once (the timer calls this); a delivery that fails again
        stays queued with its round count and last error."""
        now = self._clock()
        outcomes = []
        for d in self.ledger.claim_pending(now, self.policy.retry_lease):
            attempts, error = self._attempt(d)
            rounds = d.rounds + 1
            if not error:
                self.ledger.remove_pending(d.id)
                outcomes.append(self._outcome(SENT, d.kind, d.channel, d.keys, delivery_id=d.id, attempts=attempts,
                                              rounds=rounds, recipients=d.recipients))
                continue
            self.ledger.release_pending(replace(d, rounds=rounds, last_error=error, last_attempt=now))
            outcomes.append(self._outcome(FAILED, d.kind, d.channel, d.keys, delivery_id=d.id, attempts=attempts,
                                          rounds=rounds, error=error, recipients=d.recipients))
        return outcomes
