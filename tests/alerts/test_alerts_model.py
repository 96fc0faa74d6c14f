"""Alert inputs: ARM ID facts, portal links, guidance, exemption and re-check texts."""

from __future__ import annotations

from datetime import timedelta

from exfilguard.alerts import guidance
from exfilguard.alerts.content import alert_content, digest_content, escalation_content
from exfilguard.alerts.mail import render_text
from exfilguard.alerts.message import (
    ActionKind,
    ActionTaken,
    Alert,
    Escalation,
    ResourceFacts,
    alert_key,
)
from exfilguard.core.actor import Actor
from tests.alerts_support.samples import (
    COMPUTE,
    NSG,
    SUB,
    SUBNET,
    compute_finding,
    exempt_finding,
    fixed_alert,
    many_alerts,
    nsg_finding,
)


def test_resource_facts_split_the_arm_id_case_insensitively():
    rid = f"/subscriptions/{SUB}/resourcegroups/RG-Ml/providers/Microsoft.Network/virtualNetworks/vnet-ml/subnets/a"
    facts = ResourceFacts.from_resource_id(rid, region="westeurope")
    assert (facts.name, facts.type, facts.resource_group, facts.subscription, facts.region) == (
        "a", "Microsoft.Network/virtualNetworks/subnets", "RG-Ml", SUB, "westeurope")
    assert facts.type_label == "Subnet"


def test_nested_child_type_and_name():
    facts = ResourceFacts.from_resource_id(COMPUTE)
    assert facts.type == "Microsoft.MachineLearningServices/workspaces/computes"
    assert facts.name == "gpu-cluster"
    assert facts.resource_group == "rg-ml-prod"


def test_malformed_id_still_gives_a_name_instead_of_raising():
    facts = ResourceFacts.from_resource_id("not-an-arm-id")
    assert facts.name == "not-an-arm-id"
    assert facts.resource_group == "" and facts.type == ""


def test_portal_deep_link_is_the_resource_link():
    assert ResourceFacts.from_resource_id(NSG).portal_url == f"https://portal.azure.com/#@/resource{NSG}"


def test_subnet_exemption_goes_on_the_vnet_tag():
    facts = ResourceFacts.from_resource_id(SUBNET)
    assert facts.tag_holder.endswith("/virtualNetworks/vnet-ml")
    assert ResourceFacts.from_resource_id(NSG).tag_holder == NSG


def test_guidance_url_per_rule_family():
    from exfilguard.core import catalog

    assert guidance.guidance_url("EXF-NSG-02") == catalog.GUIDE_EXFIL
    assert guidance.guidance_url("exf-sep-01") == catalog.GUIDE_EXFIL
    assert guidance.guidance_url("EXF-SN-03") == catalog.GUIDE_EXFIL
    assert guidance.guidance_url("EXF-CMP-02") == catalog.GUIDE_TRAINING
    assert guidance.guidance_url("EXF-WS-04") == catalog.GUIDE_MANAGED
    assert guidance.guidance_url("EXF-WS-05") == catalog.GUIDE_MANAGED
    assert guidance.guidance_url("EXF-XX-99") == catalog.GUIDE_EXFIL
    for rule in catalog.CATALOG:  # every rule names one of the articles it comes from
        assert rule.guidance in catalog.ARTICLES, rule.id


def test_build_derives_action_from_fix_mode_and_exemption():
    assert Alert.build(nsg_finding()).action.kind is ActionKind.WOULD_FIX
    assert Alert.build(compute_finding()).action.kind is ActionKind.ALERT_ONLY
    exempt = Alert.build(exempt_finding())
    assert exempt.action.kind is ActionKind.EXEMPT and exempt.action.until == "2025-06-30"


def test_the_summary_says_who_changed_it_and_what_exfilguard_did():
    fixed = alert_content(fixed_alert())
    assert "changed by Dana Whitfield (dana_w@contoso.com); fixed by ExfilGuard." in fixed.summary
    assert "fixed by Dana" not in fixed.summary
    would = alert_content(Alert.build(nsg_finding(), change=Actor(name="Dana Whitfield")))
    assert would.summary.endswith(": changed by Dana Whitfield; not changed by ExfilGuard (audit mode).")
    sweep = alert_content(Alert.build(compute_finding()))
    assert sweep.summary.endswith(": not changed by ExfilGuard (alert only).") and ": changed by" not in sweep.summary


def test_no_alert_suggests_exempting():
    """Alerts point to the fix (baseline.md, Exemptions): no exemption tag, command or hint."""
    messages = [alert_content(fixed_alert()), alert_content(Alert.build(nsg_finding())),
                alert_content(Alert.build(compute_finding())),
                alert_content(Alert.build(nsg_finding(), action=ActionTaken.fix_failed("409"))),
                digest_content(many_alerts(8)),
                escalation_content(Escalation(ResourceFacts.from_resource_id(NSG), ("EXF-NSG-01",), 3,
                                              timedelta(minutes=10)))]
    for content in messages:
        words = render_text(content).lower()
        assert "exfilguard-exempt" not in words and "az tag" not in words, content.kind
        assert "exempt the" not in words and "accept a finding" not in words, content.kind


def test_recheck_command_uses_the_configured_endpoint():
    alert = Alert.build(nsg_finding(), http_endpoint="https://func-x.azurewebsites.net/")
    assert alert.recheck.startswith('curl -X POST "https://func-x.azurewebsites.net/api/evaluate?code=<function key>"')
    assert f'{{"resourceId":"{NSG}"}}' in alert.recheck
    assert "<function-app>" in Alert.build(nsg_finding()).recheck


def test_next_step_depends_on_what_was_done():
    fixed = Alert.build(nsg_finding(), action=ActionTaken.fixed("a", "b"),
                        change=Actor(name="Dana"))
    assert "Dana" in fixed.next_step and "template" in fixed.next_step
    failed = Alert.build(nsg_finding(), action=ActionTaken.fix_failed("412 etag"))
    assert failed.next_step.startswith("Apply the fix by hand: add rule exfilguard-deny-internet-outbound")
    assert "recreate the compute" in Alert.build(compute_finding()).next_step


def test_alert_key_ignores_id_case():
    assert alert_key("exf-nsg-01", NSG.upper()) == alert_key("EXF-NSG-01", NSG)
