"""``POST /api/loopguard/release``: a person says the fight is over, ExfilGuard may fix again.

When the loop guard holds a resource (another writer kept reverting every fix, even after
backing off), nothing but this call resumes automatic fixing of it: a person has found the
other writer and brought it in line. Body: ``{"resourceId": "<ARM ID>"}`` of the held
resource (the ID the escalation names). The release is audited with the caller
(:mod:`.caller`); the next event or sweep fixes the resource again. Never raises.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from exfilguard.adapters import eventgrid as events
from exfilguard.adapters import telemetry
from exfilguard.adapters.state import AuditEntry
from exfilguard.app import caller as caller_mod
from exfilguard.app.answers import answered
from exfilguard.app.http_api import Answer
from exfilguard.flows.runtime import Services

log = telemetry.get_logger("exfilguard.loopguard")


def _error(status: int, message: str) -> Answer:
    return Answer(status, {"error": message})


def release(body: bytes, headers: Mapping[str, str], services: Callable[[], Services]) -> Answer:
    return answered("loopguard_release", "POST /api/loopguard/release", _error,
                    lambda: _release(body, headers, services))


def _release(body: bytes, headers: Mapping[str, str], services: Callable[[], Services]) -> Answer:
    svc = services()
    if len(body) > svc.settings.max_body_bytes:
        return _error(400, f"body is {len(body)} bytes; the limit is {svc.settings.max_body_bytes} bytes")
    try:
        doc: Any = json.loads(body.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError) as exc:
        return _error(400, f"body is not valid JSON: {exc}")
    if not isinstance(doc, dict) or set(doc) != {"resourceId"}:
        return _error(400, 'send exactly {"resourceId": "<ARM ID of the held resource>"}')
    try:
        rid = events.parse_guarded_id(doc["resourceId"], svc.settings.subscription_id)
    except events.UnguardedResourceId as exc:
        return _error(400, f"resourceId: {exc}")
    who = caller_mod.from_headers(headers, app_service_auth=svc.settings.app_service_auth)
    before = svc.loop_guard().clear(str(rid))
    was = before.state if before is not None else "unknown"
    svc.state.audit(AuditEntry(trigger="http", decision="loop-guard-released", resource_id=str(rid),
                               actor=caller_mod.audit_text(who), outcome=f"was {was}; automatic fixing resumes",
                               detail=(f"other writer: {before.writer.person or before.writer.app_id}"
                                       if before is not None and before.writer else "")))
    log.info("loop guard released for %s (was %s) by %s", rid, was, caller_mod.audit_text(who))
    return Answer(200, {"resourceId": str(rid), "was": was, "state": "normal"})
