"""``exfilguard policy export``: definitions that validate, aliases that are proven, output
that is stable, and the Bicep module that deploys the committed export."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from exfilguard.cli.main import main
from exfilguard.core.rules import RULES
from exfilguard.render import policy_export as pe
from tests.support import DATA, REPO

SCHEMA = json.loads((DATA / "azure-policy" / "policyDefinition.schema.json").read_text())
COMMITTED = REPO / "infra" / "policy"
MODULE = REPO / "infra" / "modules" / "policy.bicep"
AT_LEAST = {"EXF-WS-01", "EXF-WS-02", "EXF-WS-04", "EXF-CMP-01", "EXF-NSG-05"}
# The schema refers to ARM's common definitions for a template expression; that file is not
# copied, so the one definition used is given here as ARM documents it: a string in brackets.
_COMMON = {"definitions": {"expression": {"type": "string", "pattern": r"^\[([^\[].*)?\]$"}}}


def rule_validator() -> jsonschema.Draft4Validator:
    registry = Registry().with_resources([
        ("https://schema.management.azure.com/schemas/common/definitions.json",
         Resource.from_contents(_COMMON, default_specification=DRAFT4)),
    ])
    return jsonschema.Draft4Validator(SCHEMA, registry=registry)


def test_exports_at_least_the_rules_the_issue_names() -> None:
    exported = {e.rule_id for e in pe.exported()}
    assert exported >= AT_LEAST
    assert exported <= set(RULES)


@pytest.mark.parametrize("effect", ["Audit", "Deny"])
def test_every_definition_validates_against_the_policy_rule_schema(effect: str) -> None:
    validator = rule_validator()
    for name, text in pe.build(effect).items():
        if name == pe.INITIATIVE_FILE:
            continue
        doc = json.loads(text)
        errors = sorted(validator.iter_errors(doc["properties"]["policyRule"]), key=str)
        assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_the_schema_does_reject_a_broken_rule() -> None:
    validator = rule_validator()
    assert not validator.is_valid({"if": {"field": "type"}, "then": {"effect": "audit"}})  # no operator
    assert not validator.is_valid({"if": {"field": "type", "equals": True}, "then": {"effect": "audit"}})
    assert not validator.is_valid({"if": {"field": "type", "equals": "x"}, "then": {"effect": "block"}})
    assert validator.is_valid({"if": {"field": "type", "equals": "x"}, "then": {"effect": "[parameters('effect')]"}})


@pytest.mark.parametrize("effect", ["Audit", "Deny"])
def test_definition_envelopes_field_by_field(effect: str) -> None:
    for name, text in pe.build(effect).items():
        if name == pe.INITIATIVE_FILE:
            continue
        doc = json.loads(text)
        props = doc["properties"]
        assert set(doc) == {"name", "type", "properties"} and doc["type"] == "Microsoft.Authorization/policyDefinitions"
        assert name == f"{doc['name']}.json" and re.fullmatch(r"exfilguard-[a-z]+-\d\d", doc["name"])
        assert set(props) == {"displayName", "policyType", "mode", "description", "metadata", "parameters",
                              "policyRule"}
        assert props["policyType"] == "Custom" and props["mode"] in ("All", "Indexed")
        # Azure's limits: display name 128 characters, description 512.
        assert len(props["displayName"]) <= 128 and 0 < len(props["description"]) <= 512
        meta = props["metadata"]["exfilguard"]
        assert meta["ruleId"] in RULES and meta["ruleId"] in props["displayName"]
        param = props["parameters"]["effect"]
        assert param["type"] == "String" and param["allowedValues"] == ["Audit", "Deny", "Disabled"]
        assert param["defaultValue"] == (effect if meta["denySafe"] else "Audit")
        assert props["policyRule"]["then"] == {"effect": "[parameters('effect')]"}
        # A child type (computes, security rules) needs mode All; a workspace is indexed.
        types = {c["equals"] for c in _walk(props["policyRule"]["if"]) if c.get("field") == "type"}
        assert (props["mode"] == "All") == any(t.count("/") > 1 for t in types), (name, types)


def _walk(node: object):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_initiative_groups_every_definition_field_by_field() -> None:
    files = pe.build("Deny")
    init = json.loads(files[pe.INITIATIVE_FILE])
    props = init["properties"]
    assert init["name"] == pe.INITIATIVE_NAME and init["type"] == "Microsoft.Authorization/policySetDefinitions"
    assert set(props) == {"displayName", "policyType", "description", "metadata", "parameters", "policyDefinitions"}
    assert len(props["displayName"]) <= 128 and 0 < len(props["description"]) <= 512
    defs = {json.loads(t)["name"]: json.loads(t) for n, t in files.items() if n != pe.INITIATIVE_FILE}
    refs = props["policyDefinitions"]
    assert [r["policyDefinitionId"].rsplit("/", 1)[-1] for r in refs] == sorted(defs)
    assert len({r["policyDefinitionReferenceId"] for r in refs}) == len(refs)
    for ref in refs:
        d = defs[ref["policyDefinitionId"].rsplit("/", 1)[-1]]
        meta = d["properties"]["metadata"]["exfilguard"]
        assert ref["policyDefinitionReferenceId"] == meta["ruleId"]
        assert ref["policyDefinitionId"].startswith("/subscriptions/") and \
            "/providers/Microsoft.Authorization/policyDefinitions/" in ref["policyDefinitionId"]
        assert set(ref) == {"policyDefinitionReferenceId", "policyDefinitionId", "parameters"}
        assert ref["parameters"] == {"effect": {"value": f"[parameters('{meta['effectParameter']}')]"}}
        param = props["parameters"][meta["effectParameter"]]
        assert param["allowedValues"] == ["Audit", "Deny", "Disabled"]
        assert param["defaultValue"] == d["properties"]["parameters"]["effect"]["defaultValue"]
    assert set(props["parameters"]) == {d["properties"]["metadata"]["exfilguard"]["effectParameter"]
                                        for d in defs.values()}


def test_every_alias_used_is_proven_with_its_source_and_none_is_stale() -> None:
    data = pe.alias_data()
    used = {a for e in pe.exported() for a in pe.aliases_of(e)}
    assert used <= pe.proven_aliases(), used - pe.proven_aliases()  # only built-ins prove an alias
    candidates = {a for e in pe.EXPORTS for a in pe.aliases_of(e)}
    assert candidates == set(data["aliases"]), (candidates ^ set(data["aliases"]))
    for alias, source in data["aliases"].items():
        assert source["kind"] in ("built-in", "microsoft-reference", "microsoft-docs"), alias
        assert source["repository"] in ("Azure/azure-policy", "Azure/Enterprise-Scale", "MicrosoftDocs/azure-docs")
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]) and source["path"] and source["displayName"]
        if source["kind"] == "built-in":
            assert source["path"].startswith("built-in-policies/policyDefinitions/")
            assert re.fullmatch(r"/providers/Microsoft\.Authorization/policyDefinitions/[0-9a-f-]{36}", source["id"])


def test_a_rule_without_a_proven_alias_is_not_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(json.dumps(pe.alias_data()))
    del data["aliases"]["Microsoft.MachineLearningServices/workspaces/publicNetworkAccess"]
    monkeypatch.setattr(pe, "alias_data", lambda: data)
    exported = {e.rule_id for e in pe.exported()}
    assert "EXF-WS-02" not in exported and "EXF-WS-04" in exported
    assert "exfilguard-ws-02.json" not in pe.build()


def test_enforcement_table_covers_every_rule_and_agrees_with_the_export() -> None:
    table = pe.alias_data()["enforcement"]
    assert set(table) == set(RULES)
    exported = {e.rule_id for e in pe.exported()}
    for rule_id, row in table.items():
        assert row["exfilguard"] == ["event", "sweep", "what-if", "scan"]
        assert (row["azurePolicy"] is not None) == (rule_id in exported), rule_id
        assert row["azurePolicy"] in (None, "full", "partial") and row["why"]


def test_output_is_stable_and_the_committed_export_is_current() -> None:
    first, second = pe.build(), pe.build()
    assert first == second and list(first) == sorted(first)
    for text in first.values():
        assert text.endswith("\n") and json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n" == text
    committed = {p.name: p.read_text() for p in sorted(COMMITTED.glob("*.json"))}
    assert committed == first, "infra/policy is stale: run `exfilguard policy export --out infra/policy`"


def test_cli_writes_the_files_and_reports_an_unwritable_folder(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert main(["policy", "export", "--out", str(tmp_path / "p"), "--effect", "Deny"], out=out) == 0
    names = sorted(Path(line).name for line in out.getvalue().splitlines())
    assert names == sorted(pe.build("Deny"))
    ws02 = json.loads((tmp_path / "p" / "exfilguard-ws-02.json").read_text())
    assert ws02["properties"]["parameters"]["effect"]["defaultValue"] == "Deny"
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["policy", "export", "--out", str(blocker / "sub")], out=io.StringIO()) == 2
    assert "cannot write the export" in capsys.readouterr().err


def test_bicep_module_deploys_exactly_the_committed_export() -> None:
    text = MODULE.read_text()
    loaded = re.findall(r"loadJsonContent\('\.\./policy/([^']+)'\)", text)
    assert sorted(loaded) == sorted(p.name for p in COMMITTED.glob("*.json"))
    assert "targetScope = 'subscription'" in text
    assigned = dict(re.findall(r"^ {6}(effect\w+): \{\n {8}value: (\w+)\n", text, re.MULTILINE))
    expected = {}
    for p in COMMITTED.glob("exfilguard-*.json"):
        meta = json.loads(p.read_text())["properties"]["metadata"]["exfilguard"]
        expected[meta["effectParameter"]] = "effect" if meta["denySafe"] else "effectWhereDenyIsUnsafe"
    assert assigned == expected
    assert "var effectWhereDenyIsUnsafe = effect == 'Deny' ? 'Audit' : effect" in text
    main_bicep = (REPO / "infra" / "main.bicep").read_text()
    assert "param enablePolicyInitiative bool = false" in main_bicep
    assert "module policy 'modules/policy.bicep' = if (enablePolicyInitiative) {" in main_bicep
