"""What ExfilGuard does about an evaluation, the same for an event, an HTTP call and a sweep.

1. Plan the fixes the mode allows (:func:`exfilguard.flows.remediate.plan_writes`), one write per resource.
2. Ask the loop guard (:mod:`exfilguard.adapters.loopguard`) for each write. Past N writes to one
   resource in the window it backs off (doubling pauses), then holds the resource until a
   person releases it, with at most two escalations naming the other writer: two automations
   reverting each other forever would burn ARM quota and hide the real problem.
3. Write through :func:`exfilguard.adapters.writer.apply_change` (If-Match, re-plan on 412).
4. Alert about what is still wrong (alert-only rules, audit mode, failed or blocked fixes)
   and about what was fixed, so the person whose change was reverted learns why.
5. Audit every write, block and escalation.

A what-if (HTTP ``"remediate": false``) stops after planning: no write, no alert.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exfilguard.adapters import eventgrid as events
from exfilguard.adapters import telemetry
from exfilguard.adapters.eventgrid import ChangeEvent
from exfilguard.adapters.loopguard import Decision
from exfilguard.adapters.state import AuditDecision, AuditEntry, Trigger
from exfilguard.core import ids
from exfilguard.core.actor import Actor
from exfilguard.core.engine import Evaluation
from exfilguard.core.findings import Finding
from exfilguard.core.fixes import PlannedChange
from exfilguard.core.picture import Picture
from exfilguard.flows import remediate
from exfilguard.flows.runtime import Services

log = telemetry.get_logger("exfilguard.actions")

_WRITTEN = ("applied", "accepted")  # accepted: ARM took the write, its operation still running


@dataclass
class Invocation:
    """One trigger's run: which services, which ARM client, why, and the event if any."""

    services: Services
    client: Any
    trigger: Trigger
    event: ChangeEvent | None = None
    what_if: bool = False
    requested_by: str = ""  # HTTP: the caller, as far as it is known (app.caller)
    report_url: str | None = None  # a sweep's HTML report, linked from its digest

    def audit(self, decision: AuditDecision, **fields: Any) -> None:
        if self.requested_by:
            fields.setdefault("actor", self.requested_by)
        ev = self.event
        if ev is not None:
            fields.setdefault("event_id", ev.event_id)
            fields.setdefault("correlation_id", ev.correlation_id)
            fields.setdefault("event_type", ev.event_type)
            fields.setdefault("operation", ev.operation_name or ev.resource_type)
            fields.setdefault("actor", ev.caller.handle)
        self.services.state.audit(AuditEntry(trigger=self.trigger, decision=decision, **fields))

    @property
    def actor(self) -> Actor | None:
        """Who made the change behind this run (the event's caller): the loop guard's other
        writer and the alert's "who"; None without an event or without anyone named in it."""
        who = events.who(self.event) if self.event is not None else None
        return who if who is not None and who.handle else None


@dataclass
class Actions:
    """What was done, for the HTTP answer, the sweep report and the tests."""

    writes: list[Any] = field(default_factory=list)  # WriteResult
    blocked: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)  # DeliveryOutcome
    alert_error: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"writes": [w.to_json() for w in self.writes]}
        if self.blocked:
            out["loopGuardBlocked"] = self.blocked
        if self.escalated:
            out["escalated"] = self.escalated
        if self.alerts:
            out["alerts"] = _alert_summary(self.alerts)
        if self.alert_error:
            out["alertError"] = self.alert_error
        return out


def findings_json(findings: tuple[Finding, ...] | list[Finding]) -> tuple[dict, ...]:
    """The audit log's compact form of findings."""
    return tuple({"ruleId": f.rule_id, "resourceId": f.resource_id, "severity": f.severity.value,
                  "exempt": f.exempt, "fix": f.fix_mode} for f in findings)


def act(inv: Invocation, bodies: list[dict], evaluation: Evaluation, picture: Picture) -> Actions:
    """Steps 1-5 of the module docstring for one evaluation."""
    cfg = inv.services.settings.config
    out = Actions()
    telemetry.findings([f.rule_id for f in evaluation.open_findings])
    writes = remediate.plan_writes(evaluation, cfg, "audit" if inv.what_if else None)
    if inv.what_if:
        out.writes = remediate.write(inv.client, bodies, writes, cfg)
        return out
    current = remediate.body_index(bodies)
    intents = _intents(inv)
    # A redelivered event: fixes an earlier delivery wrote but could not audit or alert about.
    earlier = intents.pending(inv.event.event_id) if intents is not None and inv.event is not None else []
    planned_keys = {ids.key(c.target_id) for c in writes.to_write}
    recovered = [_recover(inv, it, current, evaluation) for it in earlier if ids.key(it.target_id) not in planned_keys]
    out.writes = remediate.write(inv.client, bodies, writes, cfg, hooks=_Guarded(inv, evaluation, intents, out))
    active = _watch_exemptions(inv, evaluation, picture, out)
    _alert(inv, evaluation, picture, out, active, [r for r in recovered if r is not None])
    if intents is not None and inv.event is not None:
        for target in [*(c.target_id for c in writes.to_write), *(it.target_id for it in earlier)]:
            intents.done(inv.event.event_id, target)
    return out


@dataclass
class _Guarded:
    """The Function app's hooks around each write: the loop guard's reservation, the intent
    written down first (a redelivery can finish what this run cannot), the audit row."""

    inv: Invocation
    evaluation: Evaluation
    intents: Any
    out: Actions
    guard: Any = None

    def before(self, change: PlannedChange, current: dict | None) -> Any:
        inv = self.inv
        if self.guard is None:
            self.guard = inv.services.loop_guard()
        decision = self.guard.reserve(change.target_id, inv.actor)
        if not decision.allowed:
            self.out.blocked.append(change.target_id)
            inv.audit("loop-guard", resource_id=change.target_id, outcome=f"not written: {decision.reason}",
                      findings=tuple({"ruleId": r, "resourceId": change.target_id} for r in change.rule_ids))
            if decision.escalate:
                _escalate(inv, change, decision, self.out)
            return None
        if self.intents is not None:
            try:
                _record_intent(self.intents, inv, change, current, self.evaluation)
            except BaseException:
                self.guard.release(decision)
                raise
        return decision

    def after(self, change: PlannedChange, result: Any, token: Any) -> None:
        if result.status not in _WRITTEN:
            self.guard.release(token)
        _audit_write(self.inv, result)

    def abort(self, token: Any) -> None:
        self.guard.release(token)


def _watch_exemptions(inv: Invocation, evaluation: Evaluation, picture: Picture, out: Actions) -> list[Any]:
    """Alert on exemption tags that appeared or changed (every mode); the ones in force, for
    the sweep digest. A failure here is audited and the run goes on: it must not undo fixes."""
    from exfilguard.flows import exemption_watch

    sweep = inv.trigger in ("sweep", "timer")
    complete = sweep and not any(n.kind == "read-error" for n in evaluation.notices)
    try:
        found = exemption_watch.watch(inv, picture, inv.services.clock().date(), complete=complete)
    except Exception as exc:
        log.exception("watching exemption tags failed")
        telemetry.failure("exemptions")
        out.alert_error = out.alert_error or f"exemption watch: {type(exc).__name__}: {exc}"
        return []
    return exemption_watch.active_for_digest(found) if sweep else []


# ---------------------------------------------------------------------------------- intents
def _intents(inv: Invocation) -> Any:
    """The intent store for event runs (only an event is redelivered); None otherwise."""
    if inv.event is None or not inv.event.event_id:
        return None
    from exfilguard.adapters.intents import IntentStore

    return IntentStore(inv.services.state)


def _record_intent(intents: Any, inv: Invocation, change: PlannedChange, body: dict | None,
                   evaluation: Evaluation) -> None:
    from exfilguard.adapters.intents import Intent, edits_json, finding_record
    from exfilguard.adapters.writer import planned

    assert inv.event is not None
    k = ids.key(change.target_id)
    fixes = [finding_record(f) for f in evaluation.findings
             if ids.key(f.fix_target) == k and f.rule_id in change.rule_ids]
    raw_etag = body.get("etag") if isinstance(body, dict) else None
    etag = raw_etag if isinstance(raw_etag, str) else ""
    intents.record(Intent(event_id=inv.event.event_id, target_id=change.target_id, rule_ids=change.rule_ids,
                          etag=etag, changed=planned(change, body).changed, findings=tuple(fixes),
                          time=datetime.now(UTC), edits=edits_json(change.edits)))


def _recover(inv: Invocation, intent: Any, current: dict[str, dict], evaluation: Evaluation) -> Any:
    """An intent left by an earlier delivery of this event whose target needs no fix now.
    The write landed when the ETag moved on, the findings are gone and the body carries the
    planned edits: audit it as fixed (and return it, to be alerted). Otherwise the write did
    not land and someone else's change made it unnecessary: audited as such, nothing to alert."""
    k = ids.key(intent.target_id)
    body = current.get(k)
    still_open = {f.rule_id for f in evaluation.open_findings if ids.key(f.fix_target) == k}
    etag = body.get("etag") if isinstance(body, dict) else None
    in_place = intent.in_place(body) if body is not None else False
    landed = (body is not None and not (set(intent.rule_ids) & still_open) and in_place is not False
              and (not intent.etag or etag != intent.etag))
    findings = tuple({"ruleId": r, "resourceId": intent.target_id} for r in intent.rule_ids)
    if landed:
        log.warning("completing the fix of %s written by an earlier delivery of event %s", intent.target_id,
                    intent.event_id)
        inv.audit("fixed", resource_id=intent.target_id, findings=findings,
                  outcome="applied: written by an earlier delivery of this event, whose audit and alert were lost",
                  detail=json.dumps({"changed": intent.changed, "recorded": intent.time}, default=str))
        return intent
    inv.audit("fix-not-needed", resource_id=intent.target_id, findings=findings,
              outcome="an earlier delivery of this event meant to fix it; the fresh read shows "
                      + ("it gone" if body is None else "no fix needed and no sign of that write"))
    return None


# ---------------------------------------------------------------------------------- loop guard
RELEASE_HOW = ("POST /api/loopguard/release with {\"resourceId\": \"<ID>\"} (function key) once the other "
               "writer is fixed")


def _escalate(inv: Invocation, change: PlannedChange, decision: Decision, out: Actions) -> None:
    from exfilguard.alerts.message import Escalation, ResourceFacts

    s = inv.services.settings
    actor = who = decision.writer
    trail = (f" The other writer's last change: {actor.operation or 'unknown operation'}, correlation ID "
             f"{actor.correlation_id} (search the Activity Log for it)." if actor and actor.correlation_id else "")
    if decision.escalate == "held":
        note = (f"ExfilGuard has stopped fixing this resource and will not touch it again until a person "
                f"releases it: {RELEASE_HOW}.{trail}")
    else:
        note = (f"ExfilGuard is backing off: no fix before {decision.resume_at:%Y-%m-%d %H:%M} UTC, then one "
                f"attempt per pause, each pause twice the last. If the resource is still reverted after "
                f"{s.loop_max_backoffs} pauses, ExfilGuard stops fixing it until a person releases it.{trail}")
    escalation = Escalation(
        resource=ResourceFacts.from_resource_id(change.target_id), rule_ids=change.rule_ids,
        write_count=decision.total_writes, window=s.loop_memory, actor=who,
        detected_at=inv.services.clock(), note=note, stage=decision.escalate or "held")
    out.escalated.append(change.target_id)
    log.warning("loop guard: %s %s after %d fix writes (other writer: %s)", change.target_id, decision.escalate,
                decision.total_writes, (who.handle if who else "") or "unknown")
    telemetry.failure("loop-guard")
    outcomes = _notify(inv, out, lambda n: n.send_escalation(escalation))
    inv.audit("escalated" if decision.escalate == "held" else "backing-off", resource_id=change.target_id,
              actor=(who.handle if who else ""),
              outcome=_alert_words(outcomes) if outcomes is not None else f"escalation not sent: {out.alert_error}",
              detail=escalation.note)


# ---------------------------------------------------------------------------------- writes
def _audit_write(inv: Invocation, result: Any) -> None:
    decisions: dict[str, AuditDecision] = {"applied": "fixed", "not-needed": "fix-not-needed",
                                           "conflict": "fix-conflict", "accepted": "fix-accepted"}
    decision = decisions.get(result.status, "fix-failed")
    telemetry.fix(result.status, result.rule_ids)
    if result.status not in _WRITTEN and result.status != "not-needed":
        telemetry.failure(f"fix-{result.status}")
    log.info("%s %s (%s): %s", decision, result.target_id, ", ".join(result.rule_ids), result.message)
    inv.audit(decision, resource_id=result.target_id, outcome=f"{result.status}: {result.message}",
              detail=json.dumps({"changed": result.changed, "attempts": result.attempts,
                                 "httpStatus": result.http_status}, default=str),
              findings=tuple({"ruleId": r, "resourceId": result.target_id} for r in result.rule_ids))


# ---------------------------------------------------------------------------------- alerts
def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _action_for(finding: Finding, by_target: dict[str, Any], blocked: set[str]) -> Any:
    """The ActionTaken of one finding; None when nothing needs saying (someone else fixed it)."""
    from exfilguard.alerts.message import ActionTaken

    k = ids.key(finding.fix_target)
    if finding.exempt:
        return "default"
    if k in blocked and finding.fix_mode == "auto":
        return ActionTaken.fix_failed("loop guard: another writer keeps reverting this resource, so automatic "
                                      "fixing is paused or stopped (see the escalation)")
    result = by_target.get(k)
    if result is None or finding.rule_id not in result.rule_ids:
        return "default"  # alert-only, or audit mode's would-fix: Alert.build derives it
    if result.status == "applied":
        path, change = next(iter(result.changed.items()), ("", {"before": "", "after": ""}))
        return ActionTaken.fixed(_short(change.get("before")), _short(change.get("after")), property_path=path)
    if result.status == "not-needed":
        return None
    if result.status in ("planned", "accepted"):
        return "default"  # accepted: not known fixed until ARM's operation ends; the follow-up says
    return ActionTaken.fix_failed(result.message or result.status)


def _alert(inv: Invocation, evaluation: Evaluation, picture: Picture, out: Actions,
           exemptions: list[Any] | None = None, recovered: list[Any] | None = None) -> None:
    from exfilguard.alerts.message import ActionTaken, Alert

    change = events.who(inv.event) if inv.event is not None else None
    by_target = {ids.key(w.target_id): w for w in out.writes}
    blocked = {ids.key(b) for b in out.blocked}
    endpoint = inv.services.settings.http_endpoint
    alerts = []
    for f in evaluation.findings:
        action = _action_for(f, by_target, blocked)
        if action is None:
            continue
        res = picture.get(f.resource_id)
        region = (res.location or "") if res is not None else ""
        alerts.append(Alert.build(f, action=None if action == "default" else action, change=change, region=region,
                                  http_endpoint=endpoint))
    for intent in recovered or ():
        path, diff = next(iter(intent.changed.items()), ("", {"before": "", "after": ""}))
        fixed = ActionTaken.fixed(_short(diff.get("before")), _short(diff.get("after")), property_path=path)
        alerts += [Alert.build(f, action=fixed, change=change, http_endpoint=endpoint)
                   for f in intent.finding_objects()]
    sweep = inv.trigger in ("sweep", "timer")
    if not alerts and not sweep:
        return
    scope = inv.services.settings.subscription_id
    outcomes = _notify(inv, out, (lambda n: n.send_digest(alerts, scope=scope, title="ExfilGuard sweep",
                                                          exemptions=exemptions or (),
                                                          report_url=inv.report_url)) if sweep
                       else (lambda n: n.send_alerts(alerts)))
    if outcomes is None:
        inv.audit("alert-failed", outcome=out.alert_error, findings=findings_json([a.finding for a in alerts]))
        return
    out.alerts += outcomes
    if outcomes:
        inv.audit("alerted", outcome=_alert_words(outcomes), findings=findings_json([a.finding for a in alerts]))


def _notify(inv: Invocation, out: Actions, send: Any) -> list[Any] | None:
    """Send through the dispatcher. Alerting must not undo the audit of writes already made,
    so a failure here is logged, counted and audited by the caller, then the run goes on."""
    try:
        return list(send(inv.services.notifier()))
    except Exception as exc:
        out.alert_error = f"{type(exc).__name__}: {exc}"
        log.exception("alerting failed")
        telemetry.failure("alerts")
        return None


def _alert_summary(outcomes: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        k = f"{o.kind}:{o.status}"
        counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items()))


def _alert_words(outcomes: list[Any]) -> str:
    return ", ".join(f"{k} x{n}" for k, n in _alert_summary(outcomes).items()) or "nothing to send"
