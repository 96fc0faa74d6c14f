"""What the emulator knows about ARM itself: types, inline children, NSG defaults, error bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_KNOWN = (
    "Microsoft.Network/networkSecurityGroups",
    "Microsoft.Network/networkSecurityGroups/securityRules",
    "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Network/virtualNetworks/subnets",
    "Microsoft.Network/serviceEndpointPolicies",
    "Microsoft.Network/serviceEndpointPolicies/serviceEndpointPolicyDefinitions",
    "Microsoft.MachineLearningServices/workspaces",
    "Microsoft.MachineLearningServices/workspaces/computes",
    "Microsoft.MachineLearningServices/workspaces/environments",
    "Microsoft.MachineLearningServices/workspaces/environments/versions",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Network/routeTables",
    "Microsoft.Network/routeTables/routes",
    "Microsoft.Network/azureFirewalls",
    "Microsoft.Network/firewallPolicies",
    "Microsoft.Network/firewallPolicies/ruleCollectionGroups",
    "Microsoft.Network/ipGroups",
)
KNOWN_TYPES: dict[str, str] = {t.lower(): t for t in _KNOWN}

# Parents that exist only as a URL segment: ML auto-creates an environment container with its first
# version, and snapshots usually carry versions without their container.
PATH_ONLY_TYPES = frozenset({"microsoft.machinelearningservices/workspaces/environments"})

# Tracked top-level types: ARM rejects a PUT without a location for these.
TRACKED_TYPES = frozenset(t for t in KNOWN_TYPES if t.count("/") == 1)

NSG_TYPE = "microsoft.network/networksecuritygroups"
DEFAULT_RULES_SEGMENT = "defaultsecurityrules"


@dataclass(frozen=True, slots=True)
class InlineChildren:
    """A child type the parent's body carries inline (``properties.<prop>``), one document in ARM."""

    segment: str
    prop: str


INLINE: dict[str, InlineChildren] = {
    "microsoft.network/networksecuritygroups": InlineChildren("securityRules", "securityRules"),
    "microsoft.network/virtualnetworks": InlineChildren("subnets", "subnets"),
    "microsoft.network/serviceendpointpolicies": InlineChildren(
        "serviceEndpointPolicyDefinitions", "serviceEndpointPolicyDefinitions"),
    "microsoft.network/routetables": InlineChildren("routes", "routes"),
}

# Children a parent lists by reference only (``properties.<prop>: [{id}]``), as a firewall policy
# lists its rule collection groups: the rules live in the child resources.
REFERENCED_CHILDREN: dict[str, InlineChildren] = {
    "microsoft.network/firewallpolicies": InlineChildren("ruleCollectionGroups", "ruleCollectionGroups"),
}

# ARM's read-only back-references: a resource of the first type that points at another (through the
# JSON paths listed) makes that one list it in ``properties.<prop>``. Each target type's props,
# always present (empty lists included), as ARM returns them.
_SUBNET = "microsoft.network/virtualnetworks/subnets"
BACKREFS: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    _SUBNET: ((("networkSecurityGroup",), "subnets"), (("serviceEndpointPolicies", "*"), "subnets"),
              (("routeTable",), "subnets")),
    "microsoft.network/azurefirewalls": ((("firewallPolicy",), "firewalls"),),
    "microsoft.network/firewallpolicies": ((("basePolicy",), "childPolicies"),),
    # An IP group lists the policies whose rules name it (the group's policy, one level up).
    "microsoft.network/firewallpolicies/rulecollectiongroups": tuple(
        (("ruleCollections", "*", "rules", "*", field, "*"), "firewallPolicies")
        for field in ("sourceIpGroups", "destinationIpGroups")),
}
# Back-references recorded for an ancestor of the referring resource: type -> levels up.
BACKREF_OWNER_LEVELS: dict[str, int] = {"microsoft.network/firewallpolicies/rulecollectiongroups": 1}
BACKREF_PROPS: dict[str, tuple[str, ...]] = {
    "microsoft.network/networksecuritygroups": ("subnets",),
    "microsoft.network/serviceendpointpolicies": ("subnets",),
    "microsoft.network/routetables": ("subnets",),
    "microsoft.network/firewallpolicies": ("firewalls", "childPolicies"),
    "microsoft.network/ipgroups": ("firewallPolicies",),
}


def referenced_ids(props: dict[str, Any], path: tuple[str, ...]) -> list[str]:
    """The ``{id}`` references at ``path`` (``*`` walks a list) in a resource's properties."""
    nodes: list[Any] = [props]
    for step in path:
        nxt: list[Any] = []
        for n in nodes:
            if step == "*":
                nxt.extend(n if isinstance(n, list) else [])
            elif isinstance(n, dict):
                nxt.append(n.get(step))
        nodes = nxt
    return [n if isinstance(n, str) else n["id"] for n in nodes
            if (isinstance(n, str) and n.strip()) or (isinstance(n, dict) and isinstance(n.get("id"), str)
                                                       and n["id"].strip())]


def canonical_type(type_: str) -> str:
    """ARM's spelling of a known type (Resource Graph lowercases them); unknown types as given."""
    return KNOWN_TYPES.get(type_.lower(), type_)


def is_inline_child(parent_type: str, segment: str) -> bool:
    spec = INLINE.get(parent_type.lower())
    return spec is not None and spec.segment.lower() == segment.lower()


# (name, description, sourceAddressPrefix, destinationAddressPrefix, access, priority, direction), as ARM.
_DEFAULT_RULES = (
    ("AllowVnetInBound", "Allow inbound traffic from all VMs in VNET", "VirtualNetwork", "VirtualNetwork",
     "Allow", 65000, "Inbound"),
    ("AllowAzureLoadBalancerInBound", "Allow inbound traffic from azure load balancer", "AzureLoadBalancer", "*",
     "Allow", 65001, "Inbound"),
    ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
    ("AllowVnetOutBound", "Allow outbound traffic from all VMs to all VMs in VNET", "VirtualNetwork",
     "VirtualNetwork", "Allow", 65000, "Outbound"),
    ("AllowInternetOutBound", "Allow outbound traffic from all VMs to Internet", "*", "Internet", "Allow", 65001,
     "Outbound"),
    ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
)


def default_security_rules(nsg_id: str) -> list[dict[str, Any]]:
    """The six rules Azure adds to every NSG; the product's verdicts depend on them being present."""
    return [
        {
            "name": name,
            "id": f"{nsg_id}/defaultSecurityRules/{name}",
            "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
            "properties": {
                "provisioningState": "Succeeded",
                "description": description,
                "protocol": "*",
                "sourcePortRange": "*",
                "destinationPortRange": "*",
                "sourceAddressPrefix": source,
                "destinationAddressPrefix": destination,
                "access": access,
                "priority": priority,
                "direction": direction,
                "sourcePortRanges": [],
                "destinationPortRanges": [],
                "sourceAddressPrefixes": [],
                "destinationAddressPrefixes": [],
            },
        }
        for name, description, source, destination, access, priority, direction in _DEFAULT_RULES
    ]


def error(code: str, message: str) -> dict[str, Any]:
    """ARM's error envelope, which the SDKs parse into ``HttpResponseError.error``."""
    return {"error": {"code": code, "message": message}}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch; returns a new value and leaves both inputs untouched."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = merge_patch(out.get(name), value)
    return out
