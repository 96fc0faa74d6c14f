"""What baseline.md's "Scope" and the rules' precise wording decide where a reading could
differ: attached computes, the ML alias in any definition, entries below a storage account,
registry hosts with a port, wildcards inside allowed wildcards, offsets in ``createdOn``, and
AI Foundry hub-based projects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exfilguard.app.sweep import index_rows
from exfilguard.core import ids
from exfilguard.core.config import Config
from exfilguard.core.engine import plan
from exfilguard.core.picture import build
from exfilguard.core.rules.compute import created_day
from exfilguard.core.rules.environment import registry_host
from tests import factory as f
from tests.core.test_rules import OTHER_ACCOUNT, REGION, RG, SEP_ID, account_id, ci, named, stack, storage_def, ws
from tests.scope_builders import ATTACHED_TYPES, attached_compute, hub, project
from tests.support import REPO, apply_findings, by_rule, run

ALIAS = "/services/Azure/MachineLearning"


def rules_of(ev) -> set[str]:
    return {x.rule_id for x in ev.findings}


def cli_scan(bodies: list[dict], tmp_path: Path, *args: str) -> tuple[int, dict]:
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(bodies))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXFILGUARD_")}
    r = subprocess.run([sys.executable, "-m", "exfilguard.cli", "scan", "--snapshot", str(path), "--format", "json",
                        *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


# --- 2: only ComputeInstance and AmlCompute are ML computes ---------------------------------
def unguarded_network() -> tuple[list[dict], str]:
    """A VNet whose subnet has no NSG, no policy and no storage endpoint (every SN rule would
    fire), plus an NSG letting everything out, attached to a second subnet."""
    vid = f.vnet_id(RG, "vnet-aks")
    open_nsg = f.nsg(RG, "nsg-aks", REGION, [f.rule("allow-all-out", 100, protocol="*", dest="*", ports="*")])
    bare = f.subnet(vid, "snet-bare", "10.50.1.0/24")
    with_nsg = f.subnet(vid, "snet-aks", "10.50.2.0/24", open_nsg["id"])
    return [f.vnet(RG, "vnet-aks", REGION, "10.50.0.0/16", [bare, with_nsg]), open_nsg], vid


@pytest.mark.parametrize("kind", ATTACHED_TYPES)
def test_attached_compute_gets_no_cmp_finding_and_guards_no_subnet(kind):
    res = stack()
    network, vid = unguarded_network()
    res += network
    res.append(attached_compute(ws(res)["id"], "attached-bare", REGION, kind, subnet=f"{vid}/subnets/snet-bare"))
    res.append(attached_compute(ws(res)["id"], "attached-aks", REGION, kind, subnet=f"{vid}/subnets/snet-aks"))
    res.append(attached_compute(ws(res)["id"], "attached-nowhere", REGION, kind))
    ev = run(res)
    assert ev.findings == ()
    assert build(res).guarded_subnets.keys() == build(stack()).guarded_subnets.keys()


def test_an_ml_compute_on_the_same_subnet_still_guards_it():
    res = stack()
    network, vid = unguarded_network()
    res += network
    res.append(attached_compute(ws(res)["id"], "attached-aks", REGION, subnet=f"{vid}/subnets/snet-aks"))
    res.append(f.compute(ws(res)["id"], "ci-aks", REGION, subnet=f"{vid}/subnets/snet-aks"))
    ev = run(res)
    assert {x.rule_id for x in ev.findings if "nsg-aks" in x.resource_id} >= {"EXF-NSG-01", "EXF-NSG-02"}
    assert not [x for x in ev.findings if x.rule_id.startswith("EXF-CMP")]


def test_compute_type_is_read_case_insensitively_and_a_missing_type_is_no_ml_compute():
    res = stack()
    ci(res)["properties"]["computeType"] = "computeinstance"
    ci(res)["properties"]["properties"]["enableNodePublicIp"] = True
    assert len(by_rule(run(res), "EXF-CMP-02")) == 1
    del ci(res)["properties"]["computeType"]
    assert by_rule(run(res), "EXF-CMP-02") == []


def test_sweep_indexes_an_attached_compute_without_its_subnet():
    res = stack()
    network, vid = unguarded_network()
    res += network
    res.append(attached_compute(ws(res)["id"], "attached-aks", REGION, subnet=f"{vid}/subnets/snet-aks"))
    computes, subnets = index_rows(build(res))
    by_name = {c.compute_id.rsplit("/", 1)[-1]: c.subnet_id for c in computes}
    assert by_name["attached-aks"] == ""
    assert by_name[f"ci-{REGION}"].endswith("/subnets/snet-training")
    assert all("vnet-aks" not in s.subnet_id for s in subnets)


def test_cli_scan_leaves_an_attached_computes_network_alone(tmp_path):
    res = f.region_stack(RG, REGION, 10)
    network, vid = unguarded_network()
    res += network
    res.append(attached_compute(f.ws_id(RG, f"mlw-{REGION}"), "aks-inference", REGION,
                                subnet=f"{vid}/subnets/snet-aks"))
    code, report = cli_scan(res, tmp_path)
    assert (code, report["findings"]) == (0, [])


# --- 3: the ML alias in any definition, entries below an account -----------------------------
def sep_defs(res: list[dict]) -> list[dict]:
    return named(res, f"sep-ml-{REGION}")["properties"]["serviceEndpointPolicyDefinitions"]


def test_alias_inside_the_storage_definition_is_never_sep04_nor_removed():
    res = stack()
    sep_defs(res)[:] = [d for d in sep_defs(res) if d["name"] != "aml-alias"]
    storage_def(res)["serviceResources"].append(ALIAS)
    ev = run(res)
    assert rules_of(ev) == set()
    # With a real unexpected entry next to it, the fix removes that entry and keeps the alias.
    storage_def(res)["serviceResources"].append(OTHER_ACCOUNT)
    [sep04] = by_rule(run(res), "EXF-SEP-04")
    assert sep04.items == (OTHER_ACCOUNT,)
    fixed = apply_findings(res, [sep04])
    assert storage_def(fixed)["serviceResources"] == [account_id(res), ALIAS]
    assert run(fixed).findings == ()


def test_alias_left_alone_in_a_storage_definition_keeps_the_definition():
    res = stack()
    sep_defs(res)[:] = [d for d in sep_defs(res) if d["name"] != "aml-alias"]
    sep_defs(res).append({"name": "more-storage", "properties": {
        "service": "Microsoft.Storage", "serviceResources": [OTHER_ACCOUNT, ALIAS.upper()]}})
    ev = run(res)
    assert rules_of(ev) == {"EXF-SEP-04"}
    fixed = apply_findings(res, ev.findings)
    assert [d["properties"]["serviceResources"] for d in sep_defs(fixed)] == [[account_id(res)], [ALIAS.upper()]]
    assert run(fixed).findings == ()


@pytest.mark.parametrize("alias", [ALIAS + "/", ALIAS + "/Sub", "/services/Azure", " " + ALIAS])
def test_sep01_wants_the_alias_exactly(alias):
    res = stack()
    sep_defs(res)[1]["properties"]["serviceResources"] = [alias]
    [finding] = by_rule(run(res), "EXF-SEP-01")
    fixed = run(apply_findings(res, [finding]))
    assert by_rule(fixed, "EXF-SEP-01") == []


def test_sep01_alias_compares_case_insensitively():
    res = stack()
    sep_defs(res)[1]["properties"]["serviceResources"] = [ALIAS.upper()]
    assert by_rule(run(res), "EXF-SEP-01") == []


def test_entry_below_the_required_account_names_that_account():
    res = stack()
    storage_def(res)["serviceResources"].append(f"{account_id(res)}/blobServices/default")
    assert run(res).findings == ()


def test_entry_below_another_account_is_sep04_unless_that_account_is_allowed():
    res = stack()
    below = f"{OTHER_ACCOUNT}/blobServices/default"
    storage_def(res)["serviceResources"].append(below)
    [finding] = by_rule(run(res), "EXF-SEP-04")
    assert finding.items == (below,)
    assert run(apply_findings(res, [finding])).findings == ()
    assert run(res, Config(storage_allow_list=(OTHER_ACCOUNT,))).findings == ()


def test_an_entry_below_the_required_account_does_not_list_it_for_sep02():
    """SEP-02 wants the account by its own ID."""
    res = stack()
    storage_def(res)["serviceResources"] = [f"{account_id(res)}/blobServices/default"]
    assert rules_of(run(res)) == {"EXF-SEP-02"}


# --- 4: a registry host with a port ----------------------------------------------------------
@pytest.mark.parametrize("image", ["viennaglobal.azurecr.io:443/azureml/base:latest",
                                   "VIENNAGLOBAL.AZURECR.IO:443/azureml/openmpi3.1.2-ubuntu18.04",
                                   "viennaglobal.azurecr.io/azureml/base@sha256:0123abcd"])
def test_env01_matches_the_registry_with_or_without_a_port(image):
    res = stack()
    res.append(f.environment(ws(res)["id"], "legacy", "1", image))
    [finding] = by_rule(run(res), "EXF-ENV-01")
    assert image in finding.detail


@pytest.mark.parametrize("image", ["mcr.microsoft.com:443/azureml/base:latest",
                                   "viennaglobal.azurecr.io.example.net/azureml/base",
                                   "myregistry.azurecr.io/viennaglobal.azurecr.io:443",
                                   "viennaglobal.azurecr.io:latest"])
def test_env01_other_registries_are_fine(image):
    res = stack()
    res.append(f.environment(ws(res)["id"], "other", "1", image))
    assert by_rule(run(res), "EXF-ENV-01") == []


def test_registry_host():
    assert registry_host(" ViennaGlobal.azurecr.io:443/a/b:1 ") == "viennaglobal.azurecr.io"
    assert registry_host("localhost:5000/x") == "localhost"


# --- 5: a wildcard inside an allowed wildcard ------------------------------------------------
def managed(res: list[dict], **destinations: str) -> None:
    mn = ws(res)["properties"]["managedNetwork"]
    mn["isolationMode"] = "AllowOnlyApprovedOutbound"
    mn["outboundRules"] = {name: {"type": "FQDN", "category": "UserDefined", "destination": d, "status": "Active"}
                           for name, d in destinations.items()}


def test_ws05_wildcard_inside_an_allowed_wildcard_is_allowed():
    res = stack()
    managed(res, regional=f"*.{REGION}.data.mcr.microsoft.com", same="*.data.mcr.microsoft.com",
            batch=f"*.node.{REGION}.batch.azure.com")
    assert by_rule(run(res), "EXF-WS-05") == []


@pytest.mark.parametrize("host", ["*.mcr.microsoft.com", "*", "*data.mcr.microsoft.com", "*.microsoft.com",
                                  "*.eastus.batch.azure.com"])
def test_ws05_wider_wildcards_are_flagged(host):
    res = stack()
    managed(res, wide=host)
    [finding] = by_rule(run(res), "EXF-WS-05")
    assert host in finding.detail


# --- 7: createdOn with a UTC offset ----------------------------------------------------------
@pytest.mark.parametrize(("created", "old"), [
    ("2022-11-30T20:00:00-05:00", False),  # 2022-12-01T01:00Z
    ("2022-12-01T01:00:00+02:00", True),  # 2022-11-30T23:00Z
    ("2022-12-01T00:30:00.1234567+01:00", True),  # seven fractional digits, as ARM writes them
    ("2022-11-30T23:59:59Z", True),
    ("2022-12-01T00:00:00Z", False),
    ("2022-12-01T00:00:00", False),  # no offset: UTC already
])
def test_cmp03_compares_createdon_in_utc(created, old):
    res = stack()
    ci(res)["properties"]["createdOn"] = created
    assert len(by_rule(run(res), "EXF-CMP-03")) == (1 if old else 0)


def test_created_day():
    assert created_day("2022-11-30T20:00:00-05:00") == "2022-12-01"
    assert created_day("not a date") == "not a date"


# --- 8: AI Foundry hub-based projects --------------------------------------------------------
HUB_STORAGE = f.storage_id(RG, "sthubaifoundry01")


def foundry(**hub_args) -> list[dict]:
    """The stack plus a hub and its project; the project's computes sit on the guarded subnet,
    whose policy lists the hub's storage."""
    res = stack()
    h = hub(RG, "aihub-demo", REGION, HUB_STORAGE, **hub_args)
    p = project(RG, "aiproj-demo", REGION, h["id"])
    subnet = named(res, f"vnet-ml-{REGION}")["properties"]["subnets"][0]["id"]
    res += [h, p, f.storage(RG, "sthubaifoundry01", REGION),
            f.compute(p["id"], "ci-project", REGION, subnet=subnet),
            f.compute(p["id"], "cluster-project", REGION, kind="AmlCompute", subnet=subnet)]
    storage_def(res)["serviceResources"].append(HUB_STORAGE)
    return res


def proj(res: list[dict]) -> dict:
    return named(res, "aiproj-demo")


def test_a_hub_based_project_is_not_judged_as_a_workspace():
    """Public access enabled, no private endpoint, no managed network, no storage: all its
    hub's to decide."""
    res = foundry()
    assert run(res).findings == ()


def test_the_hub_carries_the_workspace_findings():
    res = foundry(public="Enabled", pe_status=None, isolation="AllowInternetOutbound")
    ev = run(res)
    on = {(x.rule_id, x.resource_id.rsplit("/", 1)[-1]) for x in ev.findings}
    assert on == {("EXF-WS-01", "aihub-demo"), ("EXF-WS-02", "aihub-demo"), ("EXF-WS-04", "aihub-demo")}


def test_hub_managed_network_rules_judge_the_hub_only():
    res = foundry(outbound={"pypi": {"type": "FQDN", "category": "UserDefined", "destination": "pypi.org"}})
    proj(res)["properties"]["managedNetwork"] = {"isolationMode": "AllowOnlyApprovedOutbound", "outboundRules": {
        "x": {"type": "FQDN", "category": "UserDefined", "destination": "upload.example.net"}}}
    [finding] = by_rule(run(res), "EXF-WS-05")
    assert finding.resource_id == named(res, "aihub-demo")["id"]


def test_project_computes_are_evaluated_as_any_other():
    res = foundry()
    named(res, "ci-project")["properties"]["properties"]["enableNodePublicIp"] = True
    named(res, "cluster-project")["properties"]["createdOn"] = "2022-06-01T00:00:00Z"
    ev = run(res)
    assert {(x.rule_id, x.resource_id.rsplit("/", 1)[-1]) for x in ev.findings} == {
        ("EXF-CMP-02", "ci-project"), ("EXF-CMP-03", "cluster-project")}


def test_project_compute_without_subnet_runs_in_the_hubs_managed_network():
    res = foundry()
    del named(res, "ci-project")["properties"]["properties"]["subnet"]
    assert run(res).findings == ()
    named(res, "aihub-demo")["properties"]["managedNetwork"]["isolationMode"] = "Disabled"
    [finding] = by_rule(run(res), "EXF-CMP-01")
    assert finding.resource_id.endswith("/ci-project")


def test_project_default_storage_is_the_hubs_for_the_policy():
    res = foundry()
    storage_def(res)["serviceResources"].remove(HUB_STORAGE)
    [sep02] = by_rule(run(res), "EXF-SEP-02")
    assert sep02.items == (HUB_STORAGE,)
    assert run(apply_findings(res, [sep02])).findings == ()
    # A project that names its own storage account uses that one.
    proj(res)["properties"]["storageAccount"] = OTHER_ACCOUNT
    assert by_rule(run(res), "EXF-SEP-02")[0].items == (OTHER_ACCOUNT,)


def test_project_default_storage_is_the_hubs_for_ws03():
    res = foundry()
    named(res, "sthubaifoundry01")["properties"]["privateEndpointConnections"] = []
    [ws03] = by_rule(run(res), "EXF-WS-03")
    assert ws03.resource_id == HUB_STORAGE
    # Only the project uses it (the hub named another): still judged, once.
    named(res, "aihub-demo")["properties"]["storageAccount"] = account_id(res)
    proj(res)["properties"]["storageAccount"] = HUB_STORAGE
    assert [x.resource_id for x in by_rule(run(res), "EXF-WS-03")] == [HUB_STORAGE]


def test_kind_project_without_a_hub_is_judged_as_a_workspace():
    res = foundry()
    del proj(res)["properties"]["hubResourceId"]
    # Without a hub it has no default storage either: the hub's account is now unexpected.
    assert {(x.rule_id, x.resource_id.rsplit("/", 1)[-1]) for x in run(res).findings} == {
        ("EXF-WS-01", "aiproj-demo"), ("EXF-WS-02", "aiproj-demo"), ("EXF-SEP-04", f"sep-ml-{REGION}")}


def test_a_project_whose_hub_is_absent_is_still_not_judged():
    res = [b for b in foundry() if b["name"] != "aihub-demo"]
    # No workspace finding on the project; its default storage is unknown without the hub, so
    # the hub's account in the policy is one no workspace in the picture uses.
    assert rules_of(run(res)) == {"EXF-SEP-04"}


def test_cli_scan_of_a_foundry_hub_and_project(tmp_path):
    res = foundry(public="Enabled")
    code, report = cli_scan(res, tmp_path)
    assert code == 1
    assert [(x["ruleId"], x["resourceId"]) for x in report["findings"]] == [
        ("EXF-WS-02", named(res, "aihub-demo")["id"])]


def test_plan_never_writes_a_project():
    res = foundry(public="Enabled")
    proj(res)["properties"]["publicNetworkAccess"] = "Enabled"
    changes = plan(run(res).findings, Config(), "remediate")
    assert [ids.key(c.target_id) for c in changes] == [ids.key(named(res, "aihub-demo")["id"])]


def test_sep_required_accounts_unaffected_by_the_alias_or_other_providers():
    """An entry of another provider in a storage definition names no account: not SEP-04's."""
    res = stack()
    storage_def(res)["serviceResources"].append(f"{SEP_ID}/serviceEndpointPolicyDefinitions/x")
    assert by_rule(run(res), "EXF-SEP-04") == []


# --- found by the generated subscriptions (tests/core/test_rule_properties.py) ---------------------
def test_nsg01_fix_that_cannot_end_the_leak_keeps_its_rule_in_place():
    """An Allow to the internet before the deny stays when its EXF-NSG-02 is exempt or runs in
    audit: NSG-01's fix is then planned again at each evaluation, and must not move its own rule
    down one priority each time (a write at every sweep)."""
    res = stack()
    nsg_rules = named(res, f"nsg-ml-{REGION}")["properties"]["securityRules"]
    nsg_rules.append(f.rule("allow-web", 3950, dest="0.0.0.0/0", ports="80"))
    cfg = Config(mode="remediate", rule_modes={"EXF-NSG-02": "audit"})
    ev = run(res, cfg)
    assert [c.rule_ids for c in plan(ev.findings, cfg)] == [("EXF-NSG-01",)]
    once = apply_findings(res, by_rule(ev, "EXF-NSG-01"))
    [again] = by_rule(run(once, cfg), "EXF-NSG-01")
    assert apply_findings(once, [again]) == once
