"""ACS Email through the real azure-communication-email client against a loopback stand-in
of its REST API (POST /emails:send, then the operation status)."""

from __future__ import annotations

import time

from azure.core.credentials import AccessToken, AzureKeyCredential

from exfilguard.alerts.acs import AcsEmailSender
from exfilguard.alerts.delivery import FAILED, SENT
from exfilguard.alerts.dispatch import Dispatcher, EmailRouting
from exfilguard.alerts.ledger import MemoryLedger
from tests.alerts_support.receivers import AcsStandIn
from tests.alerts_support.samples import compute_alert, fixed_alert

ROUTING = EmailRouting(default=("ml-team@contoso.com", "sec@contoso.com"))


class StaticTokenCredential:
    """What the managed identity would hand the client: a bearer token for ACS."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("mi-token-for-acs", int(time.time()) + 3600)


def test_alert_email_through_acs_with_a_token_credential():
    credential = StaticTokenCredential()
    with AcsStandIn(running_polls=1) as acs:
        email = AcsEmailSender(acs.base_url, sender="DoNotReply@alerts.contoso.com", credential=credential,
                               poll_interval=0)
        outcomes = Dispatcher(ledger=MemoryLedger(), email=email, routing=ROUTING).send_alerts([fixed_alert()])
    assert [(o.status, o.channel) for o in outcomes] == [(SENT, "email")]
    (send,) = acs.sends()
    assert send.path.startswith("/emails:send?api-version=")
    assert send.headers["authorization"] == "Bearer mi-token-for-acs"
    assert credential.scopes[0] == ("https://communication.azure.com//.default",)
    body = send.json()
    assert body["senderAddress"] == "DoNotReply@alerts.contoso.com"
    assert [r["address"] for r in body["recipients"]["to"]] == ["ml-team@contoso.com", "sec@contoso.com"]
    assert body["content"]["subject"].startswith("[ExfilGuard] CRITICAL: EXF-NSG-01")
    assert "dana_w@contoso.com" in body["content"]["plainText"]
    assert "dana_w@contoso.com" in body["content"]["html"] and "<table" in body["content"]["html"]
    assert body["headers"]["X-ExfilGuard-Severity"] == "critical"
    polls = [r for r in acs.received if r.method == "GET"]
    assert len(polls) >= 2  # waited through Running to Succeeded


def test_acs_with_an_access_key_signs_requests_over_http():
    with AcsStandIn(running_polls=0) as acs:
        email = AcsEmailSender(acs.base_url, sender="DoNotReply@alerts.contoso.com",
                               credential=AzureKeyCredential("c2VjcmV0LWtleQ=="), poll_interval=0)
        assert email.send({"subject": "s", "to": ["a@contoso.com"], "text": "t", "html": "<p>t</p>"}) == 1
    (send,) = acs.sends()
    assert send.headers["authorization"].startswith("HMAC-SHA256 ")
    assert "x-ms-content-sha256" in send.headers


def test_rejected_acs_send_is_queued_and_retried_later():
    ledger = MemoryLedger()
    with AcsStandIn(fail_first=1) as acs:
        email = AcsEmailSender(acs.base_url, sender="DoNotReply@alerts.contoso.com",
                               credential=StaticTokenCredential(), poll_interval=0)
        dispatcher = Dispatcher(ledger=ledger, email=email, routing=ROUTING)
        first = dispatcher.send_alerts([compute_alert()])
        assert first[0].status == FAILED and "BadRequest" in first[0].error
        assert len(ledger.pending()) == 1
        retried = dispatcher.retry_pending()
    assert [(o.status, o.rounds, o.delivery_id) for o in retried] == [(SENT, 2, first[0].delivery_id)]
    assert ledger.pending() == []
    bodies = [r.json() for r in acs.sends()]
    assert len(bodies) == 2 and bodies[0] == bodies[1]  # resent verbatim
