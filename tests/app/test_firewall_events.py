"""Egress events end to end: the Event Grid trigger, the ARM emulator and Azurite.

A rule collection group change reads the policy, its groups, the firewall (and its own subnet's
VNet), the route tables and the guarded subnets routed to it, and nothing else (no sweep, no
NSG); a route table change re-evaluates its subnets' NSGs; a firewalled subnet's NSG is never
written, even in remediate mode.
"""

from __future__ import annotations

import json

from exfilguard.core import ids
from tests import factory
from tests.function_support import EVENTGRID_FIXTURES, SUB, resource_event, running_app, sample

RG, REGION = "rg-ml-neu", "northeurope"
POLICY = factory.policy_id(RG, f"fwp-ml-{REGION}")
RCG = f"{POLICY}/ruleCollectionGroups/rcg-ml"
TABLE = factory.route_table_id(RG, f"rt-ml-{REGION}")
NSG = factory.nsg_id(RG, f"nsg-ml-fw-{REGION}")
SPOKE = factory.vnet_id(RG, f"vnet-ml-fw-{REGION}")


def _prime_index(app) -> None:
    app.timer()
    assert app.emulator.writes() == []
    app.emulator.reset_log()


def _handmade(name: str, resource_id: str) -> dict:
    """A hand-written sample, pointed at a resource of the running subscription."""
    body = json.loads((EVENTGRID_FIXTURES / name).read_text())
    old = body["data"]["resourceUri"]
    text = json.dumps(body).replace(old, resource_id)
    body = json.loads(text)
    body["topic"] = f"/subscriptions/{SUB}"
    body["data"]["subscriptionId"] = SUB
    return body


def _evaluated(app, event) -> list[dict]:
    return next(r for r in app.audit(event["id"]) if r.decision == "evaluated").findings


def test_rule_collection_group_change_reads_only_its_firewall_path(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        rcg = app.emulator.get_body(RCG)
        spoke = "10.30.1.0/24"
        rcg["properties"]["ruleCollections"].append(factory.collection("quickstart-allow", 400, "Allow", [
            factory.net_rule("azure-services", ["Storage", "AzureFrontDoor.Frontend"], ["443"], [spoke])]))
        app.emulator.set_body(RCG, rcg)
        event = _handmade("handmade_ResourceWriteSuccess_firewallPolicies_ruleCollectionGroups.eventgrid-schema.json",
                          RCG)
        app.deliver(event)

        reads = app.emulator.records(kind="read")
        got = [r.path.rstrip("/").rsplit("/", 1)[-1] for r in reads]
        assert sorted(got) == sorted([f"fwp-ml-{REGION}", "rcg-ml", f"fw-hub-{REGION}", f"vnet-hub-{REGION}",
                                      "routeTables", f"vnet-ml-fw-{REGION}", f"ci-fw-{REGION}"]), got
        assert len(reads) == 7 and app.emulator.writes() == []
        findings = _evaluated(app, event)
        assert [(f["ruleId"], f["resourceId"]) for f in findings] == [("EXF-FW-01", POLICY)]
        cards = [json.dumps(p.json()) for p in app.teams.posts()]
        assert len(cards) == 1 and "EXF-FW-01" in cards[0]
        assert "collection quickstart-allow, rule azure-services" in cards[0]


def test_firewall_write_with_a_policy_based_on_another(monkeypatch):
    """A base policy's change re-evaluates the firewalls of every policy based on it."""
    res = sample("compliant-subscription.json")
    base = factory.firewall_policy(RG, "fwp-org-base", REGION, ["rcg-org"])
    res += [base, factory.rule_collection_group(base["id"], "rcg-org", 100, [factory.collection(
        "org", 100, "Allow", [factory.app_rule("anything", ["*"], ["*"])])])]
    next(r for r in res if ids.key(r["id"]) == ids.key(POLICY))["properties"]["basePolicy"] = {"id": base["id"]}
    with running_app(monkeypatch, res) as app:
        _prime_index(app)
        event = resource_event("Microsoft.Network/firewallPolicies/ruleCollectionGroups/write",
                               f"{base['id']}/ruleCollectionGroups/rcg-org")
        app.deliver(event)
        findings = _evaluated(app, event)
        assert [(f["ruleId"], f["resourceId"]) for f in findings] == [("EXF-FW-01", base["id"])]
        assert app.emulator.writes() == []


def test_route_to_an_unknown_appliance_is_alerted_and_the_nsg_left_alone(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        table = app.emulator.get_body(TABLE)
        table["properties"]["routes"][0]["properties"]["nextHopIpAddress"] = "10.77.0.4"
        app.emulator.set_body(TABLE, table)
        event = _handmade("handmade_ResourceWriteSuccess_routeTables_routes.eventgrid-schema.json",
                          f"{TABLE}/routes/default-to-firewall")
        app.deliver(event)
        assert [(f["ruleId"], f["resourceId"]) for f in _evaluated(app, event)] == [("EXF-RT-01", TABLE)]
        assert app.emulator.writes() == []  # remediate mode, yet no NSG deny: the appliance is the control
        paths = [r.path for r in app.emulator.records(kind="read")]
        assert any(ids.key(p) == ids.key(NSG) for p in paths), "the route table's subnets' NSG is re-evaluated"


def test_route_table_sending_internet_traffic_out_directly_gets_the_nsg_fixed(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        table = app.emulator.get_body(TABLE)
        table["properties"]["routes"][0]["properties"] = {"addressPrefix": "0.0.0.0/0", "nextHopType": "Internet"}
        app.emulator.set_body(TABLE, table)
        event = _handmade("handmade_ResourceWriteSuccess_routeTables.eventgrid-schema.json", TABLE)
        app.deliver(event)
        assert "EXF-NSG-01" in [f["ruleId"] for f in _evaluated(app, event)]
        writes = app.emulator.writes()
        assert len(writes) == 1 and ids.key(writes[0].path) == ids.key(NSG)


def test_firewalled_subnet_nsg_event_writes_nothing_in_remediate_mode(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime_index(app)
        nsg = app.emulator.get_body(NSG)
        nsg["properties"]["securityRules"].append(factory.rule("allow-to-firewall", 1000, protocol="*",
                                                               dest="Internet", ports="*", nsg=NSG))
        app.emulator.set_body(NSG, nsg)
        event = resource_event("Microsoft.Network/networkSecurityGroups/securityRules/write",
                               f"{NSG}/securityRules/allow-to-firewall")
        app.deliver(event)
        assert list(_evaluated(app, event)) == []
        assert app.emulator.writes() == []
        paths = [r.path.rsplit("/", 1)[-1] for r in app.emulator.records(kind="read")]
        assert f"rt-ml-{REGION}" in paths  # the NSG's verdict needed the subnet's route table


def test_ip_group_change_re_evaluates_the_policies_that_name_it(monkeypatch):
    res = sample("compliant-subscription.json")
    group = factory.ip_group(RG, "ipg-partners", REGION, ["10.99.0.0/24"])
    rcg = next(r for r in res if ids.key(r["id"]) == ids.key(RCG))
    rcg["properties"]["ruleCollections"].append(factory.collection("partners", 900, "Allow", [
        factory.net_rule("partners-any", ["*"], ["*"], [], ip_groups=[group["id"]])]))
    with running_app(monkeypatch, [*res, group]) as app:
        _prime_index(app)
        assert [x["id"] for x in app.emulator.get_body(group["id"])["properties"]["firewallPolicies"]] == [POLICY]
        group["properties"]["ipAddresses"] = ["10.30.0.0/16"]  # now holds the guarded spoke
        app.emulator.set_body(group["id"], group)
        event = resource_event("Microsoft.Network/ipGroups/write", group["id"])
        app.deliver(event)
        findings = _evaluated(app, event)
        assert [(f["ruleId"], f["resourceId"]) for f in findings] == [("EXF-FW-01", POLICY)]
        assert app.emulator.writes() == []
        cards = [json.dumps(p.json()) for p in app.teams.posts()]
        assert len(cards) == 1 and "collection partners, rule partners-any" in cards[0]


def test_firewall_write_event_is_routed(monkeypatch):
    fw = factory.firewall_id(RG, f"fw-hub-{REGION}")
    with running_app(monkeypatch, sample("drifted-subscription.json"), mode="audit") as app:
        _prime_index(app)
        event = _handmade("handmade_ResourceWriteSuccess_azureFirewalls.eventgrid-schema.json", fw)
        app.deliver(event)
        assert [(f["ruleId"], f["resourceId"]) for f in _evaluated(app, event)] == [("EXF-FW-01", POLICY)]
        assert app.emulator.count(kind="read", path="/networkSecurityGroups") == 0
