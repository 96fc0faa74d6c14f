"""Event Grid and CloudEvents payloads -> one normalised :class:`ChangeEvent`, and its route.

Everything an event says is untrusted: it only tells ExfilGuard *where* to look. The handler
re-reads the current state from ARM and never evaluates the payload itself, because events
arrive late, out of order and more than once, and the ARN payload is a snapshot of a moment.

Two schemas reach the app. The Functions Python worker hands an Event Grid-schema event over
as ``func.EventGridEvent`` and a CloudEvents 1.0 event as ``func.CloudEvent``; tests and the
HTTP path may also pass the raw JSON object. :func:`parse` accepts all of them and raises
:class:`MalformedEvent` naming the missing or mistyped field, so the caller can audit the
event as malformed instead of failing (a failure would make Event Grid redeliver it forever).

:func:`route` then decides, without any I/O, whether the event concerns a guarded resource:
either a :class:`Route` (what to re-read) or a :class:`Drop` carrying the reason. Samples seen
in the wild have quirks this module tolerates on purpose: ``specVersion`` instead of
``specversion``, a stray space before ``/resourceGroups`` in ARN subjects, ``resourcegroups``
in lower case, and documentation placeholders such as ``{subscription-id}`` (which are not a
subscription and so are dropped with that reason).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from exfilguard.core import ids, operations
from exfilguard.core.actor import Actor
from exfilguard.core.operations import Operation

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
DELETE_SUCCESS = "Microsoft.Resources.ResourceDeleteSuccess"
ACTION_SUCCESS = "Microsoft.Resources.ResourceActionSuccess"
ARN_CREATED_OR_UPDATED = "Microsoft.ResourceNotifications.Resources.CreatedOrUpdated"
ARN_DELETED = "Microsoft.ResourceNotifications.Resources.Deleted"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"

# Event type (lowercase) -> whether it reports a deletion.
HANDLED_TYPES: dict[str, bool] = {
    WRITE_SUCCESS.lower(): False,
    DELETE_SUCCESS.lower(): True,
    ACTION_SUCCESS.lower(): False,
    ARN_CREATED_OR_UPDATED.lower(): False,
    ARN_DELETED.lower(): True,
}
_ARN_PREFIX = "microsoft.resourcenotifications."

CLAIM_OBJECT_ID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
CLAIM_UPN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
CLAIM_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# ARM names use letters, digits and a few punctuation marks. Anything else in an ID that
# arrives from outside ('%', '\\', '{', ':', quotes...) is a trick or a placeholder.
_SAFE_SEGMENT = re.compile(r"[\w\-.()]+")
MAX_ID_LENGTH = 2048


Schema = Literal["eventgrid", "cloudevents"]
# Why an event is ignored on purpose: stable words for the audit log and the metrics.
DropKind = Literal["validation", "unhandled-type", "not-succeeded", "unmapped", "bad-resource-id",
                   "foreign-subscription"]


class MalformedEvent(ValueError):
    """The payload is not an event this app can read; the message names the field."""


class UnguardedResourceId(ValueError):
    """A resource ID from outside that ExfilGuard will not act on; the message says why."""


# ---------------------------------------------------------------------------------- model
@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """An event reduced to what routing, own-write recognition and the audit log need."""

    event_id: str
    event_type: str
    schema: Schema
    subject: str
    resource_uri: str
    operation_name: str  # "" for Azure Resource Notifications, which carry none
    resource_type: str  # ARN's resourceInfo.type; "" otherwise
    correlation_id: str
    caller: Actor  # from the claims only; see who()
    time: datetime | None
    status: str
    principal_id: str = ""  # data.authorization.evidence.principalId, when present
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_arn(self) -> bool:
        return self.event_type.lower().startswith(_ARN_PREFIX)


def who(event: ChangeEvent) -> Actor:
    """Who made the change, with what the event adds to the claims: the authorization
    evidence's principal when the claims name none, the operation, the time and the IDs."""
    c = event.caller
    return Actor(name=c.name, upn=c.upn, app_id=c.app_id, object_id=c.object_id or event.principal_id,
                 operation=event.operation_name or event.event_type, event_id=event.event_id,
                 correlation_id=event.correlation_id, time=event.time)


@dataclass(frozen=True, slots=True)
class Route:
    """A guarded resource the event may have changed: re-read ``reread`` and evaluate around it."""

    event: ChangeEvent
    operation: Operation
    resource: ids.ResourceId  # what the event names
    reread: ids.ResourceId  # the resource to read back (a rule's NSG, a definition's policy)
    deleted: bool

    @property
    def reread_type(self) -> str:
        return self.operation.reread_type


@dataclass(frozen=True, slots=True)
class Drop:
    """The event is ignored on purpose; ``kind`` is stable (audit and metrics), ``reason`` is for people."""

    event: ChangeEvent
    kind: DropKind
    reason: str


# ---------------------------------------------------------------------------------- parsing
def _text(value: Any, where: str, *, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise MalformedEvent(f"event has no {where}")
        return ""
    if not isinstance(value, str):
        raise MalformedEvent(f"event {where} must be a string, got {type(value).__name__}")
    return value.strip()


def _time(value: Any, where: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise MalformedEvent(f"event {where} must be an ISO 8601 string, got {type(value).__name__}")
    text = value.strip().replace("Z", "+00:00")
    # Event Grid writes 7 fractional digits; Python reads at most 6.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEvent(f"event {where} {value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _envelope(event: Any) -> tuple[Schema, Any, Any, Any, Any, Any]:
    """(schema, type, time, id, subject, data) as the event carries them, unchecked, in either
    schema; the field names for messages follow from the schema."""
    # The SDK's event objects first: what the Event Grid trigger delivers (not Mappings).
    if not isinstance(event, dict):
        if hasattr(event, "event_type") and hasattr(event, "get_json"):  # func.EventGridEvent
            return "eventgrid", event.event_type, event.event_time, event.id, event.subject, event.get_json()
        if hasattr(event, "specversion") and hasattr(event, "get_json"):  # func.CloudEvent
            return "cloudevents", event.type, event.time, event.id, event.subject, event.get_json()
    if isinstance(event, Mapping):
        lowered = {str(k).lower(): k for k in event}
        if "specversion" in lowered:  # also the non-conformant "specVersion" of one sample
            env = {k: event[v] for k, v in lowered.items()}
            return "cloudevents", env.get("type"), env.get("time"), env.get("id"), env.get("subject"), env.get("data")
        get = event.get
        return "eventgrid", get("eventType"), get("eventTime"), get("id"), get("subject"), get("data")
    raise MalformedEvent(f"expected an Event Grid or CloudEvents event, got {type(event).__name__}")


def _claims(data: Mapping[str, Any]) -> Actor:
    claims = data.get("claims")
    if claims is None:
        return Actor()
    if not isinstance(claims, Mapping):
        raise MalformedEvent(f"event data.claims must be an object, got {type(claims).__name__}")
    return Actor(name=_claim(claims, "name", CLAIM_NAME), upn=_claim(claims, CLAIM_UPN, "upn", "unique_name"),
                 app_id=_claim(claims, "appid", "azp"), object_id=_claim(claims, "oid", CLAIM_OBJECT_ID))


def _claim(claims: Mapping[str, Any], *names: str) -> str:
    """The first of ``names`` that is a non-blank string claim, stripped."""
    for n in names:
        v = claims.get(n)
        if type(v) is str and (v := v.strip()):
            return v
    return ""


def _principal_id(data: Mapping[str, Any]) -> str:
    auth = data.get("authorization")
    if not isinstance(auth, Mapping):
        return ""
    evidence = auth.get("evidence")
    if not isinstance(evidence, Mapping):
        return ""
    value = evidence.get("principalId")
    return value.strip() if isinstance(value, str) else ""


def parse(event: Any) -> ChangeEvent:
    """Normalise one event in either schema; raises :class:`MalformedEvent` naming the problem."""
    schema, etype, when, eid, subject, data = _envelope(event)
    cloud = schema == "cloudevents"
    event_type = _text(etype, "type" if cloud else "eventType", required=True)
    time = _time(when, "time" if cloud else "eventTime")
    event_id = _text(eid, "id", required=True)
    subject = _text(subject, "subject")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise MalformedEvent(f"event data must be an object, got {type(data).__name__}")
    resource_uri = _text(data.get("resourceUri"), "data.resourceUri")
    resource_type = ""
    info = data.get("resourceInfo")
    if info is not None:
        if not isinstance(info, Mapping):
            raise MalformedEvent(f"event data.resourceInfo must be an object, got {type(info).__name__}")
        resource_uri = resource_uri or _text(info.get("id"), "data.resourceInfo.id")
        resource_type = _text(info.get("type"), "data.resourceInfo.type")
    return ChangeEvent(
        event_id=event_id, event_type=event_type, schema=schema, subject=subject, resource_uri=resource_uri or subject,
        operation_name=_text(data.get("operationName"), "data.operationName"), resource_type=resource_type,
        correlation_id=_text(data.get("correlationId"), "data.correlationId"),
        status=_text(data.get("status"), "data.status"), caller=_claims(data), time=time,
        principal_id=_principal_id(data), data=data)


# ---------------------------------------------------------------------------------- IDs
def parse_guarded_id(text: Any, subscription_id: str, *, tolerate_stray_space: bool = False) -> ids.ResourceId:
    """An ARM resource ID from outside (an event, an HTTP body) that ExfilGuard may act on.

    Stricter than :func:`exfilguard.core.ids.parse`: every segment must be a plausible ARM name
    (no ``%``-escapes, backslashes, braces or quotes), the subscription a GUID equal to the
    guarded one, and the ID must name a resource rather than a group or subscription.
    Whitespace is refused, except that events (``tolerate_stray_space``) may carry ARN's
    ``{sub} /resourceGroups`` typo and surrounding blanks.
    """
    if not isinstance(text, str):
        raise UnguardedResourceId(f"resource ID must be a string, got {_json_type(text)}")
    if len(text) > MAX_ID_LENGTH:
        raise UnguardedResourceId(f"resource ID is {len(text)} characters; ARM IDs are at most {MAX_ID_LENGTH}")
    if tolerate_stray_space:
        raw = re.sub(r" +/", "/", text.strip())
    elif re.search(r"\s", text):
        raise UnguardedResourceId(f"resource ID contains whitespace: {_short(text)}")
    elif text.endswith("/"):
        raise UnguardedResourceId(f"resource ID must not end with '/': {_short(text)}")
    else:
        raw = text
    try:
        rid = ids.parse(raw)
    except ids.BadResourceId as exc:
        raise UnguardedResourceId(str(exc)) from None
    for seg in raw.strip("/").split("/"):
        if not _SAFE_SEGMENT.fullmatch(seg) or set(seg) == {"."}:
            raise UnguardedResourceId(f"resource ID segment {seg!r} is not a valid ARM name: {_short(raw)}")
    if not _GUID.fullmatch(rid.subscription):
        raise UnguardedResourceId(f"subscription {rid.subscription!r} in {_short(raw)} is not a subscription ID")
    if rid.subscription.lower() != subscription_id.strip().lower():
        raise UnguardedResourceId(f"resource is in subscription {rid.subscription}; ExfilGuard guards "
                                  f"{subscription_id}")
    if not rid.namespace:
        raise UnguardedResourceId(f"{_short(raw)} names a subscription or resource group, not a resource")
    return rid


def _short(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------- routing
def _operation_for(event: ChangeEvent, deleted: bool) -> Operation | None:
    if event.is_arn:
        rtype = event.resource_type or (ids.type_of(re.sub(r" +/", "/", event.resource_uri)) or "")
        op = operations.RESOURCE_TYPES.get(rtype.strip().lower())
        if op is None:
            return None
        return Operation(op.name or f"{op.reread_type} ({event.event_type})", op.reread_type, op.levels_up, deleted)
    return operations.lookup(event.operation_name)


def route(event: ChangeEvent, subscription_id: str) -> Route | Drop:
    """Whether the event concerns a guarded resource type, and which resource to re-read.

    Pure and cheap: a dropped event costs no ARM call. The order of checks gives the most
    useful reason first (a validation event, then the type, then the operation, then the ID).
    """
    etype = event.event_type.lower()
    if etype == SUBSCRIPTION_VALIDATION.lower():
        return Drop(event, "validation", "subscription validation event: with an Azure Function destination "
                    "Event Grid validates the endpoint itself, so there is nothing to answer")
    if etype not in HANDLED_TYPES:
        return Drop(event, "unhandled-type", f"event type {event.event_type} is not a resource change ExfilGuard "
                    "handles")
    if event.status and event.status.lower() != "succeeded":
        return Drop(event, "not-succeeded", f"operation status is {event.status}, not Succeeded: nothing changed")
    deleted_event = HANDLED_TYPES[etype]
    op = _operation_for(event, deleted_event)
    if op is None:
        what = (f"resource type {event.resource_type or '(none)'}" if event.is_arn
                else f"operation {event.operation_name or '(none)'}")
        return Drop(event, "unmapped", f"{what} does not affect a guarded resource")
    if not event.resource_uri:
        return Drop(event, "bad-resource-id", "event names no resource (no data.resourceUri, resourceInfo.id or "
                    "subject)")
    try:
        rid = parse_guarded_id(event.resource_uri, subscription_id, tolerate_stray_space=True)
    except UnguardedResourceId as exc:
        kind: DropKind = "foreign-subscription" if "ExfilGuard guards" in str(exc) else "bad-resource-id"
        return Drop(event, kind, f"{exc}")
    try:
        reread = rid.ancestor(op.levels_up)
    except ids.BadResourceId as exc:
        return Drop(event, "bad-resource-id", f"{exc}")
    if reread.type.lower() != op.reread_type.lower():
        return Drop(event, "bad-resource-id", f"{op.name or event.event_type} names {rid}, which is not under a "
                    f"{op.reread_type}")
    deleted = (op.deleted or deleted_event) and op.levels_up == 0
    return Route(event, op, rid, reread, deleted)  # event, operation, resource, reread, deleted


def is_own_write(event: ChangeEvent, client_id: str | None, object_id: str | None) -> bool:
    """Whether ExfilGuard's own managed identity made the change (claims appid/azp, oid, or the
    authorization evidence's principalId). ARN events carry no claims and are never own writes."""
    cid = (client_id or "").strip().lower()
    oid = (object_id or "").strip().lower()
    caller = event.caller
    if cid and caller.app_id.lower() == cid:
        return True
    return bool(oid and (caller.object_id.lower() == oid or event.principal_id.lower() == oid))
