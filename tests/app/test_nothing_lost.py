"""Nothing lost under faults (issue: reliability, item 4), against the ARM emulator and Azurite.

- A token that cannot be had (the identity endpoint failing) is transient: the event is raised
  so Event Grid redelivers it. Only ARM's own 401/403 is a verdict, audited and not raised.
- Storage failing right after a successful fix: the redelivered event finds the recorded
  intent and completes the "fixed" audit and the alert.
- A Teams outage: the failed alert is resent by the 5-minute timer, not left for the nightly
  sweep; the daily channel check falls back to email and says so.
"""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import ClientAuthenticationError

from exfilguard.adapters.state import StateError
from exfilguard.core import ids
from tests.alerts_support.receivers import Reply
from tests.alerts_support.smtp_server import LoopbackSmtp
from tests.function_support import NSG_WEU, drift, resource_event, running_app, sample

RULE_OP = "Microsoft.Network/networkSecurityGroups/securityRules/write"
DENY_RULE = "exfilguard-deny-internet-outbound"


def _prime(app) -> None:
    app.timer()
    app.emulator.reset_log()


class _NoToken:
    """A credential whose token endpoint is down (IMDS timing out, Entra ID throttling)."""

    calls = 0

    def get_token(self, *scopes, **kwargs):
        type(self).calls += 1
        raise ClientAuthenticationError("ManagedIdentityCredential: IMDS endpoint did not answer in time")


def _tokens_requested_on_loopback(monkeypatch) -> None:
    """The ARM client never asks for a token on loopback http; here it must, to meet the failing
    credential. A policy that requests the token (and, getting one, would send it) stands in for
    azure-core's bearer policy, which refuses http://."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    from exfilguard.adapters.arm import ArmClient

    original = ArmClient._client_kwargs

    class TokenPolicy(SansIOHTTPPolicy):
        def __init__(self, credential, scopes):
            self.credential, self.scopes = credential, scopes

        def on_request(self, request):
            token = self.credential.get_token(*self.scopes)
            request.http_request.headers["Authorization"] = f"Bearer {token.token}"

    def with_token(self):
        kwargs = original(self)
        if self._credential is not None:
            kwargs["authentication_policy"] = TokenPolicy(self._credential, kwargs["credential_scopes"])
        return kwargs

    monkeypatch.setattr(ArmClient, "_client_kwargs", with_token)


def test_a_transient_token_failure_is_raised_so_event_grid_redelivers(monkeypatch):
    from exfilguard.flows.event import RetryableEventError

    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime(app)
        drift(app)
        _tokens_requested_on_loopback(monkeypatch)
        app.services._credential = _NoToken()
        event = resource_event(RULE_OP, f"{NSG_WEU}/securityRules/x")
        with pytest.raises(RetryableEventError, match="could not get a token"):
            app.deliver(event)
        assert _NoToken.calls >= 1
        assert app.emulator.log == [], "no request may reach ARM without a token"
        assert [r.decision for r in app.audit(event["id"])] == ["error"]
        # The token endpoint recovers; Event Grid's redelivery fixes the drift.
        app.services._credential = None
        app.deliver(event)
        assert "fixed" in [r.decision for r in app.audit(event["id"])]


def test_a_clear_401_from_arm_is_permanent_audited_not_raised(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime(app)
        drift(app)
        app.emulator.add_fault(401, method="GET", path="nsg-ml-westeurope")
        event = resource_event(RULE_OP, f"{NSG_WEU}/securityRules/x")
        app.deliver(event)  # returns: redelivering cannot change ARM's verdict on the identity
        rows = app.audit(event["id"])
        assert [r.decision for r in rows] == ["error"] and "401" in rows[0].detail


def test_a_fix_whose_audit_failed_is_audited_and_alerted_on_redelivery(monkeypatch):
    from exfilguard.adapters.state import State
    from exfilguard.flows.event import RetryableEventError

    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime(app)
        drift(app)
        real_audit = State.audit
        failed = []

        def storage_fails_after_the_write(self, entry):
            if entry.decision == "fixed" and not failed:
                failed.append(entry)
                raise StateError("table audit: cannot record fixed (503: Service Unavailable)")
            return real_audit(self, entry)

        monkeypatch.setattr(State, "audit", storage_fails_after_the_write)
        event = resource_event(RULE_OP, f"{NSG_WEU}/securityRules/deny-internet-out")
        with pytest.raises(RetryableEventError):
            app.deliver(event)
        assert failed, "the fault must hit the fixed audit row"
        assert len(app.emulator.writes()) == 1, "the fix itself landed"
        assert DENY_RULE in {r["name"] for r in app.emulator.get_body(NSG_WEU)["properties"]["securityRules"]}
        assert "fixed" not in [r.decision for r in app.audit(event["id"])]
        assert app.teams.posts() == [], "nobody has been told yet"

        app.deliver(event)  # Event Grid redelivers the same event
        assert len(app.emulator.writes()) == 1, "the redelivery must not write again"
        fixed = [r for r in app.audit(event["id"]) if r.decision == "fixed"]
        assert len(fixed) == 1 and "earlier delivery" in fixed[0].outcome
        assert ids.key(fixed[0].resource_id) == ids.key(NSG_WEU)
        cards = [json.dumps(p.json()) for p in app.teams.posts()]
        assert len(cards) == 1 and "EXF-NSG-01" in cards[0]
        # Finished: a third delivery tells nobody again.
        app.deliver(event)
        assert len(app.teams.posts()) == 1
        assert [r.decision for r in app.audit(event["id"])].count("fixed") == 1


def test_an_intent_whose_write_never_landed_is_not_claimed_as_a_fix(monkeypatch):
    """The write failed before reaching ARM and someone else fixed the NSG meanwhile: the
    redelivery says so and sends no "fixed" alert."""
    from exfilguard.flows.event import RetryableEventError

    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        _prime(app)
        compliant = app.emulator.get_body(NSG_WEU)
        drift(app)
        app.emulator.add_fault(503, method="PUT", path="nsg-ml-westeurope", retry_after=0.01)
        event = resource_event(RULE_OP, f"{NSG_WEU}/securityRules/x")
        from exfilguard.adapters.state import State

        real_audit = State.audit

        def audit_down_once(self, entry):  # the fix-failed row is lost too, so the run raises
            if entry.decision == "fix-failed":
                raise StateError("table audit: 503")
            return real_audit(self, entry)

        monkeypatch.setattr(State, "audit", audit_down_once)
        with pytest.raises(RetryableEventError):
            app.deliver(event)
        monkeypatch.setattr(State, "audit", real_audit)
        app.emulator.clear_faults()
        app.emulator.set_body(NSG_WEU, compliant)  # a person put the rule back by hand
        app.deliver(event)
        decisions = [r.decision for r in app.audit(event["id"])]
        assert "fix-not-needed" in decisions and "fixed" not in decisions
        assert app.teams.posts() == []


def test_a_teams_outage_is_retried_within_minutes_and_the_channel_check_falls_back_to_email(monkeypatch):
    from exfilguard.core import settings

    with LoopbackSmtp() as smtp, running_app(
            monkeypatch, sample("compliant-subscription.json"), EXFILGUARD_EMAIL_CHANNEL="smtp",
            EXFILGUARD_SMTP_HOST="127.0.0.1", EXFILGUARD_SMTP_PORT=str(smtp.port),
            EXFILGUARD_SMTP_STARTTLS="false", EXFILGUARD_EMAIL_SENDER="exfilguard@contoso.example",
            EXFILGUARD_EMAIL_TO="secops@contoso.example") as app:
        _prime(app)
        app.teams.default = Reply(503, {"Retry-After": "0"})
        drift(app)
        event = resource_event(RULE_OP, f"{NSG_WEU}/securityRules/x")
        app.deliver(event)
        assert "fixed" in [r.decision for r in app.audit(event["id"])]
        pending = app.services.notifier().ledger.pending()
        assert [d.channel for d in pending] == ["teams"], "the failed Teams alert is queued"

        # The channel check, with Teams still down: an email says Teams is failing.
        result = app.fns["channel_check"](_timer())
        assert result is None
        mails = [m.message for m in smtp.received]
        fallback = [m for m in mails if "Teams channel failing" in m["Subject"]]
        assert len(fallback) == 1, [m["Subject"] for m in mails]
        text = fallback[0].get_body(preferencelist=("plain",)).get_content()
        assert "alerts fall back to email" in fallback[0]["Subject"] and "HTTP 503" in text
        assert "EXF-NSG-01" in text, "the alert still waiting for Teams is named"
        assert any(r.decision == "channel-check" and "email fallback sent" in r.outcome for r in app.audit())

        # Teams is back: the 5-minute retry timer delivers the queued alert.
        app.teams.default = Reply(202)
        before = len(app.teams.posts())
        app.fns["alert_retry"](_timer())
        delivered = [json.dumps(p.json()) for p in app.teams.posts()[before:]]
        assert len(delivered) == 1 and "EXF-NSG-01" in delivered[0]
        assert app.services.notifier().ledger.pending() == []
        assert any(r.decision == "alert-resent" for r in app.audit())
        assert settings.DEFAULT_ALERT_RETRY_SCHEDULE == "0 */5 * * * *"


def test_channel_check_with_a_live_teams_sends_no_email(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        app.fns["channel_check"](_timer())
        assert len(app.teams.posts()) == 1
        assert any(r.decision == "channel-check" and r.outcome == "teams ok" for r in app.audit())


def _timer():
    from azure.functions.timer import TimerRequest

    return TimerRequest(past_due=False)

