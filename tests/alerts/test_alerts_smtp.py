"""Email over SMTP to a real aiosmtpd server on loopback: STARTTLS, AUTH, both parts, headers."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from exfilguard.alerts.delivery import FAILED, SENT
from exfilguard.alerts.dispatch import Dispatcher, DispatchPolicy, EmailRouting
from exfilguard.alerts.ledger import MemoryLedger
from exfilguard.alerts.smtp import SmtpSender
from exfilguard.core.findings import Severity
from tests.alerts_support.samples import NSG, active_exemptions, exemption_change, fixed_alert, many_alerts
from tests.alerts_support.smtp_server import LoopbackSmtp
from tests.alerts_support.tls import make_loopback_tls

ROUTING = EmailRouting(default=("ml-team@contoso.com",), by_severity={Severity.CRITICAL: ("oncall@contoso.com",)})


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_loopback_tls(tmp_path_factory.mktemp("tls"))


def _sender(smtp: LoopbackSmtp, tls, **kw) -> SmtpSender:
    return SmtpSender("127.0.0.1", smtp.port, sender="exfilguard@contoso.com", ssl_context=tls.client_context, **kw)


def test_alert_email_over_starttls_with_auth_has_both_parts_and_headers(tls):
    with LoopbackSmtp(tls_context=tls.server_context, credentials=("relay-user", "relay-pw")) as smtp:
        email = _sender(smtp, tls, username="relay-user", password="relay-pw")
        outcomes = Dispatcher(ledger=MemoryLedger(), email=email, routing=ROUTING).send_alerts([fixed_alert()])
    assert [(o.status, o.channel, o.recipients) for o in outcomes] == [(SENT, "email", ("oncall@contoso.com",))]
    (mail,) = smtp.received
    assert mail.tls and mail.authenticated
    assert mail.mail_from == "exfilguard@contoso.com" and mail.rcpt_tos == ["oncall@contoso.com"]
    msg = mail.message
    assert msg["Subject"] == ("[ExfilGuard] CRITICAL: EXF-NSG-01 Outbound internet traffic is not denied "
                              "on nsg_ml_training (fixed)")
    assert msg["From"] == "exfilguard@contoso.com" and msg["To"] == "oncall@contoso.com"
    assert msg["Message-ID"].endswith("@contoso.com>") and msg["Date"]
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Importance"] == "High"
    assert msg["X-ExfilGuard-Severity"] == "critical" and msg["X-ExfilGuard-Rule"] == "EXF-NSG-01"
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for needle in ("CRITICAL", "EXF-NSG-01", "nsg_ml_training", "rg-ml-prod", "westeurope",
                   "dana_w@contoso.com", "7c1e2f0a-1111-4d3b-9a55-0123456789ab", "(no rule)", "priority 4096",
                   "/api/evaluate?code=", "how-to-prevent-data-loss-exfiltration",
                   "changed by Dana Whitfield (dana_w@contoso.com); fixed by ExfilGuard."):
        assert needle in text, needle
    assert "exfilguard-exempt" not in text and "exfilguard-exempt" not in html  # never suggests exempting
    for needle in ("CRITICAL", "EXF-NSG-01", "nsg_ml_training", "dana_w@contoso.com", "(no rule)",
                   f'href="https://portal.azure.com/#@/resource{NSG}"'):
        assert needle in html, needle
    assert "#a4262c" in html  # the critical colour


def test_digest_email_is_split_by_severity_recipients():
    with LoopbackSmtp() as smtp:
        email = SmtpSender("127.0.0.1", smtp.port, sender="exfilguard@contoso.com", starttls=False)
        outcomes = Dispatcher(ledger=MemoryLedger(), email=email, routing=ROUTING).send_digest(many_alerts(8))
    assert sorted(o.recipients for o in outcomes) == [("ml-team@contoso.com",), ("oncall@contoso.com",)]
    by_to = {m.rcpt_tos[0]: m.message for m in smtp.received}
    oncall = by_to["oncall@contoso.com"].get_body(("plain",)).get_content()
    team = by_to["ml-team@contoso.com"].get_body(("plain",)).get_content()
    assert "CRITICAL · 2" in oncall and "HIGH" not in oncall
    assert "HIGH · 2" in team and "CRITICAL" not in team and "LOW · 2" in team


def test_wrong_password_is_a_failed_delivery_kept_for_retry(tls):
    ledger = MemoryLedger()
    with LoopbackSmtp(tls_context=tls.server_context, credentials=("relay-user", "relay-pw")) as smtp:
        email = _sender(smtp, tls, username="relay-user", password="not-it")
        dispatcher = Dispatcher(ledger=ledger, email=email, routing=ROUTING,
                                policy=DispatchPolicy(dedup_window=timedelta(hours=1)))
        outcomes = dispatcher.send_alerts([fixed_alert()])
    assert outcomes[0].status == FAILED and "refused" in outcomes[0].error
    assert "not-it" not in outcomes[0].error
    assert not smtp.received
    (pending,) = ledger.pending()
    assert pending.channel == "email" and pending.payload["to"] == ["oncall@contoso.com"]


def test_starttls_is_enforced_against_an_untrusted_certificate(tls):
    with LoopbackSmtp(tls_context=tls.server_context) as smtp:
        email = SmtpSender("127.0.0.1", smtp.port, sender="exfilguard@contoso.com")  # system CAs only
        outcomes = Dispatcher(ledger=MemoryLedger(), email=email, routing=ROUTING).send_alerts([fixed_alert()])
    assert outcomes[0].status == FAILED and "CERTIFICATE_VERIFY_FAILED" in outcomes[0].error
    assert not smtp.received


def test_exemption_change_email_goes_to_everyone_the_high_list_names():
    with LoopbackSmtp() as smtp:
        email = SmtpSender("127.0.0.1", smtp.port, sender="exfilguard@contoso.com", starttls=False)
        outcomes = Dispatcher(ledger=MemoryLedger(), email=email, routing=ROUTING).send_exemption_change(
            exemption_change())
    assert [(o.status, o.kind, o.recipients) for o in outcomes] == [(SENT, "exemption", ("ml-team@contoso.com",))]
    (mail,) = smtp.received
    msg = mail.message
    assert msg["Subject"] == ("[ExfilGuard] EXEMPTION set by Dana Whitfield (dana_w@contoso.com) on nsg_ml_training: "
                              "EXF-NSG-01 until 2025-04-13")
    assert msg["X-ExfilGuard-Kind"] == "exemption"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert re.search(r"Changed by: +Dana Whitfield \(dana_w@contoso.com\)", text)
    for needle in ("Rules:", "EXF-NSG-01", "Until:",
                   "2025-04-13", "Reason:", "CHG-4711; vendor test", "In force"):
        assert needle in text, needle
    assert "CHG-4711; vendor test" in html and "#b35c00" in html


def test_digest_email_lists_active_exemptions_for_every_recipient_list():
    with LoopbackSmtp() as smtp:
        email = SmtpSender("127.0.0.1", smtp.port, sender="exfilguard@contoso.com", starttls=False)
        Dispatcher(ledger=MemoryLedger(), email=email, routing=ROUTING).send_digest(
            many_alerts(8), exemptions=active_exemptions())
    assert len(smtp.received) == 2
    for m in smtp.received:
        text = m.message.get_body(("plain",)).get_content()
        assert "ACTIVE EXEMPTIONS" in text and "until 2025-03-31: GPU driver debugging" in text
        assert "nsg_ml_training (Network security group, rg-ml-prod) until 2025-04-13" in text


def test_a_digest_goes_out_for_active_exemptions_alone():
    with LoopbackSmtp() as smtp:
        email = SmtpSender("127.0.0.1", smtp.port, sender="exfilguard@contoso.com", starttls=False)
        outcomes = Dispatcher(ledger=MemoryLedger(), email=email, routing=ROUTING).send_digest(
            [], exemptions=active_exemptions())
    assert [o.status for o in outcomes] == [SENT]
    (mail,) = smtp.received
    assert sorted(mail.rcpt_tos) == ["ml-team@contoso.com", "oncall@contoso.com"]
    assert "ACTIVE EXEMPTIONS" in mail.message.get_body(("plain",)).get_content()
