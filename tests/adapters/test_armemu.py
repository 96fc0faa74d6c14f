"""The ARM emulator must behave like ARM where the product depends on it.

Raw HTTP (urllib, http.client) pins the wire behaviour; the real azure-mgmt-network client
proves the SDK's pagers and pollers accept it. No timing asserts: LRO progress is stepped
with an injected clock.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient
from azure.mgmt.network import NetworkManagementClient

from tests.armemu import ArmEmulator, SnapshotError

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "data"
SMALL = DATA / "armemu-small.json"
GRAPH = DATA / "armemu-graph.json"
SUB_ID = "00000000-0000-0000-0000-0000000000a1"
SUB = f"/subscriptions/{SUB_ID}"
RG = f"{SUB}/resourceGroups/rg-ml"
NET = f"{RG}/providers/Microsoft.Network"
NSG = f"{NET}/networkSecurityGroups/nsg-ml"
RULE = f"{NSG}/securityRules/allow-internet-out"
VNET = f"{NET}/virtualNetworks/vnet-ml"
WS = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/mlw-1"
API = "api-version=2024-05-01"


class FakeClock:
    """Monotonic time the test advances by hand, so LRO progress needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Reply:
    def __init__(self, status: int, headers: Any, raw: bytes) -> None:
        self.status, self.headers, self.raw = status, headers, raw
        self.body = json.loads(raw) if raw else None

    @property
    def code(self) -> str | None:
        return self.body["error"]["code"] if isinstance(self.body, dict) and "error" in self.body else None


def call(emu: ArmEmulator, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
         *, query: str | None = API) -> Reply:
    url = path if path.startswith("http") else emu.url + path
    if query:
        url += ("&" if "?" in url else "?") + query
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.headers, err.read())


def status_or_reset(emu: ArmEmulator, method: str, path: str) -> int | str:
    try:
        return call(emu, method, path).status
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
        return "reset"


@pytest.fixture
def emu() -> Any:
    with ArmEmulator(SMALL) as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def nsg_body(name: str, rg: str = "rg-ml", rules: int = 0) -> dict[str, Any]:
    nid = f"{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}"
    return {"id": nid, "name": name, "type": "Microsoft.Network/networkSecurityGroups", "location": "westeurope",
            "properties": {"securityRules": [
                {"name": f"r{i}", "properties": {"priority": 100 + i, "access": "Allow", "direction": "Inbound",
                                                 "protocol": "*", "sourceAddressPrefix": "*",
                                                 "destinationAddressPrefix": "*", "sourcePortRange": "*",
                                                 "destinationPortRange": str(1000 + i)}}
                for i in range(rules)]}}


def follow(emu: ArmEmulator, path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """All items of a list endpoint, following nextLink, and the nextLinks seen."""
    items: list[dict[str, Any]] = []
    links: list[str] = []
    reply = call(emu, "GET", path)
    while True:
        assert reply.status == 200, reply.body
        items.extend(reply.body["value"])
        link = reply.body.get("nextLink")
        if not link:
            return items, links
        links.append(link)
        reply = call(emu, "GET", link, query=None)


# ---- loading and reads -----------------------------------------------------------------------------


def test_api_version_is_required(emu: ArmEmulator) -> None:
    reply = call(emu, "GET", NSG, query=None)
    assert reply.status == 400
    assert reply.code == "MissingApiVersionParameter"


def test_nsg_get_composes_rules_standalone_child_wins_and_defaults(emu: ArmEmulator) -> None:
    reply = call(emu, "GET", NSG)
    assert reply.status == 200
    body = reply.body
    assert reply.headers["ETag"] == body["etag"] == 'W/"aaaaaaaa-0000-0000-0000-000000000001"'
    rules = {r["name"]: r for r in body["properties"]["securityRules"]}
    assert rules["allow-internet-out"]["properties"]["priority"] == 210  # standalone beat the inline copy
    assert rules["allow-https-in"]["type"] == "Microsoft.Network/networkSecurityGroups/securityRules"
    assert all(r["etag"].startswith('W/"') and r["id"].startswith(NSG + "/securityRules/") for r in rules.values())
    defaults = {r["name"]: r["properties"] for r in body["properties"]["defaultSecurityRules"]}
    assert {n: (p["priority"], p["direction"]) for n, p in defaults.items()} == {
        "AllowVnetInBound": (65000, "Inbound"), "AllowAzureLoadBalancerInBound": (65001, "Inbound"),
        "DenyAllInBound": (65500, "Inbound"), "AllowVnetOutBound": (65000, "Outbound"),
        "AllowInternetOutBound": (65001, "Outbound"), "DenyAllOutBound": (65500, "Outbound")}
    assert defaults["AllowInternetOutBound"]["destinationAddressPrefix"] == "Internet"
    assert defaults["AllowAzureLoadBalancerInBound"]["sourceAddressPrefix"] == "AzureLoadBalancer"
    assert defaults["DenyAllOutBound"]["description"] == "Deny all outbound traffic"
    one = call(emu, "GET", f"{NSG}/defaultSecurityRules/DenyAllInBound")
    assert one.status == 200 and one.body["properties"]["access"] == "Deny"


def test_children_without_type_get_their_type_from_the_id(emu: ArmEmulator) -> None:
    compute = call(emu, "GET", f"{WS}/computes/cpu-cluster").body
    assert compute["type"] == "Microsoft.MachineLearningServices/workspaces/computes"
    versions = call(emu, "GET", f"{WS}/environments/sklearn/versions")
    assert [v["name"] for v in versions.body["value"]] == ["1"]  # the container exists only as a path
    assert call(emu, "GET", f"{WS}/environments/sklearn").status == 404
    sep = call(emu, "GET", f"{NET}/serviceEndpointPolicies/sep-storage").body
    assert [d["name"] for d in sep["properties"]["serviceEndpointPolicyDefinitions"]] == ["allow-own-storage"]
    assert sep["properties"]["subnets"] == []  # the policy's own back-references are not children


def test_ids_and_types_compare_case_insensitively_and_keep_their_spelling() -> None:
    with ArmEmulator(GRAPH) as emu:
        reply = call(emu, "GET", f"{SUB}/resourceGroups/rg-graph/providers/Microsoft.Network/"
                                 "networkSecurityGroups/NSG-GRAPH")
        assert reply.status == 200
        body = reply.body
        graph_id = f"{SUB}/resourcegroups/RG-GRAPH/providers/microsoft.network/networksecuritygroups/nsg-graph"
        assert body["id"] == graph_id
        assert body["type"] == "microsoft.network/networksecuritygroups"
        assert "tenantId" not in body and "resourceGroup" not in body
        rule = body["properties"]["securityRules"][0]
        assert rule["type"] == "Microsoft.Network/networkSecurityGroups/securityRules"
        assert len(body["properties"]["defaultSecurityRules"]) == 6
        listed = call(emu, "GET", f"{SUB}/resourceGroups/Rg-Graph/providers/Microsoft.Storage/storageAccounts")
        assert [s["name"] for s in listed.body["value"]] == ["stgraph"]


def test_snapshot_shapes_and_errors(tmp_path: Path) -> None:
    nsg = nsg_body("nsg-v", rules=3)
    standalone = {"id": f"{nsg['id']}/securityRules/r0", "properties": {"priority": 555}}
    duplicate = {**nsg, "tags": {"copy": "last"}}
    with ArmEmulator({"value": [nsg, standalone, duplicate]}) as emu:
        body = call(emu, "GET", nsg["id"]).body
        assert body["tags"] == {"copy": "last"}
        rules = body["properties"]["securityRules"]
        assert [(r["name"], r["properties"]["priority"]) for r in rules] == [("r0", 555), ("r1", 101), ("r2", 102)]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SnapshotError, match=r"bad\.json"):
        ArmEmulator(bad)
    with pytest.raises(SnapshotError, match="expected"):
        ArmEmulator({"rows": []})
    with pytest.raises(SnapshotError, match="item 1"):
        ArmEmulator([nsg, {"name": "no-id"}])


def test_not_found_bodies(emu: ArmEmulator) -> None:
    top = call(emu, "GET", f"{NET}/networkSecurityGroups/missing")
    assert top.status == 404 and top.code == "ResourceNotFound"
    assert "networkSecurityGroups/missing" in top.body["error"]["message"]
    child = call(emu, "GET", f"{NSG}/securityRules/missing")
    assert child.status == 404 and child.code == "NotFound"
    orphan = call(emu, "GET", f"{NET}/networkSecurityGroups/missing/securityRules/x")
    assert orphan.code == "ResourceNotFound"
    assert call(emu, "GET", f"{NET}/virtualNetworks/missing/subnets").status == 404
    put = call(emu, "PUT", f"{NET}/virtualNetworks/missing/subnets/s1", {"properties": {}})
    assert put.status == 404 and emu.get_body(f"{NET}/virtualNetworks/missing/subnets/s1") is None


def test_unknown_types_are_stored_and_served_generically(emu: ArmEmulator) -> None:
    vault = f"{RG}/providers/Microsoft.KeyVault/vaults/kv-ml"
    assert call(emu, "GET", vault).body["properties"]["enableRbacAuthorization"] is True
    created = call(emu, "PUT", f"{RG}/providers/Microsoft.KeyVault/vaults/kv-2", {"location": "westeurope",
                                                                                  "properties": {}})
    assert created.status == 201
    listed = call(emu, "GET", f"{RG}/providers/Microsoft.KeyVault/vaults")
    assert [v["name"] for v in listed.body["value"]] == ["kv-2", "kv-ml"]


# ---- paging -----------------------------------------------------------------------------------------


def test_subscription_and_group_lists_page_with_absolute_next_links() -> None:
    resources = [nsg_body(f"nsg-{i:02d}", rg="rg-a" if i % 2 else "rg-b") for i in range(7)]
    with ArmEmulator(resources, page_size=3) as emu:
        items, links = follow(emu, f"{SUB}/providers/Microsoft.Network/networkSecurityGroups")
        assert sorted(i["name"] for i in items) == [f"nsg-{i:02d}" for i in range(7)]
        assert len(items) == 7 and len(links) == 2
        for link in links:
            assert link.startswith(emu.url + "/subscriptions/") and "$skipToken=" in link and API in link
        in_a, _ = follow(emu, f"{SUB}/resourceGroups/rg-a/providers/Microsoft.Network/networkSecurityGroups")
        assert sorted(i["name"] for i in in_a) == ["nsg-01", "nsg-03", "nsg-05"]
        assert follow(emu, f"{SUB}/providers/Microsoft.Network/virtualNetworks")[0] == []


def test_paging_is_keyset_based_so_deletes_between_pages_skip_nothing() -> None:
    resources = [nsg_body(f"nsg-{i:02d}") for i in range(6)]
    with ArmEmulator(resources, page_size=2) as emu:
        first = call(emu, "GET", f"{SUB}/providers/Microsoft.Network/networkSecurityGroups")
        assert [i["name"] for i in first.body["value"]] == ["nsg-00", "nsg-01"]
        emu.delete_resource(resources[0]["id"])
        rest, _ = follow(emu, first.body["nextLink"])
        assert [i["name"] for i in rest] == ["nsg-02", "nsg-03", "nsg-04", "nsg-05"]


def test_child_lists_page(emu: ArmEmulator) -> None:
    resources = [nsg_body("nsg-big", rules=5)]
    with ArmEmulator(resources, page_size=2) as big:
        items, links = follow(big, f"{resources[0]['id']}/securityRules")
        assert [r["name"] for r in items] == ["r0", "r1", "r2", "r3", "r4"] and len(links) == 2
    assert [s["name"] for s in follow(emu, f"{VNET}/subnets")[0]] == ["snet-train", "snet-pe"]
    assert [c["name"] for c in follow(emu, f"{WS}/computes")[0]] == ["cpu-cluster"]
    assert len(follow(emu, f"{NSG}/defaultSecurityRules")[0]) == 6


# ---- composition, PUT, PATCH, DELETE ---------------------------------------------------------------


def test_child_writes_change_the_parent_body_and_etag(emu: ArmEmulator) -> None:
    before = call(emu, "GET", NSG).body
    sibling_etag = next(r["etag"] for r in before["properties"]["securityRules"] if r["name"] == "allow-https-in")
    new_rule = {"properties": {"priority": 4096, "access": "Deny", "direction": "Outbound", "protocol": "*",
                               "sourceAddressPrefix": "*", "destinationAddressPrefix": "Internet",
                               "sourcePortRange": "*", "destinationPortRange": "*"}}
    created = call(emu, "PUT", f"{NSG}/securityRules/deny-internet-out", new_rule)
    assert created.status == 201
    after = call(emu, "GET", NSG).body
    names = [r["name"] for r in after["properties"]["securityRules"]]
    assert names == ["allow-https-in", "allow-internet-out", "deny-internet-out"]
    assert after["etag"] != before["etag"]
    assert next(r["etag"] for r in after["properties"]["securityRules"] if r["name"] == "allow-https-in") \
        == sibling_etag
    assert call(emu, "DELETE", f"{NSG}/securityRules/allow-https-in").status == 202
    final = call(emu, "GET", NSG).body
    assert [r["name"] for r in final["properties"]["securityRules"]] == ["allow-internet-out", "deny-internet-out"]
    assert final["etag"] != after["etag"]


def test_parent_put_replaces_the_child_set(emu: ArmEmulator) -> None:
    vnet = call(emu, "GET", VNET).body
    train = next(s for s in vnet["properties"]["subnets"] if s["name"] == "snet-train")
    train["properties"]["addressPrefix"] = "10.10.8.0/24"
    vnet["properties"]["subnets"] = [train, {"name": "snet-new", "properties": {"addressPrefix": "10.10.9.0/24"}}]
    assert call(emu, "PUT", VNET, vnet).status == 200
    assert call(emu, "GET", f"{VNET}/subnets/snet-pe").status == 404
    assert call(emu, "GET", f"{VNET}/subnets/snet-train").body["properties"]["addressPrefix"] == "10.10.8.0/24"
    new = call(emu, "GET", f"{VNET}/subnets/snet-new").body
    assert new["id"] == f"{VNET}/subnets/snet-new" and new["type"] == "Microsoft.Network/virtualNetworks/subnets"
    assert [s["name"] for s in call(emu, "GET", VNET).body["properties"]["subnets"]] == ["snet-train", "snet-new"]
    vnet_without = {"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/8"]}}}
    assert call(emu, "PUT", VNET, vnet_without).status == 200  # ARM: a PUT without subnets removes them
    assert call(emu, "GET", f"{VNET}/subnets").body["value"] == []


def test_put_tolerates_read_only_fields_and_keeps_what_arm_owns(emu: ArmEmulator) -> None:
    body = call(emu, "GET", NSG).body
    body["properties"]["resourceGuid"] = "client-made-this-up"
    body["properties"]["defaultSecurityRules"] = []
    reply = call(emu, "PUT", NSG, body)
    assert reply.status == 200
    stored = emu.get_body(NSG)
    assert stored is not None
    assert stored["properties"]["resourceGuid"] == "6a7c139d-8b8d-499b-b7cb-4f3f02a8a44f"
    assert len(stored["properties"]["defaultSecurityRules"]) == 6
    missing_location = call(emu, "PUT", f"{NET}/networkSecurityGroups/nsg-x", {"properties": {}})
    assert missing_location.status == 400 and missing_location.code == "LocationRequired"
    assert call(emu, "PUT", NSG, [1, 2]).code == "InvalidRequestContent"


def test_patch_merges_properties_and_replaces_tags(emu: ArmEmulator) -> None:
    reply = call(emu, "PATCH", WS, {"tags": {"owner": "sec"},
                                    "properties": {"publicNetworkAccess": "Enabled", "managedNetwork": None}})
    assert reply.status == 200
    body = emu.get_body(WS)
    assert body is not None and body["tags"] == {"owner": "sec"}
    assert body["properties"]["publicNetworkAccess"] == "Enabled"
    assert "managedNetwork" not in body["properties"]
    assert body["location"] == "westeurope"
    nsg = call(emu, "PATCH", NSG, {"tags": {"a": "b"}}).body
    assert nsg["tags"] == {"a": "b"} and len(nsg["properties"]["securityRules"]) == 2
    assert call(emu, "PATCH", f"{NET}/networkSecurityGroups/missing", {"tags": {}}).status == 404


# ---- ETags and LROs --------------------------------------------------------------------------------


def test_etags_and_conditional_requests(emu: ArmEmulator) -> None:
    etag = call(emu, "GET", RULE).body["etag"]
    body = {"properties": {**emu.get_body(RULE)["properties"], "priority": 220}}  # type: ignore[index]
    stale = call(emu, "PUT", RULE, body, {"If-Match": 'W/"not-the-etag"'})
    assert stale.status == 412 and stale.code == "PreconditionFailed"
    ok = call(emu, "PUT", RULE, body, {"If-Match": etag})
    assert ok.status == 200 and ok.headers["ETag"] == ok.body["etag"] != etag
    again = call(emu, "PUT", RULE, body, {"If-Match": "*"})
    assert again.status == 200 and again.body["etag"] != ok.body["etag"]
    assert call(emu, "PUT", f"{NSG}/securityRules/nope", body, {"If-Match": "*"}).status == 412
    assert call(emu, "PUT", RULE, body, {"If-None-Match": "*"}).status == 412
    assert call(emu, "PUT", f"{NSG}/securityRules/fresh", body, {"If-None-Match": "*"}).status == 201
    assert call(emu, "PATCH", RULE, {"properties": {}}, {"If-Match": etag}).status == 412
    assert call(emu, "DELETE", RULE, headers={"If-Match": etag}).status == 412
    assert emu.get_body(RULE) is not None


def test_put_lro_progresses_from_updating_to_succeeded(clock: FakeClock) -> None:
    with ArmEmulator(SMALL, lro_delay=30, clock=clock) as emu:
        subnet = f"{VNET}/subnets/snet-pe"
        reply = call(emu, "PUT", subnet, {"properties": {"addressPrefix": "10.10.4.0/24"}})
        assert reply.status == 200 and reply.body["properties"]["provisioningState"] == "Updating"
        monitor = reply.headers["Azure-AsyncOperation"]
        assert monitor.startswith(f"{emu.url}{SUB}/providers/Microsoft.Network/locations/westeurope/operations/")
        assert "api-version=2024-05-01" in monitor and reply.headers["Retry-After"] == "0"
        assert call(emu, "GET", monitor, query=None).body["status"] == "InProgress"
        assert call(emu, "GET", subnet).body["properties"]["provisioningState"] == "Updating"
        clock.advance(30)
        assert call(emu, "GET", monitor, query=None).body["status"] == "Succeeded"
        assert call(emu, "GET", subnet).body["properties"]["provisioningState"] == "Succeeded"
        created = call(emu, "PUT", f"{VNET}/subnets/snet-3", {"properties": {"addressPrefix": "10.10.5.0/24"}})
        assert created.status == 201 and created.body["properties"]["provisioningState"] == "Creating"


def test_delete_lro_uses_location_and_async_operation(clock: FakeClock) -> None:
    with ArmEmulator(SMALL, lro_delay=5, clock=clock) as emu:
        reply = call(emu, "DELETE", RULE)
        assert reply.status == 202 and reply.raw == b""
        location, monitor = reply.headers["Location"], reply.headers["Azure-AsyncOperation"]
        assert "/operationResults/" in location and "/operations/" in monitor
        assert call(emu, "GET", RULE).status == 404
        assert call(emu, "GET", location, query=None).status == 202
        assert call(emu, "GET", monitor, query=None).body["status"] == "InProgress"
        clock.advance(5)
        assert call(emu, "GET", location, query=None).status == 204
        assert call(emu, "GET", monitor, query=None).body["status"] == "Succeeded"
        assert call(emu, "DELETE", RULE).status == 204  # already gone: ARM answers No Content


# ---- faults, hooks, log ----------------------------------------------------------------------------


def test_429_fault_with_retry_after_scoped_by_method_and_count(emu: ArmEmulator) -> None:
    emu.add_fault(429, retry_after=7, method="GET", path="/networkSecurityGroups/", count=1)
    throttled = call(emu, "GET", NSG)
    assert throttled.status == 429 and throttled.headers["Retry-After"] == "7"
    assert throttled.code == "SubscriptionRequestsThrottled"
    assert call(emu, "GET", NSG).status == 200
    assert [r.fault for r in emu.records(path="/networkSecurityGroups/")] == ["429", None]


def test_dropped_connection_then_recovery(emu: ArmEmulator) -> None:
    emu.add_fault(drop=True, path="virtualNetworks", count=1)
    assert status_or_reset(emu, "GET", VNET) == "reset"
    assert status_or_reset(emu, "GET", VNET) == 200
    assert [r.status for r in emu.records(path="virtualNetworks")] == [0, 200]


def test_403_names_the_action_and_scope(emu: ArmEmulator) -> None:
    emu.add_fault(403, method="PUT", path="nsg-ml")
    emu.add_fault(403, method="DELETE", path="nsg-ml")
    put = call(emu, "PUT", NSG, {"location": "westeurope", "properties": {}})
    assert put.status == 403 and put.code == "AuthorizationFailed"
    message = put.body["error"]["message"]
    assert "does not have authorization to perform action 'Microsoft.Network/networkSecurityGroups/write' " \
           f"over scope '{NSG}'" in message
    assert message.startswith("The client '") and "with object id '" in message
    delete = call(emu, "DELETE", RULE)
    assert "'Microsoft.Network/networkSecurityGroups/securityRules/delete'" in delete.body["error"]["message"]
    assert len(emu.get_body(NSG)["properties"]["securityRules"]) == 2  # type: ignore[index]


def test_failure_rate_is_seeded_and_spares_admin_endpoints() -> None:
    def run() -> list[int | str]:
        with ArmEmulator(SMALL) as emu:
            emu.set_failure_rate(0.5, seed=42)
            out = [status_or_reset(emu, "GET", NSG) for _ in range(30)]
            emu.set_failure_rate(1.0, seed=1)
            assert all(call(emu, "GET", "/_emulator/log", query=None).status == 200 for _ in range(5))
            return out

    first, second = run(), run()
    assert first == second
    assert 200 in first and set(first) - {200} <= {429, 500, 503, "reset"} and len(set(first)) > 1


def test_concurrent_modification_turns_the_next_conditional_write_into_412(emu: ArmEmulator) -> None:
    emu.concurrent_modification(NSG, {"tags": {"changed-by": "someone-else"}})
    seen = call(emu, "GET", NSG)
    assert seen.body["tags"] == {"team": "ml"}  # the reader sees the state before the change
    stored = emu.get_body(NSG)
    assert stored is not None and stored["tags"]["changed-by"] == "someone-else"
    assert stored["etag"] != seen.body["etag"]
    assert call(emu, "PUT", NSG, seen.body, {"If-Match": seen.body["etag"]}).status == 412
    fresh = call(emu, "GET", NSG)  # one-shot: this GET triggers nothing
    assert call(emu, "PUT", NSG, fresh.body, {"If-Match": fresh.body["etag"]}).status == 200


def test_on_write_hook_can_revert_a_client_write(emu: ArmEmulator) -> None:
    original = emu.get_body(RULE)
    assert original is not None
    seen: list[tuple[str, Any]] = []

    def revert(resource_id: str, body: dict[str, Any] | None) -> None:
        seen.append((resource_id, body))
        if resource_id.lower() == RULE.lower() and body is not None:
            emu.set_body(resource_id, original)

    emu.on_write(revert)
    denied = {"properties": {**original["properties"], "access": "Deny"}}
    reply = call(emu, "PUT", RULE, denied)
    assert reply.body["properties"]["access"] == "Deny"
    after = call(emu, "GET", RULE).body
    assert after["properties"]["access"] == "Allow" and after["etag"] != reply.body["etag"]
    assert seen[0][0] == RULE and seen[0][1]["properties"]["access"] == "Deny"
    call(emu, "DELETE", f"{NSG}/securityRules/allow-https-in")
    assert seen[-1] == (f"{NSG}/securityRules/allow-https-in", None)
    emu.remove_on_write(revert)


def test_request_log_records_kinds_headers_and_bodies(clock: FakeClock) -> None:
    with ArmEmulator(SMALL, clock=clock) as emu:
        call(emu, "GET", NSG, headers={"Authorization": "Bearer t"})
        put = call(emu, "PUT", RULE, {"properties": {"priority": 300}}, {"If-Match": "*"})
        call(emu, "GET", put.headers["Azure-AsyncOperation"], query=None)
        call(emu, "GET", "/_emulator/log", query=None)
        assert [r.kind for r in emu.log] == ["read", "write", "poll", "admin"]
        read, write = emu.log[0], emu.log[1]
        assert read.authorization and not write.authorization
        assert write.if_match == "*" and write.body == {"properties": {"priority": 300}}
        assert write.query == {"api-version": "2024-05-01"} and write.status == 200
        assert emu.count(kind="write", method="PUT") == 1 and emu.writes() == [write]
        assert emu.reset_log() == 4 and emu.log == []


def test_admin_endpoints_drive_an_emulator_from_outside(emu: ArmEmulator) -> None:
    config = {"faults": [{"status": 503, "method": "GET", "path": "vnet-ml", "count": 1, "retryAfter": 2}],
              "concurrentModifications": [{"id": NSG, "patch": {"tags": {"x": "y"}}}]}
    assert call(emu, "POST", "/_emulator/faults", config, query=None).status == 200
    assert call(emu, "GET", VNET).status == 503
    seen = call(emu, "GET", NSG).body
    assert call(emu, "PUT", NSG, seen, {"If-Match": seen["etag"]}).status == 412
    faults = call(emu, "GET", "/_emulator/faults", query=None).body
    assert faults["faults"][0]["hits"] == 1 and faults["faults"][0]["count"] == 0
    assert call(emu, "POST", "/_emulator/faults", {"faults": [{"status": "teapot"}]}, query=None).status == 400
    raw = call(emu, "GET", "/_emulator/resource", query=f"id={NSG}")
    assert raw.body["tags"] == {"team": "ml", "x": "y"}
    assert call(emu, "PUT", "/_emulator/resource", {**raw.body, "tags": {}}, query=f"id={NSG}").status == 200
    assert call(emu, "GET", NSG).body["tags"] == {}
    writes = call(emu, "GET", "/_emulator/log", query="kind=write").body["value"]
    assert [(w["method"], w["status"]) for w in writes] == [("PUT", 412)]
    assert call(emu, "POST", "/_emulator/faults", {"latency": 0.001}, query=None).body["latency"] == 0.001
    assert call(emu, "POST", "/_emulator/config", {"pageSize": 1}, query=None).body["pageSize"] == 1
    assert "nextLink" in call(emu, "GET", f"{VNET}/subnets").body
    assert call(emu, "POST", "/_emulator/reset-log", query=None).body["cleared"] > 0
    assert call(emu, "DELETE", "/_emulator/faults", query=None).body["faults"] == []


def test_internal_errors_become_arm_error_bodies(emu: ArmEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(emu._app.store, "compose", boom)
    reply = call(emu, "GET", NSG)
    assert reply.status == 500 and reply.code == "InternalServerError"
    assert b"Traceback" not in reply.raw and b"secret detail" not in reply.raw


# ---- HTTP plumbing and process mode ----------------------------------------------------------------


def test_keep_alive_with_exact_content_length(emu: ArmEmulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", int(urlsplit(emu.url).port or 0), timeout=10)
    try:
        conn.request("GET", f"{NSG}?{API}")
        first = conn.getresponse()
        payload = first.read()
        assert first.version == 11 and int(first.headers["Content-Length"]) == len(payload)
        sock = conn.sock
        conn.request("GET", f"{VNET}?{API}")
        second = conn.getresponse()
        assert second.status == 200 and json.loads(second.read())["name"] == "vnet-ml"
        assert conn.sock is sock  # same connection, not a reconnect
    finally:
        conn.close()


def test_stop_closes_idle_connections_and_the_port() -> None:
    emu = ArmEmulator(SMALL).start()
    port = int(urlsplit(emu.url).port or 0)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"{NSG}?{API}")
    conn.getresponse().read()
    emu.stop()
    with pytest.raises((OSError, http.client.HTTPException)):
        conn.request("GET", f"{NSG}?{API}")
        conn.getresponse()
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=5).connect()


def test_runs_as_a_separate_process() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.armemu", "--snapshot", str(SMALL), "--page-size", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")

        class Remote:
            pass

        remote: Any = Remote()
        remote.url = url
        listed = call(remote, "GET", f"{SUB}/providers/Microsoft.Network/networkSecurityGroups")
        assert listed.status == 200 and listed.body["nextLink"].startswith(url)
        call(remote, "POST", "/_emulator/faults", {"status": 500, "count": 1}, query=None)
        assert call(remote, "GET", NSG).status == 500
        log = call(remote, "GET", "/_emulator/log", query=None).body["value"]
        assert [r["status"] for r in log if r["kind"] == "read"] == [200, 500]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_cli_rejects_a_bad_snapshot(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"rows": 1}')
    done = subprocess.run([sys.executable, "-m", "tests.armemu", "--snapshot", str(bad)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "broken.json" in done.stderr


# ---- the real SDK ----------------------------------------------------------------------------------


class NoCredential:
    """Never asked: the no-op authentication policy replaces the bearer-token policy."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise AssertionError("the emulator client must not request tokens")


def network_client(emu: ArmEmulator) -> NetworkManagementClient:
    return NetworkManagementClient(NoCredential(), SUB_ID, base_url=emu.url,  # type: ignore[arg-type]
                                   authentication_policy=SansIOHTTPPolicy(), polling_interval=0.01)


def test_sdk_get_and_list_all_across_pages() -> None:
    resources = [nsg_body(f"nsg-{i:02d}", rg=f"rg-{i % 3}", rules=i % 3) for i in range(7)]
    with ArmEmulator(resources, page_size=2) as emu:
        client = network_client(emu)
        nsg = client.network_security_groups.get("rg-2", "nsg-05")
        assert nsg.etag == emu.get_body(resources[5]["id"])["etag"]  # type: ignore[index]
        assert [r.name for r in nsg.security_rules] == ["r0", "r1"]
        assert len(nsg.default_security_rules) == 6
        names = [n.name for n in client.network_security_groups.list_all()]
        assert sorted(names) == [f"nsg-{i:02d}" for i in range(7)]
        pages = [r for r in emu.records(kind="read") if r.path.endswith("/networkSecurityGroups")]
        assert len(pages) == 4
        assert not any(r.authorization for r in emu.log)


def test_sdk_security_rule_update_with_if_match_and_412() -> None:
    with ArmEmulator(SMALL) as emu:
        client = network_client(emu)
        rule = client.security_rules.get("rg-ml", "nsg-ml", "allow-internet-out")
        etag = rule.etag
        rule.access = "Deny"
        updated = client.security_rules.begin_create_or_update(
            "rg-ml", "nsg-ml", "allow-internet-out", rule, headers={"If-Match": etag}).result()
        assert updated.access == "Deny" and updated.provisioning_state == "Succeeded"
        assert emu.records(method="PUT")[0].if_match == etag
        assert emu.get_body(RULE)["properties"]["access"] == "Deny"  # type: ignore[index]
        with pytest.raises(HttpResponseError) as raised:
            client.security_rules.begin_create_or_update(
                "rg-ml", "nsg-ml", "allow-internet-out", rule, headers={"If-Match": etag}).result()
        assert raised.value.status_code == 412


def test_sdk_sees_412_after_a_concurrent_modification() -> None:
    with ArmEmulator(SMALL) as emu:
        client = network_client(emu)

        def someone_else(body: dict[str, Any]) -> None:
            body["properties"]["priority"] = 999

        emu.concurrent_modification(RULE, someone_else)
        rule = client.security_rules.get("rg-ml", "nsg-ml", "allow-internet-out")
        assert rule.priority == 210
        with pytest.raises(HttpResponseError) as raised:
            client.security_rules.begin_create_or_update(
                "rg-ml", "nsg-ml", "allow-internet-out", rule, headers={"If-Match": rule.etag}).result()
        assert raised.value.status_code == 412
        assert emu.get_body(RULE)["properties"]["priority"] == 999  # type: ignore[index]


def test_sdk_subnet_lro_polls_to_succeeded_and_delete_completes() -> None:
    with ArmEmulator(SMALL, lro_delay=0.2) as emu:
        client = network_client(emu)
        subnet = client.subnets.get("rg-ml", "vnet-ml", "snet-pe")
        subnet.address_prefix = "10.10.7.0/24"
        result = client.subnets.begin_create_or_update("rg-ml", "vnet-ml", "snet-pe", subnet).result()
        assert result.provisioning_state == "Succeeded" and result.address_prefix == "10.10.7.0/24"
        assert emu.count(kind="poll") >= 1
        vnet = client.virtual_networks.get("rg-ml", "vnet-ml")
        assert {s.name: s.address_prefix for s in vnet.subnets}["snet-pe"] == "10.10.7.0/24"
        client.security_rules.begin_delete("rg-ml", "nsg-ml", "allow-https-in").result()
        with pytest.raises(ResourceNotFoundError):
            client.security_rules.get("rg-ml", "nsg-ml", "allow-https-in")


def test_ml_sdk_reads_workspaces_and_creates_computes() -> None:
    with ArmEmulator(SMALL, page_size=1) as emu:
        client = MachineLearningServicesMgmtClient(NoCredential(), SUB_ID, base_url=emu.url,  # type: ignore[arg-type]
                                                   authentication_policy=SansIOHTTPPolicy(), polling_interval=0.01)
        assert client.workspaces.get("rg-ml", "mlw-1").location == "westeurope"
        assert [w.name for w in client.workspaces.list_by_subscription()] == ["mlw-1"]
        compute = client.machine_learning_compute.get("rg-ml", "mlw-1", "cpu-cluster")
        created = client.machine_learning_compute.begin_create_or_update("rg-ml", "mlw-1", "cpu-2", compute).result()
        assert created.properties.provisioning_state == "Succeeded"
        assert [c.name for c in client.machine_learning_compute.list_by_workspace("rg-ml", "mlw-1")] \
            == ["cpu-cluster", "cpu-2"]


def test_nsg_and_sep_list_their_subnets_like_arm() -> None:
    """ARM's NSG and SEP bodies carry read-only ``properties.subnets`` back-references; the
    event handler follows them, so the emulator keeps them true as subnets change."""
    sample = Path(__file__).resolve().parents[2] / "samples" / "drifted-subscription.json"
    with ArmEmulator(sample) as emu:
        nsg_id = next(i for i in emu.ids("Microsoft.Network/networkSecurityGroups") if i.endswith("westeurope"))
        sep_id = next(i for i in emu.ids("Microsoft.Network/serviceEndpointPolicies") if i.endswith("westeurope"))
        subnets = [s["id"] for s in emu.get_body(nsg_id)["properties"]["subnets"]]
        assert [s.rsplit("/", 1)[-1] for s in subnets] == ["snet-training"]
        assert [s["id"] for s in emu.get_body(sep_id)["properties"]["subnets"]] == subnets
        subnet = emu.get_body(subnets[0])
        del subnet["properties"]["networkSecurityGroup"]
        emu.set_body(subnets[0], subnet)
        assert emu.get_body(nsg_id)["properties"]["subnets"] == []
        assert len(emu.get_body(sep_id)["properties"]["subnets"]) == 1


def test_environment_containers_are_listed_from_their_versions() -> None:
    """AML's API finds environment versions by listing containers first; snapshots carry
    versions only, so the emulator derives the containers the way ARM would list them."""
    sample = Path(__file__).resolve().parents[2] / "samples" / "drifted-subscription.json"
    with ArmEmulator(sample) as emu:
        ws = next(i for i in emu.ids("Microsoft.MachineLearningServices/workspaces") if i.endswith("westeurope"))
        with urllib.request.urlopen(f"{emu.url}{ws}/environments?api-version=2025-12-01") as resp:
            names = sorted(c["name"] for c in json.load(resp)["value"])
        assert names == ["legacy-sklearn", "training-env"]
        with urllib.request.urlopen(f"{emu.url}{ws}/environments/legacy-sklearn/versions?api-version=2025-12-01") as r:
            assert [v["name"] for v in json.load(r)["value"]] == ["1"]
