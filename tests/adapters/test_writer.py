"""The remediation writer against the ARM emulator: If-Match, re-plan on 412, exactly as wide
as the planned fix, one write per resource, outcomes as data.

Every transition of the writer's state machine (``writer.Step``) is proven here; the test
names say which, and the emulator's request log shows the path taken (a GET is READ, a
PUT/PATCH/POST is WRITE, polls are the long-running operation WRITE follows).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from exfilguard.adapters.arm import ArmClient
from exfilguard.adapters.writer import WriteResult, apply_change, diff
from exfilguard.core import ids
from exfilguard.core.config import Config
from exfilguard.core.engine import evaluate, plan
from exfilguard.core.fixes import Edit, PlannedChange
from exfilguard.core.picture import build
from exfilguard.flows.remediate import body_index, replanner
from tests import factory as f
from tests.arm_support import ExtendedEmulator, client_for, property_paths, stable
from tests.armemu.log import LogRecord

NSG_WEU = f.nsg_id("rg-ml-weu", "nsg-ml-westeurope")
WS_EUS = f.ws_id("rg-ml-eus", "mlw-eastus")
DENY = "exfilguard-deny-internet-outbound"
CONFIG = Config()


@pytest.fixture
def client(emu: ExtendedEmulator) -> Iterator[ArmClient]:
    with client_for(emu) as c:
        yield c


@pytest.fixture
def bodies(client: ArmClient, emu: ExtendedEmulator) -> list[dict]:
    out = client.read_subscription()
    emu.reset_log()
    return out


def _change(bodies: list[dict], target: str, config: Config = CONFIG) -> PlannedChange:
    evaluation = evaluate(build(bodies, config.guarded_subnets), config)
    return next(c for c in plan(evaluation.findings, config, "remediate") if ids.key(c.target_id) == ids.key(target))


def _write(client: ArmClient, bodies: list[dict], target: str, *, with_current: bool = True,
           config: Config = CONFIG, **kwargs: object) -> WriteResult:
    change = _change(bodies, target, config)
    current = body_index(bodies)[ids.key(target)] if with_current else None
    return apply_change(client, change, replanner(bodies, config, "remediate")(target), current=current,
                        **kwargs)  # type: ignore[arg-type]


def _rule_names(body: dict) -> list[str]:
    return [r["name"] for r in body["properties"]["securityRules"]]


def _log(emu: ExtendedEmulator, path: str = "nsg-ml-westeurope") -> list[tuple[str, int]]:
    """The requests for one resource as (method, status): the READ and WRITE steps taken."""
    return [(r.method, r.status) for r in emu.records(path=path) if _not_poll(r)]


def _not_poll(record: LogRecord) -> bool:
    return record.kind != "poll"


def test_a_fix_is_one_conditional_put_and_no_read_when_the_body_is_at_hand(
        emu: ExtendedEmulator, client: ArmClient, bodies: list[dict]) -> None:
    before = emu.get_body(NSG_WEU)
    result = _write(client, bodies, NSG_WEU)
    assert result.status == "applied", result.message
    assert result.rule_ids == ("EXF-NSG-01", "EXF-NSG-02", "EXF-NSG-05")
    assert (result.attempts, result.http_status) == (1, 200)
    assert emu.count(kind="read") == 0
    puts = emu.records(kind="write")
    assert [(p.method, p.if_match) for p in puts] == [("PUT", before["etag"])]
    assert emu.count(kind="poll") >= 1
    after = emu.get_body(NSG_WEU)
    assert _rule_names(after).count(DENY) == 1
    assert f"properties.securityRules[{DENY}]" in result.changed
    assert result.changed["properties.securityRules[allow-ssh-in].properties.access"] == {
        "before": "Allow", "after": "Deny"}


def test_the_write_is_exactly_as_wide_as_the_fix(emu: ExtendedEmulator, client: ArmClient,
                                                  bodies: list[dict]) -> None:
    before = emu.get_body(NSG_WEU)
    result = _write(client, bodies, NSG_WEU)
    after = emu.get_body(NSG_WEU)
    assert set(diff(stable(before), stable(after))) == set(result.changed)
    sent = emu.records(kind="write")[0].body
    assert set(diff(stable(before), stable(sent))) == set(result.changed)


def test_properties_no_model_knows_survive_the_write(emu: ExtendedEmulator, client: ArmClient) -> None:
    nsg = emu.get_body(NSG_WEU)
    nsg["properties"]["x-preview-feature"] = {"enabled": True}
    nsg["properties"]["securityRules"][0]["properties"]["x-rule-extra"] = [1, "two"]
    emu.set_body(NSG_WEU, nsg)
    bodies = client.read_subscription()
    before = emu.get_body(NSG_WEU)
    assert _write(client, bodies, NSG_WEU).status == "applied"
    after = emu.get_body(NSG_WEU)
    assert after["properties"]["x-preview-feature"] == {"enabled": True}
    assert after["properties"]["securityRules"][0]["properties"]["x-rule-extra"] == [1, "two"]
    assert set(property_paths(before)) <= set(property_paths(after))


def test_a_change_made_between_read_and_write_is_never_overwritten(
        emu: ExtendedEmulator, client: ArmClient, bodies: list[dict]) -> None:
    theirs = f.rule("their-new-rule", 500, direction="Inbound", source="10.0.0.0/8", nsg=NSG_WEU)

    def someone_else(body: dict) -> None:
        body["properties"]["securityRules"].append(theirs)
        body["tags"] = {"owner": "network-team"}

    emu.concurrent_modification(NSG_WEU, someone_else)
    result = _write(client, bodies, NSG_WEU, with_current=False)
    assert result.status == "applied", result.message
    assert result.attempts == 2
    assert [w.status for w in emu.records(kind="write")] == [412, 200]
    after = emu.get_body(NSG_WEU)
    assert "their-new-rule" in _rule_names(after) and DENY in _rule_names(after)
    assert after["tags"] == {"owner": "network-team"}


def test_a_concurrent_change_that_reopens_a_hole_is_fixed_too(emu: ExtendedEmulator, client: ArmClient,
                                                                bodies: list[dict]) -> None:
    def reopen(body: dict) -> None:
        body["properties"]["securityRules"].append(
            f.rule("allow-rdp-in", 320, direction="Inbound", ports="3389", dest="VirtualNetwork", nsg=NSG_WEU))

    emu.concurrent_modification(NSG_WEU, reopen)
    result = _write(client, bodies, NSG_WEU, with_current=False)
    assert result.status == "applied"
    rdp = next(r for r in emu.get_body(NSG_WEU)["properties"]["securityRules"] if r["name"] == "allow-rdp-in")
    assert rdp["properties"]["access"] == "Deny"


def test_conflicts_on_every_attempt_end_as_a_conflict_after_three(
        emu: ExtendedEmulator, client: ArmClient, bodies: list[dict]) -> None:
    counter = iter(range(100))

    def keep_changing(body: dict) -> None:
        body["tags"] = {"touched": str(next(counter))}

    emu.concurrent_modification(NSG_WEU, keep_changing, count=10)
    result = _write(client, bodies, NSG_WEU, with_current=False)
    assert (result.status, result.attempts, result.http_status) == ("conflict", 3, 412)
    assert [w.status for w in emu.records(kind="write")] == [412, 412, 412]
    assert DENY not in _rule_names(emu.get_body(NSG_WEU))


def test_someone_else_fixing_it_first_means_nothing_to_write(emu: ExtendedEmulator, client: ArmClient,
                                                              bodies: list[dict]) -> None:
    ws = emu.get_body(WS_EUS)
    emu.set_body(WS_EUS, {**ws, "properties": {**ws["properties"], "publicNetworkAccess": "Disabled"}})
    result = _write(client, bodies, WS_EUS)
    assert (result.status, result.attempts) == ("not-needed", 2)
    assert [w.status for w in emu.records(kind="write")] == [412]


def test_a_lost_answer_and_the_replayed_put_land_the_fix_once(emu: ExtendedEmulator, client: ArmClient,
                                                              bodies: list[dict]) -> None:
    emu.lose_answer("PUT", "networkSecurityGroups/nsg-ml-westeurope")
    result = _write(client, bodies, NSG_WEU)
    assert result.status == "applied", result.message
    writes = emu.records(kind="write")
    assert [w.status for w in writes] == [200, 412], "the retry policy replays the PUT; If-Match stops it"
    assert _rule_names(emu.get_body(NSG_WEU)).count(DENY) == 1
    assert emu.count(kind="read") == 1, "one re-read to confirm"


def test_a_403_is_a_failed_result_naming_the_permission(emu: ExtendedEmulator, client: ArmClient,
                                                        bodies: list[dict]) -> None:
    emu.add_fault(403, method="PUT", path="networkSecurityGroups/nsg-ml-westeurope")
    result = _write(client, bodies, NSG_WEU)
    assert (result.status, result.http_status, result.attempts) == ("failed", 403, 1)
    assert result.missing_permission == "Microsoft.Network/networkSecurityGroups/write"
    assert "Microsoft.Network/networkSecurityGroups/write" in result.message
    assert result.to_json()["missingPermission"] == "Microsoft.Network/networkSecurityGroups/write"


def test_transient_failures_past_the_retry_policy_start_a_new_attempt(emu: ExtendedEmulator,
                                                                      bodies: list[dict]) -> None:
    emu.add_fault(503, method="PUT", path="serviceEndpointPolicies/sep-ml-westeurope", count=3, retry_after=0)
    with client_for(emu, retry_total=1) as client:
        result = _write(client, bodies, f.sep_id("rg-ml-weu", "sep-ml-westeurope"))
    assert result.status == "applied", result.message
    assert result.attempts == 2
    assert [w.status for w in emu.records(kind="write")] == [503, 503, 503, 200]


def test_dry_run_reads_but_sends_no_write(emu: ExtendedEmulator, client: ArmClient, bodies: list[dict]) -> None:
    before = emu.get_body(NSG_WEU)
    result = _write(client, bodies, NSG_WEU, dry_run=True)
    assert result.status == "dry-run"
    assert emu.count(kind="write") == 0 and emu.count(kind="action") == 0
    (request,) = result.requests
    assert request["method"] == "PUT"
    assert request["url"].startswith(emu.url + NSG_WEU + "?api-version=")
    assert request["headers"]["If-Match"] == before["etag"]
    assert DENY in _rule_names(request["body"])
    assert emu.get_body(NSG_WEU) == before


def test_a_body_without_etag_is_patched_with_only_the_fixed_property(emu: ExtendedEmulator, client: ArmClient,
                                                                    bodies: list[dict]) -> None:
    current = {k: v for k, v in body_index(bodies)[ids.key(WS_EUS)].items() if k != "etag"}
    change = _change(bodies, WS_EUS)
    result = apply_change(client, change, replanner(bodies, CONFIG, "remediate")(WS_EUS), current=current)
    assert result.status == "applied"
    (write,) = emu.records(kind="write")
    assert (write.method, write.if_match) == ("PATCH", None)
    assert write.body == {"properties": {"publicNetworkAccess": "Disabled"}}
    after = emu.get_body(WS_EUS)
    assert after["properties"]["publicNetworkAccess"] == "Disabled"
    reverted = {**after, "properties": {**after["properties"], "publicNetworkAccess": "Enabled"}}
    assert stable(reverted) == stable(current), "a property besides publicNetworkAccess changed"


def test_a_list_edit_without_etag_is_refused(emu: ExtendedEmulator, client: ArmClient, bodies: list[dict]) -> None:
    current = {k: v for k, v in body_index(bodies)[ids.key(NSG_WEU)].items() if k != "etag"}
    change = _change(bodies, NSG_WEU)
    result = apply_change(client, change, replanner(bodies, CONFIG, "remediate")(NSG_WEU), current=current)
    assert result.status == "failed"
    assert "no etag" in result.message
    assert emu.count(kind="write") == 0


def test_quarantine_posts_the_stop_action(emu: ExtendedEmulator, client: ArmClient, bodies: list[dict]) -> None:
    compute = WS_EUS + "/computes/ci-quick-test"
    config = Config(quarantine=True)
    result = _write(client, bodies, compute, config=config)
    assert result.status == "applied", result.message
    assert [(r.method, r.kind) for r in emu.records(path="ci-quick-test")] == [("POST", "action")]
    assert emu.get_body(compute)["properties"]["properties"]["state"] == "Stopped"


def test_a_vanished_target_is_reported_not_raised(emu: ExtendedEmulator, client: ArmClient,
                                                  bodies: list[dict]) -> None:
    emu.delete_resource(WS_EUS)
    result = _write(client, bodies, WS_EUS, with_current=False)
    assert (result.status, result.http_status) == ("failed", 404)
    assert "no longer exists" in result.message


def test_edits_planned_on_an_older_body_are_replanned_on_the_fresh_one(
        emu: ExtendedEmulator, client: ArmClient, bodies: list[dict]) -> None:
    stale = PlannedChange(NSG_WEU, ("EXF-NSG-05",), ("deny ssh",),
                          (Edit("set", ("properties", "securityRules", _sel("gone-rule"), "properties", "access"),
                                "Deny"),))
    result = apply_change(client, stale, replanner(bodies, CONFIG, "remediate")(NSG_WEU),
                          current=body_index(bodies)[ids.key(NSG_WEU)])
    assert result.status == "applied"
    assert result.rule_ids == ("EXF-NSG-01", "EXF-NSG-02", "EXF-NSG-05")
    assert len(emu.records(kind="write")) == 1


def _sel(name: str) -> object:
    from exfilguard.core.fixes import Sel

    return Sel("name", name)


def test_diff_matches_named_items_by_name() -> None:
    before = {"properties": {"rules": [{"name": "a", "p": 1}, {"name": "b", "p": 2}], "x": [1, 2]}}
    after = {"properties": {"rules": [{"name": "b", "p": 3}, {"name": "a", "p": 1}, {"name": "c"}], "x": [1, 2]}}
    assert diff(before, after) == {
        "properties.rules[b].p": {"before": 2, "after": 3},
        "properties.rules[c]": {"before": None, "after": {"name": "c"}},
    }
    assert diff(before, before) == {}
    assert diff({"a": [1]}, {"a": [2]}) == {"a": {"before": [1], "after": [2]}}
    assert diff({"a": 1}, {}) == {"a": {"before": 1, "after": None}}


def test_results_serialise_for_the_audit_log() -> None:
    r = WriteResult("/subscriptions/s/x", ("EXF-WS-02",), "applied", 1, 200, "done",
                    {"properties.publicNetworkAccess": {"before": "Enabled", "after": "Disabled"}})
    assert r.to_json() == {"resourceId": "/subscriptions/s/x", "rules": ["EXF-WS-02"], "status": "applied",
                           "attempts": 1, "httpStatus": 200, "message": "done",
                           "changed": {"properties.publicNetworkAccess": {"before": "Enabled", "after": "Disabled"}}}


# ---------------------------------------------------------------------- each transition
def test_read_then_plan_then_write_when_no_body_is_at_hand(emu: ExtendedEmulator, client: ArmClient,
                                                           bodies: list[dict]) -> None:
    result = _write(client, bodies, NSG_WEU, with_current=False)
    assert (result.status, result.attempts) == ("applied", 1)
    assert _log(emu) == [("GET", 200), ("PUT", 200)]


def _without(member: str) -> Callable[[bytes], bytes]:
    def cut(raw: bytes) -> bytes:
        body = json.loads(raw)
        holder = body["properties"] if member != "properties" else body
        del holder[member]
        return json.dumps(body).encode()
    return cut


def _other_id(raw: bytes) -> bytes:
    body = json.loads(raw)
    body["id"] = body["id"].rsplit("/", 1)[0] + "/nsg-someone-elses"
    return json.dumps(body).encode()


@pytest.mark.parametrize("cut", [None, _without("properties"), _without("securityRules"), _other_id],
                         ids=["cut-short", "no-properties", "no-rules", "other-id"])
def test_read_fails_closed_on_half_a_resource(emu: ExtendedEmulator, client: ArmClient, bodies: list[dict],
                                              cut: Callable[[bytes], bytes] | None) -> None:
    before = emu.get_body(NSG_WEU)
    emu.half_answer("nsg-ml-westeurope", cut)
    result = _write(client, bodies, NSG_WEU, with_current=False)
    assert (result.status, result.http_status, result.attempts) == ("failed", 200, 1), result.message
    assert emu.count(kind="write") == 0, "a PUT of half a body would delete the other half"
    assert emu.get_body(NSG_WEU) == before


def test_a_half_read_after_a_conflict_is_not_written_back(emu: ExtendedEmulator, client: ArmClient,
                                                          bodies: list[dict]) -> None:
    theirs = emu.get_body(NSG_WEU)
    emu.set_body(NSG_WEU, {**theirs, "tags": {"owner": "network-team"}})  # a new etag: our PUT meets 412
    emu.half_answer("nsg-ml-westeurope", _without("securityRules"))
    result = _write(client, bodies, NSG_WEU)
    assert (result.status, result.attempts) == ("failed", 2) and "securityRules" in result.message
    assert _log(emu) == [("PUT", 412), ("GET", 200)]
    assert _rule_names(emu.get_body(NSG_WEU)) == _rule_names(theirs)


def test_a_transient_read_failure_starts_the_next_attempt(emu: ExtendedEmulator, bodies: list[dict]) -> None:
    emu.add_fault(503, method="GET", path="nsg-ml-westeurope", count=1, retry_after=0)
    with client_for(emu, retry_total=0) as client:
        result = _write(client, bodies, NSG_WEU, with_current=False)
    assert (result.status, result.attempts) == ("applied", 2), result.message
    assert _log(emu) == [("GET", 503), ("GET", 200), ("PUT", 200)]


def test_reads_failing_on_every_attempt_stop_after_three(emu: ExtendedEmulator, bodies: list[dict]) -> None:
    emu.add_fault(503, method="GET", path="nsg-ml-westeurope", retry_after=0)
    with client_for(emu, retry_total=0) as client:
        result = _write(client, bodies, NSG_WEU, with_current=False)
    assert (result.status, result.attempts, result.http_status) == ("failed", 3, 503)
    assert _log(emu) == [("GET", 503)] * 3


def test_a_fresh_plan_that_still_does_not_fit_fails(emu: ExtendedEmulator, client: ArmClient,
                                                    bodies: list[dict]) -> None:
    stale = PlannedChange(NSG_WEU, ("EXF-NSG-05",), ("deny ssh",),
                          (Edit("set", ("properties", "securityRules", _sel("gone-rule"), "access"), "Deny"),))
    asked: list[dict] = []

    def replan(body: dict) -> PlannedChange:
        asked.append(body)
        return stale

    result = apply_change(client, stale, replan, current=body_index(bodies)[ids.key(NSG_WEU)])
    assert result.status == "failed" and "do not fit" in result.message
    assert len(asked) == 1, "re-planned once on the body at hand, then gave up"
    assert emu.count(kind="write") == 0


def test_a_replan_for_another_resource_is_a_bug_not_a_write(emu: ExtendedEmulator, client: ArmClient,
                                                            bodies: list[dict]) -> None:
    other = _change(bodies, WS_EUS)
    emu.concurrent_modification(NSG_WEU, {"tags": {"x": "y"}})
    with pytest.raises(ValueError, match="returned a change for"):
        apply_change(client, _change(bodies, NSG_WEU), lambda body: other)
    assert [w.status for w in emu.records(kind="write")] == [412]


def test_a_body_that_already_has_the_fix_needs_no_write(emu: ExtendedEmulator, client: ArmClient,
                                                        bodies: list[dict]) -> None:
    change = _change(bodies, WS_EUS)
    assert _write(client, bodies, WS_EUS).status == "applied"
    emu.reset_log()
    result = apply_change(client, change, replanner(bodies, CONFIG, "remediate")(WS_EUS),
                          current=emu.get_body(WS_EUS))
    assert (result.status, result.attempts) == ("not-needed", 1)
    assert "already has every planned change" in result.message
    assert emu.log == []


def test_throttling_is_waited_out_inside_the_write(emu: ExtendedEmulator, client: ArmClient,
                                                   bodies: list[dict]) -> None:
    emu.add_fault(429, method="PUT", path="nsg-ml-westeurope", count=1, retry_after=0)
    result = _write(client, bodies, NSG_WEU)
    assert (result.status, result.attempts) == ("applied", 1), result.message
    assert _log(emu) == [("PUT", 429), ("PUT", 200)]


def test_a_retry_after_past_the_deadline_fails_without_another_request(emu: ExtendedEmulator,
                                                                       bodies: list[dict]) -> None:
    emu.add_fault(429, method="PUT", path="nsg-ml-westeurope", retry_after=600)
    with client_for(emu, deadline_s=60) as client:
        result = _write(client, bodies, NSG_WEU)
    assert (result.status, result.attempts) == ("failed", 1)
    assert "Retry-After" in result.message and "deadline" in result.message
    assert _log(emu) == [("PUT", 429)], "neither retried early nor sent again by a new attempt"


def test_an_operation_still_running_at_the_deadline_is_accepted(emu: ExtendedEmulator,
                                                                bodies: list[dict]) -> None:
    emu.lro_delay = 600.0
    with client_for(emu, deadline_s=3, polling_interval=0.2) as client:
        result = _write(client, bodies, NSG_WEU)
    assert (result.status, result.http_status, result.attempts) == ("accepted", 202, 1), result.message
    assert _log(emu) == [("PUT", 200)]
    assert emu.count(kind="poll") >= 1
    assert DENY in _rule_names(emu.get_body(NSG_WEU))


def test_a_location_monitored_action_is_followed_to_its_end(emu: ExtendedEmulator, client: ArmClient,
                                                            bodies: list[dict]) -> None:
    compute = WS_EUS + "/computes/ci-quick-test"
    start = PlannedChange(compute, ("TEST",), ("start",), (Edit("action", ("start",)),))
    result = apply_change(client, start, lambda body: None, current=body_index(bodies)[ids.key(compute)])
    assert (result.status, result.attempts) == ("applied", 1), result.message
    assert [(r.method, r.kind) for r in emu.records(path="ci-quick-test")] == [("POST", "action")]
    assert emu.count(kind="poll") >= 1, "the Location monitor was polled"
    assert emu.get_body(compute)["properties"]["properties"]["state"] == "Running"


def test_a_lost_operation_status_is_confirmed_by_a_fresh_read(emu: ExtendedEmulator, bodies: list[dict]) -> None:
    emu.add_fault(503, method="GET", path="/operations/", count=2, retry_after=0)
    with client_for(emu, retry_total=1) as client:
        result = _write(client, bodies, NSG_WEU)
    assert (result.status, result.attempts) == ("applied", 2), result.message
    assert "fresh read shows the fix in place" in result.message
    assert _log(emu) == [("PUT", 200), ("GET", 200)], "one write; the re-read confirms it"
    assert _rule_names(emu.get_body(NSG_WEU)).count(DENY) == 1
