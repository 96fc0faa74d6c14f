"""Configuration parsing and the planner: one change per resource, modes and overrides honoured."""

from __future__ import annotations

import pytest

from exfilguard.core import config, engine, ids
from exfilguard.core.fixes import Edit, EditError, Sel, apply_edit, apply_edits, copy_json
from tests import factory as f
from tests.support import load_sample, run


def test_environment_overrides_and_lists():
    cfg = config.parse({
        "EXFILGUARD_MODE": "Remediate",
        "EXFILGUARD_RULE_MODES": "EXF-WS-02=audit, exf-nsg-01=remediate",
        "EXFILGUARD_EXTRA_SERVICE_TAGS": "AzureKeyVault.<region>, Sql",
        "EXFILGUARD_CURATED_ENVIRONMENTS": "false",
        "EXFILGUARD_DENY_PRIORITY": "4000",
        "EXFILGUARD_QUARANTINE": "yes",
    })
    assert cfg.mode == "remediate" and cfg.mode_for("EXF-WS-02") == "audit" and cfg.mode_for("EXF-SN-01") == "remediate"
    assert cfg.extra_service_tags == ("AzureKeyVault.<region>", "Sql")
    assert not cfg.curated_environments and cfg.deny_priority == 4000 and cfg.quarantine


@pytest.mark.parametrize("var, value", [
    ("EXFILGUARD_CURATED_ENVIRONMENTS", "maybe"),
    ("EXFILGUARD_ATTACH_NSG_ID", "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/"
                                 "serviceEndpointPolicies/p"),
    ("EXFILGUARD_STORAGE_ALLOW_LIST", "not-an-id"),
    ("EXFILGUARD_RULE_MODES", "EXF-WS-02"),
    ("EXFILGUARD_DENY_PRIORITY", "ninety"),
])
def test_invalid_settings_name_themselves(var, value):
    with pytest.raises(config.ConfigError, match=var):
        config.parse({var: value})


def test_plan_merges_edits_into_one_change_per_resource():
    ev = run(load_sample("drifted-subscription.json"))
    changes = engine.plan(ev.findings, config.Config(mode="remediate"))
    targets = [ids.key(c.target_id) for c in changes]
    assert len(targets) == len(set(targets))
    nsg_weu = next(c for c in changes if c.target_id.endswith("nsg-ml-westeurope"))
    assert set(nsg_weu.rule_ids) == {"EXF-NSG-01", "EXF-NSG-02", "EXF-NSG-05"}
    sep_eus = next(c for c in changes if c.target_id.endswith("sep-ml-eastus"))
    assert set(sep_eus.rule_ids) == {"EXF-SEP-02", "EXF-SEP-03", "EXF-SEP-04"}
    assert not any(f.exempt for f in ev.findings if ids.key(f.fix_target) in targets and f.rule_id == "EXF-CMP-04")


def test_audit_mode_and_overrides():
    ev = run(load_sample("drifted-subscription.json"))
    assert engine.plan(ev.findings, config.Config()) == []  # audit is the default
    only_ws = config.Config(mode="audit", rule_modes={"EXF-WS-02": "remediate"})
    assert [c.rule_ids for c in engine.plan(ev.findings, only_ws)] == [("EXF-WS-02",)]
    cli_remediate_but_rule_audit = config.Config(rule_modes={"EXF-WS-02": "audit"})
    planned = engine.plan(ev.findings, cli_remediate_but_rule_audit, mode="remediate")
    assert "EXF-WS-02" not in {r for c in planned for r in c.rule_ids} and planned


def test_edits_compose_and_keep_unknown_properties():
    body = {"id": "x", "properties": {"unknownField": {"a": 1}, "securityRules": [
        {"name": "r1", "properties": {"access": "Allow", "destinationAddressPrefixes": ["A", "b"]}}]}}
    out = apply_edits(body, [
        Edit("remove", ("properties", "securityRules", Sel("name", "R1"), "properties", "destinationAddressPrefixes"),
             "B"),
        Edit("set", ("properties", "securityRules", Sel("name", "r1"), "properties", "description"), "d"),
        Edit("upsert", ("properties", "securityRules"), {"name": "new", "properties": {}}),
        Edit("add", ("properties", "serviceEndpoints"), {"service": "Microsoft.Storage"}),
        Edit("add", ("properties", "serviceEndpoints"), {"service": "microsoft.storage"}),
    ])
    assert out["properties"]["unknownField"] == {"a": 1}
    assert out["properties"]["securityRules"][0]["properties"] == {
        "access": "Allow", "destinationAddressPrefixes": ["A"], "description": "d"}
    assert [r["name"] for r in out["properties"]["securityRules"]] == ["r1", "new"]
    assert out["properties"]["serviceEndpoints"] == [{"service": "Microsoft.Storage"}]
    assert body["properties"]["securityRules"][0]["properties"]["destinationAddressPrefixes"] == ["A", "b"]


def test_upsert_replaces_the_element_the_general_comparison_matches():
    """apply_edit's upsert lowers a plain name once; it must replace exactly the element _eq
    matches, first one first, for names, IDs and values that are not strings at all."""
    from exfilguard.core.fixes import _eq

    keys = ["Deny-All", "deny-all", "DENY-ALL", "other", "/subscriptions/S/x/Deny-All", "/subscriptions/s/X/deny-all",
            None, 7, ["deny-all"], {"a": 1}, ""]
    for want in keys:
        for order in (keys, keys[::-1]):
            target = [{"name": k, "n": i} for i, k in enumerate(order)] + [{"no": "name"}, "not an object"]
            body, n = {"list": target}, len(target)
            apply_edit(body, Edit("upsert", ("list",), {"name": want, "new": True}))
            expect = next((i for i, k in enumerate(order) if _eq(k, want)), None) if want is not None else None
            got = [i for i, item in enumerate(body["list"]) if isinstance(item, dict) and item.get("new")]
            assert got == ([expect] if expect is not None else [n]), (want, order)


def test_copy_json_copies_every_container_and_keeps_scalars():
    value = {"a": [1, 2.5, True, None, "s", {"b": [{"c": "d"}]}], "e": {"f": {}}, "g": "h"}
    out = copy_json(value)
    assert out == value
    out["a"][5]["b"][0]["c"] = "changed"
    out["e"]["f"]["new"] = 1
    out["a"].append(3)
    assert value == {"a": [1, 2.5, True, None, "s", {"b": [{"c": "d"}]}], "e": {"f": {}}, "g": "h"}


def test_edit_on_a_vanished_item_is_an_error():
    with pytest.raises(EditError, match="no element"):
        apply_edits({"properties": {"securityRules": []}},
                    [Edit("set", ("properties", "securityRules", Sel("name", "gone"), "properties", "access"), "Deny")])


def test_absent_neighbours_are_reported_only_where_their_rules_ran():
    from exfilguard.core.picture import build

    nsg = f.nsg("rg", "n", "westeurope", f.compliant_nsg_rules("westeurope"))
    vnet_id = f.vnet_id("rg", "v")
    sep_id = f.sep_id("rg", "p")
    vnet = f.vnet("rg", "v", "westeurope", "10.10.0.0/16",
                  [f.subnet(vnet_id, "s", "10.10.1.0/24", nsg=nsg["id"], seps=[sep_id])])
    ws = f.ws_id("rg", "w")
    compute = f.compute(ws, "ci", "westeurope", subnet=f"{vnet_id}/subnets/s")
    picture = build([nsg, vnet, compute])  # the policy was not read, as for an NSG event
    absent = {n.resource_id for n in engine.evaluate(picture, config.Config()).notices if n.kind == "absent"}
    assert absent == {sep_id}  # a full evaluation runs the policy rules: the policy is missed
    event = engine.evaluate(picture, config.Config(), only=[nsg["id"]])  # only the NSG family runs
    assert [n for n in event.notices if n.kind == "absent"] == []
