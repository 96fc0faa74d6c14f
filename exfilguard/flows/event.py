"""The Event Grid path: one event in, one audited decision out.

Order matters for cost: parsing and routing are pure, so an event outside the operation
table, a validation event or a malformed payload costs no ARM call (one audit row). Events
caused by ExfilGuard's own managed identity are audited as ``own-write`` and go no further:
the change they report is the fix itself, and evaluating it again could only lead to a
second write racing the first. Everything else is re-read from ARM (the payload is never
trusted), evaluated around the changed resource, and acted on (:func:`exfilguard.flows.evaluate.evaluate_around`).

Errors: a malformed or unroutable event is never raised (Event Grid would redeliver it
forever). A transient failure (ARM throttling or unreachable, storage unreachable) is
raised after it is logged, so that Event Grid retries the delivery with backoff and finally
dead-letters it, as the event subscription's retry policy says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from exfilguard.adapters import eventgrid as events
from exfilguard.adapters import telemetry
from exfilguard.adapters.state import AuditDecision, StateError
from exfilguard.flows import actions
from exfilguard.flows.evaluate import evaluate_around
from exfilguard.flows.runtime import Services

log = telemetry.get_logger("exfilguard.events")


@dataclass
class EventOutcome:
    """What the handler decided, for tests and the function's log line."""

    decision: Literal["malformed", "dropped", "own-write", "coalesced", "gone", "not-guarded", "evaluated", "error"]
    reason: str = ""
    event_id: str = ""
    findings: list[dict] = field(default_factory=list)
    actions: actions.Actions | None = None
    arm_requests: dict[str, int] = field(default_factory=dict)


class RetryableEventError(RuntimeError):
    """Raised to the host so Event Grid redelivers the event later."""


def _transient(exc: BaseException) -> bool:
    from exfilguard.adapters.arm import ArmError

    if isinstance(exc, ArmError):
        return exc.transient
    return isinstance(exc, StateError)


def handle_event(raw: Any, services: Services) -> EventOutcome:
    started = time.perf_counter()
    outcome = EventOutcome(decision="error")
    try:
        outcome = _handle(raw, services)
        return outcome
    finally:
        telemetry.event_decision(outcome.decision)
        telemetry.handler_latency("on_resource_event", (time.perf_counter() - started) * 1000, outcome.decision)


def _handle(raw: Any, services: Services) -> EventOutcome:
    state = services.state
    settings = services.settings
    try:
        event = events.parse(raw)
    except events.MalformedEvent as exc:
        event_id = _loose_id(raw)
        log.warning("malformed event %s: %s", event_id or "(no id)", exc)
        state.audit(_malformed_entry(event_id, str(exc)))
        return EventOutcome(decision="malformed", reason=str(exc), event_id=event_id)

    with telemetry.bound(event_id=event.event_id, correlation_id=event.correlation_id):
        routed = events.route(event, settings.subscription_id)
        if isinstance(routed, events.Drop):
            log.info("dropped %s: %s", event.event_type, routed.reason)
            state.audit(_entry(event, "dropped", outcome=routed.kind, detail=routed.reason,
                               resource_id=event.resource_uri))
            return EventOutcome(decision="dropped", reason=f"{routed.kind}: {routed.reason}", event_id=event.event_id)
        if events.is_own_write(event, settings.identity_client_id, settings.identity_object_id):
            log.info("own write %s on %s: not evaluated again", event.operation_name, routed.resource)
            state.audit(_entry(event, "own-write", resource_id=str(routed.resource),
                               detail="the change is ExfilGuard's own fix; no re-evaluation, no second write"))
            return EventOutcome(decision="own-write", event_id=event.event_id)
        return _coalesced(event, routed, services)


def _coalesced(event: events.ChangeEvent, routed: events.Route, services: Services) -> EventOutcome:
    """Join the event to its closure's storm (:mod:`exfilguard.adapters.coalesce`): evaluate when this
    invocation owns the closure (as often as changes keep coming), else count it and return."""
    from exfilguard.adapters import coalesce

    cfg = services.settings.coalesce
    if not cfg.enabled:
        return _evaluate(event, routed, services)
    coalescer = coalesce.Coalescer(services.state, cfg)
    turn = coalescer.join(str(routed.reread), event)
    if turn is None:
        log.info("coalesced %s on %s: another invocation evaluates the closure", event.event_id, routed.reread)
        services.state.audit(_entry(event, "coalesced", resource_id=str(routed.reread),
                                    detail="joined a storm of changes to this resource; evaluated once by the "
                                           "invocation that owns it, with the last writer's identity"))
        return EventOutcome(decision="coalesced", event_id=event.event_id)
    outcome = EventOutcome(decision="error", event_id=event.event_id)
    while True:
        turn.wait_for_quiet()
        outcome = _evaluate(turn.latest_event(), routed, services)
        if not turn.finish():
            return outcome


def _evaluate(event: events.ChangeEvent, routed: events.Route, services: Services) -> EventOutcome:
    from exfilguard.adapters.arm import ArmError

    client = services.arm_client()
    inv = actions.Invocation(services=services, client=client, trigger="event", event=event)
    try:
        around = evaluate_around(inv, routed.reread_type, str(routed.reread), deleted=routed.deleted)
        read, evaluation, done = around.read, around.evaluation, around.done
        if evaluation is None or done is None:
            detail = "; ".join(read.notes) or "no guarded resource is affected"
            log.info("nothing to evaluate for %s: %s", routed.reread, detail)
            inv.audit("gone" if read.gone else "not-guarded", resource_id=str(routed.reread), detail=detail,
                      outcome=_requests(client))
            return EventOutcome(decision="gone" if read.gone else "not-guarded", reason=detail,
                                event_id=event.event_id, arm_requests=dict(client.counts))
        found = list(actions.findings_json(evaluation.findings))
        inv.audit("evaluated", resource_id=str(routed.reread), findings=tuple(found),
                  outcome=f"{len(evaluation.open_findings)} open finding(s); {_writes_words(done)}; "
                          f"{_requests(client)}",
                  detail="; ".join([*read.notes, *(n.message for n in evaluation.notices)]))
        log.info("evaluated %s: %d open finding(s), %s (%s)", routed.reread, len(evaluation.open_findings),
                 _writes_words(done), _requests(client))
        return EventOutcome(decision="evaluated", event_id=event.event_id, findings=found, actions=done,
                            arm_requests=dict(client.counts))
    except Exception as exc:
        known = isinstance(exc, ArmError | StateError)
        if known:
            log.error("handling %s failed: %s", routed.reread, exc)
        else:
            log.exception("handling %s failed", routed.reread)
        telemetry.failure("event")
        try:
            inv.audit("error", resource_id=str(routed.reread), outcome=_requests(client),
                      detail=str(exc) if known else f"{type(exc).__name__}: {exc}")
        except StateError as audit_exc:
            log.error("could not audit the failure either: %s", audit_exc)
        if _transient(exc):
            raise RetryableEventError(f"event {event.event_id}: {exc} (Event Grid will redeliver it)") from exc
        if not known:
            raise  # a bug: let the host record it and Event Grid retry, then dead-letter the event
        return EventOutcome(decision="error", reason=str(exc), event_id=event.event_id,
                            arm_requests=dict(client.counts))
    finally:
        client.close()


def _writes_words(done: actions.Actions) -> str:
    counts: dict[str, int] = {}
    for w in done.writes:
        counts[w.status] = counts.get(w.status, 0) + 1
    parts = [f"{n} {s}" for s, n in sorted(counts.items())]
    if done.blocked:
        parts.append(f"{len(done.blocked)} blocked by the loop guard")
    return ", ".join(parts) or "no fix"


def _requests(client: Any) -> str:
    counts = dict(client.counts)
    return "ARM " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")


def _entry(event: events.ChangeEvent, decision: AuditDecision, **fields: Any) -> Any:
    from exfilguard.adapters.state import AuditEntry

    return AuditEntry(trigger="event", decision=decision, event_id=event.event_id,
                      correlation_id=event.correlation_id, event_type=event.event_type,
                      operation=event.operation_name or event.resource_type, actor=event.caller.handle, **fields)


def _malformed_entry(event_id: str, reason: str) -> Any:
    from exfilguard.adapters.state import AuditEntry

    return AuditEntry(trigger="event", decision="malformed", event_id=event_id, detail=reason)


def _loose_id(raw: Any) -> str:
    """The event ID of a payload that did not parse, when one can be seen at all."""
    value = raw.get("id") if isinstance(raw, dict) else getattr(raw, "id", None)
    return value.strip()[:256] if isinstance(value, str) else ""

