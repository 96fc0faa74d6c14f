"""One descriptor per ARM type: everything ExfilGuard knows about a type, in one place.

Each :class:`ResourceType` says how the type is read from ARM (API version, the
``NetworkManagementClient`` operation group, whether and where a sweep lists it), how its JSON
becomes a view (parser) and enters the :class:`~exfilguard.core.picture.Picture`, which Event
Grid operations re-read it, in which order fixes are written and how, and which rules report
on it. Every other module derives its per-type behaviour from :data:`TYPES`; adding a type
means one descriptor here, its rules, and its tests (tests/core/test_types.py checks every
descriptor is complete and consistent with the rest).

The one per-type thing not held here is the closure an event reads around a resource: it is
I/O, and the core imports nothing outside the core, so :mod:`exfilguard.flows.closure` keeps
it keyed by these descriptors (a test checks every evaluated type has one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from exfilguard.core import egress_model, ids, model
from exfilguard.core.model import Resource

Parser = Callable[[Mapping[str, Any], str, str], Resource]
Listing = Literal["subscription", "parent"]

ML_API_VERSION = "2025-12-01"
STORAGE_API_VERSION = "2023-05-01"
NETWORK_API_VERSION = "2024-05-01"
"""Pinned rather than the SDKs' defaults so a dependency upgrade never changes what is sent."""


@dataclass(frozen=True, slots=True)
class Reaction:
    """An ARM operation the Event Grid subscription delivers, relative to the type that is
    re-read: ``"write"`` on the type itself, ``"securityRules/delete"`` on a child (one level
    up), ``"provisionManagedNetwork/action"`` on the resource itself."""

    path: str
    deleted: bool = False

    @property
    def levels_up(self) -> int:
        parts = self.path.split("/")
        return len(parts) - (2 if parts[-1] == "action" else 1)


@dataclass(frozen=True, slots=True)
class ResourceType:
    """What ExfilGuard knows about one ARM type."""

    arm_type: str            # as ARM spells it: "Microsoft.Network/networkSecurityGroups"
    label: str               # a reader's name for it in alerts ("Network security group"); "" for none
    api_version: str
    parser: Parser | None = None  # None: only listed, to find children (environment containers)
    table: str | None = None      # the Picture attribute its views land in
    fold: str | None = None       # a child read on its own is folded into this field of its parent's view
    orphan: str | None = None     # notice for a standalone child whose parent is absent ({name} {parent} {source})
    network_operations: str | None = None  # NetworkManagementClient operation group (get, begin_create_or_update)
    listing: Listing | None = None  # how a sweep reads it: a subscription list, or a list under each parent
    reactions: tuple[Reaction, ...] = ()  # Event Grid operations that re-read a resource of this type
    around_parent: bool = False   # an event about it evaluates around its parent
    write_rank: int = 9           # fixes are written in ascending rank (NSG before subnet, ...)
    inline: str | None = None     # the property its children arrive in on every read, empty or not: a body
    #                               without it is half a resource, and a full PUT of it would delete them all
    patch_only: bool = False      # the provider updates only through PATCH (AML rejects a PUT on an existing
    #                               compute): fixes are plain property sets, sent as a merge patch
    rules: tuple[str, ...] = ()   # rule IDs whose findings are about resources of this type

    @property
    def key(self) -> str:
        """The lowercase type key the code compares (``ids.type_key``)."""
        return self.arm_type.lower()

    @property
    def namespace(self) -> str:
        return self.arm_type.split("/", 1)[0]

    @property
    def segment(self) -> str:
        """The last type segment, as a child collection is named under its parent."""
        return self.arm_type.rsplit("/", 1)[-1]

    @property
    def parent_key(self) -> str | None:
        return self.key.rsplit("/", 1)[0] if self.key.count("/") > 1 else None


def _child(parse: Callable[[Mapping[str, Any]], Resource]) -> Parser:
    """A child's parser takes its parent from its own ID when read on its own."""
    def parser(body: Mapping[str, Any], rid: str, tkey: str) -> Resource:
        return parse(body)
    return parser


_N, _ML, _ST = "Microsoft.Network", "Microsoft.MachineLearningServices", "Microsoft.Storage"
_W, _D = Reaction("write"), Reaction("delete", True)


def _rules(prefix: str, *numbers: int) -> tuple[str, ...]:
    return tuple(f"EXF-{prefix}-{n:02d}" for n in numbers)


NSG = ResourceType(
    f"{_N}/networkSecurityGroups", "Network security group", NETWORK_API_VERSION, model.parse_nsg,
    table="nsgs", network_operations="network_security_groups", listing="subscription", inline="securityRules",
    reactions=(_W, Reaction("securityRules/write"), Reaction("securityRules/delete", True)),
    write_rank=0, rules=_rules("NSG", 1, 2, 3, 4, 5))
RULE = ResourceType(
    f"{_N}/networkSecurityGroups/securityRules", "NSG security rule", NETWORK_API_VERSION, _child(model.parse_rule),
    fold="rules", orphan="security rule's NSG {parent} is not in the {source}", network_operations="security_rules",
    around_parent=True, write_rank=0)
VNET = ResourceType(
    f"{_N}/virtualNetworks", "Virtual network", NETWORK_API_VERSION, model.parse_vnet, table="vnets",
    network_operations="virtual_networks", listing="subscription", reactions=(_W,), write_rank=2, inline="subnets")
SUBNET = ResourceType(
    f"{_N}/virtualNetworks/subnets", "Subnet", NETWORK_API_VERSION, _child(model.parse_subnet), table="subnets",
    fold="subnets", network_operations="subnets", reactions=(_W, _D), write_rank=2, rules=_rules("SN", 1, 2, 3))
SEP = ResourceType(
    f"{_N}/serviceEndpointPolicies", "Service endpoint policy", NETWORK_API_VERSION, model.parse_sep, table="seps",
    network_operations="service_endpoint_policies", listing="subscription", inline="serviceEndpointPolicyDefinitions",
    reactions=(_W, Reaction("serviceEndpointPolicyDefinitions/write"),
               Reaction("serviceEndpointPolicyDefinitions/delete", True)),
    write_rank=1, rules=_rules("SEP", 1, 2, 3, 4))
SEP_DEF = ResourceType(
    f"{_N}/serviceEndpointPolicies/serviceEndpointPolicyDefinitions", "Service endpoint policy definition",
    NETWORK_API_VERSION, _child(model.parse_sep_definition), fold="definitions",
    orphan="definition's policy {parent} is not in the {source}",
    network_operations="service_endpoint_policy_definitions", around_parent=True, write_rank=1)
STORAGE = ResourceType(
    f"{_ST}/storageAccounts", "Storage account", STORAGE_API_VERSION, model.parse_storage, table="storage_accounts",
    listing="subscription", reactions=(Reaction("privateEndpointConnections/write"),
                                       Reaction("privateEndpointConnections/delete", True)),
    rules=_rules("WS", 3))
WORKSPACE = ResourceType(
    f"{_ML}/workspaces", "Machine Learning workspace", ML_API_VERSION, model.parse_workspace, table="workspaces",
    listing="subscription",
    reactions=(_W, Reaction("outboundRules/write"), Reaction("outboundRules/delete", True),
               Reaction("privateEndpointConnections/write"), Reaction("privateEndpointConnections/delete", True),
               Reaction("provisionManagedNetwork/action")),
    write_rank=3, rules=_rules("WS", 1, 2, 4, 5, 6, 7))
COMPUTE = ResourceType(
    f"{_ML}/workspaces/computes", "Machine Learning compute", ML_API_VERSION, model.parse_compute, table="computes",
    listing="parent", reactions=(_W, _D), write_rank=4, patch_only=True, rules=_rules("CMP", 1, 2, 3, 4))
ENVIRONMENT = ResourceType(f"{_ML}/workspaces/environments", "", ML_API_VERSION, listing="parent")
ENV_VERSION = ResourceType(
    f"{_ML}/workspaces/environments/versions", "Machine Learning environment version", ML_API_VERSION,
    model.parse_env_version, table="environments", listing="parent", reactions=(_W,), rules=_rules("ENV", 1))
# Egress through a firewall: a route table decides whether a subnet's NSG or a firewall controls
# its internet traffic; a firewall's rules live in its policy's rule collection groups.
ROUTE_TABLE = ResourceType(
    f"{_N}/routeTables", "Route table", NETWORK_API_VERSION, egress_model.parse_route_table, table="route_tables",
    network_operations="route_tables", listing="subscription",
    reactions=(_W, _D, Reaction("routes/write"), Reaction("routes/delete", True)), rules=_rules("RT", 1))
ROUTE = ResourceType(
    f"{_N}/routeTables/routes", "Route", NETWORK_API_VERSION, _child(egress_model.parse_route), fold="routes",
    orphan="{name}'s parent {parent} is not in the {source}", network_operations="routes", around_parent=True)
FIREWALL = ResourceType(
    f"{_N}/azureFirewalls", "Azure Firewall", NETWORK_API_VERSION, egress_model.parse_firewall, table="firewalls",
    network_operations="azure_firewalls", listing="subscription", reactions=(_W,), rules=_rules("FW", 1, 2, 3))
FW_POLICY = ResourceType(
    f"{_N}/firewallPolicies", "Firewall policy", NETWORK_API_VERSION, egress_model.parse_firewall_policy,
    table="fw_policies", network_operations="firewall_policies", listing="subscription",
    reactions=(_W, Reaction("ruleCollectionGroups/write"), Reaction("ruleCollectionGroups/delete", True)),
    rules=_rules("FW", 1, 2))
RCG = ResourceType(
    f"{_N}/firewallPolicies/ruleCollectionGroups", "Firewall rule collection group", NETWORK_API_VERSION,
    _child(egress_model.parse_rule_collection_group), fold="groups",
    orphan="{name}'s parent {parent} is not in the {source}",
    network_operations="firewall_policy_rule_collection_groups", listing="parent", around_parent=True)
IP_GROUP = ResourceType(
    f"{_N}/ipGroups", "IP group", NETWORK_API_VERSION, egress_model.parse_ip_group, table="ip_groups",
    network_operations="ip_groups", listing="subscription", reactions=(_W,))

TYPES: tuple[ResourceType, ...] = (
    # in the order a sweep lists the top-level ones
    NSG, RULE, VNET, SUBNET, SEP, SEP_DEF, STORAGE, WORKSPACE, COMPUTE, ENVIRONMENT, ENV_VERSION,
    ROUTE_TABLE, ROUTE, FIREWALL, FW_POLICY, RCG, IP_GROUP,
)
BY_KEY: Mapping[str, ResourceType] = MappingProxyType({t.key: t for t in TYPES})

# ---------------------------------------------------------------------- derived views
UNDERSTOOD: frozenset[str] = frozenset(t.key for t in TYPES if t.parser is not None)
"""Type keys with a view: what the engine reads and the HTTP API evaluates."""
SWEPT: tuple[ResourceType, ...] = tuple(t for t in TYPES if t.listing == "subscription")
"""What a sweep lists across the subscription, in this order."""
TABLES: tuple[ResourceType, ...] = tuple(t for t in TYPES if t.table is not None)
FOLDED: tuple[ResourceType, ...] = tuple(t for t in TYPES if t.fold is not None)
NAMESPACE_API_VERSIONS: Mapping[str, str] = MappingProxyType(
    {t.namespace.lower(): t.api_version for t in TYPES})
"""For a type without a descriptor (an action's or a list's URL): its namespace's version."""


def get(type_key: str) -> ResourceType | None:
    return BY_KEY.get(type_key.lower())


def of_id(resource_id: str) -> ResourceType | None:
    rid = ids.try_parse(resource_id)
    return BY_KEY.get(ids.type_key(rid.type)) if rid is not None else None


def api_version(type_key: str) -> str | None:
    """The API version requests about this type are sent with; None: a namespace never read."""
    t = BY_KEY.get(type_key)
    return t.api_version if t is not None else NAMESPACE_API_VERSIONS.get(type_key.split("/", 1)[0])


def children(parent: ResourceType) -> tuple[ResourceType, ...]:
    """The types a sweep lists under each resource of ``parent``, in descriptor order."""
    return tuple(t for t in TYPES if t.listing == "parent" and t.parent_key == parent.key)


def targets(rule_ids: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The type keys the findings of these rules are about (a rule family's targets)."""
    wanted = set(rule_ids)
    return tuple(t.key for t in TYPES if wanted.intersection(t.rules))


def write_order(type_key: str) -> int:
    t = BY_KEY.get(type_key)
    return t.write_rank if t is not None else 9


def inline_children(type_key: str) -> str | None:
    """The property a read of this type always carries its children in (None: no such list)."""
    t = get(type_key)
    return t.inline if t else None


def patch_only(type_key: str) -> bool:
    t = BY_KEY.get(type_key)
    return t is not None and t.patch_only


def parse_resource(body: Any) -> Resource | None:
    """One ARM object to its view; None for types the baseline does not read."""
    rid, tkey = model._identity(body)
    t = BY_KEY.get(tkey)
    if t is None or t.parser is None:
        return None
    return t.parser(body, rid, tkey)
