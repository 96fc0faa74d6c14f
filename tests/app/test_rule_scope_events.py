"""The Function app's event path keeps baseline.md's scope: an attached compute guards no
subnet (its network is never written), and a hub-based project's default storage is its
hub's. Real handler, ARM emulator, Azurite."""

from __future__ import annotations

from exfilguard.core import ids
from tests import factory
from tests.function_support import RG, VNET_WEU, WS_WEU, resource_event, running_app, sample
from tests.scope_builders import attached_compute, hub, project

COMPUTE_WRITE = "Microsoft.MachineLearningServices/workspaces/computes/write"
REGION = "westeurope"


def aks_network() -> tuple[list[dict], str, str]:
    """A VNet whose NSG lets everything out: what an AKS cluster might sit behind."""
    nsg = factory.nsg(RG, "nsg-aks", REGION, [factory.rule("allow-all-out", 100, protocol="*", dest="*", ports="*")])
    vid = factory.vnet_id(RG, "vnet-aks")
    sn = factory.subnet(vid, "snet-aks", "10.60.1.0/24", nsg["id"])
    return [factory.vnet(RG, "vnet-aks", REGION, "10.60.0.0/16", [sn]), nsg], sn["id"], nsg["id"]


def test_an_attached_compute_never_brings_its_network_into_scope(monkeypatch):
    network, subnet, nsg = aks_network()
    aks = attached_compute(WS_WEU, "aks-inference", REGION, subnet=subnet)
    with running_app(monkeypatch, [*sample("compliant-subscription.json"), *network, aks]) as app:
        app.timer()  # a sweep fills the compute index
        assert app.emulator.writes() == []
        assert app.state.computes_on([subnet])[ids.key(subnet)] == []
        for op, rid in ((COMPUTE_WRITE, aks["id"]),
                        ("Microsoft.Network/networkSecurityGroups/securityRules/write", f"{nsg}/securityRules/x"),
                        ("Microsoft.Network/virtualNetworks/write", factory.vnet_id(RG, "vnet-aks"))):
            event = resource_event(op, rid)
            app.deliver(event)
            for row in app.audit(event["id"]):
                assert not row.findings, (op, row.findings)
        assert app.emulator.writes() == []
        assert app.state.computes_on([subnet])[ids.key(subnet)] == []
        assert app.teams.posts() == []


def test_first_event_indexes_an_attached_compute_without_its_subnet(monkeypatch):
    network, subnet, _ = aks_network()
    aks = attached_compute(WS_WEU, "aks-inference", REGION, subnet=subnet)
    with running_app(monkeypatch, [*sample("compliant-subscription.json"), *network, aks]) as app:
        event = resource_event(COMPUTE_WRITE, aks["id"])
        app.deliver(event)
        assert app.emulator.writes() == []
        assert app.state.computes_on([subnet])[ids.key(subnet)] == []
        assert all(not row.findings for row in app.audit(event["id"]))


def test_a_project_compute_event_requires_the_hubs_storage_in_the_policy(monkeypatch):
    hub_storage = factory.storage(RG, "sthubweu01", REGION)
    h = hub(RG, "aihub-weu", REGION, hub_storage["id"])
    p = project(RG, "aiproj-weu", REGION, h["id"])
    subnet = f"{VNET_WEU}/subnets/snet-training"
    with running_app(monkeypatch, [*sample("compliant-subscription.json"), hub_storage, h, p]) as app:
        app.timer()
        assert app.emulator.writes() == []
        ci = factory.compute(p["id"], "ci-project", REGION, subnet=subnet)
        app.emulator.set_body(ci["id"], ci)
        event = resource_event(COMPUTE_WRITE, ci["id"])
        app.deliver(event)
        sep_id = factory.sep_id(RG, f"sep-ml-{REGION}")
        [write] = app.emulator.writes()
        assert ids.key(write.path.split("?")[0]) == ids.key(sep_id)
        listed = [r for d in app.emulator.get_body(sep_id)["properties"]["serviceEndpointPolicyDefinitions"]
                  if d["properties"]["service"] == "Microsoft.Storage" for r in d["properties"]["serviceResources"]]
        assert ids.key(hub_storage["id"]) in {ids.key(r) for r in listed}


def test_a_hub_event_judges_its_projects_computes_without_a_subnet(monkeypatch):
    """A project compute with no subnet runs in its hub's managed network: when the hub turns
    its managed network off, the hub's event reports EXF-CMP-01 for that compute."""
    hub_storage = factory.storage(RG, "sthubweu02", REGION)
    h = hub(RG, "aihub-weu2", REGION, hub_storage["id"])
    p = project(RG, "aiproj-weu2", REGION, h["id"])
    ci = factory.compute(p["id"], "ci-managed", REGION)
    with running_app(monkeypatch, [*sample("compliant-subscription.json"), hub_storage, h, p, ci]) as app:
        event = resource_event("Microsoft.MachineLearningServices/workspaces/write", h["id"])
        app.deliver(event)
        assert all(not row.findings for row in app.audit(event["id"]))
        body = app.emulator.get_body(h["id"])
        body["properties"]["managedNetwork"]["isolationMode"] = "Disabled"
        app.emulator.set_body(h["id"], body)
        event = resource_event("Microsoft.MachineLearningServices/workspaces/write", h["id"])
        app.deliver(event)
        evaluated = next(r for r in app.audit(event["id"]) if r.decision == "evaluated")
        assert [(x["ruleId"], ids.key(x["resourceId"])) for x in evaluated.findings] == [
            ("EXF-CMP-01", ids.key(ci["id"]))]
        assert app.emulator.writes() == []
