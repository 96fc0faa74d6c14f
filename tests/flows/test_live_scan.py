"""``exfilguard scan --subscription`` end to end against the ARM emulator loaded with the
drifted sample: remediation, its safety under faults and concurrent change, audit, dry run,
refusals, and what a full remediation costs in requests."""

from __future__ import annotations

import io
import json
from argparse import Namespace
from collections import Counter
from pathlib import Path

import pytest

from exfilguard.cli.main import main
from exfilguard.core import ids
from exfilguard.core.config import Config
from exfilguard.core.engine import evaluate
from exfilguard.core.picture import build
from exfilguard.flows.live import _progress, run_live_scan
from exfilguard.flows.remediate import remediate
from tests import factory as f
from tests.arm_support import ExtendedEmulator, client_for, emulator, property_paths, stable, state

pytestmark = pytest.mark.usefixtures("clean_env")

NSG_WEU = f.nsg_id("rg-ml-weu", "nsg-ml-westeurope")
WS_EUS = f.ws_id("rg-ml-eus", "mlw-eastus")


def scan(emu: ExtendedEmulator, *flags: str, endpoint: str | None = None) -> tuple[int, dict]:
    out = io.StringIO()
    code = main(["scan", "--subscription", f.SUB, "--arm-endpoint", endpoint or emu.url, "--format", "json",
                 *flags], out=out)
    return code, json.loads(out.getvalue()) if out.getvalue() else {}


def _pairs(report: dict, mode: str | None = None) -> set[tuple[str, str]]:
    return {(x["ruleId"], ids.key(x["resourceId"])) for x in report["findings"]
            if mode is None or x["fix"]["mode"] == mode}


def _puts_by_target(emu: ExtendedEmulator) -> Counter:
    return Counter(ids.key(r.path) for r in emu.records(kind="write") if 200 <= r.status < 300)


def test_remediate_fixes_everything_fixable_and_a_second_scan_shows_only_alerts(emu: ExtendedEmulator) -> None:
    before = state(emu)
    code, first = scan(emu, "--remediate")
    assert code == 1
    auto, manual = _pairs(first, "auto"), _pairs(first, "manual")
    assert len(auto) == 10 and len(manual) == 12
    writes = first["writes"]
    assert {w["status"] for w in writes} == {"applied"}
    assert {(r, ids.key(w["resourceId"])) for w in writes for r in w["rules"]} == auto
    assert all(count == 1 for count in _puts_by_target(emu).values()), "one write per resource"
    assert len(_puts_by_target(emu)) == len(writes)

    code, second = scan(emu)
    assert code == 1
    assert _pairs(second) == manual
    assert second["writes"] == []
    assert emu.count(kind="write", method="PUT") == len(writes), "the second scan wrote nothing"

    after = state(emu)
    targets = {ids.key(w["resourceId"]) for w in writes}
    touched = targets | {ids.key(str(ids.parse(t).parent)) for t in targets if ids.parse(t).parent}
    for rid, body in before.items():
        lost = set(property_paths(body)) - set(property_paths(after[rid]))
        assert not lost, f"{rid} lost {sorted(lost)}"
        if rid not in touched:
            assert after[rid] == body, f"{rid} was changed although no fix targets it"


def test_report_counts_every_request_by_verb(emu: ExtendedEmulator) -> None:
    _, report = scan(emu, "--remediate")
    log = Counter("poll" if r.kind == "poll" else r.method for r in emu.log)
    assert report["armRequests"] == dict(log)
    # The drifted sample: 19 list pages read, one PUT per fixed resource, no GET before a write.
    assert report["armRequests"]["GET"] == 19
    assert report["armRequests"]["PUT"] == 6
    assert report["armRequests"]["poll"] >= 6
    assert "POST" not in report["armRequests"] and "PATCH" not in report["armRequests"]
    print(f"\nfull remediation of the drifted sample: {report['armRequests']}")


def test_with_a_fifth_of_requests_failing_every_fix_lands_exactly_once(emu: ExtendedEmulator) -> None:
    with emulator() as reference:
        scan(reference, "--remediate")
        expected = {k: stable(v) for k, v in state(reference).items()}

    emu.set_failure_rate(0.2, seed=7, choices=(429, 500, 503, "reset"), retry_after=0)
    args = Namespace(subscription=f.SUB, arm_endpoint=emu.url, remediate=True, dry_run=False, format="json")
    with client_for(emu, retry_total=10) as client:
        _, extra = run_live_scan(args, Config(), client=client, stderr=io.StringIO())
    emu.set_failure_rate(None)
    faults = Counter(r.fault for r in emu.log if r.fault)
    assert sum(faults.values()) >= 5, f"the fault injection did not bite: {faults}"
    assert {w["status"] for w in extra["writes"]} == {"applied"}
    assert "incomplete" not in extra
    assert all(count == 1 for count in _puts_by_target(emu).values())
    assert len(_puts_by_target(emu)) == 6
    assert {k: stable(v) for k, v in state(emu).items()} == expected

    _, second = scan(emu)
    assert all(x["fix"]["mode"] == "manual" for x in second["findings"])


def test_a_change_made_between_read_and_write_survives_remediation(emu: ExtendedEmulator) -> None:
    with client_for(emu) as client:
        bodies = client.read_subscription()
        evaluation = evaluate(build(bodies), Config())
        nsg = emu.get_body(NSG_WEU)
        nsg["properties"]["securityRules"].append(
            f.rule("allow-bastion-in", 250, direction="Inbound", source="10.20.0.0/24", ports="22", nsg=NSG_WEU))
        emu.set_body(NSG_WEU, nsg)
        ws = emu.get_body(WS_EUS)
        emu.set_body(WS_EUS, {**ws, "tags": {"costCenter": "4711"}})
        results = remediate(client, bodies, evaluation, Config(), mode="remediate", dry_run=False)
    by_target = {ids.key(r.target_id): r for r in results}
    assert by_target[ids.key(NSG_WEU)].status == "applied" and by_target[ids.key(NSG_WEU)].attempts == 2
    assert by_target[ids.key(WS_EUS)].attempts == 2
    rules = {r["name"] for r in emu.get_body(NSG_WEU)["properties"]["securityRules"]}
    assert {"allow-bastion-in", "exfilguard-deny-internet-outbound"} <= rules
    assert emu.get_body(WS_EUS)["tags"] == {"costCenter": "4711"}
    assert emu.get_body(WS_EUS)["properties"]["publicNetworkAccess"] == "Disabled"


def test_audit_sends_no_write_and_lists_what_it_would_do(emu: ExtendedEmulator) -> None:
    code, report = scan(emu)
    assert code == 1
    assert emu.count(kind="write") == 0 and emu.count(kind="action") == 0
    assert report["live"]["mode"] == "audit"
    assert {w["status"] for w in report["writes"]} == {"planned"}
    assert len(report["writes"]) == 6
    assert all(w["changed"] for w in report["writes"])


def test_dry_run_prints_the_requests_and_sends_no_write(emu: ExtendedEmulator,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = state(emu)
    code, report = scan(emu, "--dry-run")
    assert code == 1
    assert emu.count(kind="write") == 0 and emu.count(kind="action") == 0
    assert state(emu) == before
    assert {w["status"] for w in report["writes"]} == {"dry-run"}
    puts = [req for w in report["writes"] for req in w["requests"]]
    assert len(puts) == 6 and {p["method"] for p in puts} == {"PUT"}
    assert all(p["headers"]["If-Match"] for p in puts)
    err = capsys.readouterr().err
    assert f"dry-run: PUT {emu.url}{NSG_WEU}?api-version=" in err
    assert "If-Match" in err


def test_no_authorization_header_is_ever_sent_to_the_emulator(emu: ExtendedEmulator) -> None:
    scan(emu, "--remediate")
    assert emu.log and not any(r.authorization for r in emu.log)


@pytest.mark.parametrize("endpoint", ["http://10.1.2.3:8080", "http://arm.corp.example", "http://[2001:db8::1]"])
def test_a_non_loopback_http_endpoint_is_refused_before_any_request(
        emu: ExtendedEmulator, endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = scan(emu, "--remediate", endpoint=endpoint)
    assert code == 2 and report == {}
    err = capsys.readouterr().err
    assert "refusing plain http://" in err and "Traceback" not in err
    assert emu.log == []


def test_the_endpoint_setting_is_validated_too(emu: ExtendedEmulator, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EXFILGUARD_ARM_ENDPOINT", "http://192.168.1.10")
    out = io.StringIO()
    assert main(["scan", "--subscription", f.SUB, "--format", "json"], out=out) == 2
    assert "EXFILGUARD_ARM_ENDPOINT" in capsys.readouterr().err
    monkeypatch.setenv("EXFILGUARD_ARM_ENDPOINT", emu.url)
    assert main(["scan", "--subscription", f.SUB, "--format", "json"], out=out) == 1
    assert emu.count(kind="read") > 0


def test_a_403_on_a_write_is_a_report_entry_naming_the_permission(emu: ExtendedEmulator,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    emu.add_fault(403, method="PUT", path="networkSecurityGroups/nsg-ml-westeurope")
    code, report = scan(emu, "--remediate")
    assert code == 1
    failed = [w for w in report["writes"] if w["status"] == "failed"]
    assert [ids.key(w["resourceId"]) for w in failed] == [ids.key(NSG_WEU)]
    assert failed[0]["missingPermission"] == "Microsoft.Network/networkSecurityGroups/write"
    assert report["errors"][0]["missingPermission"] == "Microsoft.Network/networkSecurityGroups/write"
    assert sum(w["status"] == "applied" for w in report["writes"]) == 5, "the other fixes still land"
    assert "Traceback" not in capsys.readouterr().err


def test_a_403_on_a_read_is_reported_and_the_scan_is_not_called_clean(emu: ExtendedEmulator) -> None:
    emu.add_fault(403, method="GET", path="/providers/Microsoft.Storage/storageAccounts")
    code, report = scan(emu)
    assert code == 2
    assert report["incomplete"] is True
    assert report["errors"][0]["missingPermission"] == "Microsoft.Storage/storageAccounts/read"
    assert any(n["kind"] == "read-error" for n in report["notices"])
    assert ("EXF-NSG-01", ids.key(NSG_WEU)) in _pairs(report), "what could be read is still evaluated"


def test_per_rule_override_keeps_one_rule_in_audit(emu: ExtendedEmulator, tmp_path: Path) -> None:
    cfg = tmp_path / "exfilguard.yaml"
    cfg.write_text("rules:\n  EXF-NSG-01: audit\n", encoding="utf-8")
    _, report = scan(emu, "--remediate", "--config", str(cfg))
    entries = [w for w in report["writes"] if ids.key(w["resourceId"]) == ids.key(NSG_WEU)]
    assert sorted((w["status"], tuple(w["rules"])) for w in entries) == [
        ("applied", ("EXF-NSG-02", "EXF-NSG-05")), ("planned", ("EXF-NSG-01",))]
    rules = {r["name"]: r for r in emu.get_body(NSG_WEU)["properties"]["securityRules"]}
    assert "exfilguard-deny-internet-outbound" not in rules
    assert rules["allow-ssh-in"]["properties"]["access"] == "Deny"


def test_quarantine_stops_instances_and_scales_clusters_to_zero(emu: ExtendedEmulator,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXFILGUARD_QUARANTINE", "true")
    cluster_id = f.ws_id("rg-ml-weu", "mlw-westeurope") + "/computes/gpu-cluster-legacy"
    cluster = emu.get_body(cluster_id)
    cluster["properties"]["properties"]["scaleSettings"]["minNodeCount"] = 2
    emu.set_body(cluster_id, cluster)
    _, report = scan(emu, "--remediate")
    by_name = {w["resourceId"].rsplit("/", 1)[-1]: w for w in report["writes"]}
    assert by_name["ci-quick-test"]["status"] == "applied"
    assert by_name["gpu-cluster-legacy"]["status"] == "applied"
    instance = emu.get_body(WS_EUS + "/computes/ci-quick-test")
    assert instance["properties"]["properties"]["state"] == "Stopped"
    cluster = emu.get_body(cluster_id)
    assert cluster["properties"]["properties"]["scaleSettings"] == {
        "maxNodeCount": 4, "minNodeCount": 0, "nodeIdleTimeBeforeScaleDown": "PT120S"}
    assert [r.method for r in emu.records(path="gpu-cluster-legacy") if r.kind == "write"] == ["PATCH"]
    assert [r.method for r in emu.records(path="ci-quick-test/stop")] == ["POST"]


def test_a_bad_subscription_id_is_a_usage_error(emu: ExtendedEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert main(["scan", "--subscription", "a/b", "--arm-endpoint", emu.url], out=out) == 2
    assert "--subscription" in capsys.readouterr().err
    assert emu.log == []


def test_progress_bar_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with _progress(io.StringIO()) as update:
        assert update is None
    screen = Terminal()
    with _progress(screen) as update:
        assert update is not None
        update("networkSecurityGroups", 3)
    assert "networkSecurityGroups" in screen.getvalue() or "reading" in screen.getvalue()


def test_body_index_takes_inline_children_not_references() -> None:
    from exfilguard.flows.remediate import body_index

    vnet = f.vnet("rg-ml-eus", "vnet-a", "eastus", "10.0.0.0/16",
                  [f.subnet(f.vnet_id("rg-ml-eus", "vnet-a"), "s1", "10.0.1.0/24")])
    subnet_id = vnet["properties"]["subnets"][0]["id"]
    nsg = f.nsg("rg-ml-eus", "nsg-a", "eastus", [])
    nsg["properties"]["subnets"] = [{"id": subnet_id}]  # ARM's back-reference, listed first
    index = body_index([nsg, vnet])
    assert index[ids.key(subnet_id)] is vnet["properties"]["subnets"][0]
    standalone = {**vnet["properties"]["subnets"][0], "etag": "W/\"standalone\""}
    assert body_index([nsg, vnet, standalone])[ids.key(subnet_id)] is standalone
