"""SARIF that real consumers accept: Microsoft's validator (npm ``@microsoft/sarif-multitool``,
installed by ``npm install`` like Azurite; it ships a self-contained Linux binary, no .NET
needed) over the SARIF of a scan given a relative path, an absolute path, and a what-if scan.
It must report no error and no SARIF2017 (missing region). Its absence is a failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exfilguard.render.sarif_places import FileLocator
from tests.support import REPO

MULTITOOL = REPO / "node_modules" / ".bin" / "sarif-multitool"
WHATIF = "tests/data/whatif/handmade_whatif_leaky_nsg_rule.json"


def sarif_of(*args: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "exfilguard.cli", "scan", *args, "--format", "sarif"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


def validate(doc: dict, tmp_path: Path) -> list[dict]:
    """The validator's results (its own SARIF log); fails the test if it cannot run."""
    if not MULTITOOL.exists():
        pytest.fail(f"{MULTITOOL.relative_to(REPO)} is missing: run `npm install` (make test does it)")
    src, out = tmp_path / "report.sarif", tmp_path / "validation.sarif"
    src.write_text(json.dumps(doc))
    proc = subprocess.run([str(MULTITOOL), "validate", str(src), "-o", str(out)],
                          capture_output=True, text=True, timeout=280)
    assert out.is_file(), f"validator wrote no log (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
    return json.loads(out.read_text())["runs"][0].get("results", [])


def problems(results: list[dict]) -> list[str]:
    return [f"{r['ruleId']} {r.get('level', 'warning')}: {r['message'].get('arguments')}" for r in results
            if r.get("level", "warning") == "error" or r["ruleId"] == "SARIF2017"]


@pytest.mark.parametrize("args", [
    ("--snapshot", "samples/drifted-subscription.json"),
    ("--snapshot", str(REPO / "samples" / "drifted-subscription.json")),
    ("--snapshot", "samples/compliant-subscription.json", "--what-if", WHATIF),
    ("--snapshot", str(REPO / "samples" / "drifted-subscription.json"), "--what-if", WHATIF, "--all"),
], ids=["relative", "absolute", "what-if", "what-if-absolute-all"])
def test_validator_reports_no_error_and_no_missing_region(args: tuple[str, ...], tmp_path: Path) -> None:
    doc = sarif_of(*args)
    assert doc["runs"][0]["results"], "nothing to validate"
    found = validate(doc, tmp_path)
    assert not problems(found), "\n".join(problems(found))


def test_the_validator_does_catch_what_this_guards_against(tmp_path: Path) -> None:
    """The old output (an absolute path as a relative reference, no region) must fail here."""
    doc = sarif_of("--snapshot", str(REPO / "samples" / "drifted-subscription.json"))
    for result in doc["runs"][0]["results"]:
        result["locations"][0]["physicalLocation"] = {"artifactLocation": {"uri": "/home/me/snapshot.json"}}
    rules = {r["ruleId"] for r in validate(doc, tmp_path)}
    assert {"SARIF1004", "SARIF2017"} <= rules


def test_regions_point_at_the_resource_line() -> None:
    doc = sarif_of("--snapshot", "samples/drifted-subscription.json")
    run = doc["runs"][0]
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"].startswith("file:///")
    lines = (REPO / "samples" / "drifted-subscription.json").read_text().splitlines()
    for result in run["results"]:
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"] == {"uri": "samples/drifted-subscription.json", "uriBaseId": "SRCROOT"}
        line = lines[loc["region"]["startLine"] - 1]
        resource_id = result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
        assert resource_id.lower() in line.lower()
    absolute = sarif_of("--snapshot", str(REPO / "samples" / "drifted-subscription.json"))["runs"][0]
    uri = absolute["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.startswith("file:///") and uri.endswith("/samples/drifted-subscription.json")
    assert "originalUriBaseIds" not in absolute


def test_what_if_results_point_into_the_what_if_file() -> None:
    doc = sarif_of("--snapshot", "samples/compliant-subscription.json", "--what-if", WHATIF)
    lines = (REPO / WHATIF).read_text().splitlines()
    results = doc["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"EXF-NSG-01", "EXF-NSG-02"}
    for r in results:
        loc = r["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] in (WHATIF, "samples/compliant-subscription.json")
        assert loc["region"]["startLine"] >= 1
    # The NSG itself is not in the what-if (only its new rule is): its line comes from the snapshot.
    assert all(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
               == "samples/compliant-subscription.json" for r in results)
    assert lines  # the what-if file is there to be pointed at


_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(_NAME, min_size=1, max_size=8, unique=True), st.integers(0, 4), st.booleans())
def test_each_resource_gets_the_line_of_its_own_id(names: list[str], indent: int, upper: bool) -> None:
    """Invariant: the region of every resource is the line (and columns) of its "id" member,
    whatever the layout and case; an unknown resource gets the whole file."""
    bodies = [{"name": n, "id": f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                                f"networkSecurityGroups/{n}", "properties": {"ref": {"id": "/subscriptions/x"}}}
              for n in names]
    text = json.dumps(bodies, indent=indent or None)
    place = FileLocator("snap.json", text)
    lines = text.splitlines()
    for b in bodies:
        rid = b["id"].upper() if upper else b["id"]
        region = place.region(rid)
        assert region is not None and region["startLine"] == region["endLine"]
        line = lines[region["startLine"] - 1]
        assert line[region["startColumn"] - 1:region["endColumn"] - 1] == f'"id": {json.dumps(b["id"])}'
    assert place.region("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/"
                        "not-there") is None
    whole = place.whole_file()
    assert whole["startLine"] == 1 and whole["endLine"] == len(lines)
