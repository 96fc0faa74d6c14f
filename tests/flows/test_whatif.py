"""``exfilguard scan --what-if``: the findings a planned deployment would introduce.

The what-if documents in tests/data/whatif were written by hand from the documented
WhatIfOperationResult shape (tests/data/SOURCES.md); the base pictures are the samples.
"""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exfilguard.cli.main import main
from exfilguard.core import ids
from exfilguard.core.config import Config
from exfilguard.flows import whatif
from tests import factory as f
from tests.arm_support import ExtendedEmulator
from tests.support import DATA, SAMPLES, load_sample

pytestmark = pytest.mark.usefixtures("clean_env")

WHATIF = DATA / "whatif"
COMPLIANT = SAMPLES / "compliant-subscription.json"
DRIFTED = SAMPLES / "drifted-subscription.json"
NSG_WEU = f.nsg_id("rg-ml-weu", "nsg-ml-westeurope")
SNET_TRAINING = f.vnet_id("rg-ml-weu", "vnet-ml-westeurope") + "/subnets/snet-training"
WS_EUS = f.ws_id("rg-ml-eus", "mlw-eastus")


def run(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    code = main(["scan", *args, "--format", "json"], out=out)
    return code, json.loads(out.getvalue()) if out.getvalue() else {}


def pairs(findings: list[dict]) -> set[tuple[str, str]]:
    return {(x["ruleId"], ids.key(x["resourceId"])) for x in findings}


@pytest.mark.parametrize(("fixture", "expected", "exit_code"), [
    ("handmade_whatif_leaky_nsg_rule.json", {("EXF-NSG-01", NSG_WEU), ("EXF-NSG-02", NSG_WEU)}, 1),
    ("handmade_whatif_remove_sep.json", {("EXF-SN-02", SNET_TRAINING)}, 1),
    ("handmade_whatif_delete.json", {("EXF-NSG-01", NSG_WEU)}, 1),
    ("handmade_whatif_unrelated.json", set(), 0),
])
def test_each_deployment_introduces_exactly_the_expected_findings(fixture: str, expected: set, exit_code: int) -> None:
    code, report = run("--snapshot", str(COMPLIANT), "--what-if", str(WHATIF / fixture))
    assert code == exit_code
    assert pairs(report["findings"]) == {(r, ids.key(i)) for r, i in expected}
    assert pairs(report["whatIf"]["introduced"]) == pairs(report["findings"])
    assert report["whatIf"]["resolved"] == []


def test_the_leaky_rule_is_named_in_the_finding() -> None:
    _, report = run("--snapshot", str(COMPLIANT), "--what-if", str(WHATIF / "handmade_whatif_leaky_nsg_rule.json"))
    nsg02 = next(x for x in report["findings"] if x["ruleId"] == "EXF-NSG-02")
    assert "allow-vendor-upload" in nsg02["detail"]
    assert report["whatIf"]["changes"] == {"Create": 1, "NoChange": 1}


def test_unsupported_and_ignored_changes_are_notices_not_findings() -> None:
    code, report = run("--snapshot", str(COMPLIANT), "--what-if", str(WHATIF / "handmade_whatif_unrelated.json"))
    assert code == 0
    assert report["whatIf"]["changes"] == {"Create": 1, "Ignore": 1, "Modify": 1, "Unsupported": 1}
    kinds = {(n["kind"], n["resourceId"].rsplit("/", 1)[-1]) for n in report["notices"]}
    assert ("what-if-unsupported", "app-reporting") in kinds


def test_a_deployment_that_fixes_drift_introduces_nothing_and_exits_0() -> None:
    code, report = run("--snapshot", str(DRIFTED), "--what-if", str(WHATIF / "handmade_whatif_fixes_drift.json"))
    assert code == 0
    assert report["findings"] == []
    assert pairs(report["whatIf"]["resolved"]) == {("EXF-WS-02", ids.key(WS_EUS))}
    # --all shows the drift that is still there after the deployment, and still exits 0:
    code, everything = run("--snapshot", str(DRIFTED), "--what-if", str(WHATIF / "handmade_whatif_fixes_drift.json"),
                           "--all")
    assert code == 0
    shown = pairs(everything["findings"])
    assert len(shown) > 10 and ("EXF-WS-02", ids.key(WS_EUS)) not in shown
    assert everything["whatIf"]["shown"] == "all"


def test_existing_drift_does_not_fail_an_unrelated_deployment() -> None:
    code, report = run("--snapshot", str(DRIFTED), "--what-if", str(WHATIF / "handmade_whatif_unrelated.json"))
    assert code == 0 and report["findings"] == []
    code, everything = run("--snapshot", str(DRIFTED), "--what-if", str(WHATIF / "handmade_whatif_unrelated.json"),
                           "--all")
    assert code == 0 and everything["summary"]["findings"] > 10


@pytest.mark.parametrize(("content", "message"), [
    (None, "'changes' must be an array"),  # the malformed fixture
    ("[]", "expected the JSON object"),
    ('{"value": []}', "no 'changes' array"),
    ("{not json", "not JSON"),
    ('{"status": "Failed", "error": {"code": "InvalidTemplate", "message": "bad"}}', "InvalidTemplate"),
])
def test_a_file_that_is_not_a_what_if_result_exits_2_with_a_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str) -> None:
    path = WHATIF / "handmade_whatif_malformed.json"
    if content is not None:
        path = tmp_path / "w.json"
        path.write_text(content)
    code, report = run("--snapshot", str(COMPLIANT), "--what-if", str(path))
    err = capsys.readouterr().err
    assert code == 2 and report == {}
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unreadable_changes_are_notices(tmp_path: Path) -> None:
    doc = {"changes": [
        {"resourceId": NSG_WEU, "changeType": "Teleport"},
        {"changeType": "Create", "after": {}},
        {"resourceId": NSG_WEU, "changeType": "Modify", "after": "not a body"},
    ]}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc))
    code, report = run("--snapshot", str(COMPLIANT), "--what-if", str(path))
    assert code == 0
    assert [n["kind"] for n in report["notices"]].count("what-if-unreadable") == 3
    assert report["whatIf"]["changes"] == {"Modify": 1, "Unreadable": 2}


def test_what_if_refuses_remediation_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("--snapshot", str(COMPLIANT), "--what-if", str(WHATIF / "handmade_whatif_delete.json"),
                  "--remediate")
    assert code == 2 and "--what-if" in capsys.readouterr().err
    code, _ = run("--snapshot", str(COMPLIANT), "--all")
    assert code == 2 and "--all needs --what-if" in capsys.readouterr().err


# ------------------------------------------------------------------ the overlay itself
def test_a_vnet_stating_its_subnets_supersedes_standalone_subnets_of_the_base() -> None:
    base = load_sample("compliant-subscription.json")
    vnet = copy.deepcopy(next(b for b in base if b["type"] == "Microsoft.Network/virtualNetworks"))
    standalone = copy.deepcopy(vnet["properties"]["subnets"][0])
    after = copy.deepcopy(vnet)
    for s in after["properties"]["subnets"]:
        s["properties"].pop("serviceEndpointPolicies", None)
    plan = whatif.Plan((whatif.Change("Modify", vnet["id"], vnet, after),), (), {"Modify": 1})
    outcome = whatif.evaluate([*base, standalone], plan, Config())
    assert ("EXF-SN-02", ids.key(standalone["id"])) in {whatif.finding_key(x) for x in outcome.introduced}


def test_deleting_a_resource_removes_its_standalone_children_too() -> None:
    base = load_sample("compliant-subscription.json")
    nsg = next(b for b in base if b["id"] == NSG_WEU)
    child = copy.deepcopy(nsg["properties"]["securityRules"][0])
    _, after = whatif.overlay([*base, child], [whatif.Change("Delete", NSG_WEU, nsg, None)])
    keys = {ids.key(b["id"]) for b in after}
    assert ids.key(NSG_WEU) not in keys and not any(k.startswith(ids.key(NSG_WEU) + "/") for k in keys)


_BASE = load_sample("compliant-subscription.json")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([b["id"] for b in _BASE]), max_size=4, unique=True),
       st.sampled_from(["NoChange", "Ignore"]))
def test_a_plan_of_no_changes_introduces_and_resolves_nothing(touched: list[str], kind: str) -> None:
    """Invariant: NoChange/Ignore (and an empty plan) never change the picture's findings."""
    plan = whatif.Plan(tuple(whatif.Change(kind, rid, None, None) for rid in touched), (), {})
    drifted = load_sample("drifted-subscription.json")
    outcome = whatif.evaluate(drifted, plan, Config())
    assert outcome.introduced == () and outcome.resolved == () and outcome.exit_code() == 0


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([b for b in _BASE]))
def test_redeploying_a_resource_as_it_is_introduces_nothing(body: dict) -> None:
    """Invariant: a Modify whose after-body equals the current body changes no finding."""
    plan = whatif.Plan((whatif.Change("Modify", body["id"], body, copy.deepcopy(body)),), (), {})
    outcome = whatif.evaluate(load_sample("compliant-subscription.json"), plan, Config())
    assert outcome.introduced == () and outcome.resolved == ()


# ------------------------------------------------------------------ live base (read-only)
def test_a_live_base_is_read_and_never_written(emu: ExtendedEmulator) -> None:
    code, report = run("--subscription", f.SUB, "--arm-endpoint", emu.url,
                       "--what-if", str(WHATIF / "handmade_whatif_fixes_drift.json"))
    assert code == 0 and report["findings"] == []
    assert pairs(report["whatIf"]["resolved"]) == {("EXF-WS-02", ids.key(WS_EUS))}
    assert report["live"]["mode"] == "read-only"
    assert not [r for r in emu.records(kind="write")]


def test_an_exempted_introduced_finding_is_shown_but_does_not_fail(tmp_path: Path) -> None:
    base = load_sample("compliant-subscription.json")
    nsg = next(b for b in base if b["id"] == NSG_WEU)
    until = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()  # within max_exemption_days
    nsg["tags"] = {"exfilguard-exempt": f"EXF-NSG-01,EXF-NSG-02; until={until}; reason=vendor upload, ticket 42"}
    snap = tmp_path / "snapshot.json"
    snap.write_text(json.dumps(base))
    code, report = run("--snapshot", str(snap), "--what-if", str(WHATIF / "handmade_whatif_leaky_nsg_rule.json"))
    assert code == 0
    assert {x["ruleId"] for x in report["findings"] if x["exempt"]} == {"EXF-NSG-01", "EXF-NSG-02"}


def test_a_deploy_change_is_overlaid_like_a_modify() -> None:
    base = load_sample("compliant-subscription.json")
    ws = copy.deepcopy(next(b for b in base if b["type"] == "Microsoft.MachineLearningServices/workspaces"))
    ws["properties"]["publicNetworkAccess"] = "Enabled"
    plan = whatif.Plan((whatif.Change("Deploy", ws["id"], None, ws),), (), {"Deploy": 1})
    outcome = whatif.evaluate(base, plan, Config())
    assert {whatif.finding_key(x) for x in outcome.introduced} == {("EXF-WS-02", ids.key(ws["id"]))}


def test_a_partial_live_read_is_not_called_clean(emu: ExtendedEmulator) -> None:
    emu.add_fault(403, method="GET", path="/providers/Microsoft.Storage/storageAccounts")
    code, report = run("--subscription", f.SUB, "--arm-endpoint", emu.url,
                       "--what-if", str(WHATIF / "handmade_whatif_unrelated.json"))
    assert code == 2
    assert report["incomplete"] is True and report["errors"]
