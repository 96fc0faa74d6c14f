"""Every rule of docs/semantics.md: a violating case, a compliant case, and for rules with a fix,
proof that the planned change applied to the input makes the rule pass."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from exfilguard.core.config import DEFAULT_FQDN_ALLOW_LIST, Config
from exfilguard.core.rules import RULES
from tests import factory as f
from tests.support import apply_findings, by_rule, run

RG, REGION = "rg-a", "westeurope"


def stack() -> list[dict]:
    return f.region_stack(RG, REGION, 10)


def named(res: list[dict], name: str) -> dict:
    return next(r for r in res if r["name"] == name)


def nsg_rules(res: list[dict]) -> list[dict]:
    return named(res, f"nsg-ml-{REGION}")["properties"]["securityRules"]


def subnet_props(res: list[dict]) -> dict:
    return named(res, f"vnet-ml-{REGION}")["properties"]["subnets"][0]["properties"]


def storage_def(res: list[dict]) -> dict:
    return named(res, f"sep-ml-{REGION}")["properties"]["serviceEndpointPolicyDefinitions"][0]["properties"]


def ws(res: list[dict]) -> dict:
    return named(res, f"mlw-{REGION}")


def ci(res: list[dict]) -> dict:
    return named(res, f"ci-{REGION}")


def cluster(res: list[dict]) -> dict:
    return named(res, f"cpu-cluster-{REGION}")


def account_id(res: list[dict]) -> str:
    return ws(res)["properties"]["storageAccount"]


OTHER_ACCOUNT = f.storage_id("rg-other", "stthirdparty01")
SEP_ID = f.sep_id(RG, f"sep-ml-{REGION}")
NSG_ID = f.nsg_id(RG, f"nsg-ml-{REGION}")


# --- mutations that each introduce exactly one kind of drift --------------------------------
def no_storage_endpoint(res):
    subnet_props(res)["serviceEndpoints"] = [{"service": "Microsoft.KeyVault", "locations": [REGION]}]


def no_sep(res):
    del subnet_props(res)["serviceEndpointPolicies"]


def no_nsg(res):
    del subnet_props(res)["networkSecurityGroup"]


def no_alias(res):
    defs = named(res, f"sep-ml-{REGION}")["properties"]["serviceEndpointPolicyDefinitions"]
    defs[:] = [d for d in defs if d["name"] != "aml-alias"]


def account_missing(res):
    storage_def(res)["serviceResources"] = [OTHER_ACCOUNT]


def wide_entry(res):
    storage_def(res)["serviceResources"].append(f.rg_id("rg-shared"))


def unexpected_account(res):
    storage_def(res)["serviceResources"].append(OTHER_ACCOUNT)


def no_internet_deny(res):
    rules = nsg_rules(res)
    rules[:] = [r for r in rules if r["name"] != "deny-internet-out"]


def storage_global_allow(res):
    nsg_rules(res).append(f.rule("allow-storage-global", 400, dest="Storage"))


def required_blocked(res):
    nsg_rules(res).append(f.rule("deny-storage", 150, access="Deny", protocol="*", dest="Storage", ports="*"))


def aml_too_wide(res):
    for r in nsg_rules(res):
        if r["name"] == "allow-azuremachinelearning-out":
            r["properties"].update({"protocol": "*", "destinationPortRange": "*"})


def inbound_from_internet(res):
    nsg_rules(res).append(f.rule("allow-rdp", 350, direction="Inbound", source="Internet", ports="3389"))


def compute_without_subnet(res):
    del ci(res)["properties"]["properties"]["subnet"]


def compute_public_ip(res):
    cluster(res)["properties"]["properties"]["enableNodePublicIp"] = True


def compute_old(res):
    ci(res)["properties"]["createdOn"] = "2022-11-30T23:59:59Z"


def compute_public_ssh(res):
    ci(res)["properties"]["properties"]["sshSettings"]["sshPublicAccess"] = "Enabled"


def workspace_no_pe(res):
    ws(res)["properties"]["privateEndpointConnections"][0]["properties"][
        "privateLinkServiceConnectionState"]["status"] = "Rejected"


def workspace_public(res):
    ws(res)["properties"]["publicNetworkAccess"] = "Enabled"


def storage_no_pe(res):
    named(res, "stmlwesteu10")["properties"]["privateEndpointConnections"] = []


def managed_internet(res):
    ws(res)["properties"]["managedNetwork"]["isolationMode"] = "AllowInternetOutbound"


def managed_bad_fqdn(res):
    mn = ws(res)["properties"]["managedNetwork"]
    mn["isolationMode"] = "AllowOnlyApprovedOutbound"
    mn["outboundRules"] = {
        "pypi": {"type": "FQDN", "category": "UserDefined", "destination": "upload.example.net", "status": "Active"},
        "batch": {"type": "FQDN", "category": "UserDefined", "destination": f"*.{REGION}.batch.azure.com",
                  "status": "Active"},
    }


def viennaglobal_image(res):
    res.append(f.environment(ws(res)["id"], "old", "1", "viennaglobal.azurecr.io/azureml/base:latest"))


def appliance_route(res):
    res.extend(f.firewalled_stack("rg-rt", "uksouth", 41))
    table = named(res, "rt-ml-uksouth")["properties"]["routes"][0]["properties"]
    table["nextHopIpAddress"] = "10.250.0.4"


def firewall_leak(res):
    res.extend(f.firewalled_stack("rg-fw1", "northeurope", 42, leaky=True))


def firewall_blocks_batch(res):
    res.extend(f.firewalled_stack("rg-fw2", "eastus", 43))
    rcg = next(r for r in res if r["name"] == "rcg-ml" and "rg-fw2" in r["id"])
    rcg["properties"]["ruleCollections"][1]["rules"][0]["targetFqdns"] = []


def firewall_subnet_storage_endpoint(res):
    res.extend(f.firewalled_stack("rg-fw3", "westus", 44))
    named(res, "vnet-hub-westus")["properties"]["subnets"][0]["properties"]["serviceEndpoints"] = [
        f.storage_endpoint("westus")]
    rcg = next(r for r in res if r["name"] == "rcg-ml" and "rg-fw3" in r["id"])
    rcg["properties"]["ruleCollections"][0]["rules"] = [
        r for r in rcg["properties"]["ruleCollections"][0]["rules"] if r["name"] != "storage-regional"]


def managed_storage_tag(res):
    w = ws(res)["properties"]["managedNetwork"]
    w["isolationMode"] = "AllowOnlyApprovedOutbound"
    w["outboundRules"]["storage-any"] = {"type": "ServiceTag", "category": "UserDefined", "status": "Active",
                                         "destination": {"serviceTag": "Storage", "protocol": "TCP",
                                                         "portRanges": "443", "action": "Allow"}}


def managed_foreign_pe(res):
    w = ws(res)["properties"]["managedNetwork"]
    w["isolationMode"] = "AllowOnlyApprovedOutbound"
    w["outboundRules"]["partner"] = {"type": "PrivateEndpoint", "category": "UserDefined", "status": "Active",
                                     "destination": {"serviceResourceId": OTHER_ACCOUNT, "subresourceTarget": "blob"}}


VIOLATIONS: dict[str, tuple[Callable, Config]] = {
    "EXF-SN-01": (no_storage_endpoint, Config()),
    "EXF-SN-02": (no_sep, Config(attach_sep_id=SEP_ID)),
    "EXF-SN-03": (no_nsg, Config(attach_nsg_id=NSG_ID)),
    "EXF-SEP-01": (no_alias, Config()),
    "EXF-SEP-02": (account_missing, Config(storage_allow_list=(OTHER_ACCOUNT,))),
    "EXF-SEP-03": (wide_entry, Config()),
    "EXF-SEP-04": (unexpected_account, Config()),
    "EXF-NSG-01": (no_internet_deny, Config()),
    "EXF-NSG-02": (storage_global_allow, Config()),
    "EXF-NSG-03": (required_blocked, Config()),
    "EXF-NSG-04": (aml_too_wide, Config()),
    "EXF-NSG-05": (inbound_from_internet, Config()),
    "EXF-CMP-01": (compute_without_subnet, Config()),
    "EXF-CMP-02": (compute_public_ip, Config()),
    "EXF-CMP-03": (compute_old, Config()),
    "EXF-CMP-04": (compute_public_ssh, Config()),
    "EXF-WS-01": (workspace_no_pe, Config()),
    "EXF-WS-02": (workspace_public, Config()),
    "EXF-WS-03": (storage_no_pe, Config()),
    "EXF-WS-04": (managed_internet, Config()),
    "EXF-WS-05": (managed_bad_fqdn, Config()),
    "EXF-ENV-01": (viennaglobal_image, Config()),
    "EXF-RT-01": (appliance_route, Config()),
    "EXF-FW-01": (firewall_leak, Config()),
    "EXF-FW-02": (firewall_blocks_batch, Config()),
    "EXF-FW-03": (firewall_subnet_storage_endpoint, Config()),
    "EXF-WS-06": (managed_storage_tag, Config()),
    "EXF-WS-07": (managed_foreign_pe, Config()),
}


def test_every_rule_has_a_violating_case():
    assert set(VIOLATIONS) == set(RULES)


def test_compliant_stack_has_no_findings():
    ev = run(stack())
    assert ev.findings == ()
    assert ev.resources == 9


@pytest.mark.parametrize("rule_id", sorted(VIOLATIONS))
def test_rule_fires_on_its_violation_only(rule_id):
    mutate, cfg = VIOLATIONS[rule_id]
    res = stack()
    mutate(res)
    ev = run(res, cfg)
    hits = by_rule(ev, rule_id)
    assert len(hits) == 1, ev.findings
    assert hits[0].severity is RULES[rule_id].severity
    assert hits[0].title == RULES[rule_id].title
    assert hits[0].detail


@pytest.mark.parametrize("rule_id", sorted(r for r, rule in RULES.items() if rule.fix_kind.value != "alert"))
def test_planned_fix_makes_the_rule_pass(rule_id):
    mutate, cfg = VIOLATIONS[rule_id]
    res = stack()
    mutate(res)
    ev = run(res, cfg)
    [finding] = by_rule(ev, rule_id)
    assert finding.fix_mode == "auto" and finding.edits
    fixed = run(apply_findings(res, [finding]), cfg)
    assert by_rule(fixed, rule_id) == []


@pytest.mark.parametrize("rule_id", sorted(r for r, rule in RULES.items() if rule.fix_kind.value == "alert"))
def test_alert_only_rules_plan_no_edits(rule_id):
    mutate, cfg = VIOLATIONS[rule_id]
    res = stack()
    mutate(res)
    [finding] = by_rule(run(res, cfg), rule_id)
    assert finding.fix_mode == "manual" and finding.edits == ()


def test_all_fixes_together_converge_in_one_pass():
    res = stack()
    for rule_id, (mutate, _) in VIOLATIONS.items():
        if rule_id not in ("EXF-SN-02", "EXF-SN-03"):
            mutate(res)
    cfg = Config(storage_allow_list=())
    ev = run(res, cfg)
    auto = [x for x in ev.findings if x.fix_mode == "auto"]
    assert {x.rule_id for x in auto} >= {"EXF-NSG-01", "EXF-NSG-02", "EXF-NSG-03", "EXF-NSG-05", "EXF-SEP-01",
                                         "EXF-SN-01"}
    # The EXF-WS-01 mutation leaves the workspace without an approved private endpoint: disabling
    # public access then would lock everyone out, so WS-02 waits for a person.
    assert [x.fix_mode for x in ev.findings if x.rule_id == "EXF-WS-02"] == ["manual"]
    after = run(apply_findings(res, auto), cfg)
    assert [x for x in after.findings if x.fix_mode == "auto"] == []


# --- compliant variants: near misses that must not fire --------------------------------------
def test_sn02_sn03_without_configured_target_are_manual():
    res = stack()
    no_sep(res)
    no_nsg(res)
    ev = run(res)
    assert {x.rule_id: x.fix_mode for x in ev.findings if x.rule_id.startswith("EXF-SN")} == {
        "EXF-SN-02": "manual", "EXF-SN-03": "manual"}


def test_storage_global_endpoint_counts():
    res = stack()
    subnet_props(res)["serviceEndpoints"] = [{"service": "Microsoft.Storage.Global", "locations": ["*"]}]
    assert by_rule(run(res), "EXF-SN-01") == []


def test_allow_listed_account_is_not_unexpected():
    res = stack()
    unexpected_account(res)
    assert by_rule(run(res, Config(storage_allow_list=(OTHER_ACCOUNT.upper(),))), "EXF-SEP-04") == []


def test_sep03_keeps_required_account():
    res = stack()
    wide_entry(res)
    [finding] = by_rule(run(res), "EXF-SEP-03")
    fixed = apply_findings(res, [finding])
    assert storage_def(fixed)["serviceResources"] == [account_id(res)]


def test_sep02_without_storage_definition_creates_one():
    res = stack()
    defs = named(res, f"sep-ml-{REGION}")["properties"]["serviceEndpointPolicyDefinitions"]
    defs[:] = [d for d in defs if d["name"] == "aml-alias"]
    [finding] = by_rule(run(res), "EXF-SEP-02")
    fixed = run(apply_findings(res, [finding]))
    assert by_rule(fixed, "EXF-SEP-02") == []


def test_sep_alias_under_any_service_counts():
    res = stack()
    defs = named(res, f"sep-ml-{REGION}")["properties"]["serviceEndpointPolicyDefinitions"]
    defs[1]["properties"]["service"] = "Microsoft.Storage"
    defs[1]["properties"]["serviceResources"] = ["/services/azure/machinelearning"]
    assert by_rule(run(res), "EXF-SEP-01") == []


def test_nsg01_allow_before_deny_fires():
    res = stack()
    nsg_rules(res).append(f.rule("allow-web", 500, dest="Internet", ports="80"))
    [finding] = by_rule(run(res), "EXF-NSG-01")
    assert "allow-web" in finding.detail


def test_nsg01_deny_with_narrow_ports_is_not_enough():
    res = stack()
    for r in nsg_rules(res):
        if r["name"] == "deny-internet-out":
            r["properties"]["destinationPortRange"] = "443"
    assert len(by_rule(run(res), "EXF-NSG-01")) == 1


def test_nsg01_deny_from_other_source_does_not_apply():
    res = stack()
    for r in nsg_rules(res):
        if r["name"] == "deny-internet-out":
            r["properties"]["sourceAddressPrefix"] = "192.168.0.0/24"
    assert len(by_rule(run(res), "EXF-NSG-01")) == 1


def test_nsg01_deny_from_containing_prefix_applies():
    res = stack()
    for r in nsg_rules(res):
        if r["name"] == "deny-internet-out":
            r["properties"]["sourceAddressPrefix"] = "10.10.0.0/16"
    assert by_rule(run(res), "EXF-NSG-01") == []


def test_nsg01_fix_takes_next_free_priority():
    res = stack()
    no_internet_deny(res)
    nsg_rules(res).append(f.rule("something", 4096, direction="Outbound", dest="10.0.0.0/8"))
    [finding] = by_rule(run(res), "EXF-NSG-01")
    assert "4095" in finding.fix_summary


def test_nsg01_fix_keeps_required_flows_open():
    """With no custom allows, the deny would block Azure ML: the fix carries the allows."""
    res = stack()
    nsg_rules(res).clear()
    ev = run(res)
    [n1] = by_rule(ev, "EXF-NSG-01")
    assert by_rule(ev, "EXF-NSG-03") == []  # flows are open today (AllowInternetOutBound)
    after = run(apply_findings(res, [n1]))
    assert by_rule(after, "EXF-NSG-01") == [] and by_rule(after, "EXF-NSG-03") == []


def test_nsg02_removes_only_offending_destinations():
    res = stack()
    nsg_rules(res).append(f.rule("mixed", 410, dest=[f"Storage.{REGION}", "52.1.2.3/32", "10.1.0.0/16"]))
    [finding] = by_rule(run(res), "EXF-NSG-02")
    fixed = apply_findings(res, [finding])
    mixed = next(r for r in nsg_rules(fixed) if r["name"] == "mixed")
    assert mixed["properties"]["access"] == "Allow"
    assert mixed["properties"]["destinationAddressPrefixes"] == [f"Storage.{REGION}", "10.1.0.0/16"]
    assert mixed["properties"]["description"].startswith("[exfilguard EXF-NSG-02]")


def test_nsg02_single_destination_becomes_deny_never_deleted():
    res = stack()
    storage_global_allow(res)
    [finding] = by_rule(run(res), "EXF-NSG-02")
    fixed = apply_findings(res, [finding])
    rule = next(r for r in nsg_rules(fixed) if r["name"] == "allow-storage-global")
    assert rule["properties"]["access"] == "Deny"
    assert len(nsg_rules(fixed)) == len(nsg_rules(res))


@pytest.mark.parametrize("dest", ["*", "Internet", "0.0.0.0/0", "8.8.8.0/24", "Storage.eastus",
                                  "AzureFrontDoor.Frontend",
                                  "AzureCloud", "2001:db8::/32"])
def test_nsg02_offending_destinations(dest):
    res = stack()
    nsg_rules(res).append(f.rule("x", 420, dest=dest))
    assert len(by_rule(run(res), "EXF-NSG-02")) == 1


@pytest.mark.parametrize("dest", ["10.0.0.0/8", "192.168.1.4", "AzureActiveDirectory", "AzureMonitor",
                                  "VirtualNetwork", f"MicrosoftContainerRegistry.{REGION}", "fd00::/8"])
def test_nsg02_permitted_destinations(dest):
    res = stack()
    nsg_rules(res).append(f.rule("x", 420, dest=dest))
    assert by_rule(run(res), "EXF-NSG-02") == []


def test_nsg02_extra_permitted_tag():
    res = stack()
    nsg_rules(res).append(f.rule("x", 420, dest="Sql.westeurope"))
    assert len(by_rule(run(res), "EXF-NSG-02")) == 1
    assert by_rule(run(res, Config(extra_service_tags=("Sql.<region>",))), "EXF-NSG-02") == []


def test_nsg02_fires_even_when_shadowed():
    res = stack()
    nsg_rules(res).append(f.rule("shadowed", 4090, dest="Internet"))  # after nothing but defaults
    nsg_rules(res).append(f.rule("deny-first", 100, access="Deny", protocol="*", dest="*", ports="*"))
    assert len(by_rule(run(res), "EXF-NSG-02")) == 1


def test_nsg03_curated_flows_optional():
    res = stack()
    nsg_rules(res).append(f.rule("deny-mcr", 150, access="Deny", protocol="*",
                                 dest=f"MicrosoftContainerRegistry.{REGION}",
                                 ports="*"))
    assert len(by_rule(run(res), "EXF-NSG-03")) == 1
    assert by_rule(run(res, Config(curated_environments=False)), "EXF-NSG-03") == []


def test_nsg04_documented_ports_are_fine():
    res = stack()
    nsg_rules(res).append(f.rule("aml-8787", 260, dest="AzureMachineLearning", ports=["8787", "18881"]))
    nsg_rules(res).append(f.rule("aml-udp", 261, dest="AzureMachineLearning", protocol="Udp", ports="5831"))
    assert by_rule(run(res), "EXF-NSG-04") == []


def test_nsg04_storage_on_any_protocol():
    res = stack()
    nsg_rules(res).append(f.rule("st", 262, dest=f"Storage.{REGION}", protocol="*"))
    assert len(by_rule(run(res), "EXF-NSG-04")) == 1


def test_nsg05_service_tag_source_is_fine():
    res = stack()
    nsg_rules(res).append(f.rule("batch-in", 320, direction="Inbound", source=f"BatchNodeManagement.{REGION}",
                                 ports="29876-29877"))
    assert by_rule(run(res), "EXF-NSG-05") == []


def test_unguarded_nsg_is_not_evaluated():
    res = stack()
    no_internet_deny(res)
    for c in (ci(res), cluster(res)):
        c["properties"]["properties"]["subnet"]["id"] = f"{f.vnet_id(RG, 'other')}/subnets/x"
    assert by_rule(run(res), "EXF-NSG-01") == []


def test_multi_region_nsg_judged_against_each_region():
    res = stack()
    # An East US VNet whose subnet shares the West Europe NSG and SEP.
    vid = f.vnet_id(RG, "vnet-eus")
    sn = f.subnet(vid, "snet", "10.30.1.0/24", NSG_ID, [SEP_ID], [f.storage_endpoint("eastus")])
    res.append(f.vnet(RG, "vnet-eus", "East US", "10.30.0.0/16", [sn]))
    res.append(f.compute(ws(res)["id"], "ci-eus", "eastus", subnet=sn["id"]))
    ev = run(res)
    [n3] = by_rule(ev, "EXF-NSG-03")
    assert "eastus" in n3.detail.lower()
    assert by_rule(ev, "EXF-NSG-02") == []
    fixed = run(apply_findings(res, [n3]))
    assert by_rule(fixed, "EXF-NSG-03") == []


def test_cmp01_managed_network_workspace_is_fine():
    res = stack()
    compute_without_subnet(res)
    ws(res)["properties"]["managedNetwork"]["isolationMode"] = "AllowOnlyApprovedOutbound"
    assert by_rule(run(res), "EXF-CMP-01") == []


def test_cmp02_public_address_counts_only_without_the_flag():
    res = stack()
    ci(res)["properties"]["properties"]["connectivityEndpoints"]["publicIpAddress"] = "20.1.2.3"
    assert by_rule(run(res), "EXF-CMP-02") == []  # enableNodePublicIp false wins
    del ci(res)["properties"]["properties"]["enableNodePublicIp"]
    assert len(by_rule(run(res), "EXF-CMP-02")) == 1


def test_cmp02_quarantine_plans_a_stop_or_scale_down():
    res = stack()
    compute_public_ip(res)
    ci(res)["properties"]["properties"]["enableNodePublicIp"] = True
    cluster(res)["properties"]["properties"]["scaleSettings"]["minNodeCount"] = 2
    ev = run(res, Config(quarantine=True))
    fixes = {x.resource_id.rsplit("/", 1)[-1]: x for x in by_rule(ev, "EXF-CMP-02")}
    assert fixes[f"ci-{REGION}"].edits[0].op == "action"
    assert fixes[f"cpu-cluster-{REGION}"].edits[0].path[-1] == "minNodeCount"
    assert all(x.fix_mode == "auto" for x in fixes.values())


def test_cmp03_boundary_day_is_fine():
    res = stack()
    ci(res)["properties"]["createdOn"] = "2022-12-01T00:00:00Z"
    assert by_rule(run(res), "EXF-CMP-03") == []


def test_cmp04_cluster_remote_login():
    res = stack()
    cluster(res)["properties"]["properties"]["remoteLoginPortPublicAccess"] = "Enabled"
    assert len(by_rule(run(res), "EXF-CMP-04")) == 1


def test_ws01_managed_approved_outbound_is_fine():
    res = stack()
    workspace_no_pe(res)
    ws(res)["properties"]["managedNetwork"]["isolationMode"] = "AllowOnlyApprovedOutbound"
    assert by_rule(run(res), "EXF-WS-01") == []


def test_ws02_missing_counts_as_enabled():
    res = stack()
    del ws(res)["properties"]["publicNetworkAccess"]
    assert len(by_rule(run(res), "EXF-WS-02")) == 1


def test_ws03_is_about_the_storage_account():
    res = stack()
    storage_no_pe(res)
    [finding] = by_rule(run(res), "EXF-WS-03")
    assert finding.resource_id == account_id(res)


def test_ws05_allowed_hosts():
    res = stack()
    mn = ws(res)["properties"]["managedNetwork"]
    mn["isolationMode"] = "AllowOnlyApprovedOutbound"
    mn["outboundRules"] = {
        "a": {"type": "FQDN", "category": "UserDefined", "destination": "ML.azure.com", "status": "Active"},
        "b": {"type": "FQDN", "category": "UserDefined", "destination": "eu.data.mcr.microsoft.com"},
        "c": {"type": "FQDN", "category": "UserDefined", "destination": "automlresources-prod.azureedge.net"},
        "d": {"type": "FQDN", "category": "Required", "destination": "anything.example.com"},
        "e": {"type": "PrivateEndpoint", "category": "UserDefined", "destination": {"serviceResourceId": "x"}},
    }
    assert by_rule(run(res), "EXF-WS-05") == []
    mn["outboundRules"]["f"] = {"type": "FQDN", "category": "UserDefined", "destination": "pypi.org"}
    assert len(by_rule(run(res), "EXF-WS-05")) == 1
    allow = (*DEFAULT_FQDN_ALLOW_LIST, "pypi.org")
    assert by_rule(run(res, Config(fqdn_allow_list=allow)), "EXF-WS-05") == []
    # The list replaces the defaults: without them ml.azure.com is no longer approved.
    assert len(by_rule(run(res, Config(fqdn_allow_list=("pypi.org",))), "EXF-WS-05")) == 1


def test_env01_mcr_is_fine():
    res = stack()
    res.append(f.environment(ws(res)["id"], "new", "2", "mcr.microsoft.com/azureml/curated/sklearn:5"))
    assert by_rule(run(res), "EXF-ENV-01") == []


def test_findings_are_sorted_by_severity():
    res = stack()
    for mutate, _ in VIOLATIONS.values():
        mutate(res)
    ranks = [x.severity.rank for x in run(res).findings]
    assert ranks == sorted(ranks, reverse=True)


def test_cmp02_quarantine_leaves_a_stopped_instance_alone():
    res = stack()
    inner = ci(res)["properties"]["properties"]
    inner["enableNodePublicIp"] = True
    inner["state"] = "Stopped"
    [finding] = by_rule(run(res, Config(quarantine=True)), "EXF-CMP-02")
    assert finding.fix_mode == "manual" and finding.edits == ()


def test_ws02_without_an_approved_private_endpoint_is_manual_and_says_why():
    res = stack()
    workspace_public(res)
    workspace_no_pe(res)  # the only connection is Rejected
    [finding] = by_rule(run(res), "EXF-WS-02")
    assert finding.fix_mode == "manual" and finding.edits == ()
    assert "add an approved private endpoint" in finding.fix_summary
    assert "no approved private endpoint" in finding.detail
    assert by_rule(run(res, Config(mode="remediate")), "EXF-WS-02")[0].fix_mode == "manual"


def test_ws02_with_an_approved_private_endpoint_is_auto():
    res = stack()
    workspace_public(res)
    [finding] = by_rule(run(res), "EXF-WS-02")
    assert finding.fix_mode == "auto" and finding.fix_summary == "set publicNetworkAccess: Disabled"
    assert [e.value for e in finding.edits] == ["Disabled"]
