"""Event parsing and routing (pure): both schemas, the published samples' quirks, the operation
table, own-write recognition and the strict resource-ID check shared with the HTTP endpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exfilguard.adapters import eventgrid as events
from exfilguard.core import ids, operations
from exfilguard.core.actor import Actor
from tests.function_support import (
    EVENTGRID_FIXTURES,
    MALLORY,
    NSG_WEU,
    OWN_CLIENT_ID,
    OWN_OBJECT_ID,
    SUB,
    as_delivered,
    resource_event,
)


def fixture(name: str) -> dict:
    doc = json.loads((EVENTGRID_FIXTURES / name).read_text())
    return doc[0] if isinstance(doc, list) else doc


# ---------------------------------------------------------------------------------- parsing
def test_event_grid_sample_normalises_every_field():
    e = events.parse(fixture("spec_ResourceWriteSuccess.eventgrid-schema.json"))
    assert e.schema == "eventgrid"
    assert e.event_id == "4db48cba-50a2-455a-93b4-de41a3b5b7f6"
    assert e.event_type == events.WRITE_SUCCESS
    assert e.operation_name == "Microsoft.Storage/storageAccounts/write"
    assert e.resource_uri.endswith("/storageAccounts/{storage-name}")
    assert e.correlation_id == "{ID}"
    assert e.caller.name == "{full-name}" and e.caller.upn == "{user-name}"
    assert e.caller.app_id == "{ID}" and e.caller.object_id == "{ID}"
    assert e.status == "Succeeded"
    assert e.time == datetime(2018, 7, 19, 18, 38, 4, 611735, tzinfo=UTC)


def test_cloudevents_sample_and_its_event_grid_twin_parse_alike():
    grid = events.parse(fixture("spec_ResourceWriteSuccess.eventgrid-schema.json"))
    cloud = events.parse(fixture("spec_ResourceWriteSuccess.cloudevents-schema.json"))
    assert cloud.schema == "cloudevents"
    for attr in ("event_id", "event_type", "operation_name", "resource_uri", "correlation_id", "caller", "time",
                 "status"):
        assert getattr(cloud, attr) == getattr(grid, attr), attr


def test_non_conformant_specVersion_is_still_read_as_cloudevents():
    e = events.parse(fixture("spec_ResourceDeleteSuccess.cloudevents-schema.json"))
    assert e.schema == "cloudevents"
    assert e.event_type == events.DELETE_SUCCESS


def test_worker_objects_parse_like_the_raw_json():
    for name in ("spec_ResourceWriteSuccess.eventgrid-schema.json", "spec_ResourceWriteSuccess.cloudevents-schema.json",
                 "spec_ResourceNotifications_Deleted.cloudevents-schema.json"):
        raw = fixture(name)
        assert events.parse(as_delivered(raw)) == events.parse(raw), name


def test_arn_events_take_the_resource_from_resource_info_and_have_no_caller():
    e = events.parse(fixture("spec_ResourceNotifications_CreatedOrUpdated.eventgrid-schema.json"))
    assert e.is_arn
    assert e.resource_type == "Microsoft.Storage/storageAccounts"
    assert e.resource_uri.startswith("/subscriptions/{subcription-id} /resourceGroups")
    assert e.caller == Actor() and e.operation_name == ""


@pytest.mark.parametrize(("raw", "message"), [
    ({"eventType": events.WRITE_SUCCESS, "data": {}}, "event has no id"),
    ({"id": "a", "data": {}}, "event has no eventType"),
    ({"id": "a", "eventType": events.WRITE_SUCCESS, "eventTime": "yesterday"}, "event eventTime 'yesterday' is not"),
    ({"id": "a", "eventType": events.WRITE_SUCCESS, "eventTime": 5}, "event eventTime must be an ISO 8601 string"),
    ({"id": "a", "eventType": events.WRITE_SUCCESS, "data": []}, "event data must be an object, got list"),
    ({"id": "a", "eventType": events.WRITE_SUCCESS, "data": {"operationName": 3}},
     "event data.operationName must be a string, got int"),
    ({"specversion": "1.0", "id": "a", "data": {}}, "event has no type"),
    (["not", "an", "object"], "expected an Event Grid or CloudEvents event, got list"),
    ("text", "expected an Event Grid or CloudEvents event, got str"),
])
def test_malformed_payloads_name_the_problem(raw, message):
    with pytest.raises(events.MalformedEvent, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        events.parse(raw)


# ---------------------------------------------------------------------------------- routing
def _resource_id_for(op: operations.Operation) -> str:
    """An ARM ID of the resource an operation acts on, e.g. a security rule for securityRules/write."""
    parts = op.name.split("/")
    namespace, rest = parts[0], parts[1:-1]
    if op.name.endswith("/action"):
        rest = rest[:-1]
    out = f"/subscriptions/{SUB}/resourceGroups/rg-x/providers/{namespace}"
    for i, t in enumerate(rest):
        out += f"/{t}/n{i}"
    return out


@pytest.mark.parametrize("op", operations._TABLE, ids=lambda o: o.name)
def test_every_mapped_operation_routes_to_its_reread_type(op):
    rid = _resource_id_for(op)
    etype = events.DELETE_SUCCESS if op.name.endswith("/delete") else (
        events.ACTION_SUCCESS if op.name.endswith("/action") else events.WRITE_SUCCESS)
    routed = events.route(events.parse(resource_event(op.name, rid, event_type=etype)), SUB)
    assert isinstance(routed, events.Route), routed
    assert routed.reread.type.lower() == op.reread_type.lower()
    assert routed.reread.key == ids.parse(rid).ancestor(op.levels_up).key
    assert routed.deleted == (op.deleted and op.levels_up == 0)


def test_subject_casing_and_operation_casing_do_not_matter():
    body = resource_event("MICROSOFT.NETWORK/networksecuritygroups/SECURITYRULES/WRITE",
                          NSG_WEU.replace("resourceGroups", "resourcegroups") + "/securityRules/r1")
    routed = events.route(events.parse(body), SUB.upper())
    assert isinstance(routed, events.Route)
    assert routed.reread.key == ids.key(NSG_WEU)


def test_arn_event_with_a_stray_space_routes_by_resource_type():
    body = fixture("spec_ResourceNotifications_CreatedOrUpdated.eventgrid-schema.json")
    body = json.loads(json.dumps(body).replace("{subcription-id}", SUB).replace("{subscription-id}", SUB))
    body["data"]["resourceInfo"]["type"] = "Microsoft.Network/networkSecurityGroups/securityRules"
    body["data"]["resourceInfo"]["id"] = NSG_WEU.replace("/resourceGroups", " /resourceGroups") + "/securityRules/r1"
    routed = events.route(events.parse(body), SUB)
    assert isinstance(routed, events.Route), routed
    assert routed.reread.key == ids.key(NSG_WEU) and not routed.deleted


def test_arn_deleted_event_marks_the_resource_deleted():
    body = fixture("spec_ResourceNotifications_Deleted.eventgrid-schema.json")
    body["data"]["resourceInfo"] = {"id": NSG_WEU, "type": "Microsoft.Network/networkSecurityGroups"}
    routed = events.route(events.parse(body), SUB)
    assert isinstance(routed, events.Route) and routed.deleted


@pytest.mark.parametrize(("name", "kind"), [
    ("docs_SubscriptionValidationEvent.eventgrid-schema.json", "validation"),
    ("spec_ResourceWriteSuccess.eventgrid-schema.json", "unmapped"),
    ("spec_ResourceActionSuccess.cloudevents-schema.json", "unmapped"),
    ("spec_ResourceNotifications_CreatedOrUpdated.cloudevents-schema.json", "bad-resource-id"),
    ("docs_ResourceNotifications_CreatedOrUpdated.eventgrid-schema.json", "bad-resource-id"),
])
def test_samples_are_dropped_with_a_reason(name, kind):
    routed = events.route(events.parse(fixture(name)), SUB)
    assert isinstance(routed, events.Drop)
    assert routed.kind == kind and routed.reason


def test_other_subscription_failed_operation_and_unknown_event_type_are_dropped():
    foreign = resource_event(operations.MAPPED_OPERATION_NAMES[0],
                             NSG_WEU.replace(SUB, "11111111-2222-4333-8444-555555555555"))
    assert events.route(events.parse(foreign), SUB).kind == "foreign-subscription"
    failed = resource_event(operations.MAPPED_OPERATION_NAMES[0], NSG_WEU)
    failed["data"]["status"] = "Failed"
    assert events.route(events.parse(failed), SUB).kind == "not-succeeded"
    other = resource_event(operations.MAPPED_OPERATION_NAMES[0], NSG_WEU,
                           event_type="Microsoft.Resources.ResourceWriteFailure")
    assert events.route(events.parse(other), SUB).kind == "unhandled-type"


def test_operation_on_a_resource_of_another_type_is_dropped():
    body = resource_event("Microsoft.Network/networkSecurityGroups/securityRules/write",
                          f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/s")
    routed = events.route(events.parse(body), SUB)
    assert isinstance(routed, events.Drop) and routed.kind == "bad-resource-id"


# ---------------------------------------------------------------------------------- own writes
@pytest.mark.parametrize("claims", [
    {"appid": OWN_CLIENT_ID},
    {"azp": OWN_CLIENT_ID.upper()},
    {"oid": OWN_OBJECT_ID},
    {"http://schemas.microsoft.com/identity/claims/objectidentifier": OWN_OBJECT_ID},
])
def test_own_identity_is_recognised_from_any_of_its_claims(claims):
    body = resource_event(operations.MAPPED_OPERATION_NAMES[0], NSG_WEU)
    body["data"]["claims"] = claims
    body["data"]["authorization"]["evidence"]["principalId"] = "someone-else"
    assert events.is_own_write(events.parse(body), OWN_CLIENT_ID, OWN_OBJECT_ID)


def test_own_identity_is_recognised_from_the_authorization_evidence():
    body = resource_event(operations.MAPPED_OPERATION_NAMES[0], NSG_WEU)
    body["data"]["claims"] = {}
    body["data"]["authorization"]["evidence"]["principalId"] = OWN_OBJECT_ID
    assert events.is_own_write(events.parse(body), OWN_CLIENT_ID, OWN_OBJECT_ID)


def test_who_adds_the_event_to_the_claims():
    body = resource_event(operations.MAPPED_OPERATION_NAMES[0], NSG_WEU)
    who = events.who(events.parse(body))
    assert who.person == f"{MALLORY['name']} ({MALLORY['upn']})" and who.handle == who.person
    assert (who.operation, who.event_id, who.correlation_id) == (
        operations.MAPPED_OPERATION_NAMES[0], body["id"], body["data"]["correlationId"])
    assert who.time is not None
    body["data"]["claims"] = {"appid": "app-7"}
    body["data"]["authorization"]["evidence"]["principalId"] = "oid-9"
    app = events.who(events.parse(body))
    assert (app.person, app.handle, app.object_id) == ("", "app app-7", "oid-9")


def test_other_callers_and_unconfigured_identity_are_not_own_writes():
    e = events.parse(resource_event(operations.MAPPED_OPERATION_NAMES[0], NSG_WEU))
    assert e.caller.upn == MALLORY["upn"]
    assert not events.is_own_write(e, OWN_CLIENT_ID, OWN_OBJECT_ID)
    assert not events.is_own_write(e, None, None)
    arn = events.parse(fixture("spec_ResourceNotifications_Deleted.eventgrid-schema.json"))
    assert not events.is_own_write(arn, OWN_CLIENT_ID, OWN_OBJECT_ID)


def test_func_event_grid_event_objects_are_accepted():
    body = resource_event(operations.MAPPED_OPERATION_NAMES[0], NSG_WEU)
    obj = func.EventGridEvent(id=body["id"], data=body["data"], topic=body["topic"], subject=body["subject"],
                              event_type=body["eventType"], event_time=datetime.now(UTC), data_version="2")
    assert events.parse(obj).operation_name == operations.MAPPED_OPERATION_NAMES[0]


# ---------------------------------------------------------------------------------- strict IDs
def test_guarded_id_accepts_a_plain_id_in_any_case():
    rid = events.parse_guarded_id(NSG_WEU.upper().replace(SUB.upper(), SUB), SUB)
    assert rid.key == ids.key(NSG_WEU)


@pytest.mark.parametrize(("bad", "why"), [
    (NSG_WEU + "/../../virtualNetworks/v", "invalid segment '..'"),
    (NSG_WEU.replace("nsg-ml", "nsg%2f..%2fml"), "is not a valid ARM name"),
    (NSG_WEU + "?api-version=1", "invalid segment"),
    (NSG_WEU + "#frag", "invalid segment"),
    (NSG_WEU.replace("/providers", "//providers"), "empty segment"),
    (NSG_WEU.replace("nsg-ml", "nsg\\ml"), "is not a valid ARM name"),
    (NSG_WEU.replace(SUB, "{subscription-id}"), "is not a valid ARM name"),
    (NSG_WEU.replace(SUB, "not-a-guid"), "is not a subscription ID"),
    (NSG_WEU.replace(SUB, "11111111-2222-4333-8444-555555555555"), "ExfilGuard guards"),
    (f"/subscriptions/{SUB}/resourceGroups/rg", "not a resource"),
    ("subscriptions/x", "must start with"),
    ("/" + "a" * 3000, "characters"),
    (17, "must be a string, got a number"),
    (None, "must be a string, got null"),
])
def test_guarded_id_rejects_tricks_with_the_reason(bad, why):
    with pytest.raises(events.UnguardedResourceId, match=why.replace("?", r"\?").replace("(", r"\(")):
        events.parse_guarded_id(bad, SUB)


_NASTY = st.sampled_from(["..", ".", "%2e%2e", "%2F", "a?b", "a#b", "a\\b", "a b", "{x}", "a:b", "'", '"', "<a>",
                          "a\n", "\x00", "a%00", "*"])


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=1, max_value=8), nasty=_NASTY)
def test_any_id_with_a_nasty_segment_is_rejected(position, nasty):
    parts = NSG_WEU.split("/")
    index = min(position, len(parts) - 1)
    parts[index] = nasty
    with pytest.raises(events.UnguardedResourceId):
        events.parse_guarded_id("/".join(parts), SUB)
