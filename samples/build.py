"""Regenerates the bundled samples: ``python samples/build.py`` from the repository root.

The compliant subscription is two ML workspaces (West Europe and East US) set up as the
exfiltration article says, and a third (North Europe) whose spoke subnet sends its internet
traffic through a hub Azure Firewall (the seed's "Firewall" tab). The drifted one is the same
subscription after a dozen realistic changes, each commented with the rule it trips.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import factory as f

WEU, EUS, NEU = "westeurope", "eastus", "northeurope"
RG_WEU, RG_EUS, RG_NEU = "rg-ml-weu", "rg-ml-eus", "rg-ml-neu"


def compliant() -> list[dict]:
    return [*f.region_stack(RG_WEU, WEU, 10), *f.region_stack(RG_EUS, EUS, 20), *f.firewalled_stack(RG_NEU, NEU, 30)]


def _by_name(resources: list[dict], name: str) -> dict:
    return next(r for r in resources if r["name"] == name)


def drifted() -> list[dict]:
    res = compliant()
    nsg_weu = _by_name(res, f"nsg-ml-{WEU}")
    nsg_eus = _by_name(res, f"nsg-ml-{EUS}")
    rules_weu = nsg_weu["properties"]["securityRules"]
    # EXF-NSG-01: someone removed the deny-internet rule while debugging a pip install.
    rules_weu[:] = [r for r in rules_weu if r["name"] != "deny-internet-out"]
    # EXF-NSG-02: global Storage tag opened "temporarily" (any region's storage is reachable).
    rules_weu.append(f.rule("allow-storage-any-region", 400, dest="Storage", source="VirtualNetwork",
                            nsg=nsg_weu["id"]))
    # EXF-NSG-05: SSH from anywhere.
    rules_weu.append(f.rule("allow-ssh-in", 310, direction="Inbound", dest="VirtualNetwork", ports="22",
                            nsg=nsg_weu["id"]))
    rules_eus = nsg_eus["properties"]["securityRules"]
    # EXF-NSG-04: AzureMachineLearning on every protocol and port.
    for r in rules_eus:
        if r["name"] == "allow-azuremachinelearning-out":
            r["properties"].update({"protocol": "*", "destinationPortRange": "*"})
    # EXF-NSG-03: a broad deny placed above the Storage allow blocks Storage.eastus.
    rules_eus.append(f.rule("deny-storage-out", 150, access="Deny", protocol="*", dest="Storage", ports="*",
                            nsg=nsg_eus["id"]))

    vnet_eus = _by_name(res, f"vnet-ml-{EUS}")
    # EXF-SN-01: the storage service endpoint was dropped from the East US subnet.
    vnet_eus["properties"]["subnets"][0]["properties"]["serviceEndpoints"] = []

    vnet_weu = _by_name(res, f"vnet-ml-{WEU}")
    # EXF-SN-02 / EXF-SN-03: a new inference subnet without policy or NSG.
    inference = f.subnet(vnet_weu["id"], "snet-inference", "10.10.2.0/24", endpoints=[f.storage_endpoint(WEU)])
    vnet_weu["properties"]["subnets"].append(inference)

    sep_weu = _by_name(res, f"sep-ml-{WEU}")
    # EXF-SEP-01: the Azure ML alias was removed.
    defs = sep_weu["properties"]["serviceEndpointPolicyDefinitions"]
    defs[:] = [d for d in defs if d["name"] != "aml-alias"]
    sep_eus = _by_name(res, f"sep-ml-{EUS}")
    # EXF-SEP-02/03/04: storage definition scoped to a resource group, plus a stranger's account.
    sd = sep_eus["properties"]["serviceEndpointPolicyDefinitions"][0]["properties"]
    sd["serviceResources"] = [f.rg_id("rg-shared-data"),
                              f.storage_id("rg-shared-data", "stexternaldrop01")]

    ws_weu = _by_name(res, f"mlw-{WEU}")
    ws_eus = _by_name(res, f"mlw-{EUS}")
    # EXF-WS-01: the workspace private endpoint is still pending approval.
    ws_weu["properties"]["privateEndpointConnections"][0]["properties"][
        "privateLinkServiceConnectionState"]["status"] = "Pending"
    # EXF-WS-02: public network access re-enabled for a demo.
    ws_eus["properties"]["publicNetworkAccess"] = "Enabled"
    # EXF-WS-03: the West Europe storage account lost its private endpoint.
    st_weu = next(r for r in res if r["id"] == ws_weu["properties"]["storageAccount"])
    st_weu["properties"]["privateEndpointConnections"] = []

    # EXF-FW-01: the hub firewall's policy gained the "quickstart" allowances of a hub-and-spoke
    # template: global Storage, AzureFrontDoor.Frontend and AzureCloud, plus pypi and GitHub.
    spoke = _by_name(res, f"vnet-ml-fw-{NEU}")["properties"]["subnets"][0]["properties"]["addressPrefix"]
    rcg = next(r for r in res if r["name"] == "rcg-ml" and RG_NEU in r["id"])
    rcg["properties"]["ruleCollections"].append(f.collection("quickstart-allow", 400, "Allow", [
        f.net_rule("azure-services", ["Storage", "AzureFrontDoor.Frontend", "AzureCloud"], ["443"], [spoke]),
        f.app_rule("packages", ["pypi.org", "files.pythonhosted.org", "github.com", "*.githubusercontent.com"],
                   [spoke]),
    ]))

    inference_id = inference["id"]
    res += [
        # EXF-CMP-02 + EXF-CMP-03: an old cluster with node public IPs.
        f.compute(ws_weu["id"], "gpu-cluster-legacy", WEU, kind="AmlCompute", subnet=inference_id,
                  public_ip=True, created="2022-06-14T09:30:00Z"),
        # EXF-CMP-01: an instance created outside any VNet.
        f.compute(ws_eus["id"], "ci-quick-test", EUS, subnet=None, public_ip=None,
                  public_address="20.81.44.10"),
        # EXF-CMP-04 (exempt): vendor debugging session approved until the end of 2099.
        f.compute(ws_eus["id"], "ci-vendor-debug", EUS, subnet=_by_name(res, f"vnet-ml-{EUS}")["properties"][
            "subnets"][0]["id"], ssh="Enabled",
            tags={"exfilguard-exempt": "EXF-CMP-04;until=2099-12-31;reason=vendor debugging, ticket SEC-4411"}),
        # EXF-ENV-01: an environment still pulling from the retired registry.
        f.environment(ws_weu["id"], "legacy-sklearn", "1", "viennaglobal.azurecr.io/azureml/sklearn-0.24:latest"),
    ]
    return res


def main() -> None:
    here = Path(__file__).resolve().parent
    for name, build in (("compliant-subscription.json", compliant), ("drifted-subscription.json", drifted)):
        (here / name).write_text(json.dumps(build(), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
