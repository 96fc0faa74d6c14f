"""The resource model takes every real ARM payload under tests/data, and merges nested and
standalone shapes into one picture."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest

from exfilguard.core import ids
from exfilguard.core.model import (
    COMPUTE,
    FIREWALL,
    FW_POLICY,
    NSG,
    RCG,
    ROUTE,
    ROUTE_TABLE,
    SEP,
    STORAGE,
    SUBNET,
    VNET,
    WORKSPACE,
    BadResource,
    parse_rule,
)
from exfilguard.core.picture import build
from exfilguard.core.types import parse_resource
from tests import factory as f
from tests.support import DATA

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

FIXTURES = DATA


def example_bodies(doc: dict) -> list:
    out = []
    for resp in (doc.get("responses") or {}).values():
        body = resp.get("body") if isinstance(resp, dict) else None
        if isinstance(body, dict):
            out.extend(body["value"] if isinstance(body.get("value"), list) else [body])
    return out


def cassette_bodies(doc: dict) -> list:
    out = []
    for it in doc["interactions"]:
        body = ((it.get("response") or {}).get("body") or {}).get("data")
        if isinstance(body, dict):
            out.extend(body["value"] if isinstance(body.get("value"), list) else [body])
    return out


def _spec_files() -> list[Path]:
    files = sorted((FIXTURES / "azure").glob("*/*.json"))
    assert len(files) >= 50, "fixtures under tests/data are missing"
    return [p for p in files if "responses" in json.loads(p.read_text())]


def _cassettes() -> list[Path]:
    files = sorted((FIXTURES / "c7n-cassettes").glob("*.json"))
    assert len(files) == 25
    return files


def _read_all(paths, extract) -> tuple[Counter, list]:
    counts: Counter = Counter()
    notices = []
    for p in paths:
        pic = build(extract(json.loads(p.read_text())), source=p.name)
        counts.update(pic.read_counts)
        notices.extend(n.message for n in pic.notices if n.kind == "skipped")
    return counts, notices


def test_every_spec_example_response_loads():
    counts, skipped = _read_all(_spec_files(), example_bodies)
    # Every 200/201 response body counts once (list pages by element).
    assert dict(counts) == {
        NSG: 5, SUBNET: 7, VNET: 5, SEP: 5, WORKSPACE: 3, COMPUTE: 10,
        "microsoft.network/networksecuritygroups/securityrules": 3,
        "microsoft.network/serviceendpointpolicies/serviceendpointpolicydefinitions": 2,
        ROUTE_TABLE: 2, ROUTE: 2, FIREWALL: 6, FW_POLICY: 2, RCG: 5,
    }
    # The one upstream body that is not valid for its type (a definition with an NSG rule's id)
    # is skipped with a message naming the field, not a crash.
    assert len(skipped) == 1 and "direction" in skipped[0]


def test_every_cassette_response_loads():
    counts, skipped = _read_all(_cassettes(), cassette_bodies)
    # Bodies as recorded: several cassettes list the same NSGs or accounts before and after an action.
    assert dict(counts) == {NSG: 58, STORAGE: 26, VNET: 10, WORKSPACE: 3, COMPUTE: 1, ROUTE_TABLE: 2,
                            "microsoft.network/networksecuritygroups/securityrules": 1}
    # Service tags (no id) and an event-subscription body without an ARM id are reported skips.
    assert len(skipped) == 2


def test_big_cassette_nsgs_keep_all_rules():
    doc = json.loads((FIXTURES / "c7n-cassettes" / "NetworkSecurityGroupTest.test_cidr_and_ingress_no_match.json")
                     .read_text())
    pic = build(cassette_bodies(doc))
    assert sum(len(n.rules) for n in pic.nsgs.values()) == 133
    assert sum(len(n.default_rules) for n in pic.nsgs.values()) == 258


def test_compute_nested_properties_read():
    doc = json.loads((FIXTURES / "azure/machinelearning/Compute_get_ComputeInstance.json").read_text())
    c = parse_resource(doc["responses"]["200"]["body"])
    assert c.subnet_id == "test-subnet-resource-id"
    assert c.enable_node_public_ip is None and c.public_ip_address == "10.0.0.1"
    assert c.ssh_public_access == "Enabled"
    assert c.workspace_id.endswith("/workspaces/workspaces123")


def test_c7n_compute_with_null_subnet():
    doc = json.loads((FIXTURES / "c7n-cassettes" /
                      "MachineLearningWorkspaceComputeInstancesFilterTest.test_additional_attributes.json").read_text())
    pic = build(cassette_bodies(doc))
    [c] = pic.computes.values()
    assert c.subnet_id is None and c.enable_node_public_ip is True and c.remote_login_public_access == "Enabled"


def test_standalone_child_wins_over_inline_and_ids_ignore_case():
    vid = f.vnet_id("rg", "v")
    inline = f.subnet(vid, "s", "10.0.0.0/24", endpoints=[])
    standalone = f.subnet(vid.upper(), "S", "10.0.0.0/24", endpoints=[f.storage_endpoint("westeurope")])
    standalone["id"] = standalone["id"].replace("/resourceGroups/", "/resourcegroups/")
    pic = build([standalone, f.vnet("rg", "v", "westeurope", "10.0.0.0/16", [inline])])
    [s] = pic.subnets.values()
    assert [e.service for e in s.service_endpoints] == ["Microsoft.Storage"]


def test_resource_graph_lowercase_types_and_duplicates_last_wins():
    a = f.workspace("rg", "w", "westeurope", f.storage_id("rg", "st"), public="Enabled")
    b = copy.deepcopy(a)
    b["type"] = b["type"].lower()
    b["properties"]["publicNetworkAccess"] = "Disabled"
    pic = build([a, b])
    [w] = pic.workspaces.values()
    assert w.public_network_access == "Disabled"


def test_child_without_type_uses_its_id():
    rule = f.rule("r1", 100, nsg=f.nsg_id("rg", "n"))
    del rule["type"]
    parsed = parse_resource(rule)
    assert parsed.type == "microsoft.network/networksecuritygroups/securityrules"
    assert ids.key(parsed.nsg_id) == ids.key(f.nsg_id("rg", "n"))


def test_missing_optional_fields_are_tolerated():
    pic = build([{"id": f.ws_id("rg", "w"), "type": "Microsoft.MachineLearningServices/workspaces"},
                 {"id": f.nsg_id("rg", "n"), "type": "Microsoft.Network/networkSecurityGroups", "properties": {}}])
    assert len(pic.workspaces) == 1 and len(pic.nsgs[ids.key(f.nsg_id("rg", "n"))].default_rules) == 6


@pytest.mark.parametrize("body, field", [
    ({"properties": {"priority": "high"}}, "priority"),
    ({"properties": {"destinationAddressPrefixes": "Internet"}}, "destinationAddressPrefixes"),
    ({"properties": {"destinationPortRange": "http"}}, "destinationPortRange"),
    ({"properties": {"destinationPortRange": "70000"}}, "destinationPortRange"),
])
def test_wrong_types_name_the_field(body, field):
    rule = f.rule("r1", 100, nsg=f.nsg_id("rg", "n"))
    rule["properties"].update(body["properties"])
    with pytest.raises(BadResource, match=field):
        parse_resource(rule)


def test_one_bad_resource_is_skipped_with_a_notice():
    good = f.workspace("rg", "w", "westeurope", f.storage_id("rg", "st"))
    bad = f.workspace("rg", "w2", "westeurope", f.storage_id("rg", "st"))
    bad["properties"]["managedNetwork"] = "on"
    no_id = {"name": "x", "type": "Microsoft.Network/networkSecurityGroups"}
    pic = build([good, bad, no_id, 42])
    assert len(pic.workspaces) == 1
    messages = [n.message for n in pic.notices]
    assert any("managedNetwork" in m for m in messages)
    assert any("has no 'id'" in m for m in messages)
    assert any("must be a JSON object" in m for m in messages)


def test_event_grid_arn_resource_info_parses():
    """ARN events carry the resource body as data.resourceInfo: the same model reads it."""
    doc = json.loads((FIXTURES / "azure/eventgrid/docs_ResourceNotifications_CreatedOrUpdated.eventgrid-schema.json")
                     .read_text())
    event = doc[0] if isinstance(doc, list) else doc
    info = event["data"]["resourceInfo"]
    pic = build([info])
    assert sum(pic.read_counts.values()) + sum(pic.ignored.values()) + len(pic.notices) == 1


def _rules_in(bodies: list) -> list[tuple[dict, str | None, bool]]:
    """Every security rule body in ``bodies`` (standalone, custom and default), with its NSG."""
    out = []
    for b in bodies:
        if not isinstance(b, dict) or not isinstance(b.get("type"), str):
            continue
        t = b["type"].lower()
        props = b.get("properties") if isinstance(b.get("properties"), dict) else {}
        if t == NSG:
            for key, default in (("securityRules", False), ("defaultSecurityRules", True)):
                out += [(r, b.get("id"), default) for r in props.get(key) or [] if isinstance(r, dict)]
        elif t.endswith("/securityrules"):
            out.append((b, None, False))
    return out


def test_every_rule_of_the_fixtures_reads_and_misfits_name_their_field():
    """Every security rule body in the specs' examples, the cassettes and the samples (as given
    and as ARM's GET composes them) reads; a misfit raises naming the field."""
    from tests.armemu import ArmEmulator

    bodies = [b for p in _spec_files() for b in example_bodies(json.loads(p.read_text()))]
    bodies += [b for p in _cassettes() for b in cassette_bodies(json.loads(p.read_text()))]
    samples = [json.loads(p.read_text()) for p in sorted(SAMPLES.glob("*.json"))]
    composed = ArmEmulator(samples[0])  # bodies as ARM's GET composes them (default rules, etags)
    bodies += [b for s in samples for b in s] + [composed.get_body(b["id"]) for b in samples[0]]
    rules = _rules_in(bodies)
    assert len(rules) > 300
    for body, nsg, default in rules:
        got = parse_rule(body, nsg, default)
        assert got.raw is body and got.nsg_id == (nsg or got.id.rsplit("/", 2)[0]) and got.is_default == default
    rule = f.rule("r1", 100, nsg=f.nsg_id("rg", "n"))
    for field, value in (("priority", True), ("destinationPortRanges", ["80", 7]), ("access", "Maybe"),
                         ("sourceApplicationSecurityGroups", {"id": "x"}), ("destinationPortRange", "80,443"),
                         ("destinationAddressPrefix", "10.0.0.0/33")):
        bad = copy.deepcopy(rule)
        bad["properties"][field] = value
        with pytest.raises(BadResource, match=field if "Prefix" not in field else "address prefix"):
            parse_resource(bad)


def test_malformed_nsgs_fail_closed_and_other_types_are_not_read():
    """A body that does not fit raises; a rule list or a rule that does not read is kept on its
    NSG as unreadable (the NSG fails closed); a type the baseline does not read is None."""
    from tests.armemu import ArmEmulator

    bad = f.nsg("rg", "n", "westeurope", [])
    bad["properties"] = "not an object"
    with pytest.raises(BadResource, match="properties"):
        parse_resource(bad)
    odd = f.nsg("rg", "n", "westeurope", [])
    odd["properties"]["securityRules"] = "not a list"
    assert [u.name for u in parse_resource(odd).unreadable] == ["securityRules"]
    assert parse_resource({"id": "/subscriptions/s/resourceGroups/g/providers/Other.Type/x/y",
                           "type": "Other.Type/x"}) is None
    etag = f.nsg("rg", "n", "westeurope", [f.rule("r1", 100), f.rule("r2", 110)])
    etag["properties"]["securityRules"][1]["etag"] = 7
    misfit = parse_resource(etag)
    assert [u.name for u in misfit.unreadable] == ["r2"] and "etag" in misfit.unreadable[0].reason
    assert [r.name for r in misfit.rules] == ["r1"]
    body = ArmEmulator([f.nsg("rg", "n", "westeurope", [f.rule("r1", 100)])]).get_body(f.nsg_id("rg", "n"))
    assert len(parse_resource(copy.deepcopy(body)).default_rules) == 6
    body["properties"]["defaultSecurityRules"][3]["properties"]["priority"] = 65000.0
    parsed = parse_resource(body)  # the rule is kept unreadable (fail closed), the others read
    assert [u.name for u in parsed.unreadable] == ["AllowVnetOutBound"] and "priority" in parsed.unreadable[0].reason
    assert len(parsed.default_rules) == 5


def test_firewall_fixtures_read_their_rules():
    """What the egress rules read from the real and hand-written firewall examples."""
    def body(name: str) -> dict:
        return json.loads((FIXTURES / "azure/network" / name).read_text())["responses"]["200"]["body"]

    classic = parse_resource(body("AzureFirewallGet.json"))
    assert classic.private_ips == ("10.0.0.0",) and classic.policy_id is None
    assert {r.kind for r in classic.classic_rules} == {"application", "network"}
    net = next(r for r in classic.classic_rules if r.kind == "network")
    assert net.destination_addresses and net.source_addresses
    hub = parse_resource(body("AzureFirewallPutInHub.json"))
    assert hub.private_ips == ("10.0.0.0",) and hub.policy_id.endswith("/policy1")
    web = parse_resource(body("FirewallPolicyRuleCollectionGroupWithWebCategoriesGet.json"))
    assert any(r.web_categories for r in web.rules)
    rt = parse_resource(body("handmade_RouteTableGet_egressRoutes.json"))
    assert next((r.address_prefix, r.next_hop_type, r.next_hop_ip) for r in rt.routes) == (
        "0.0.0.0/0", "VirtualAppliance", "10.0.100.4")
    route = parse_resource(body("handmade_RouteTableRouteGet_defaultNone.json"))
    assert route.type == ROUTE and route.route_table_id.endswith("/rt-ml-isolated")
    groups = parse_resource(body("FirewallPolicyRuleCollectionGroupWithIpGroupsGet.json"))
    assert groups is None  # upstream quirk: a "ruleGroups" ID is no type ExfilGuard reads


def test_bad_firewall_rule_field_names_the_field():
    rcg = f.rule_collection_group(f.policy_id("rg", "p"), "g", 100, [f.collection("c", 100, "Allow", [
        f.app_rule("r", ["a.example"], ["*"])])])
    rcg["properties"]["ruleCollections"][0]["rules"][0]["targetFqdns"] = "a.example"
    with pytest.raises(BadResource, match=r"ruleCollections\[0\]\.rules\[0\]\.targetFqdns must be an array"):
        parse_resource(rcg)


def test_build_leaves_the_garbage_collector_as_it_found_it():
    """build pauses the cyclic collector while it makes the views, and only then."""
    import gc

    seen = []

    class Spy(dict):
        def get(self, *args):  # a body read while building: note whether the collector runs
            seen.append(gc.isenabled())
            return super().get(*args)

    body = Spy(f.nsg("rg", "n", "westeurope", [f.rule("r1", 100)]))
    assert gc.isenabled()
    build([body])
    assert seen and not any(seen) and gc.isenabled()
    gc.disable()
    try:
        build([f.nsg("rg", "n", "westeurope", [])])
        assert not gc.isenabled()  # paused by someone else before: left paused
    finally:
        gc.enable()
