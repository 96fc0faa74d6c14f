"""Every setting ExfilGuard reads, as one value object validated once.

:class:`Settings` composes the rule configuration (:class:`~exfilguard.core.config.Config`),
the alert channels (:class:`AlertSettings`) and what the Function app needs on top (who it is,
where its state lives, its safety limits). This module only validates: the app runtime and the
CLI read the environment and the configuration file (:mod:`exfilguard.adapters.configfile`) and
pass the values down. A bad value raises :class:`SettingsError` naming the setting, because a
typo in an app setting (say, a loop-guard limit of ``3O``) must stop the function loudly rather
than turn a guard off; secret values (the Teams URL is a bearer secret, the SMTP password) never
appear in a message or a repr.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from exfilguard.core import config as config_mod
from exfilguard.core.findings import Severity

SUBSCRIPTION_ID = "EXFILGUARD_SUBSCRIPTION_ID"
IDENTITY_CLIENT_ID = "EXFILGUARD_IDENTITY_CLIENT_ID"
IDENTITY_OBJECT_ID = "EXFILGUARD_IDENTITY_OBJECT_ID"
ARM_ENDPOINT = "EXFILGUARD_ARM_ENDPOINT"
LOOP_MAX_WRITES = "EXFILGUARD_LOOP_MAX_WRITES"
LOOP_WINDOW_MINUTES = "EXFILGUARD_LOOP_WINDOW_MINUTES"
LOOP_MAX_BACKOFFS = "EXFILGUARD_LOOP_MAX_BACKOFFS"
LOOP_MEMORY_HOURS = "EXFILGUARD_LOOP_MEMORY_HOURS"
APP_SERVICE_AUTH = "EXFILGUARD_APP_SERVICE_AUTH"
MAX_BODY_BYTES = "EXFILGUARD_MAX_BODY_BYTES"
SWEEP_SCHEDULE = "EXFILGUARD_SWEEP_SCHEDULE"
SWEEP_QUEUE = "EXFILGUARD_SWEEP_QUEUE"
STATE_PREFIX = "EXFILGUARD_STATE_PREFIX"
HTTP_ENDPOINT = "EXFILGUARD_HTTP_ENDPOINT"
STORAGE = "AzureWebJobsStorage"
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
COALESCE_SECONDS = "EXFILGUARD_COALESCE_SECONDS"
COALESCE_MAX_SECONDS = "EXFILGUARD_COALESCE_MAX_SECONDS"
COALESCE_SETTLE_SECONDS = "EXFILGUARD_COALESCE_SETTLE_SECONDS"
ARM_READS_PER_SECOND = "EXFILGUARD_ARM_READS_PER_SECOND"
ARM_WRITES_PER_SECOND = "EXFILGUARD_ARM_WRITES_PER_SECOND"
HTTP_BUDGET_SECONDS = "EXFILGUARD_HTTP_BUDGET_SECONDS"
SWEEP_DEADLINE_SECONDS = "EXFILGUARD_SWEEP_DEADLINE_SECONDS"
SWEEP_ENVIRONMENTS = "EXFILGUARD_SWEEP_ENVIRONMENTS"
SWEEP_CONCURRENCY = "EXFILGUARD_SWEEP_CONCURRENCY"
DEADLETTER_CONTAINER = "EXFILGUARD_DEADLETTER_CONTAINER"
DEADLETTER_MAX_ATTEMPTS = "EXFILGUARD_DEADLETTER_MAX_ATTEMPTS"

DEFAULT_SWEEP_SCHEDULE = "0 0 2 * * *"  # NCRONTAB with seconds: daily at 02:00 UTC
ALERT_RETRY_SCHEDULE = "EXFILGUARD_ALERT_RETRY_SCHEDULE"
DEFAULT_ALERT_RETRY_SCHEDULE = "0 */5 * * * *"  # every 5 minutes: a failed alert waits at most ~15
CHANNEL_CHECK_SCHEDULE = "EXFILGUARD_CHANNEL_CHECK_SCHEDULE"
DEFAULT_CHANNEL_CHECK_SCHEDULE = "0 30 7 * * *"  # daily 07:30 UTC, before a working day in Europe
DEADLETTER_SCHEDULE = "EXFILGUARD_DEADLETTER_SCHEDULE"
DEFAULT_DEADLETTER_SCHEDULE = "0 */15 * * * *"
DEFAULT_SWEEP_QUEUE = "exfilguard-sweeps"
DEFAULT_STATE_PREFIX = "exfilguard"
DEFAULT_MAX_BODY_BYTES = 16 * 1024
DEFAULT_HTTP_BUDGET_S = 200.0
"""The whole HTTP answer, retries included; the host cuts HTTP functions off at 230 s."""
DEFAULT_SWEEP_DEADLINE_S = 780.0
"""13 minutes: under half the 30-minute function timeout, leaving room to evaluate, act and
store the report; a sweep with more to read pauses there and the next run resumes it."""
DEFAULT_DEADLETTER_CONTAINER = "exfilguard-deadletter"

EmailChannel = Literal["none", "acs", "smtp"]
EMAIL_CHANNELS: tuple[EmailChannel, ...] = ("none", "acs", "smtp")

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_QUEUE_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
_TABLE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,39}")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$|^[^@\s,;<>]+@localhost$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(config_mod.ConfigError):
    """A setting is missing or invalid; the message names the setting, never a secret value."""


class Secret(str):
    """A string whose repr does not show it, so a settings object can be logged safely."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"


def email_to_setting(severity: Severity) -> str:
    return f"EXFILGUARD_EMAIL_TO_{severity.value.upper()}"


# ---------------------------------------------------------------------------------- alerts
@dataclass(frozen=True, slots=True)
class AlertSettings:
    teams_webhook_url: Secret | None = None
    email_channel: EmailChannel = "none"
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


def _alert_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
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


def _smtp_port(raw: str) -> int:
    try:
        port = int(raw) if raw else 587
    except ValueError:
        raise SettingsError(f"{SMTP_PORT} must be a port number, not {raw!r}") from None
    if not 0 < port < 65536:
        raise SettingsError(f"{SMTP_PORT} must be between 1 and 65535, not {port}")
    return port


def _dedup_hours(raw: str) -> float:
    try:
        dedup = float(raw) if raw else 24.0
    except ValueError:
        raise SettingsError(f"{DEDUP_HOURS} must be a number of hours, not {raw!r}") from None
    if not dedup >= 0:  # also refuses NaN
        raise SettingsError(f"{DEDUP_HOURS} must be zero or more, not {raw!r}")
    return dedup


def _check_email(s: AlertSettings) -> None:
    """The channel named in EXFILGUARD_EMAIL_CHANNEL has everything it needs to send."""
    channel = s.email_channel
    if channel == "none":
        return
    if not s.email_sender:
        raise SettingsError(f"{EMAIL_SENDER} is required when {EMAIL_CHANNEL}={channel}")
    if not _ADDRESS.match(s.email_sender):
        raise SettingsError(f"{EMAIL_SENDER}: {s.email_sender!r} is not an email address")
    if not s.email_to and len(s.email_to_by_severity) < len(Severity):
        missing = ", ".join(email_to_setting(v) for v in Severity if v not in s.email_to_by_severity)
        raise SettingsError(f"{EMAIL_TO} is required when {EMAIL_CHANNEL}={channel} "
                            f"(or set every per-severity list; missing: {missing})")
    if channel == "acs":
        if not s.acs_endpoint:
            raise SettingsError(f"{ACS_ENDPOINT} is required when {EMAIL_CHANNEL}=acs")
        _check_url(ACS_ENDPOINT, s.acs_endpoint, secret=False)
        return
    if not s.smtp_host:
        raise SettingsError(f"{SMTP_HOST} is required when {EMAIL_CHANNEL}=smtp")
    if bool(s.smtp_username) != bool(s.smtp_password):
        raise SettingsError(f"{SMTP_USERNAME} and {SMTP_PASSWORD} must be set together")
    if s.smtp_username and not s.smtp_starttls and s.smtp_port != 465:
        raise SettingsError(f"{SMTP_STARTTLS} is false but {SMTP_PASSWORD} is set: refusing to "
                            "send SMTP credentials unencrypted (use STARTTLS or port 465)")


def alert_settings(env: Mapping[str, str]) -> AlertSettings:
    """Validate every alert setting; raise :class:`SettingsError` on the first bad one."""
    def get(name: str) -> str:
        return env.get(name, "").strip()

    teams = get(TEAMS_WEBHOOK_URL)
    teams_url = Secret(_check_url(TEAMS_WEBHOOK_URL, teams, secret=True)) if teams else None
    channel = (get(EMAIL_CHANNEL) or "none").lower()
    if channel not in EMAIL_CHANNELS:
        raise SettingsError(f"{EMAIL_CHANNEL} must be none, acs or smtp, not {channel!r}")
    by_sev = {s: v for s in Severity if (v := _addresses(env, email_to_setting(s)))}
    password = env.get(SMTP_PASSWORD, "")
    out = AlertSettings(
        teams_webhook_url=teams_url, email_channel=channel, acs_endpoint=get(ACS_ENDPOINT),
        email_sender=get(EMAIL_SENDER), email_to=_addresses(env, EMAIL_TO), email_to_by_severity=by_sev,
        smtp_host=get(SMTP_HOST), smtp_port=_smtp_port(get(SMTP_PORT)), smtp_username=get(SMTP_USERNAME),
        smtp_password=Secret(password) if password else None, smtp_starttls=_alert_flag(env, SMTP_STARTTLS, True),
        dedup_hours=_dedup_hours(get(DEDUP_HOURS)), resolved_notices=_alert_flag(env, RESOLVED_NOTICES, False),
        http_endpoint=get(HTTP_ENDPOINT))
    _check_email(out)
    if out.http_endpoint:
        _check_url(HTTP_ENDPOINT, out.http_endpoint, secret=False)
    return out


# ---------------------------------------------------------------------------------- the app
@dataclass(frozen=True)
class StorageSettings:
    """Where state lives: a connection string (Azurite, keys) or identity-based endpoints.

    Identity-based settings follow the Functions host's own convention for
    ``AzureWebJobsStorage__*`` so one set of app settings serves the host and ExfilGuard.
    """

    connection_string: str | None = None
    table_uri: str | None = None
    queue_uri: str | None = None
    client_id: str | None = None
    credential: Literal["managedidentity"] | None = None  # None: DefaultAzureCredential
    blob_uri: str = ""  # identity-based: the dead-letter container's blob service

    @property
    def identity_based(self) -> bool:
        return self.connection_string is None


@dataclass(frozen=True)
class CoalesceSettings:
    """Event storms (:mod:`exfilguard.adapters.coalesce`): wait for ``window`` seconds of quiet,
    never longer than ``max_wait``; a lone event waits ``settle``. A window of 0 turns it off."""

    window: float = 2.0
    max_wait: float = 6.0
    settle: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.window > 0


@dataclass(frozen=True)
class SweepSettings:
    deadline_s: float = DEFAULT_SWEEP_DEADLINE_S
    environments: bool = True
    concurrency: int = 8


@dataclass(frozen=True)
class Settings:
    """The Function app's settings: the rule configuration, the alert channels, and the app's own."""

    subscription_id: str
    identity_client_id: str | None
    identity_object_id: str | None
    arm_endpoint: str | None
    loop_max_writes: int
    loop_window: timedelta
    max_body_bytes: int
    sweep_queue: str
    state_prefix: str
    http_endpoint: str | None
    storage: StorageSettings
    config: config_mod.Config
    alerts: AlertSettings = AlertSettings()
    # Pauses (each twice the last) before the loop guard holds a resource for a person.
    loop_max_backoffs: int = 3
    # How long a fix write counts towards a fight (fix writes to one resource within it).
    loop_memory: timedelta = timedelta(hours=24)
    # App Service authentication is on (infra parameter appServiceAuth): the
    # x-ms-client-principal-* headers then come from the platform, not from the caller.
    app_service_auth: bool = False
    coalesce: CoalesceSettings = CoalesceSettings()
    arm_reads_per_s: float = 20.0  # this instance's share of ARM's quota (adapters/budget.py)
    arm_writes_per_s: float = 5.0
    http_budget_s: float = DEFAULT_HTTP_BUDGET_S
    sweep: SweepSettings = SweepSettings()
    deadletter_container: str = DEFAULT_DEADLETTER_CONTAINER
    deadletter_max_attempts: int = 5


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a whole number from {lo} to {hi}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}: expected a whole number from {lo} to {hi}, got {value}")
    return value


def _optional_guid(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not _GUID.fullmatch(raw):
        raise SettingsError(f"{name}: expected a GUID, got {raw!r}")
    return raw.lower()


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", *_FALSE):
        return False
    if raw in _TRUE:
        return True
    raise SettingsError(f"{name}: expected true or false, got {raw!r}")


def _service_uris(env: Mapping[str, str]) -> tuple[str, str]:
    account = (env.get(f"{STORAGE}__accountName") or "").strip()
    table_uri = (env.get(f"{STORAGE}__tableServiceUri") or "").strip()
    queue_uri = (env.get(f"{STORAGE}__queueServiceUri") or "").strip()
    if account:
        if not re.fullmatch(r"[a-z0-9]{3,24}", account):
            raise SettingsError(f"{STORAGE}__accountName: {account!r} is not a storage account name")
        table_uri = table_uri or f"https://{account}.table.core.windows.net"
        queue_uri = queue_uri or f"https://{account}.queue.core.windows.net"
    if not table_uri or not queue_uri:
        raise SettingsError(f"{STORAGE}: not set; give a connection string, or {STORAGE}__accountName (or both "
                            f"{STORAGE}__tableServiceUri and {STORAGE}__queueServiceUri) for identity-based access")
    for name, uri in ((f"{STORAGE}__tableServiceUri", table_uri), (f"{STORAGE}__queueServiceUri", queue_uri)):
        loopback = re.fullmatch(r"http://(127\.0\.0\.1|localhost)(:\d+)?/\S*", uri)  # Azurite
        if not re.fullmatch(r"https://[^/\s]+/?", uri) and not loopback:
            raise SettingsError(f"{name}: expected an https:// service URI, got {uri!r}")
    return table_uri, queue_uri


def storage_settings(env: Mapping[str, str]) -> StorageSettings:
    """``AzureWebJobsStorage`` (a connection string) or ``AzureWebJobsStorage__*`` (identity)."""
    conn = (env.get(STORAGE) or "").strip()
    if conn:
        if "=" not in conn:
            raise SettingsError(f"{STORAGE}: expected a storage connection string (Key=Value;...), got something "
                                "else; for identity-based access set AzureWebJobsStorage__accountName instead")
        return StorageSettings(connection_string=conn)
    table_uri, queue_uri = _service_uris(env)
    credential = (env.get(f"{STORAGE}__credential") or "").strip().lower() or None
    if credential not in (None, "managedidentity"):
        raise SettingsError(f"{STORAGE}__credential: expected 'managedidentity' or nothing, got {credential!r}")
    account = (env.get(f"{STORAGE}__accountName") or "").strip()
    blob_uri = (env.get("AzureWebJobsStorage__blobServiceUri") or "").strip() or f"https://{account}.blob.core.windows.net"
    return StorageSettings(table_uri=table_uri, queue_uri=queue_uri, blob_uri=blob_uri,
                           client_id=_optional_guid(env, f"{STORAGE}__clientId"),
                           credential=cast(Literal["managedidentity"] | None, credential))


def sweep_queue_name(env: Mapping[str, str]) -> str:
    """The queue the async sweep trigger listens on."""
    name = (env.get(SWEEP_QUEUE) or "").strip() or DEFAULT_SWEEP_QUEUE
    if not _QUEUE_NAME.fullmatch(name):
        raise SettingsError(f"{SWEEP_QUEUE}: {name!r} is not a queue name (3-63 lowercase letters, digits and "
                            "single hyphens)")
    return name


def _number(env: Mapping[str, str], name: str, default: float, lo: float, hi: float, expected: str) -> float:
    """A number in [lo, hi]; ``expected`` completes the message "NAME: expected ..., got '...'"."""
    raw = (env.get(name) or "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise SettingsError(f"{name}: expected {expected}, got {raw!r}")
    return value


def coalesce_settings(env: Mapping[str, str]) -> CoalesceSettings:
    window, max_wait, settle = (_number(env, name, default, 0, 300, "seconds from 0 to 300") for name, default in (
        (COALESCE_SECONDS, 2.0), (COALESCE_MAX_SECONDS, 6.0), (COALESCE_SETTLE_SECONDS, 0.0)))
    return CoalesceSettings(window, max(window, max_wait), min(settle, window))


def sweep_settings(env: Mapping[str, str]) -> SweepSettings:
    def number(name: str, default: float, lo: float, hi: float) -> float:
        return _number(env, name, default, lo, hi, f"a number from {lo:g} to {hi:g}")

    flag = (env.get(SWEEP_ENVIRONMENTS) or "true").strip().lower()
    if flag not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{SWEEP_ENVIRONMENTS}: expected true or false, got {flag!r}")
    return SweepSettings(number(SWEEP_DEADLINE_SECONDS, DEFAULT_SWEEP_DEADLINE_S, 1, 1500),
                         flag in ("true", "1", "yes"), int(number(SWEEP_CONCURRENCY, 8, 1, 64)))


def _deadletter_attempts(env: Mapping[str, str]) -> int:
    raw = (env.get(DEADLETTER_MAX_ATTEMPTS) or "").strip()
    try:
        attempts = int(raw) if raw else 5
    except ValueError:
        attempts = 0
    if not 1 <= attempts <= 100:
        raise SettingsError(f"{DEADLETTER_MAX_ATTEMPTS}: expected a whole number from 1 to 100, got {raw!r}")
    return attempts


def _subscription(env: Mapping[str, str]) -> str:
    sub = (env.get(SUBSCRIPTION_ID) or "").strip()
    if not sub:
        raise SettingsError(f"{SUBSCRIPTION_ID}: not set; it names the one subscription ExfilGuard guards")
    if not _GUID.fullmatch(sub):
        raise SettingsError(f"{SUBSCRIPTION_ID}: expected a subscription GUID, got {sub!r}")
    return sub.lower()


def parse(env: Mapping[str, str], document: Mapping[str, Any] | None = None, source: str = "") -> Settings:
    """Every setting of the Function app from the environment and the configuration file's
    mapping (``source`` names the file in messages); raises :class:`SettingsError`."""
    sub = _subscription(env)
    prefix = (env.get(STATE_PREFIX) or "").strip() or DEFAULT_STATE_PREFIX
    if not _TABLE_PREFIX.fullmatch(prefix):
        raise SettingsError(f"{STATE_PREFIX}: {prefix!r} must be 1-40 letters and digits, starting with a letter")
    try:
        rules_config = config_mod.parse(env, document, source)
    except config_mod.ConfigError as exc:
        raise SettingsError(str(exc)) from None
    return Settings(
        subscription_id=sub,
        identity_client_id=_optional_guid(env, IDENTITY_CLIENT_ID),
        identity_object_id=_optional_guid(env, IDENTITY_OBJECT_ID),
        arm_endpoint=(env.get(ARM_ENDPOINT) or "").strip() or None,
        loop_max_writes=_int(env, LOOP_MAX_WRITES, 3, 1, 100),
        loop_window=timedelta(minutes=_int(env, LOOP_WINDOW_MINUTES, 10, 1, 24 * 60)),
        max_body_bytes=_int(env, MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, 256, 1024 * 1024),
        sweep_queue=sweep_queue_name(env),
        state_prefix=prefix,
        http_endpoint=(env.get(HTTP_ENDPOINT) or "").strip() or None,
        storage=storage_settings(env),
        config=rules_config,
        alerts=alert_settings(env),
        loop_max_backoffs=_int(env, LOOP_MAX_BACKOFFS, 3, 1, 20),
        loop_memory=timedelta(hours=_int(env, LOOP_MEMORY_HOURS, 24, 1, 24 * 7)),
        app_service_auth=_flag(env, APP_SERVICE_AUTH),
        coalesce=coalesce_settings(env),
        arm_reads_per_s=_number(env, ARM_READS_PER_SECOND, 20.0, 0.1, 1000, "requests per second from 0.1 to 1000"),
        arm_writes_per_s=_number(env, ARM_WRITES_PER_SECOND, 5.0, 0.1, 1000, "requests per second from 0.1 to 1000"),
        http_budget_s=_number(env, HTTP_BUDGET_SECONDS, DEFAULT_HTTP_BUDGET_S, 1, DEFAULT_HTTP_BUDGET_S,
                              f"seconds from 1 to {DEFAULT_HTTP_BUDGET_S:g}"),
        sweep=sweep_settings(env),
        deadletter_container=(env.get(DEADLETTER_CONTAINER) or "").strip() or DEFAULT_DEADLETTER_CONTAINER,
        deadletter_max_attempts=_deadletter_attempts(env),
    )
