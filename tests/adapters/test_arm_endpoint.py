"""The ARM endpoint override, credentials, and the promise that adapters import lazily."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exfilguard.adapters import endpoint
from exfilguard.adapters.endpoint import (
    DEFAULT_ARM_ENDPOINT,
    EndpointError,
    credential_options,
    credential_scopes,
    is_loopback_http,
    make_credential,
    resolve_endpoint,
)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080", "http://127.5.6.7", "http://localhost:1234/", "http://LOCALHOST",
    "http://[::1]:9000",
])
def test_loopback_http_is_recognised(url: str) -> None:
    assert is_loopback_http(url)
    assert resolve_endpoint(url, environ={}) == url.rstrip("/")


@pytest.mark.parametrize("url", [
    "https://127.0.0.1", "http://10.0.0.5", "http://localhost.evil.example", "http://128.0.0.1",
    "http://[::2]", "ftp://127.0.0.1", "http://0.0.0.0:80",
])
def test_other_urls_are_not_loopback_http(url: str) -> None:
    assert not is_loopback_http(url)


@given(st.ip_addresses(v=4).filter(lambda a: not a.is_loopback))
def test_plain_http_to_any_non_loopback_address_is_refused(address: ipaddress.IPv4Address) -> None:
    with pytest.raises(EndpointError, match="refusing plain http://"):
        resolve_endpoint(f"http://{address}:8080", environ={})


@given(st.integers(min_value=0, max_value=2**24 - 1))
def test_every_127_slash_8_address_is_loopback(n: int) -> None:
    address = ipaddress.IPv4Address((127 << 24) + n)
    assert is_loopback_http(f"http://{address}:1")


def test_cli_value_wins_over_the_environment_which_wins_over_the_default() -> None:
    env = {"EXFILGUARD_ARM_ENDPOINT": "https://management.chinacloudapi.cn/"}
    assert resolve_endpoint(None, environ={}) == DEFAULT_ARM_ENDPOINT
    assert resolve_endpoint(None, environ=env) == "https://management.chinacloudapi.cn"
    assert resolve_endpoint("https://management.usgovcloudapi.net", environ=env) == \
        "https://management.usgovcloudapi.net"


def test_errors_name_the_setting_that_is_wrong() -> None:
    with pytest.raises(EndpointError, match="EXFILGUARD_ARM_ENDPOINT"):
        resolve_endpoint(None, environ={"EXFILGUARD_ARM_ENDPOINT": "http://arm.internal.example"})
    with pytest.raises(EndpointError, match="--arm-endpoint"):
        resolve_endpoint("management.azure.com", environ={})


@pytest.mark.parametrize("url", [
    "https://user:secret@management.azure.com", "https://management.azure.com/?x=1",
    "https://management.azure.com/#frag", "https://", "https://management.azure.com:notaport",
])
def test_malformed_endpoints_are_refused(url: str) -> None:
    with pytest.raises(EndpointError):
        resolve_endpoint(url, environ={})


def test_no_credential_for_loopback_http() -> None:
    assert make_credential("http://127.0.0.1:5000") is None


def test_make_credential_refuses_what_resolve_endpoint_refuses() -> None:
    with pytest.raises(EndpointError):
        make_credential("http://10.0.0.1")


def test_default_azure_credential_for_https_with_the_user_assigned_identity() -> None:
    from azure.identity import DefaultAzureCredential

    env = {"AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555"}
    assert isinstance(make_credential("https://management.azure.com", environ=env), DefaultAzureCredential)
    assert credential_options("https://management.azure.com", env) == {
        "managed_identity_client_id": "11111111-2222-3333-4444-555555555555",
        "authority": "login.microsoftonline.com"}
    assert credential_options("https://management.azure.com", {}) == {"authority": "login.microsoftonline.com"}


def test_sovereign_clouds_get_their_own_authority_and_token_audience() -> None:
    assert credential_options("https://management.chinacloudapi.cn", {})["authority"] == "login.chinacloudapi.cn"
    assert credential_options("https://management.usgovcloudapi.net", {})["authority"] == "login.microsoftonline.us"
    assert "authority" not in credential_options("https://management.chinacloudapi.cn",
                                                 {"AZURE_AUTHORITY_HOST": "login.example"})
    assert credential_scopes("https://management.chinacloudapi.cn/") == [
        "https://management.chinacloudapi.cn/.default"]


def test_adapters_do_not_import_the_sdks_until_used() -> None:
    code = (
        "import sys, json\n"
        "import exfilguard.adapters.arm, exfilguard.adapters.writer, exfilguard.adapters.endpoint\n"
        "import exfilguard.flows.live\n"
        "c = exfilguard.adapters.arm.ArmClient('6f1e3c2a-8d4b-4f7e-9a51-2c7d0b9e4a11', 'http://127.0.0.1:9')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('azure.mgmt', 'azure.identity')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_module_constants_are_the_public_defaults() -> None:
    assert endpoint.DEFAULT_ARM_ENDPOINT == "https://management.azure.com"
    assert endpoint.ENDPOINT_VARIABLE == "EXFILGUARD_ARM_ENDPOINT"
