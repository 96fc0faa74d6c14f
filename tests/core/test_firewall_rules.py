"""Egress through route tables and Azure Firewall (baseline "Egress through a firewall"): the NSG
exceptions, EXF-RT-01, EXF-FW-01..03, and the managed network's EXF-WS-06/07."""

from __future__ import annotations

import json

import pytest

from exfilguard.adapters import configfile
from exfilguard.core import config as config_mod
from exfilguard.core.config import Config, ConfigError
from exfilguard.core.engine import plan
from exfilguard.core.picture import build
from tests import factory as f
from tests.support import DATA, by_rule, run

RG, REGION, IDX = "rg-hub", "westeurope", 30
PREFIX = f"10.{IDX}.1.0/24"
POLICY = f.policy_id(RG, f"fwp-ml-{REGION}")
FIREWALL = f.firewall_id(RG, f"fw-hub-{REGION}")
TABLE = f.route_table_id(RG, f"rt-ml-{REGION}")
NSG = f.nsg_id(RG, f"nsg-ml-fw-{REGION}")


def stack(leaky: bool = False) -> list[dict]:
    return f.firewalled_stack(RG, REGION, IDX, leaky=leaky)


def named(res: list[dict], name: str) -> dict:
    return next(r for r in res if r["name"] == name)


def collections(res: list[dict]) -> list[dict]:
    return named(res, "rcg-ml")["properties"]["ruleCollections"]


def app_rules(res: list[dict]) -> list[dict]:
    return next(c for c in collections(res) if c["name"] == "aml-app-allow")["rules"]


def routes(res: list[dict]) -> list[dict]:
    return named(res, f"rt-ml-{REGION}")["properties"]["routes"]


def rules_of(ev, *rule_ids):
    return sorted(x.rule_id for x in ev.findings if not rule_ids or x.rule_id in rule_ids)


# --------------------------------------------------------------------------- egress classification
def test_correctly_firewalled_subnet_has_no_finding_and_no_nsg_deny_is_asked():
    ev = run(stack())
    assert ev.findings == ()
    assert not [n for n in ev.notices if n.kind == "absent"]


def test_without_the_route_table_the_same_nsg_leaks():
    res = stack()
    del named(res, f"vnet-ml-fw-{REGION}")["properties"]["subnets"][0]["properties"]["routeTable"]
    assert rules_of(run(res), "EXF-NSG-01") == ["EXF-NSG-01"]


def test_firewalled_subnet_gets_no_nsg_write_in_remediate_mode():
    res = stack()
    # An NSG that lets everything reach the firewall: Allow * to Internet, and no Deny.
    named(res, f"nsg-ml-fw-{REGION}")["properties"]["securityRules"].append(
        f.rule("allow-to-firewall", 1000, protocol="*", dest="Internet", ports="*", nsg=NSG))
    named(res, f"nsg-ml-fw-{REGION}")["properties"]["securityRules"].append(
        f.rule("allow-partner", 1010, dest="203.0.113.0/24", nsg=NSG))
    cfg = Config(mode="remediate")
    ev = run(res, cfg)
    assert ev.findings == ()
    assert plan(ev.findings, cfg) == []
    assert plan(ev.findings, cfg, mode="remediate") == []


def test_nsg02_still_fires_for_risky_service_tags_on_a_firewalled_subnet():
    res = stack()
    named(res, f"nsg-ml-fw-{REGION}")["properties"]["securityRules"].append(
        f.rule("allow-storage-global", 1000, dest=["Storage", "Internet"], nsg=NSG))
    [x] = by_rule(run(res), "EXF-NSG-02")
    assert "Storage" in x.detail and "Internet" not in x.detail
    assert x.fix_mode == "auto"  # removes only the Storage destination


def test_nsg_shared_with_a_subnet_using_nsg_egress_is_judged_as_written():
    res = stack()
    vn = named(res, f"vnet-ml-fw-{REGION}")
    other = f.subnet(vn["id"], "snet-direct", f"10.{IDX}.2.0/24", NSG, endpoints=[f.storage_endpoint(REGION)])
    vn["properties"]["subnets"].append(other)
    res.append(f.compute(named(res, f"mlw-fw-{REGION}")["id"], "ci-direct", REGION, subnet=other["id"]))
    [x] = by_rule(run(res), "EXF-NSG-01")
    assert "snet-direct" in x.detail and "snet-training" in x.detail


def test_unknown_appliance_is_rt01_not_nsg01_unless_trusted():
    res = stack()
    routes(res)[0]["properties"]["nextHopIpAddress"] = "10.200.0.4"
    ev = run(res)
    assert rules_of(ev) == ["EXF-RT-01"]
    [x] = by_rule(ev, "EXF-RT-01")
    assert x.resource_id == TABLE and "snet-training" in x.detail and "10.200.0.4" in x.detail
    assert x.fix_mode == "manual" and x.edits == ()
    assert run(res, Config(trusted_egress_appliances=("10.200.0.4",))).findings == ()


def test_none_route_drops_internet_traffic():
    res = stack()
    routes(res)[0]["properties"] = {"addressPrefix": "0.0.0.0/0", "nextHopType": "None"}
    assert run(res).findings == ()


@pytest.mark.parametrize("hop", ["Internet", "VirtualNetworkGateway", "VnetLocal"])
def test_other_next_hops_count_as_nsg_egress(hop):
    res = stack()
    routes(res)[0]["properties"] = {"addressPrefix": "0.0.0.0/0", "nextHopType": hop}
    assert rules_of(run(res), "EXF-NSG-01", "EXF-RT-01") == ["EXF-NSG-01"]


def test_route_table_not_in_the_picture_counts_as_nsg_egress_with_a_notice():
    res = [r for r in stack() if r["name"] != f"rt-ml-{REGION}"]
    ev = run(res)
    assert rules_of(ev, "EXF-NSG-01") == ["EXF-NSG-01"]
    assert any(n.kind == "absent" and n.resource_id == TABLE for n in ev.notices)


def test_standalone_route_wins_over_inline_one():
    res = stack()
    res.append(f.route(TABLE, "default-to-firewall", "0.0.0.0/0", "VirtualAppliance", "10.200.0.9"))
    assert rules_of(run(res)) == ["EXF-RT-01"]


def test_hub_firewall_private_ip_counts():
    res = stack()
    fw = named(res, f"fw-hub-{REGION}")
    ip = fw["properties"]["ipConfigurations"][0]["properties"].pop("privateIPAddress")
    fw["properties"]["hubIPAddresses"] = {"privateIPAddress": ip}
    assert run(res).findings == ()


# --------------------------------------------------------------------------- EXF-FW-01
def test_fw01_names_the_policy_collection_and_rule():
    ev = run(stack(leaky=True))
    assert rules_of(ev) == ["EXF-FW-01"]
    [x] = by_rule(ev, "EXF-FW-01")
    assert x.resource_id == POLICY and x.fix_mode == "manual" and x.edits == ()
    assert any("collection quickstart-allow, rule storage-global" in i and "service tag Storage" in i
               and "AzureFrontDoor.Frontend" in i for i in x.items)
    assert any("rule anything" in i and "FQDN *" in i for i in x.items)
    assert "fwp-ml-westeurope" in x.fix_summary


def test_wildcard_batch_fqdn_is_wider_than_the_allow_list_but_satisfies_fw02():
    res = stack()
    app_rules(res)[0]["targetFqdns"] = ["*.batch.azure.com"]
    ev = run(res)
    assert rules_of(ev) == ["EXF-FW-01"]
    [x] = by_rule(ev, "EXF-FW-01")
    assert "*.batch.azure.com" in x.detail


@pytest.mark.parametrize("extra", [{"fqdnTags": ["WindowsUpdate"]}, {"webCategories": ["Gambling"]},
                                   {"targetUrls": ["www.example.com/upload"]}])
def test_fw01_fqdn_tags_web_categories_and_urls(extra):
    res = stack()
    collections(res)[1]["rules"].append(f.app_rule("extra", [], [PREFIX], **extra))
    assert rules_of(run(res)) == ["EXF-FW-01"]


@pytest.mark.parametrize("dest,fires", [("*", True), ("Internet", True), ("52.1.2.3", True),
                                        ("52.1.0.0/16", True), ("10.50.0.0/16", False),
                                        ("AzureMonitor", False), ("Storage.eastus", True)])
def test_fw01_network_destinations(dest, fires):
    res = stack()
    collections(res)[0]["rules"].append(f.net_rule("extra", [dest], ["443"], [PREFIX]))
    assert rules_of(run(res)) == (["EXF-FW-01"] if fires else [])


def test_fw01_ignores_deny_rules_and_other_sources():
    res = stack()
    collections(res).append(f.collection("deny-all", 1000, "Deny", [f.app_rule("deny", ["*"], ["*"])]))
    collections(res).append(f.collection("other", 1100, "Allow", [
        f.net_rule("other-subnet", ["*"], ["*"], ["10.99.0.0/24"]),
        f.app_rule("range-elsewhere", ["*"], ["192.168.1.1-192.168.1.12"])]))
    assert run(res).findings == ()


def test_ipv4_prefix_overlap_decides_whether_a_rule_applies():
    res = stack()
    collections(res).append(f.collection("wide-source", 1100, "Allow", [
        f.net_rule("from-supernet", ["*"], ["*"], [f"10.{IDX}.0.0/16"])]))
    assert rules_of(run(res)) == ["EXF-FW-01"]
    res = stack()
    collections(res).append(f.collection("narrow-source", 1100, "Allow", [
        f.net_rule("from-part", ["*"], ["*"], [f"10.{IDX}.1.128/25"])]))  # part of the subnet: overlaps
    assert rules_of(run(res)) == ["EXF-FW-01"]


# --------------------------------------------------------------------------- EXF-FW-02
def test_fw02_missing_required_host():
    res = stack()
    app_rules(res)[1]["targetFqdns"] = ["mcr.microsoft.com"]
    ev = run(res)
    [x] = by_rule(ev, "EXF-FW-02")
    assert x.resource_id == POLICY and "*.data.mcr.microsoft.com" in x.detail
    assert run(res, Config(curated_environments=False)).findings == ()


def test_deny_collection_at_higher_priority_shadows_a_required_allow():
    res = stack()
    collections(res).insert(0, f.collection("block-batch", 250, "Deny", [
        f.app_rule("no-batch", ["*.batch.azure.com"], ["*"])]))
    ev = run(res)
    [x] = by_rule(ev, "EXF-FW-02")
    assert "collection block-batch, rule no-batch" in x.detail
    # The same Deny processed after the Allow does not block it.
    collections(res)[0]["priority"] = 900
    assert by_rule(run(res), "EXF-FW-02") == []


def test_network_rules_are_processed_before_application_rules():
    res = stack()
    # A network Deny at a worse collection priority still comes before every application rule.
    collections(res).append(f.collection("net-deny", 4000, "Deny", [f.net_rule("deny-web", ["*"], ["443"], ["*"])]))
    assert rules_of(run(res), "EXF-FW-02") == ["EXF-FW-02"]


def test_required_hosts_satisfied_by_service_tag_network_rules():
    res = stack()
    coll = collections(res)
    coll[1]["rules"] = [r for r in coll[1]["rules"] if r["name"] == "studio"]
    coll[0]["rules"] += [f.net_rule("batch-tag", [f"BatchNodeManagement.{REGION}"], ["443"], [PREFIX]),
                         f.net_rule("mcr-tag", [f"MicrosoftContainerRegistry.{REGION}"], ["443"], [PREFIX])]
    assert run(res).findings == ()
    coll[0]["rules"][-1]["destinationPorts"] = ["80"]
    assert rules_of(run(res)) == ["EXF-FW-02"]


def test_host_routed_straight_to_internet_is_not_required_at_the_firewall():
    res = stack()
    app_rules(res)[0]["targetFqdns"] = []  # no batch rule
    assert rules_of(run(res)) == ["EXF-FW-02"]
    routes(res).append(f.route(TABLE, "batch-direct", f"BatchNodeManagement.{REGION}", "Internet"))
    assert run(res).findings == ()


# --------------------------------------------------------------------------- base policy, classic, IP groups
def _split_into_base(res: list[dict], base_collections: list[dict]) -> str:
    base = f.firewall_policy(RG, "fwp-org-base", REGION, ["rcg-org"])
    res += [base, f.rule_collection_group(base["id"], "rcg-org", 100, base_collections)]
    named(res, f"fwp-ml-{REGION}")["properties"]["basePolicy"] = {"id": base["id"]}
    return base["id"]


def test_rules_inherited_from_a_base_policy_name_the_base_policy():
    res = stack()
    base = _split_into_base(res, [f.collection("org-allow", 100, "Allow", [
        f.net_rule("org-storage", ["Storage"], ["443"], ["*"])])])
    [x] = by_rule(run(res), "EXF-FW-01")
    assert x.resource_id == base and "rule org-storage" in x.detail


def test_required_allow_in_the_base_policy_counts():
    res = stack()
    mine = app_rules(res)
    batch = mine.pop(0)
    _split_into_base(res, [f.collection("org-allow", 100, "Allow", [batch])])
    assert run(res).findings == ()


def test_base_policy_deny_comes_before_the_child_policy_allow():
    res = stack()
    # Worse priorities than the child's collections, yet processed first: the base policy's groups go first.
    _split_into_base(res, [f.collection("org-deny", 4000, "Deny", [f.app_rule("no-mcr", ["mcr.microsoft.com"],
                                                                                ["*"])])])
    [x] = by_rule(run(res), "EXF-FW-02")
    assert "mcr.microsoft.com" in x.detail and "rule no-mcr" in x.detail


def test_missing_base_policy_and_group_are_noticed():
    res = stack()
    named(res, f"fwp-ml-{REGION}")["properties"]["basePolicy"] = {"id": f.policy_id(RG, "gone")}
    named(res, f"fwp-ml-{REGION}")["properties"]["ruleCollectionGroups"].append(
        {"id": f"{POLICY}/ruleCollectionGroups/gone"})
    ev = run(res)
    assert ev.findings == ()
    absent = {n.resource_id for n in ev.notices if n.kind == "absent"}
    assert f.policy_id(RG, "gone") in absent and f"{POLICY}/ruleCollectionGroups/gone" in absent


def test_policy_not_in_the_picture_is_not_evaluated():
    res = [r for r in stack(leaky=True) if r["name"] not in (f"fwp-ml-{REGION}",)]
    ev = run(res)
    assert ev.findings == ()
    assert any(n.resource_id == POLICY for n in ev.notices)


def test_classic_rules_on_a_policy_less_firewall():
    res = stack()
    fw = named(res, f"fw-hub-{REGION}")
    del fw["properties"]["firewallPolicy"]
    classic = [{"name": r["name"], **{k: v for k, v in r.items() if k not in ("ruleType", "name")}}
               for c in collections(res) for r in c["rules"]]
    fw["properties"]["networkRuleCollections"] = [f.classic_collection(
        "ml-net", 100, "Allow", [r for r in classic if "ipProtocols" in r])]
    fw["properties"]["applicationRuleCollections"] = [f.classic_collection(
        "ml-app", 100, "Allow", [r for r in classic if "targetFqdns" in r])]
    assert run(res).findings == ()
    fw["properties"]["applicationRuleCollections"].append(f.classic_collection(
        "leaky", 200, "Allow", [{"name": "any-host", "sourceAddresses": ["*"], "targetFqdns": ["*"],
                                 "protocols": [{"protocolType": "Https", "port": 443}]}]))
    [x] = by_rule(run(res), "EXF-FW-01")
    assert x.resource_id == FIREWALL and "collection leaky, rule any-host" in x.detail


def test_classic_collections_are_ignored_when_a_policy_is_set():
    res = stack()
    named(res, f"fw-hub-{REGION}")["properties"]["applicationRuleCollections"] = [f.classic_collection(
        "leaky", 200, "Allow", [{"name": "any-host", "sourceAddresses": ["*"], "targetFqdns": ["*"],
                                 "protocols": [{"protocolType": "Https", "port": 443}]}])]
    assert run(res).findings == ()


def test_source_ip_groups_are_conservative():
    group = f.ip_group_id(RG, "ipg-ml")
    # A leaky rule from a group that is not in the picture counts (FW-01)...
    res = stack()
    collections(res).append(f.collection("grp", 1100, "Allow", [f.net_rule("grp-any", ["*"], ["*"], [],
                                                                           ip_groups=[group])]))
    assert rules_of(run(res)) == ["EXF-FW-01"]
    # ...unless the group is read and does not overlap the subnet.
    res.append(f.ip_group(RG, "ipg-ml", REGION, ["10.99.0.0/24", "192.168.0.1"]))
    assert run(res).findings == ()
    # A required Allow sourced only from a missing group proves nothing (FW-02)...
    res = stack()
    for r in app_rules(res):
        r["sourceAddresses"], r["sourceIpGroups"] = [], [group]
    assert rules_of(run(res)) == ["EXF-FW-02"]
    # ...and counts once the group is read and holds the subnet.
    res.append(f.ip_group(RG, "ipg-ml", REGION, [f"10.{IDX}.0.0/16"]))
    assert run(res).findings == ()


# --------------------------------------------------------------------------- EXF-FW-03
def _storage_endpoint_on_firewall_subnet(res: list[dict]) -> None:
    hub = named(res, f"vnet-hub-{REGION}")
    hub["properties"]["subnets"][0]["properties"]["serviceEndpoints"] = [f.storage_endpoint(REGION)]


def _without_regional_storage(res: list[dict]) -> None:
    collections(res)[0]["rules"] = [r for r in collections(res)[0]["rules"] if r["name"] != "storage-regional"]


def test_fw03_storage_endpoint_on_firewall_subnet_needs_storage_hosts():
    res = stack()
    _without_regional_storage(res)
    assert run(res).findings == ()  # no storage endpoint on AzureFirewallSubnet: nothing asked
    _storage_endpoint_on_firewall_subnet(res)
    [x] = by_rule(run(res), "EXF-FW-03")
    assert x.resource_id == FIREWALL and "*.blob.core.windows.net" in x.detail
    collections(res)[1]["rules"].append(f.app_rule("storage", ["*.blob.core.windows.net", "*.queue.core.windows.net",
                                                               "*.table.core.windows.net"], [PREFIX]))
    assert run(res).findings == ()  # and the three hosts are allowed FQDNs: no FW-01 either


def test_fw03_storage_hosts_through_a_regional_storage_tag():
    res = stack()
    _storage_endpoint_on_firewall_subnet(res)
    # The compliant stack allows Storage.<region> on TCP 443 by a network rule: that serves the hosts.
    assert run(res).findings == ()
    next(r for r in collections(res)[0]["rules"] if r["name"] == "storage-regional")["ipProtocols"] = ["UDP"]
    assert rules_of(run(res)) == ["EXF-FW-03"]


# --------------------------------------------------------------------------- managed network
def managed(outbound: dict, storage: str | None = None) -> list[dict]:
    st = storage or f.storage_id("rg-m", "stmanaged")
    return [f.storage("rg-m", "stmanaged", REGION),
            f.workspace("rg-m", "mlw-managed", REGION, st, isolation="AllowOnlyApprovedOutbound", outbound=outbound)]


def tag_rule(tag: str, protocol: str = "TCP", ports: str = "443") -> dict:
    return {"type": "ServiceTag", "category": "UserDefined", "status": "Active",
            "destination": {"serviceTag": tag, "protocol": protocol, "portRanges": ports, "action": "Allow"}}


def pe_rule(target: str) -> dict:
    return {"type": "PrivateEndpoint", "category": "UserDefined", "status": "Active",
            "destination": {"serviceResourceId": target, "subresourceTarget": "blob", "sparkEnabled": False}}


@pytest.mark.parametrize("rule,fires", [
    (tag_rule("Storage"), True), (tag_rule("Storage.eastus"), True), (tag_rule("AzureFrontDoor.Frontend"), True),
    (tag_rule(f"Storage.{REGION}"), False), (tag_rule("AzureMachineLearning", "TCP", "443,8787"), False),
    (tag_rule("AzureMachineLearning", "*", "*"), True), (tag_rule(f"Storage.{REGION}", "TCP", "0-65535"), True)])
def test_ws06_service_tag_rules(rule, fires):
    ev = run(managed({"r": rule}))
    assert rules_of(ev, "EXF-WS-06") == (["EXF-WS-06"] if fires else [])


def test_ws06_required_rules_and_other_modes_are_not_judged():
    rule = {**tag_rule("Storage"), "category": "Required"}
    assert by_rule(run(managed({"r": rule})), "EXF-WS-06") == []
    res = managed({"r": tag_rule("Storage")})
    res[1]["properties"]["managedNetwork"]["isolationMode"] = "Disabled"
    assert by_rule(run(res), "EXF-WS-06") == []


def test_ws07_private_endpoint_to_someone_elses_storage():
    foreign = f.storage_id("rg-x", "stpartner", sub="0badbeef-0000-0000-0000-000000000000")
    own = f.storage_id("rg-m", "stmanaged")
    ev = run(managed({"partner": pe_rule(foreign), "own": pe_rule(own),
                      "kv": pe_rule(f"{f.rg_id('rg-m')}/providers/Microsoft.KeyVault/vaults/kv1")}))
    [x] = by_rule(ev, "EXF-WS-07")
    assert foreign in x.detail and "own" not in x.items[0].split(" ->")[0]
    assert len(x.items) == 1
    assert by_rule(run(managed({"partner": pe_rule(foreign)}), Config(storage_allow_list=(foreign,))),
                   "EXF-WS-07") == []


def test_ws06_ws07_judge_a_hub_not_its_projects():
    foreign = f.storage_id("rg-x", "stpartner")
    res = managed({"r": tag_rule("Storage"), "p": pe_rule(foreign)})
    res[1]["kind"] = "Project"
    res[1]["properties"]["hubResourceId"] = f.ws_id("rg-m", "hub")
    assert rules_of(run(res), "EXF-WS-06", "EXF-WS-07") == []
    res[1]["kind"] = "Hub"
    assert rules_of(run(res), "EXF-WS-06", "EXF-WS-07") == ["EXF-WS-06", "EXF-WS-07"]


def test_handmade_managed_network_fixture():
    doc = json.loads((DATA / "azure/machinelearning/handmade_Workspace_get_managedNetworkRuleTypes.json").read_text())
    ev = run([doc["responses"]["200"]["body"]])
    [ws06] = by_rule(ev, "EXF-WS-06")
    assert "storage-global" in ws06.detail
    [ws07] = by_rule(ev, "EXF-WS-07")
    assert "stpartner" in ws07.detail and "stwsmanaged" not in ws07.detail


# --------------------------------------------------------------------------- fixtures and settings
def _body(path: str) -> dict:
    return json.loads((DATA / "azure/network" / path).read_text())["responses"]["200"]["body"]


def test_handmade_network_fixtures_make_a_firewalled_subnet():
    """The hand-written route table, firewall, policy and group: a subnet 10.10.1.0/24 routed to the firewall
    10.0.100.4 whose policy allows the documented hosts (its base policy is not in the picture)."""
    sub = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet-ml"
    sn = f.with_route_table(f.subnet(sub, "snet-compute", "10.10.1.0/24"),
                            _body("handmade_RouteTableGet_egressRoutes.json")["id"])
    vn = {"id": sub, "name": "vnet-ml", "type": "Microsoft.Network/virtualNetworks", "location": "westeurope",
          "properties": {"subnets": [sn]}}
    ws = f.workspace("rg1", "mlw", "westeurope", f.storage_id("rg1", "st"), sub="subid")
    bodies = [vn, ws, f.compute(ws["id"], "ci", "westeurope", subnet=sn["id"]),
              _body("handmade_RouteTableGet_egressRoutes.json"), _body("handmade_AzureFirewallGet_withPolicy.json"),
              _body("handmade_FirewallPolicyGet_withBasePolicy.json"),
              _body("handmade_FirewallPolicyRuleCollectionGroupGet_appAndNetworkRules.json")]
    pic = build(bodies)
    assert len(pic.route_tables) == len(pic.firewalls) == len(pic.fw_policies) == 1
    [policy] = pic.fw_policies.values()
    assert [g.name for g in policy.groups] == ["rcg-ml"] and policy.base_policy_id.endswith("fwp-org-base")
    ev = run(bodies)
    fw_findings = [x for x in ev.findings if x.rule_id.startswith(("EXF-FW", "EXF-RT", "EXF-NSG-01"))]
    assert fw_findings == []
    assert any(n.resource_id.endswith("fwp-org-base") for n in ev.notices)


def test_trusted_egress_appliances_setting(tmp_path):
    cfg = config_mod.parse({"EXFILGUARD_TRUSTED_EGRESS_APPLIANCES": "10.0.0.4, 10.0.0.5"})
    assert cfg.trusted_egress_appliances == ("10.0.0.4", "10.0.0.5")
    with pytest.raises(ConfigError, match=r"EXFILGUARD_TRUSTED_EGRESS_APPLIANCES.*not-an-ip"):
        config_mod.parse({"EXFILGUARD_TRUSTED_EGRESS_APPLIANCES": "not-an-ip"})
    p = tmp_path / "c.yaml"
    p.write_text("trustedEgressAppliances: [192.168.1.10]\nfqdnAllowList: [pypi.org]\n")
    cfg = configfile.load_config(p, environ={})
    assert cfg.trusted_egress_appliances == ("192.168.1.10",) and cfg.fqdn_allow_list == ("pypi.org",)


def test_fqdn_allow_list_is_shared_with_ws05():
    res = stack()
    collections(res)[1]["rules"].append(f.app_rule("pypi", ["pypi.org", "files.pythonhosted.org"], [PREFIX]))
    assert rules_of(run(res)) == ["EXF-FW-01"]
    allow = (*Config().fqdn_allow_list, "pypi.org", "*.pythonhosted.org")
    assert run(res, Config(fqdn_allow_list=allow)).findings == ()
