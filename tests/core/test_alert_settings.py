"""Alert settings: defaults, per-severity recipients, and errors that name the setting."""

from __future__ import annotations

import pytest

from exfilguard.core.findings import Severity
from exfilguard.core.settings import SettingsError, alert_settings

WEBHOOK = "https://prod-42.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=S3CR3T-sig"


def test_defaults_when_nothing_is_set():
    s = alert_settings({})
    assert s.channels == ()
    assert (s.dedup_hours, s.resolved_notices, s.smtp_starttls, s.smtp_port) == (24.0, False, True, 587)


def test_full_smtp_configuration_with_per_severity_override():
    s = alert_settings({
        "EXFILGUARD_TEAMS_WEBHOOK_URL": WEBHOOK,
        "EXFILGUARD_EMAIL_CHANNEL": "SMTP",
        "EXFILGUARD_EMAIL_SENDER": "exfilguard@contoso.com",
        "EXFILGUARD_EMAIL_TO": "ml-team@contoso.com, sec@contoso.com",
        "EXFILGUARD_EMAIL_TO_CRITICAL": "oncall@contoso.com",
        "EXFILGUARD_SMTP_HOST": "smtp.contoso.com",
        "EXFILGUARD_SMTP_PORT": "2525",
        "EXFILGUARD_SMTP_USERNAME": "relay",
        "EXFILGUARD_SMTP_PASSWORD": "pw-123",
        "EXFILGUARD_ALERT_DEDUP_HOURS": "6.5",
        "EXFILGUARD_ALERT_RESOLVED_NOTICES": "true",
        "EXFILGUARD_HTTP_ENDPOINT": "https://func-x.azurewebsites.net",
    })
    assert s.channels == ("teams", "email")
    assert s.recipients(Severity.CRITICAL) == ("oncall@contoso.com",)
    assert s.recipients(Severity.LOW) == ("ml-team@contoso.com", "sec@contoso.com")
    assert s.all_recipients() == ("oncall@contoso.com", "ml-team@contoso.com", "sec@contoso.com")
    assert (s.smtp_port, s.dedup_hours, s.resolved_notices) == (2525, 6.5, True)
    shown = repr(s)
    assert "S3CR3T" not in shown and "pw-123" not in shown


@pytest.mark.parametrize(("env", "named"), [
    ({"EXFILGUARD_EMAIL_CHANNEL": "pigeon"}, "EXFILGUARD_EMAIL_CHANNEL"),
    ({"EXFILGUARD_EMAIL_CHANNEL": "acs", "EXFILGUARD_EMAIL_TO": "a@b.com", "EXFILGUARD_EMAIL_SENDER": "s@b.com"},
     "EXFILGUARD_ACS_ENDPOINT"),
    ({"EXFILGUARD_EMAIL_CHANNEL": "smtp", "EXFILGUARD_EMAIL_SENDER": "s@b.com", "EXFILGUARD_SMTP_HOST": "h"},
     "EXFILGUARD_EMAIL_TO"),
    ({"EXFILGUARD_EMAIL_CHANNEL": "smtp", "EXFILGUARD_EMAIL_TO": "a@b.com", "EXFILGUARD_SMTP_HOST": "h"},
     "EXFILGUARD_EMAIL_SENDER"),
    ({"EXFILGUARD_EMAIL_TO_HIGH": "not-an-address"}, "EXFILGUARD_EMAIL_TO_HIGH"),
    ({"EXFILGUARD_SMTP_PORT": "smtp"}, "EXFILGUARD_SMTP_PORT"),
    ({"EXFILGUARD_SMTP_STARTTLS": "maybe"}, "EXFILGUARD_SMTP_STARTTLS"),
    ({"EXFILGUARD_ALERT_DEDUP_HOURS": "-1"}, "EXFILGUARD_ALERT_DEDUP_HOURS"),
    ({"EXFILGUARD_ALERT_RESOLVED_NOTICES": "sometimes"}, "EXFILGUARD_ALERT_RESOLVED_NOTICES"),
    ({"EXFILGUARD_HTTP_ENDPOINT": "ftp://x"}, "EXFILGUARD_HTTP_ENDPOINT"),
    ({"EXFILGUARD_EMAIL_CHANNEL": "smtp", "EXFILGUARD_EMAIL_TO": "a@b.com", "EXFILGUARD_EMAIL_SENDER": "s@b.com",
      "EXFILGUARD_SMTP_HOST": "h", "EXFILGUARD_SMTP_USERNAME": "u", "EXFILGUARD_SMTP_PASSWORD": "p",
      "EXFILGUARD_SMTP_STARTTLS": "false"}, "EXFILGUARD_SMTP_STARTTLS"),
])
def test_invalid_settings_name_the_setting(env, named):
    with pytest.raises(SettingsError) as info:
        alert_settings(env)
    assert named in str(info.value)


@pytest.mark.parametrize("url", [
    "http://prod-42.westeurope.logic.azure.com/workflows/abc?sig=S3CR3T-sig",
    "not a url ?sig=S3CR3T-sig",
])
def test_bad_webhook_url_error_names_setting_but_not_the_url(url):
    with pytest.raises(SettingsError) as info:
        alert_settings({"EXFILGUARD_TEAMS_WEBHOOK_URL": url})
    assert "EXFILGUARD_TEAMS_WEBHOOK_URL" in str(info.value)
    assert "S3CR3T" not in str(info.value)


def test_unresolved_key_vault_reference_is_explained():
    ref = "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/teams-webhook/)"
    with pytest.raises(SettingsError, match="unresolved Key Vault reference"):
        alert_settings({"EXFILGUARD_TEAMS_WEBHOOK_URL": ref})
