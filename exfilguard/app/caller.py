"""Who called an HTTP endpoint, for the audit log.

A function key says only that the caller holds a key: the Functions host does not expose
which key. With App Service authentication on (infra parameter ``appServiceAuth``, app
setting ``EXFILGUARD_APP_SERVICE_AUTH=true``) the platform signs the caller in and passes
``X-MS-CLIENT-PRINCIPAL-NAME`` / ``-ID`` / ``-IDP``, removing any such header the caller sent,
so they name a person or an app. Without it the same headers are whatever the caller chose
to send: they are recorded, marked unverified, never trusted.
"""

from __future__ import annotations

from collections.abc import Mapping

from exfilguard.core.actor import Actor

_NAME = "x-ms-client-principal-name"
_ID = "x-ms-client-principal-id"
_IDP = "x-ms-client-principal-idp"


def _header(headers: Mapping[str, str], name: str) -> str:
    for k, v in headers.items():
        if k.lower() == name:
            return " ".join(str(v).split())[:256]
    return ""


def audit_text(caller: Actor) -> str:
    """The audit row's ``actor``: who, and how much to believe it."""
    who = " ".join(x for x in (caller.name, f"(id {caller.object_id})" if caller.object_id else "") if x)
    if caller.verified:
        return f"{who or 'unknown principal'} via App Service authentication" + (
            f" ({caller.provider})" if caller.provider else "")
    if who:
        return f"function key; unverified x-ms-client-principal headers say {who}"
    return "function key (App Service authentication is off: the caller is not known)"


def from_headers(headers: Mapping[str, str], *, app_service_auth: bool) -> Actor:
    return Actor(name=_header(headers, _NAME), object_id=_header(headers, _ID), provider=_header(headers, _IDP),
                 verified=app_service_auth)
