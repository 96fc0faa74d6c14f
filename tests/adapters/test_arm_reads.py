"""Reads through the management SDKs' pipelines against the ARM emulator: raw JSON, paging,
retries, LRO waits, no token on loopback."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator

import pytest

from exfilguard.adapters.arm import ML_API_VERSION, NETWORK_API_VERSION, ArmClient, ArmError, _policy_classes
from exfilguard.core import ids
from tests import factory as f
from tests.arm_support import ExtendedEmulator, client_for, emulator, sample

WS_EUS = f.ws_id("rg-ml-eus", "mlw-eastus")
NSG_WEU = f.nsg_id("rg-ml-weu", "nsg-ml-westeurope")
VNET_WEU = f.vnet_id("rg-ml-weu", "vnet-ml-westeurope")
SEP_WEU = f.sep_id("rg-ml-weu", "sep-ml-westeurope")


def _with_unknown_fields(resources: list[dict]) -> list[dict]:
    """Every body gets properties no SDK model knows, at the top and nested."""
    out = copy.deepcopy(resources)
    for r in out:
        r["properties"]["x-future-field"] = {"kept": True, "n": [1, 2]}
        r["x-top-level"] = "kept"
        inner = r["properties"].get("properties")
        if isinstance(inner, dict):
            inner["x-inner"] = "kept"
        for child in r["properties"].get("securityRules", []) + r["properties"].get("subnets", []):
            child["properties"]["x-child"] = "kept"
    return out


@pytest.fixture
def emu() -> Iterator[ExtendedEmulator]:
    with emulator(_with_unknown_fields(sample()), page_size=2) as e:
        yield e


@pytest.fixture
def client(emu: ExtendedEmulator) -> Iterator[ArmClient]:
    with client_for(emu) as c:
        yield c


def test_sweep_reads_every_baseline_resource_exactly_as_arm_serves_it(emu: ExtendedEmulator,
                                                                      client: ArmClient) -> None:
    bodies = client.read_subscription()
    by_id = {ids.key(b["id"]): b for b in bodies}
    assert len(by_id) == len(bodies), "a resource was read twice"
    expected = [r for r in sample() if not r["type"].lower().endswith("/environments")]
    assert set(by_id) == {ids.key(r["id"]) for r in expected}
    for k, body in by_id.items():
        assert body == emu.get_body(k), f"{k} differs from what ARM serves"
        assert body["properties"]["x-future-field"] == {"kept": True, "n": [1, 2]}
        assert body["x-top-level"] == "kept"


def test_ml_fields_the_stable_sdk_does_not_model_are_read(client: ArmClient) -> None:
    bodies = client.read_subscription()
    ws = next(b for b in bodies if ids.key(b["id"]) == ids.key(WS_EUS))
    assert ws["properties"]["publicNetworkAccess"] == "Enabled"
    assert ws["properties"]["managedNetwork"]["isolationMode"] == "Disabled"
    legacy = next(b for b in bodies if b["name"] == "gpu-cluster-legacy")
    assert legacy["properties"]["properties"]["enableNodePublicIp"] is True
    assert legacy["properties"]["properties"]["x-inner"] == "kept"


def test_lists_follow_next_link_page_by_page(emu: ExtendedEmulator, client: ArmClient) -> None:
    emu.page_size = 1
    emu.reset_log()
    computes = list(client.list_children(WS_EUS, "computes"))
    assert sorted(c["name"] for c in computes) == ["ci-eastus", "ci-quick-test", "ci-vendor-debug",
                                                   "cpu-cluster-eastus"]
    pages = emu.records(kind="read", path="/computes")
    assert len(pages) == 4
    assert sum("$skipToken" in r.query for r in pages) == 3
    assert all(r.query.get("api-version") == ML_API_VERSION for r in pages)


def test_sweep_asks_for_lists_only_never_one_resource_at_a_time(emu: ExtendedEmulator, client: ArmClient) -> None:
    emu.page_size = 50
    emu.reset_log()
    client.read_subscription()
    reads = emu.records(kind="read")
    # 9 top-level types + per workspace (3): computes and environment containers + 3 version lists
    # + per firewall policy (1): its rule collection groups
    assert len(reads) == 9 + 3 * 2 + 3 + 1
    assert client.counts == {"GET": len(reads)}


def test_the_cli_and_the_sweep_read_through_one_reader(emu: ExtendedEmulator, client: ArmClient) -> None:
    """The sweep's mode differs only in environment versions: the latest of each container, one GET
    each, instead of every version by list; the checkpoint records what it read."""
    from exfilguard.adapters import sweepread

    emu.page_size = 50
    every = client.read_subscription()
    cli_reads = client.counts["GET"]

    class Checked:
        recorded: dict[str, list[str]] = {}

        def load(self) -> dict:
            return {}

        def record(self, ws_id: str, bodies: list[dict]) -> None:
            self.recorded[ids.key(ws_id)] = [b["id"] for b in bodies]

    checked = Checked()
    with client_for(emu) as sweeping:
        got = sweepread.read(sweeping, checked, versions="latest", workers=4)
    versions = [b for b in got.bodies if "/versions/" in b["id"]]
    assert len(versions) == got.versions_read == got.versions_total == 3 and got.complete
    assert {ids.key(b["id"]) for b in got.bodies if b not in versions} == \
        {ids.key(b["id"]) for b in every if "/versions/" not in b["id"]}
    # the same lists, with one GET per container's latest version in place of its version list
    assert sweeping.counts == {"GET": cli_reads}
    assert sorted(v for vs in checked.recorded.values() for v in vs) == sorted(b["id"] for b in versions)


@pytest.mark.parametrize("resource_id", [
    NSG_WEU,
    f"{NSG_WEU}/securityRules/allow-ssh-in",
    VNET_WEU,
    f"{VNET_WEU}/subnets/snet-inference",
    SEP_WEU,
    f"{SEP_WEU}/serviceEndpointPolicyDefinitions/allow-workspace-storage",
    WS_EUS,
    f"{WS_EUS}/computes/ci-quick-test",
    f.ws_id("rg-ml-weu", "mlw-westeurope") + "/environments/legacy-sklearn/versions/1",
    f.storage_id("rg-ml-weu", "stmlwesteu10"),
    f.route_table_id("rg-ml-neu", "rt-ml-northeurope"),
    f.route_table_id("rg-ml-neu", "rt-ml-northeurope") + "/routes/default-to-firewall",
    f.firewall_id("rg-ml-neu", "fw-hub-northeurope"),
    f.policy_id("rg-ml-neu", "fwp-ml-northeurope"),
    f.policy_id("rg-ml-neu", "fwp-ml-northeurope") + "/ruleCollectionGroups/rcg-ml",
])
def test_get_returns_the_raw_body_of_every_supported_type(emu: ExtendedEmulator, client: ArmClient,
                                                          resource_id: str) -> None:
    body = client.get(resource_id)
    assert body is not None
    assert body == emu.get_body(resource_id)


def test_egress_reads_go_through_the_network_sdk_operations_at_the_pinned_version(emu: ExtendedEmulator,
                                                                                   client: ArmClient) -> None:
    """Route tables, firewalls, policies, groups and IP groups: the SDK's own operations, the same
    API version as every other network read; a policy lists its groups and firewalls by reference."""
    group = f.ip_group("rg-ml-neu", "ipg-spokes", "northeurope", ["10.30.0.0/16"])
    emu.set_body(group["id"], group)
    emu.reset_log()
    policy = client.get(f.policy_id("rg-ml-neu", "fwp-ml-northeurope"))
    assert [g["id"].rsplit("/", 1)[-1] for g in policy["properties"]["ruleCollectionGroups"]] == ["rcg-ml"]
    assert [x["id"].rsplit("/", 1)[-1] for x in policy["properties"]["firewalls"]] == ["fw-hub-northeurope"]
    table = client.get(f.route_table_id("rg-ml-neu", "rt-ml-northeurope"))
    assert [s["id"].rsplit("/", 1)[-1] for s in table["properties"]["subnets"]] == ["snet-training"]
    assert client.get(f.ip_group_id("rg-ml-neu", "ipg-spokes"))["properties"]["ipAddresses"] == ["10.30.0.0/16"]
    reads = emu.records(kind="read")
    assert len(reads) == 3 and {r.query.get("api-version") for r in reads} == {NETWORK_API_VERSION}


def test_get_of_an_absent_resource_is_none(client: ArmClient) -> None:
    assert client.get(NSG_WEU + "-gone") is None
    assert client.get(WS_EUS + "/computes/nope") is None
    assert client.get(f.storage_id("rg-ml-weu", "nosuchaccount")) is None


def test_no_token_is_requested_or_sent_on_loopback(emu: ExtendedEmulator) -> None:
    class Exploding:
        calls = 0

        def get_token(self, *scopes: str, **kwargs: object) -> object:
            Exploding.calls += 1
            raise AssertionError("a token was requested")

    with ArmClient(f.SUB, emu.url, credential=Exploding(), polling_interval=0.01) as client:
        client.read_subscription()
        nsg = client.get(NSG_WEU)
        assert nsg is not None
        client.put(NSG_WEU, nsg, nsg["etag"])
    assert Exploding.calls == 0
    assert emu.log and not any(r.authorization for r in emu.log)


def test_throttling_and_resets_are_retried_by_the_sdk_retry_policy(emu: ExtendedEmulator, client: ArmClient) -> None:
    emu.add_fault(429, method="GET", path="nsg-ml-westeurope", count=2, retry_after=0)
    emu.add_fault(drop=True, method="GET", path="nsg-ml-westeurope", count=1)
    emu.add_fault(503, method="GET", path="nsg-ml-westeurope", count=1, retry_after=0)
    emu.reset_log()
    assert client.get(NSG_WEU) is not None
    statuses = [r.status for r in emu.records(path="nsg-ml-westeurope")]
    assert statuses == [429, 429, 0, 503, 200]
    assert client.counts["GET"] == 5


def test_retries_are_bounded_and_end_in_a_clear_error(emu: ExtendedEmulator) -> None:
    emu.add_fault(500, method="GET", path="nsg-ml-westeurope")
    with client_for(emu, retry_total=3) as client, pytest.raises(ArmError) as caught:
        client.get(NSG_WEU)
    assert caught.value.status == 500
    assert caught.value.transient
    assert len(emu.records(path="nsg-ml-westeurope")) == 4


def test_a_403_names_the_missing_permission(emu: ExtendedEmulator, client: ArmClient) -> None:
    emu.add_fault(403, method="GET", path="/providers/Microsoft.Storage/storageAccounts")
    with pytest.raises(ArmError) as caught:
        list(client.list_type("Microsoft.Storage/storageAccounts"))
    err = caught.value
    assert (err.status, err.code, err.action) == (403, "AuthorizationFailed", "Microsoft.Storage/storageAccounts/read")
    assert "Microsoft.Storage/storageAccounts/read" in str(err)
    assert not err.transient
    assert len(emu.records(path="storageAccounts")) == 1, "a 403 must not be retried"


def test_sweep_goes_on_past_a_list_it_may_not_read_when_asked_to(emu: ExtendedEmulator, client: ArmClient) -> None:
    emu.add_fault(403, method="GET", path="/providers/Microsoft.Storage/storageAccounts")
    errors: list[ArmError] = []
    bodies = client.read_subscription(on_error=errors.append)
    assert [e.action for e in errors] == ["Microsoft.Storage/storageAccounts/read"]
    types = Counter(b["type"] for b in bodies)
    assert "Microsoft.Storage/storageAccounts" not in types
    assert types["Microsoft.Network/networkSecurityGroups"] == 3
    with pytest.raises(ArmError):
        client.read_subscription()


def test_progress_is_reported_as_resources_arrive(client: ArmClient) -> None:
    seen: list[tuple[str, int]] = []
    bodies = client.read_subscription(progress=lambda step, n: seen.append((step, n)))
    assert [n for _, n in seen] == list(range(1, len(bodies) + 1))
    assert seen[0][0] == "networkSecurityGroups"
    assert any(step.endswith("/computes") for step, _ in seen)


def test_put_waits_for_the_long_running_operation(emu: ExtendedEmulator, client: ArmClient) -> None:
    emu.lro_delay = 0.2
    nsg = client.get(NSG_WEU)
    assert nsg is not None
    written = client.put(NSG_WEU, nsg, nsg["etag"])
    assert emu.get_body(NSG_WEU)["properties"]["provisioningState"] == "Succeeded"
    assert written["properties"]["provisioningState"] == "Succeeded"
    assert written["etag"] == emu.get_body(NSG_WEU)["etag"] != nsg["etag"]
    assert client.counts["poll"] >= 1
    assert client.last_status == 200


def test_put_with_a_stale_etag_is_refused_with_412(emu: ExtendedEmulator, client: ArmClient) -> None:
    nsg = client.get(NSG_WEU)
    assert nsg is not None
    emu.set_body(NSG_WEU, {**nsg, "tags": {"someone": "else"}})
    with pytest.raises(ArmError) as caught:
        client.put(NSG_WEU, nsg, nsg["etag"])
    assert caught.value.status == 412
    assert not caught.value.replayed
    assert emu.get_body(NSG_WEU)["tags"] == {"someone": "else"}


def test_a_monitor_that_keeps_failing_is_an_error(emu: ExtendedEmulator, client: ArmClient) -> None:
    compute = WS_EUS + "/computes/ci-quick-test"
    emu.add_fault(500, method="GET", path="/operations/")
    with client_for(emu, retry_total=1) as c, pytest.raises(ArmError) as caught:
        c.post_action(compute, "stop")
    assert caught.value.status == 500


def test_post_action_is_awaited(emu: ExtendedEmulator, client: ArmClient) -> None:
    compute = WS_EUS + "/computes/ci-quick-test"
    client.post_action(compute, "stop")
    assert emu.get_body(compute)["properties"]["properties"]["state"] == "Stopped"
    assert [r.kind for r in emu.records(path="ci-quick-test")] == ["action"]
    assert client.counts["POST"] == 1 and client.counts["poll"] >= 1
    with pytest.raises(ValueError):
        client.post_action(compute, "../delete")


def test_next_links_and_monitors_on_another_host_are_not_followed(emu: ExtendedEmulator) -> None:
    real = emu.url
    emu._app.base_url = "http://127.0.0.2:9"  # pages now point at another host
    emu.page_size = 1
    with ArmClient(f.SUB, real, polling_interval=0.01) as client, pytest.raises(ArmError) as caught:
        list(client.list_children(WS_EUS, "computes"))
    assert caught.value.code == "UnexpectedNextLink"
    assert not any(r.path.startswith("http") for r in emu.log)


def test_unsupported_types_are_refused_before_anything_is_sent(emu: ExtendedEmulator, client: ArmClient) -> None:
    with pytest.raises(ArmError, match="not one ExfilGuard reads"):
        client.get(f.rg_id("rg-ml-weu") + "/providers/Microsoft.Compute/virtualMachines/vm1")
    with pytest.raises(ValueError):
        list(client.list_type("Microsoft.Network/virtualNetworks/subnets"))
    assert emu.log == []


def test_backoff_has_jitter_and_stays_bounded() -> None:
    retry_cls, _ = _policy_classes()
    policy = retry_cls(retry_backoff_factor=0.5, retry_backoff_max=3)
    settings = policy.configure_retries({})
    settings["history"] = [object()] * 4  # base = 0.5 * 2**3 = 4, capped at 3
    values = {policy.get_backoff_time(settings) for _ in range(200)}
    assert all(1.5 <= v <= 3 for v in values)
    assert len(values) > 1
    settings["history"] = [object()]
    assert policy.get_backoff_time(settings) == 0


def test_a_client_needs_a_credential_unless_the_endpoint_is_loopback() -> None:
    with pytest.raises(ValueError, match="credential"):
        ArmClient(f.SUB, "https://management.azure.com", credential=None)
    with pytest.raises(ValueError, match="subscription"):
        ArmClient("/subscriptions/x", "http://127.0.0.1:1")


def test_location_only_operations_are_polled_until_done(emu: ExtendedEmulator, client: ArmClient) -> None:
    compute = WS_EUS + "/computes/ci-quick-test"
    client.post_action(compute, "start")
    polls = emu.records(kind="poll")
    assert polls and all("/operationResults/" in p.path for p in polls)
    assert polls[-1].status in (200, 204)


def test_retry_after_is_honoured_for_throttling(emu: ExtendedEmulator, client: ArmClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.pipeline.transport import RequestsTransport

    slept: list[float] = []
    monkeypatch.setattr(RequestsTransport, "sleep", lambda self, seconds: slept.append(seconds))
    emu.add_fault(429, method="GET", path="nsg-ml-westeurope", count=1, retry_after=7)
    assert client.get(NSG_WEU) is not None
    assert slept == [7]


def test_lro_polls_follow_retry_after_unless_overridden(emu: ExtendedEmulator) -> None:
    emu.lro_delay = 0.0
    waits: list[float] = []
    with ArmClient(f.SUB, emu.url) as client:
        client._sleep = waits.append
        nsg = client.get(NSG_WEU)
        assert nsg is not None
        client.put(NSG_WEU, nsg, nsg["etag"])
    assert waits == [0.05], "the emulator says Retry-After: 0; polls never spin faster than 50 ms"
    waits.clear()
    with ArmClient(f.SUB, emu.url, polling_interval=0.3) as client:
        client._sleep = waits.append
        nsg = client.get(NSG_WEU)
        assert nsg is not None
        client.put(NSG_WEU, nsg, nsg["etag"])
    assert waits == [0.3]


def test_a_hanging_arm_is_cut_off_by_the_read_timeout(emu: ExtendedEmulator) -> None:
    """The HTTP trigger must answer within 230 s: a request ARM never answers ends with a
    clear, transient error after the client's read timeout instead of azure-core's 300 s."""
    emu.latency = 1.5
    with client_for(emu, retry_total=0, read_timeout=0.3) as client, pytest.raises(ArmError) as caught:
        client.get(NSG_WEU)
    assert caught.value.status is None and caught.value.transient


def test_network_resources_go_through_the_network_sdks_own_operations(emu: ExtendedEmulator, client: ArmClient,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads and writes of network types are NetworkManagementClient's operations (the raw JSON
    comes back through a ``cls=`` hook); Machine Learning writes travel the ML SDK's pipeline,
    its reads the shared one (an event's decision only reads: no ML SDK import on its path)."""
    calls: list[tuple[str, str]] = []
    nsg_id = next(r["id"] for r in sample() if r["type"].lower().endswith("/networksecuritygroups"))
    ops = client.network.network_security_groups
    for name in ("get", "begin_create_or_update"):
        real = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *a, _n=name, _r=real, **k: (calls.append((_n, a[1])), _r(*a, **k))[1])
    body = client.get(nsg_id)
    assert body is not None and body["id"].lower() == nsg_id.lower() and isinstance(body, dict)
    written = client.put(nsg_id, body, body["etag"])
    assert written["name"] == body["name"]
    assert calls == [("get", body["name"]), ("begin_create_or_update", body["name"])]
    ws_id = next(r["id"] for r in sample() if r["type"].lower().endswith("/workspaces"))
    assert client._ml is None
    assert client.get(ws_id) is not None and client.get(f"{WS_EUS}/computes/ci-quick-test") is not None
    assert list(client.list_children(ws_id, "computes")) and client._ml is None, "ML reads need no ML SDK"
    sent = client.ml._client.send_request
    ml_calls: list[str] = []
    monkeypatch.setattr(client.ml._client, "send_request",
                        lambda request, **k: (ml_calls.append(request.method), sent(request, **k))[1])
    client.post_action(f"{WS_EUS}/computes/ci-quick-test", "stop")
    assert ml_calls[0] == "POST", "an ML write travels the ML SDK's pipeline"
