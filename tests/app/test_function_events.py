"""The Event Grid trigger end to end: real samples, the ARM emulator and Azurite.

Every sample in tests/data/azure/eventgrid/ is delivered the way the Python worker
delivers it and is either mapped or dropped on purpose, with a reason in the audit log and no
exception. A drift event is fixed within the read budget and audited; the event that the fix
itself causes is recognised as ExfilGuard's own; a resource someone keeps reverting gets at
most N writes and one escalation naming them; an irrelevant event costs no ARM request.
"""

from __future__ import annotations

import copy
import json

import azure.functions as func
import pytest

from exfilguard.core import ids
from tests import factory
from tests.function_support import (
    EVENTGRID_FIXTURES,
    MALLORY,
    NSG_WEU,
    OWN,
    SUB,
    VNET_WEU,
    WS_WEU,
    as_delivered,
    drift,
    keep_reverting,
    resource_event,
    running_app,
    sample,
)

RULE_OP = "Microsoft.Network/networkSecurityGroups/securityRules/write"
DENY_RULE = "exfilguard-deny-internet-outbound"

# What each published sample must come to, by file. A new sample fails the test until it is
# given an expectation here: "mapped or dropped on purpose" is a decision, not a default.
EXPECTED = {
    "arm_EventSubscriptions_CreateOrUpdateForSubscription.json": ("malformed", "no eventType"),
    "docs_ARN_SystemTopicsSubscriber_role_definition.json": ("malformed", "no eventType"),
    "docs_ResourceNotifications_CreatedOrUpdated.cloudevents-schema.json": ("dropped", "bad-resource-id"),
    "docs_ResourceNotifications_CreatedOrUpdated.eventgrid-schema.json": ("dropped", "bad-resource-id"),
    "docs_SubscriptionValidationEvent.eventgrid-schema.json": ("dropped", "validation"),
    # Route-table and firewall writes (hand-written samples): mapped (tests/app/test_firewall_events.py
    # delivers them with real IDs), then dropped here for their {subscription-id} placeholder.
    "handmade_ResourceWriteSuccess_azureFirewalls.eventgrid-schema.json": ("dropped", "bad-resource-id"),
    "handmade_ResourceWriteSuccess_firewallPolicies_ruleCollectionGroups.eventgrid-schema.json": (
        "dropped", "bad-resource-id"),
    "handmade_ResourceWriteSuccess_routeTables.eventgrid-schema.json": ("dropped", "bad-resource-id"),
    "handmade_ResourceWriteSuccess_routeTables_routes.eventgrid-schema.json": ("dropped", "bad-resource-id"),
    "docs_SubscriptionValidationResponse.json": ("malformed", "no eventType"),
    "docs_subscription_ResourceActionSuccess.eventgrid-schema.json": ("dropped", "unmapped"),
    "docs_subscription_ResourceDeleteSuccess.eventgrid-schema.json": ("dropped", "unmapped"),
    "docs_subscription_ResourceWriteSuccess.eventgrid-schema.json": ("dropped", "unmapped"),
    "spec_ResourceActionSuccess.cloudevents-schema.json": ("dropped", "unmapped"),
    "spec_ResourceActionSuccess.eventgrid-schema.json": ("dropped", "unmapped"),
    # Upstream writes "specVersion"; the worker recognises CloudEvents only by "specversion" and
    # hands over an Event Grid event without a type, which is audited as malformed.
    "spec_ResourceDeleteSuccess.cloudevents-schema.json": ("malformed", "no eventType"),
    "spec_ResourceDeleteSuccess.eventgrid-schema.json": ("dropped", "unmapped"),
    "spec_ResourceNotifications_CreatedOrUpdated.cloudevents-schema.json": ("dropped", "bad-resource-id"),
    "spec_ResourceNotifications_CreatedOrUpdated.eventgrid-schema.json": ("dropped", "bad-resource-id"),
    "spec_ResourceNotifications_Deleted.cloudevents-schema.json": ("dropped", "bad-resource-id"),
    "spec_ResourceNotifications_Deleted.eventgrid-schema.json": ("dropped", "bad-resource-id"),
    "spec_ResourceWriteSuccess.cloudevents-schema.json": ("dropped", "unmapped"),
    "spec_ResourceWriteSuccess.eventgrid-schema.json": ("dropped", "unmapped"),
}


def _events_of(path) -> list[dict]:
    doc = json.loads(path.read_text())
    return doc if isinstance(doc, list) else [doc]


def test_every_published_sample_is_mapped_or_dropped_on_purpose(monkeypatch):
    assert EVENTGRID_FIXTURES.is_dir(), f"{EVENTGRID_FIXTURES}: the Event Grid samples are missing"
    files = sorted(p.name for p in EVENTGRID_FIXTURES.glob("*.json"))
    assert files == sorted(EXPECTED), "a sample was added or removed: give it an expectation"
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        for name in files:
            for body in _events_of(EVENTGRID_FIXTURES / name):
                app.deliver(body)  # raises on any error
        rows = app.audit()
        assert app.emulator.log == [], "no sample may cost an ARM request"
    decided = {}
    for name in files:
        for body in _events_of(EVENTGRID_FIXTURES / name):
            event_id = body.get("id") if isinstance(body.get("id"), str) else ""
            mine = [r for r in rows if r.event_id == event_id.strip()]
            assert mine, f"{name}: no audit row"
            decided[name] = mine
    for name, (decision, reason) in EXPECTED.items():
        got = decided[name]
        assert any(r.decision == decision and (reason in r.outcome or reason in r.detail) for r in got), \
            f"{name}: expected {decision} ({reason}), audited {[(r.decision, r.outcome, r.detail) for r in got]}"


def _prime_index(app) -> None:
    """A sweep fills the compute index (as the nightly timer does); nothing to fix yet."""
    app.timer()
    assert app.emulator.writes() == []
    app.emulator.reset_log()


def test_drift_is_fixed_within_the_read_budget_audited_and_own_event_ignored(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        drift(app)
        event = resource_event("Microsoft.Network/networkSecurityGroups/securityRules/delete",
                               f"{NSG_WEU}/securityRules/deny-internet-out",
                               event_type="Microsoft.Resources.ResourceDeleteSuccess")
        app.deliver(event)

        reads = app.emulator.records(kind="read")
        writes = app.emulator.writes()
        assert [r.path.rsplit("/", 1)[-1] for r in reads] == ["nsg-ml-westeurope", "vnet-ml-westeurope",
                                                              "ci-westeurope"], [r.path for r in reads]
        assert len(writes) == 1 and writes[0].method == "PUT" and ids.key(writes[0].path) == ids.key(NSG_WEU)
        assert writes[0].if_match, "the fix must be a conditional write"
        fixed = app.emulator.get_body(NSG_WEU)
        assert DENY_RULE in {r["name"] for r in fixed["properties"]["securityRules"]}

        rows = app.audit(event["id"])
        decisions = [r.decision for r in rows]
        assert "fixed" in decisions and "evaluated" in decisions, decisions
        evaluated = next(r for r in rows if r.decision == "evaluated")
        assert {"ruleId": "EXF-NSG-01", "resourceId": NSG_WEU} in [
            {k: f[k] for k in ("ruleId", "resourceId")} for f in evaluated.findings]
        assert evaluated.correlation_id == event["data"]["correlationId"]
        assert evaluated.actor == f"{MALLORY['name']} ({MALLORY['upn']})"

        # The fix raises its own event, with ExfilGuard's identity in the claims.
        app.emulator.reset_log()
        own = resource_event("Microsoft.Network/networkSecurityGroups/write", NSG_WEU, who=OWN)
        app.deliver(own)
        assert app.emulator.log == [], "an own-write event must cost nothing and write nothing"
        assert [r.decision for r in app.audit(own["id"])] == ["own-write"]


def test_a_second_drift_is_fixed_again(monkeypatch):
    """The same process handles a second drift of the same NSG as the first: read afresh, fixed again."""
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        for n in (1, 2):
            drift(app)
            app.deliver(resource_event(RULE_OP, f"{NSG_WEU}/securityRules/deny-internet-out"))
            fixed = app.emulator.get_body(NSG_WEU)
            assert DENY_RULE in {r["name"] for r in fixed["properties"]["securityRules"]}, n
            assert len(app.emulator.writes()) == n
            _restore_without_the_fix(app)


def _restore_without_the_fix(app) -> None:
    body = app.emulator.get_body(NSG_WEU)
    body["properties"]["securityRules"] = [r for r in body["properties"]["securityRules"] if r["name"] != DENY_RULE]
    body["properties"].pop("defaultSecurityRules", None)
    app.emulator.set_body(NSG_WEU, body)


def test_event_delivered_as_cloudevent_is_handled_the_same(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        drift(app)
        eg = resource_event(RULE_OP, f"{NSG_WEU}/securityRules/allow-storage-any-region")
        cloud = {"specversion": "1.0", "id": eg["id"], "source": eg["topic"], "subject": eg["subject"],
                 "type": eg["eventType"], "time": eg["eventTime"], "data": eg["data"]}
        delivered = as_delivered(cloud)
        assert type(delivered).__name__ == "CloudEvent"
        app.deliver(cloud)
        assert len(app.emulator.writes()) == 1
        assert "fixed" in [r.decision for r in app.audit(eg["id"])]


def test_loop_guard_allows_n_writes_then_backs_off_once_naming_the_other_writer(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        drift(app)
        keep_reverting(app)  # a pipeline puts its version back after every ExfilGuard write
        for _ in range(6):
            app.deliver(resource_event(RULE_OP, f"{NSG_WEU}/securityRules/allow-storage-any-region"))
            app.deliver(resource_event("Microsoft.Network/networkSecurityGroups/write", NSG_WEU, who=OWN))

        puts = [w for w in app.emulator.writes() if ids.key(w.path) == ids.key(NSG_WEU)]
        assert len(puts) == 3, f"expected exactly N=3 writes, got {len(puts)}"
        escalations = app.escalations()
        assert len(escalations) == 1, f"expected one escalation, got {len(escalations)}"
        assert app.escalations("backing-off") == escalations
        assert MALLORY["upn"] in json.dumps(escalations[0])
        rows = app.audit()
        assert [r.decision for r in rows].count("backing-off") == 1
        assert [r.decision for r in rows].count("loop-guard") == 3
        record = app.services.loop_guard().status(NSG_WEU)
        assert len(record.writes) == 3 and record.state == "backing-off"
        assert record.writer.person.endswith(f"({MALLORY['upn']})")


def test_loop_guard_limit_comes_from_the_settings(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json"), EXFILGUARD_LOOP_MAX_WRITES="1") as app:
        _prime_index(app)
        drift(app)
        drifted = app.emulator.get_body(NSG_WEU)
        app.emulator.on_write(lambda rid, body: app.emulator.set_body(NSG_WEU, copy.deepcopy(drifted))
                              if body is not None else None)
        for _ in range(3):
            app.deliver(resource_event(RULE_OP, f"{NSG_WEU}/securityRules/x"))
        assert len(app.emulator.writes()) == 1
        assert len(app.escalations()) == 1


def test_irrelevant_events_make_no_arm_request(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        rg = "rg-ml-weu"
        storage = factory.storage_id(rg, "stmlwesteu10")
        events = [
            resource_event("Microsoft.Storage/storageAccounts/write", storage),
            resource_event("Microsoft.Compute/virtualMachines/write",
                           f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/vm1"),
            resource_event("Microsoft.Network/networkSecurityGroups/join/action", NSG_WEU,
                           event_type="Microsoft.Resources.ResourceActionSuccess"),
            # a mapped operation, but in another subscription
            resource_event(RULE_OP, NSG_WEU.replace(SUB, "11111111-2222-4333-8444-555555555555") + "/securityRules/a"),
        ]
        for e in events:
            app.deliver(e)
        assert app.emulator.log == []
        assert [r.decision for r in app.audit()].count("dropped") == len(events)


def test_first_event_with_an_empty_index_lists_computes_once_and_remembers_them(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        drift(app)
        app.deliver(resource_event(RULE_OP, f"{NSG_WEU}/securityRules/x"))
        lists = [r for r in app.emulator.records(kind="read") if r.path.lower().endswith(("/workspaces", "/computes"))]
        assert lists, "an empty index must be filled by listing the computes"
        assert len(app.emulator.writes()) == 1
        assert app.state.index_populated()
        app.emulator.reset_log()
        drift(app)
        app.deliver(resource_event(RULE_OP, f"{NSG_WEU}/securityRules/x"))
        assert len(app.emulator.records(kind="read")) == 3


def test_compute_events_keep_the_index_current(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        subnet = f"{VNET_WEU}/subnets/snet-training"
        new = factory.compute(WS_WEU, "ci-newcomer", "westeurope", subnet=subnet)
        app.emulator.set_body(new["id"], new)
        app.deliver(resource_event("Microsoft.MachineLearningServices/workspaces/computes/write", new["id"]))
        on_subnet = app.state.computes_on([subnet])[ids.key(subnet)]
        assert ids.key(new["id"]) in {ids.key(c.compute_id) for c in on_subnet}
        app.emulator.delete_resource(new["id"])
        app.deliver(resource_event("Microsoft.MachineLearningServices/workspaces/computes/delete", new["id"],
                                   event_type="Microsoft.Resources.ResourceDeleteSuccess"))
        on_subnet = app.state.computes_on([subnet])[ids.key(subnet)]
        assert ids.key(new["id"]) not in {ids.key(c.compute_id) for c in on_subnet}


def _grid_event(**overrides) -> func.EventGridEvent:
    fields = {"id": "evt-1", "data": {}, "topic": f"/subscriptions/{SUB}", "subject": NSG_WEU,
              "event_type": "Microsoft.Resources.ResourceWriteSuccess", "event_time": None, "data_version": "2"}
    fields.update(overrides)
    return func.EventGridEvent(**fields)


@pytest.mark.parametrize(("event", "reason"), [
    (_grid_event(data="not an object"), "event data must be an object, got str"),
    (_grid_event(event_type=None), "event has no eventType"),
    (_grid_event(event_type=42), "event eventType must be a string, got int"),
    (_grid_event(id=None), "event has no id"),
    (_grid_event(data={"claims": ["a"]}), "event data.claims must be an object, got list"),
    (_grid_event(data={"resourceInfo": "x"}), "event data.resourceInfo must be an object, got str"),
    (_grid_event(data={"operationName": RULE_OP, "resourceUri": 7}), "event data.resourceUri must be a string"),
])
def test_malformed_events_are_audited_not_raised(monkeypatch, event, reason):
    with running_app(monkeypatch) as app:
        app.fns["on_resource_event"](event)
        rows = app.audit()
        assert [r.decision for r in rows] == ["malformed"]
        assert reason in rows[0].detail
        assert app.emulator.log == []


def test_transient_arm_failure_is_raised_so_event_grid_redelivers(monkeypatch):
    from exfilguard.flows.event import RetryableEventError

    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        app.emulator.add_fault(503, method="GET", path="nsg-ml-westeurope", retry_after=0.01)
        event = resource_event(RULE_OP, f"{NSG_WEU}/securityRules/x")
        with pytest.raises(RetryableEventError, match="Event Grid will redeliver"):
            app.deliver(event)
        rows = app.audit(event["id"])
        assert [r.decision for r in rows] == ["error"] and "503" in rows[0].detail
        assert app.emulator.writes() == []


def test_arn_event_for_a_guarded_nsg_is_evaluated_like_a_resources_event(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        drift(app)
        arn = json.loads((EVENTGRID_FIXTURES / "spec_ResourceNotifications_CreatedOrUpdated.cloudevents-schema.json")
                         .read_text())
        arn["id"] = "arn-nsg-1"
        arn["subject"] = NSG_WEU
        arn["data"]["resourceInfo"] = {"id": NSG_WEU.replace("/resourceGroups", " /resourceGroups"),
                                       "type": "Microsoft.Network/networkSecurityGroups", "properties": {}}
        app.deliver(arn)
        assert "fixed" in [r.decision for r in app.audit("arn-nsg-1")]
        assert len(app.emulator.writes()) == 1


def test_vnet_write_that_detaches_the_nsg_is_alerted_when_nothing_is_configured_to_attach(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        vnet = app.emulator.get_body(VNET_WEU)
        for s in vnet["properties"]["subnets"]:
            s["properties"].pop("networkSecurityGroup", None)
        app.emulator.set_body(VNET_WEU, vnet)
        event = resource_event("Microsoft.Network/virtualNetworks/write", VNET_WEU)
        app.deliver(event)
        evaluated = next(r for r in app.audit(event["id"]) if r.decision == "evaluated")
        assert [f["ruleId"] for f in evaluated.findings] == ["EXF-SN-03"]
        assert app.emulator.writes() == []
        cards = [json.dumps(p.json()) for p in app.teams.posts()]
        assert len(cards) == 1 and "EXF-SN-03" in cards[0] and MALLORY["upn"] in cards[0]
