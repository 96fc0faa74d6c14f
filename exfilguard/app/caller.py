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
from dataclasses import dataclass

_NAME = "x-ms-client-principal-name"
_ID = "x-ms-client-principal-id"
_IDP = "x-ms-client-principal-idp"


def _header(headers: Mapping[str, str], name: str) -> str:
    for k, v in headers.items():
        if k.lower() == name:
            return " ".join(str(v).split())[:256]
    return ""


@dataclass(frozen=True, slots=True)
class Caller:
    name: str = ""
    principal_id: str = ""
    provider: str = ""
    verified: bool = False

    @property
    def audit_text(self) -> str:
        """The audit row's ``actor``: who, and how much to believe it."""
        who = " ".join(x for x in (self.name, f"(id {self.principal_id})" if self.principal_id else "") if x)
        if self.verified:
            return f"{who or 'unknown principal'} via App Service authentication" + (
                f" ({self.provider})" if self.provider else "")
        if who:
            return f"function key; unverified x-ms-client-principal headers say {who}"
        return "function key (App Service authentication is off: the caller is not known)"


def from_headers(headers: Mapping[str, str], *, app_service_auth: bool) -> Caller:
    return Caller(name=_header(headers, _NAME), principal_id=_header(headers, _ID), provider=_header(headers, _IDP),
                  verified=app_service_auth)
