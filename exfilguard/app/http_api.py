"""HTTP re-evaluation: ``POST /api/evaluate`` and ``GET /api/evaluate/status/{id}``.

The body is validated before anything else happens, and every failure is a 4xx answer
whose message says exactly what is wrong: a caller fixing a script wants "resourceId:
subscription ... is not the guarded one", not "bad request". The endpoint acts only on the
guarded subscription, so a leaked function key cannot point ExfilGuard at anything else, and
resource IDs are checked strictly (no ``..``, ``%2f``, query strings or placeholders).

Remediation over HTTP is opt-in twice: ``"remediate": true`` in the body (the default is a
what-if: report and planned writes, no write, no alert) **and** the rule's mode (its override
or the global ``EXFILGUARD_MODE``) set to ``remediate``. Every audit row names the caller as
far as it is known (:mod:`.caller`).

A single resource is evaluated synchronously (well inside the 230 s an HTTP function may
take: the ARM client used here retries less). The whole subscription can take longer, so
it is queued and answered with 202 and a status URL to poll.

Nothing raises out of this module: an unexpected error is logged with a traceback and
answered 500, ARM failing 502, Table or queue storage failing 503.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from exfilguard.adapters import eventgrid as events
from exfilguard.adapters import telemetry
from exfilguard.adapters.state import AuditEntry
from exfilguard.app import caller as caller_mod
from exfilguard.app.answers import answered
from exfilguard.core import ids, model, types
from exfilguard.core.actor import Actor
from exfilguard.flows import actions
from exfilguard.flows.evaluate import evaluate_around
from exfilguard.flows.runtime import Services
from exfilguard.render import report

log = telemetry.get_logger("exfilguard.http")

FIELDS = ("resourceId", "scope", "remediate")
_SWEEP_ID = re.compile(r"[0-9a-f]{32}")
EVALUATED_TYPES = types.UNDERSTOOD


@dataclass(frozen=True)
class Answer:
    """An HTTP answer independent of azure.functions (function_app.py converts it)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def json_text(self) -> str:
        return json.dumps(self.body, indent=2)


class BadRequest(ValueError):
    """The request is wrong; the message is the answer's ``error``."""


def _error(status: int, message: str, **extra: Any) -> Answer:
    return Answer(status, {"error": message, **extra})


@dataclass(frozen=True)
class EvaluateRequest:
    resource_id: ids.ResourceId | None
    remediate: bool


def _reject_constant(name: str) -> Any:
    raise BadRequest(f"body is not valid JSON: {name} is not a JSON number")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise BadRequest(f"body has the key {k!r} twice")
        out[k] = v
    return out


def parse_body(body: bytes, headers: Mapping[str, str], *, max_bytes: int, subscription_id: str) -> EvaluateRequest:
    """Validate a POST /api/evaluate body; raises :class:`BadRequest` with the precise reason."""
    doc = _json_object(_text(body, headers, max_bytes))
    unknown = [k for k in doc if k not in FIELDS]
    if unknown:
        raise BadRequest(f"unknown field {_show(unknown[0])}; allowed: {', '.join(FIELDS)}")
    remediate = doc.get("remediate", False)  # a what-if unless the caller asks for fixes
    if not isinstance(remediate, bool):
        raise BadRequest(f"remediate must be true or false, got {_kind(remediate)}")
    has_id, has_scope = "resourceId" in doc, "scope" in doc
    if has_id == has_scope:
        raise BadRequest('give exactly one of resourceId (one resource) or scope: "subscription" (everything)')
    if has_scope:
        scope = doc["scope"]
        if scope != "subscription":
            raise BadRequest(f'scope must be "subscription", got {_show(scope)}')
        return EvaluateRequest(None, remediate)
    return EvaluateRequest(_resource_id(doc["resourceId"], subscription_id), remediate)


def _text(body: bytes, headers: Mapping[str, str], max_bytes: int) -> str:
    """The body as text, refused when larger than allowed (as declared or as sent) or empty."""
    declared = headers.get("content-length") or headers.get("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > max_bytes:
        raise BadRequest(f"body is {int(declared)} bytes; the limit is {max_bytes} bytes (EXFILGUARD_MAX_BODY_BYTES)")
    if len(body) > max_bytes:
        raise BadRequest(f"body is {len(body)} bytes; the limit is {max_bytes} bytes (EXFILGUARD_MAX_BODY_BYTES)")
    if not body.strip():
        raise BadRequest('body is empty; send {"resourceId": "<ARM resource ID>"} or {"scope": "subscription"}')
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not UTF-8 text (byte {exc.start})") from None


def _json_object(text: str) -> dict[str, Any]:
    """The body's JSON object: no duplicate keys, no NaN or Infinity, nothing pathological."""
    try:
        doc = json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise BadRequest("body is not acceptable JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits: any parse failure is the caller's
        raise BadRequest(f"body is not acceptable JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"body must be a JSON object such as {{\"resourceId\": \"...\"}}, got {_kind(doc)}")
    return doc


def _resource_id(value: Any, subscription_id: str) -> ids.ResourceId:
    """A resource ID in the guarded subscription, of a type ExfilGuard evaluates."""
    try:
        rid = events.parse_guarded_id(value, subscription_id)
    except events.UnguardedResourceId as exc:
        raise BadRequest(f"resourceId: {exc}") from None
    if ids.type_key(rid.type) not in EVALUATED_TYPES:
        raise BadRequest(f"resourceId: type {rid.type} is not one ExfilGuard evaluates (NSGs and their rules, "
                         "VNets and subnets, service endpoint policies and their definitions, ML workspaces, "
                         "computes and environment versions, storage accounts, route tables and routes, Azure "
                         "firewalls, firewall policies and their rule collection groups, IP groups)")
    return rid


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------------- handlers
def evaluate(body: bytes, headers: Mapping[str, str], url: str, services: Callable[[], Services]) -> Answer:
    """POST /api/evaluate. Never raises."""
    return answered("evaluate", "POST /api/evaluate", _error, lambda: _evaluate(body, headers, url, services))


def _evaluate(body: bytes, headers: Mapping[str, str], url: str, services: Callable[[], Services]) -> Answer:
    svc = services()
    try:
        request = parse_body(body, headers, max_bytes=svc.settings.max_body_bytes,
                             subscription_id=svc.settings.subscription_id)
    except BadRequest as exc:
        log.info("rejected POST /api/evaluate: %s", exc)
        return _error(400, str(exc))
    who = caller_mod.from_headers(headers, app_service_auth=svc.settings.app_service_auth)
    if request.resource_id is None:
        return _start_sweep(svc, request, url, who)
    return _evaluate_resource(svc, request, caller_mod.audit_text(who), url)


def _evaluate_resource(svc: Services, request: EvaluateRequest, requested_by: str, url: str = "") -> Answer:
    from exfilguard.adapters.arm import ArmError

    rid = request.resource_id
    assert rid is not None
    client = svc.arm_client(interactive=True)
    inv = actions.Invocation(services=svc, client=client, trigger="http", what_if=not request.remediate,
                             requested_by=requested_by)
    try:
        with telemetry.bound(trigger="http", resource=str(rid)):
            target = rid.parent if ids.type_key(rid.type) in (model.RULE, model.SEP_DEF) else rid
            assert target is not None
            around = evaluate_around(inv, ids.type_key(rid.type), str(rid),
                                     evaluate_if=lambda read: bool(read.affected) or not any(
                                         ids.key(g) == target.key for g in read.gone))
            read, evaluation, done = around.read, around.evaluation, around.done
            if evaluation is None or done is None:
                return _error(404, f"{target} does not exist")
            inv.audit("evaluated", resource_id=str(rid), findings=actions.findings_json(evaluation.findings),
                      outcome=f"{len(evaluation.open_findings)} open finding(s); what-if" if inv.what_if
                      else f"{len(evaluation.open_findings)} open finding(s)",
                      detail="; ".join(read.notes))
            extra = {
                "resourceId": str(rid),
                "evaluated": sorted(read.affected.values(), key=str.lower),
                "mode": "what-if" if inv.what_if else svc.settings.config.mode,
                "actions": done.to_json(),
                "armRequests": dict(sorted(client.counts.items())),
            }
            if not read.affected:
                extra["note"] = ("; ".join(read.notes) or
                                 "the resource is not guarded (no ML compute uses it); nothing to evaluate")
            if any(w.status == "accepted" for w in done.writes):  # ARM still finishing: answer 202 now
                from exfilguard.app.followup import accepted

                return accepted(svc, str(rid), report.to_json(evaluation, extra), url, requested_by)
            return Answer(200, report.to_json(evaluation, extra))
    except ArmError as exc:
        log.error("ARM failed while evaluating %s: %s", rid, exc)
        telemetry.failure("arm")
        return _error(502, f"Azure Resource Manager: {exc.message}", arm=exc.to_json())
    finally:
        client.close()


def _status_url(url: str, sweep_id: str) -> str:
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return f"{base}/api/evaluate/status/{sweep_id}"


def _start_sweep(svc: Services, request: EvaluateRequest, url: str, who: Actor) -> Answer:
    from exfilguard.app.sweep import claim_for_http

    record, running = claim_for_http(svc, request.remediate)
    if record is None:  # one sweep at a time: point at the one that runs
        return _error(409, f"sweep {running} is already running; poll its status URL",
                      id=running, statusUrl=_status_url(url, running))
    svc.state.enqueue_sweep({"sweepId": record.sweep_id, "whatIf": not request.remediate})
    status_url = _status_url(url, record.sweep_id)
    svc.state.audit(AuditEntry(trigger="http", decision="sweep-queued",
                                       resource_id=f"/subscriptions/{svc.settings.subscription_id}",
                                       outcome=f"sweep {record.sweep_id} queued", actor=caller_mod.audit_text(who),
                                       detail="what-if" if not request.remediate else ""))
    log.info("sweep %s queued", record.sweep_id)
    return Answer(202, {"id": record.sweep_id, "status": record.state, "statusUrl": status_url},
                  {"Location": status_url, "Retry-After": "10"})


def status(sweep_id: str, services: Callable[[], Services]) -> Answer:
    """GET /api/evaluate/status/{id}: progress while it runs, then the report. Never raises."""
    return answered("evaluation_status", "GET /api/evaluate/status", _error, lambda: _status(sweep_id, services))


def _status(sweep_id: str, services: Callable[[], Services]) -> Answer:
    if not isinstance(sweep_id, str) or not _SWEEP_ID.fullmatch(sweep_id):
        return _error(400, f"{_show(sweep_id)} is not a sweep ID (32 lowercase hex digits from the 202 answer)")
    svc = services()
    record = svc.state.get_sweep(sweep_id)
    if record is None:
        return _error(404, f"no sweep {sweep_id}")
    from exfilguard.app.sweep import check_dead

    record = check_dead(svc, record)
    body = record.to_json()
    if record.state == "succeeded":
        body["report"] = svc.state.read_report(sweep_id)
        return Answer(200, body)
    if record.state == "failed":
        return Answer(200, body)
    return Answer(202, body, {"Retry-After": "10"})
