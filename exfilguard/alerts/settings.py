"""Alert settings from the environment (Function App settings), checked once at start-up.

A mistyped setting should stop the app with a message naming the setting, not surface
hours later as a silently missing alert. Secret values (the Teams URL is a bearer secret:
anyone holding it can post to the channel; the SMTP password) never appear in a message
or a repr.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from exfilguard.core.findings import Severity

PREFIX = "EXFILGUARD_"
TEAMS_WEBHOOK_URL = "EXFILGUARD_TEAMS_WEBHOOK_URL"
EMAIL_CHANNEL = "EXFILGUARD_EMAIL_CHANNEL"
ACS_ENDPOINT = "EXFILGUARD_ACS_ENDPOINT"
EMAIL_SENDER = "EXFILGUARD_EMAIL_SENDER"
EMAIL_TO = "EXFILGUARD_EMAIL_TO"
SMTP_HOST = "EXFILGUARD_SMTP_HOST"
SMTP_PORT = "EXFILGUARD_SMTP_PORT"
SMTP_USERNAME = "EXFILGUARD_SMTP_USERNAME"
SMTP_PASSWORD = "EXFILGUARD_SMTP_PASSWORD"
SMTP_STARTTLS = "EXFILGUARD_SMTP_STARTTLS"
DEDUP_HOURS = "EXFILGUARD_ALERT_DEDUP_HOURS"
RESOLVED_NOTICES = "EXFILGUARD_ALERT_RESOLVED_NOTICES"
HTTP_ENDPOINT = "EXFILGUARD_HTTP_ENDPOINT"

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$|^[^@\s,;<>]+@localhost$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def email_to_setting(severity: Severity) -> str:
    return f"EXFILGUARD_EMAIL_TO_{severity.value.upper()}"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the setting, never a secret value."""


class Secret(str):
    """A string whose repr does not show it, so a settings object can be logged safely."""

    def __repr__(self) -> str:
        return "Secret('***')"


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in _LOOPBACK_HOSTS


def _check_url(name: str, value: str, *, secret: bool) -> str:
    """https, or http on loopback (test stand-ins); a Key Vault reference the platform could not
    resolve arrives as its literal text and gets its own message."""
    shown = "the value" if secret else repr(value)
    if value.startswith("@Microsoft.KeyVault("):
        raise SettingsError(
            f"{name} is an unresolved Key Vault reference: grant the Function App's managed identity "
            "'Key Vault Secrets User' on the vault and check the secret URI")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise SettingsError(f"{name}: {shown} is not a valid URL") from None
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and parts.hostname and _is_loopback(value):
        return value
    raise SettingsError(f"{name}: {shown} must be an https:// URL")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _addresses(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    out = tuple(a.strip() for a in re.split(r"[,;]", raw) if a.strip())
    for a in out:
        if not _ADDRESS.match(a):
            raise SettingsError(f"{name}: {a!r} is not an email address")
    return out


@dataclass(frozen=True, slots=True)
class AlertSettings:
    teams_webhook_url: Secret | None = None
    email_channel: str = "none"  # none | acs | smtp
    acs_endpoint: str = ""
    email_sender: str = ""
    email_to: tuple[str, ...] = ()
    email_to_by_severity: dict[Severity, tuple[str, ...]] = field(default_factory=dict)
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: Secret | None = None
    smtp_starttls: bool = True
    dedup_hours: float = 24.0
    resolved_notices: bool = False
    http_endpoint: str = ""

    def recipients(self, severity: Severity) -> tuple[str, ...]:
        """Who gets email about a severity: its override when set, else the default list."""
        return self.email_to_by_severity.get(severity) or self.email_to

    def all_recipients(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for sev in Severity:
            for a in self.recipients(sev):
                seen.setdefault(a, None)
        return tuple(seen)

    @property
    def channels(self) -> tuple[str, ...]:
        out = []
        if self.teams_webhook_url:
            out.append("teams")
        if self.email_channel != "none":
            out.append("email")
        return tuple(out)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertSettings:
        """Read and validate every alert setting; raise :class:`SettingsError` on the first bad one."""
        env = os.environ if env is None else env
        get = lambda name: env.get(name, "").strip()  # noqa: E731

        teams = get(TEAMS_WEBHOOK_URL)
        teams_url = Secret(_check_url(TEAMS_WEBHOOK_URL, teams, secret=True)) if teams else None

        channel = (get(EMAIL_CHANNEL) or "none").lower()
        if channel not in {"none", "acs", "smtp"}:
            raise SettingsError(f"{EMAIL_CHANNEL} must be none, acs or smtp, not {channel!r}")

        by_sev = {s: _addresses(env, email_to_setting(s)) for s in Severity}
        by_sev = {s: v for s, v in by_sev.items() if v}
        email_to = _addresses(env, EMAIL_TO)
        sender = get(EMAIL_SENDER)

        acs = get(ACS_ENDPOINT)
        host = get(SMTP_HOST)
        port_raw = get(SMTP_PORT)
        username = get(SMTP_USERNAME)
        password = env.get(SMTP_PASSWORD, "")
        starttls = _flag(env, SMTP_STARTTLS, True)
        try:
            port = int(port_raw) if port_raw else 587
        except ValueError:
            raise SettingsError(f"{SMTP_PORT} must be a port number, not {port_raw!r}") from None
        if not 0 < port < 65536:
            raise SettingsError(f"{SMTP_PORT} must be between 1 and 65535, not {port}")

        if channel != "none":
            if not sender:
                raise SettingsError(f"{EMAIL_SENDER} is required when {EMAIL_CHANNEL}={channel}")
            if not _ADDRESS.match(sender):
                raise SettingsError(f"{EMAIL_SENDER}: {sender!r} is not an email address")
            if not email_to and len(by_sev) < len(Severity):
                missing = ", ".join(email_to_setting(s) for s in Severity if s not in by_sev)
                raise SettingsError(f"{EMAIL_TO} is required when {EMAIL_CHANNEL}={channel} "
                                    f"(or set every per-severity list; missing: {missing})")
        if channel == "acs":
            if not acs:
                raise SettingsError(f"{ACS_ENDPOINT} is required when {EMAIL_CHANNEL}=acs")
            _check_url(ACS_ENDPOINT, acs, secret=False)
        if channel == "smtp":
            if not host:
                raise SettingsError(f"{SMTP_HOST} is required when {EMAIL_CHANNEL}=smtp")
            if bool(username) != bool(password):
                raise SettingsError(f"{SMTP_USERNAME} and {SMTP_PASSWORD} must be set together")
            if username and not starttls and port != 465:
                raise SettingsError(f"{SMTP_STARTTLS} is false but {SMTP_PASSWORD} is set: refusing to "
                                    "send SMTP credentials unencrypted (use STARTTLS or port 465)")

        dedup_raw = get(DEDUP_HOURS)
        try:
            dedup = float(dedup_raw) if dedup_raw else 24.0
        except ValueError:
            raise SettingsError(f"{DEDUP_HOURS} must be a number of hours, not {dedup_raw!r}") from None
        if not dedup >= 0:  # also refuses NaN
            raise SettingsError(f"{DEDUP_HOURS} must be zero or more, not {dedup_raw!r}")

        endpoint = get(HTTP_ENDPOINT)
        if endpoint:
            _check_url(HTTP_ENDPOINT, endpoint, secret=False)

        return cls(
            teams_webhook_url=teams_url,
            email_channel=channel,
            acs_endpoint=acs,
            email_sender=sender,
            email_to=email_to,
            email_to_by_severity=by_sev,
            smtp_host=host,
            smtp_port=port,
            smtp_username=username,
            smtp_password=Secret(password) if password else None,
            smtp_starttls=starttls,
            dedup_hours=dedup,
            resolved_notices=_flag(env, RESOLVED_NOTICES, False),
            http_endpoint=endpoint,
        )
