"""Which ARM endpoint to talk to, and with what credential.

The endpoint is configurable so the same code reaches sovereign clouds (Azure China, US
Government) and the local ARM emulator the tests run against. Plain ``http://`` is accepted
only for loopback addresses, and then no token is ever requested or sent: a bearer token
sent in clear text to a non-loopback host could be read by anyone on the path, and a token
requested for an emulator would make every test depend on a real tenant.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
ENDPOINT_VARIABLE = "EXFILGUARD_ARM_ENDPOINT"
CLIENT_ID_VARIABLE = "AZURE_CLIENT_ID"

# ARM endpoint host -> Entra ID authority host. Tokens for a sovereign cloud come from that
# cloud's own authority; asking the public one fails with a confusing "tenant not found".
_AUTHORITIES = {
    "management.azure.com": "login.microsoftonline.com",
    "management.chinacloudapi.cn": "login.chinacloudapi.cn",
    "management.usgovcloudapi.net": "login.microsoftonline.us",
}


class EndpointError(ValueError):
    """The ARM endpoint setting is unusable; the message says which setting and why."""


def _host_is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_http(url: str) -> bool:
    """True for ``http://`` URLs on 127.0.0.0/8, ``localhost`` or ``::1``: the only places a
    request may go without TLS and without a token."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme.lower() == "http" and host is not None and _host_is_loopback(host)


def _validate(url: str, source: str) -> str:
    text = url.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise EndpointError(f"{source}: {url!r} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise EndpointError(f"{source}: expected an https:// URL such as {DEFAULT_ARM_ENDPOINT}, got {url!r}")
    if parts.username or parts.password:
        raise EndpointError(f"{source}: credentials in the URL are not allowed ({parts.hostname})")
    if parts.query or parts.fragment:
        raise EndpointError(f"{source}: the endpoint must not carry a query or fragment, got {url!r}")
    if scheme == "http" and not _host_is_loopback(host):
        raise EndpointError(
            f"{source}: refusing plain http:// to {host}: a bearer token would travel unencrypted. "
            "Use https://, or http:// only on a loopback address (127.0.0.1, localhost, ::1) for the emulator")
    return text.rstrip("/")


def resolve_endpoint(cli_value: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """The ARM endpoint to use: the CLI flag, else ``EXFILGUARD_ARM_ENDPOINT``, else public Azure.

    Validated here, at start, so a typo in an app setting fails the run loudly instead of
    sending a token somewhere unexpected.
    """
    if cli_value is not None and cli_value.strip():
        return _validate(cli_value, "--arm-endpoint")
    env_value = environ.get(ENDPOINT_VARIABLE, "")
    if env_value.strip():
        return _validate(env_value, ENDPOINT_VARIABLE)
    return DEFAULT_ARM_ENDPOINT


def credential_scopes(endpoint: str) -> list[str]:
    """The token scope for an ARM endpoint: each cloud's ARM is its own audience."""
    return [f"{endpoint.rstrip('/')}/.default"]


def authority_for(endpoint: str) -> str | None:
    """The Entra ID authority host of a known cloud; None lets azure-identity decide
    (``AZURE_AUTHORITY_HOST`` or the public cloud)."""
    host = urlsplit(endpoint).hostname or ""
    return _AUTHORITIES.get(host.lower())


def credential_options(endpoint: str, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The ``DefaultAzureCredential`` options for ``endpoint``: the user-assigned identity named by
    ``AZURE_CLIENT_ID`` and, for a known sovereign cloud, its authority."""
    options: dict[str, Any] = {}
    client_id = environ.get(CLIENT_ID_VARIABLE, "").strip()
    if client_id:
        options["managed_identity_client_id"] = client_id
    authority = authority_for(endpoint)
    if authority and not environ.get("AZURE_AUTHORITY_HOST"):
        options["authority"] = authority
    return options


def make_credential(endpoint: str, environ: Mapping[str, str] = os.environ) -> Any:
    """A token credential for ``endpoint``; None for loopback http (the emulator needs none).

    ``DefaultAzureCredential`` covers a laptop (Azure CLI, VS Code) and Azure (managed
    identity); ``AZURE_CLIENT_ID`` selects a user-assigned identity, which a Function app with
    several identities needs to pick the one holding the remediation role.
    """
    if is_loopback_http(endpoint):
        return None
    _validate(endpoint, "ARM endpoint")
    from azure.identity import DefaultAzureCredential  # heavy: only when a token is needed

    return DefaultAzureCredential(**credential_options(endpoint, environ))
