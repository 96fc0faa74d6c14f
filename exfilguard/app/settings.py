"""The Function app's own settings (who it is, where its state lives, its safety limits).

Rule evaluation settings are :func:`exfilguard.core.config.load`'s business; this module holds
only what the triggers need on top. Every value is checked when first read and a bad one
raises :class:`SettingsError` naming the setting, because a typo in an app setting (say, a
loop-guard limit of ``3O``) must stop the function loudly rather than turn a guard off.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from exfilguard.core import config as config_mod

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

DEFAULT_SWEEP_SCHEDULE = "0 0 2 * * *"  # NCRONTAB with seconds: daily at 02:00 UTC
DEFAULT_SWEEP_QUEUE = "exfilguard-sweeps"
DEFAULT_STATE_PREFIX = "exfilguard"
DEFAULT_MAX_BODY_BYTES = 16 * 1024

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_QUEUE_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
_TABLE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,39}")


class SettingsError(config_mod.ConfigError):
    """A Function app setting is missing or invalid; the message names it."""


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
    credential: str | None = None  # "managedidentity" or None (DefaultAzureCredential)

    @property
    def identity_based(self) -> bool:
        return self.connection_string is None


@dataclass(frozen=True)
class AppSettings:
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
    # Pauses (each twice the last) before the loop guard holds a resource for a person.
    loop_max_backoffs: int = 3
    # How long a fix write counts towards a fight (fix writes to one resource within it).
    loop_memory: timedelta = timedelta(hours=24)
    # App Service authentication is on (infra parameter appServiceAuth): the
    # x-ms-client-principal-* headers then come from the platform, not from the caller.
    app_service_auth: bool = False


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


def storage_settings(env: Mapping[str, str]) -> StorageSettings:
    """``AzureWebJobsStorage`` (a connection string) or ``AzureWebJobsStorage__*`` (identity)."""
    conn = (env.get(STORAGE) or "").strip()
    if conn:
        if "=" not in conn:
            raise SettingsError(f"{STORAGE}: expected a storage connection string (Key=Value;...), got something "
                                "else; for identity-based access set AzureWebJobsStorage__accountName instead")
        return StorageSettings(connection_string=conn)
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
    credential = (env.get(f"{STORAGE}__credential") or "").strip().lower() or None
    if credential not in (None, "managedidentity"):
        raise SettingsError(f"{STORAGE}__credential: expected 'managedidentity' or nothing, got {credential!r}")
    return StorageSettings(table_uri=table_uri, queue_uri=queue_uri,
                           client_id=_optional_guid(env, f"{STORAGE}__clientId"), credential=credential)


def sweep_queue_name(env: Mapping[str, str] | None = None) -> str:
    """The queue the async sweep trigger listens on; read at import time by function_app.py too."""
    env = os.environ if env is None else env
    name = (env.get(SWEEP_QUEUE) or "").strip() or DEFAULT_SWEEP_QUEUE
    if not _QUEUE_NAME.fullmatch(name):
        raise SettingsError(f"{SWEEP_QUEUE}: {name!r} is not a queue name (3-63 lowercase letters, digits and "
                            "single hyphens)")
    return name


def load(environ: Mapping[str, str] | None = None) -> AppSettings:
    env = os.environ if environ is None else environ
    sub = (env.get(SUBSCRIPTION_ID) or "").strip()
    if not sub:
        raise SettingsError(f"{SUBSCRIPTION_ID}: not set; it names the one subscription ExfilGuard guards")
    if not _GUID.fullmatch(sub):
        raise SettingsError(f"{SUBSCRIPTION_ID}: expected a subscription GUID, got {sub!r}")
    prefix = (env.get(STATE_PREFIX) or "").strip() or DEFAULT_STATE_PREFIX
    if not _TABLE_PREFIX.fullmatch(prefix):
        raise SettingsError(f"{STATE_PREFIX}: {prefix!r} must be 1-40 letters and digits, starting with a letter")
    endpoint = (env.get(ARM_ENDPOINT) or "").strip() or None
    http_endpoint = (env.get(HTTP_ENDPOINT) or "").strip() or None
    try:
        rules_config = config_mod.load(environ=env)
    except config_mod.ConfigError as exc:
        raise SettingsError(str(exc)) from None
    return AppSettings(
        subscription_id=sub.lower(),
        identity_client_id=_optional_guid(env, IDENTITY_CLIENT_ID),
        identity_object_id=_optional_guid(env, IDENTITY_OBJECT_ID),
        arm_endpoint=endpoint,
        loop_max_writes=_int(env, LOOP_MAX_WRITES, 3, 1, 100),
        loop_window=timedelta(minutes=_int(env, LOOP_WINDOW_MINUTES, 10, 1, 24 * 60)),
        max_body_bytes=_int(env, MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, 256, 1024 * 1024),
        sweep_queue=sweep_queue_name(env),
        state_prefix=prefix,
        http_endpoint=http_endpoint,
        storage=storage_settings(env),
        config=rules_config,
        loop_max_backoffs=_int(env, LOOP_MAX_BACKOFFS, 3, 1, 20),
        loop_memory=timedelta(hours=_int(env, LOOP_MEMORY_HOURS, 24, 1, 24 * 7)),
        app_service_auth=_flag(env, APP_SERVICE_AUTH),
    )


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}: expected true or false, got {raw!r}")


def sweep_schedule_binding(env: Mapping[str, str] | None = None) -> str:
    """What the timer decorator gets. The host resolves ``%NAME%`` from app settings but has
    no default syntax, and an unresolvable ``%NAME%`` stops the host from indexing the
    function; so the placeholder is used only when the setting exists, else the default."""
    env = os.environ if env is None else env
    return f"%{SWEEP_SCHEDULE}%" if (env.get(SWEEP_SCHEDULE) or "").strip() else DEFAULT_SWEEP_SCHEDULE


def sweep_queue_binding(env: Mapping[str, str] | None = None) -> str:
    """The queue trigger's queue name, with the same default rule as the schedule."""
    env = os.environ if env is None else env
    return f"%{SWEEP_QUEUE}%" if (env.get(SWEEP_QUEUE) or "").strip() else DEFAULT_SWEEP_QUEUE
