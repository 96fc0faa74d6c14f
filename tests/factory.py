"""Builders of realistic ARM bodies, shared by the tests, the sample builder and benchmarks.

Bodies have the exact shape ARM returns (nested ``properties``, compute's
``properties.properties``), so whatever passes here also passes on real payloads.
"""

from __future__ import annotations

from typing import Any

SUB = "6f1e3c2a-8d4b-4f7e-9a51-2c7d0b9e4a11"


def rg_id(rg: str, sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def nsg_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"{rg_id(rg, sub)}/providers/Microsoft.Network/networkSecurityGroups/{name}"


def vnet_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"{rg_id(rg, sub)}/providers/Microsoft.Network/virtualNetworks/{name}"


def sep_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"{rg_id(rg, sub)}/providers/Microsoft.Network/serviceEndpointPolicies/{name}"


def ws_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"{rg_id(rg, sub)}/providers/Microsoft.MachineLearningServices/workspaces/{name}"


def storage_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"{rg_id(rg, sub)}/providers/Microsoft.Storage/storageAccounts/{name}"


def rule(name: str, priority: int, direction: str = "Outbound", access: str = "Allow", protocol: str = "Tcp",
         dest: str | list[str] = "*", ports: str | list[str] = "443", source: str | list[str] = "*",
         description: str = "", nsg: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "protocol": protocol, "sourcePortRange": "*", "access": access, "priority": priority,
        "direction": direction, "provisioningState": "Succeeded",
    }
    if isinstance(dest, list):
        props["destinationAddressPrefixes"] = dest
    else:
        props["destinationAddressPrefix"] = dest
    if isinstance(ports, list):
        props["destinationPortRanges"] = ports
    else:
        props["destinationPortRange"] = ports
    if isinstance(source, list):
        props["sourceAddressPrefixes"] = source
    else:
        props["sourceAddressPrefix"] = source
    if description:
        props["description"] = description
    body: dict[str, Any] = {"name": name, "properties": props,
                            "type": "Microsoft.Network/networkSecurityGroups/securityRules"}
    if nsg:
        body["id"] = f"{nsg}/securityRules/{name}"
        body["etag"] = 'W/"00000000-0000-0000-0000-000000000001"'
    return body


def required_allows(region: str, start: int = 200, curated: bool = True) -> list[dict[str, Any]]:
    tags = [("BatchNodeManagement", f"BatchNodeManagement.{region}", "*"),
            ("AzureMachineLearning", "AzureMachineLearning", "Tcp"),
            ("Storage", f"Storage.{region}", "Tcp")]
    if curated:
        tags += [("Mcr", f"MicrosoftContainerRegistry.{region}", "Tcp"),
                 ("FrontDoorFirstParty", "AzureFrontDoor.FirstParty", "Tcp")]
    out = [rule(f"allow-{n.lower()}-out", start + 10 * i, dest=t, protocol=p, source="VirtualNetwork")
           for i, (n, t, p) in enumerate(tags)]
    # The rest of the article's basic configuration (sign-in, ARM, logging, the compute
    # instance's ports), between the rules above so tests adding rules at round priorities
    # do not collide with them.
    more = [("AzureActiveDirectory", "AzureActiveDirectory", "Tcp", ["80", "443"]),
            ("AzureMachineLearning-ports", "AzureMachineLearning", "Tcp", ["8787", "18881"]),
            ("AzureMachineLearning-udp", "AzureMachineLearning", "Udp", "5831"),
            ("AzureResourceManager", "AzureResourceManager", "Tcp", "443"),
            ("AzureMonitor", "AzureMonitor", "Tcp", "443")]
    out += [rule(f"allow-{n.lower()}-out", start + 5 + 10 * i, dest=t, protocol=p, ports=ports,
                 source="VirtualNetwork") for i, (n, t, p, ports) in enumerate(more)]
    return out


def nsg(rg: str, name: str, location: str, rules: list[dict[str, Any]], tags: dict | None = None,
        sub: str = SUB) -> dict[str, Any]:
    nid = nsg_id(rg, name, sub)
    for r in rules:
        r.setdefault("id", f"{nid}/securityRules/{r['name']}")
    return {"id": nid, "name": name, "type": "Microsoft.Network/networkSecurityGroups", "location": location,
            "etag": 'W/"1d1f7e6a-0000-0000-0000-000000000001"', "tags": tags or {},
            "properties": {"provisioningState": "Succeeded", "securityRules": rules}}


def compliant_nsg_rules(region: str) -> list[dict[str, Any]]:
    return [*required_allows(region),
            rule("deny-internet-out", 4096, access="Deny", protocol="*", dest="Internet", ports="*"),
            rule("allow-aml-in", 300, direction="Inbound", source="AzureMachineLearning", dest="VirtualNetwork",
                 ports="44224")]


def subnet(vnet: str, name: str, prefix: str, nsg: str | None = None, seps: list[str] | None = None,
           endpoints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"addressPrefix": prefix, "provisioningState": "Succeeded",
                             "privateEndpointNetworkPolicies": "Disabled"}
    if nsg:
        props["networkSecurityGroup"] = {"id": nsg}
    if seps:
        props["serviceEndpointPolicies"] = [{"id": s} for s in seps]
    if endpoints is not None:
        props["serviceEndpoints"] = endpoints
    return {"id": f"{vnet}/subnets/{name}", "name": name, "type": "Microsoft.Network/virtualNetworks/subnets",
            "etag": 'W/"5b0c8f2e-0000-0000-0000-000000000001"', "properties": props}


def storage_endpoint(region: str) -> dict[str, Any]:
    return {"service": "Microsoft.Storage", "locations": [region], "provisioningState": "Succeeded"}


def vnet(rg: str, name: str, location: str, prefix: str, subnets: list[dict[str, Any]],
         tags: dict | None = None, sub: str = SUB) -> dict[str, Any]:
    return {"id": vnet_id(rg, name, sub), "name": name, "type": "Microsoft.Network/virtualNetworks",
            "location": location, "tags": tags or {}, "etag": 'W/"8e7d6c5b-0000-0000-0000-000000000001"',
            "properties": {"addressSpace": {"addressPrefixes": [prefix]}, "subnets": subnets,
                           "provisioningState": "Succeeded", "enableDdosProtection": False}}


def sep(rg: str, name: str, location: str, storage: list[str], alias: bool = True,
        sub: str = SUB) -> dict[str, Any]:
    sid = sep_id(rg, name, sub)
    defs = [{"id": f"{sid}/serviceEndpointPolicyDefinitions/allow-workspace-storage",
             "name": "allow-workspace-storage",
             "type": "Microsoft.Network/serviceEndpointPolicies/serviceEndpointPolicyDefinitions",
             "properties": {"service": "Microsoft.Storage", "serviceResources": storage,
                            "description": "Workspace storage", "provisioningState": "Succeeded"}}]
    if alias:
        defs.append({"id": f"{sid}/serviceEndpointPolicyDefinitions/aml-alias", "name": "aml-alias",
                     "type": "Microsoft.Network/serviceEndpointPolicies/serviceEndpointPolicyDefinitions",
                     "properties": {"service": "Global", "serviceResources": ["/services/Azure/MachineLearning"],
                                    "provisioningState": "Succeeded"}})
    return {"id": sid, "name": name, "type": "Microsoft.Network/serviceEndpointPolicies", "location": location,
            "etag": 'W/"2c3d4e5f-0000-0000-0000-000000000001"', "tags": {},
            "properties": {"serviceEndpointPolicyDefinitions": defs, "provisioningState": "Succeeded",
                           "resourceGuid": "3b1f0f5e-7a2b-4c8d-9e0f-1a2b3c4d5e6f"}}


def _pec(parent: str, status: str) -> list[dict[str, Any]]:
    return [{"id": f"{parent}/privateEndpointConnections/pe-{status.lower()}", "name": f"pe-{status.lower()}",
             "properties": {"privateEndpoint": {"id": f"{parent.split('/providers/', maxsplit=1)[0]}/providers/"
                                                      "Microsoft.Network/privateEndpoints/pe"},
                            "privateLinkServiceConnectionState": {"status": status, "description": status,
                                                                  "actionsRequired": "None"},
                            "provisioningState": "Succeeded"}}]


def workspace(rg: str, name: str, location: str, storage: str, public: str | None = "Disabled",
              pe_status: str | None = "Approved", isolation: str = "Disabled",
              outbound: dict[str, Any] | None = None, tags: dict | None = None, sub: str = SUB) -> dict[str, Any]:
    wid = ws_id(rg, name, sub)
    props: dict[str, Any] = {
        "friendlyName": name, "storageAccount": storage, "hbiWorkspace": False, "v1LegacyMode": False,
        "keyVault": f"{rg_id(rg, sub)}/providers/Microsoft.KeyVault/vaults/kv-{name}",
        "applicationInsights": f"{rg_id(rg, sub)}/providers/Microsoft.Insights/components/ai-{name}",
        "privateEndpointConnections": _pec(wid, pe_status) if pe_status else [],
        "managedNetwork": {"isolationMode": isolation, "outboundRules": outbound or {},
                           "status": {"status": "Active", "sparkReady": False}},
        "provisioningState": "Succeeded",
    }
    if public is not None:
        props["publicNetworkAccess"] = public
    return {"id": wid, "name": name, "type": "Microsoft.MachineLearningServices/workspaces", "location": location,
            "tags": tags or {}, "identity": {"type": "SystemAssigned"}, "sku": {"name": "Basic", "tier": "Basic"},
            "properties": props}


def compute(workspace_id: str, name: str, location: str, kind: str = "ComputeInstance",
            subnet: str | None = None, public_ip: bool | None = False, created: str = "2024-03-01T10:00:00Z",
            ssh: str = "Disabled", remote_login: str | None = None, tags: dict | None = None,
            public_address: str | None = None) -> dict[str, Any]:
    inner: dict[str, Any] = {"vmSize": "STANDARD_DS3_V2"}
    if subnet is not None:
        inner["subnet"] = {"id": subnet}
    if public_ip is not None:
        inner["enableNodePublicIp"] = public_ip
    if kind == "ComputeInstance":
        inner["sshSettings"] = {"sshPublicAccess": ssh, "adminUserName": "azureuser", "sshPort": 22}
        inner["connectivityEndpoints"] = {"publicIpAddress": public_address, "privateIpAddress": "10.10.1.5"}
        inner["state"] = "Running"
    else:
        inner["scaleSettings"] = {"maxNodeCount": 4, "minNodeCount": 0, "nodeIdleTimeBeforeScaleDown": "PT120S"}
        inner["remoteLoginPortPublicAccess"] = remote_login or "Disabled"
        inner["isolatedNetwork"] = False
    return {"id": f"{workspace_id}/computes/{name}", "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/computes", "location": location,
            "tags": tags or {},
            "properties": {"computeType": kind, "computeLocation": location, "provisioningState": "Succeeded",
                           "createdOn": created, "modifiedOn": created, "disableLocalAuth": True,
                           "properties": inner}}


def environment(workspace_id: str, name: str, version: str, image: str) -> dict[str, Any]:
    return {"id": f"{workspace_id}/environments/{name}/versions/{version}", "name": version,
            "type": "Microsoft.MachineLearningServices/workspaces/environments/versions",
            "properties": {"image": image, "osType": "Linux", "isAnonymous": False, "isArchived": False}}


def storage(rg: str, name: str, location: str, pe_status: str | None = "Approved", sub: str = SUB) -> dict[str, Any]:
    sid = storage_id(rg, name, sub)
    return {"id": sid, "name": name, "type": "Microsoft.Storage/storageAccounts", "location": location,
            "kind": "StorageV2", "sku": {"name": "Standard_LRS", "tier": "Standard"}, "tags": {},
            "properties": {"privateEndpointConnections": _pec(sid, pe_status) if pe_status else [],
                           "minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": False,
                           "networkAcls": {"bypass": "AzureServices", "defaultAction": "Deny",
                                           "virtualNetworkRules": [], "ipRules": []}}}


def region_stack(rg: str, region: str, idx: int, sub: str = SUB) -> list[dict[str, Any]]:
    """A compliant workspace in its own region: VNet, NSG, SEP, storage, two computes, one environment."""
    st = storage(rg, f"stml{region[:6]}{idx}", region, sub=sub)
    nsg_body = nsg(rg, f"nsg-ml-{region}", region, compliant_nsg_rules(region), sub=sub)
    sep_body = sep(rg, f"sep-ml-{region}", region, [st["id"]], sub=sub)
    vid = vnet_id(rg, f"vnet-ml-{region}", sub)
    sn = subnet(vid, "snet-training", f"10.{idx}.1.0/24", nsg_body["id"], [sep_body["id"]], [storage_endpoint(region)])
    vn = vnet(rg, f"vnet-ml-{region}", region, f"10.{idx}.0.0/16", [sn], sub=sub)
    ws = workspace(rg, f"mlw-{region}", region, st["id"], sub=sub)
    return [vn, nsg_body, sep_body, st, ws,
            compute(ws["id"], f"ci-{region}", region, subnet=sn["id"]),
            compute(ws["id"], f"cpu-cluster-{region}", region, kind="AmlCompute", subnet=sn["id"]),
            environment(ws["id"], "training-env", "3", "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest")]


# --------------------------------------------------------------------------- egress through a firewall
def route_table_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"{rg_id(rg, sub)}/providers/Microsoft.Network/routeTables/{name}"


def firewall_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"{rg_id(rg, sub)}/providers/Microsoft.Network/azureFirewalls/{name}"


def policy_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"{rg_id(rg, sub)}/providers/Microsoft.Network/firewallPolicies/{name}"


def ip_group_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"{rg_id(rg, sub)}/providers/Microsoft.Network/ipGroups/{name}"


def route(table: str, name: str, prefix: str, hop: str, ip: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"addressPrefix": prefix, "nextHopType": hop, "provisioningState": "Succeeded"}
    if ip:
        props["nextHopIpAddress"] = ip
    return {"id": f"{table}/routes/{name}", "name": name, "type": "Microsoft.Network/routeTables/routes",
            "etag": 'W/"7a6b5c4d-0000-0000-0000-000000000001"', "properties": props}


def route_table(rg: str, name: str, location: str, routes: list[tuple], sub: str = SUB) -> dict[str, Any]:
    """``routes``: (name, prefix, next hop type[, next hop IP]) tuples, inline as ARM returns them."""
    tid = route_table_id(rg, name, sub)
    return {"id": tid, "name": name, "type": "Microsoft.Network/routeTables", "location": location, "tags": {},
            "etag": 'W/"7a6b5c4d-0000-0000-0000-000000000001"',
            "properties": {"provisioningState": "Succeeded", "disableBgpRoutePropagation": True,
                           "routes": [route(tid, *r) for r in routes]}}


def with_route_table(subnet_body: dict[str, Any], table: str) -> dict[str, Any]:
    subnet_body["properties"]["routeTable"] = {"id": table}
    return subnet_body


def firewall(rg: str, name: str, location: str, ip: str, subnet: str, policy: str | None = None,
             app_collections: list[dict] | None = None, net_collections: list[dict] | None = None,
             sub: str = SUB) -> dict[str, Any]:
    fid = firewall_id(rg, name, sub)
    props: dict[str, Any] = {
        "provisioningState": "Succeeded", "sku": {"name": "AZFW_VNet", "tier": "Standard"},
        "threatIntelMode": "Alert",
        "ipConfigurations": [{"name": "ipconfig1", "id": f"{fid}/azureFirewallIpConfigurations/ipconfig1",
                              "properties": {"privateIPAddress": ip, "subnet": {"id": subnet},
                                             "privateIPAllocationMethod": "Dynamic"}}],
        "applicationRuleCollections": app_collections or [], "networkRuleCollections": net_collections or [],
        "natRuleCollections": []}
    if policy:
        props["firewallPolicy"] = {"id": policy}
    return {"id": fid, "name": name, "type": "Microsoft.Network/azureFirewalls", "location": location, "tags": {},
            "etag": 'W/"3e4f5a6b-0000-0000-0000-000000000001"', "properties": props}


def classic_collection(name: str, priority: int, action: str, rules: list[dict]) -> dict[str, Any]:
    return {"name": name, "properties": {"priority": priority, "action": {"type": action}, "rules": rules}}


def firewall_policy(rg: str, name: str, location: str, groups: list[str], base: str | None = None,
                    sub: str = SUB) -> dict[str, Any]:
    pid = policy_id(rg, name, sub)
    props: dict[str, Any] = {"provisioningState": "Succeeded", "threatIntelMode": "Alert",
                             "sku": {"tier": "Standard"},
                             "ruleCollectionGroups": [{"id": f"{pid}/ruleCollectionGroups/{g}"} for g in groups]}
    if base:
        props["basePolicy"] = {"id": base}
    return {"id": pid, "name": name, "type": "Microsoft.Network/firewallPolicies", "location": location,
            "tags": {}, "etag": 'W/"4f5a6b7c-0000-0000-0000-000000000001"', "properties": props}


def app_rule(name: str, fqdns: list[str], sources: list[str] | None = None, ip_groups: list[str] | None = None,
             protocols: list[tuple[str, int]] | None = None, **extra: list[str]) -> dict[str, Any]:
    return {"ruleType": "ApplicationRule", "name": name, "sourceAddresses": sources if sources is not None else [],
            "sourceIpGroups": ip_groups or [],
            "protocols": [{"protocolType": t, "port": p} for t, p in (protocols or [("Https", 443)])],
            "targetFqdns": fqdns, "fqdnTags": extra.get("fqdnTags", []),
            "webCategories": extra.get("webCategories", []), "targetUrls": extra.get("targetUrls", []),
            "terminateTLS": False}


def net_rule(name: str, destinations: list[str], ports: list[str], sources: list[str] | None = None,
             protocols: list[str] | None = None, fqdns: list[str] | None = None,
             ip_groups: list[str] | None = None) -> dict[str, Any]:
    return {"ruleType": "NetworkRule", "name": name, "ipProtocols": protocols or ["TCP"],
            "sourceAddresses": sources if sources is not None else [], "sourceIpGroups": ip_groups or [],
            "destinationAddresses": destinations, "destinationIpGroups": [], "destinationFqdns": fqdns or [],
            "destinationPorts": ports}


def collection(name: str, priority: int, action: str, rules: list[dict]) -> dict[str, Any]:
    return {"ruleCollectionType": "FirewallPolicyFilterRuleCollection", "name": name, "priority": priority,
            "action": {"type": action}, "rules": rules}


def rule_collection_group(policy: str, name: str, priority: int, collections: list[dict]) -> dict[str, Any]:
    return {"id": f"{policy}/ruleCollectionGroups/{name}", "name": name,
            "type": "Microsoft.Network/firewallPolicies/ruleCollectionGroups",
            "etag": 'W/"5a6b7c8d-0000-0000-0000-000000000001"',
            "properties": {"provisioningState": "Succeeded", "priority": priority, "ruleCollections": collections}}


def ip_group(rg: str, name: str, location: str, addresses: list[str], sub: str = SUB) -> dict[str, Any]:
    return {"id": ip_group_id(rg, name, sub), "name": name, "type": "Microsoft.Network/ipGroups",
            "location": location, "tags": {}, "etag": 'W/"6b7c8d9e-0000-0000-0000-000000000001"',
            "properties": {"provisioningState": "Succeeded", "ipAddresses": addresses}}


def ml_firewall_rules(region: str, source: str) -> list[dict[str, Any]]:
    """Collections that let a guarded subnet reach exactly what Azure ML needs through a firewall."""
    return [
        collection("aml-net-allow", 200, "Allow", [
            net_rule("aml", ["AzureMachineLearning"], ["443", "8787", "18881"], [source]),
            net_rule("aml-udp", ["AzureMachineLearning"], ["5831"], [source], protocols=["UDP"]),
            net_rule("storage-regional", [f"Storage.{region}"], ["443"], [source]),
            net_rule("aad-arm", ["AzureActiveDirectory", "AzureResourceManager"], ["443"], [source]),
        ]),
        collection("aml-app-allow", 300, "Allow", [
            app_rule("batch", [f"*.{region}.batch.azure.com", f"*.{region}.service.batch.azure.com"], [source]),
            app_rule("curated-images", ["mcr.microsoft.com", "*.data.mcr.microsoft.com"], [source]),
            app_rule("studio", ["ml.azure.com"], [source]),
        ]),
    ]


def firewalled_stack(rg: str, region: str, idx: int, leaky: bool = False, sub: str = SUB) -> list[dict[str, Any]]:
    """A hub firewall with a policy (and one rule collection group) and a spoke ML subnet whose route table
    sends 0.0.0.0/0 to it; the spoke NSG keeps Azure's default internet rule (the firewall is the control).
    ``leaky``: the policy also allows global Storage, AzureFrontDoor.Frontend and any FQDN, as hub-and-spoke
    quickstarts often do."""
    prefix = f"10.{idx}.1.0/24"
    hub_vid = vnet_id(rg, f"vnet-hub-{region}", sub)
    fw_subnet = subnet(hub_vid, "AzureFirewallSubnet", f"10.{idx + 100}.0.0/26")
    hub = vnet(rg, f"vnet-hub-{region}", region, f"10.{idx + 100}.0.0/16", [fw_subnet], sub=sub)
    pol = firewall_policy(rg, f"fwp-ml-{region}", region, ["rcg-ml"], sub=sub)
    colls = ml_firewall_rules(region, prefix)
    if leaky:
        colls.append(collection("quickstart-allow", 400, "Allow", [
            net_rule("storage-global", ["Storage", "AzureFrontDoor.Frontend"], ["443"], [prefix]),
            app_rule("anything", ["*"], ["*"]),
        ]))
    rcg = rule_collection_group(pol["id"], "rcg-ml", 200, colls)
    fw_ip = f"10.{idx + 100}.0.4"
    fw = firewall(rg, f"fw-hub-{region}", region, fw_ip, fw_subnet["id"], pol["id"], sub=sub)
    rt = route_table(rg, f"rt-ml-{region}", region, [("default-to-firewall", "0.0.0.0/0", "VirtualAppliance", fw_ip)],
                     sub=sub)
    st = storage(rg, f"stfw{region[:6]}{idx}", region, sub=sub)
    nsg_body = nsg(rg, f"nsg-ml-fw-{region}", region,
                   [*required_allows(region),
                    rule("allow-aml-in", 300, direction="Inbound", source="AzureMachineLearning",
                         dest="VirtualNetwork", ports="44224")], sub=sub)
    sep_body = sep(rg, f"sep-ml-fw-{region}", region, [st["id"]], sub=sub)
    vid = vnet_id(rg, f"vnet-ml-fw-{region}", sub)
    sn = with_route_table(subnet(vid, "snet-training", prefix, nsg_body["id"], [sep_body["id"]],
                                 [storage_endpoint(region)]), rt["id"])
    vn = vnet(rg, f"vnet-ml-fw-{region}", region, f"10.{idx}.0.0/16", [sn], sub=sub)
    ws = workspace(rg, f"mlw-fw-{region}", region, st["id"], sub=sub)
    return [hub, fw, pol, rcg, rt, vn, nsg_body, sep_body, st, ws,
            compute(ws["id"], f"ci-fw-{region}", region, subnet=sn["id"])]
