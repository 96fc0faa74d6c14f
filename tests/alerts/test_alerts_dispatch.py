"""Dispatch rules, end to end through a loopback Teams receiver: dedup window, digests,
resolved notices, escalations that always go out, failed deliveries kept and retried."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from exfilguard.alerts.delivery import EXEMPT, FAILED, NO_CHANNEL, SENT, SUPPRESSED
from exfilguard.alerts.dispatch import Dispatcher, DispatchPolicy
from exfilguard.alerts.ledger import MemoryLedger
from exfilguard.alerts.message import ActionTaken, Alert
from exfilguard.alerts.pacing import MinimumSpacing
from exfilguard.alerts.teams import TeamsSender
from exfilguard.core.settings import alert_settings
from tests.alerts_support.receivers import LoopbackReceiver, Reply
from tests.alerts_support.samples import (
    NOW,
    SUB,
    compute_alert,
    escalation,
    exempt_finding,
    exemption_change,
    fixed_alert,
    nsg_finding,
)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def rx():
    with LoopbackReceiver() as receiver:
        yield receiver


@pytest.fixture
def clock():
    return Clock()


def make(rx: LoopbackReceiver, clock: Clock, ledger=None, **policy) -> Dispatcher:
    # Pacing is tested in test_alerts_teams; here it would only slow the logic down.
    teams = TeamsSender(f"{rx.base_url}/hook?sig=x", spacing=MinimumSpacing(0.0), sleep=lambda s: None)
    return Dispatcher(ledger=ledger or MemoryLedger(), teams=teams, clock=clock,
                      policy=DispatchPolicy(**({"dedup_window": timedelta(hours=24)} | policy)))


def card_text(post) -> str:
    return json.dumps(post.json()["attachments"][0]["content"], ensure_ascii=False)


def alert_only():
    return Alert.build(nsg_finding(), action=ActionTaken.alert_only())


def test_same_open_finding_is_not_alerted_again_within_the_window(rx, clock):
    d = make(rx, clock)
    assert [o.status for o in d.send_alerts([alert_only()])] == [SENT]
    clock.advance(hours=23, minutes=59)
    assert [o.status for o in d.send_alerts([alert_only()])] == [SUPPRESSED]
    clock.advance(minutes=2)
    assert [o.status for o in d.send_alerts([alert_only()])] == [SENT]
    assert len(rx.posts()) == 2


def test_window_is_configurable(rx, clock):
    d = make(rx, clock, dedup_window=timedelta(hours=1))
    d.send_alerts([alert_only()])
    clock.advance(minutes=61)
    assert [o.status for o in d.send_alerts([alert_only()])] == [SENT]


def test_a_fix_is_always_reported_and_closes_the_finding(rx, clock):
    d = make(rx, clock)
    d.send_alerts([alert_only()])
    assert [o.status for o in d.send_alerts([fixed_alert()])] == [SENT]   # within the window
    assert d.ledger.get_open(fixed_alert().key) is None
    assert [o.status for o in d.send_alerts([alert_only()])] == [SENT]   # it came back: new news
    assert len(rx.posts()) == 3


def test_exempt_findings_are_not_sent_but_accounted_for(rx, clock):
    outcomes = make(rx, clock).send_alerts([Alert.build(exempt_finding())])
    assert [(o.status, o.channel) for o in outcomes] == [(EXEMPT, None)]
    assert rx.posts() == []


def test_sweep_sends_one_digest_and_then_only_new_findings(rx, clock):
    d = make(rx, clock)
    first = d.send_digest([alert_only(), compute_alert()])
    assert [(o.status, o.kind, len(o.keys)) for o in first] == [(SENT, "digest", 2)]
    clock.advance(hours=1)
    other = Alert.build(nsg_finding(rule_id="EXF-NSG-05", title="Inbound from the internet is allowed"))
    second = d.send_digest([alert_only(), compute_alert(), other])
    assert sorted(o.status for o in second) == [SENT, SUPPRESSED, SUPPRESSED]
    posts = rx.posts()
    assert len(posts) == 2
    assert "EXF-NSG-05" in card_text(posts[1]) and "EXF-CMP-02" not in card_text(posts[1])
    assert "EXF-CMP-02" in card_text(posts[0]) and "EXF-NSG-01" in card_text(posts[0])


def test_nothing_new_means_no_message(rx, clock):
    d = make(rx, clock)
    d.send_digest([alert_only()])
    assert [o.status for o in d.send_digest([alert_only()])] == [SUPPRESSED]
    assert len(rx.posts()) == 1


def test_resolved_notice_when_a_finding_disappears(rx, clock):
    d = make(rx, clock, resolved_notices=True)
    d.send_digest([alert_only(), compute_alert()], scope=SUB)
    clock.advance(hours=2)
    outcomes = d.send_digest([alert_only()], scope=SUB)
    assert sorted((o.status, o.kind) for o in outcomes) == [(SENT, "resolved"), (SUPPRESSED, "alert")]
    resolved = rx.posts()[-1]
    text = card_text(resolved)
    assert "RESOLVED" in text and "EXF-CMP-02" in text and "gpu-cluster" in text and "EXF-NSG-01" not in text
    assert [r.rule_id for r in d.ledger.open_in_scope(SUB)] == ["EXF-NSG-01"]
    # Nothing more is resolved next time.
    assert [o.kind for o in d.send_digest([alert_only()], scope=SUB)] == ["alert"]


def test_without_resolved_notices_the_finding_is_closed_quietly_and_alerts_again_when_back(rx, clock):
    d = make(rx, clock)
    d.send_digest([alert_only(), compute_alert()], scope=SUB)
    clock.advance(hours=1)
    assert [o.status for o in d.send_digest([alert_only()], scope=SUB)] == [SUPPRESSED]
    assert len(rx.posts()) == 1
    clock.advance(hours=1)
    back = d.send_digest([alert_only(), compute_alert()], scope=SUB)
    assert sorted(o.status for o in back) == [SENT, SUPPRESSED]  # back within the window, still told


def test_sweep_scope_limits_what_counts_as_resolved(rx, clock):
    d = make(rx, clock, resolved_notices=True)
    d.send_digest([alert_only(), compute_alert()])
    workspace = compute_alert().resource.resource_id.rsplit("/computes/", 1)[0]
    assert d.send_digest([], scope=workspace)[0].keys == (compute_alert().key,)
    assert d.ledger.get_open(alert_only().key) is not None  # the NSG was outside the scope


def test_escalation_always_goes_out(rx, clock):
    d = make(rx, clock)
    first = d.send_escalation(escalation())
    second = d.send_escalation(escalation())
    assert [o.status for o in first + second] == [SENT, SENT]
    text = card_text(rx.posts()[0])
    assert "ESCALATION" in text and "6 fix writes" in text and "stopped fixing" in text
    assert "9f8e7d6c-0000-4000-8000-00000000beef" in text


def test_exemption_change_always_goes_out_through_teams(rx, clock):
    d = make(rx, clock)
    outcomes = d.send_exemption_change(exemption_change()) + d.send_exemption_change(exemption_change())
    assert [(o.status, o.kind) for o in outcomes] == [(SENT, "exemption"), (SENT, "exemption")]
    text = card_text(rx.posts()[0])
    assert "EXEMPTION" in text and "Dana Whitfield" in text and "2025-04-13" in text and "CHG-4711; vendor test" in text


def test_failed_delivery_is_kept_retried_and_never_duplicated(clock):
    with LoopbackReceiver(default=Reply(500)) as rx:
        d = make(rx, clock)
        outcomes = d.send_digest([alert_only(), compute_alert()])
        assert [(o.status, o.kind) for o in outcomes] == [(FAILED, "digest")]
        record = outcomes[0].to_json()
        assert record["willRetry"] is True and record["status"] == "failed" and len(record["keys"]) == 2
        assert "HTTP 500" in record["error"] and record["deliveryId"]
        # The next sweep does not send the same findings again: the queued digest covers them.
        clock.advance(hours=1)
        assert {o.status for o in d.send_digest([alert_only(), compute_alert()])} == {SUPPRESSED}
        escalated = d.send_escalation(escalation())
        assert escalated[0].status == FAILED
        still = d.retry_pending()
        assert [(o.status, o.rounds) for o in still] == [(FAILED, 2), (FAILED, 2)]
        rx.default = Reply(202)
        before = len(rx.posts())
        clock.advance(minutes=15)  # past the claim lease
        done = d.retry_pending()
        assert sorted((o.kind, o.status, o.rounds) for o in done) == [("digest", SENT, 3), ("escalation", SENT, 3)]
        assert d.ledger.pending() == []
        accepted = rx.posts()[before:]
    assert len(accepted) == 2
    assert {p.json()["attachments"][0]["content"]["body"][0]["items"][0]["columns"][0]["items"][0]["text"]
            for p in accepted} == {"CRITICAL", "ESCALATION"}


def test_no_channel_is_reported_and_nothing_is_marked_alerted(clock):
    d = Dispatcher(ledger=MemoryLedger(), clock=clock)
    outcomes = d.send_alerts([alert_only()])
    assert [(o.status, o.error) for o in outcomes] == [(NO_CHANNEL, "no alert channel is configured")]
    assert d.ledger.get_open(alert_only().key) is None
    assert d.send_escalation(escalation())[0].status == NO_CHANNEL


def test_test_alert_failure_is_reported_not_queued(clock):
    with LoopbackReceiver(default=Reply(500)) as rx:
        d = make(rx, clock)
        (outcome,) = d.send_test()
    assert outcome.status == FAILED and outcome.to_json()["willRetry"] is False
    assert d.ledger.pending() == []


def test_from_settings_builds_the_configured_channels(rx):
    settings = alert_settings({
        "EXFILGUARD_TEAMS_WEBHOOK_URL": f"{rx.base_url}/hook?sig=abc",
        "EXFILGUARD_EMAIL_CHANNEL": "smtp", "EXFILGUARD_SMTP_HOST": "127.0.0.1",
        "EXFILGUARD_EMAIL_SENDER": "exfilguard@contoso.com", "EXFILGUARD_EMAIL_TO": "a@contoso.com",
        "EXFILGUARD_ALERT_DEDUP_HOURS": "2", "EXFILGUARD_ALERT_RESOLVED_NOTICES": "yes",
        "EXFILGUARD_HTTP_ENDPOINT": "https://func-x.azurewebsites.net",
    })
    d = Dispatcher.from_settings(settings, MemoryLedger())
    assert d.channels == ("teams", "email")
    assert d.policy.dedup_window == timedelta(hours=2) and d.policy.resolved_notices
    assert "https://func-x.azurewebsites.net/api/evaluate" in d.build_alert(nsg_finding()).recheck
    assert Dispatcher.from_settings(settings, MemoryLedger(), channels=["teams"]).channels == ("teams",)
