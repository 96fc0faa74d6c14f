"""Every ARM type descriptor is complete and agrees with everything derived from it.

Adding a type means one descriptor in exfilguard/core/types.py plus its rules and tests; these
checks fail when the descriptor leaves something out that another part of the product needs.
"""

from __future__ import annotations

import dataclasses

import pytest

from exfilguard.core import model, operations, types
from exfilguard.core.catalog import CATALOG, FixKind
from exfilguard.core.picture import Picture
from exfilguard.core.rules import FAMILIES
from tests.project.test_infra import MAIN, bicep_string_array, read

DESCRIPTORS = pytest.mark.parametrize("t", types.TYPES, ids=lambda t: t.arm_type)


def test_one_descriptor_per_type_and_the_model_keys_agree() -> None:
    assert len(types.BY_KEY) == len(types.TYPES)
    for name in ("NSG", "RULE", "VNET", "SUBNET", "SEP", "SEP_DEF", "WORKSPACE", "COMPUTE", "ENV_VERSION", "STORAGE",
                 "ROUTE_TABLE", "ROUTE", "FIREWALL", "FW_POLICY", "RCG", "IP_GROUP"):
        assert getattr(types, name).key == getattr(model, name), name


@DESCRIPTORS
def test_a_type_with_a_view_enters_the_picture(t: types.ResourceType) -> None:
    picture_fields = {f.name for f in dataclasses.fields(Picture)}
    if t.parser is None:
        assert t.table is None and t.fold is None and not t.reactions and not t.rules
        assert t.listing == "parent" and types.children(t), "a type without a view is only walked to its children"
        return
    assert t.table is not None or t.fold is not None, "a view must land in a picture table or its parent's view"
    assert t.label, "alerts name the type of every resource they are about"
    if t.table is not None:
        assert t.table in picture_fields
    if t.fold is not None:
        parent = types.BY_KEY[t.parent_key or ""]
        assert parent.table is not None, "a folded child needs its parent in the picture"
        view_class = type(_a_view(parent))
        assert t.fold in {f.name for f in dataclasses.fields(view_class)}, f"{view_class.__name__} has no {t.fold}"
        assert t.table is not None or t.orphan, "an orphaned child must be kept or noticed"


def _a_view(t: types.ResourceType) -> model.Resource:
    rid = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/" + \
          "/".join(f"{seg}/x" if i else f"{t.namespace}/{seg}/x" for i, seg in enumerate(t.arm_type.split("/")[1:]))
    body = {"id": rid, "name": "x", "type": t.arm_type, "location": "westeurope", "properties": {}}
    view = types.parse_resource(body)
    assert view is not None and view.type == t.key
    return view


@DESCRIPTORS
def test_each_parser_reads_its_own_type(t: types.ResourceType) -> None:
    if t.parser is not None and t.fold is None:
        _a_view(t)


@DESCRIPTORS
def test_each_listed_type_has_a_view_or_children_and_a_listed_parent(t: types.ResourceType) -> None:
    if t.listing is None:
        return
    assert t.parser is not None or types.children(t)
    if t.listing == "subscription":
        assert t.parent_key is None, "only top-level types are listed across the subscription"
    else:
        parent = types.BY_KEY[t.parent_key or ""]
        assert parent.listing is not None, f"{t.arm_type} is listed under {parent.arm_type}, which nothing lists"


@DESCRIPTORS
def test_network_types_name_the_network_sdks_operation_group(t: types.ResourceType) -> None:
    from azure.mgmt.network import NetworkManagementClient

    if t.namespace != "Microsoft.Network":
        assert t.network_operations is None
        return
    client = NetworkManagementClient(object(), "00000000-0000-0000-0000-000000000000")
    group = getattr(client, t.network_operations or "-", None)
    assert group is not None, f"NetworkManagementClient has no {t.network_operations}"
    assert callable(group.get) and callable(group.begin_create_or_update)


def test_one_api_version_per_namespace() -> None:
    for t in types.TYPES:
        assert types.NAMESPACE_API_VERSIONS[t.namespace.lower()] == t.api_version, t.arm_type
        assert types.api_version(t.key) == t.api_version
    assert types.api_version("microsoft.compute/virtualmachines") is None


def test_every_event_operation_routes_to_a_descriptor_it_re_reads() -> None:
    for op in operations._TABLE:
        t = types.get(op.reread_type)
        assert t is not None and t.parser is not None and not t.around_parent, op
        assert op.name.lower().startswith(t.key + "/")
        assert operations.lookup(op.name) == op
    for key, op in operations.RESOURCE_TYPES.items():
        t = types.get(key)
        assert t is not None and (t.reactions or t.around_parent), key
        assert types.get(op.reread_type) is not None


def test_the_event_grid_filter_in_infra_is_the_descriptors_operations() -> None:
    from_descriptors = {f"{t.arm_type}/{r.path}" for t in types.TYPES for r in t.reactions}
    assert set(bicep_string_array(read(MAIN), "handledOperationNames")) == from_descriptors


def test_a_type_evaluated_around_its_parent_has_a_parent_that_reacts() -> None:
    for t in types.TYPES:
        if t.around_parent:
            assert t.fold is not None and types.BY_KEY[t.parent_key or ""].reactions, t.arm_type


def test_rules_and_descriptors_name_each_other() -> None:
    catalog = {r.id: r for r in CATALOG}
    targeted = {rule for t in types.TYPES for rule in t.rules}
    assert targeted == set(catalog), "a rule no type names, or a type naming a rule that does not exist"
    for family in FAMILIES:
        assert family.TARGETS, family.__name__
        for rule in family.RULES:
            assert {t.key for t in types.TYPES if rule.id in t.rules} <= set(family.TARGETS)
    for t in types.TYPES:
        if t.rules:
            assert t.parser is not None and t.table is not None, t.arm_type
        if any(catalog[r].fix_kind is not FixKind.ALERT for r in t.rules):
            assert t.write_rank < 9, f"{t.arm_type} is written by a fix but has no write order"


def test_write_order_and_patch_only_come_from_the_descriptors() -> None:
    assert types.write_order(types.NSG.key) < types.write_order(types.SEP.key) < types.write_order(types.SUBNET.key)
    assert types.write_order(types.SUBNET.key) < types.write_order(types.WORKSPACE.key) < \
        types.write_order(types.COMPUTE.key) < types.write_order("microsoft.compute/virtualmachines")
    assert [t.key for t in types.TYPES if t.patch_only] == [model.COMPUTE]
    assert types.patch_only(model.COMPUTE) and not types.patch_only(model.NSG)


def test_the_sweep_lists_the_top_level_types_in_descriptor_order() -> None:
    assert [t.segment for t in types.SWEPT] == [
        "networkSecurityGroups", "virtualNetworks", "serviceEndpointPolicies", "storageAccounts", "workspaces",
        "routeTables", "azureFirewalls", "firewallPolicies", "ipGroups"]
    assert [t.segment for t in types.children(types.WORKSPACE)] == ["computes", "environments"]
    assert [t.segment for t in types.children(types.ENVIRONMENT)] == ["versions"]
    assert [t.segment for t in types.children(types.FW_POLICY)] == ["ruleCollectionGroups"]
