"""Exemption governance in the Function app: a tag that appears or changes is alerted (who,
which rules, until when, why) in every mode; a sweep's digest lists the exemptions in force."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.function_support import MALLORY, NSG_WEU, resource_event, running_app, sample

NSG_WRITE = "Microsoft.Network/networkSecurityGroups/write"


def in_days(n: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=n)).isoformat()


def _tag(app, value: str) -> None:
    body = app.emulator.get_body(NSG_WEU)
    body["tags"] = {"exfilguard-exempt": value}
    app.emulator.set_body(NSG_WEU, body)


def _cards(app, word: str) -> list[str]:
    return [t for t in (json.dumps(p.json(), ensure_ascii=False) for p in app.teams.posts()) if word in t]


def test_a_new_or_changed_exemption_tag_is_alerted_once_with_who_what_until_and_why(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json"), mode="audit") as app:
        app.timer()  # index; nothing tagged yet
        assert _cards(app, "EXEMPTION") == []
        value = f"EXF-NSG-01,EXF-NSG-02;until={in_days(30)};reason=CHG-4711; vendor test"
        _tag(app, value)
        app.deliver(resource_event(NSG_WRITE, NSG_WEU))
        [card] = _cards(app, "Exemption set on nsg-ml-westeurope")
        assert MALLORY["upn"] in card and "Mallory Admin" in card                  # who, from the claims
        assert "EXF-NSG-01, EXF-NSG-02" in card and in_days(30) in card           # which rules, until when
        assert "CHG-4711; vendor test" in card and "In force" in card              # why
        rows = [r for r in app.audit() if r.decision.startswith("exemption-")]
        assert [r.decision for r in rows] == ["exemption-set"] and rows[0].actor.endswith(f"({MALLORY['upn']})")

        app.deliver(resource_event(NSG_WRITE, NSG_WEU))  # same tag again: nothing new to say
        assert len(_cards(app, "EXEMPTION")) == 1

        _tag(app, f"EXF-NSG-01;until={in_days(60)};reason=CHG-4712")
        app.deliver(resource_event(NSG_WRITE, NSG_WEU))
        [changed] = _cards(app, "Exemption changed on nsg-ml-westeurope")
        assert in_days(60) in changed and "CHG-4711; vendor test" in changed      # the value before, too
        assert app.emulator.writes() == []  # audit mode: alerts, never writes


def test_an_exemption_too_far_ahead_is_alerted_as_not_in_force_and_exempts_nothing(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json"), mode="audit") as app:
        app.timer()
        body = app.emulator.get_body(NSG_WEU)
        body["properties"]["securityRules"] = [r for r in body["properties"]["securityRules"]
                                               if r["name"] != "deny-internet-out"]
        body["tags"] = {"exfilguard-exempt": f"EXF-NSG-01;until={in_days(91)};reason=forever"}
        app.emulator.set_body(NSG_WEU, body)
        app.deliver(resource_event(NSG_WRITE, NSG_WEU))
        [card] = _cards(app, "Exemption set on")
        assert "Not in force" in card and "more than 90 days after" in card
        findings = [r for r in app.audit() if r.decision == "evaluated"][-1].findings
        assert [f["exempt"] for f in findings if f["ruleId"] == "EXF-NSG-01"] == [False]
        assert _cards(app, "EXF-NSG-01 · "), "the finding is alerted as usual"


def test_the_sweep_digest_lists_active_exemptions_with_their_expiry(monkeypatch):
    with running_app(monkeypatch, sample("drifted-subscription.json"), mode="audit") as app:
        _tag(app, f"EXF-NSG-04;until={in_days(10)};reason=vendor appliance")
        app.timer()
        [digest] = _cards(app, "ExfilGuard sweep")
        assert "Active exemptions" in digest
        assert f"nsg-ml-westeurope (Network security group, rg-ml-weu) until {in_days(10)}: vendor appliance" in digest
        # The sweep found the tag first: it is alerted too, without a "who" (no event).
        [set_card] = _cards(app, "Exemption set on nsg-ml-westeurope")
        assert "found by a scheduled sweep" in set_card
        # Removing the tag is remembered: setting it again later is alerted again.
        body = app.emulator.get_body(NSG_WEU)
        body["tags"] = {}
        app.emulator.set_body(NSG_WEU, body)
        app.timer()
        assert "exemption-removed" in [r.decision for r in app.audit()]
