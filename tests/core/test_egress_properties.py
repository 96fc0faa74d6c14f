"""Invariants of the egress decisions, proven with hypothesis, and the event routing of the
egress operations (pure: no I/O)."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from exfilguard.adapters import eventgrid as events
from exfilguard.core import egress
from exfilguard.core.config import Config
from exfilguard.core.engine import evaluate, plan
from exfilguard.core.fixes import Sel
from exfilguard.core.picture import build
from tests import factory as f
from tests.function_support import SUB

RG, REGION, IDX = "rg-p", "westeurope", 31
NSG_ID = f.nsg_id(RG, f"nsg-ml-fw-{REGION}")
BASE = f.firewalled_stack(RG, REGION, IDX)

labels = st.sampled_from(["a", "b", "batch", "westeurope", "mcr", "microsoft", "com", "azure", "data", "x1"])
hosts = st.lists(labels, min_size=1, max_size=5).map(".".join)
patterns = st.one_of(hosts, hosts.map(lambda h: f"*.{h}"), st.just("*"))


@given(patterns, patterns, hosts)
def test_fqdn_cover_means_every_matched_host_is_matched(a, b, host):
    """If ``a`` covers ``b`` then any host ``b`` matches, ``a`` matches too."""
    if egress.fqdn_covers(a, b) and egress.fqdn_covers(b, host):
        assert egress.fqdn_covers(a, host)
    assert egress.fqdn_covers(a, a)
    assert egress.fqdn_overlaps(a, b) == egress.fqdn_overlaps(b, a)


dests = st.sampled_from(["*", "Internet", "0.0.0.0/0", "52.1.2.0/24", "8.8.8.8", "10.9.0.0/16", "Storage",
                         "AzureFrontDoor.Frontend", f"Storage.{REGION}", "AzureMachineLearning", "VirtualNetwork"])
nsg_rules = st.lists(st.tuples(st.integers(100, 4000), st.sampled_from(["Allow", "Deny"]), dests,
                               st.sampled_from(["Tcp", "Udp", "*"]), st.sampled_from(["443", "*", "80-90"])),
                     max_size=6, unique_by=lambda t: t[0])
hops = st.sampled_from([("VirtualAppliance", f"10.{IDX + 100}.0.4"), ("VirtualAppliance", "10.250.0.1"),
                        ("None", None)])


@settings(max_examples=60, deadline=None)
@given(nsg_rules, hops)
def test_nsg_of_a_subnet_whose_internet_goes_elsewhere_never_gets_an_internet_fix(rules, hop):
    """Whatever the NSG holds, when the subnet's 0.0.0.0/0 goes to a firewall, an appliance or
    nowhere: no EXF-NSG-01, and no NSG-02 edit touches a generic internet destination or a
    public prefix (the NSG must let those reach the firewall)."""
    res = copy.deepcopy(BASE)
    nsg = next(r for r in res if r["id"] == NSG_ID)
    nsg["properties"]["securityRules"] = [
        f.rule(f"r{p}", p, access=a, dest=d, protocol=proto, ports=ports, nsg=NSG_ID)
        for p, a, d, proto, ports in rules]
    table = next(r for r in res if r["type"] == "Microsoft.Network/routeTables")
    table["properties"]["routes"][0]["properties"] = {"addressPrefix": "0.0.0.0/0", "nextHopType": hop[0],
                                                      **({"nextHopIpAddress": hop[1]} if hop[1] else {})}
    cfg = Config(mode="remediate")
    ev = evaluate(build(res), cfg)
    assert "EXF-NSG-01" not in {x.rule_id for x in ev.findings}
    internet = {f"r{p}" for p, a, d, *_ in rules if d in ("*", "Internet", "0.0.0.0/0", "52.1.2.0/24", "8.8.8.8")}
    for change in plan(ev.findings, cfg):
        for e in change.edits:
            named = [s.value for s in e.path if isinstance(s, Sel)]
            if e.op == "set" and e.path[-1] == "access":
                assert not set(named) & internet, (e, rules)
            if e.op == "remove":
                assert e.value not in ("*", "Internet", "0.0.0.0/0", "52.1.2.0/24", "8.8.8.8")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["10.31.1.0/24", "10.31.0.0/16", "10.31.1.128/25", "10.99.0.0/24", "*",
                                 "192.168.1.1-192.168.1.12", "10.31.1.5", "not-an-address"]), max_size=4),
       st.booleans())
def test_source_applicability_is_conservative(sources, with_missing_group):
    """A source that cannot be read (or an IP group not in the picture) never proves a required
    flow, but always counts for a leak."""
    pic = build(copy.deepcopy(BASE))
    rule = egress.FwRule(owner_id="p", group="g", group_priority=100, collection="c", collection_priority=100,
                         action="allow", kind="network", name="r", source_addresses=tuple(sources),
                         source_ip_groups=(f.ip_group_id(RG, "gone"),) if with_missing_group else ())
    verdict = egress.source_applies(pic, rule, ("10.31.1.0/24",))
    overlapping = {"10.31.1.0/24", "10.31.0.0/16", "10.31.1.128/25", "*", "10.31.1.5"}
    if set(sources) & overlapping:
        assert verdict is True
    elif "not-an-address" in sources or with_missing_group:
        assert verdict is None
    else:
        assert verdict is False


def _route(operation: str, uri: str) -> events.Route | events.Drop:
    body = {"id": "e1", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": uri,
            "eventTime": "2026-01-01T00:00:00Z", "dataVersion": "", "topic": f"/subscriptions/{SUB}",
            "data": {"operationName": operation, "resourceUri": uri, "status": "Succeeded"}}
    return events.route(events.parse(body), SUB)


def test_egress_operations_route_to_the_resource_to_reread():
    table = f.route_table_id(RG, "rt")
    policy = f.policy_id(RG, "p")
    cases = [
        ("Microsoft.Network/routeTables/write", table, table),
        ("Microsoft.Network/routeTables/routes/write", f"{table}/routes/r", table),
        ("Microsoft.Network/routeTables/routes/delete", f"{table}/routes/r", table),
        ("Microsoft.Network/azureFirewalls/write", f.firewall_id(RG, "fw"), f.firewall_id(RG, "fw")),
        ("Microsoft.Network/firewallPolicies/write", policy, policy),
        ("Microsoft.Network/firewallPolicies/ruleCollectionGroups/write", f"{policy}/ruleCollectionGroups/g", policy),
        ("Microsoft.Network/firewallPolicies/ruleCollectionGroups/delete", f"{policy}/ruleCollectionGroups/g",
         policy),
        ("Microsoft.Network/ipGroups/write", f.ip_group_id(RG, "g"), f.ip_group_id(RG, "g")),
    ]
    for op, uri, reread in cases:
        routed = _route(op, uri)
        assert isinstance(routed, events.Route), (op, routed)
        assert str(routed.reread).lower() == reread.lower() and not routed.deleted
    deleted = _route("Microsoft.Network/routeTables/delete", table)
    assert isinstance(deleted, events.Route) and deleted.deleted
    dropped = _route("Microsoft.Network/routeTables/join/action", table)
    assert isinstance(dropped, events.Drop) and dropped.kind == "unmapped"
