"""Builders for the resources whose scope baseline.md's "Scope" decides: attached computes and
AI Foundry hub-based projects. Built on tests/factory.py, shaped as ARM returns them.

The hub/project pair follows Microsoft's ``aistudio-networking-aoao`` quickstart
(azure-quickstart-templates, ``modules/hub.bicep`` and ``modules/project.bicep``): the hub is
a workspace of ``kind: Hub`` that owns the storage account, key vault and managed network;
the project is a workspace of ``kind: Project`` whose ``properties`` carry ``hubResourceId``,
``publicNetworkAccess`` (the quickstart leaves it ``Enabled``) and no storage, private
endpoint or managed network of its own.
"""

from __future__ import annotations

from typing import Any

from tests import factory as f

ATTACHED_TYPES = ("Kubernetes", "VirtualMachine", "Databricks", "HDInsight", "AKS", "DataFactory")


def attached_compute(workspace_id: str, name: str, location: str, kind: str = "Kubernetes",
                     subnet: str | None = None, created: str = "2021-05-01T10:00:00Z") -> dict[str, Any]:
    """An attached compute as ARM lists it among a workspace's computes: ``computeType`` names
    the attached service and ``resourceId`` the resource it wraps. It carries what would make an
    ML compute fail every CMP rule (no subnet or an unguarded one, a public IP, an old date)."""
    body = f.compute(workspace_id, name, location, kind="AmlCompute", subnet=subnet, public_ip=True, created=created)
    props = body["properties"]
    props["computeType"] = kind
    props["isAttachedCompute"] = True
    props["resourceId"] = (f"{workspace_id.split('/providers/', maxsplit=1)[0]}/providers/Microsoft.ContainerService/"
                           f"managedClusters/{name}")
    inner = props["properties"]
    inner["remoteLoginPortPublicAccess"] = "Enabled"
    inner["connectivityEndpoints"] = {"publicIpAddress": "20.1.2.3"}
    return body


def hub(rg: str, name: str, location: str, storage: str, *, public: str = "Disabled",
        pe_status: str | None = "Approved", isolation: str = "AllowOnlyApprovedOutbound",
        outbound: dict[str, Any] | None = None) -> dict[str, Any]:
    """An AI Foundry hub (``kind: Hub``), the owner of storage and network isolation."""
    body = f.workspace(rg, name, location, storage, public=public, pe_status=pe_status, isolation=isolation,
                       outbound=outbound)
    body["kind"] = "Hub"
    body["properties"]["systemDatastoresAuthMode"] = "identity"
    return body


def project(rg: str, name: str, location: str, hub_id: str, *, public: str = "Enabled",
            storage: str | None = None) -> dict[str, Any]:
    """A hub-based project (``kind: Project``) as the quickstart deploys it: only a friendly
    name, public network access and its hub; no storage, private endpoint or managed network."""
    wid = f.ws_id(rg, name)
    props: dict[str, Any] = {"friendlyName": name, "hbiWorkspace": False, "v1LegacyMode": False,
                             "publicNetworkAccess": public, "hubResourceId": hub_id,
                             "systemDatastoresAuthMode": "identity", "privateEndpointConnections": [],
                             "provisioningState": "Succeeded"}
    if storage:
        props["storageAccount"] = storage
    return {"id": wid, "name": name, "type": "Microsoft.MachineLearningServices/workspaces", "kind": "Project",
            "location": location, "tags": {}, "identity": {"type": "SystemAssigned"},
            "sku": {"name": "Basic", "tier": "Basic"}, "properties": props}
