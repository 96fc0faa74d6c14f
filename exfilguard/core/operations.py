"""The ARM operations ExfilGuard reacts to, and which guarded resource each one touches.

This table is the single source of truth for three things that must agree: the Event Grid
handler's routing, the Event Grid subscription's ``data.operationName`` filter in
``infra/`` (a test checks both are the same set), and docs/ (the user's documentation). Event
Grid allows at most 25 values in one ``StringIn`` filter: infra/main.bicep splits the list over
as many event subscriptions as that takes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Operation:
    """``levels_up`` walks from the event's resource URI to the resource to re-read
    (a security rule write re-reads its NSG: one level up)."""

    name: str
    reread_type: str
    levels_up: int
    deleted: bool = False


_N = "Microsoft.Network"
_ML = "Microsoft.MachineLearningServices"
_ST = "Microsoft.Storage"

_TABLE: tuple[Operation, ...] = (
    Operation(f"{_N}/networkSecurityGroups/write", f"{_N}/networkSecurityGroups", 0),
    Operation(f"{_N}/networkSecurityGroups/securityRules/write", f"{_N}/networkSecurityGroups", 1),
    Operation(f"{_N}/networkSecurityGroups/securityRules/delete", f"{_N}/networkSecurityGroups", 1, True),
    Operation(f"{_N}/virtualNetworks/write", f"{_N}/virtualNetworks", 0),
    Operation(f"{_N}/virtualNetworks/subnets/write", f"{_N}/virtualNetworks/subnets", 0),
    Operation(f"{_N}/virtualNetworks/subnets/delete", f"{_N}/virtualNetworks/subnets", 0, True),
    Operation(f"{_N}/serviceEndpointPolicies/write", f"{_N}/serviceEndpointPolicies", 0),
    Operation(f"{_N}/serviceEndpointPolicies/serviceEndpointPolicyDefinitions/write",
              f"{_N}/serviceEndpointPolicies", 1),
    Operation(f"{_N}/serviceEndpointPolicies/serviceEndpointPolicyDefinitions/delete",
              f"{_N}/serviceEndpointPolicies", 1, True),
    Operation(f"{_ML}/workspaces/write", f"{_ML}/workspaces", 0),
    Operation(f"{_ML}/workspaces/computes/write", f"{_ML}/workspaces/computes", 0),
    Operation(f"{_ML}/workspaces/computes/delete", f"{_ML}/workspaces/computes", 0, True),
    Operation(f"{_ML}/workspaces/environments/versions/write", f"{_ML}/workspaces/environments/versions", 0),
    Operation(f"{_ML}/workspaces/outboundRules/write", f"{_ML}/workspaces", 1),
    Operation(f"{_ML}/workspaces/outboundRules/delete", f"{_ML}/workspaces", 1, True),
    Operation(f"{_ML}/workspaces/privateEndpointConnections/write", f"{_ML}/workspaces", 1),
    Operation(f"{_ML}/workspaces/privateEndpointConnections/delete", f"{_ML}/workspaces", 1, True),
    Operation(f"{_ML}/workspaces/provisionManagedNetwork/action", f"{_ML}/workspaces", 0),
    Operation(f"{_ST}/storageAccounts/privateEndpointConnections/write", f"{_ST}/storageAccounts", 1),
    Operation(f"{_ST}/storageAccounts/privateEndpointConnections/delete", f"{_ST}/storageAccounts", 1, True),
    # Egress through a firewall: a route table decides whether a subnet's NSG or a firewall
    # controls its internet traffic; a firewall's rules live in its policy's rule collection groups.
    Operation(f"{_N}/routeTables/write", f"{_N}/routeTables", 0),
    Operation(f"{_N}/routeTables/delete", f"{_N}/routeTables", 0, True),
    Operation(f"{_N}/routeTables/routes/write", f"{_N}/routeTables", 1),
    Operation(f"{_N}/routeTables/routes/delete", f"{_N}/routeTables", 1, True),
    Operation(f"{_N}/azureFirewalls/write", f"{_N}/azureFirewalls", 0),
    Operation(f"{_N}/firewallPolicies/write", f"{_N}/firewallPolicies", 0),
    Operation(f"{_N}/firewallPolicies/ruleCollectionGroups/write", f"{_N}/firewallPolicies", 1),
    Operation(f"{_N}/firewallPolicies/ruleCollectionGroups/delete", f"{_N}/firewallPolicies", 1, True),
    Operation(f"{_N}/ipGroups/write", f"{_N}/ipGroups", 0),
)

OPERATIONS: dict[str, Operation] = {op.name.lower(): op for op in _TABLE}
MAPPED_OPERATION_NAMES: tuple[str, ...] = tuple(op.name for op in _TABLE)

# Azure Resource Notifications carry no operation name, only the resource type.
RESOURCE_TYPES: dict[str, Operation] = {
    op.reread_type.lower(): Operation(op.reread_type, op.reread_type, 0)
    for op in _TABLE
} | {
    f"{_N}/networkSecurityGroups/securityRules".lower(): Operation("", f"{_N}/networkSecurityGroups", 1),
    f"{_N}/serviceEndpointPolicies/serviceEndpointPolicyDefinitions".lower(): Operation(
        "", f"{_N}/serviceEndpointPolicies", 1),
    f"{_N}/routeTables/routes".lower(): Operation("", f"{_N}/routeTables", 1),
    f"{_N}/firewallPolicies/ruleCollectionGroups".lower(): Operation("", f"{_N}/firewallPolicies", 1),
}


def lookup(operation_name: str | None) -> Operation | None:
    if not operation_name:
        return None
    return OPERATIONS.get(operation_name.strip().lower())
