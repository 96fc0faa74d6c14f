"""Adaptive Cards: valid against the official 1.5 schema, complete, escaped, within 28 KB."""

from __future__ import annotations

import json

import jsonschema
import pytest

from exfilguard.alerts.cards import MAX_PAYLOAD_BYTES, encode, teams_payload
from exfilguard.alerts.content import (
    alert_content,
    digest_content,
    escalation_content,
    exemption_change_content,
    resolved_content,
    test_content,
)
from exfilguard.alerts.message import ActionTaken, Alert, ResolvedNotice, ResourceFacts, TestAlert
from exfilguard.core.findings import Severity
from tests.alerts_support.samples import (
    NSG,
    active_exemptions,
    card_schema,
    compute_alert,
    escalation,
    exemption_change,
    fixed_alert,
    many_alerts,
    nsg_finding,
)


def _card(payload: dict) -> dict:
    return payload["attachments"][0]["content"]


def _texts(node) -> str:
    """Every string in the card, joined: what a reader could see."""
    if isinstance(node, dict):
        return " ".join(_texts(v) for v in node.values())
    if isinstance(node, list):
        return " ".join(_texts(v) for v in node)
    return node if isinstance(node, str) else ""


def _validate(payload: dict) -> None:
    jsonschema.Draft6Validator(card_schema()).validate(_card(payload))


def test_schema_is_the_official_adaptive_card_schema_and_rejects_unknown_elements():
    schema = card_schema()
    assert schema["id"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert {"TextBlock", "FactSet", "Container", "ColumnSet", "Action.OpenUrl", "Table"} <= set(schema["definitions"])
    bad = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlok", "text": "x"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft6Validator(schema).validate(bad)


def test_envelope_is_what_teams_workflows_expect():
    payload = teams_payload(alert_content(fixed_alert()))
    assert payload["type"] == "message"
    assert len(payload["attachments"]) == 1
    att = payload["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "contentUrl" in att and att["contentUrl"] is None
    assert att["content"]["type"] == "AdaptiveCard" and att["content"]["version"] == "1.5"


@pytest.mark.parametrize("build", [
    lambda: alert_content(fixed_alert()),
    lambda: alert_content(compute_alert()),
    lambda: alert_content(Alert.build(nsg_finding(), action=ActionTaken.fix_failed("HTTP 409"))),
    lambda: alert_content(Alert.build(nsg_finding(), action=ActionTaken.exempt("2025-06-30", "x"))),
    lambda: digest_content(many_alerts(12)),
    lambda: escalation_content(escalation()),
    lambda: resolved_content([ResolvedNotice("EXF-NSG-01", ResourceFacts.from_resource_id(NSG), "t")]),
    lambda: test_content(TestAlert()),
    lambda: exemption_change_content(exemption_change()),
    lambda: digest_content(many_alerts(12), exemptions=active_exemptions()),
], ids=["fixed", "alert-only", "fix-failed", "exempt", "digest", "escalation", "resolved", "test", "exemption-change",
        "digest-with-exemptions"])
def test_every_card_kind_validates_against_the_schema(build):
    _validate(teams_payload(build()))


def test_alert_card_says_what_who_why_what_was_done_and_what_next():
    alert = fixed_alert()
    card = _card(teams_payload(alert_content(alert)))
    text = _texts(card)
    header = card["body"][0]
    assert header["style"] == "attention"                       # severity by colour
    assert header["items"][0]["columns"][0]["items"][0]["text"] == "CRITICAL"  # and by word
    assert "EXF-NSG-01" in text and "Outbound internet traffic is not denied" in text
    assert "how-to-prevent-data-loss-exfiltration" in text                    # guidance link
    assert "nsg\\_ml\\_training" in text and "rg-ml-prod" in text and "westeurope" in text
    assert f"https://portal.azure.com/#@/resource{NSG}" in text
    assert "Network security group" in text
    assert "dana\\_w@contoso.com" in text                                       # who, escaped
    assert "Microsoft.Network/networkSecurityGroups/securityRules/write" in text
    assert "2025-03-14 09:12:05 UTC" in text and "7c1e2f0a-1111-4d3b-9a55-0123456789ab" in text
    assert "Fixed" in text and "(no rule)" in text and "priority 4096" in text  # before / after
    assert "template" in text                                                  # next step
    assert "/api/evaluate?code=" in text                                      # re-check
    assert "exfilguard-exempt" not in text                                     # never suggests exempting
    assert "changed by Dana Whitfield (dana\\_w@contoso.com); fixed by ExfilGuard." in text  # summary line
    urls = [a["url"] for a in card["actions"]]
    assert urls[0] == f"https://portal.azure.com/#@/resource{NSG}"


def test_markdown_in_azure_text_is_escaped():
    alert = Alert.build(nsg_finding(detail="allows * to * via [evil](https://x)"))
    text = _texts(_card(teams_payload(alert_content(alert))))
    assert "allows \\* to \\* via \\[evil\\](https://x)" in text


def test_severity_colours_differ():
    styles = {}
    for sev in Severity:
        alert = Alert.build(nsg_finding(severity=sev))
        styles[sev] = _card(teams_payload(alert_content(alert)))["body"][0]["style"]
    assert styles[Severity.CRITICAL] == styles[Severity.HIGH] == "attention"
    assert styles[Severity.MEDIUM] == "warning" and styles[Severity.LOW] == "accent"


def test_500_finding_digest_fits_28kb_and_says_how_many_more():
    payload = teams_payload(digest_content(many_alerts(500)))
    raw = encode(payload)
    assert len(raw) <= MAX_PAYLOAD_BYTES == 28 * 1024
    _validate(payload)
    text = _texts(_card(payload))
    assert "…and " in text and "more findings" in text
    # every severity is still announced with its full count, worst first
    headings = [b["text"] for b in _card(payload)["body"] if b.get("weight") == "Bolder" and " · " in b["text"]]
    assert headings[:4] == ["CRITICAL · 125", "HIGH · 125", "MEDIUM · 125", "LOW · 125"]
    shown = text.count("EXF-NSG-0")
    cut = int(text.split(" more not shown")[0].rsplit(" ", 1)[-1])
    assert shown + cut >= 500 and shown > 50


def test_digest_groups_by_severity_then_resource():
    card = _card(teams_payload(digest_content(many_alerts(8))))
    texts = [b.get("text", "") for b in card["body"]]
    crit = texts.index("CRITICAL · 2")
    high = texts.index("HIGH · 2")
    between = " ".join(texts[crit:high])
    assert "nsg-team-000" in between and "nsg-team-001" in between
    assert "EXF-NSG-01" in between and "EXF-NSG-02" not in between


def test_small_digest_is_not_cut():
    payload = teams_payload(digest_content(many_alerts(20)))
    assert "more not shown" not in json.dumps(payload)
    assert len(encode(payload)) < MAX_PAYLOAD_BYTES


def test_huge_single_finding_is_cut_to_fit():
    items = tuple(f"rule-{i}: Outbound Allow * -> 203.0.113.{i % 250}/32 ports 1-65535" for i in range(2000))
    alert = Alert.build(nsg_finding(items=items, detail="x" * 50_000))
    payload = teams_payload(alert_content(alert))
    assert len(encode(payload)) <= MAX_PAYLOAD_BYTES
    _validate(payload)
    assert "more items" in _texts(_card(payload))


def test_exemption_change_card_names_who_which_rules_until_when_and_why():
    card = _card(teams_payload(exemption_change_content(exemption_change(previous="EXF-NSG-01;until=2025-03-20;"
                                                                                  "reason=CHG-1"))))
    text = _texts(card)
    header = card["body"][0]
    assert header["items"][0]["columns"][0]["items"][0]["text"] == "EXEMPTION"
    assert "Exemption changed on nsg\\_ml\\_training" in text
    assert "exfilguard-exempt changed by Dana Whitfield (dana\\_w@contoso.com)" in text       # who
    assert "EXF-NSG-01" in text and "2025-04-13" in text and "CHG-4711; vendor test" in text  # rules, until, why
    assert "reason=CHG-1" in text                                                               # the value before
    assert "Microsoft.Network/networkSecurityGroups/securityRules/write" in text                # from the claims
    assert "remove the tag" in text


def test_digest_lists_active_exemptions_with_their_expiry_soonest_first():
    card = _card(teams_payload(digest_content(many_alerts(4), exemptions=active_exemptions())))
    text = _texts(card)
    assert "Active exemptions" in text
    assert text.index("until 2025-03-31") < text.index("until 2025-04-13")
    assert "EXF-CMP-02, EXF-CMP-04" in text and "gpu-cluster" in text and "GPU driver debugging" in text
    assert "2 active exemptions" in text
