"""The ``exfilguard`` command as a user runs it: exit codes, report contract, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exfilguard.core.rules import RULES
from tests.support import REPO, SAMPLES

DRIFTED = SAMPLES / "drifted-subscription.json"
COMPLIANT = SAMPLES / "compliant-subscription.json"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EXFILGUARD_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "exfilguard.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=full_env, timeout=120)


def test_drifted_sample_reports_findings_and_exits_1():
    r = cli("scan", "--snapshot", str(DRIFTED), "--format", "json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["schemaVersion"] == 1
    rules = {x["ruleId"] for x in report["findings"]}
    assert len(rules) >= 12
    for x in report["findings"]:
        assert set(x) >= {"ruleId", "resourceId", "severity", "title", "detail", "exempt", "fix"}
        assert x["fix"]["mode"] in ("auto", "manual") and x["fix"]["summary"]
        assert x["severity"] in ("critical", "high", "medium", "low")
    s = report["summary"]
    assert s["findings"] == sum(1 for x in report["findings"] if not x["exempt"])
    assert sum(s["bySeverity"].values()) == s["findings"]
    assert s["resources"] == 35
    # The sample's exemption runs to 2099: more than max_exemption_days (90) ahead, so it exempts
    # nothing and a notice says why (governance, docs/semantics.md "Exemptions").
    assert [x["ruleId"] for x in report["findings"] if x["exempt"]] == []
    assert any(x["ruleId"] == "EXF-CMP-04" for x in report["findings"])
    [notice] = [n for n in report["notices"] if "exemption" in n["kind"]]
    assert notice["kind"] == "invalid-exemption" and "more than 90 days after" in notice["message"]
    subnet_ids = [x["resourceId"] for x in report["findings"] if x["ruleId"].startswith("EXF-SN")]
    assert all("/virtualNetworks/" in i and "/subnets/" in i for i in subnet_ids)


def test_compliant_sample_exits_0():
    r = cli("scan", "--snapshot", str(COMPLIANT))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["findings"] == []  # JSON is the default when stdout is not a terminal


def test_table_format_groups_by_severity():
    r = cli("scan", "--snapshot", str(DRIFTED), "--format", "table")
    assert r.returncode == 1
    out = r.stdout
    assert out.index("CRITICAL") < out.index("HIGH") < out.index("MEDIUM")
    assert "EXF-NSG-01" in out and "nsg-ml-westeurope" in out and "[auto]" in out
    assert "finding(s)" in out.splitlines()[-1]


def in_days(n: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=n)).isoformat()


def test_sarif_is_valid_2_1_0_with_suppressed_exemptions(tmp_path: Path):
    doc = json.loads(DRIFTED.read_text())
    vendor = next(x for x in doc if x["name"] == "ci-vendor-debug")
    vendor["tags"]["exfilguard-exempt"] = f"EXF-CMP-04;until={in_days(30)};reason=vendor debugging, SEC-4411"
    p = tmp_path / "drifted.json"
    p.write_text(json.dumps(doc))
    r = cli("scan", "--snapshot", str(p), "--format", "sarif")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert {x["id"] for x in rules} == set(RULES)
    for x in rules:
        assert x["help"]["text"] and float(x["properties"]["security-severity"]) > 0
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    suppressed = [x for x in run["results"] if x.get("suppressions")]
    assert [x["ruleId"] for x in suppressed] == ["EXF-CMP-04"]


def test_rules_command_lists_every_rule():
    r = cli("rules")
    assert r.returncode == 0
    lines = r.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == list(RULES)


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_not_json(tmp_path: Path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    _one_line_error(cli("scan", "--snapshot", str(p)), "bad.json", "not JSON")


def test_wrong_top_level_shape(tmp_path: Path):
    p = tmp_path / "shape.json"
    p.write_text(json.dumps({"resources": []}))
    _one_line_error(cli("scan", "--snapshot", str(p)), "shape.json", "expected an array")
    p.write_text(json.dumps({"value": {"id": "x"}}))
    _one_line_error(cli("scan", "--snapshot", str(p)), "shape.json", "'value' must be an array")
    p.write_text("42")
    _one_line_error(cli("scan", "--snapshot", str(p)), "shape.json")


def test_missing_file():
    _one_line_error(cli("scan", "--snapshot", "/nonexistent/snap.json"), "snap.json", "cannot read")


def test_resource_without_id_is_a_reported_skip(tmp_path: Path):
    doc = json.loads(COMPLIANT.read_text())
    doc.append({"name": "orphan", "type": "Microsoft.Network/networkSecurityGroups", "properties": {}})
    p = tmp_path / "noid.json"
    p.write_text(json.dumps(doc))
    r = cli("scan", "--snapshot", str(p), "--format", "json")
    assert r.returncode == 0, r.stderr
    notices = json.loads(r.stdout)["notices"]
    assert any("has no 'id'" in n["message"] and "noid.json" in n["message"] for n in notices)


def test_wrong_types_are_reported_skips(tmp_path: Path):
    doc = json.loads(DRIFTED.read_text())
    ws = next(x for x in doc if x["name"] == "mlw-eastus")
    ws["properties"]["publicNetworkAccess"] = ["Enabled"]
    p = tmp_path / "types.json"
    p.write_text(json.dumps(doc))
    r = cli("scan", "--snapshot", str(p), "--format", "json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert any("publicNetworkAccess must be a string" in n["message"] for n in report["notices"])
    assert not any(x["resourceId"].endswith("mlw-eastus") for x in report["findings"])


def test_huge_file_is_refused(tmp_path: Path):
    p = tmp_path / "huge.json"
    with p.open("w") as fh:
        fh.write("[")
        chunk = json.dumps({"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Foo/bars/b",
                            "properties": {"pad": "x" * 4000}})
        for i in range(12_800):
            fh.write(("," if i else "") + chunk)
        fh.write("]")
    assert p.stat().st_size > 50 * 1024 * 1024
    _one_line_error(cli("scan", "--snapshot", str(p)), "huge.json", "snapshot limit")


def test_bad_configuration_names_the_setting(tmp_path: Path):
    _one_line_error(cli("scan", "--snapshot", str(COMPLIANT), env={"EXFILGUARD_MODE": "fix-everything"}),
                    "EXFILGUARD_MODE")
    _one_line_error(cli("scan", "--snapshot", str(COMPLIANT), env={"EXFILGUARD_DENY_PRIORITY": "5000"}),
                    "EXFILGUARD_DENY_PRIORITY")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mode: audit\nrules:\n  EXF-NOPE-01: remediate\n")
    _one_line_error(cli("scan", "--snapshot", str(COMPLIANT), "--config", str(cfg)), "EXF-NOPE-01")
    cfg.write_text("colour: blue\n")
    _one_line_error(cli("scan", "--snapshot", str(COMPLIANT), "--config", str(cfg)), "colour")


def test_yaml_configuration_changes_decisions(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    sep = ("/subscriptions/6f1e3c2a-8d4b-4f7e-9a51-2c7d0b9e4a11/resourceGroups/rg-ml-weu/providers/"
           "Microsoft.Network/serviceEndpointPolicies/sep-ml-westeurope")
    cfg.write_text(f"attachServiceEndpointPolicy: {sep}\n")
    r = cli("scan", "--snapshot", str(DRIFTED), "--config", str(cfg), "--format", "json")
    sn02 = next(x for x in json.loads(r.stdout)["findings"] if x["ruleId"] == "EXF-SN-02")
    assert sn02["fix"]["mode"] == "auto"


def test_remediate_needs_a_subscription():
    _one_line_error(cli("scan", "--snapshot", str(DRIFTED), "--remediate"), "--subscription")


@pytest.mark.parametrize("argv", [[], ["scan"], ["scan", "--snapshot"], ["frobnicate"]])
def test_usage_errors_exit_2(argv):
    r = cli(*argv)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_exemption_notices(tmp_path: Path):
    doc = json.loads(DRIFTED.read_text())
    nsg = next(x for x in doc if x["name"] == "nsg-ml-westeurope")
    nsg["tags"] = {"exfilguard-exempt": "EXF-NSG-01;until=2020-01-01;reason=old"}
    vnet = next(x for x in doc if x["name"] == "vnet-ml-eastus")
    vnet["tags"] = {"Exfilguard-Exempt": f"EXF-SN-01;until={in_days(90)};reason=migration"}
    sep = next(x for x in doc if x["name"] == "sep-ml-eastus")
    sep["tags"] = {"exfilguard-exempt": "EXF-SEP-03;until=2999-01-01"}
    p = tmp_path / "ex.json"
    p.write_text(json.dumps(doc))
    report = json.loads(cli("scan", "--snapshot", str(p), "--format", "json").stdout)
    by = {(x["ruleId"], x["resourceId"].rsplit("/", 1)[-1]): x for x in report["findings"]}
    assert by[("EXF-NSG-01", "nsg-ml-westeurope")]["exempt"] is False
    assert by[("EXF-SN-01", "snet-training")]["exempt"] is True  # subnet exempt through its VNet's tag
    assert by[("EXF-SEP-03", "sep-ml-eastus")]["exempt"] is False
    kinds = sorted(n["kind"] for n in report["notices"])
    assert kinds == ["expired-exemption", "invalid-exemption", "malformed-exemption"]  # invalid: the sample's 2099


def test_scan_shows_ws02_manual_without_an_approved_private_endpoint_and_auto_with_one(tmp_path: Path):
    doc = json.loads(COMPLIANT.read_text())
    ws = next(x for x in doc if x["type"] == "Microsoft.MachineLearningServices/workspaces")
    ws["properties"]["publicNetworkAccess"] = "Enabled"
    with_pe = tmp_path / "with.json"
    with_pe.write_text(json.dumps(doc))
    for pec in ws["properties"]["privateEndpointConnections"]:
        pec["properties"]["privateLinkServiceConnectionState"]["status"] = "Pending"
    without = tmp_path / "without.json"
    without.write_text(json.dumps(doc))

    def ws02(path: Path) -> dict:
        report = json.loads(cli("scan", "--snapshot", str(path), "--format", "json").stdout)
        return next(x for x in report["findings"] if x["ruleId"] == "EXF-WS-02" and x["resourceId"] == ws["id"])

    assert ws02(with_pe)["fix"] == {"mode": "auto", "summary": "set publicNetworkAccess: Disabled"}
    manual = ws02(without)["fix"]
    assert manual["mode"] == "manual" and manual["summary"].startswith("add an approved private endpoint")


@pytest.mark.parametrize("doc", [[1, 2, 3], [{}], {"value": [{"name": "no-id"}, "text"]}])
def test_snapshot_with_nothing_readable_exits_2(tmp_path: Path, doc):
    """A non-empty snapshot none of whose items is a resource is an input error, never "compliant"."""
    p = tmp_path / "junk.json"
    p.write_text(json.dumps(doc))
    _one_line_error(cli("scan", "--snapshot", str(p)), "junk.json", "could be read as an ARM resource")


def test_empty_snapshot_and_unknown_types_still_exit_0(tmp_path: Path):
    p = tmp_path / "other.json"
    p.write_text("[]")
    assert cli("scan", "--snapshot", str(p), "--format", "json").returncode == 0
    p.write_text(json.dumps([{"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v",
                              "type": "Microsoft.Compute/virtualMachines", "name": "v"}]))
    assert cli("scan", "--snapshot", str(p), "--format", "json").returncode == 0
